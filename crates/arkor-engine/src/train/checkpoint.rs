//! Checkpoints: a PEFT adapter directory plus what a resumed run needs.
//!
//! `checkpoint-<step>/` holds `adapter_config.json` and `adapter_model.safetensors`
//! (loadable by PEFT as is), `optimizer.safetensors` (AdamW moments, step in the
//! metadata) and `trainer_state.json` (step, epoch, total steps, log history). The run
//! directory also gets `train_config.json`, the exact config the run used.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::event::StepMetrics;
use crate::lora::Adapter;
use crate::models::DecoderSpec;
use crate::train::optim::AdamW;
use crate::{Error, Result};

/// Name of the optimiser state file in a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Name of the trainer state file in a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";
/// Name of the config file in a run directory.
pub const CONFIG_FILE: &str = "train_config.json";

/// Progress of a run, saved in every checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimiser steps completed.
    pub step: usize,
    /// Steps the run was planned for.
    pub total_steps: usize,
    /// Fractional epoch reached.
    pub epoch: f64,
    /// Every log and eval entry so far.
    pub log_history: Vec<LogEntry>,
    /// Input tokens trained on so far, padding excluded (transformers' name; absent in
    /// checkpoints written before it was kept).
    #[serde(default)]
    pub num_input_tokens_seen: u64,
}

/// One entry of the log history (the shape transformers uses).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogEntry {
    /// Step of the entry.
    pub step: usize,
    /// Fractional epoch.
    pub epoch: f64,
    /// Training loss of the window, for log entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Eval loss, for eval entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    /// Learning rate, for log entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// Gradient norm, for log entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
}

impl TrainerState {
    pub(crate) fn new(total_steps: usize) -> Self {
        Self { step: 0, total_steps, epoch: 0.0, log_history: vec![], num_input_tokens_seen: 0 }
    }
}

impl From<&StepMetrics> for LogEntry {
    fn from(m: &StepMetrics) -> Self {
        LogEntry {
            step: m.step,
            epoch: m.epoch,
            loss: Some(m.loss),
            eval_loss: None,
            learning_rate: Some(m.learning_rate),
            grad_norm: Some(m.grad_norm),
        }
    }
}

impl LogEntry {
    pub(crate) fn eval(step: usize, epoch: f64, eval_loss: f64) -> Self {
        LogEntry {
            step,
            epoch,
            loss: None,
            eval_loss: Some(eval_loss),
            learning_rate: None,
            grad_norm: None,
        }
    }
}

/// Writes a checkpoint directory and returns its files.
pub fn save(
    dir: &Path,
    adapter: &Adapter,
    optimizer: &AdamW,
    state: &TrainerState,
) -> Result<Vec<PathBuf>> {
    let mut files = adapter.save(dir)?;
    let opt = dir.join(OPTIMIZER_FILE);
    optimizer.save(&opt)?;
    files.push(opt);
    let state_path = dir.join(STATE_FILE);
    write_json(&state_path, state)?;
    files.push(state_path);
    Ok(files)
}

/// Writes `train_config.json` into the run directory.
pub fn write_config(run_dir: &Path, config: &TrainConfig) -> Result<()> {
    write_json(&run_dir.join(CONFIG_FILE), config)
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let json = serde_json::to_string_pretty(value).expect("state serialises");
    std::fs::write(path, json + "\n").map_err(|e| Error::io("failed to write", path, e))
}

/// Loads adapter weights, optimiser moments and trainer state from a checkpoint into a
/// freshly created adapter and optimiser.
pub(crate) fn restore(
    dir: &Path,
    spec: &DecoderSpec,
    adapter: &Adapter,
    optimizer: &mut AdamW,
    config: &TrainConfig,
) -> Result<TrainerState> {
    let saved = Adapter::load(dir, spec, adapter.vars()[0].1.device())?;
    if saved.config() != adapter.config() {
        return Err(Error::Config {
            field: "lora".to_owned(),
            message: format!(
                "the checkpoint {} was trained with {:?}, the config asks for {:?}",
                dir.display(),
                saved.config(),
                adapter.config()
            ),
        });
    }
    adapter.copy_from(&saved)?;
    optimizer.load(&dir.join(OPTIMIZER_FILE))?;
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path)
        .map_err(|e| Error::io("failed to read", &state_path, e))?;
    let state: TrainerState = serde_json::from_str(&text)
        .map_err(|e| Error::InvalidFile { path: state_path.clone(), message: e.to_string() })?;
    let run_config = dir.parent().map(|p| p.join(CONFIG_FILE));
    if let Some(path) = run_config.filter(|p| p.is_file()) {
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::io("failed to read", &path, e))?;
        if let Ok(old) = serde_json::from_str::<TrainConfig>(&text) {
            let same_data_order = old.seed == config.seed
                && old.batch_size == config.batch_size
                && old.gradient_accumulation_steps == config.gradient_accumulation_steps;
            if !same_data_order {
                return Err(Error::config(
                    "seed",
                    format!(
                        "resuming needs the seed, batch_size and gradient_accumulation_steps of \
                         the original run ({}: seed {}, batch_size {}, gradient_accumulation_steps {})",
                        path.display(),
                        old.seed,
                        old.batch_size,
                        old.gradient_accumulation_steps
                    ),
                ));
            }
        }
    }
    if optimizer.steps() != state.step {
        return Err(Error::InvalidFile {
            path: state_path,
            message: format!(
                "step {} disagrees with the optimiser's {}",
                state.step,
                optimizer.steps()
            ),
        });
    }
    Ok(state)
}
