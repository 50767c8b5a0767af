//! Wire types shared by arkor's backend, SDK and Studio.
//!
//! Data plus serde only: no IO, no business logic. Every change here is an API change.
//! Keys are camelCase on arkor's own `/v1` routes (as in the reference system) and
//! snake_case on the OpenAI-compatible ones.

pub mod auth;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod inference;
pub mod job;
pub mod tasks;

/// The header every request must carry: `arkor/<version>`.
pub const CLIENT_HEADER: &str = "x-arkor-client";
/// This crate's version, which clients send in [`CLIENT_HEADER`].
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Versions of the client the backend accepts.
pub const SUPPORTED_CLIENT_RANGE: &str = ">=0.0.0";

/// Base models this release knows to work (Llama, Qwen2, Qwen3, SmolLM3, Mistral, Gemma 2,
/// Gemma 3 and Phi-3 architectures): the SDK's `Model` ids, `arkor init --model`'s choices and
/// the bases `/v1/models` lists. Gemma checkpoints are gated on the Hub: accept the licence
/// there and set `HF_TOKEN`.
pub const SUPPORTED_MODELS: [&str; 19] = [
    "arkor/tiny",
    "HuggingFaceTB/SmolLM2-135M-Instruct",
    "HuggingFaceTB/SmolLM2-360M-Instruct",
    "HuggingFaceTB/SmolLM2-1.7B-Instruct",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "Qwen/Qwen2.5-1.5B-Instruct",
    "Qwen/Qwen3-0.6B",
    "Qwen/Qwen3-1.7B",
    "Qwen/Qwen3-4B",
    "HuggingFaceTB/SmolLM3-3B",
    "google/gemma-3-270m",
    "google/gemma-3-270m-it",
    "google/gemma-3-1b-it",
    "google/gemma-2-2b-it",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "meta-llama/Llama-3.2-1B-Instruct",
    "microsoft/Phi-3-mini-4k-instruct",
    "microsoft/Phi-3.5-mini-instruct",
    "microsoft/Phi-4-mini-instruct",
];
