//! Job events: the SSE `event:` names and the JSON payloads (`data:`), which repeat the
//! name in `type` and always carry `jobId` and `timestamp`. The reference system's events
//! plus `training.cancelled`.

use serde::{Deserialize, Serialize};

use crate::job::ArtifactFile;

/// Training began on a worker.
pub const TRAINING_STARTED: &str = "training.started";
/// Metrics of a logging step (loss, learning rate, eval loss, epoch, throughput).
pub const TRAINING_LOG: &str = "training.log";
/// A checkpoint adapter was written.
pub const CHECKPOINT_SAVED: &str = "checkpoint.saved";
/// Training finished; the final adapter is available.
pub const TRAINING_COMPLETED: &str = "training.completed";
/// Training stopped on an error.
pub const TRAINING_FAILED: &str = "training.failed";
/// Training was cancelled by the user.
pub const TRAINING_CANCELLED: &str = "training.cancelled";
/// SSE keepalive frame name.
pub const PING: &str = "ping";
/// SSE sentinel after a terminal event.
pub const END: &str = "end";

/// Every job event name, in lifecycle order.
pub const ALL: [&str; 6] = [
    TRAINING_STARTED,
    TRAINING_LOG,
    CHECKPOINT_SAVED,
    TRAINING_COMPLETED,
    TRAINING_FAILED,
    TRAINING_CANCELLED,
];

/// What happened, with its fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// `training.started`.
    #[serde(rename = "training.started")]
    Started {
        /// Steps, rows and parameters of the run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata: Option<StartedMetadata>,
    },
    /// `training.log`: a logging step, an eval step, or both.
    #[serde(rename = "training.log", rename_all = "camelCase")]
    Log {
        /// Optimiser steps completed.
        step: u64,
        /// Mean training loss of the window (absent on eval-only frames).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loss: Option<f64>,
        /// Loss on the eval split (only on eval steps).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eval_loss: Option<f64>,
        /// Learning rate of the last step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        learning_rate: Option<f64>,
        /// Fractional epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<f64>,
        /// Rows per second.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        samples_per_second: Option<f64>,
        /// Input tokens per second (arkor).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens_per_second: Option<f64>,
        /// Gradient norm before clipping (arkor).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grad_norm: Option<f64>,
        /// Steps planned (arkor).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total_steps: Option<u64>,
        /// Input tokens trained on since the run began, padding excluded (arkor).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens_seen: Option<u64>,
    },
    /// `checkpoint.saved`.
    #[serde(rename = "checkpoint.saved")]
    CheckpointSaved {
        /// Step of the checkpoint.
        step: u64,
        /// Its files.
        #[serde(default)]
        artifacts: Vec<ArtifactFile>,
    },
    /// `training.completed`.
    #[serde(rename = "training.completed")]
    Completed {
        /// Final metrics.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metrics: Option<CompletedMetrics>,
        /// Files of the final adapter.
        #[serde(default)]
        artifacts: Vec<ArtifactFile>,
    },
    /// `training.failed`.
    #[serde(rename = "training.failed")]
    Failed {
        /// What went wrong.
        error: String,
        /// Last completed step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<u64>,
    },
    /// `training.cancelled` (arkor).
    #[serde(rename = "training.cancelled")]
    Cancelled {
        /// Last completed step.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<u64>,
    },
}

impl EventKind {
    /// The SSE event name (also the JSON `type`).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Started { .. } => TRAINING_STARTED,
            EventKind::Log { .. } => TRAINING_LOG,
            EventKind::CheckpointSaved { .. } => CHECKPOINT_SAVED,
            EventKind::Completed { .. } => TRAINING_COMPLETED,
            EventKind::Failed { .. } => TRAINING_FAILED,
            EventKind::Cancelled { .. } => TRAINING_CANCELLED,
        }
    }

    /// Whether the job ends with this event.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            EventKind::Completed { .. } | EventKind::Failed { .. } | EventKind::Cancelled { .. }
        )
    }
}

/// `training.started` metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartedMetadata {
    /// Steps the run will take.
    pub total_steps: u64,
    /// First step (non-zero when resuming).
    pub start_step: u64,
    /// Training rows.
    pub train_rows: u64,
    /// Held-out rows.
    pub eval_rows: u64,
    /// LoRA parameters being trained.
    pub trainable_parameters: u64,
    /// The dataset report, one line.
    pub dataset: String,
    /// Version of the arkor that trains (arkor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arkor_version: Option<String>,
    /// SHA-256 of the dataset files as read for this run, in order (one file: its digest;
    /// several: the digest of their digests) (arkor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_sha256: Option<String>,
}

/// `training.completed` metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedMetrics {
    /// Steps completed.
    pub step: u64,
    /// Mean training loss over the run.
    pub train_loss: f64,
}

/// A persisted job event as it travels in an SSE `data:` line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobEvent {
    /// The job.
    pub job_id: String,
    /// ISO 8601, when the backend persisted it.
    pub timestamp: String,
    /// Name and fields.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// `GET /v1/jobs/:id` may include the event history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The SSE `id:` (monotonic across the backend).
    pub id: u64,
    /// The event.
    #[serde(flatten)]
    pub event: JobEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_frame_shape() {
        let e = JobEvent {
            job_id: "job_1".into(),
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            kind: EventKind::Log {
                step: 3,
                loss: Some(1.5),
                eval_loss: None,
                learning_rate: Some(1e-4),
                epoch: None,
                samples_per_second: None,
                tokens_per_second: None,
                grad_norm: None,
                total_steps: Some(10),
                tokens_seen: Some(512),
            },
        };
        let json = serde_json::to_string(&e).unwrap();
        expect_test::expect![[r#"{"jobId":"job_1","timestamp":"2026-01-01T00:00:00.000Z","type":"training.log","step":3,"loss":1.5,"learningRate":0.0001,"totalSteps":10,"tokensSeen":512}"#]].assert_eq(&json);
        assert_eq!(serde_json::from_str::<JobEvent>(&json).unwrap(), e);
        for name in ALL {
            assert!(name.starts_with("training.") || name == CHECKPOINT_SAVED);
        }
    }
}
