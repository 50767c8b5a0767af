//! Fine-tune open-weight LLMs from Rust.
//!
//! A [`Trainer`] describes one LoRA fine-tune (base model, dataset, LoRA settings,
//! hyperparameters, callbacks). [`Trainer::start`] submits it to an arkor backend
//! (`arkor dev`, `arkor start` and `arkor server` run one; nothing leaves your machine
//! unless you point it elsewhere), [`Trainer::wait`] follows its events and calls your
//! callbacks, [`Trainer::cancel`] stops it. [`Arkor`] registers a project's trainers and
//! gives its binary the entry point that `arkor start` and Studio call.
//!
//! # Quick start
//!
//! ```no_run
//! use arkor::{Arkor, Dataset, Lora, Model, Trainer};
//!
//! fn trainer() -> Trainer {
//!     Trainer::builder("support-bot", Model::arkor_tiny(), Dataset::jsonl("data/train.jsonl"))
//!         .lora(Lora::new(16, 32.0))
//!         .max_steps(100)
//!         .learning_rate(1e-2)
//!         .save_steps(50)
//!         .on_log(|log| async move {
//!             if let Some(loss) = log.loss {
//!                 println!("step={} loss={loss:.4}", log.step);
//!             }
//!             Ok(())
//!         })
//!         .on_checkpoint(|ckpt| async move {
//!             let reply = ckpt.infer(arkor::InferArgs::user("What is arkor?")).await?;
//!             println!("checkpoint {} says: {reply}", ckpt.step);
//!             Ok(())
//!         })
//!         .on_completed(|done| async move {
//!             println!("adapter files: {}", done.artifacts.len());
//!             Ok(())
//!         })
//!         .on_failed(|failed| async move {
//!             eprintln!("training failed: {}", failed.error);
//!             Ok(())
//!         })
//!         .build()
//!         .expect("valid settings")
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     Arkor::new().trainer(trainer()).main()
//! }
//! ```
//!
//! Callbacks are async closures returning `Result<(), BoxError>`, awaited one at a time in
//! event order; an error ends `wait` with that error.

#![warn(missing_docs)]

mod client;
mod config;
mod credentials;
mod entry;
mod trainer;

pub use arkor_protocol::endpoint::{
    AuthMode, CreateDeploymentInput, CreateDeploymentKeyResult, DeploymentDto, DeploymentKeyDto,
    DeploymentStats, DeploymentTarget, EndpointRequestDto, RetentionMode, UpdateDeploymentInput,
};
pub use arkor_protocol::inference::{
    AdapterRef, ChatMessage, JsonSchemaFormat, ResponseFormat, StructuredOutputs,
};
pub use arkor_protocol::job::{ArtifactFile, Job, JobStatus};
pub use arkor_protocol::tasks::{
    EvalInfo, EvalRequest, EvalScores, ExportInfo, ExportRequest, KeyScore, TaskStatus,
};
pub use client::{ApiError, Client, ProjectScope, client_header};
pub use config::{
    BaseQuant, Dataset, DatasetFormat, Lora, Model, Optimizer, SUPPORTED_MODELS, Scheduler,
    TrainerConfigError,
};
pub use credentials::{
    Credentials, CredentialsKind, DEFAULT_BACKEND_URL, ProjectState, ScopeError, arkor_home,
    backend_url, credentials_path, ensure_credentials, ensure_project_state, project_slug,
    read_credentials, write_credentials, write_private,
};
pub use entry::{Arkor, Manifest, ManifestTrainer, RunError};
pub use tokio_util::sync::CancellationToken;
pub use trainer::{
    BoxError, CancelledContext, CheckpointContext, CompletedContext, Connection, Deploy, Error,
    FailedContext, InferArgs, JobEvents, LogContext, StartedContext, Trainer, TrainerBuilder,
    TrainingResult, backoff,
};
