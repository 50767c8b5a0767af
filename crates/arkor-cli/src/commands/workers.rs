//! `arkor worker` (train a backend's jobs on this machine) and `arkor workers` (the tokens
//! those workers use, managed on the backend's machine against its database).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use arkor_server::remote_worker::{RemoteWorkerConfig, run as run_remote};
use arkor_server::store::Store;

use arkor_engine::device::DeviceChoice;

use crate::args::{RemoteWorkerArgs, WorkerDevice, WorkersCommand, WorkersDbArgs};
use crate::config::Global;

pub fn run_worker(global: &Global, args: RemoteWorkerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    let device = match (global.device, args.device) {
        (DeviceChoice::Cpu, _) | (_, WorkerDevice::Cpu) => DeviceChoice::Cpu,
        (_, WorkerDevice::Cuda) => {
            // The training child picks the GPU by itself (auto); this makes sure there is one.
            DeviceChoice::Cuda(0).open().map_err(|e| anyhow::anyhow!("--device cuda: {e}"))?;
            DeviceChoice::Auto
        }
        (_, WorkerDevice::Auto) => DeviceChoice::Auto,
    };
    let config = RemoteWorkerConfig {
        backend: args.backend.clone(),
        token: args.token,
        work_dir: args.work_dir.unwrap_or_else(|| global.data_dir.join("worker")),
        data_dir: global.data_dir.clone(),
        worker: super::server::worker_command(device)?,
        max_jobs: args.max_jobs,
        labels: args.labels.clone(),
        cancel_grace: Duration::from_secs(args.cancel_grace),
    };
    let on = if device == DeviceChoice::Cpu { "on the CPU" } else { "on a GPU if there is one" };
    println!("arkor worker: leasing jobs from {} ({} at once, {on})", args.backend, args.max_jobs);
    runtime.block_on(run_remote(config, stopped()))?;
    eprintln!("arkor worker: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM (a supervisor stopping the worker).
async fn stopped() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

pub fn run(global: &Global, cmd: WorkersCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    runtime.block_on(async {
        match cmd {
            WorkersCommand::Add(a) => {
                check_name(&a.name)?;
                let store = open(global, &a.db).await?;
                let Some(token) = store.add_worker(&a.name).await? else {
                    bail!("a worker named \"{}\" exists already (`arkor workers list`)", a.name);
                };
                println!("{token}");
                eprintln!(
                    "worker \"{}\" added; the token above is shown once. On the worker's machine:\n  \
                     arkor worker --backend http://<this host>:4100 --token <token>",
                    a.name
                );
            }
            WorkersCommand::List(db) => {
                let store = open(global, &db).await?;
                let workers = store.workers().await?;
                if workers.is_empty() {
                    println!("no workers; add one with `arkor workers add NAME`");
                }
                for w in workers {
                    let seen = w.last_seen_at.map_or("never".to_owned(), when);
                    let revoked =
                        w.revoked_at.map(|t| format!("  revoked {}", when(t))).unwrap_or_default();
                    println!("{:<24} created {}  last seen {seen}{revoked}", w.name, when(w.created_at));
                }
            }
            WorkersCommand::Revoke(a) => {
                let store = open(global, &a.db).await?;
                if !store.revoke_worker(&a.name).await? {
                    bail!("no active worker named \"{}\" (`arkor workers list`)", a.name);
                }
                println!(
                    "worker \"{}\" revoked: its next request is refused and its jobs are requeued",
                    a.name
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn open(global: &Global, db: &WorkersDbArgs) -> anyhow::Result<Store> {
    let database = super::server::database(db.database.as_deref())?;
    std::fs::create_dir_all(&global.data_dir)
        .with_context(|| format!("cannot create {}", global.data_dir.display()))?;
    Store::open(&database, &global.data_dir.join("arkor.db"))
        .await
        .context("failed to open the backend's database")
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("invalid worker name {name:?}: expected 1-64 letters, digits, '-', '_' or '.'");
    }
    Ok(())
}

fn when(ms: i64) -> String {
    arkor_server::util::iso(ms)
}
