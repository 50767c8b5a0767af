//! `arkor start`: build, find or start a backend, run the trainer binary against it.

use std::process::ExitCode;

use anyhow::Context;

use crate::args::StartArgs;
use crate::config::Global;

pub fn run(global: &Global, args: StartArgs) -> anyhow::Result<ExitCode> {
    let dir = super::build::project_dir(args.entry.as_deref())?;
    // Always build: cargo is incremental, and a stale binary would train old code.
    let binary = super::build::build(&dir)?;
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    runtime.block_on(async {
        let (url, embedded) = super::server::local_backend(global).await?;
        eprintln!(
            "backend: {url}{}",
            if embedded.is_some() { " (embedded; stops with this command)" } else { "" }
        );
        let mut cmd = tokio::process::Command::new(&binary);
        cmd.arg("run")
            .current_dir(&dir)
            .env("ARKOR_BACKEND_URL", &url)
            .env("ARKOR_DATA_DIR", &global.data_dir);
        if let Some(t) = &args.trainer {
            cmd.args(["--trainer", t]);
        }
        let mut child =
            cmd.spawn().with_context(|| format!("failed to run {}", binary.display()))?;
        // Ctrl-C reaches the trainer too (same process group): it cancels the job and
        // exits once the job has stopped. Stay alive meanwhile, so an embedded backend can
        // finish the cancellation.
        let hold = tokio::spawn(async { while tokio::signal::ctrl_c().await.is_ok() {} });
        let status = child.wait().await?;
        hold.abort();
        if let Some(b) = embedded {
            b.shutdown().await;
        }
        Ok(match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(code.clamp(1, 255) as u8),
            None => ExitCode::FAILURE,
        })
    })
}
