//! `arkor train CONFIG.toml`: headless LoRA training with a progress bar.
//!
//! Order: read and validate the config, resolve the model and dataset to local files,
//! print the dataset report, load the model, then train. Ctrl-C cancels at the next step
//! boundary (the run keeps its last checkpoint; exit code 130). Every log, eval and
//! checkpoint event is appended to `OUTPUT/metrics.jsonl` as it happens.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use arkor_engine::cancel::CancelToken;
use arkor_engine::data::{PrepareOptions, prepare_dataset};
use arkor_engine::event::EngineEvent;
use arkor_engine::models::Model;
use arkor_engine::tokenizer::TextTokenizer;
use arkor_engine::train::{TrainRequest, train};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::args::TrainArgs;
use crate::config::{Global, load_train_config};

pub fn run(global: &Global, args: TrainArgs) -> anyhow::Result<ExitCode> {
    let config = load_train_config(&args.config)?;
    let output = args.output.clone().unwrap_or_else(|| {
        args.config.parent().unwrap_or(Path::new(".")).join("runs").join(&config.name)
    });
    let model_dir = super::resolve_model(global, &config.model)?;
    let files = super::resolve_dataset(global, &config.dataset)?;
    let tokenizer = TextTokenizer::from_dir(&model_dir)?;
    let opts = PrepareOptions {
        format: config.dataset.format(),
        max_length: config.max_length,
        train_on_responses_only: config.train_on_responses_only,
        eval_split: config.eval_split,
        seed: config.seed,
        max_rows: config.dry_run.then_some(arkor_engine::config::DRY_RUN_ROWS),
    };
    let data = prepare_dataset(&files, &tokenizer, &opts)?;
    eprintln!("{}", data.report.summary());
    let device = global.device.open()?;
    let model = Model::load_with(&model_dir, &device, config.base_quant)
        .with_context(|| format!("failed to load the model {}", config.model))?;

    let cancel = CancelToken::new();
    let on_signal = cancel.clone();
    ctrlc::set_handler(move || {
        if on_signal.is_cancelled() {
            std::process::exit(130);
        }
        eprintln!("\ncancelling after the current step (Ctrl-C again to quit now)");
        on_signal.cancel();
    })
    .context("failed to install the Ctrl-C handler")?;

    std::fs::create_dir_all(&output)
        .with_context(|| format!("failed to create the output directory {}", output.display()))?;
    let mut sink = Reporter::new(&output, args.no_progress)?;
    let request = TrainRequest {
        model: &model,
        data: &data,
        config: &config,
        output_dir: &output,
        resume_from: args.resume.as_deref(),
    };
    let result = train(&request, &mut |e: EngineEvent| sink.on_event(e), &cancel);
    sink.finish();
    let outcome = result?;
    if outcome.cancelled {
        eprintln!(
            "cancelled at step {}; resume with --resume {}",
            outcome.steps,
            last_checkpoint(&output)
        );
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

fn last_checkpoint(output: &Path) -> String {
    let newest = std::fs::read_dir(output)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("checkpoint-")?.parse::<usize>().ok().map(|s| (s, e.path()))
        })
        .max_by_key(|(s, _)| *s);
    match newest {
        Some((_, path)) => path.display().to_string(),
        None => "<no checkpoint saved yet: set save_steps>".to_owned(),
    }
}

/// Renders engine events as a progress bar and appends them to metrics.jsonl.
struct Reporter {
    bar: Option<ProgressBar>,
    metrics: std::fs::File,
    metrics_path: PathBuf,
}

impl Reporter {
    fn new(output: &Path, no_progress: bool) -> anyhow::Result<Self> {
        let metrics_path = output.join("metrics.jsonl");
        let metrics = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .with_context(|| format!("failed to open {}", metrics_path.display()))?;
        let bar = (!no_progress).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} step {pos}/{len}  {msg}  elapsed {elapsed}  eta {eta}",
                )
                .expect("valid template"),
            );
            bar
        });
        Ok(Self { bar, metrics, metrics_path })
    }

    fn record(&mut self, value: serde_json::Value) {
        if let Err(e) = writeln!(self.metrics, "{value}") {
            self.println(&format!(
                "warning: failed to append to {}: {e}",
                self.metrics_path.display()
            ));
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn on_event(&mut self, event: EngineEvent) {
        match event {
            EngineEvent::Started(info) => {
                self.println(&format!(
                    "training {} LoRA parameters on {} rows ({} eval) for {} steps",
                    info.trainable_parameters, info.train_rows, info.eval_rows, info.total_steps
                ));
                if let Some(bar) = &self.bar {
                    bar.set_length(info.total_steps as u64);
                    bar.set_position(info.start_step as u64);
                    bar.reset_eta();
                }
            }
            EngineEvent::Log(m) => {
                let msg = format!(
                    "loss {:.4}  lr {:.2e}  {:.0} tok/s",
                    m.loss, m.learning_rate, m.tokens_per_second
                );
                match &self.bar {
                    Some(bar) => {
                        bar.set_position(m.step as u64);
                        bar.set_message(msg);
                    }
                    None => eprintln!("step {}/{}  {msg}", m.step, m.total_steps),
                }
                self.record(json!({
                    "type": "log", "step": m.step, "loss": m.loss, "learning_rate": m.learning_rate,
                    "epoch": m.epoch, "grad_norm": m.grad_norm, "samples_per_second": m.samples_per_second,
                    "tokens_per_second": m.tokens_per_second, "elapsed_seconds": m.elapsed_seconds,
                }));
            }
            EngineEvent::Eval { step, eval_loss, epoch } => {
                self.println(&format!("step {step}: eval loss {eval_loss:.4}"));
                self.record(
                    json!({ "type": "eval", "step": step, "eval_loss": eval_loss, "epoch": epoch }),
                );
            }
            EngineEvent::CheckpointSaved { step, dir, .. } => {
                self.println(&format!("step {step}: saved {}", dir.display()));
                self.record(json!({ "type": "checkpoint", "step": step, "dir": dir }));
            }
            EngineEvent::Completed { step, dir, train_loss, .. } => {
                self.println(&format!(
                    "done: {step} steps, mean loss {train_loss:.4}; adapter in {}",
                    dir.display()
                ));
                self.record(json!({ "type": "completed", "step": step, "dir": dir, "train_loss": train_loss }));
            }
            EngineEvent::Failed { message } => {
                self.record(json!({ "type": "failed", "error": message }));
            }
            EngineEvent::Cancelled { step } => {
                self.record(json!({ "type": "cancelled", "step": step }));
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
