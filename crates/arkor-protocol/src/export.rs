//! Exports of a job's adapter (`POST /v1/jobs/:id/export`, `GET /v1/jobs/:id/exports`):
//! the adapter merged into its base as a transformers directory or a GGUF, the adapter as
//! a llama.cpp LoRA GGUF, or a GGUF with an Ollama `Modelfile`.

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

/// Where an export is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    /// Being written.
    Running,
    /// Written; its files can be downloaded.
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
    pub status: ExportStatus,
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
