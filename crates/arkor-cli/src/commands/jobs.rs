//! `arkor jobs list|show|cancel|logs` for the project in the current directory.

use std::process::ExitCode;

use anyhow::{Context, bail};
use arkor::{Client, ProjectScope, ProjectState};

use crate::args::JobsCommand;
use crate::config::Global;

pub fn run(global: &Global, command: JobsCommand) -> anyhow::Result<ExitCode> {
    in_project(global, async |client, scope| run_on(client, scope, command).await)
}

/// Runs `f` with a client of the project's backend (the login's, or this data dir's local
/// one, started for the call when none runs) and the project's scope from `.arkor/state.json`.
pub(crate) fn in_project(
    global: &Global,
    f: impl AsyncFnOnce(&Client, &ProjectScope) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let Some(creds) = arkor::read_credentials(&arkor::credentials_path(&global.data_dir))? else {
        bail!("not logged in: run `arkor login` or `arkor start` first");
    };
    let state_path = std::path::Path::new(".arkor/state.json");
    let text = std::fs::read_to_string(state_path)
        .context("no .arkor/state.json here: run this in a project after `arkor start`")?;
    let state: ProjectState = serde_json::from_str(&text).context("invalid .arkor/state.json")?;
    let scope = ProjectScope { org_slug: state.org_slug, project_slug: state.project_slug };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // A remote login talks to its backend; a local one to this data dir's backend.
        let (url, embedded) = match creds.kind {
            arkor::CredentialsKind::Token => (creds.base_url.clone(), None),
            arkor::CredentialsKind::Anonymous => super::server::local_backend(global).await?,
        };
        let client = Client::new(&url, Some(creds.token));
        let result = f(&client, &scope).await;
        if let Some(b) = embedded {
            b.shutdown().await;
        }
        result
    })
}

async fn run_on(
    client: &Client,
    scope: &ProjectScope,
    command: JobsCommand,
) -> anyhow::Result<ExitCode> {
    let scope = scope.clone();
    {
        match command {
            JobsCommand::List { limit } => {
                let list = client.list_jobs(&scope, limit).await?;
                println!("{:<26} {:<10} {:>11}  {:<24} NAME", "ID", "STATUS", "STEP", "CREATED");
                for j in &list.jobs {
                    let step = format!("{}/{}", j.progress.step, j.progress.total_steps);
                    println!(
                        "{:<26} {:<10} {:>11}  {:<24} {}",
                        j.id,
                        j.status.as_str(),
                        step,
                        j.created_at,
                        j.name
                    );
                }
                if list.total as usize > list.jobs.len() {
                    println!("({} of {} jobs; --limit to see more)", list.jobs.len(), list.total);
                }
            }
            JobsCommand::Show { id } => {
                let job = client.get_job(&scope, &id).await?;
                println!("{}", serde_json::to_string_pretty(&job)?);
            }
            JobsCommand::Cancel { id } => {
                client.cancel_job(&scope, &id).await?;
                println!("Cancelling job {id}.");
            }
            JobsCommand::Logs { id } => {
                // Replays the log, then follows it to the end, reconnecting like the SDK.
                let (connection, never) = (arkor::Connection::default(), Default::default());
                let mut events = arkor::JobEvents::new(client, &scope, &id, &connection, &never);
                while let Some(event) = events.next().await? {
                    println!("{} {}", event.kind.name(), serde_json::to_string(&event)?);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
