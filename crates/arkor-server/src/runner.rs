//! The job queue, the worker processes and the event fan-out.
//!
//! Every event goes through [`Runner::record`]: persisted first (with its monotonic id),
//! then broadcast to the job's live subscribers. Subscribers read the persisted history
//! and then the broadcast, deduplicating by id, so a stream never has a gap or a
//! duplicate (see [`crate::api::events`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arkor_protocol::event::{EventKind, StoredEvent};
use arkor_protocol::job::ArtifactFile;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, broadcast, mpsc};

use crate::artifacts::Artifacts;
use crate::store::{Expired, LeaseTerms, Store, StoreResult};
use crate::worker::{JOB_FILE, JobFile};

/// How the backend starts a worker: `program args... --job-dir D --data-dir D`.
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    /// Usually the `arkor` executable.
    pub program: PathBuf,
    /// Usually `["__worker"]`.
    pub args: Vec<String>,
}

/// Queue settings.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Where job directories live (`<data>/jobs`).
    pub jobs_dir: PathBuf,
    /// Data dir passed to workers.
    pub data_dir: PathBuf,
    /// The worker executable.
    pub worker: WorkerCommand,
    /// Training jobs run at once; 0 accepts jobs but starts none (a paused queue).
    pub max_concurrent: usize,
    /// Time a worker gets to stop after `cancel` before it is killed.
    pub cancel_grace: Duration,
    /// Where the adapters a worker writes are copied before their events are persisted.
    pub artifacts: Arc<Artifacts>,
}

/// Owner of the queue and the running workers.
pub struct Runner {
    store: Store,
    config: RunnerConfig,
    channels: Mutex<HashMap<String, broadcast::Sender<StoredEvent>>>,
    running: Mutex<HashMap<String, mpsc::UnboundedSender<Stop>>>,
    wake: Notify,
    lease_wake: Notify,
}

impl Runner {
    /// Creates the runner; [`Runner::recover`] and [`Runner::run_queue`] start it.
    pub fn new(store: Store, config: RunnerConfig) -> Arc<Runner> {
        Arc::new(Runner {
            store,
            config,
            channels: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            lease_wake: Notify::new(),
        })
    }

    /// The `arkor` executable workers and exports run.
    pub fn program(&self) -> &Path {
        &self.config.worker.program
    }

    /// The data dir workers and exports are given.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// A job's directory: adapters, checkpoints, exports, the worker's log.
    pub fn job_dir(&self, job_id: &str) -> PathBuf {
        self.config.jobs_dir.join(job_id)
    }

    /// Persists an event, updates the job, then broadcasts it. `None` when the job was
    /// already terminal (the event is dropped).
    pub async fn record(&self, job_id: &str, kind: EventKind) -> StoreResult<Option<StoredEvent>> {
        let stored = self.store.append_event(job_id, &kind).await?;
        if let Some(ev) = &stored {
            self.publish(job_id, ev);
        }
        Ok(stored)
    }

    /// Broadcasts an event already persisted (by [`Runner::record`], or by the store for a
    /// remote worker's lease) to the job's live subscribers.
    pub fn publish(&self, job_id: &str, ev: &StoredEvent) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = channels.get(job_id) {
            let _ = tx.send(ev.clone());
        }
        if ev.event.kind.is_terminal() {
            channels.remove(job_id);
            self.wake.notify_one();
        }
    }

    /// A receiver of the job's future events (subscribe before reading history).
    pub fn subscribe(&self, job_id: &str) -> broadcast::Receiver<StoredEvent> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.entry(job_id.to_owned()).or_insert_with(|| broadcast::channel(1024).0).subscribe()
    }

    /// Drops the job's channel when nobody listens (subscribers recreate it).
    pub fn release(&self, job_id: &str) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if channels.get(job_id).is_some_and(|tx| tx.receiver_count() == 0) {
            channels.remove(job_id);
        }
    }

    /// Wakes the queue and the remote workers' long polls (a job was submitted).
    pub fn notify(&self) {
        self.wake.notify_one();
        self.lease_wake.notify_waiters();
    }

    /// Woken when a job may be leased: a submission or a requeue.
    pub fn lease_wake(&self) -> &Notify {
        &self.lease_wake
    }

    /// Asks a job to stop. Queued jobs are cancelled at once; running ones get `cancel` on
    /// the worker's stdin and are killed after the grace period. `Ok(false)` when the job
    /// is already terminal.
    pub async fn cancel(&self, job_id: &str) -> StoreResult<bool> {
        let sender = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(job_id).cloned();
        if let Some(tx) = sender {
            let _ = tx.send(Stop::Cancel);
            return Ok(true);
        }
        // Leased by a remote worker: it learns at its next heartbeat or event post, and if
        // it never does, the lease expires into `cancelled`.
        if self.store.request_cancel(job_id).await? {
            return Ok(true);
        }
        // Not running here: queued (or between states); a terminal job records nothing.
        Ok(self.record(job_id, EventKind::Cancelled { step: None }).await?.is_some())
    }

    /// At startup: jobs left `running` by a backend that died are failed (their workers
    /// cancel themselves when their stdin closes). Queued jobs stay queued; jobs leased by
    /// remote workers keep their leases (the workers retry until the backend answers).
    pub async fn recover(&self) -> StoreResult<usize> {
        let ids = self.store.unleased_running().await?;
        for id in &ids {
            let error = "the backend stopped while this job was running; its saved checkpoints \
                         are kept. Submit the job again to retrain."
                .to_owned();
            self.record(id, EventKind::Failed { error, step: None }).await?;
        }
        Ok(ids.len())
    }

    /// Every `every`, handles the remote workers' expired leases: requeued jobs wake the
    /// long polls, ended ones reach their subscribers. Runs until the process ends.
    pub async fn reap_leases(self: Arc<Self>, terms: LeaseTerms, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            match self.store.expire_leases(terms).await {
                Ok(expired) => {
                    for e in expired {
                        match e {
                            Expired::Requeued { job_id, worker, attempt } => {
                                eprintln!(
                                    "arkor server: job {job_id}: worker \"{worker}\" lost its \
                                     lease (attempt {attempt}); requeued"
                                );
                                self.lease_wake.notify_waiters();
                                self.wake.notify_one();
                            }
                            Expired::Ended { job_id, event } => self.publish(&job_id, &event),
                        }
                    }
                }
                Err(e) => eprintln!("arkor server: lease reaper: {e}"),
            }
        }
    }

    /// Starts queued jobs while there are free slots; runs until the process ends.
    pub async fn run_queue(self: Arc<Self>) {
        loop {
            loop {
                let busy = self.running.lock().unwrap_or_else(|p| p.into_inner()).len();
                if busy >= self.config.max_concurrent {
                    break;
                }
                match self.store.claim_next().await {
                    Ok(Some(job)) => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        self.running
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(job.id.clone(), tx);
                        let me = self.clone();
                        tokio::spawn(async move {
                            let id = job.id.clone();
                            me.run_job(&id, rx).await;
                            me.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                            me.wake.notify_one();
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("arkor server: queue: {e}");
                        break;
                    }
                }
            }
            // Polling as a safety net; submissions and job ends wake it at once.
            let _ = tokio::time::timeout(Duration::from_secs(2), self.wake.notified()).await;
        }
    }

    async fn run_job(&self, job_id: &str, mut stop_rx: mpsc::UnboundedReceiver<Stop>) {
        let outcome = self.supervise(job_id, &mut stop_rx).await;
        let end = exit_event(outcome);
        // A no-op when the worker already reported a terminal event.
        if let Err(e) = self.record(job_id, end).await {
            eprintln!("arkor server: job {job_id}: {e}");
        }
    }

    async fn supervise(
        &self,
        job_id: &str,
        stop_rx: &mut mpsc::UnboundedReceiver<Stop>,
    ) -> anyhow::Result<Exit> {
        let id = job_id.to_owned();
        let job =
            self.store.job(&id).await?.ok_or_else(|| anyhow::anyhow!("job {job_id} vanished"))?;
        let c = &self.config;
        // An uploaded dataset this data directory lost is in the bucket.
        c.artifacts.fetch_dataset(&job.config).await?;
        let config = crate::jobconfig::to_train_config(&job.name, &job.config)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let dir = self.job_dir(job_id);
        let file = JobFile { job_id: job_id.to_owned(), config, resume_from: None };
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let process = run_worker_process(
            &c.worker,
            &file,
            &dir,
            &c.data_dir,
            c.cancel_grace,
            stop_rx,
            events_tx,
        );
        let persist = async {
            while let Some(kind) = events.recv().await {
                if let EventKind::CheckpointSaved { artifacts, .. }
                | EventKind::Completed { artifacts, .. } = &kind
                {
                    copy_to_bucket(&c.artifacts, job_id, &dir, artifacts).await;
                }
                if let Err(e) = self.record(job_id, kind).await {
                    eprintln!("arkor server: job {job_id}: {e}");
                }
            }
        };
        let (exit, ()) = tokio::join!(process, persist);
        exit
    }
}

/// Copies the adapter files an event names to the bucket before the event is persisted,
/// trying nine times over about three minutes (training goes on meanwhile; its events wait). The files
/// stay in the data directory whatever happens, so after that the event goes on with the
/// failure on the backend's log.
async fn copy_to_bucket(artifacts: &Artifacts, job_id: &str, dir: &Path, files: &[ArtifactFile]) {
    let mut wait = Duration::from_secs(1);
    for attempt in 1.. {
        let Err(e) = artifacts.put_files(dir, files).await else { return };
        let last = attempt == 9;
        eprintln!(
            "arkor server: job {job_id}: copying its adapter files to {}: {}{}",
            artifacts.bucket_url().unwrap_or("the artifact store"),
            crate::artifacts::describe(&e),
            if last { "; they stay in the data directory only" } else { "; retrying" }
        );
        if last {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

/// What stops a worker process: `Cancel` asks it (on stdin) and kills it after the grace
/// period; `Kill` kills it at once (a remote worker that lost its lease).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Cancel,
    Kill,
}

/// Writes `job.json` into `dir` and runs one training worker process there, sending each
/// event it prints to `events` in order, until it exits (then `events` closes). Shared by
/// the backend's own queue and `arkor worker`.
pub async fn run_worker_process(
    worker: &WorkerCommand,
    job: &JobFile,
    dir: &Path,
    data_dir: &Path,
    cancel_grace: Duration,
    stop_rx: &mut mpsc::UnboundedReceiver<Stop>,
    events: mpsc::UnboundedSender<EventKind>,
) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(JOB_FILE), serde_json::to_vec_pretty(job)?)?;
    let log = std::fs::File::create(dir.join("worker.log"))?;
    let mut command = tokio::process::Command::new(&worker.program);
    command
        .args(&worker.args)
        .arg("--job-dir")
        .arg(dir)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    // Its own process group: a Ctrl-C in the terminal that started the backend must
    // not kill the worker; cancellation comes through `cancel` on stdin.
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command.spawn()?;
    let mut stdin = child.stdin.take();
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut cancelled = false;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let grace = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    let Ok(kind) = serde_json::from_str::<EventKind>(&line) else { continue };
                    let _ = events.send(kind);
                }
                Ok(None) | Err(_) => break,
            },
            Some(stop) = stop_rx.recv() => match stop {
                Stop::Cancel if !cancelled => {
                    cancelled = true;
                    if let Some(mut s) = stdin.take() {
                        let _ = s.write_all(b"cancel\n").await;
                        let _ = s.flush().await;
                    }
                    deadline = Some(tokio::time::Instant::now() + cancel_grace);
                }
                Stop::Cancel => {}
                Stop::Kill => {
                    let _ = child.start_kill();
                    break;
                }
            },
            () = grace => {
                let _ = child.start_kill();
                deadline = None;
            }
        }
    }
    let status = child.wait().await?;
    Ok(Exit { status, cancelled })
}

/// The terminal event of a worker process that ended without reporting one (a no-op for
/// the store when it did report one).
pub fn exit_event(outcome: anyhow::Result<Exit>) -> EventKind {
    match outcome {
        Ok(Exit { cancelled: true, .. }) => EventKind::Cancelled { step: None },
        Ok(Exit { status, .. }) => EventKind::Failed {
            error: format!("the training worker exited unexpectedly ({})", describe(status)),
            step: None,
        },
        Err(e) => EventKind::Failed {
            error: format!("failed to run the training worker: {e}"),
            step: None,
        },
    }
}

/// How a worker process ended.
pub struct Exit {
    /// Its exit status.
    pub status: std::process::ExitStatus,
    /// Whether it was asked to cancel.
    pub cancelled: bool,
}

fn describe(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                6 => " (SIGABRT)",
                9 => " (SIGKILL, possibly out of memory)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("killed by signal {sig}{name}; see worker.log in the job directory");
        }
    }
    match status.code() {
        Some(code) => format!("exit code {code}; see worker.log in the job directory"),
        None => "unknown status".to_owned(),
    }
}
