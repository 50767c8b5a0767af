//! arkor's backend: the `/v1` HTTP API over a SQLite store, a job queue that runs each
//! training job in its own worker process, a persisted event log streamed as SSE, the
//! artifacts on disk, and an inference service (OpenAI-compatible too).
//!
//! [`Backend::start`] runs it inside the calling process (what `arkor dev` and `arkor
//! start` do when no backend is running) or as `arkor server`. One backend per data
//! directory: it holds `backend.lock` and advertises itself in `backend.json`
//! ([`discover`]).
//!
//! Data directory layout:
//! - `arkor.db` (+ WAL files): orgs, users, hashed tokens, projects, jobs, events;
//! - `jobs/<job id>/`: `job.json`, `worker.log`, `checkpoint-<step>/`, `final/` (a remote
//!   worker's job holds only what the worker uploaded: its checkpoints and `final/`);
//! - `datasets/<org id>/<sha256>.<ext>`: uploaded datasets;
//! - `models/`: generated models (`arkor/tiny`);
//! - `backend.lock`, `backend.json`.
//!
//! With `--artifacts s3://bucket/prefix` the data directory caches a bucket that holds the
//! datasets and every job's adapters, checkpoints, exports and evaluations
//! ([`artifacts`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arkor_engine::device::DeviceChoice;
use serde::{Deserialize, Serialize};

pub mod api;
pub mod artifacts;
pub mod evals;
pub mod exports;
pub mod inference;
pub mod inspector;
pub mod jobconfig;
pub mod remote_worker;
pub mod resolve;
pub mod runner;
pub mod store;
pub mod tasks;
pub mod util;
pub mod worker;

pub use runner::WorkerCommand;

/// Everything a backend needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Address to bind; port 0 picks a free one.
    pub addr: SocketAddr,
    /// How to start a training worker.
    pub worker: WorkerCommand,
    /// Training jobs run at once (default 1); 0 queues jobs without running them.
    pub max_concurrent_jobs: usize,
    /// Time a cancelled worker gets before it is killed.
    pub cancel_grace: Duration,
    /// Interval of SSE `ping` frames.
    pub keepalive: Duration,
    /// Device of the inference service.
    pub device: DeviceChoice,
    /// Whether job configs may name files on the backend's disk (a local dataset path, a
    /// model directory). Default: only when bound to loopback; a shared backend takes
    /// uploaded datasets (`POST /v1/datasets`) and Hub ids only.
    pub local_paths: Option<bool>,
    /// Serve endpoint `<slug>` on the host `<slug>.<domain>` too (`--endpoint-domain`).
    pub endpoint_domain: Option<String>,
    /// Base models kept loaded for chat and endpoints at once (least recently used goes).
    pub max_loaded_models: usize,
    /// Concurrent requests on one base model decoded together at most (more wait for a
    /// place); 1 decodes one request at a time.
    pub max_batch: usize,
    /// Where jobs, events, identities and endpoints are stored (`--database`): SQLite in the
    /// data directory by default, or PostgreSQL. Files (datasets, adapters, exports) live in
    /// the data directory either way, and in the bucket of [`ServerConfig::artifacts`].
    pub database: store::Database,
    /// Remote workers' leases (`arkor worker`): TTL, attempts, backoff.
    pub lease: store::LeaseTerms,
    /// An S3-compatible bucket for datasets and job artifacts (`--artifacts
    /// s3://bucket/prefix`), with the data directory as its cache; `None` keeps them in the
    /// data directory only.
    pub artifacts: Option<String>,
}

/// 90 s leases, 3 attempts, 10 s backoff doubled per attempt.
pub const DEFAULT_LEASE: store::LeaseTerms =
    store::LeaseTerms { ttl_ms: 90_000, max_attempts: 3, backoff_ms: 10_000 };

impl ServerConfig {
    /// Defaults: loopback on `port`, one job at a time, 30 s cancel grace, 15 s pings.
    pub fn new(data_dir: PathBuf, port: u16, worker: WorkerCommand) -> Self {
        ServerConfig {
            data_dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            worker,
            max_concurrent_jobs: 1,
            cancel_grace: Duration::from_secs(30),
            keepalive: Duration::from_secs(15),
            device: DeviceChoice::Auto,
            local_paths: None,
            endpoint_domain: None,
            max_loaded_models: 2,
            max_batch: 16,
            database: store::Database::DataDir,
            lease: DEFAULT_LEASE,
            artifacts: None,
        }
    }
}

/// Shared state of the handlers.
pub struct AppState {
    pub store: store::Store,
    pub runner: Arc<runner::Runner>,
    pub inference: Arc<inference::Inference>,
    /// The last dataset inspected (`POST /v1/datasets/inspect`).
    pub inspector: Arc<inspector::Inspector>,
    pub keepalive: Duration,
    /// See [`ServerConfig::local_paths`].
    pub local_paths: bool,
    /// `<data>/datasets`: uploads, one folder per organisation.
    pub datasets_dir: PathBuf,
    /// Exports and evaluations this backend is running.
    pub tasks: Arc<tasks::LiveTasks>,
    /// See [`ServerConfig::endpoint_domain`] (lowercase, no leading dot).
    pub endpoint_domain: Option<String>,
    /// See [`ServerConfig::lease`].
    pub lease: store::LeaseTerms,
    /// The data directory, and the bucket behind it (`--artifacts`).
    pub artifacts: Arc<artifacts::Artifacts>,
}

/// What `backend.json` says about the running backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Discovery {
    /// Base URL, e.g. `http://127.0.0.1:4100`.
    pub url: String,
    /// Process id of the backend.
    pub pid: u32,
    /// arkor version of the backend.
    pub version: String,
}

/// Why a backend did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another process holds the data directory.
    #[error(
        "another arkor backend is already running for {data_dir}{at}; use it, or stop it first",
        at = running.as_ref().map(|d| format!(" at {} (pid {})", d.url, d.pid)).unwrap_or_default()
    )]
    AlreadyRunning {
        /// The data directory.
        data_dir: PathBuf,
        /// What its discovery file says.
        running: Option<Discovery>,
    },
    /// The address is taken or not bindable.
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The data directory or the database cannot be used.
    #[error("failed to open the data directory {path}: {message}")]
    DataDir {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The bucket (`--artifacts`) cannot be used.
    #[error("failed to open the artifact store (--artifacts): {message}")]
    Artifacts {
        /// What went wrong, with its causes.
        message: String,
    },
    /// The PostgreSQL database (`--database`) cannot be reached or migrated.
    #[error("failed to open the database {database} (--database): {message}")]
    Database {
        /// The database, without its password.
        database: String,
        /// What went wrong.
        message: String,
    },
}

/// The backend a running process advertises for `data_dir`, if one is running.
pub fn discover(data_dir: &Path) -> Option<Discovery> {
    let lock = std::fs::OpenOptions::new().write(true).open(data_dir.join("backend.lock")).ok()?;
    // A lock we can take means nobody holds it: the discovery file is stale.
    if lock.try_lock().is_ok() {
        return None;
    }
    let text = std::fs::read_to_string(data_dir.join("backend.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// A running backend. Dropping it does not stop it; call [`Backend::shutdown`].
pub struct Backend {
    addr: SocketAddr,
    data_dir: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
    _lock: std::fs::File,
}

impl Backend {
    /// Takes the data directory, recovers jobs orphaned by a dead backend, binds and serves.
    pub async fn start(config: ServerConfig) -> Result<Backend, StartError> {
        let data_err =
            |message: String| StartError::DataDir { path: config.data_dir.clone(), message };
        std::fs::create_dir_all(config.data_dir.join("jobs"))
            .map_err(|e| data_err(e.to_string()))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(config.data_dir.join("backend.lock"))
            .map_err(|e| data_err(e.to_string()))?;
        if lock.try_lock().is_err() {
            let running = std::fs::read_to_string(config.data_dir.join("backend.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            return Err(StartError::AlreadyRunning { data_dir: config.data_dir.clone(), running });
        }
        let store_err = |e: store::StoreError| match &config.database {
            store::Database::DataDir => data_err(e.to_string()),
            store::Database::Postgres(url) => {
                StartError::Database { database: url.describe(), message: e.to_string() }
            }
        };
        let store = store::Store::open(&config.database, &config.data_dir.join("arkor.db"))
            .await
            .map_err(store_err)?;
        let artifacts = Arc::new(match &config.artifacts {
            Some(url) => artifacts::Artifacts::open(config.data_dir.clone(), url)
                .await
                .map_err(|e| StartError::Artifacts { message: artifacts::describe(&e) })?,
            None => artifacts::Artifacts::local(config.data_dir.clone()),
        });
        let runner = runner::Runner::new(
            store.clone(),
            runner::RunnerConfig {
                artifacts: artifacts.clone(),
                jobs_dir: config.data_dir.join("jobs"),
                data_dir: config.data_dir.clone(),
                worker: config.worker.clone(),
                max_concurrent: config.max_concurrent_jobs,
                cancel_grace: config.cancel_grace,
            },
        );
        let recovered = runner.recover().await.map_err(store_err)?;
        if recovered > 0 {
            eprintln!(
                "arkor server: marked {recovered} job(s) failed that were running when the \
                 previous backend stopped"
            );
        }
        let inference = Arc::new(inference::Inference::new(
            config.data_dir.clone(),
            arkor_hub::HubOptions { progress: false, ..arkor_hub::HubOptions::from_env() },
            config.device,
            config.max_loaded_models,
            config.max_batch,
        ));
        let inspector = Arc::new(inspector::Inspector::new(
            config.data_dir.clone(),
            arkor_hub::HubOptions::from_env(),
        ));
        let state = Arc::new(AppState {
            store,
            runner: runner.clone(),
            inference,
            inspector,
            keepalive: config.keepalive,
            local_paths: config.local_paths.unwrap_or(config.addr.ip().is_loopback()),
            datasets_dir: config.data_dir.join("datasets"),
            tasks: Arc::default(),
            endpoint_domain: config
                .endpoint_domain
                .as_deref()
                .map(|d| d.trim().trim_start_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty()),
            lease: config.lease,
            artifacts,
        });
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind { addr: config.addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr: config.addr, source })?;
        let discovery = Discovery {
            url: format!("http://{addr}"),
            pid: std::process::id(),
            version: arkor_protocol::VERSION.to_owned(),
        };
        let json = serde_json::to_string_pretty(&discovery).expect("serialises");
        std::fs::write(config.data_dir.join("backend.json"), json)
            .map_err(|e| data_err(e.to_string()))?;
        let queue = tokio::spawn(runner.clone().run_queue());
        let reap_every = Duration::from_millis((config.lease.ttl_ms / 6).clamp(200, 15_000) as u64);
        let reaper = tokio::spawn(runner.reap_leases(config.lease, reap_every));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = api::router(state);
        let served = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                eprintln!("arkor server: {e}");
            }
            queue.abort();
            reaper.abort();
        });
        Ok(Backend { addr, data_dir: config.data_dir, shutdown: Some(tx), served, _lock: lock })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL of the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, waits for open ones, removes `backend.json`.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Open event streams never end on their own: give requests a moment, then stop.
        if tokio::time::timeout(Duration::from_secs(3), &mut self.served).await.is_err() {
            self.served.abort();
        }
        let _ = std::fs::remove_file(self.data_dir.join("backend.json"));
    }

    /// Serves until the task ends (used by `arkor server`).
    pub async fn wait(&mut self) {
        let _ = (&mut self.served).await;
    }
}
