//! `arkor export`: a base model plus adapter as a merged transformers directory, a GGUF for
//! llama.cpp, a llama.cpp LoRA GGUF, or a GGUF with an Ollama `Modelfile`.
//!
//! The work is the engine's ([`arkor_engine::export`]); this command resolves the model,
//! shows a progress bar, prints what was written and, with `--install`, runs
//! `ollama create`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use arkor_engine::export::{ExportFormat, ExportRequest, Quant, export, ollama_name};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::ExportArgs;
use crate::config::Global;

pub fn run(global: &Global, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let format = ExportFormat::parse(&args.format).with_context(|| {
        format!("--format: expected one of {}, got \"{}\"", ExportFormat::NAMES, args.format)
    })?;
    let quant = Quant::parse(&args.quant).with_context(|| {
        format!("--quant: expected one of {}, got \"{}\"", Quant::NAMES, args.quant)
    })?;
    if format == ExportFormat::GgufLora && args.adapter.is_none() {
        bail!("--adapter is required with --format gguf-lora (it exports the adapter alone)");
    }
    if args.output.exists() {
        bail!("--output {} already exists; choose a new path", args.output.display());
    }
    let super::Loaded { model, adapter, .. } =
        super::load_model(global, &args.model, args.adapter.as_deref())?;
    let name = args.name.clone().unwrap_or_else(|| {
        let stem = args.output.file_stem().and_then(|s| s.to_str()).unwrap_or("arkor-model");
        stem.to_owned()
    });
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} tensors  {elapsed}")
            .expect("valid template"),
    );
    let req = ExportRequest {
        model: &model,
        adapter: adapter.as_ref(),
        format,
        quant,
        output: &args.output,
        name: &name,
        system_prompt: args.system.as_deref(),
    };
    let report = export(&req, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("failed to export to {}", args.output.display()))?;
    bar.finish_and_clear();
    println!("exported {} ({}) to {}", args.model, args.format, report.output.display());
    for (file, size) in &report.files {
        println!("  {}  {}", file.display(), human_size(*size));
    }
    if let Some(command) = &report.ollama_create {
        if args.install {
            install(&ollama_name(&name), &report.output.join("Modelfile"), command)?;
        } else {
            println!("install it into Ollama with:\n  {command}");
        }
    } else if args.install {
        bail!("--install applies to --format ollama only");
    }
    Ok(ExitCode::SUCCESS)
}

fn install(name: &str, modelfile: &std::path::Path, command: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("ollama")
        .args(["create", name, "-f"])
        .arg(modelfile)
        .status()
        .with_context(|| format!("failed to run `{command}` (is ollama installed and on PATH?)"))?;
    if !status.success() {
        bail!("`{command}` failed with {status}");
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
