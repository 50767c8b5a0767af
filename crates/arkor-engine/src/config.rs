//! User-facing training configuration: [`TrainConfig`], [`LoraConfig`], [`DatasetConfig`].
//!
//! These are serde types because they are inputs (the `arkor train` TOML file, the
//! backend's job config) and are saved next to every run's artifacts. Keys are snake_case
//! and mirror the reference system's trainer fields; an unknown key is an error naming it.
//! Every field has a documented default. [`TrainConfig::validate`] is the one place that
//! checks ranges, so the training loop never re-checks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::DatasetFormat;
pub use crate::layers::quant::BaseQuant;
use crate::{Error, Result};

/// Everything that defines one training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Name of the run, shown in logs and used for the job name. Default `"arkor-run"`.
    pub name: String,
    /// Base model: a Hugging Face repo id, a local model directory, or `"arkor/tiny"`.
    /// Default `"arkor/tiny"`.
    pub model: String,
    /// Where the training rows come from.
    pub dataset: DatasetConfig,
    /// LoRA adapter settings.
    pub lora: LoraConfig,
    /// Stop after this many optimiser steps (overrides `num_train_epochs`). Default unset.
    pub max_steps: Option<usize>,
    /// Passes over the training rows when `max_steps` is unset. Default 1.
    pub num_train_epochs: f64,
    /// Peak learning rate. Default 2e-4.
    pub learning_rate: f64,
    /// Rows per micro-batch. Default 2.
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed before one optimiser step. Default 1.
    pub gradient_accumulation_steps: usize,
    /// Longest tokenised row; longer rows are truncated and counted. Default 1024.
    pub max_length: usize,
    /// Steps of linear warm-up from 0 to `learning_rate`. Default 0.
    pub warmup_steps: usize,
    /// Learning-rate schedule after warm-up. Default `linear`.
    pub lr_scheduler_type: LrScheduler,
    /// Optimiser. Default `adamw`.
    pub optim: Optimizer,
    /// Decoupled AdamW weight decay. Default 0.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value; 0 disables clipping. Default 1.
    pub max_grad_norm: f64,
    /// Emit training metrics every this many steps. Default 1.
    pub logging_steps: usize,
    /// Save a checkpoint every this many steps; unset saves only the final adapter.
    pub save_steps: Option<usize>,
    /// Compute the eval loss every this many steps; unset evaluates only at the end when
    /// there is an eval split.
    pub eval_steps: Option<usize>,
    /// Fraction of rows held out for evaluation, in `[0, 0.5]`. Default 0.
    pub eval_split: f64,
    /// Seed of the data order, LoRA initialisation and dropout. Default 42.
    pub seed: u64,
    /// Train only on assistant tokens. Default true.
    pub train_on_responses_only: bool,
    /// Run a short smoke test: at most 50 rows and 10 steps. Default false.
    pub dry_run: bool,
    /// Keep the frozen base's projection weights quantized in memory (`q8_0`, `q4_1`) to
    /// fine-tune larger models in less RAM; CPU only. Default `none` (fp32).
    pub base_quant: BaseQuant,
    /// Keep only each block's input between the forward and backward passes and run each
    /// block again during the backward pass: activation memory of one block instead of
    /// all of them, for one more forward pass of compute. Default false.
    pub gradient_checkpointing: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            name: "arkor-run".to_owned(),
            model: "arkor/tiny".to_owned(),
            dataset: DatasetConfig::default(),
            lora: LoraConfig::default(),
            max_steps: None,
            num_train_epochs: 1.0,
            learning_rate: 2e-4,
            batch_size: 2,
            gradient_accumulation_steps: 1,
            max_length: 1024,
            warmup_steps: 0,
            lr_scheduler_type: LrScheduler::Linear,
            optim: Optimizer::Adamw,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            logging_steps: 1,
            save_steps: None,
            eval_steps: None,
            eval_split: 0.0,
            seed: 42,
            train_on_responses_only: true,
            dry_run: false,
            base_quant: BaseQuant::None,
            gradient_checkpointing: false,
        }
    }
}

/// Rows and steps a dry run is limited to.
pub const DRY_RUN_ROWS: usize = 50;
/// Optimiser steps a dry run is limited to.
pub const DRY_RUN_STEPS: usize = 10;

/// Where training rows come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DatasetConfig {
    /// A local JSONL (or JSON / Parquet) file.
    Jsonl {
        /// Path of the file, relative to the config file's directory.
        path: PathBuf,
        /// Row shape; detected from the rows when unset.
        #[serde(default)]
        format: DatasetFormat,
    },
    /// A Hugging Face dataset repo (JSONL or Parquet files), downloaded into the HF cache.
    Huggingface {
        /// Repo id, e.g. `"HuggingFaceH4/no_robots"`.
        name: String,
        /// Split to train on. Default `"train"`.
        #[serde(default = "default_split")]
        split: String,
        /// Row shape; detected from the rows when unset.
        #[serde(default)]
        format: DatasetFormat,
    },
}

fn default_split() -> String {
    "train".to_owned()
}

impl Default for DatasetConfig {
    fn default() -> Self {
        DatasetConfig::Jsonl {
            path: PathBuf::from("data/train.jsonl"),
            format: DatasetFormat::Auto,
        }
    }
}

impl DatasetConfig {
    /// The explicit or auto-detected row format.
    pub fn format(&self) -> DatasetFormat {
        match self {
            DatasetConfig::Jsonl { format, .. } | DatasetConfig::Huggingface { format, .. } => {
                *format
            }
        }
    }
}

/// LoRA adapter settings (the PEFT `LoraConfig` subset we support).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    /// Rank of the low-rank update. Default 16.
    pub r: usize,
    /// Scaling numerator: the update is multiplied by `alpha / r` (or `alpha / sqrt(r)`).
    /// Default 16.
    pub alpha: f64,
    /// Dropout on the adapter's input during training. Default 0.
    pub dropout: f64,
    /// Projections that get an adapter. Default all seven:
    /// `q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`.
    /// Phi-3 fuses its projections (`qkv_proj`, `o_proj`, `gate_up_proj`, `down_proj`);
    /// there the seven names mean its four, and a part of a fused group alone is refused.
    pub target_modules: Vec<String>,
    /// Scale by `alpha / sqrt(r)` (rsLoRA) instead of `alpha / r`. Default false.
    pub use_rslora: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 16,
            alpha: 16.0,
            dropout: 0.0,
            target_modules: crate::lora::Proj::ALL
                .iter()
                .map(|p| p.peft_name().to_owned())
                .collect(),
            use_rslora: false,
        }
    }
}

/// Learning-rate schedule after warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrScheduler {
    /// Linear decay to 0 at the last step.
    #[default]
    Linear,
    /// Half-cosine decay to 0 at the last step.
    Cosine,
    /// Constant after warm-up.
    Constant,
}

/// The optimiser. Only AdamW today; the names PyTorch/transformers users write are accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    /// AdamW with decoupled weight decay (betas 0.9/0.999, eps 1e-8).
    #[default]
    #[serde(alias = "adamw_torch", alias = "adamw_hf", alias = "adamw_torch_fused")]
    Adamw,
}

impl TrainConfig {
    /// Checks every range and cross-field rule; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let positive = |field: &str, v: usize| {
            if v == 0 {
                Err(Error::config(field, "expected a positive integer, got 0"))
            } else {
                Ok(())
            }
        };
        positive("batch_size", self.batch_size)?;
        positive("gradient_accumulation_steps", self.gradient_accumulation_steps)?;
        positive("logging_steps", self.logging_steps)?;
        if self.max_length < 2 {
            return Err(Error::config(
                "max_length",
                format!("expected at least 2, got {}", self.max_length),
            ));
        }
        if let Some(s) = self.max_steps {
            positive("max_steps", s)?;
        }
        if let Some(s) = self.save_steps {
            positive("save_steps", s)?;
        }
        if let Some(s) = self.eval_steps {
            positive("eval_steps", s)?;
        }
        if self.max_steps.is_none()
            && !(self.num_train_epochs > 0.0 && self.num_train_epochs.is_finite())
        {
            return Err(Error::config(
                "num_train_epochs",
                format!("expected a positive number, got {}", self.num_train_epochs),
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return Err(Error::config(
                "learning_rate",
                format!("expected a value in (0, 1), got {}", self.learning_rate),
            ));
        }
        if !(0.0..1.0).contains(&self.weight_decay) {
            return Err(Error::config(
                "weight_decay",
                format!("expected a value in [0, 1), got {}", self.weight_decay),
            ));
        }
        if !(self.max_grad_norm >= 0.0) {
            return Err(Error::config(
                "max_grad_norm",
                format!("expected >= 0, got {}", self.max_grad_norm),
            ));
        }
        if !(0.0..=0.5).contains(&self.eval_split) {
            return Err(Error::config(
                "eval_split",
                format!("expected a fraction in [0, 0.5], got {}", self.eval_split),
            ));
        }
        self.lora.validate()
    }
}

impl LoraConfig {
    /// Checks rank, alpha, dropout and target names; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if self.r == 0 {
            return Err(Error::config("lora.r", "expected a positive rank, got 0"));
        }
        if !(self.alpha > 0.0) {
            return Err(Error::config(
                "lora.alpha",
                format!("expected a positive number, got {}", self.alpha),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(
                "lora.dropout",
                format!("expected a value in [0, 1), got {}", self.dropout),
            ));
        }
        if self.target_modules.is_empty() {
            return Err(Error::config("lora.target_modules", "expected at least one module"));
        }
        for name in &self.target_modules {
            if crate::lora::Proj::from_name(name).is_none() {
                return Err(Error::config(
                    "lora.target_modules",
                    format!(
                        "unknown module \"{name}\" (supported: {})",
                        crate::lora::Proj::NAMES.map(|p| p.peft_name()).join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The multiplier applied to `B A x`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }
}
