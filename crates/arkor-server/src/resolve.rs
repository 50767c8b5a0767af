//! Model and dataset references to local files: `arkor/tiny`, a local path, or a Hugging
//! Face repo id resolved through the standard HF cache (downloading when online). Shared
//! by the worker, the inference service and `arkor train` / `arkor chat`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use arkor_engine::config::DatasetConfig;
use arkor_engine::tiny::{TINY_MODEL_ID, ensure_tiny_model};

/// Turns a model reference into a local model directory.
pub fn model(data_dir: &Path, hub: &arkor_hub::HubOptions, model: &str) -> anyhow::Result<PathBuf> {
    if model == TINY_MODEL_ID {
        return ensure_tiny_model(data_dir).with_context(|| {
            format!("failed to generate {TINY_MODEL_ID} in {}", data_dir.display())
        });
    }
    let local = PathBuf::from(model);
    if local.is_dir() {
        return Ok(local);
    }
    if arkor_hub::is_repo_id(model) {
        return Ok(arkor_hub::resolve_model(model, hub)?);
    }
    bail!(
        "model \"{model}\" is not a local directory, {TINY_MODEL_ID}, or a Hugging Face repo id \
         (owner/name)"
    )
}

/// Whether a model can be loaded without the network.
pub fn model_available_offline(data_dir: &Path, hub: &arkor_hub::HubOptions, id: &str) -> bool {
    if id == TINY_MODEL_ID {
        return true;
    }
    let offline = arkor_hub::HubOptions { offline: true, progress: false, ..hub.clone() };
    model(data_dir, &offline, id).is_ok()
}

/// The local files of a dataset source.
pub fn dataset(
    hub: &arkor_hub::HubOptions,
    source: &DatasetConfig,
) -> anyhow::Result<Vec<PathBuf>> {
    match source {
        DatasetConfig::Jsonl { path, .. } => {
            if !path.is_file() {
                bail!("dataset file {} does not exist (check `dataset.path`)", path.display());
            }
            Ok(vec![path.clone()])
        }
        DatasetConfig::Huggingface { name, split, .. } => {
            Ok(arkor_hub::resolve_dataset(name, split, hub)?)
        }
    }
}
