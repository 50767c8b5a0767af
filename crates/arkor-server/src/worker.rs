//! The training worker: one process per job, so that a panic, abort or out-of-memory in
//! training never takes the backend down.
//!
//! Contract with the backend ([`crate::runner`]):
//! - argv: `<program> <args...> --job-dir DIR --data-dir DIR`; `DIR/job.json` holds the
//!   validated engine config ([`JobFile`]); checkpoints and `final/` are written in `DIR`.
//! - stdout: one JSON [`EventKind`] per line, in order; anything else on stdout is ignored.
//! - stdin: the line `cancel`, or end of file (the backend went away), cancels the run;
//!   the engine stops within one step and the worker exits 0 after `training.cancelled`.
//! - stderr: free-form log, kept by the backend in `DIR/worker.log`.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use arkor_engine::cancel::CancelToken;
use arkor_engine::config::TrainConfig;
use arkor_engine::data::{PrepareOptions, prepare_dataset};
use arkor_engine::device::DeviceChoice;
use arkor_engine::event::EngineEvent;
use arkor_engine::models::Model;
use arkor_engine::tokenizer::TextTokenizer;
use arkor_engine::train::{TrainRequest, train};
use arkor_protocol::event::{CompletedMetrics, EventKind, StartedMetadata};
use arkor_protocol::job::ArtifactFile;
use serde::{Deserialize, Serialize};

/// What the backend hands a worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobFile {
    /// The job.
    pub job_id: String,
    /// The validated run configuration (absolute dataset path).
    pub config: TrainConfig,
    /// A checkpoint directory to continue from (a remote worker's requeued job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_from: Option<PathBuf>,
}

/// Name of the job file inside the job directory.
pub const JOB_FILE: &str = "job.json";

/// Entry point of the hidden `arkor __worker` subcommand.
pub fn main(job_dir: &Path, data_dir: &Path, device: DeviceChoice) -> ExitCode {
    let cancel = CancelToken::new();
    let watcher = cancel.clone();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.trim() == "cancel" => break,
                Ok(_) => {}
            }
        }
        watcher.cancel();
    });
    let mut out = std::io::stdout().lock();
    let mut emit = |kind: EventKind| {
        let line = serde_json::to_string(&kind).expect("events serialise");
        // A closed stdout means the backend is gone; the stdin watcher cancels the run.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    };
    match run(job_dir, data_dir, device, &cancel, &mut emit) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    job_dir: &Path,
    data_dir: &Path,
    device: DeviceChoice,
    cancel: &CancelToken,
    emit: &mut dyn FnMut(EventKind),
) -> anyhow::Result<()> {
    // Errors before training are reported here; the engine reports its own.
    let setup = || -> anyhow::Result<_> {
        let path = job_dir.join(JOB_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("failed to read {}: {e}", path.display()))?;
        let job: JobFile = serde_json::from_str(&text)?;
        let hub = arkor_hub::HubOptions { progress: false, ..arkor_hub::HubOptions::from_env() };
        let model_dir = crate::resolve::model(data_dir, &hub, &job.config.model)?;
        let files = crate::resolve::dataset(&hub, &job.config.dataset)?;
        let device = device.open()?;
        let quant = match job.config.base_quant {
            arkor_engine::config::BaseQuant::None => String::new(),
            q => format!(" (base weights kept as {q:?})"),
        };
        eprintln!("worker: loading {} from {}{quant}", job.config.model, model_dir.display());
        let model = Model::load_with(&model_dir, &device, job.config.base_quant)?;
        let tokenizer = TextTokenizer::from_dir(&model_dir)?;
        let c = &job.config;
        let options = PrepareOptions {
            format: c.dataset.format(),
            max_length: c.max_length,
            train_on_responses_only: c.train_on_responses_only,
            eval_split: c.eval_split,
            seed: c.seed,
            max_rows: c.dry_run.then_some(arkor_engine::config::DRY_RUN_ROWS),
        };
        let data = prepare_dataset(&files, &tokenizer, &options)?;
        eprintln!("worker: {}", data.report.summary());
        Ok((job, model, data, crate::util::files_digest(&files)?))
    };
    let (job, model, data, dataset_sha256) = match setup() {
        Ok(v) => v,
        Err(e) => {
            emit(EventKind::Failed { error: format!("{e:#}"), step: None });
            return Err(e);
        }
    };
    let mut total_steps = 0u64;
    let mut sink = |event: EngineEvent| {
        let kind = match event {
            EngineEvent::Started(info) => {
                total_steps = info.total_steps as u64;
                EventKind::Started {
                    metadata: Some(StartedMetadata {
                        total_steps: info.total_steps as u64,
                        start_step: info.start_step as u64,
                        train_rows: info.train_rows as u64,
                        eval_rows: info.eval_rows as u64,
                        trainable_parameters: info.trainable_parameters as u64,
                        dataset: info.dataset_summary,
                        arkor_version: Some(arkor_protocol::VERSION.to_owned()),
                        dataset_sha256: Some(dataset_sha256.clone()),
                    }),
                }
            }
            EngineEvent::Log(m) => EventKind::Log {
                step: m.step as u64,
                loss: Some(m.loss),
                eval_loss: None,
                learning_rate: Some(m.learning_rate),
                epoch: Some(m.epoch),
                samples_per_second: Some(m.samples_per_second),
                tokens_per_second: Some(m.tokens_per_second),
                grad_norm: Some(m.grad_norm),
                total_steps: Some(m.total_steps as u64),
                tokens_seen: Some(m.tokens_seen),
            },
            EngineEvent::Eval { step, eval_loss, epoch } => EventKind::Log {
                step: step as u64,
                loss: None,
                eval_loss: Some(eval_loss),
                learning_rate: None,
                epoch: Some(epoch),
                samples_per_second: None,
                tokens_per_second: None,
                grad_norm: None,
                total_steps: Some(total_steps),
                tokens_seen: None,
            },
            EngineEvent::CheckpointSaved { step, dir, .. } => EventKind::CheckpointSaved {
                step: step as u64,
                artifacts: artifact_files(job_dir, &dir),
            },
            EngineEvent::Completed { step, dir, train_loss, .. } => EventKind::Completed {
                metrics: Some(CompletedMetrics { step: step as u64, train_loss }),
                artifacts: artifact_files(job_dir, &dir),
            },
            EngineEvent::Failed { message } => EventKind::Failed { error: message, step: None },
            EngineEvent::Cancelled { step } => EventKind::Cancelled { step: Some(step as u64) },
        };
        emit(kind);
    };
    let req = TrainRequest {
        model: &model,
        data: &data,
        config: &job.config,
        output_dir: job_dir,
        resume_from: job.resume_from.as_deref(),
    };
    train(&req, &mut sink, cancel)?;
    Ok(())
}

/// The files of an adapter directory, relative to the job directory, with sizes and digests.
pub fn artifact_files(root: &Path, dir: &Path) -> Vec<ArtifactFile> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| {
            let (size, sha256) = crate::util::file_digest(p).ok()?;
            let rel = p.strip_prefix(root).ok()?;
            let pathname = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            Some(ArtifactFile { pathname, size, sha256 })
        })
        .collect()
}
