//! `arkor worker`: a process on any machine that trains the backend's queued jobs.
//!
//! It leases a job over HTTP (a long poll, [`crate::api::workers`]), downloads the job's
//! dataset when the backend holds it, and runs the same training worker process the
//! backend's own queue runs ([`crate::runner::run_worker_process`]) in its work directory.
//! While the job runs it heartbeats (a cancel asked by the job's owner comes back in the
//! answer), posts each event with the lease's token and a sequence number (retried until
//! the backend answers, so a restarted backend loses nothing), and uploads the checkpoint
//! and final adapter files before the event that names them. A lease that ends (409), a
//! revoked token (401) or a backend unreachable for a whole lease TTL kills the job's
//! process: the backend has requeued it or will.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use arkor_protocol::event::EventKind;
use reqwest::StatusCode;
use tokio::sync::{Semaphore, mpsc};

use crate::api::workers::{
    EventsRequest, HeartbeatRequest, LEASE_HEADER, LeaseGrant, LeaseRequest, LeaseStatus,
    MAX_WAIT_SECONDS, ResumePoint, SHA256_HEADER,
};
use crate::runner::{Stop, WorkerCommand, exit_event, run_worker_process};
use crate::store::LeasedEvent;

/// What `arkor worker` was started with.
#[derive(Clone, Debug)]
pub struct RemoteWorkerConfig {
    /// The backend's base URL.
    pub backend: String,
    /// A worker token (`arkor workers add` on the backend).
    pub token: String,
    /// Where job directories go (`<work dir>/jobs/<job id>-<attempt>`).
    pub work_dir: PathBuf,
    /// The data dir training workers resolve models in (the Hub cache, `arkor/tiny`).
    pub data_dir: PathBuf,
    /// The training worker executable.
    pub worker: WorkerCommand,
    /// Jobs trained at once.
    pub max_jobs: usize,
    /// What this machine has (e.g. `gpu`): jobs asking for labels run only where all are.
    pub labels: Vec<String>,
    /// Time a cancelled job gets before its process is killed.
    pub cancel_grace: Duration,
}

/// Why a call to the backend did not succeed.
#[derive(Debug)]
enum CallError {
    /// 409: the lease is not ours any more.
    Lost,
    /// 401: the token was revoked (or never valid).
    Refused(String),
    /// Another 4xx: the request itself is wrong; retrying will not help.
    Rejected(String),
    /// No answer, or a 5xx: retry.
    Unreachable(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Lost => f.write_str("the lease ended (409)"),
            CallError::Refused(m) | CallError::Rejected(m) | CallError::Unreachable(m) => {
                f.write_str(m)
            }
        }
    }
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(arkor_protocol::CLIENT_HEADER, format!("arkor/{}", arkor_protocol::VERSION))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        let resp = req.send().await.map_err(|e| CallError::Unreachable(format!("{e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<arkor_protocol::error::ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or(text);
        Err(match status {
            StatusCode::CONFLICT => CallError::Lost,
            StatusCode::UNAUTHORIZED => CallError::Refused(message),
            s if s.is_client_error() => CallError::Rejected(format!("{s}: {message}")),
            s => CallError::Unreachable(format!("{s}: {message}")),
        })
    }

    async fn lease(
        &self,
        wait_seconds: u64,
        labels: &[String],
    ) -> Result<Option<LeaseGrant>, CallError> {
        let req = self
            .request(reqwest::Method::POST, "/v1/worker/lease")
            .json(&LeaseRequest { wait_seconds, labels: labels.to_vec() })
            .timeout(Duration::from_secs(wait_seconds + 30));
        let resp = self.send(req).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        resp.json().await.map(Some).map_err(|e| CallError::Unreachable(format!("bad lease: {e}")))
    }

    async fn heartbeat(&self, job: &str, lease_token: &str) -> Result<LeaseStatus, CallError> {
        let req = self
            .request(reqwest::Method::POST, &format!("/v1/worker/jobs/{job}/heartbeat"))
            .json(&HeartbeatRequest { lease_token: lease_token.to_owned() })
            .timeout(Duration::from_secs(30));
        let resp = self.send(req).await?;
        resp.json().await.map_err(|e| CallError::Unreachable(format!("bad heartbeat answer: {e}")))
    }

    async fn events(
        &self,
        job: &str,
        lease_token: &str,
        events: &[LeasedEvent],
    ) -> Result<LeaseStatus, CallError> {
        let body = EventsRequest { lease_token: lease_token.to_owned(), events: events.to_vec() };
        let req = self
            .request(reqwest::Method::POST, &format!("/v1/worker/jobs/{job}/events"))
            .json(&body)
            .timeout(Duration::from_secs(60));
        let resp = self.send(req).await?;
        resp.json().await.map_err(|e| CallError::Unreachable(format!("bad events answer: {e}")))
    }

    async fn upload(
        &self,
        job: &str,
        lease_token: &str,
        root: &Path,
        pathname: &str,
        sha256: &str,
    ) -> Result<(), CallError> {
        let file = tokio::fs::File::open(root.join(pathname))
            .await
            .map_err(|e| CallError::Rejected(format!("cannot read {pathname}: {e}")))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let req = self
            .request(reqwest::Method::PUT, &format!("/v1/worker/jobs/{job}/files/{pathname}"))
            .header(LEASE_HEADER, lease_token)
            .header(SHA256_HEADER, sha256)
            .body(body);
        self.send(req).await.map(|_| ())
    }

    /// Downloads `GET path` (a lease-guarded file) to `dest`.
    async fn fetch(&self, path: &str, lease_token: &str, dest: &Path) -> Result<(), CallError> {
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        let req = self.request(reqwest::Method::GET, path).header(LEASE_HEADER, lease_token);
        let resp = self.send(req).await?;
        let local = |e: std::io::Error| CallError::Rejected(format!("{}: {e}", dest.display()));
        tokio::fs::create_dir_all(dest.parent().expect("in a folder")).await.map_err(local)?;
        let mut file = tokio::fs::File::create(dest).await.map_err(local)?;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| CallError::Unreachable(format!("{path} cut: {e}")))?;
            file.write_all(&chunk).await.map_err(local)?;
        }
        file.flush().await.map_err(local)
    }
}

/// Runs until `shutdown` resolves, or until the backend refuses the token (an error).
pub async fn run(
    config: RemoteWorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if config.max_jobs == 0 {
        bail!("--max-jobs must be at least 1");
    }
    let api = Arc::new(Api {
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("failed to build the HTTP client")?,
        base: config.backend.trim_end_matches('/').to_owned(),
        token: config.token.clone(),
    });
    std::fs::create_dir_all(config.work_dir.join("jobs"))
        .with_context(|| format!("cannot create {}", config.work_dir.display()))?;
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_jobs));
    let (fatal_tx, mut fatal) = mpsc::unbounded_channel::<String>();
    tokio::pin!(shutdown);
    // Set when the worker stops: each job's process is killed and the job handed back.
    let (stopping, _) = tokio::sync::watch::channel(false);
    let mut jobs = tokio::task::JoinSet::new();
    let mut backoff = Duration::from_millis(250);
    let mut reported_unreachable = false;
    let result = loop {
        while jobs.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut shutdown => break Ok(()),
            Some(m) = fatal.recv() => break Err(anyhow::anyhow!("{m}")),
            p = slots.clone().acquire_owned() => p.expect("never closed"),
        };
        let leased = tokio::select! {
            () = &mut shutdown => break Ok(()),
            Some(m) = fatal.recv() => break Err(anyhow::anyhow!("{m}")),
            r = api.lease(MAX_WAIT_SECONDS, &config.labels) => r,
        };
        match leased {
            Ok(Some(grant)) => {
                backoff = Duration::from_millis(250);
                reported_unreachable = false;
                println!(
                    "job {}: leased (attempt {}), training {}",
                    grant.job_id, grant.attempt, grant.job.config.model
                );
                let (api, config, fatal) = (api.clone(), config.clone(), fatal_tx.clone());
                let stop = stopping.subscribe();
                jobs.spawn(async move {
                    if let Some(m) = run_job(&api, &config, grant, stop).await {
                        let _ = fatal.send(m);
                    }
                    drop(permit);
                });
            }
            Ok(None) => {
                backoff = Duration::from_millis(250);
                reported_unreachable = false;
            }
            Err(CallError::Refused(m)) => {
                break Err(anyhow::anyhow!("the backend refused this worker's token: {m}"));
            }
            Err(CallError::Rejected(m)) => {
                break Err(anyhow::anyhow!("the backend refused the lease request: {m}"));
            }
            Err(e) => {
                if !reported_unreachable {
                    eprintln!("worker: cannot lease from {}: {e}; retrying", config.backend);
                    reported_unreachable = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    };
    // Stopping: every running job is killed and handed back (a refused token's jobs are
    // requeued by the backend anyway).
    let _ = stopping.send(true);
    let drain = async { while jobs.join_next().await.is_some() {} };
    if tokio::time::timeout(config.cancel_grace + Duration::from_secs(30), drain).await.is_err() {
        eprintln!("worker: jobs did not stop in time; their leases will expire");
    }
    result
}

/// Shared by a job's tasks: whether the lease is gone (then nothing more is sent).
#[derive(Default)]
struct LeaseState {
    lost: AtomicBool,
}

/// Runs one leased job to its end. Returns a message when the token was refused (the
/// worker then stops).
async fn run_job(
    api: &Api,
    config: &RemoteWorkerConfig,
    grant: LeaseGrant,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Option<String> {
    let id = grant.job_id.clone();
    let token = grant.lease_token.clone();
    let dir = config.work_dir.join("jobs").join(format!("{id}-{}", grant.attempt));
    let state = Arc::new(LeaseState::default());
    let (stop_tx, mut stop_rx) = mpsc::unbounded_channel();
    let ttl = Duration::from_millis(grant.ttl_ms);

    let heartbeat = {
        let (stop_tx, state) = (stop_tx.clone(), state.clone());
        let (id, token, every) =
            (id.clone(), token.clone(), Duration::from_millis(grant.heartbeat_ms));
        let api = api.clone();
        tokio::spawn(async move {
            let mut last_ok = Instant::now();
            loop {
                tokio::time::sleep(every).await;
                match api.heartbeat(&id, &token).await {
                    Ok(s) => {
                        last_ok = Instant::now();
                        if s.cancel {
                            let _ = stop_tx.send(Stop::Cancel);
                        }
                    }
                    Err(CallError::Unreachable(m)) if last_ok.elapsed() < ttl => {
                        eprintln!("job {id}: heartbeat failed ({m}); retrying");
                    }
                    Err(e) => {
                        eprintln!("job {id}: stopping: {e}");
                        state.lost.store(true, Ordering::SeqCst);
                        let _ = stop_tx.send(Stop::Kill);
                        return e;
                    }
                }
            }
        })
    };

    let mut job = grant.job.clone();
    if let Some(name) = &grant.dataset_file {
        let dest = dir.join("dataset").join(name);
        let url = format!("/v1/worker/jobs/{id}/dataset");
        let fetched = retry(&state, || api.fetch(&url, &token, &dest)).await;
        if let Err(e) = fetched {
            heartbeat.abort();
            let end = EventKind::Failed {
                error: format!("worker could not download the dataset: {e}"),
                step: None,
            };
            let batch = [LeasedEvent { seq: 1, event: end }];
            let _ = retry(&state, || api.events(&id, &token, &batch)).await;
            return None;
        }
        if let arkor_engine::config::DatasetConfig::Jsonl { path, .. } = &mut job.config.dataset {
            *path = dest;
        }
    }

    if let Some(resume) = &grant.resume {
        match fetch_checkpoint(api, &state, &id, &token, &dir, resume).await {
            Ok(checkpoint) => {
                println!("job {id}: resuming from step {}", resume.step);
                job.resume_from = Some(checkpoint);
            }
            // Starting over is still right, only slower.
            Err(e) => {
                eprintln!("job {id}: cannot resume from step {}: {e}; starting over", resume.step)
            }
        }
    }

    // The worker stopping: nothing more is reported, the run is killed, the job handed back.
    let handing_back = Arc::new(AtomicBool::new(false));
    let watch_stop = {
        let (stop_tx, state, handing_back) = (stop_tx.clone(), state.clone(), handing_back.clone());
        tokio::spawn(async move {
            if stopping.wait_for(|s| *s).await.is_ok() {
                handing_back.store(true, Ordering::SeqCst);
                state.lost.store(true, Ordering::SeqCst);
                let _ = stop_tx.send(Stop::Kill);
            }
        })
    };

    let (events_tx, mut events) = mpsc::unbounded_channel::<EventKind>();
    let forward = async {
        let mut seq = 0u64;
        while let Some(event) = events.recv().await {
            if state.lost.load(Ordering::SeqCst) {
                break;
            }
            seq += 1;
            if let Some(line) = progress_line(&event) {
                println!("job {id}: {line}");
            }
            let files = match &event {
                EventKind::CheckpointSaved { artifacts, .. }
                | EventKind::Completed { artifacts, .. } => artifacts.clone(),
                _ => vec![],
            };
            for f in &files {
                let up = retry(&state, || api.upload(&id, &token, &dir, &f.pathname, &f.sha256));
                if let Err(e) = up.await {
                    eprintln!("job {id}: upload of {} failed: {e}", f.pathname);
                }
            }
            let terminal = event.is_terminal();
            let batch = [LeasedEvent { seq, event }];
            match retry(&state, || api.events(&id, &token, &batch)).await {
                Ok(s) if s.cancel => {
                    let _ = stop_tx.send(Stop::Cancel);
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("job {id}: event not delivered: {e}; stopping the job");
                    state.lost.store(true, Ordering::SeqCst);
                    let _ = stop_tx.send(Stop::Kill);
                    break;
                }
            }
            if terminal {
                return true;
            }
        }
        false
    };
    let process = async {
        let exit = run_worker_process(
            &config.worker,
            &job,
            &dir,
            &config.data_dir,
            config.cancel_grace,
            &mut stop_rx,
            events_tx.clone(),
        )
        .await;
        // Reported unless the worker already ended the job (the store drops a second end).
        let _ = events_tx.send(exit_event(exit));
        drop(events_tx);
    };
    let (ended, ()) = tokio::join!(forward, process);
    heartbeat.abort();
    watch_stop.abort();
    if handing_back.load(Ordering::SeqCst) && !ended {
        let body = HeartbeatRequest { lease_token: token.clone() };
        let req = api
            .request(reqwest::Method::POST, &format!("/v1/worker/jobs/{id}/release"))
            .json(&body)
            .timeout(Duration::from_secs(10));
        match api.send(req).await {
            Ok(_) => println!("job {id}: handed back to the queue"),
            Err(e) => eprintln!("job {id}: could not hand it back ({e}); its lease will expire"),
        }
        return None;
    }
    let refused = match heartbeat.await {
        Ok(CallError::Refused(m)) => Some(format!("the backend refused this worker's token: {m}")),
        _ => None,
    };
    if ended {
        println!("job {id}: done");
    } else if state.lost.load(Ordering::SeqCst) {
        println!("job {id}: stopped (lease lost)");
    }
    refused
}

/// Downloads a checkpoint's files into the job folder, each checked against its SHA-256;
/// returns the checkpoint's folder.
async fn fetch_checkpoint(
    api: &Api,
    state: &LeaseState,
    id: &str,
    token: &str,
    dir: &Path,
    resume: &ResumePoint,
) -> Result<PathBuf, String> {
    let mut folder = None;
    for f in &resume.files {
        let dest = dir.join(&f.pathname);
        let url = format!("/v1/worker/jobs/{id}/files/{}", f.pathname);
        retry(state, || api.fetch(&url, token, &dest)).await.map_err(|e| e.to_string())?;
        let (size, sha) = crate::util::file_digest(&dest).map_err(|e| e.to_string())?;
        if size != f.size || sha != f.sha256 {
            return Err(format!("{} arrived with SHA-256 {sha}, not {}", f.pathname, f.sha256));
        }
        folder = dest.parent().map(Path::to_owned);
    }
    folder.ok_or_else(|| "the checkpoint has no files".to_owned())
}

/// Retries while the backend is unreachable, until the lease is declared lost.
async fn retry<T, F, Fut>(state: &LeaseState, mut call: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let mut wait = Duration::from_millis(200);
    loop {
        match call().await {
            Err(CallError::Unreachable(m)) => {
                if state.lost.load(Ordering::SeqCst) {
                    return Err(CallError::Unreachable(m));
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(3));
            }
            other => return other,
        }
    }
}

fn progress_line(event: &EventKind) -> Option<String> {
    match event {
        EventKind::Started { metadata } => {
            Some(format!("started, {} steps", metadata.as_ref().map_or(0, |m| m.total_steps)))
        }
        EventKind::Log { step, loss: Some(loss), total_steps, .. } => {
            Some(format!("step {step}/{}: loss {loss:.4}", total_steps.unwrap_or(0)))
        }
        EventKind::CheckpointSaved { step, .. } => Some(format!("checkpoint at step {step}")),
        EventKind::Completed { .. } => Some("completed".to_owned()),
        EventKind::Failed { error, .. } => Some(format!("failed: {error}")),
        EventKind::Cancelled { .. } => Some("cancelled".to_owned()),
        _ => None,
    }
}
