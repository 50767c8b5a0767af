//! [`Arkor`]: the trainers of a project, and the entry point its binary's `main` calls.
//!
//! The built binary answers `manifest` (JSON: the trainers with their names, models and
//! datasets) and `run [--trainer NAME]` (runs one trainer with its callbacks and prints
//! progress). With no arguments it runs the only trainer. `arkor start` and Studio use
//! this; users write none of it.

use std::process::ExitCode;

use arkor_protocol::job::JobStatus;
use serde::Serialize;

use crate::trainer::{Error, Trainer, TrainingResult};

/// The project's trainers.
#[derive(Clone, Default)]
pub struct Arkor {
    trainers: Vec<Trainer>,
}

/// One trainer in the manifest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ManifestTrainer {
    /// Its name.
    pub name: String,
    /// Base model id.
    pub model: String,
    /// Dataset, as shown to users.
    pub dataset: String,
    /// The job config it submits (its dataset as a path of this machine).
    pub config: arkor_protocol::job::JobConfig,
}

/// What `manifest` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Manifest {
    /// The trainers, in registration order.
    pub trainers: Vec<ManifestTrainer>,
}

impl Arkor {
    /// No trainers yet.
    pub fn new() -> Arkor {
        Arkor::default()
    }

    /// Registers a trainer; names must be unique.
    pub fn trainer(mut self, trainer: Trainer) -> Arkor {
        assert!(
            self.trainers.iter().all(|t| t.name() != trainer.name()),
            "two trainers are named \"{}\"; trainer names must be unique",
            trainer.name()
        );
        self.trainers.push(trainer);
        self
    }

    /// The registered trainers.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            trainers: self
                .trainers
                .iter()
                .map(|t| ManifestTrainer {
                    name: t.name().to_owned(),
                    model: t.model().id().to_owned(),
                    dataset: t.dataset().describe(),
                    config: t.job_config(),
                })
                .collect(),
        }
    }

    /// The trainer called `name`, or the only one.
    pub fn find(&self, name: Option<&str>) -> Result<&Trainer, String> {
        let names = || self.trainers.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ");
        match name {
            Some(n) => self
                .trainers
                .iter()
                .find(|t| t.name() == n)
                .ok_or_else(|| format!("no trainer named \"{n}\"; this project has: {}", names())),
            None => match self.trainers.as_slice() {
                [] => Err("this project registers no trainer: add one with Arkor::trainer in src/arkor/mod.rs".to_owned()),
                [only] => Ok(only),
                _ => Err(format!("this project has several trainers ({}); pick one with --trainer NAME", names())),
            },
        }
    }

    /// Runs a trainer: starts it, prints `Started job <id>`, follows it to the end; Ctrl-C
    /// cancels the job (exit code 130 once it has stopped). Without
    /// an `on_log` callback it prints a progress line (step, loss, ETA) per logging step.
    pub async fn run(&self, name: Option<&str>) -> Result<TrainingResult, RunError> {
        let trainer = self.find(name).map_err(RunError::Usage)?;
        let job = trainer.start().await.map_err(RunError::Trainer)?;
        println!("Started job {}", job.id);
        let started = std::time::Instant::now();
        let mut first: Option<(u64, f64)> = None;
        let quiet = trainer.has_log_callback();
        let mut progress = |event: &arkor_protocol::event::JobEvent| {
            if quiet {
                return;
            }
            if let arkor_protocol::event::EventKind::Log {
                step,
                loss: Some(loss),
                total_steps,
                ..
            } = &event.kind
            {
                let now = started.elapsed().as_secs_f64();
                let (s0, t0) = *first.get_or_insert((*step, now));
                let total = total_steps.unwrap_or(0);
                let eta = if *step > s0 && total > *step {
                    let per_step = (now - t0) / (*step - s0) as f64;
                    format!(" eta={:.0}s", per_step * (total - step) as f64)
                } else {
                    String::new()
                };
                eprintln!("step={step}/{total} loss={loss:.4}{eta}");
            }
        };
        // Ctrl-C cancels the job and waits for it to stop; a second Ctrl-C stops waiting.
        let canceller = trainer.clone();
        let job_id = job.id.clone();
        let watch = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ncancelling job {job_id}; press Ctrl-C again to stop waiting");
                if let Err(e) = canceller.cancel().await {
                    eprintln!("error: failed to cancel job {job_id}: {e}");
                }
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let result = trainer.follow(&mut progress).await;
        watch.abort();
        let result = result.map_err(RunError::Trainer)?;
        println!("Job {} finished with status={}", result.job.id, result.job.status.as_str());
        if let Some(d) = trainer.deploy_final(&result.job).await.map_err(RunError::Trainer)? {
            let url = d.url.unwrap_or_else(|| format!("<backend>/endpoints/{}/v1", d.slug));
            println!("Endpoint {} serves this job's final adapter: {url}", d.slug);
        }
        Ok(result)
    }

    /// The entry point of the project's binary: `fn main() -> ExitCode { arkor().main() }`.
    pub fn main(self) -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut it = args.iter().map(String::as_str);
        let command = it.next().unwrap_or("run");
        match command {
            "manifest" => {
                println!("{}", serde_json::to_string(&self.manifest()).expect("serialises"));
                ExitCode::SUCCESS
            }
            "run" => {
                let mut trainer = None;
                while let Some(a) = it.next() {
                    match a {
                        "--trainer" => trainer = it.next().map(str::to_owned),
                        other => {
                            eprintln!(
                                "error: unknown argument {other}; usage: run [--trainer NAME]"
                            );
                            return ExitCode::from(2);
                        }
                    }
                }
                let runtime = match tokio::runtime::Runtime::new() {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("error: failed to start the async runtime: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                match runtime.block_on(self.run(trainer.as_deref())) {
                    Ok(r) if r.job.status == JobStatus::Completed => ExitCode::SUCCESS,
                    Ok(r) if r.job.status == JobStatus::Cancelled => ExitCode::from(130),
                    Ok(r) => {
                        if let Some(e) = &r.job.error {
                            eprintln!("error: the job failed: {e}");
                        }
                        ExitCode::FAILURE
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            other => {
                eprintln!(
                    "error: unknown command {other}; expected `manifest` or `run [--trainer NAME]`"
                );
                ExitCode::from(2)
            }
        }
    }
}

/// Why [`Arkor::run`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No such trainer, or an ambiguous choice.
    #[error("{0}")]
    Usage(String),
    /// Starting or following the job failed.
    #[error(transparent)]
    Trainer(Error),
}
