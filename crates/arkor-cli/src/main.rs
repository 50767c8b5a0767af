//! The `arkor` binary: parse arguments, resolve configuration, dispatch to a command.
//!
//! Business logic lives in the library crates; this crate composes them. Errors are
//! printed once, with their chain of causes, and turned into exit code 1 (2 for usage
//! errors, which clap handles). A closed stdout (`arkor chat ... | head`) exits quietly.

mod args;
mod commands;
mod config;

use std::process::ExitCode;

use clap::Parser;

/// The engine's allocator (`arkor_engine::alloc`): freed tensor buffers are reused.
#[global_allocator]
static ALLOCATOR: arkor_engine::alloc::Allocator = arkor_engine::alloc::Allocator;

fn main() -> ExitCode {
    arkor_engine::alloc::keep_freed_memory();
    let args = args::Cli::parse();
    match commands::run(args) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
