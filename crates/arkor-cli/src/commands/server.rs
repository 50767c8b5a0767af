//! `arkor server`: the backend in the foreground until Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use arkor_engine::device::DeviceChoice;
use arkor_server::store::{Database, PgUrl};
use arkor_server::{Backend, ServerConfig, WorkerCommand};

use crate::args::ServerArgs;
use crate::config::Global;

pub fn run(global: &Global, args: ServerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    runtime.block_on(async {
        let mut config =
            ServerConfig::new(global.data_dir.clone(), args.port, worker_command(global.device)?);
        config.addr = std::net::SocketAddr::new(args.host, args.port);
        config.max_concurrent_jobs = args.max_jobs;
        config.cancel_grace = Duration::from_secs(args.cancel_grace);
        config.device = global.device;
        config.endpoint_domain = args.endpoint_domain.clone();
        config.max_loaded_models = args.max_loaded_models;
        config.max_batch = args.max_batch;
        config.database = database(args.database.as_deref())?;
        config.artifacts = args.artifacts.clone();
        config.lease = arkor_server::store::LeaseTerms {
            ttl_ms: (args.lease_ttl * 1000) as i64,
            max_attempts: args.lease_attempts,
            backoff_ms: (args.lease_backoff * 1000) as i64,
        };
        if !args.host.is_loopback() {
            eprintln!(
                "warning: listening on {}: anyone who can reach this address and holds a token \
                 can train and chat",
                args.host
            );
        }
        let config_database = config.database.clone();
        let backend = Backend::start(config).await?;
        println!("arkor backend listening on {}", backend.url());
        println!("data dir: {}", global.data_dir.display());
        if let Database::Postgres(url) = &config_database {
            println!("database: {}", url.describe());
        }
        if let Some(bucket) = &args.artifacts {
            println!("artifacts: {bucket} (cached in the data dir)");
        }
        tokio::signal::ctrl_c().await.context("failed to wait for Ctrl-C")?;
        eprintln!("shutting down");
        backend.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The database `--database` (or `ARKOR_DATABASE_URL`) names, SQLite in the data dir without.
pub fn database(url: Option<&str>) -> anyhow::Result<Database> {
    let Some(url) = url else { return Ok(Database::DataDir) };
    let url: PgUrl = url
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid --database (or ARKOR_DATABASE_URL): {e}"))?;
    Ok(Database::Postgres(Box::new(url)))
}

/// This executable, re-run with the hidden worker subcommand (and `--cpu` when this process
/// was told to keep off the GPU: training runs in that child).
pub fn worker_command(device: DeviceChoice) -> anyhow::Result<WorkerCommand> {
    let program = std::env::current_exe().context("cannot find the arkor executable")?;
    let mut args = vec!["__worker".to_owned()];
    if device == DeviceChoice::Cpu {
        args.push("--cpu".to_owned());
    }
    Ok(WorkerCommand { program, args })
}

/// The backend of the data dir: the running one, or one started in this process (which
/// stops when the returned `Backend` is shut down).
pub async fn local_backend(global: &Global) -> anyhow::Result<(String, Option<Backend>)> {
    if let Some(found) = arkor_server::discover(&global.data_dir) {
        return Ok((found.url, None));
    }
    let mut config = ServerConfig::new(global.data_dir.clone(), 0, worker_command(global.device)?);
    config.device = global.device;
    let backend = Backend::start(config).await?;
    Ok((backend.url(), Some(backend)))
}
