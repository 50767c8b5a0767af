//! Engine integration tests: one binary, one module per topic.

mod errors;
mod export;
mod generation;
mod gguf;
mod golden;
mod gradients;
mod templates;
mod training;
mod vocab;

use std::path::{Path, PathBuf};

use arkor_engine::config::TrainConfig;
use arkor_engine::data::{DatasetFormat, PrepareOptions, PreparedDataset, prepare_dataset};
use arkor_engine::models::Model;
use arkor_engine::tokenizer::TextTokenizer;
use candle_core::Device;

/// A loaded model with its tokenizer.
pub struct Loaded {
    pub model: Model,
    pub tokenizer: TextTokenizer,
}

pub fn load(dir: &Path) -> Loaded {
    Loaded {
        model: Model::load(dir, &Device::Cpu).expect("load model"),
        tokenizer: TextTokenizer::from_dir(dir).expect("load tokenizer"),
    }
}

pub fn prepare(
    tokenizer: &TextTokenizer,
    files: &[PathBuf],
    config: &TrainConfig,
) -> PreparedDataset {
    let opts = PrepareOptions {
        format: DatasetFormat::Auto,
        max_length: config.max_length,
        train_on_responses_only: config.train_on_responses_only,
        eval_split: config.eval_split,
        seed: config.seed,
        max_rows: None,
    };
    prepare_dataset(files, tokenizer, &opts).expect("prepare dataset")
}

/// The config the learning tests share: small batches, a high learning rate.
pub fn quick_config() -> TrainConfig {
    TrainConfig {
        learning_rate: 1e-2,
        batch_size: 3,
        max_steps: Some(30),
        lora: arkor_engine::config::LoraConfig { r: 8, alpha: 16.0, ..Default::default() },
        ..Default::default()
    }
}
