//! `arkor endpoints list|create|show|update|delete|keys|requests` for the project in the
//! current directory. The backend validates every field (the messages are its own).

use std::process::ExitCode;

use anyhow::bail;
use arkor::{
    AdapterRef, Client, CreateDeploymentInput, DeploymentDto, DeploymentTarget, ProjectScope,
    UpdateDeploymentInput,
};

use super::jobs::in_project;
use crate::args::{EndpointsCommand, KeysCommand, TargetArgs};
use crate::config::Global;

pub fn run(global: &Global, command: EndpointsCommand) -> anyhow::Result<ExitCode> {
    // Endpoints answer while a backend runs; one started just for this command stops with it.
    let serving = arkor_server::discover(&global.data_dir).is_some()
        || arkor::read_credentials(&arkor::credentials_path(&global.data_dir))?
            .is_some_and(|c| c.kind == arkor::CredentialsKind::Token);
    in_project(global, async |client, scope| run_on(client, scope, command, serving).await)
}

async fn run_on(
    client: &Client,
    scope: &ProjectScope,
    command: EndpointsCommand,
    serving: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        EndpointsCommand::List => {
            let list = client.list_deployments(scope).await?;
            if list.is_empty() {
                println!("No endpoints yet: `arkor endpoints create SLUG --job JOB_ID`.");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<24} {:<24} {:<8} {:<14} {:>8} {:>8}  TARGET",
                "SLUG", "ID", "STATE", "AUTH", "REQUESTS", "P50 MS"
            );
            for d in &list {
                println!(
                    "{:<24} {:<24} {:<8} {:<14} {:>8} {:>8}  {}",
                    d.slug,
                    d.id,
                    if d.enabled { "enabled" } else { "disabled" },
                    d.auth_mode.as_str(),
                    d.stats.requests,
                    d.stats.p50_latency_ms.map_or("-".to_owned(), |v| v.to_string()),
                    describe_target(&d.target)
                );
            }
        }
        EndpointsCommand::Create { slug, target, settings } => {
            let Some(target) = target_of(&target)? else {
                bail!(
                    "say what the endpoint serves: --job JOB_ID [--step N] or --base-model MODEL"
                );
            };
            let input = CreateDeploymentInput {
                slug,
                target: Some(target),
                auth_mode: settings.auth.clone(),
                run_retention_mode: settings.retention.clone(),
                run_retention_days: settings.retention_days,
            };
            let d = client.create_deployment(scope, &input).await?;
            println!("Created endpoint {} ({}): {}", d.slug, d.id, describe_target(&d.target));
            print_usage(&d, serving);
        }
        EndpointsCommand::Show { endpoint } => {
            let id = resolve(client, scope, &endpoint).await?;
            let d = client.get_deployment(scope, &id).await?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
        EndpointsCommand::Update { endpoint, target, settings, enable, disable } => {
            let id = resolve(client, scope, &endpoint).await?;
            let input = UpdateDeploymentInput {
                target: target_of(&target)?,
                auth_mode: settings.auth,
                enabled: (enable || disable).then_some(enable),
                run_retention_mode: settings.retention,
                run_retention_days: settings.retention_days,
            };
            if input == UpdateDeploymentInput::default() {
                bail!(
                    "nothing to change: give --job/--base-model, --auth, --retention, \
                     --retention-days, --enable or --disable"
                );
            }
            let d = client.update_deployment(scope, &id, &input).await?;
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
        EndpointsCommand::Delete { endpoint } => {
            let id = resolve(client, scope, &endpoint).await?;
            client.delete_deployment(scope, &id).await?;
            println!("Deleted endpoint {endpoint} with its keys and request log.");
        }
        EndpointsCommand::Keys(KeysCommand::List { endpoint }) => {
            let id = resolve(client, scope, &endpoint).await?;
            let keys = client.list_deployment_keys(scope, &id).await?;
            println!("{:<26} {:<20} {:<9} {:<26} LABEL", "ID", "PREFIX", "STATE", "LAST USED");
            for k in keys {
                println!(
                    "{:<26} {:<20} {:<9} {:<26} {}",
                    k.id,
                    format!("{}…", k.prefix),
                    if k.enabled { "active" } else { "revoked" },
                    k.last_used_at.as_deref().unwrap_or("never"),
                    k.label
                );
            }
        }
        EndpointsCommand::Keys(KeysCommand::Create { endpoint, label }) => {
            let id = resolve(client, scope, &endpoint).await?;
            let key = client.create_deployment_key(scope, &id, &label).await?;
            println!("{}", key.plaintext);
            eprintln!(
                "Key {} ({}) issued. Copy it now: it cannot be shown again (only its hash is \
                 stored).",
                key.id, key.label
            );
        }
        EndpointsCommand::Keys(KeysCommand::Revoke { endpoint, key }) => {
            let id = resolve(client, scope, &endpoint).await?;
            client.revoke_deployment_key(scope, &id, &key).await?;
            println!("Revoked key {key}: requests with it are refused from now on.");
        }
        EndpointsCommand::Requests { endpoint, limit } => {
            let id = resolve(client, scope, &endpoint).await?;
            let list = client.list_deployment_requests(scope, &id, limit).await?;
            println!("{:<26} {:>6} {:>8} {:>6} {:>6}  KEY", "TIME", "STATUS", "MS", "IN", "OUT");
            let n = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
            for r in list {
                println!(
                    "{:<26} {:>6} {:>8} {:>6} {:>6}  {}",
                    r.created_at,
                    r.status,
                    r.latency_ms,
                    n(r.prompt_tokens),
                    n(r.completion_tokens),
                    r.key_id.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn target_of(t: &TargetArgs) -> anyhow::Result<Option<DeploymentTarget>> {
    Ok(match (&t.job, t.step, &t.base_model) {
        (Some(job), None, None) => {
            Some(DeploymentTarget::Adapter { adapter: AdapterRef::Final { job_id: job.clone() } })
        }
        (Some(job), Some(step), None) => Some(DeploymentTarget::Adapter {
            adapter: AdapterRef::Checkpoint { job_id: job.clone(), step },
        }),
        (None, None, Some(model)) => {
            Some(DeploymentTarget::BaseModel { base_model: model.clone() })
        }
        (None, None, None) => None,
        _ => bail!("give either --job JOB_ID [--step N] or --base-model MODEL"),
    })
}

fn describe_target(t: &DeploymentTarget) -> String {
    match t {
        DeploymentTarget::Adapter { adapter: AdapterRef::Final { job_id } } => {
            format!("final adapter of job {job_id}")
        }
        DeploymentTarget::Adapter { adapter: AdapterRef::Checkpoint { job_id, step } } => {
            format!("checkpoint {step} of job {job_id}")
        }
        DeploymentTarget::BaseModel { base_model } => format!("base model {base_model}"),
    }
}

/// An endpoint's id from its slug or id.
async fn resolve(client: &Client, scope: &ProjectScope, endpoint: &str) -> anyhow::Result<String> {
    if endpoint.starts_with("ep_") {
        return Ok(endpoint.to_owned());
    }
    let list = client.list_deployments(scope).await?;
    match list.into_iter().find(|d| d.slug == endpoint) {
        Some(d) => Ok(d.id),
        None => bail!("no endpoint {endpoint:?} in this project (`arkor endpoints list`)"),
    }
}

fn print_usage(d: &DeploymentDto, serving: bool) {
    let base = if serving { d.url.clone() } else { None };
    let base = base.unwrap_or_else(|| format!("<backend>/endpoints/{}/v1", d.slug));
    println!("OpenAI base URL: {base}");
    if !serving {
        println!(
            "No backend is running for this data dir: the endpoint answers while `arkor server` \
             or `arkor dev` runs."
        );
    }
    if d.auth_mode == arkor::AuthMode::FixedApiKey {
        println!("Calls need a key: arkor endpoints keys create {} --label NAME", d.slug);
    }
    println!(
        "Try: curl {base}/chat/completions -H 'Content-Type: application/json'{} -d \
         '{{\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'",
        if d.auth_mode == arkor::AuthMode::FixedApiKey {
            " -H 'Authorization: Bearer YOUR_API_KEY'"
        } else {
            ""
        }
    );
}
