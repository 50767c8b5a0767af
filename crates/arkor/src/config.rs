//! Typed trainer settings: models, datasets, LoRA, optimiser, schedule, row format.

use std::path::PathBuf;

use arkor_protocol::job::JobConfig;

/// Base models this release knows to work (Llama, Qwen2, Qwen3, SmolLM3, Mistral, Gemma 2,
/// Gemma 3 and Phi-3 architectures). Gemma checkpoints are gated on the Hub: accept the
/// licence there and set `HF_TOKEN`.
pub use arkor_protocol::SUPPORTED_MODELS;

/// A base model: one of [`SUPPORTED_MODELS`] or a local model directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model(String);

impl Model {
    /// The built-in tiny model: no download, trains in seconds, for tests and demos.
    pub fn arkor_tiny() -> Model {
        Model(SUPPORTED_MODELS[0].to_owned())
    }

    /// SmolLM2-135M-Instruct, the default real model.
    pub fn smollm2_135m_instruct() -> Model {
        Model(SUPPORTED_MODELS[1].to_owned())
    }

    /// A model by id; an unsupported id is an error naming the supported ones.
    pub fn named(id: &str) -> Result<Model, TrainerConfigError> {
        if SUPPORTED_MODELS.contains(&id) {
            return Ok(Model(id.to_owned()));
        }
        Err(TrainerConfigError {
            field: "model",
            message: format!(
                "unsupported model \"{id}\". This arkor release supports: {}; or use \
                 Model::local_dir for a Llama, Qwen2, Qwen3 or SmolLM3 model directory on the backend",
                SUPPORTED_MODELS.join(", ")
            ),
        })
    }

    /// A Hugging Face-layout model directory (absolute path) on the backend's disk.
    pub fn local_dir(path: impl Into<PathBuf>) -> Model {
        Model(path.into().to_string_lossy().into_owned())
    }

    /// A GGUF file on the backend's disk (`llama` or `qwen2` architecture: llama.cpp, LM
    /// Studio and Ollama files), imported once by the backend. A relative path is made
    /// absolute against the current directory.
    pub fn gguf(path: impl Into<PathBuf>) -> Model {
        let path = path.into();
        let absolute = std::path::absolute(&path).unwrap_or(path);
        Model(absolute.to_string_lossy().into_owned())
    }

    /// A model in the Ollama store of the backend's machine, `NAME[:TAG]` as `ollama pull`
    /// takes it (the `ollama:` prefix is optional).
    pub fn ollama(name: &str) -> Model {
        let name = name.strip_prefix("ollama:").unwrap_or(name);
        Model(format!("ollama:{name}"))
    }

    /// The id sent to the backend.
    pub fn id(&self) -> &str {
        &self.0
    }
}

/// Where training rows come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dataset {
    /// A JSONL, JSON or Parquet file, relative to the project directory (uploaded when
    /// the backend is not local).
    Jsonl {
        /// The file.
        path: PathBuf,
    },
    /// A Hugging Face dataset repository.
    Huggingface {
        /// Repo id.
        name: String,
        /// Split (default `train`).
        split: Option<String>,
    },
}

impl Dataset {
    /// A local file.
    pub fn jsonl(path: impl Into<PathBuf>) -> Dataset {
        Dataset::Jsonl { path: path.into() }
    }

    /// A Hub dataset, split `train`.
    pub fn huggingface(name: impl Into<String>) -> Dataset {
        Dataset::Huggingface { name: name.into(), split: None }
    }

    /// How it is shown in the manifest.
    pub fn describe(&self) -> String {
        match self {
            Dataset::Jsonl { path } => path.display().to_string(),
            Dataset::Huggingface { name, split } => {
                format!("{name} ({})", split.as_deref().unwrap_or("train"))
            }
        }
    }
}

/// LoRA settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Lora {
    /// Rank.
    pub r: u64,
    /// Scale numerator (`alpha / r`).
    pub alpha: f64,
    /// Dropout on the adapter input.
    pub dropout: Option<f64>,
    /// Projections to adapt (default all seven).
    pub target_modules: Option<Vec<String>>,
    /// rsLoRA scaling (`alpha / sqrt(r)`).
    pub use_rslora: bool,
    /// Longest example in tokens.
    pub max_length: Option<u64>,
}

impl Lora {
    /// Rank and alpha; everything else default.
    pub fn new(r: u64, alpha: f64) -> Lora {
        Lora { r, alpha, dropout: None, target_modules: None, use_rslora: false, max_length: None }
    }
}

/// The optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    /// AdamW.
    AdamW,
}

impl Optimizer {
    pub(crate) fn name(self) -> &'static str {
        "adamw"
    }
}

/// How the frozen base model is kept in memory while training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseQuant {
    /// fp32 (the default).
    None,
    /// 8-bit blocks: about 3.8x less memory for the base, loss curves close to fp32's.
    Q8_0,
    /// 4-bit blocks: about 6.4x less memory for the base.
    Q4_1,
}

impl BaseQuant {
    pub(crate) fn name(self) -> &'static str {
        match self {
            BaseQuant::None => "none",
            BaseQuant::Q8_0 => "q8_0",
            BaseQuant::Q4_1 => "q4_1",
        }
    }
}

/// Learning-rate schedule after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduler {
    /// Linear decay to 0.
    Linear,
    /// Half-cosine decay to 0.
    Cosine,
    /// Constant.
    Constant,
}

impl Scheduler {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scheduler::Linear => "linear",
            Scheduler::Cosine => "cosine",
            Scheduler::Constant => "constant",
        }
    }
}

/// Row format of the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetFormat {
    /// Detect from the rows.
    Auto,
    /// `{"messages": [...]}`.
    Chat,
    /// `{"prompt", "completion"}`.
    PromptCompletion,
    /// `{"instruction", "input", "output"}`.
    Alpaca,
    /// `{"text"}`.
    Text,
}

impl DatasetFormat {
    pub(crate) fn name(self) -> &'static str {
        match self {
            DatasetFormat::Auto => "auto",
            DatasetFormat::Chat => "chat",
            DatasetFormat::PromptCompletion => "prompt_completion",
            DatasetFormat::Alpaca => "alpaca",
            DatasetFormat::Text => "text",
        }
    }
}

/// A setting that cannot work, found when the trainer is built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid trainer setting `{field}`: {message}")]
pub struct TrainerConfigError {
    /// The builder method / field.
    pub field: &'static str,
    /// Expected versus got.
    pub message: String,
}

pub(crate) fn validate(name: &str, c: &JobConfig) -> Result<(), TrainerConfigError> {
    let err = |field, message: String| Err(TrainerConfigError { field, message });
    if name.trim().is_empty() || name.len() > 200 {
        return err("name", format!("expected 1-200 characters, got {:?}", name));
    }
    let positive = [
        ("lora.r", c.lora_r),
        ("max_steps", c.max_steps),
        ("batch_size", c.batch_size),
        ("gradient_accumulation_steps", c.gradient_accumulation_steps),
        ("logging_steps", c.logging_steps),
        ("save_steps", c.save_steps),
        ("eval_steps", c.eval_steps),
    ];
    for (field, v) in positive {
        if v == Some(0) {
            return err(field, "expected a positive integer, got 0".to_owned());
        }
    }
    if let Some(a) = c.lora_alpha
        && !(a > 0.0)
    {
        return err("lora.alpha", format!("expected a positive number, got {a}"));
    }
    if let Some(lr) = c.learning_rate
        && !(lr > 0.0 && lr < 1.0)
    {
        return err("learning_rate", format!("expected a value in (0, 1), got {lr}"));
    }
    if let Some(wd) = c.weight_decay
        && !(0.0..1.0).contains(&wd)
    {
        return err("weight_decay", format!("expected a value in [0, 1), got {wd}"));
    }
    if let Some(e) = c.eval_split
        && !(0.0..=0.5).contains(&e)
    {
        return err("eval_split", format!("expected a fraction in [0, 0.5], got {e}"));
    }
    if let Some(e) = c.num_train_epochs
        && !(e > 0.0 && e.is_finite())
    {
        return err("num_train_epochs", format!("expected a positive number, got {e}"));
    }
    if let Some(m) = c.max_length
        && m < 2
    {
        return err("max_length", format!("expected at least 2, got {m}"));
    }
    Ok(())
}
