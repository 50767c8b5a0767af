//! The closed set of events the engine emits while training.
//!
//! These are internal, non-serde types: the CLI renders them as a progress bar and a
//! metrics file, and the backend converts them to its wire events and persists them.
//! Every run emits `Started`, then `Log`/`Eval`/`CheckpointSaved` in step order, then
//! exactly one terminal event: `Completed`, `Failed` or `Cancelled`.

use std::path::PathBuf;

/// One engine event.
#[derive(Clone, Debug, PartialEq)]
pub enum EngineEvent {
    /// Setup finished (model loaded, data prepared) and the first step is about to run.
    Started(RunInfo),
    /// Training metrics of one logging window.
    Log(StepMetrics),
    /// Loss on the eval split.
    Eval {
        /// Optimiser step the adapter had reached.
        step: usize,
        /// Mean token loss over the eval split.
        eval_loss: f64,
        /// Fractional epoch at that step.
        epoch: f64,
    },
    /// A checkpoint directory was written.
    CheckpointSaved {
        /// The step it captures.
        step: usize,
        /// `output/checkpoint-<step>`.
        dir: PathBuf,
        /// The files in it.
        files: Vec<PathBuf>,
    },
    /// Training finished and the final adapter was written.
    Completed {
        /// Steps run in total.
        step: usize,
        /// `output/final`.
        dir: PathBuf,
        /// The adapter files.
        files: Vec<PathBuf>,
        /// Mean training loss over the whole run.
        train_loss: f64,
    },
    /// Training stopped on an error.
    Failed {
        /// What went wrong, as shown to the user.
        message: String,
    },
    /// The cancellation token fired; training stopped at a step boundary.
    Cancelled {
        /// Steps completed before stopping.
        step: usize,
    },
}

impl EngineEvent {
    /// Whether this event ends the run.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            EngineEvent::Completed { .. }
                | EngineEvent::Failed { .. }
                | EngineEvent::Cancelled { .. }
        )
    }
}

/// Facts about a run known when it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// Optimiser steps the run will take.
    pub total_steps: usize,
    /// First step to run (non-zero when resuming).
    pub start_step: usize,
    /// Training rows after the eval split.
    pub train_rows: usize,
    /// Held-out rows.
    pub eval_rows: usize,
    /// Trainable LoRA scalars.
    pub trainable_parameters: usize,
    /// The dataset report's summary lines.
    pub dataset_summary: String,
}

/// Metrics of one logging window (the last `logging_steps` steps).
#[derive(Clone, Debug, PartialEq)]
pub struct StepMetrics {
    /// Optimiser steps completed.
    pub step: usize,
    /// Steps the run will take.
    pub total_steps: usize,
    /// Mean token loss over the window.
    pub loss: f64,
    /// Learning rate used by the last step.
    pub learning_rate: f64,
    /// Fractional epoch.
    pub epoch: f64,
    /// Global gradient norm before clipping, last step.
    pub grad_norm: f64,
    /// Rows per second over the window.
    pub samples_per_second: f64,
    /// Input tokens (padding excluded) per second over the window.
    pub tokens_per_second: f64,
    /// Input tokens (padding excluded) trained on since the run began, resumed parts
    /// included: the x axis that compares runs of different batch shapes.
    pub tokens_seen: u64,
    /// Seconds since the first step of this process started.
    pub elapsed_seconds: f64,
}

/// Receives engine events.
pub trait EventSink {
    /// Called for every event, in order.
    fn emit(&mut self, event: EngineEvent);
}

impl<F: FnMut(EngineEvent)> EventSink for F {
    fn emit(&mut self, event: EngineEvent) {
        self(event)
    }
}
