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

/// mimalloc keeps freed tensor buffers for reuse; with the system allocator every large
/// tensor is a fresh `mmap` whose pages the kernel zeroes on first touch, which cost about
/// 15% of a training step (`docs/dev/performance.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
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
