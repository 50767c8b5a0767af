//! [`Trainer`]: a training job described in Rust, submitted to the backend, followed
//! over its event stream with callbacks.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arkor_protocol::endpoint::{
    AuthMode, CreateDeploymentInput, DeploymentDto, DeploymentTarget, UpdateDeploymentInput,
};
use arkor_protocol::event::{EventKind, JobEvent};
use arkor_protocol::inference::{AdapterRef, ChatMessage, ResponseFormat, StructuredOutputs};
use arkor_protocol::job::{
    ArtifactFile, DatasetFormatSpec, DatasetSource, Job, JobConfig, JobStatus,
};
use arkor_protocol::tasks::{EvalInfo, EvalRequest, TaskStatus};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::client::{ApiError, Client, ProjectScope};
use crate::config::{Dataset, Lora, Model, TrainerConfigError};
use crate::credentials::{self, Credentials, CredentialsKind, ScopeError};

/// The error type callbacks return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type Callback<C> = Arc<dyn Fn(C) -> BoxFuture + Send + Sync>;

/// Why [`Trainer::start`], [`Trainer::wait`] or [`Trainer::cancel`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Credentials or project scope could not be resolved.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// The backend refused the request (401, 403, 410 and 426 end `wait` at once).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A callback returned an error; `wait` stops without retrying.
    #[error("the {callback} callback failed: {source}")]
    Callback {
        /// Which callback.
        callback: &'static str,
        /// Its error.
        source: BoxError,
    },
    /// The stream failed this many times in a row (only with a reconnect limit).
    #[error("the event stream failed {attempts} consecutive times; giving up: {source}")]
    GaveUp {
        /// Consecutive failures.
        attempts: u32,
        /// The last failure.
        source: Box<Error>,
    },
    /// The abort token fired; the job itself keeps running (call `cancel` to stop it).
    #[error("stopped waiting: the abort token was cancelled (the job was not cancelled)")]
    Aborted,
    /// The event stream broke mid-way.
    #[error("the event stream broke: {0}")]
    Stream(String),
    /// An evaluation ran and failed (its message says why).
    #[error("evaluation {id} failed: {message}")]
    Eval {
        /// The evaluation id.
        id: String,
        /// The backend's error.
        message: String,
    },
    /// Reading the local dataset for upload failed.
    #[error("failed to read the dataset {path}: {message}")]
    Dataset {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// `on_started`: the job began training.
#[derive(Clone, Debug)]
pub struct StartedContext {
    /// The job, `running`.
    pub job: Job,
}

/// `on_log`: metrics of a logging or eval step; absent metrics are `None`.
#[derive(Clone, Debug)]
pub struct LogContext {
    /// Optimiser steps completed.
    pub step: u64,
    /// Training loss.
    pub loss: Option<f64>,
    /// Eval loss (eval steps only).
    pub eval_loss: Option<f64>,
    /// Learning rate.
    pub learning_rate: Option<f64>,
    /// Fractional epoch.
    pub epoch: Option<f64>,
    /// Rows per second.
    pub samples_per_second: Option<f64>,
    /// Steps planned, when the backend says.
    pub total_steps: Option<u64>,
    /// The job.
    pub job: Job,
}

/// `on_checkpoint`: a checkpoint adapter was saved; [`CheckpointContext::infer`] chats
/// with it.
#[derive(Clone)]
pub struct CheckpointContext {
    /// The checkpoint's step.
    pub step: u64,
    /// The adapter reference to pass to inference.
    pub adapter: AdapterRef,
    /// Its files.
    pub artifacts: Vec<ArtifactFile>,
    /// The job.
    pub job: Job,
    session: Arc<Session>,
}

/// `on_completed`: the final adapter exists.
#[derive(Clone, Debug)]
pub struct CompletedContext {
    /// The job, `completed`.
    pub job: Job,
    /// The final adapter's files.
    pub artifacts: Vec<ArtifactFile>,
}

/// `on_failed`: training stopped on an error.
#[derive(Clone, Debug)]
pub struct FailedContext {
    /// The job, `failed`.
    pub job: Job,
    /// What went wrong.
    pub error: String,
}

/// `on_cancelled`: the job was cancelled.
#[derive(Clone, Debug)]
pub struct CancelledContext {
    /// The job, `cancelled`.
    pub job: Job,
}

/// Arguments of [`CheckpointContext::infer`].
#[derive(Clone, Debug, Default)]
pub struct InferArgs {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature (0 = greedy).
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// New tokens at most.
    pub max_tokens: Option<u64>,
    /// Text, any JSON object, or JSON valid against a schema.
    pub response_format: Option<ResponseFormat>,
    /// A JSON schema, regex, choice list or grammar (vLLM's extension).
    pub structured_outputs: Option<StructuredOutputs>,
    /// Tool definitions (OpenAI shape), forwarded as given.
    pub tools: Option<serde_json::Value>,
    /// `"auto"`, `"none"`, `"required"` or `{"type": "function", "function": {"name"}}`.
    pub tool_choice: Option<serde_json::Value>,
}

impl InferArgs {
    /// One user message.
    pub fn user(text: impl Into<String>) -> InferArgs {
        InferArgs {
            messages: vec![ChatMessage {
                role: "user".to_owned(),
                content: Some(text.into()),
                ..ChatMessage::default()
            }],
            ..InferArgs::default()
        }
    }
}

impl CheckpointContext {
    /// Chats with this checkpoint; returns the whole reply.
    pub async fn infer(&self, args: InferArgs) -> Result<String, Error> {
        let body = self.body(&args, false);
        let resp = self.session.client.chat(&self.session.scope, &body).await?;
        let v: serde_json::Value = resp.json().await.map_err(|e| Error::Stream(e.to_string()))?;
        Ok(v["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned())
    }

    /// Chats with this checkpoint, streaming: the raw `text/event-stream` response of
    /// OpenAI chunks ending with `data: [DONE]`.
    pub async fn infer_stream(&self, args: InferArgs) -> Result<reqwest::Response, Error> {
        let body = self.body(&args, true);
        Ok(self.session.client.chat(&self.session.scope, &body).await?)
    }

    fn body(&self, args: &InferArgs, stream: bool) -> serde_json::Value {
        let mut body = serde_json::json!({
            "messages": args.messages, "adapter": self.adapter, "stream": stream,
        });
        if let Some(t) = args.temperature {
            body["temperature"] = t.into();
        }
        if let Some(p) = args.top_p {
            body["topP"] = p.into();
        }
        if let Some(m) = args.max_tokens {
            body["maxTokens"] = m.into();
        }
        if let Some(f) = &args.response_format {
            body["responseFormat"] = serde_json::to_value(f).expect("formats serialise");
        }
        if let Some(s) = &args.structured_outputs {
            body["structuredOutputs"] = serde_json::to_value(s).expect("constraints serialise");
        }
        if let Some(t) = &args.tools {
            body["tools"] = t.clone();
        }
        if let Some(c) = &args.tool_choice {
            body["toolChoice"] = c.clone();
        }
        body
    }
}

impl CheckpointContext {
    /// Scores this checkpoint on held-out rows (a JSONL/JSON/Parquet file of this machine,
    /// uploaded when the backend is remote) and waits for the result: the backend answers
    /// every row greedily and compares with its last assistant message (`POST
    /// /v1/jobs/:id/eval`). Studio shows the scores on the job's page.
    pub async fn evaluate(
        &self,
        dataset: impl AsRef<std::path::Path>,
        max_tokens: Option<u32>,
    ) -> Result<EvalInfo, Error> {
        let (client, scope) = (&self.session.client, &self.session.scope);
        let path = std::path::absolute(dataset.as_ref()).map_err(|e| Error::Dataset {
            path: dataset.as_ref().to_path_buf(),
            message: e.to_string(),
        })?;
        let req = EvalRequest {
            dataset_path: backend_path(&self.session, &path).await?,
            checkpoint_step: Some(self.step),
            max_tokens,
            system_prompt: None,
        };
        let started = client.eval_job(scope, &self.job.id, &req).await?;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let list = client.list_evals(scope, &self.job.id).await?;
            let Some(info) = list.evals.into_iter().find(|e| e.id == started.id) else { continue };
            match info.status {
                TaskStatus::Running => {}
                TaskStatus::Completed => return Ok(info),
                TaskStatus::Failed => {
                    return Err(Error::Eval {
                        id: info.id,
                        message: info.error.unwrap_or_default(),
                    });
                }
            }
        }
    }
}

/// A path the backend can read: the local file itself when the backend runs on this
/// machine, else the path of an upload of it.
async fn backend_path(session: &Session, path: &std::path::Path) -> Result<String, Error> {
    if is_loopback(session.client.base_url()) {
        return Ok(path.to_string_lossy().into_owned());
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Dataset { path: path.to_path_buf(), message: e.to_string() })?;
    let filename = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match session.client.upload_dataset(&session.scope, &filename, bytes).await?.dataset_source {
        DatasetSource::Jsonl { path } => Ok(path),
        other => Err(Error::Dataset {
            path: path.to_path_buf(),
            message: format!("the backend stored the upload as {other:?}, not a file"),
        }),
    }
}

impl std::fmt::Debug for CheckpointContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointContext")
            .field("step", &self.step)
            .field("job", &self.job.id)
            .finish()
    }
}

/// What [`Trainer::wait`] ends with.
#[derive(Clone, Debug)]
pub struct TrainingResult {
    /// The job as last seen (terminal, unless the stream ended with `end` first).
    pub job: Job,
    /// The final adapter's files (empty unless completed).
    pub artifacts: Vec<ArtifactFile>,
}

#[derive(Clone, Default)]
struct Callbacks {
    started: Option<Callback<StartedContext>>,
    log: Option<Callback<LogContext>>,
    checkpoint: Option<Callback<CheckpointContext>>,
    completed: Option<Callback<CompletedContext>>,
    failed: Option<Callback<FailedContext>>,
    cancelled: Option<Callback<CancelledContext>>,
}

/// Connection settings; the defaults suit users, tests override them.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Backend URL (default: [`credentials::backend_url`]).
    pub base_url: Option<String>,
    /// Bearer token (default: stored or anonymous credentials).
    pub token: Option<String>,
    /// Project scope (default: `.arkor/state.json`, created on first use).
    pub scope: Option<ProjectScope>,
    /// Project directory (default: the current directory).
    pub cwd: Option<PathBuf>,
    /// Home of `credentials.json` (default: [`credentials::arkor_home`]).
    pub home: Option<PathBuf>,
    /// First reconnect delay (1 s).
    pub reconnect_delay: Duration,
    /// Longest reconnect delay (60 s).
    pub max_reconnect_delay: Duration,
    /// Consecutive failures before giving up (default: never).
    pub max_reconnect_attempts: Option<u32>,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            base_url: None,
            token: None,
            scope: None,
            cwd: None,
            home: None,
            reconnect_delay: Duration::from_secs(1),
            max_reconnect_delay: Duration::from_secs(60),
            max_reconnect_attempts: None,
        }
    }
}

struct Session {
    client: Client,
    scope: ProjectScope,
}

struct Inner {
    name: String,
    model: Model,
    dataset: Dataset,
    config: JobConfig,
    callbacks: Callbacks,
    connection: Connection,
    deploy: Option<Deploy>,
    abort: CancellationToken,
    session: tokio::sync::OnceCell<Arc<Session>>,
    job: tokio::sync::OnceCell<Job>,
}

/// An endpoint a trainer's final adapter is deployed to when a run completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deploy {
    slug: String,
    auth_mode: AuthMode,
}

impl Deploy {
    /// The endpoint with this slug (2-50 of `a-z 0-9 -`), calls needing an API key.
    pub fn endpoint(slug: impl Into<String>) -> Deploy {
        Deploy { slug: slug.into(), auth_mode: AuthMode::FixedApiKey }
    }

    /// Who may call it when it is created (an existing endpoint keeps its setting).
    pub fn auth_mode(mut self, auth_mode: AuthMode) -> Deploy {
        self.auth_mode = auth_mode;
        self
    }
}

/// A training job described in Rust. Cheap to clone; clones share the submitted job.
#[derive(Clone)]
pub struct Trainer {
    inner: Arc<Inner>,
}

/// Builds a [`Trainer`]; see [`Trainer::builder`].
pub struct TrainerBuilder {
    name: String,
    model: Model,
    dataset: Dataset,
    config: JobConfig,
    callbacks: Callbacks,
    connection: Connection,
    deploy: Option<Deploy>,
    abort: CancellationToken,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident : $ty:ty => $field:ident;)*) => {
        $( $(#[$doc])* pub fn $name(mut self, value: $ty) -> Self {
            self.config.$field = Some(value.into());
            self
        } )*
    };
}

/// The `on_*` registration methods: each boxes an async closure into its slot.
macro_rules! callbacks {
    ($($(#[$doc:meta])* $name:ident($ctx:ty) => $slot:ident;)*) => {
        $( $(#[$doc])*
        pub fn $name<F, Fut>(mut self, f: F) -> Self
        where
            F: Fn($ctx) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
        {
            self.callbacks.$slot = Some(Arc::new(move |c| Box::pin(f(c))));
            self
        } )*
    };
}

impl TrainerBuilder {
    /// LoRA settings (default r 16, alpha 16, every projection).
    pub fn lora(mut self, lora: Lora) -> Self {
        self.config.lora_r = Some(lora.r);
        self.config.lora_alpha = Some(lora.alpha);
        self.config.lora_dropout = lora.dropout;
        self.config.lora_target_modules = lora.target_modules.clone();
        self.config.lora_use_rslora = lora.use_rslora.then_some(true);
        self.config.max_length = lora.max_length.or(self.config.max_length);
        self
    }

    setters! {
        /// Optimiser steps; overrides epochs.
        max_steps: u64 => max_steps;
        /// Epochs when `max_steps` is unset.
        num_train_epochs: f64 => num_train_epochs;
        /// Peak learning rate, in (0, 1).
        learning_rate: f64 => learning_rate;
        /// Rows per micro-batch.
        batch_size: u64 => batch_size;
        /// Micro-batches per optimiser step.
        gradient_accumulation_steps: u64 => gradient_accumulation_steps;
        /// AdamW weight decay, in [0, 1).
        weight_decay: f64 => weight_decay;
        /// Linear warm-up steps.
        warmup_steps: u64 => warmup_steps;
        /// Steps per `on_log` call.
        logging_steps: u64 => logging_steps;
        /// Steps per checkpoint (and `on_checkpoint` call).
        save_steps: u64 => save_steps;
        /// Steps per evaluation.
        eval_steps: u64 => eval_steps;
        /// Fraction of rows held out for evaluation, in [0, 0.5].
        eval_split: f64 => eval_split;
        /// Loss on assistant tokens only (default true).
        train_on_responses_only: bool => train_on_responses_only;
        /// Split of a Hugging Face dataset.
        dataset_split: String => dataset_split;
        /// Longest example in tokens.
        max_length: u64 => max_length;
        /// 50 rows and at most 10 steps: the whole pipeline, fast.
        dry_run: bool => dry_run;
        /// Seed of initialisation, shuffling and dropout.
        seed: u64 => seed;
        /// Gradient clipping norm.
        max_grad_norm: f64 => max_grad_norm;
        /// Recompute each block's activations in the backward pass: far less memory for
        /// long rows and big batches, about a third more compute.
        gradient_checkpointing: bool => gradient_checkpointing;
    }

    /// The optimiser.
    pub fn optimizer(mut self, o: crate::config::Optimizer) -> Self {
        self.config.optim = Some(o.name().to_owned());
        self
    }

    /// How the frozen base is kept in memory (CPU only): quantized blocks fit larger models
    /// in less RAM.
    pub fn base_quant(mut self, q: crate::config::BaseQuant) -> Self {
        self.config.base_quant = Some(q.name().to_owned());
        self
    }

    /// Labels a remote worker must have to run this trainer's jobs, e.g. `["gpu"]`
    /// (`arkor worker --labels gpu`); such jobs never run on the backend's own queue.
    pub fn worker_labels<I, S>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.worker_labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// The learning-rate schedule.
    pub fn scheduler(mut self, s: crate::config::Scheduler) -> Self {
        self.config.lr_scheduler_type = Some(s.name().to_owned());
        self
    }

    /// The row format (detected by default).
    pub fn dataset_format(mut self, f: crate::config::DatasetFormat) -> Self {
        self.config.dataset_format = Some(DatasetFormatSpec::Name(f.name().to_owned()));
        self
    }

    callbacks! {
        /// Called once when training starts.
        ///
        /// ```no_run
        /// # use arkor::{Dataset, Model, Trainer};
        /// Trainer::builder("t", Model::arkor_tiny(), Dataset::jsonl("data/train.jsonl"))
        ///     .on_started(|ctx| async move {
        ///         println!("job {} started at {:?}", ctx.job.id, ctx.job.started_at);
        ///         Ok(())
        ///     });
        /// ```
        on_started(StartedContext) => started;
        /// Called for every logging and eval step.
        on_log(LogContext) => log;
        /// Called for every saved checkpoint.
        on_checkpoint(CheckpointContext) => checkpoint;
        /// Called when the job completes.
        on_completed(CompletedContext) => completed;
        /// Called when the job fails.
        on_failed(FailedContext) => failed;
        /// Called when the job is cancelled (from Studio, `arkor jobs cancel` or
        /// [`Trainer::cancel`]).
        ///
        /// ```no_run
        /// # use arkor::{Dataset, Model, Trainer};
        /// Trainer::builder("t", Model::arkor_tiny(), Dataset::jsonl("data/train.jsonl"))
        ///     .on_cancelled(|ctx| async move {
        ///         eprintln!("job {} was cancelled at step {}", ctx.job.id, ctx.job.progress.step);
        ///         Ok(())
        ///     });
        /// ```
        on_cancelled(CancelledContext) => cancelled;
    }

    /// A token that stops [`Trainer::wait`] locally (the job keeps running).
    pub fn abort_token(mut self, token: CancellationToken) -> Self {
        self.abort = token;
        self
    }

    /// Connection settings (tests, remote backends).
    pub fn connection(mut self, c: Connection) -> Self {
        self.connection = c;
        self
    }

    /// Serve the final adapter at this endpoint when a run completes: `arkor start` (and
    /// [`Arkor::run`](crate::Arkor::run)) create the endpoint, or point the existing one with
    /// this slug at the new adapter.
    pub fn deploy(mut self, deploy: Deploy) -> Self {
        self.deploy = Some(deploy);
        self
    }

    /// Checks the settings and returns the trainer.
    pub fn build(self) -> Result<Trainer, TrainerConfigError> {
        crate::config::validate(&self.name, &self.config)?;
        Ok(Trainer {
            inner: Arc::new(Inner {
                name: self.name,
                model: self.model,
                dataset: self.dataset,
                config: self.config,
                callbacks: self.callbacks,
                connection: self.connection,
                deploy: self.deploy,
                abort: self.abort,
                session: tokio::sync::OnceCell::new(),
                job: tokio::sync::OnceCell::new(),
            }),
        })
    }
}

impl Trainer {
    /// Starts describing a trainer: its name, base model and dataset are required.
    pub fn builder(name: impl Into<String>, model: Model, dataset: Dataset) -> TrainerBuilder {
        let config = JobConfig { model: model.id().to_owned(), ..JobConfig::default() };
        TrainerBuilder {
            name: name.into(),
            model,
            dataset,
            config,
            callbacks: Callbacks::default(),
            connection: Connection::default(),
            deploy: None,
            abort: CancellationToken::new(),
        }
    }

    /// The trainer's name (the job name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The base model.
    pub fn model(&self) -> &Model {
        &self.inner.model
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.inner.dataset
    }

    /// Whether an `on_log` callback is set.
    pub(crate) fn has_log_callback(&self) -> bool {
        self.inner.callbacks.log.is_some()
    }

    async fn session(&self) -> Result<Arc<Session>, Error> {
        let c = &self.inner.connection;
        self.inner
            .session
            .get_or_try_init(|| async {
                let base = c.base_url.clone().unwrap_or_else(credentials::backend_url);
                let home = c.home.clone().unwrap_or_else(credentials::arkor_home);
                let creds = match &c.token {
                    Some(t) => Credentials {
                        kind: CredentialsKind::Token,
                        token: t.clone(),
                        base_url: base.clone(),
                        org_slug: None,
                        anonymous_id: None,
                    },
                    None => credentials::ensure_credentials(&home, &base).await?,
                };
                let client = Client::new(&base, Some(creds.token.clone()));
                let scope = match &c.scope {
                    Some(s) => s.clone(),
                    None => {
                        let cwd = c
                            .cwd
                            .clone()
                            .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
                        credentials::ensure_project_state(&cwd, &creds, &client).await?
                    }
                };
                Ok::<_, Error>(Arc::new(Session { client, scope }))
            })
            .await
            .cloned()
    }

    /// Submits the job once; later and concurrent calls return the same job.
    pub async fn start(&self) -> Result<Job, Error> {
        let session = self.session().await?;
        self.inner
            .job
            .get_or_try_init(|| async {
                let mut config = self.inner.config.clone();
                config.dataset_source = Some(self.dataset_source(&session).await?);
                Ok::<_, Error>(
                    session.client.create_job(&session.scope, &self.inner.name, &config).await?,
                )
            })
            .await
            .cloned()
    }

    async fn dataset_source(&self, session: &Session) -> Result<DatasetSource, Error> {
        match self.local_dataset_source() {
            DatasetSource::Jsonl { path } => Ok(DatasetSource::Jsonl {
                path: backend_path(session, std::path::Path::new(&path)).await?,
            }),
            hub => Ok(hub),
        }
    }

    /// The dataset as this machine sees it: a file by its absolute path, or the Hub repo.
    fn local_dataset_source(&self) -> DatasetSource {
        match &self.inner.dataset {
            Dataset::Huggingface { name, split } => DatasetSource::Huggingface {
                name: name.clone(),
                split: split.clone(),
                subset: None,
            },
            Dataset::Jsonl { path } => {
                let cwd = self
                    .inner
                    .connection
                    .cwd
                    .clone()
                    .unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
                DatasetSource::Jsonl { path: cwd.join(path).to_string_lossy().into_owned() }
            }
        }
    }

    /// The job config this trainer submits, its dataset as a path of this machine (before
    /// any upload): what the manifest shows and Studio's Data tab inspects.
    pub fn job_config(&self) -> JobConfig {
        JobConfig { dataset_source: Some(self.local_dataset_source()), ..self.inner.config.clone() }
    }

    /// With [`TrainerBuilder::deploy`] and a completed job: creates the endpoint, or points
    /// the project's endpoint with that slug at this job's final adapter. `None` otherwise.
    pub async fn deploy_final(&self, job: &Job) -> Result<Option<DeploymentDto>, Error> {
        let Some(deploy) = &self.inner.deploy else { return Ok(None) };
        if job.status != JobStatus::Completed {
            return Ok(None);
        }
        let session = self.session().await?;
        let (client, scope) = (&session.client, &session.scope);
        let target =
            DeploymentTarget::Adapter { adapter: AdapterRef::Final { job_id: job.id.clone() } };
        let existing = client.list_deployments(scope).await?;
        let dto = match existing.into_iter().find(|d| d.slug == deploy.slug) {
            Some(d) => {
                let update = UpdateDeploymentInput { target: Some(target), ..Default::default() };
                client.update_deployment(scope, &d.id, &update).await?
            }
            None => {
                let create = CreateDeploymentInput {
                    slug: deploy.slug.clone(),
                    target: Some(target),
                    auth_mode: Some(deploy.auth_mode.as_str().to_owned()),
                    ..Default::default()
                };
                client.create_deployment(scope, &create).await?
            }
        };
        Ok(Some(dto))
    }

    /// Asks the backend to stop the job; a no-op before [`Trainer::start`].
    pub async fn cancel(&self) -> Result<(), Error> {
        let Some(job) = self.inner.job.get() else { return Ok(()) };
        let session = self.session().await?;
        Ok(session.client.cancel_job(&session.scope, &job.id).await?)
    }

    /// Starts the job if needed, then follows its events, calling the callbacks one at a
    /// time in event order, until a terminal event (or the stream's `end`).
    ///
    /// Reconnects with `Last-Event-ID`: 401, 403, 410 and 426 fail at once; network
    /// errors, 404, 408, 429 and 5xx retry with exponential backoff (1 s base, 60 s cap,
    /// ±25% jitter). A callback error ends `wait` with that error, without a retry.
    pub async fn wait(&self) -> Result<TrainingResult, Error> {
        self.follow(&mut |_| {}).await
    }

    /// [`Trainer::wait`], showing every event to `observe` before its callback runs.
    pub(crate) async fn follow(
        &self,
        observe: &mut (dyn FnMut(&JobEvent) + Send),
    ) -> Result<TrainingResult, Error> {
        let mut job = self.start().await?;
        let session = self.session().await?;
        let id = job.id.clone();
        let c = &self.inner.connection;
        let mut events = JobEvents::new(&session.client, &session.scope, &id, c, &self.inner.abort);
        while let Some(event) = events.next().await? {
            observe(&event);
            if let Some(done) = self.dispatch(event, &mut job, &session).await? {
                return Ok(done);
            }
        }
        Ok(TrainingResult { job, artifacts: vec![] })
    }

    async fn dispatch(
        &self,
        event: JobEvent,
        job: &mut Job,
        session: &Arc<Session>,
    ) -> Result<Option<TrainingResult>, Error> {
        let cb = &self.inner.callbacks;
        let call = |name: &'static str, fut: Option<BoxFuture>| async move {
            match fut {
                Some(f) => f.await.map_err(|source| Error::Callback { callback: name, source }),
                None => Ok(()),
            }
        };
        match event.kind {
            EventKind::Started { .. } => {
                job.status = JobStatus::Running;
                job.started_at = Some(event.timestamp);
                let ctx = StartedContext { job: job.clone() };
                call("on_started", cb.started.as_ref().map(|f| f(ctx))).await?;
            }
            EventKind::Log {
                step,
                loss,
                eval_loss,
                learning_rate,
                epoch,
                samples_per_second,
                total_steps,
                ..
            } => {
                job.progress.step = step;
                let ctx = LogContext {
                    step,
                    loss,
                    eval_loss,
                    learning_rate,
                    epoch,
                    samples_per_second,
                    total_steps,
                    job: job.clone(),
                };
                call("on_log", cb.log.as_ref().map(|f| f(ctx))).await?;
            }
            EventKind::CheckpointSaved { step, artifacts } => {
                let ctx = CheckpointContext {
                    step,
                    adapter: AdapterRef::Checkpoint { job_id: job.id.clone(), step },
                    artifacts,
                    job: job.clone(),
                    session: session.clone(),
                };
                call("on_checkpoint", cb.checkpoint.as_ref().map(|f| f(ctx))).await?;
            }
            EventKind::Completed { artifacts, .. } => {
                job.status = JobStatus::Completed;
                job.completed_at = Some(event.timestamp);
                let ctx = CompletedContext { job: job.clone(), artifacts: artifacts.clone() };
                call("on_completed", cb.completed.as_ref().map(|f| f(ctx))).await?;
                return Ok(Some(TrainingResult { job: job.clone(), artifacts }));
            }
            EventKind::Failed { error, .. } => {
                job.status = JobStatus::Failed;
                job.error = Some(error.clone());
                job.completed_at = Some(event.timestamp);
                let ctx = FailedContext { job: job.clone(), error };
                call("on_failed", cb.failed.as_ref().map(|f| f(ctx))).await?;
                return Ok(Some(TrainingResult { job: job.clone(), artifacts: vec![] }));
            }
            EventKind::Cancelled { .. } => {
                job.status = JobStatus::Cancelled;
                job.completed_at = Some(event.timestamp);
                let ctx = CancelledContext { job: job.clone() };
                call("on_cancelled", cb.cancelled.as_ref().map(|f| f(ctx))).await?;
                return Ok(Some(TrainingResult { job: job.clone(), artifacts: vec![] }));
            }
        }
        Ok(None)
    }
}

type SseStream = Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// A job's events, in order, across reconnects: [`JobEvents::next`] replays the log, then
/// follows it, with the reference reconnect rules (resume with `Last-Event-ID`; 401, 403,
/// 410 and 426 fail at once; network errors, 404, 408, 429 and 5xx retry with
/// [`backoff`] using the [`Connection`]'s delays and attempt limit). [`Trainer::wait`]
/// and `arkor jobs logs` are built on it.
pub struct JobEvents<'a> {
    client: &'a Client,
    scope: &'a ProjectScope,
    job_id: &'a str,
    connection: &'a Connection,
    abort: &'a CancellationToken,
    stream: Option<SseStream>,
    last_id: Option<String>,
    attempt: u32,
    received: bool,
}

impl<'a> JobEvents<'a> {
    /// Nothing is opened until the first [`JobEvents::next`].
    pub fn new(
        client: &'a Client,
        scope: &'a ProjectScope,
        job_id: &'a str,
        connection: &'a Connection,
        abort: &'a CancellationToken,
    ) -> Self {
        JobEvents {
            client,
            scope,
            job_id,
            connection,
            abort,
            stream: None,
            last_id: None,
            attempt: 0,
            received: false,
        }
    }

    /// The next event; `None` once the backend ended the stream (the job is over).
    /// `abort` makes it return [`Error::Aborted`].
    pub async fn next(&mut self) -> Result<Option<JobEvent>, Error> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                let opened = tokio::select! {
                    () = self.abort.cancelled() => return Err(Error::Aborted),
                    r = self.client.open_events(self.scope, self.job_id, self.last_id.as_deref()) => r,
                };
                match opened {
                    Err(e) if matches!(e.status(), Some(401 | 403 | 410 | 426)) => {
                        return Err(e.into());
                    }
                    Err(e) => self.retry(e.into()).await?,
                    Ok(resp) => {
                        self.stream = Some(Box::pin(resp.bytes_stream().eventsource()));
                        self.received = false;
                    }
                }
                continue;
            };
            let next = tokio::select! {
                () = self.abort.cancelled() => return Err(Error::Aborted),
                n = stream.next() => n,
            };
            let ev = match next {
                Some(Ok(ev)) => ev,
                Some(Err(e)) => {
                    self.stream = None;
                    self.retry(Error::Stream(e.to_string())).await?;
                    continue;
                }
                None => {
                    self.stream = None;
                    if self.received {
                        // A clean end after progress: reconnect after the base delay.
                        sleep_or_abort(self.abort, self.connection.reconnect_delay).await?;
                    } else {
                        let e = Error::Stream("the event stream ended without events".to_owned());
                        self.retry(e).await?;
                    }
                    continue;
                }
            };
            if !ev.id.is_empty() {
                self.last_id = Some(ev.id.clone());
            }
            match ev.event.as_str() {
                "ping" => continue,
                "end" => return Ok(None),
                _ => {}
            }
            let Ok(event) = serde_json::from_str::<JobEvent>(&ev.data) else {
                continue;
            };
            self.received = true;
            self.attempt = 0;
            return Ok(Some(event));
        }
    }

    /// Backs off after `failure`, or gives up with it past the attempt limit.
    async fn retry(&mut self, failure: Error) -> Result<(), Error> {
        let c = self.connection;
        if let Some(max) = c.max_reconnect_attempts
            && self.attempt >= max
        {
            return Err(Error::GaveUp { attempts: self.attempt + 1, source: Box::new(failure) });
        }
        let delay = backoff(self.attempt, c.reconnect_delay, c.max_reconnect_delay);
        sleep_or_abort(self.abort, delay).await?;
        self.attempt += 1;
        Ok(())
    }
}

/// Sleeps `d` unless `abort` fires first.
async fn sleep_or_abort(abort: &CancellationToken, d: Duration) -> Result<(), Error> {
    tokio::select! {
        () = abort.cancelled() => Err(Error::Aborted),
        () = tokio::time::sleep(d) => Ok(()),
    }
}

/// `clamp(e + j, 0, cap)` with `e = min(base * 2^attempt, cap)` and `j` uniform in
/// `[-e/4, e/4)`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    use rand::Rng;
    let e = base.as_secs_f64() * 2f64.powi(attempt.min(30) as i32);
    let e = e.min(cap.as_secs_f64());
    let j = if e > 0.0 { rand::rng().random_range(-0.25 * e..0.25 * e) } else { 0.0 };
    Duration::from_secs_f64((e + j).clamp(0.0, cap.as_secs_f64()))
}

fn is_loopback(url: &str) -> bool {
    let host = url.split("://").nth(1).unwrap_or(url).split(['/', ':']).next().unwrap_or("");
    matches!(host, "127.0.0.1" | "localhost" | "[") || url.contains("://[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_labels_travel_in_the_job_config() {
        let trainer = Trainer::builder("t", Model::arkor_tiny(), Dataset::jsonl("rows.jsonl"))
            .worker_labels(["gpu", "a100"])
            .build()
            .unwrap();
        let json = serde_json::to_value(trainer.job_config()).unwrap();
        assert_eq!(json["workerLabels"], serde_json::json!(["gpu", "a100"]));
        let plain = Trainer::builder("t", Model::arkor_tiny(), Dataset::jsonl("rows.jsonl"));
        let json = serde_json::to_value(plain.build().unwrap().job_config()).unwrap();
        assert!(json.get("workerLabels").is_none(), "{json}");
    }

    #[test]
    fn backoff_follows_the_table() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100 {
            let d0 = backoff(0, base, cap).as_secs_f64();
            assert!((0.75..1.25).contains(&d0), "{d0}");
            let d3 = backoff(3, base, cap).as_secs_f64();
            assert!((6.0..10.0).contains(&d3), "{d3}");
            assert!(backoff(20, base, cap) <= cap);
        }
        assert!(is_loopback("http://127.0.0.1:4100") && is_loopback("http://localhost:1"));
        assert!(!is_loopback("https://gpu.example.com"));
    }
}
