//! Model and dataset references to local files: `arkor/tiny`, a local directory, a `.gguf`
//! file, `ollama:NAME[:TAG]` (a model in Ollama's local store), or a Hugging Face repo id
//! resolved through the standard HF cache (downloading when online). GGUF files (and the
//! Ollama models, which are GGUF blobs) are imported once into `<data dir>/models/gguf/`
//! as Hugging Face directories. Shared by the worker, the inference service and the CLI.

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
    if arkor_hub::ollama::is_ollama_ref(model) {
        let blob = arkor_hub::ollama::resolve_ollama_from_env(model)?;
        return import_gguf(data_dir, &blob, model);
    }
    let local = PathBuf::from(model);
    if local.is_dir() {
        return Ok(local);
    }
    if is_gguf_path(model) {
        if !local.is_file() {
            bail!("model file {model} does not exist");
        }
        return import_gguf(data_dir, &local, model);
    }
    if arkor_hub::is_repo_id(model) {
        return Ok(arkor_hub::resolve_model(model, hub)?);
    }
    bail!(
        "model \"{model}\" is not a local directory, a .gguf file, ollama:NAME[:TAG], \
         {TINY_MODEL_ID}, or a Hugging Face repo id (owner/name)"
    )
}

/// Whether `model` has the shape of a model reference this backend can resolve: the tiny
/// model, a Hub id, `ollama:NAME`, a model directory with `config.json`, or an existing
/// `.gguf` file (checked before a job is queued; resolving may still fail later).
pub fn is_model_reference(model: &str) -> bool {
    let p = Path::new(model);
    model == TINY_MODEL_ID
        || arkor_hub::is_repo_id(model)
        || arkor_hub::ollama::is_ollama_ref(model)
        || p.join("config.json").is_file()
        || (is_gguf_path(model) && p.is_file())
}

/// Whether a model reference names a GGUF file.
pub fn is_gguf_path(model: &str) -> bool {
    Path::new(model).extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

fn import_gguf(data_dir: &Path, file: &Path, model: &str) -> anyhow::Result<PathBuf> {
    let cache = data_dir.join("models").join("gguf");
    arkor_engine::gguf::import(file, &cache)
        .with_context(|| format!("failed to import {model} from {}", file.display()))
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
