//! Names of the job events, as they appear in SSE `event:` lines and the JSON `type`
//! field. They are the reference system's names plus `training.cancelled`.

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

/// Every job event name, in lifecycle order.
pub const ALL: [&str; 6] = [
    TRAINING_STARTED,
    TRAINING_LOG,
    CHECKPOINT_SAVED,
    TRAINING_COMPLETED,
    TRAINING_FAILED,
    TRAINING_CANCELLED,
];
