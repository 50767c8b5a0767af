//! `arkor dev`: Studio on localhost, with the data dir's backend (running or embedded).

use std::process::ExitCode;

use anyhow::Context;
use arkor_studio::{Studio, StudioConfig};

use crate::args::DevArgs;
use crate::config::Global;

pub fn run(global: &Global, args: DevArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    runtime.block_on(async {
        let (backend_url, embedded) = super::server::local_backend(global).await?;
        let config = StudioConfig {
            port: args.port,
            project_dir: std::env::current_dir().context("cannot read the current directory")?,
            home: global.data_dir.clone(),
            backend_url: backend_url.clone(),
            arkor_exe: std::env::current_exe().context("cannot find the arkor executable")?,
            assets: global.studio_assets.clone(),
        };
        let studio = match Studio::start(config).await {
            Ok(s) => s,
            Err(e) => {
                if let Some(b) = embedded {
                    b.shutdown().await;
                }
                return Err(e.into());
            }
        };
        println!("Arkor Studio running on {}", studio.url());
        println!("backend: {backend_url}{}", if embedded.is_some() { " (embedded)" } else { "" });
        if args.open {
            let _ = std::process::Command::new("xdg-open").arg(studio.url()).spawn();
        }
        if !arkor_studio::has_embedded_ui() && global.studio_assets.is_none() {
            eprintln!(
                "warning: this arkor was built without Studio's web UI (ARKOR_STUDIO_SKIP_UI); the page only says so"
            );
        }
        stopped().await?;
        studio.shutdown().await;
        if let Some(b) = embedded {
            b.shutdown().await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C, or SIGTERM on Unix (a supervisor stopping Studio): both shut down cleanly.
async fn stopped() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("failed to listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("failed to wait for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("failed to wait for Ctrl-C")?;
    Ok(())
}
