//! One module per subcommand, plus the resolution of model and dataset sources they share.

use std::path::PathBuf;
use std::process::ExitCode;

use arkor_engine::config::DatasetConfig;

use crate::args::{Cli, Command};
use crate::config::Global;

mod auth;
mod build;
mod chat;
mod dev;
mod eval;
mod export;
mod init;
mod jobs;
mod server;
mod start;
mod train;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = Global::resolve(cli.data_dir, cli.cpu)?;
    match cli.command {
        Command::Train(args) => train::run(&global, args),
        Command::Chat(args) => chat::run(&global, args),
        Command::Eval(args) => eval::run(&global, args),
        Command::Export(args) => export::run(&global, args),
        Command::Dev(args) => dev::run(&global, args),
        Command::Init(args) => init::run(args),
        Command::Build(args) => build::run(args),
        Command::Start(args) => start::run(&global, args),
        Command::Login(args) => auth::login(&global, args),
        Command::Logout(args) => auth::logout(&global, args),
        Command::Whoami => auth::whoami(&global),
        Command::Jobs(cmd) => jobs::run(&global, cmd),
        Command::Server(args) => server::run(&global, args),
        Command::Worker(args) => {
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

/// The local files of a dataset source.
pub fn resolve_dataset(global: &Global, source: &DatasetConfig) -> anyhow::Result<Vec<PathBuf>> {
    arkor_server::resolve::dataset(&global.hub, source)
}
