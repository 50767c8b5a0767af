//! arkor's engine: the only crate that knows candle.
//!
//! It loads open-weight causal language models from Hugging Face files, trains LoRA
//! adapters on chat datasets and generates text with a base model or base + adapter.
//!
//! The engine is synchronous and knows nothing about HTTP, SQL, async runtimes or the
//! Hugging Face Hub: its inputs are local paths plus configs, its outputs are
//! [`event::EngineEvent`]s sent to a sink and files written into directories it is given.
//! Long work is cancellable at step boundaries through a [`cancel::CancelToken`].
//!
//! Entry points:
//! - [`models::Model::load`] reads a model directory (Llama and Qwen2 families);
//! - [`lora::Adapter`] creates, saves and loads PEFT-format LoRA adapters;
//! - [`data::prepare_dataset`] turns JSONL/Parquet rows into token sequences and a report;
//! - [`train::train`] runs the training loop;
//! - [`generate::generate`] samples a reply token by token, optionally held to a
//!   [`constrain::Constraint`] (JSON schema, regex, choice, grammar);
//! - [`eval::evaluate`] scores greedy replies against a held-out dataset;
//! - [`tiny::ensure_tiny_model`] writes the built-in `arkor/tiny` model.

pub mod alloc;
pub mod cancel;
pub mod config;
pub mod constrain;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod event;
pub mod export;
pub mod generate;
pub mod gguf;
pub mod layers;
pub mod lora;
pub mod models;
pub mod tiny;
pub mod tokenizer;
pub mod tools;
pub mod train;

pub use error::{Error, Result};
