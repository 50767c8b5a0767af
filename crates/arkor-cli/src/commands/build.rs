//! `arkor build`: `cargo build --release` of the project; the binary is copied to
//! `.arkor/build/trainer`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};

use crate::args::BuildArgs;

pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let dir = project_dir(args.entry.as_deref())?;
    let binary = build(&dir)?;
    println!("Built {}", binary.display());
    Ok(ExitCode::SUCCESS)
}

/// The project directory, checked to hold a trainer entry.
pub fn project_dir(entry: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = entry.map(Path::to_owned).unwrap_or_else(|| PathBuf::from("."));
    let abs = std::path::absolute(&dir).unwrap_or(dir);
    let mod_rs = abs.join("src/arkor/mod.rs");
    if !mod_rs.is_file() || !abs.join("Cargo.toml").is_file() {
        bail!(
            "Training entry not found: {}. Provide a project path or create src/arkor/mod.rs \
             (`arkor init` scaffolds one).",
            mod_rs.display()
        );
    }
    Ok(abs)
}

/// Where `build` leaves the binary.
pub fn binary_path(dir: &Path) -> PathBuf {
    dir.join(".arkor/build/trainer")
}

/// Builds the project, streaming cargo's messages, and returns the copied binary.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    #[allow(clippy::disallowed_methods)] // cargo's own convention for sub-invocations.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["build", "--release", "--message-format=json-render-diagnostics"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("failed to run cargo: is the Rust toolchain installed (https://rustup.rs)?")?;
    let mut executable: Option<PathBuf> = None;
    for line in std::io::BufReader::new(child.stdout.take().expect("piped")).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line?) else { continue };
        if msg["reason"] == "compiler-artifact"
            && msg["manifest_path"].as_str().is_some_and(|m| Path::new(m).starts_with(dir))
            && let Some(exe) = msg["executable"].as_str()
        {
            executable = Some(PathBuf::from(exe));
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build failed ({status}); fix the errors above and run again");
    }
    let exe = executable.context("cargo built no binary: does the project have src/main.rs?")?;
    let target = binary_path(dir);
    std::fs::create_dir_all(target.parent().expect("has a parent"))?;
    // Per process: Studio's Overview and Run training may build at the same time.
    let tmp = target.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::copy(&exe, &tmp).with_context(|| format!("failed to copy {}", exe.display()))?;
    std::fs::rename(&tmp, &target).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(target)
}
