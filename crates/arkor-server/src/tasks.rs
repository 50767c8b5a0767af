//! Work on a job's saved adapters that runs in `arkor` child processes: exports and
//! evaluations. Like training, it is heavy (a whole base model is loaded) and never runs in
//! the backend process.
//!
//! Each task lives in its own folder under the job directory (`exports/<id>/`,
//! `evals/<id>/`) holding `task.json` (its record, rewritten when it ends) and `task.log`
//! (the child's output). Lists are read back from disk, so they survive a backend restart;
//! a task still marked running that this backend is not running was interrupted.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use arkor_protocol::tasks::{EvalInfo, ExportInfo, TaskStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The record file in each task folder.
pub const TASK_FILE: &str = "task.json";
/// The child's stdout and stderr.
pub const LOG_FILE: &str = "task.log";

/// Task folders this backend is running.
#[derive(Default)]
pub struct LiveTasks(Mutex<HashSet<PathBuf>>);

impl LiveTasks {
    /// Whether the task in `dir` is running in this backend.
    pub fn contains(&self, dir: &Path) -> bool {
        self.0.lock().expect("live tasks lock").contains(dir)
    }
}

/// How a task's child process ended: its exit status and the last line it printed.
pub struct Ended {
    /// Exit status, or why it could not be waited for.
    pub status: std::io::Result<ExitStatus>,
    /// The last non-empty line of the log (the error, when it failed).
    pub last_line: String,
}

impl Ended {
    /// `None` on success, else a message for the user.
    pub fn error(&self) -> Option<String> {
        match &self.status {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!("exited with {s}: {}", self.last_line)),
            Err(e) => Some(format!("could not be awaited: {e}")),
        }
    }
}

/// The adapter folder a task works on (`final`, or `checkpoint-<step>` when a step is
/// given), checked to exist in the job directory; the error names the request field.
pub fn adapter_source(job_dir: &Path, checkpoint_step: Option<u64>) -> Result<String, String> {
    let source = checkpoint_step.map_or_else(|| "final".to_owned(), |s| format!("checkpoint-{s}"));
    if job_dir.join(&source).join("adapter_model.safetensors").is_file() {
        return Ok(source);
    }
    Err(match checkpoint_step {
        Some(step) => format!("invalid checkpointStep: the job has no checkpoint at step {step}"),
        None => "the job has no final adapter yet (it must complete first, or give checkpointStep)"
            .to_owned(),
    })
}

/// Writes `record` to `dir/task.json` (atomically).
pub fn write_record<T: Serialize>(dir: &Path, record: &T) -> std::io::Result<()> {
    let tmp = dir.join(format!("{TASK_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
    std::fs::rename(tmp, dir.join(TASK_FILE))
}

/// Runs `program --data-dir D args...` with its output in `dir/task.log`; `finish` runs on
/// a blocking thread when it exits and returns the record to write. The folder is then
/// copied to the bucket, if artifacts go to one.
pub fn spawn<T: Serialize + Send + 'static>(
    live: &Arc<LiveTasks>,
    artifacts: &Arc<crate::artifacts::Artifacts>,
    program: &Path,
    data_dir: &Path,
    dir: &Path,
    args: Vec<OsString>,
    finish: impl FnOnce(Ended) -> T + Send + 'static,
) -> std::io::Result<()> {
    let log = std::fs::File::create(dir.join(LOG_FILE))?;
    let mut child = tokio::process::Command::new(program)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()?;
    live.0.lock().expect("live tasks lock").insert(dir.to_path_buf());
    let (live, artifacts, dir) = (live.clone(), artifacts.clone(), dir.to_path_buf());
    tokio::spawn(async move {
        let status = child.wait().await;
        let task_dir = dir.clone();
        let written = tokio::task::spawn_blocking(move || {
            let log = std::fs::read_to_string(task_dir.join(LOG_FILE)).unwrap_or_default();
            let last_line =
                log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_owned();
            write_record(&task_dir, &finish(Ended { status, last_line }))
        })
        .await;
        if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
            eprintln!("arkor: failed to record the end of {}: {e}", dir.display());
        }
        if let Err(e) = artifacts.put_dir(&dir).await {
            let e = crate::artifacts::describe(&e);
            eprintln!("arkor: {} stays in the data directory only: {e}", dir.display());
        }
        live.0.lock().expect("live tasks lock").remove(&dir);
    });
    Ok(())
}

/// The records of every task folder under `parent`, with their folders.
fn read_records<T: DeserializeOwned>(parent: &Path) -> Vec<(PathBuf, T)> {
    std::fs::read_dir(parent)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let bytes = std::fs::read(e.path().join(TASK_FILE)).ok()?;
                    Some((e.path(), serde_json::from_slice(&bytes).ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A task's record as the lists need it.
pub trait TaskRecord: DeserializeOwned {
    /// Its status and error, to mark an interrupted task failed.
    fn status_and_error(&mut self) -> (&mut TaskStatus, &mut Option<String>);
    /// Creation time and id, to sort newest first.
    fn created_and_id(&self) -> (&str, &str);
}

impl TaskRecord for ExportInfo {
    fn status_and_error(&mut self) -> (&mut TaskStatus, &mut Option<String>) {
        (&mut self.status, &mut self.error)
    }
    fn created_and_id(&self) -> (&str, &str) {
        (&self.created_at, &self.id)
    }
}

impl TaskRecord for EvalInfo {
    fn status_and_error(&mut self) -> (&mut TaskStatus, &mut Option<String>) {
        (&mut self.status, &mut self.error)
    }
    fn created_and_id(&self) -> (&str, &str) {
        (&self.created_at, &self.id)
    }
}

/// The records under `parent`, newest first; one still marked running that this backend is
/// not running was interrupted by a restart and is reported as failed.
pub fn list<T: TaskRecord>(live: &LiveTasks, parent: &Path) -> Vec<T> {
    let mut out: Vec<T> = read_records(parent)
        .into_iter()
        .map(|(dir, mut record): (PathBuf, T)| {
            let (status, error) = record.status_and_error();
            if *status == TaskStatus::Running && !live.contains(&dir) {
                *status = TaskStatus::Failed;
                *error = Some("interrupted: the backend stopped while it ran".to_owned());
            }
            record
        })
        .collect();
    out.sort_by(|a, b| b.created_and_id().cmp(&a.created_and_id()));
    out
}
