//! Studio's local server (`arkor dev`): the web UI's only way to the backend.
//!
//! Every request goes through, in this order:
//! 1. the **Host guard**: `Host` must be `127.0.0.1` or `localhost` (any port), else 403
//!    before anything is served, so a DNS-rebinding page never sees HTML with the token;
//! 2. on `/api/*`, the **per-launch token** (32 random bytes, base64url), injected into
//!    served HTML as `<meta name="arkor-studio-token">` and required back as
//!    `X-Arkor-Studio-Token`; only `GET /api/jobs/:id/events` (an `EventSource`, which
//!    cannot set headers) may pass it as `?studioToken=`. Compared in constant time.
//!
//! No CORS headers are ever sent. The token is also written to `<home>/studio-token`
//! (mode 0600) for the front end's dev server, and removed on shutdown.
//!
//! The `/api` routes call the backend with the user's credentials (read per request) in
//! the project's scope (`.arkor/state.json`), streaming answers through.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use rand::Rng;

mod api;
mod guard;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}
/// The web UI built into this binary (empty when built with `ARKOR_STUDIO_SKIP_UI`).
pub(crate) use embedded::ASSETS as EMBEDDED;

/// Whether this binary carries the web UI.
pub fn has_embedded_ui() -> bool {
    !EMBEDDED.is_empty()
}

/// How to start Studio.
#[derive(Clone, Debug)]
pub struct StudioConfig {
    /// Port asked for; `None` tries 4000 and the next 10 ports.
    pub port: Option<u16>,
    /// The user's project (where `arkor start` runs and `.arkor/state.json` lives).
    pub project_dir: PathBuf,
    /// arkor's home (`credentials.json`, `studio-token`).
    pub home: PathBuf,
    /// The backend's base URL.
    pub backend_url: String,
    /// The `arkor` executable (for `/api/train`).
    pub arkor_exe: PathBuf,
    /// Serve the web UI from this folder (`index.html` and assets) instead of the one built
    /// into the binary.
    pub assets: Option<PathBuf>,
}

/// Why Studio did not start.
#[derive(Debug, thiserror::Error)]
pub enum StudioError {
    /// The explicit port is taken, or every fallback port is.
    #[error("cannot listen on 127.0.0.1:{port}: {source}{hint}")]
    Bind {
        /// The last port tried.
        port: u16,
        /// The OS error.
        source: std::io::Error,
        /// What to do.
        hint: &'static str,
    },
    /// The token file could not be written.
    #[error("failed to write {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Default port.
pub const DEFAULT_PORT: u16 = 4000;

/// A running Studio server.
pub struct Studio {
    addr: SocketAddr,
    token: String,
    token_file: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
    state: Arc<State>,
}

/// Shared by the handlers.
pub(crate) struct State {
    pub config: StudioConfig,
    pub token: String,
    pub http: reqwest::Client,
    pub children: api::Children,
}

impl Studio {
    /// Binds (with the port fallback), writes the token file, serves.
    pub async fn start(config: StudioConfig) -> Result<Studio, StudioError> {
        let listener = bind(config.port).await?;
        let addr = listener.local_addr().map_err(|source| StudioError::Bind {
            port: 0,
            source,
            hint: "",
        })?;
        let bytes: [u8; 32] = rand::rng().random();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let token_file = config.home.join("studio-token");
        arkor::write_private(&token_file, &token)
            .map_err(|source| StudioError::TokenFile { path: token_file.clone(), source })?;
        let state = Arc::new(State {
            config,
            token: token.clone(),
            http: reqwest::Client::new(),
            children: api::Children::default(),
        });
        let app = api::router(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served_state = state.clone();
        let served = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                eprintln!("arkor studio: {e}");
            }
            served_state.children.kill_all();
        });
        Ok(Studio { addr, token, token_file, shutdown: Some(tx), served, state })
    }

    /// `http://localhost:<port>`.
    pub fn url(&self) -> String {
        format!("http://localhost:{}", self.addr.port())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The per-launch token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Stops serving, kills `/api/train` and `/api/manifest` children, removes the token
    /// file. The children go first: graceful shutdown waits for the requests they serve.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.state.children.kill_all();
        if tokio::time::timeout(std::time::Duration::from_secs(3), &mut self.served).await.is_err()
        {
            self.served.abort();
        }
        let _ = std::fs::remove_file(&self.token_file);
    }
}

async fn bind(port: Option<u16>) -> Result<tokio::net::TcpListener, StudioError> {
    if let Some(p) = port {
        return tokio::net::TcpListener::bind(("127.0.0.1", p)).await.map_err(|source| {
            StudioError::Bind {
                port: p,
                source,
                hint: "; pick another --port, or leave it out to use the first free port from 4000",
            }
        });
    }
    let mut last = None;
    for p in DEFAULT_PORT..=DEFAULT_PORT + 10 {
        match tokio::net::TcpListener::bind(("127.0.0.1", p)).await {
            Ok(l) => return Ok(l),
            Err(e) => {
                eprintln!("warning: port {p} is busy, trying {}", p + 1);
                last = Some((p, e));
            }
        }
    }
    let (port, source) = last.expect("tried at least one port");
    Err(StudioError::Bind { port, source, hint: "; ports 4000-4010 are all busy: pass --port" })
}
