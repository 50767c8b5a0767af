//! Validation of a submitted [`JobConfig`] into the engine's [`TrainConfig`].
//!
//! Runs at `POST /v1/jobs`, before anything is queued: every error names the field as the
//! client wrote it (camelCase) and what it accepts.

use std::path::{Path, PathBuf};

use arkor_engine::config::{BaseQuant, DatasetConfig, LrScheduler, Optimizer, TrainConfig};
use arkor_engine::data::DatasetFormat;
use arkor_engine::tiny::TINY_MODEL_ID;
use arkor_protocol::job::{DatasetSource, JobConfig};

/// A field and what was wrong with it.
#[derive(Debug, PartialEq)]
pub struct FieldError {
    /// `config.<camelCaseName>`.
    pub field: String,
    /// Expected versus got.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.message)
    }
}

fn err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: format!("config.{field}"), message: message.into() }
}

const FORMATS: &str = "auto, chat (alias chatml), prompt_completion, alpaca, text";
const SCHEDULERS: &str = "linear, cosine, constant";
const OPTIMIZERS: &str = "adamw (aliases adamw_torch, adamw_hf, adamw_torch_fused)";

/// The most labels a job may ask for.
const MAX_LABELS: usize = 8;

/// Worker labels: 1-32 lowercase letters, digits, `-`, `_` or `.` each, at most
/// [`MAX_LABELS`]; errors name `field` (`config.workerLabels` in a job, `labels` in a
/// lease request) and the index.
pub fn check_labels(field: &str, labels: &[String]) -> Result<(), FieldError> {
    let named = |field: String, message: String| FieldError { field, message };
    if labels.len() > MAX_LABELS {
        let message = format!("at most {MAX_LABELS} labels, got {}", labels.len());
        return Err(named(field.to_owned(), message));
    }
    for (i, l) in labels.iter().enumerate() {
        let ok = !l.is_empty()
            && l.len() <= 32
            && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if !ok {
            return Err(named(
                format!("{field}[{i}]"),
                format!("expected 1-32 lowercase letters, digits, '-', '_' or '.', got {l:?}"),
            ));
        }
    }
    Ok(())
}

/// Labels as the store keeps them: a sorted JSON array without repeats.
pub fn labels_json(labels: &[String]) -> String {
    let set: std::collections::BTreeSet<&String> = labels.iter().collect();
    serde_json::to_string(&set).expect("strings serialise")
}

/// Checks `c` and builds the engine configuration for the job `name`.
pub fn to_train_config(name: &str, c: &JobConfig) -> Result<TrainConfig, FieldError> {
    let mut t = TrainConfig { name: name.to_owned(), ..TrainConfig::default() };
    check_model(&c.model)?;
    check_labels("config.workerLabels", &c.worker_labels)?;
    t.model = c.model.clone();
    let format = match &c.dataset_format {
        None => DatasetFormat::Auto,
        Some(f) => match f.name() {
            "auto" => DatasetFormat::Auto,
            "chat" | "chatml" | "messages" => DatasetFormat::Chat,
            "prompt_completion" => DatasetFormat::PromptCompletion,
            "alpaca" => DatasetFormat::Alpaca,
            "text" => DatasetFormat::Text,
            other => {
                return Err(err(
                    "datasetFormat",
                    format!("expected one of {FORMATS}, got \"{other}\""),
                ));
            }
        },
    };
    t.dataset = match &c.dataset_source {
        None => {
            return Err(err(
                "datasetSource",
                "required: { \"type\": \"jsonl\", \"path\": ... } or { \"type\": \"huggingface\", \"name\": ... }",
            ));
        }
        Some(DatasetSource::Jsonl { path }) => {
            let p = PathBuf::from(path);
            if !p.is_absolute() {
                return Err(err(
                    "datasetSource.path",
                    format!("expected an absolute path, got \"{path}\""),
                ));
            }
            if !p.is_file() {
                return Err(err(
                    "datasetSource.path",
                    format!("no such file on the backend: {path}"),
                ));
            }
            DatasetConfig::Jsonl { path: p, format }
        }
        Some(DatasetSource::Huggingface { name, split, subset }) => {
            if !arkor_hub::is_repo_id(name) {
                return Err(err(
                    "datasetSource.name",
                    format!("expected a Hugging Face dataset id (owner/name), got \"{name}\""),
                ));
            }
            if subset.is_some() {
                return Err(err(
                    "datasetSource.subset",
                    "dataset subsets are not supported yet; pick the files with the split name",
                ));
            }
            let split = c
                .dataset_split
                .clone()
                .or_else(|| split.clone())
                .unwrap_or_else(|| "train".to_owned());
            DatasetConfig::Huggingface { name: name.clone(), split, format }
        }
    };
    if c.dataset_split.is_some() && matches!(t.dataset, DatasetConfig::Jsonl { .. }) {
        return Err(err("datasetSplit", "only applies to huggingface datasets"));
    }
    t.base_quant = match c.base_quant.as_deref() {
        None | Some("none") => BaseQuant::None,
        Some("q8_0") => BaseQuant::Q8_0,
        Some("q4_1") => BaseQuant::Q4_1,
        Some(other) => {
            return Err(err("baseQuant", format!("expected none, q8_0 or q4_1, got \"{other}\"")));
        }
    };
    if let Some(v) = c.gradient_checkpointing {
        t.gradient_checkpointing = v;
    }
    if c.load_in4bit == Some(true) {
        if !matches!(c.base_quant.as_deref(), None | Some("q4_1")) {
            return Err(err(
                "loadIn4bit",
                "true asks for a 4-bit base but baseQuant says otherwise",
            ));
        }
        t.base_quant = BaseQuant::Q4_1;
    }
    let usize_of = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    if let Some(v) = c.lora_r {
        t.lora.r = usize_of(v);
    }
    if let Some(v) = c.lora_alpha {
        t.lora.alpha = v;
    }
    if let Some(v) = c.lora_dropout {
        t.lora.dropout = v;
    }
    if let Some(v) = &c.lora_target_modules {
        t.lora.target_modules = v.clone();
    }
    if let Some(v) = c.lora_use_rslora {
        t.lora.use_rslora = v;
    }
    if let Some(v) = c.max_length {
        t.max_length = usize_of(v);
    }
    t.max_steps = c.max_steps.map(usize_of);
    if let Some(v) = c.num_train_epochs {
        t.num_train_epochs = v;
    }
    if let Some(v) = c.learning_rate {
        t.learning_rate = v;
    }
    if let Some(v) = c.batch_size {
        t.batch_size = usize_of(v);
    }
    if let Some(v) = c.gradient_accumulation_steps {
        t.gradient_accumulation_steps = usize_of(v);
    }
    if let Some(v) = c.weight_decay {
        t.weight_decay = v;
    }
    if let Some(v) = c.warmup_steps {
        t.warmup_steps = usize_of(v);
    }
    if let Some(v) = c.logging_steps {
        t.logging_steps = usize_of(v);
    }
    t.save_steps = c.save_steps.map(usize_of);
    t.eval_steps = c.eval_steps.map(usize_of);
    if let Some(v) = c.eval_split {
        t.eval_split = v;
    }
    if let Some(v) = c.train_on_responses_only {
        t.train_on_responses_only = v;
    }
    if let Some(v) = c.dry_run {
        t.dry_run = v;
    }
    if let Some(v) = c.seed {
        t.seed = v;
    }
    if let Some(v) = c.max_grad_norm {
        t.max_grad_norm = v;
    }
    if let Some(name) = &c.optim {
        t.optim = serde_json::from_value::<Optimizer>(serde_json::Value::String(name.clone()))
            .map_err(|_| err("optim", format!("expected {OPTIMIZERS}, got \"{name}\"")))?;
    }
    if let Some(name) = &c.lr_scheduler_type {
        t.lr_scheduler_type =
            serde_json::from_value::<LrScheduler>(serde_json::Value::String(name.clone()))
                .map_err(|_| {
                    err("lrSchedulerType", format!("expected one of {SCHEDULERS}, got \"{name}\""))
                })?;
    }
    t.validate().map_err(|e| match e {
        arkor_engine::Error::Config { field, message } => err(&camel_field(&field), message),
        other => err("", other.to_string()),
    })?;
    Ok(t)
}

fn check_model(model: &str) -> Result<(), FieldError> {
    let local = !arkor_hub::is_repo_id(model) && !arkor_hub::ollama::is_ollama_ref(model);
    if crate::resolve::is_model_reference(model)
        && (!local || model == TINY_MODEL_ID || Path::new(model).is_absolute())
    {
        return Ok(());
    }
    Err(err(
        "model",
        format!(
            "expected {TINY_MODEL_ID}, a Hugging Face model id (owner/name), ollama:NAME[:TAG], \
             or an absolute path to a model directory with config.json or to a .gguf file, got \
             \"{model}\""
        ),
    ))
}

/// `lora.target_modules` -> `loraTargetModules`, `batch_size` -> `batchSize`.
fn camel_field(engine_field: &str) -> String {
    let (prefix, rest) = match engine_field.strip_prefix("lora.") {
        Some(rest) => ("lora_", rest),
        None => ("", engine_field),
    };
    let mut out = String::new();
    let mut upper = false;
    for ch in format!("{prefix}{rest}").chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> JobConfig {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn engine_fields_become_client_fields() {
        assert_eq!(camel_field("lora.target_modules"), "loraTargetModules");
        assert_eq!(camel_field("lora.r"), "loraR");
        assert_eq!(camel_field("batch_size"), "batchSize");
    }

    #[test]
    fn a_quantized_base_is_asked_for_by_either_spelling() {
        let quant = |extra: serde_json::Value| {
            let mut c = serde_json::json!({"model": "arkor/tiny",
                "datasetSource": {"type": "huggingface", "name": "a/b"}});
            c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            to_train_config("x", &config(c)).map(|t| t.base_quant)
        };
        assert_eq!(quant(serde_json::json!({})).unwrap(), BaseQuant::None);
        assert_eq!(quant(serde_json::json!({"loadIn4bit": true})).unwrap(), BaseQuant::Q4_1);
        assert_eq!(quant(serde_json::json!({"loadIn4bit": false})).unwrap(), BaseQuant::None);
        assert_eq!(quant(serde_json::json!({"baseQuant": "q8_0"})).unwrap(), BaseQuant::Q8_0);
        let both = quant(serde_json::json!({"loadIn4bit": true, "baseQuant": "q8_0"}));
        assert_eq!(both.unwrap_err().field, "config.loadIn4bit");
    }

    #[test]
    fn bad_fields_are_named() {
        let base = serde_json::json!({"model": "arkor/tiny",
            "datasetSource": {"type": "huggingface", "name": "a/b"}});
        let with = |k: &str, v: serde_json::Value| {
            let mut c = base.clone();
            c[k] = v;
            to_train_config("x", &config(c)).unwrap_err()
        };
        assert_eq!(with("batchSize", 0.into()).field, "config.batchSize");
        assert_eq!(with("loraR", 0.into()).field, "config.loraR");
        let e = with("lrSchedulerType", "wavy".into());
        assert!(e.message.contains("linear, cosine, constant"), "{e}");
        assert_eq!(with("model", "not a model".into()).field, "config.model");
        let e = with("datasetSource", serde_json::json!({"type": "jsonl", "path": "rel.jsonl"}));
        assert_eq!(e.field, "config.datasetSource.path");
        let e = with("workerLabels", serde_json::json!(["gpu", "Big GPU"]));
        assert_eq!(e.field, "config.workerLabels[1]");
        assert!(e.message.contains("\"Big GPU\""), "{e}");
        let many: Vec<String> = (0..9).map(|i| format!("l{i}")).collect();
        assert_eq!(with("workerLabels", serde_json::json!(many)).field, "config.workerLabels");
        assert!(to_train_config("x", &config(base)).is_ok());
        assert_eq!(labels_json(&["gpu".into(), "a100".into(), "gpu".into()]), r#"["a100","gpu"]"#);
    }
}
