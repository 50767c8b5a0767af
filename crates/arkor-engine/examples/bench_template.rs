//! A real fine-tune's wall time: a template's rows on SmolLM2-135M-Instruct, against
//! transformers + PEFT in the same run.
//!
//! ```text
//! cargo run --release -p arkor-engine --example bench_template -- --gguf PATH
//!     [--template triage|translate|redaction] [--steps N] [--python PATH]
//!     [--base-quant none|q8_0|q4_1]
//! ```
//!
//! The arkor side does what `arkor train` does with the template's trainer (r 16, alpha 32
//! on all seven projections, batch 4, cosine with 10 warm-up steps, lr 2e-3, the
//! template's `data/train.jsonl`, prompt-masked chat rows): import the GGUF into a fresh
//! cache, load the model and tokenizer, prepare the rows, train `--steps` optimiser steps.
//! Its time is measured from the start of the process (import and load count: a user waits
//! for them too), and its peak RSS is `VmHWM`.
//!
//! With `--python PATH`, `docs/dev/templates/peft_reference.py` trains the same steps with
//! transformers + PEFT on the same GGUF (dequantized by transformers), batches padded to
//! their longest row and logits at every position, as the PEFT and transformers docs do.
//! Both rows are printed in one table. `--base-quant` keeps arkor's frozen base in 8-bit or
//! 4-bit blocks (one setting per run, so each peak RSS is its own). See
//! `docs/dev/performance.md`.

mod common;

use common::peak_rss_gib;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use arkor_engine::cancel::CancelToken;
use arkor_engine::config::{BaseQuant, LoraConfig, LrScheduler, TrainConfig};
use arkor_engine::data::{DatasetFormat, PrepareOptions, prepare_dataset};
use arkor_engine::device::DeviceChoice;
use arkor_engine::event::EngineEvent;
use arkor_engine::models::Model;
use arkor_engine::tokenizer::TextTokenizer;
use arkor_engine::train::{TrainRequest, train};

/// The allocator the `arkor` binary uses.
#[global_allocator]
static ALLOCATOR: arkor_engine::alloc::Allocator = arkor_engine::alloc::Allocator;

struct Args {
    gguf: PathBuf,
    template: String,
    steps: usize,
    python: Option<String>,
    base_quant: BaseQuant,
}

struct Row {
    name: String,
    load_s: f64,
    train_s: f64,
    total_s: f64,
    tok_s: f64,
    final_loss: f64,
    peak_gib: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    arkor_engine::alloc::keep_freed_memory();
    let start = Instant::now();
    let args = parse_args()?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let train_file =
        repo.join("crates/arkor-cli/templates").join(&args.template).join("data/train.jsonl");
    if !train_file.is_file() {
        return Err(
            format!("--template {}: {} not found", args.template, train_file.display()).into()
        );
    }
    let mut rows = vec![measure_arkor(&args, &train_file, start)?];
    if let Some(python) = &args.python {
        rows.push(measure_peft(python, &args, &repo)?);
    }
    println!();
    println!(
        "{}: {} optimiser steps of batch 4 on {} (SmolLM2-135M-Instruct, fp32, CPU, {} threads)",
        args.template,
        args.steps,
        train_file.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    println!(
        "| {:<24} | {:>9} | {:>10} | {:>12} | {:>9} | {:>10} | {:>12} |",
        "engine", "load s", "train s", "whole run s", "tokens/s", "final loss", "peak RSS GiB"
    );
    println!(
        "|{:-<26}|{:->11}|{:->12}|{:->14}|{:->11}|{:->12}|{:->14}|",
        "", "", "", "", "", "", ""
    );
    for r in &rows {
        println!(
            "| {:<24} | {:>9.1} | {:>10.1} | {:>12.1} | {:>9.1} | {:>10.4} | {:>12.2} |",
            r.name, r.load_s, r.train_s, r.total_s, r.tok_s, r.final_loss, r.peak_gib
        );
    }
    if let [ours, reference] = &rows[..] {
        println!();
        println!(
            "arkor's whole run takes {:.2}x the reference's time ({:.2}x faster)",
            ours.total_s / reference.total_s,
            reference.total_s / ours.total_s
        );
    }
    Ok(())
}

fn measure_arkor(
    args: &Args,
    train_file: &Path,
    start: Instant,
) -> Result<Row, Box<dyn std::error::Error>> {
    let cache = tempfile::tempdir()?;
    let dir = arkor_engine::gguf::import(&args.gguf, cache.path())?;
    let device = DeviceChoice::Cpu.open()?;
    let model = Model::load_with(&dir, &device, args.base_quant)?;
    let tokenizer = TextTokenizer::from_dir(&dir)?;
    let config = TrainConfig {
        model: args.gguf.display().to_string(),
        lora: LoraConfig { r: 16, alpha: 32.0, ..LoraConfig::default() },
        max_steps: Some(args.steps),
        batch_size: 4,
        learning_rate: 2e-3,
        warmup_steps: 10,
        lr_scheduler_type: LrScheduler::Cosine,
        logging_steps: 1,
        base_quant: args.base_quant,
        ..TrainConfig::default()
    };
    let opts = PrepareOptions {
        format: DatasetFormat::Auto,
        max_length: config.max_length,
        train_on_responses_only: config.train_on_responses_only,
        eval_split: 0.0,
        seed: config.seed,
        max_rows: None,
    };
    let data = prepare_dataset(&[train_file.to_path_buf()], &tokenizer, &opts)?;
    let load_s = start.elapsed().as_secs_f64();
    eprintln!("arkor: {} (loaded in {load_s:.1}s)", data.report.summary());
    let out = tempfile::tempdir()?;
    let req = TrainRequest {
        model: &model,
        data: &data,
        config: &config,
        output_dir: out.path(),
        resume_from: None,
    };
    // One log event per step; a step's tokens are its tokens/s times its duration.
    let (mut tokens, mut last_loss) = (0.0, f64::NAN);
    let train_start = Instant::now();
    let mut previous = train_start;
    let mut sink = |e: EngineEvent| {
        if let EngineEvent::Log(m) = e {
            let now = Instant::now();
            tokens += m.tokens_per_second * (now - previous).as_secs_f64();
            previous = now;
            last_loss = m.loss;
            eprintln!(
                "  arkor step {}/{}: loss {:.4}, {:.1} tokens/s",
                m.step, m.total_steps, m.loss, m.tokens_per_second
            );
        }
    };
    train(&req, &mut sink, &CancelToken::new())?;
    let train_s = train_start.elapsed().as_secs_f64();
    let tok_s = tokens / train_s;
    Ok(Row {
        name: match args.base_quant {
            BaseQuant::None => "arkor".to_owned(),
            q => format!("arkor (base {q:?})"),
        },
        load_s,
        train_s,
        total_s: start.elapsed().as_secs_f64(),
        tok_s,
        final_loss: last_loss,
        peak_gib: peak_rss_gib().unwrap_or(f64::NAN),
    })
}

fn measure_peft(python: &str, args: &Args, repo: &Path) -> Result<Row, Box<dyn std::error::Error>> {
    let script = repo.join("docs/dev/templates/peft_reference.py");
    let out = tempfile::tempdir()?;
    let report = out.path().join("report.json");
    eprintln!("running transformers + PEFT ({python} {})...", script.display());
    let start = Instant::now();
    let status = Command::new(python)
        .arg(&script)
        .args(["--template", &args.template, "--steps", &args.steps.to_string()])
        .args(["--lr", "2e-3", "--limit", "0", "--log-every", "1"])
        .arg("--gguf")
        .arg(&args.gguf)
        .arg("--out")
        .arg(&report)
        .status()?;
    let total_s = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("the PEFT reference failed ({status})").into());
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report)?)?;
    let num = |path: &[&str]| {
        let mut x = &v;
        for p in path {
            x = &x[*p];
        }
        x.as_f64().ok_or_else(|| format!("the PEFT report lacks {}", path.join(".")))
    };
    Ok(Row {
        name: "transformers + PEFT".to_owned(),
        load_s: num(&["timing", "load_seconds"])?,
        train_s: num(&["timing", "train_seconds"])?,
        total_s,
        tok_s: num(&["train", "tokens_per_second"])?,
        final_loss: num(&["train", "final_loss"])?,
        peak_gib: num(&["timing", "peak_rss_gib"])?,
    })
}

fn parse_args() -> Result<Args, String> {
    let mut gguf = None;
    let (mut template, mut steps, mut python) = ("triage".to_owned(), 20, None);
    let mut base_quant = BaseQuant::None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--gguf" => gguf = Some(PathBuf::from(value()?)),
            "--template" => template = value()?,
            "--steps" => {
                let v = value()?;
                steps = v.parse::<usize>().map_err(|e| format!("--steps {v:?}: {e}"))?.max(1);
            }
            "--python" => python = Some(value()?),
            "--base-quant" => {
                let v = value()?;
                base_quant = serde_json::from_value(serde_json::Value::String(v.clone()))
                    .map_err(|_| format!("--base-quant: expected none, q8_0 or q4_1, got {v:?}"))?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; expected --gguf, --template, --steps, --python, \
                     --base-quant"
                ));
            }
        }
    }
    let gguf = gguf.ok_or("--gguf PATH is required: SmolLM2-135M-Instruct's GGUF")?;
    Ok(Args { gguf, template, steps, python, base_quant })
}
