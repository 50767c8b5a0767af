//! Work on a job's saved adapters after training: exports (`POST /v1/jobs/:id/export`,
//! `GET /v1/jobs/:id/exports`: the adapter merged into its base as a transformers directory
//! or a GGUF, the adapter as a llama.cpp LoRA GGUF, or a GGUF with an Ollama `Modelfile`)
//! and evaluations on held-out rows (`POST /v1/jobs/:id/eval`, `GET /v1/jobs/:id/evals`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::job::ArtifactFile;

/// `POST /v1/jobs/:id/export` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportRequest {
    /// `hf`, `gguf`, `gguf-lora` or `ollama`.
    pub format: String,
    /// GGUF precision: `f32`, `f16` (default), `bf16`, `q8_0` or `q4_k_m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quant: Option<String>,
    /// Export this checkpoint instead of the final adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_step: Option<u64>,
    /// A system prompt for the Ollama `Modelfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
}

/// Where an export or evaluation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Being written.
    Running,
    /// Done; its files can be downloaded.
    Completed,
    /// Failed; see `error`.
    Failed,
}

/// One export of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportInfo {
    /// Export id (unique within the job).
    pub id: String,
    /// The format asked for.
    pub format: String,
    /// The precision asked for.
    pub quant: String,
    /// `final` or `checkpoint-<step>`.
    pub source: String,
    /// Where it is.
    pub status: TaskStatus,
    /// RFC 3339 time it was asked for.
    pub created_at: String,
    /// RFC 3339 time it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The files, downloadable from `GET /v1/jobs/:id/artifacts/<pathname>`.
    #[serde(default)]
    pub files: Vec<ArtifactFile>,
    /// For the `ollama` format: the command that installs the downloaded folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ollama_create: Option<String>,
}

/// `GET /v1/jobs/:id/exports` answer, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportList {
    /// The job's exports.
    pub exports: Vec<ExportInfo>,
}

/// `POST /v1/jobs/:id/eval` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EvalRequest {
    /// Held-out rows (JSONL; chat, prompt/completion or alpaca): an absolute path on a local
    /// backend, or the `path` of an uploaded dataset (`POST /v1/datasets`).
    pub dataset_path: String,
    /// Evaluate this checkpoint instead of the final adapter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_step: Option<u64>,
    /// Most tokens per reply (default 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// A system prompt replacing each row's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
}

/// Correct answers for one key of JSON references.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyScore {
    /// Rows whose reply had the reference's value.
    pub correct: u64,
    /// Rows whose reference has the key.
    pub total: u64,
}

/// The totals of an evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvalScores {
    /// Rows evaluated.
    pub rows: u64,
    /// Replies equal to the reference (after trimming).
    pub exact_match: u64,
    /// Rows whose reference is a JSON object.
    pub json_rows: u64,
    /// Of those, replies that are valid JSON.
    pub json_valid: u64,
    /// Per reference key.
    pub per_key: BTreeMap<String, KeyScore>,
    /// JSON rows with a valid reply and every key right.
    pub all_keys_correct: u64,
    /// Wall-clock seconds.
    pub elapsed_secs: f64,
    /// Tokens generated.
    pub tokens_generated: u64,
}

/// One evaluation of a job's adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvalInfo {
    /// Evaluation id (unique within the job).
    pub id: String,
    /// `final` or `checkpoint-<step>`.
    pub source: String,
    /// The training step of that adapter.
    pub step: u64,
    /// The rows' file name.
    pub dataset: String,
    /// Where it is.
    pub status: TaskStatus,
    /// RFC 3339 time it was asked for.
    pub created_at: String,
    /// RFC 3339 time it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The scores, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<EvalScores>,
    /// The full report (every row and reply), downloadable from
    /// `GET /v1/jobs/:id/artifacts/<pathname>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_pathname: Option<String>,
}

/// `GET /v1/jobs/:id/evals` answer, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalList {
    /// The job's evaluations.
    pub evals: Vec<EvalInfo>,
}
