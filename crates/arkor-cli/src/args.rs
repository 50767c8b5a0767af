//! Command-line arguments as typed by the user (clap derive). Every long flag that makes
//! sense as a setting also reads an `ARKOR_*` environment variable; the doc comments are
//! the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Fine-tune open-weight LLMs locally.
#[derive(Debug, Parser)]
#[command(name = "arkor", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Where arkor keeps models, runs and state (default: ~/.arkor).
    #[arg(long, global = true, env = "ARKOR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Run on the CPU even when a GPU is available (ARKOR_CPU=1 also works).
    #[arg(long, global = true, env = "ARKOR_CPU", value_parser = clap::builder::FalseyValueParser::new())]
    pub cpu: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a LoRA adapter from a TOML config file.
    Train(TrainArgs),
    /// Chat with a model, or a model plus an adapter.
    Chat(ChatArgs),
    /// Score a model, or a model plus an adapter, on a held-out dataset.
    Eval(EvalArgs),
    /// Export a model plus adapter for transformers, llama.cpp or Ollama.
    Export(ExportArgs),
    /// Look at a dataset as training will see it.
    #[command(subcommand)]
    Data(DataCommand),
    /// Run Studio, the local web UI (and a backend if none is running).
    Dev(DevArgs),
    /// Scaffold a trainer project (a Cargo project using the arkor SDK).
    Init(InitArgs),
    /// Build the project's trainer binary (cargo build --release).
    Build(BuildArgs),
    /// Build and run a trainer against the backend (a running one, or an embedded one).
    Start(StartArgs),
    /// Store credentials for a backend (a token, or a new anonymous identity).
    Login(LoginArgs),
    /// Forget the stored credentials.
    Logout(LogoutArgs),
    /// Show who the stored credentials belong to.
    Whoami,
    /// List, inspect, cancel and follow the project's jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Deploy fine-tunes as OpenAI-compatible endpoints with API keys.
    #[command(subcommand)]
    Endpoints(EndpointsCommand),
    /// Run the training backend (the HTTP API that the SDK, the CLI and Studio use).
    Server(ServerArgs),
    /// Train a backend's queued jobs on this machine (a remote worker; see docs/deploy.md).
    Worker(RemoteWorkerArgs),
    /// Create, list and revoke the tokens remote workers lease jobs with (run on the
    /// backend's machine, against its data dir or --database).
    #[command(subcommand)]
    Workers(WorkersCommand),
    /// Run one training job for the backend (internal).
    #[command(name = "__worker", hide = true)]
    TrainWorker(TrainWorkerArgs),
}

#[derive(Debug, Args)]
pub struct RemoteWorkerArgs {
    /// The backend's URL, e.g. http://10.0.0.5:4100.
    #[arg(long, env = "ARKOR_BACKEND_URL")]
    pub backend: String,
    /// A worker token from `arkor workers add NAME` on the backend's machine.
    #[arg(long, env = "ARKOR_WORKER_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Jobs trained at once on this machine.
    #[arg(long, default_value_t = 1, env = "ARKOR_MAX_JOBS")]
    pub max_jobs: usize,
    /// What this machine has, comma-separated (e.g. gpu,a100): jobs that ask for labels
    /// (`workerLabels`) run only on a worker that has all of them.
    #[arg(long, value_delimiter = ',', env = "ARKOR_WORKER_LABELS")]
    pub labels: Vec<String>,
    /// Where job folders go (default: <data dir>/worker).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Seconds a cancelled job gets to stop before its process is killed.
    #[arg(long, default_value_t = 30)]
    pub cancel_grace: u64,
    /// Where jobs train: auto (a GPU when this arkor has CUDA and one is present, else the
    /// CPU), cpu (as --cpu), or cuda (the first GPU; the worker does not start without one).
    #[arg(long, value_enum, default_value_t = WorkerDevice::Auto, env = "ARKOR_WORKER_DEVICE")]
    pub device: WorkerDevice,
}

/// `arkor worker --device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkerDevice {
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, Subcommand)]
pub enum WorkersCommand {
    /// Create a worker token (printed once; only its hash is stored).
    Add(WorkersStoreArgs),
    /// List the worker tokens: name, created, last seen, revoked.
    List(WorkersDbArgs),
    /// Revoke a worker token: its next request is refused and its jobs are requeued.
    Revoke(WorkersStoreArgs),
}

#[derive(Debug, Args)]
pub struct WorkersDbArgs {
    /// The backend's PostgreSQL database, when it uses one (as `arkor server --database`).
    #[arg(long, value_name = "URL", env = "ARKOR_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
}

#[derive(Debug, Args)]
pub struct WorkersStoreArgs {
    /// The worker's name (letters, digits, '-', '_', '.').
    pub name: String,
    #[command(flatten)]
    pub db: WorkersDbArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Template {
    /// Support tickets to JSON: category, urgency, summary, next action.
    Triage,
    /// Messages in 9 languages to JSON: English translation and detected language.
    Translate,
    /// Free text to JSON: PII replaced by [REDACTED], count and tags.
    Redaction,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Project directory (created if missing; existing files are kept).
    pub dir: Option<PathBuf>,
    /// Which example trainer and dataset to start from.
    #[arg(long, value_enum, default_value = "triage")]
    pub template: Template,
    /// Project name (default: the directory name).
    #[arg(long)]
    pub name: Option<String>,
    /// Do not ask anything (init never asks today; accepted for scripts).
    #[arg(long, short)]
    pub yes: bool,
    /// Use the built-in arkor/tiny model instead of downloading SmolLM2-135M-Instruct.
    #[arg(long, env = "HF_HUB_OFFLINE", value_parser = clap::builder::FalseyValueParser::new())]
    pub offline: bool,
    /// The base model instead of SmolLM2-135M-Instruct: a supported Hugging Face id,
    /// arkor/tiny, a local model directory, a .gguf file or ollama:NAME[:TAG].
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Port (default: 4000, or the next free one of 4001-4010); a busy explicit port fails.
    #[arg(long)]
    pub port: Option<u16>,
    /// Open Studio in the browser.
    #[arg(long)]
    pub open: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Project directory (default: the current directory).
    pub entry: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Project directory (default: the current directory).
    pub entry: Option<PathBuf>,
    /// Which trainer to run when the project has several.
    #[arg(long)]
    pub trainer: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// A token issued by the backend (default: a new anonymous identity).
    #[arg(long)]
    pub token: Option<String>,
    /// Backend URL (default: the local backend).
    #[arg(long, env = "ARKOR_BACKEND_URL")]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The project's newest jobs.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One job in full.
    Show { id: String },
    /// Ask the backend to stop a job.
    Cancel { id: String },
    /// Print a job's events (all so far, then live until it ends).
    Logs { id: String },
}

/// What an endpoint serves (for `create`, one of `--job` and `--base-model`).
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Serve this job's final adapter (or, with --step, one of its checkpoints).
    #[arg(long, conflicts_with = "base_model")]
    pub job: Option<String>,
    /// With --job: the checkpoint's step.
    #[arg(long, requires = "job")]
    pub step: Option<u64>,
    /// Serve a base model alone (arkor/tiny, a Hub id, a .gguf file, ollama:NAME).
    #[arg(long)]
    pub base_model: Option<String>,
}

/// Who may call an endpoint and what its request log keeps.
#[derive(Debug, Args)]
pub struct EndpointSettings {
    /// `fixed_api_key` (the default: calls need a key) or `none`.
    #[arg(long)]
    pub auth: Option<String>,
    /// Request log: `days` (with --retention-days), `unlimited` or `disabled` (no bodies).
    #[arg(long)]
    pub retention: Option<String>,
    /// With --retention days: how many days of requests to keep.
    #[arg(long)]
    pub retention_days: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// The project's endpoints with their URLs and figures.
    List,
    /// Create an endpoint.
    Create {
        /// 2-50 characters of a-z, 0-9 and -: the endpoint is served at .../endpoints/SLUG/v1.
        slug: String,
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        settings: EndpointSettings,
    },
    /// One endpoint in full (by slug or id).
    Show { endpoint: String },
    /// Change an endpoint's target, access, retention or state.
    Update {
        endpoint: String,
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        settings: EndpointSettings,
        /// Serve requests again.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Answer 404 until enabled again.
        #[arg(long)]
        disable: bool,
    },
    /// Delete an endpoint with its keys and request log.
    Delete { endpoint: String },
    /// An endpoint's API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// An endpoint's newest requests.
    Requests {
        endpoint: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The endpoint's keys (never their plaintext).
    List { endpoint: String },
    /// Issue a key; its plaintext is printed once and never again.
    Create {
        endpoint: String,
        /// What the key is for (1-80 characters).
        #[arg(long)]
        label: String,
    },
    /// Revoke a key: refused from the next request on.
    Revoke { endpoint: String, key: String },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on; anything but loopback exposes the API to the network.
    #[arg(long, default_value = "127.0.0.1", env = "ARKOR_SERVER_HOST")]
    pub host: std::net::IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 4100, env = "ARKOR_SERVER_PORT")]
    pub port: u16,
    /// Training jobs that run at once (0 queues jobs without running any).
    #[arg(long, default_value_t = 1, env = "ARKOR_MAX_JOBS")]
    pub max_jobs: usize,
    /// Seconds a cancelled job gets to stop before its worker is killed.
    #[arg(long, default_value_t = 30)]
    pub cancel_grace: u64,
    /// Also serve endpoint SLUG on the host SLUG.DOMAIN (behind a reverse proxy or a
    /// wildcard DNS name); endpoints are always at <backend>/endpoints/SLUG/v1.
    #[arg(long, value_name = "DOMAIN", env = "ARKOR_ENDPOINT_DOMAIN")]
    pub endpoint_domain: Option<String>,
    /// Base models kept loaded at once for chat and endpoints (each costs its weights in
    /// memory); a request for another base evicts the least recently used.
    #[arg(long, default_value_t = 2, env = "ARKOR_MAX_LOADED_MODELS")]
    pub max_loaded_models: usize,
    /// Concurrent requests on one base model decoded together at most (one pass over the
    /// weights per token for all of them); more wait for a place. 1 decodes one at a time.
    #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256), env = "ARKOR_MAX_BATCH")]
    pub max_batch: usize,
    /// Keep jobs, events, users and endpoints in this PostgreSQL database
    /// (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, plain TCP: loopback or a private
    /// network) instead of SQLite in the data directory.
    #[arg(long, value_name = "URL", env = "ARKOR_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Keep uploaded datasets and every job's checkpoints, adapters, exports and
    /// evaluations in this S3-compatible bucket (s3://BUCKET[/PREFIX]), with the data
    /// directory as its cache. Endpoint, region and credentials come from AWS_ENDPOINT_URL,
    /// AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[arg(long, value_name = "URL", env = "ARKOR_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// Seconds a remote worker's lease lasts without a heartbeat (`arkor worker`); the job
    /// is requeued after that.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_ttl: u64,
    /// Leases a job gets before a lost worker fails it.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub lease_attempts: u32,
    /// Seconds before a requeued job is leased again, doubled per attempt.
    #[arg(long, default_value_t = 10)]
    pub lease_backoff: u64,
}

#[derive(Debug, Args)]
pub struct TrainWorkerArgs {
    #[arg(long)]
    pub job_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The training config (TOML; see `docs/train-config.md`).
    pub config: PathBuf,
    /// Directory for checkpoints, the final adapter and metrics.jsonl
    /// (default: runs/<name> next to the config).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Continue a run from DIR/checkpoint-<step>.
    #[arg(long, value_name = "CHECKPOINT_DIR")]
    pub resume: Option<PathBuf>,
    /// Print one line per logging step instead of a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// A Hugging Face repo id, a local model directory, a .gguf file, ollama:NAME[:TAG], or
    /// arkor/tiny.
    #[arg(long, short)]
    pub model: String,
    /// A PEFT adapter directory (a run's final/ or any checkpoint-<step>/).
    #[arg(long, short)]
    pub adapter: Option<PathBuf>,
    /// System prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Send one message, print only the reply and exit.
    #[arg(long, short)]
    pub prompt: Option<String>,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f64,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Penalise tokens already present (1 disables).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f64,
    /// Most tokens per reply.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop the reply at this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Every reply is JSON valid against the JSON schema in this file.
    #[arg(long, value_name = "FILE", group = "constraint")]
    pub json_schema: Option<PathBuf>,
    /// Every reply is one JSON object.
    #[arg(long, group = "constraint")]
    pub json: bool,
    /// Every reply matches this regular expression (Rust regex syntax, whole reply).
    #[arg(long, value_name = "REGEX", group = "constraint")]
    pub regex: Option<String>,
    /// Every reply is one of these comma-separated strings.
    #[arg(long, value_name = "A,B,...", value_delimiter = ',', group = "constraint")]
    pub choice: Vec<String>,
    /// Every reply matches the Lark grammar (llguidance's dialect) in this file.
    #[arg(long, value_name = "FILE", group = "constraint")]
    pub grammar: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The base model: a Hugging Face repo id, a local model directory, a .gguf file,
    /// ollama:NAME[:TAG], or arkor/tiny.
    #[arg(long, short)]
    pub model: String,
    /// A PEFT adapter directory (a run's final/ or any checkpoint-<step>/); required for
    /// gguf-lora, optional otherwise (the base model alone is exported).
    #[arg(long, short)]
    pub adapter: Option<PathBuf>,
    /// hf (merged transformers directory), gguf (merged llama.cpp file), gguf-lora (the
    /// adapter as a llama.cpp LoRA file) or ollama (a GGUF plus a Modelfile).
    #[arg(long, short)]
    pub format: String,
    /// GGUF precision: f32, f16, bf16, q8_0 or q4_k_m.
    #[arg(long, short, default_value = "f16")]
    pub quant: String,
    /// Where to write: a directory for hf and ollama, a file for gguf and gguf-lora. Must
    /// not exist.
    #[arg(long, short)]
    pub output: PathBuf,
    /// The model's name in GGUF metadata and for `ollama create` (default: the output's name).
    #[arg(long)]
    pub name: Option<String>,
    /// A system prompt for the Ollama Modelfile.
    #[arg(long)]
    pub system: Option<String>,
    /// Run `ollama create` when ollama is on PATH (format ollama).
    #[arg(long)]
    pub install: bool,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Format, sizes, token lengths, truncated and malformed rows; with --row, one row
    /// rendered through the chat template with its trained tokens marked.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A training config (.toml: its dataset, model, max_length and masking) or a dataset
    /// file (.jsonl, .json, .parquet).
    pub source: PathBuf,
    /// The model whose tokenizer and chat template render the rows (default: the config's,
    /// else arkor/tiny).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Longest row in tokens (default: the config's, else 1024).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Also render row N (0-based) token by token: trained tokens green (between [[ and ]]
    /// without colours), special tokens marked.
    #[arg(long)]
    pub row: Option<usize>,
    /// Print the report (and the row) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Mark trained tokens with [[ ]] instead of colour, even on a terminal (NO_COLOR=1
    /// also works).
    #[arg(long, env = "NO_COLOR", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_color: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A Hugging Face repo id, a local model directory, or arkor/tiny.
    #[arg(long, short)]
    pub model: String,
    /// A PEFT adapter directory (a run's final/ or any checkpoint-<step>/).
    #[arg(long, short)]
    pub adapter: Option<PathBuf>,
    /// Held-out rows (.jsonl or .json; chat, prompt/completion or alpaca); each row's last
    /// assistant message is the expected reply.
    #[arg(long, short)]
    pub data: PathBuf,
    /// Most tokens per reply.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Write the full report (every row and reply) to this JSON file.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// System prompt, replacing each row's own.
    #[arg(long)]
    pub system: Option<String>,
    /// Print one line per row instead of a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}
