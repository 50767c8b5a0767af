//! One module per subcommand, plus the resolution of model and dataset sources they share.

use std::path::PathBuf;
use std::process::ExitCode;

use arkor_engine::config::DatasetConfig;

use crate::args::{Cli, Command};
use crate::config::Global;

mod auth;
mod build;
mod chat;
mod data;
mod dev;
mod endpoints;
mod eval;
mod export;
mod init;
mod jobs;
mod server;
mod start;
mod train;
mod workers;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = Global::resolve(cli.data_dir, cli.cpu)?;
    match cli.command {
        Command::Train(args) => train::run(&global, args),
        Command::Chat(args) => chat::run(&global, args),
        Command::Eval(args) => eval::run(&global, args),
        Command::Export(args) => export::run(&global, args),
        Command::Data(cmd) => data::run(&global, cmd),
        Command::Dev(args) => dev::run(&global, args),
        Command::Init(args) => init::run(args),
        Command::Build(args) => build::run(args),
        Command::Start(args) => start::run(&global, args),
        Command::Login(args) => auth::login(&global, args),
        Command::Logout(args) => auth::logout(&global, args),
        Command::Whoami => auth::whoami(&global),
        Command::Jobs(cmd) => jobs::run(&global, cmd),
        Command::Endpoints(cmd) => endpoints::run(&global, cmd),
        Command::Server(args) => server::run(&global, args),
        Command::Worker(args) => workers::run_worker(&global, args),
        Command::Workers(cmd) => workers::run(&global, cmd),
        Command::TrainWorker(args) => {
            Ok(arkor_server::worker::main(&args.job_dir, &global.data_dir, global.device))
        }
    }
}

/// Turns a model reference (`arkor/tiny`, a local directory, a `.gguf` file, `ollama:NAME`,
/// a Hugging Face repo id) into a local model directory, downloading into the Hugging Face
/// cache or importing a GGUF if needed.
pub fn resolve_model(global: &Global, model: &str) -> anyhow::Result<PathBuf> {
    arkor_server::resolve::model(&global.data_dir, &global.hub, model)
}

/// A loaded base model (with its tokenizer) and, when given, an adapter on top of it.
pub struct Loaded {
    pub model: arkor_engine::models::Model,
    pub tokenizer: arkor_engine::tokenizer::TextTokenizer,
    pub adapter: Option<arkor_engine::lora::Adapter>,
}

/// Resolves and loads `model` and the optional adapter directory on the chosen device.
pub fn load_model(
    global: &Global,
    model: &str,
    adapter: Option<&std::path::Path>,
) -> anyhow::Result<Loaded> {
    use anyhow::Context;
    let dir = resolve_model(global, model)?;
    let tokenizer = arkor_engine::tokenizer::TextTokenizer::from_dir(&dir)?;
    let device = global.device.open()?;
    let model = arkor_engine::models::Model::load(&dir, &device)
        .with_context(|| format!("failed to load the model {model}"))?;
    let adapter = adapter
        .map(|a| {
            arkor_engine::lora::Adapter::load(a, model.spec(), &device)
                .with_context(|| format!("failed to load the adapter {}", a.display()))
        })
        .transpose()?;
    Ok(Loaded { model, tokenizer, adapter })
}

/// The local files of a dataset source.
pub fn resolve_dataset(global: &Global, source: &DatasetConfig) -> anyhow::Result<Vec<PathBuf>> {
    arkor_server::resolve::dataset(&global.hub, source)
}
