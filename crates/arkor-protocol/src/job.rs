//! Jobs: the job object, its configuration, listing and artifacts.

use serde::{Deserialize, Serialize};

/// Lifecycle state of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, waiting for a worker slot.
    Queued,
    /// A worker is training it.
    Running,
    /// Finished; the final adapter exists.
    Completed,
    /// Stopped on an error (see `error`).
    Failed,
    /// Stopped by the user.
    Cancelled,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the job can no longer change.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// Where the training rows come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DatasetSource {
    /// A Hugging Face dataset repository (JSONL or Parquet files).
    Huggingface {
        /// Repo id, e.g. `"HuggingFaceH4/no_robots"`.
        name: String,
        /// Split; `datasetSplit` in the config overrides it. Default `"train"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        split: Option<String>,
        /// Dataset configuration name (a sub-folder of the repo).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subset: Option<String>,
    },
    /// A JSONL, JSON or Parquet file on the backend's disk (absolute path).
    Jsonl {
        /// Absolute path of the file.
        path: String,
    },
}

/// `datasetFormat`: a format name (`"auto"`, `"chat"`, `"prompt_completion"`, `"alpaca"`,
/// `"text"`) or the reference system's object form `{ "type": "chatml" }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DatasetFormatSpec {
    /// A bare name.
    Name(String),
    /// `{ "type": name }`.
    Object {
        /// The format name.
        #[serde(rename = "type")]
        kind: String,
    },
}

impl DatasetFormatSpec {
    /// The format name, whichever way it was written.
    pub fn name(&self) -> &str {
        match self {
            DatasetFormatSpec::Name(n) | DatasetFormatSpec::Object { kind: n } => n,
        }
    }
}

/// Configuration of a training job: the reference system's `JobConfig` keys plus arkor's
/// extensions (marked). Absent keys take the engine's defaults; unknown keys are an error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobConfig {
    /// Base model: `arkor/tiny`, a Hugging Face repo id, or an absolute model directory.
    pub model: String,
    /// Training rows.
    pub dataset_source: Option<DatasetSource>,
    /// LoRA rank.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora_r: Option<u64>,
    /// LoRA alpha.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora_alpha: Option<f64>,
    /// LoRA dropout (arkor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora_dropout: Option<f64>,
    /// Projections to adapt (arkor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora_target_modules: Option<Vec<String>>,
    /// rsLoRA scaling (arkor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora_use_rslora: Option<bool>,
    /// Longest example in tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// 4-bit loading: `true` keeps the frozen base in 4-bit blocks (`baseQuant: "q4_1"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_in4bit: Option<bool>,
    /// How the frozen base is kept in memory: `none`, `q8_0` or `q4_1` (arkor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_quant: Option<String>,
    /// Labels a remote worker must have to run this job, e.g. `["gpu"]` (arkor; see
    /// `docs/deploy.md`). A job with labels never runs on the backend's own queue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worker_labels: Vec<String>,
    /// Recompute each block's activations in the backward pass to save memory (arkor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gradient_checkpointing: Option<bool>,
    /// Optimiser steps (overrides epochs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// Epochs when `maxSteps` is unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_train_epochs: Option<f64>,
    /// Peak learning rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// Rows per micro-batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
    /// Micro-batches per optimiser step (arkor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gradient_accumulation_steps: Option<u64>,
    /// AdamW weight decay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Optimiser name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optim: Option<String>,
    /// Learning-rate schedule name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_scheduler_type: Option<String>,
    /// Linear warm-up steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<u64>,
    /// Steps per `training.log` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging_steps: Option<u64>,
    /// Steps per checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_steps: Option<u64>,
    /// Steps per evaluation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_steps: Option<u64>,
    /// Fraction of rows held out for evaluation (arkor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_split: Option<f64>,
    /// Loss on assistant tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_on_responses_only: Option<bool>,
    /// Row format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_format: Option<DatasetFormatSpec>,
    /// Split of a Hugging Face dataset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_split: Option<String>,
    /// 50 rows, at most 10 steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Seed of initialisation, shuffling and dropout (arkor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Gradient clipping norm (arkor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_grad_norm: Option<f64>,
}

/// `POST /v1/jobs` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJobRequest {
    /// Display name.
    pub name: String,
    /// What to train.
    pub config: JobConfig,
}

/// `POST /v1/datasets` answer: where the backend stored an uploaded dataset file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetUpload {
    /// Use as the job config's `datasetSource`.
    pub dataset_source: DatasetSource,
    /// Bytes stored.
    pub size: u64,
    /// Hex SHA-256 of the content (uploads are stored by content).
    pub sha256: String,
}

/// Training progress kept on the job for listings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    /// Steps completed.
    pub step: u64,
    /// Steps planned (0 until training starts).
    pub total_steps: u64,
    /// Latest training loss.
    pub loss: Option<f64>,
}

/// A job as the API returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// `job_...`.
    pub id: String,
    /// Owning organisation.
    pub org_id: String,
    /// Owning project.
    pub project_id: String,
    /// Display name.
    pub name: String,
    /// Lifecycle state.
    pub status: JobStatus,
    /// The submitted configuration.
    pub config: JobConfig,
    /// Why it failed.
    pub error: Option<String>,
    /// ISO 8601.
    pub created_at: String,
    /// When a worker began it.
    pub started_at: Option<String>,
    /// When it reached a terminal status.
    pub completed_at: Option<String>,
    /// Latest progress (arkor).
    pub progress: JobProgress,
    /// Place in the backend's queue while `queued`: 1 starts next (arkor). Absent for
    /// jobs in any other status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u64>,
    /// The remote worker (`arkor worker`) that leased it last (arkor). Absent for jobs the
    /// backend runs itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Leases it has had: 2 or more after a lost worker's job was requeued (arkor). Absent
    /// for jobs never leased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

/// `POST /v1/jobs` and `GET /v1/jobs/:id` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobResponse {
    /// The job.
    pub job: Job,
}

/// `GET /v1/jobs` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Jobs matching the filters, all pages together.
    pub total: u64,
}

/// One file of an adapter or checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactFile {
    /// Path relative to the job's artifact root, e.g. `checkpoint-40/adapter_model.safetensors`.
    pub pathname: String,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
}

/// Whether an artifact set is the final adapter or a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// The adapter written when training completed.
    Final,
    /// An intermediate checkpoint.
    Checkpoint,
}

/// An adapter (final or checkpoint) and its files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactSet {
    /// Final or checkpoint.
    pub kind: ArtifactKind,
    /// Step it was saved at.
    pub step: u64,
    /// The `model` id `/v1/chat/completions` accepts for it.
    pub model_id: String,
    /// Its files.
    pub files: Vec<ArtifactFile>,
}

/// `GET /v1/jobs/:id/artifacts` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactList {
    /// Checkpoints by step, then the final adapter.
    pub artifacts: Vec<ArtifactSet>,
}

/// The `model` id of a job's final adapter.
pub fn final_model_id(job_id: &str) -> String {
    format!("ft:{job_id}")
}

/// The `model` id of a job's checkpoint.
pub fn checkpoint_model_id(job_id: &str, step: u64) -> String {
    format!("ft:{job_id}:checkpoint-{step}")
}

/// Parses a fine-tune `model` id into `(job id, checkpoint step)`.
pub fn parse_model_id(id: &str) -> Option<(&str, Option<u64>)> {
    let rest = id.strip_prefix("ft:")?;
    match rest.split_once(":checkpoint-") {
        Some((job, step)) => Some((job, Some(step.parse().ok()?))),
        None => Some((rest, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_round_trip() {
        assert_eq!(parse_model_id(&final_model_id("job_1")), Some(("job_1", None)));
        assert_eq!(parse_model_id(&checkpoint_model_id("job_1", 40)), Some(("job_1", Some(40))));
        assert_eq!(parse_model_id("arkor/tiny"), None);
        assert_eq!(parse_model_id("ft:job_1:checkpoint-x"), None);
    }

    #[test]
    fn config_uses_reference_keys() {
        let json = r#"{"model":"arkor/tiny","datasetSource":{"type":"huggingface","name":"a/b"},
            "loraR":8,"loraAlpha":16,"maxSteps":5,"datasetFormat":{"type":"chatml"},"dryRun":true}"#;
        let c: JobConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.lora_r, Some(8));
        assert_eq!(c.dataset_format.as_ref().map(|f| f.name()), Some("chatml"));
        let err = serde_json::from_str::<JobConfig>(r#"{"model":"m","loraRank":8}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `loraRank`"), "{err}");
    }
}
