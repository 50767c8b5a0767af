//! One module per subcommand, plus the resolution of model and dataset sources they share.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use arkor_engine::config::DatasetConfig;
use arkor_engine::tiny::{TINY_MODEL_ID, ensure_tiny_model};

use crate::args::{Cli, Command};
use crate::config::Global;

mod chat;
mod train;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = Global::resolve(cli.data_dir, cli.cpu)?;
    match cli.command {
        Command::Train(args) => train::run(&global, args),
        Command::Chat(args) => chat::run(&global, args),
    }
}

/// Turns a model reference (`arkor/tiny`, a local directory, a Hugging Face repo id)
/// into a local model directory, downloading into the Hugging Face cache if needed.
pub fn resolve_model(global: &Global, model: &str) -> anyhow::Result<PathBuf> {
    if model == TINY_MODEL_ID {
        return ensure_tiny_model(&global.data_dir).with_context(|| {
            format!("failed to generate {TINY_MODEL_ID} in {}", global.data_dir.display())
        });
    }
    let local = PathBuf::from(model);
    if local.is_dir() {
        return Ok(local);
    }
    if arkor_hub::is_repo_id(model) {
        return Ok(arkor_hub::resolve_model(model, &global.hub)?);
    }
    bail!(
        "model \"{model}\" is not a local directory, {TINY_MODEL_ID}, or a Hugging Face repo id \
         (owner/name)"
    )
}

/// The local files of a dataset source.
pub fn resolve_dataset(global: &Global, source: &DatasetConfig) -> anyhow::Result<Vec<PathBuf>> {
    match source {
        DatasetConfig::Jsonl { path, .. } => {
            if !path.is_file() {
                bail!("dataset file {} does not exist (check `dataset.path`)", path.display());
            }
            Ok(vec![path.clone()])
        }
        DatasetConfig::Huggingface { name, split, .. } => {
            Ok(arkor_hub::resolve_dataset(name, split, &global.hub)?)
        }
    }
}
