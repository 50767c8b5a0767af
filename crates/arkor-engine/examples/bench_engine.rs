//! Training and decode throughput at a real model's shape, against PyTorch in the same run.
//!
//! ```text
//! cargo run --release -p arkor-engine --example bench_engine -- [--steps N] [--decode N]
//!     [--layers N] [--device cpu|cuda] [--python PATH] [--llama-cpp SCRIPT]
//! ```
//!
//! Writes a random model with SmolLM2-135M's shape (hidden 576, 30 layers, 9 heads, 3 kv
//! heads, MLP 1536, vocab 49152, tied embeddings; fp32) into a temp dir, then measures:
//! - LoRA training (r 16 on all seven projections, AdamW) at batch 4 x 256 tokens: input
//!   tokens per second over the steps after the first (warm-up) one, and the process's
//!   peak resident memory (`VmHWM`) once training is done;
//! - greedy decoding with the KV cache: new tokens per second for `--decode` tokens after
//!   a 16-token prompt.
//!
//! With `--python PATH` (a Python with the versions in
//! `tests/data/reference/requirements.txt`), `examples/bench_reference.py` measures the
//! same things with transformers + PEFT on the same model files, in a child process, and
//! both rows are printed in one table. With `--llama-cpp tools/llama-cpp/run.mjs`, the base
//! model is also exported as an f32 GGUF and llama.cpp's prefill and decode speed on it is
//! printed next to arkor's. With `--device cuda` (a build with the `cuda` feature), arkor
//! and the PyTorch reference both run on the GPU; peak RSS stays host memory. See
//! `docs/dev/performance.md` and `tools/gpu/check.sh`.

mod common;

use common::peak_rss_gib;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use arkor_engine::cancel::CancelToken;
use arkor_engine::config::{LoraConfig, TrainConfig};
use arkor_engine::device::DeviceChoice;
use arkor_engine::event::EngineEvent;
use arkor_engine::lora::Adapter;
use arkor_engine::models::{Family, KvCache, Model};
use arkor_engine::tiny::{TinySpec, write_model};
use arkor_engine::train::{TrainRequest, train};
use candle_core::{D, Tensor};

const BATCH: usize = 4;
const SEQ: usize = 256;
const PROMPT: usize = 16;

/// The allocator the `arkor` binary uses.
#[global_allocator]
static ALLOCATOR: arkor_engine::alloc::Allocator = arkor_engine::alloc::Allocator;

struct Args {
    steps: usize,
    decode: usize,
    layers: usize,
    device: DeviceChoice,
    python: Option<String>,
    llama_cpp: Option<String>,
}

struct Row {
    name: String,
    train_tok_s: f64,
    peak_gib: Option<f64>,
    decode_tok_s: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    arkor_engine::alloc::keep_freed_memory();
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let spec = TinySpec {
        family: Family::Llama,
        hidden_size: 576,
        num_layers: args.layers,
        num_heads: 9,
        num_kv_heads: 3,
        intermediate_size: 1536,
        tie_word_embeddings: true,
        max_position_embeddings: 2048,
        seed: 135,
        min_vocab_size: 49152,
    };
    eprintln!("writing a random {}-layer SmolLM2-135M-shaped model...", args.layers);
    let vocab = write_model(dir.path(), &spec)?;
    let device = args.device.open()?;
    let model = Model::load(dir.path(), &device)?;

    let mut rows = vec![measure_arkor(&model, &args, vocab)?];
    if let Some(python) = &args.python {
        rows.push(measure_torch(python, dir.path(), &args)?);
    }
    let llama_cpp = args.llama_cpp.clone();
    println!();
    println!(
        "model: SmolLM2-135M shape, {} layers, vocab {vocab}, fp32, device {:?}",
        args.layers, device
    );
    println!(
        "train: LoRA r16 alpha16 on q,k,v,o,gate,up,down, batch {BATCH} x {SEQ} tokens, {} timed steps",
        args.steps
    );
    println!("decode: greedy, KV cache, {PROMPT}-token prompt, {} new tokens", args.decode);
    println!();
    println!(
        "| {:<28} | {:>15} | {:>14} | {:>16} |",
        "engine", "train tokens/s", "peak RSS GiB", "decode tokens/s"
    );
    println!("|{:-<30}|{:->17}|{:->16}|{:->18}|", "", "", "", "");
    for r in &rows {
        let peak = r.peak_gib.map_or("n/a".to_owned(), |g| format!("{g:.2}"));
        println!(
            "| {:<28} | {:>15.1} | {:>14} | {:>16.1} |",
            r.name, r.train_tok_s, peak, r.decode_tok_s
        );
    }
    if let Some(script) = &llama_cpp {
        measure_decode_vs_llama_cpp(&model, script, &args)?;
    }
    Ok(())
}

fn measure_arkor(
    model: &Model,
    args: &Args,
    vocab: usize,
) -> Result<Row, Box<dyn std::error::Error>> {
    // SEQ + 1 ids give SEQ input positions per row after the shift.
    let data = common::random_dataset(BATCH * 4, SEQ, vocab);
    let config = TrainConfig {
        model: "bench".to_owned(),
        lora: LoraConfig::default(),
        max_steps: Some(args.steps + 1),
        batch_size: BATCH,
        max_length: SEQ + 1,
        learning_rate: 1e-4,
        logging_steps: 1,
        ..TrainConfig::default()
    };
    let out = tempfile::tempdir()?;
    let req = TrainRequest {
        model,
        data: &data,
        config: &config,
        output_dir: out.path(),
        resume_from: None,
    };
    let mut step_rates = vec![];
    let mut sink = |e: EngineEvent| {
        if let EngineEvent::Log(m) = e {
            eprintln!("  arkor train step {}: {:.1} tokens/s", m.step, m.tokens_per_second);
            step_rates.push(m.tokens_per_second);
        }
    };
    train(&req, &mut sink, &CancelToken::new())?;
    // Harmonic mean of the timed steps = total tokens / total time.
    let timed = &step_rates[1..];
    let train_tok_s = timed.len() as f64 / timed.iter().map(|r| 1.0 / r).sum::<f64>();
    let peak_gib = peak_rss_gib();

    let adapter = Adapter::new(model.spec(), &LoraConfig::default(), "bench", 1, model.device())?;
    let start = Instant::now();
    greedy(model, Some(&adapter), args.decode, &mut |_| {})?;
    let decode_tok_s = args.decode as f64 / start.elapsed().as_secs_f64();
    Ok(Row { name: "arkor (candle)".to_owned(), train_tok_s, peak_gib, decode_tok_s })
}

/// The bench's 16-token prompt.
fn prompt() -> Vec<u32> {
    (0..PROMPT as u32).map(|i| i * 7 + 3).collect()
}

/// Greedy decoding of `new` tokens after [`prompt`] with the KV cache; `on_token(i)` is
/// called as token `i` is produced.
fn greedy(
    model: &Model,
    adapter: Option<&Adapter>,
    new: usize,
    on_token: &mut dyn FnMut(usize),
) -> Result<(), Box<dyn std::error::Error>> {
    // The path `generate` takes (prefill, then one-token decode steps), without its EOS
    // stop: a random model may emit EOS at any point.
    let mut cache = KvCache::new();
    let mut ids = prompt();
    for i in 0..new {
        let t = Tensor::new(ids.as_slice(), model.device())?;
        let hidden = model.hidden_states_cached(&t, &[ids.len()], &mut [&mut cache], &[adapter])?;
        let last = hidden.narrow(0, ids.len() - 1, 1)?;
        let next = model.logits(&last)?.argmax(D::Minus1)?.flatten_all()?.to_vec1::<u32>()?[0];
        on_token(i);
        ids = vec![next];
    }
    Ok(())
}

/// Prefill and decode tokens/s of the base model (no adapter), arkor and llama.cpp on the
/// same weights exported as an f32 GGUF, both on all cores.
fn measure_decode_vs_llama_cpp(
    model: &Model,
    script: &str,
    args: &Args,
) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut first = None;
    greedy(model, None, args.decode, &mut |i| {
        if i == 0 {
            first = Some(Instant::now());
        }
    })?;
    let (end, first) = (Instant::now(), first.ok_or("no token decoded")?);
    let arkor_prefill = PROMPT as f64 / (first - start).as_secs_f64();
    let arkor_decode = (args.decode - 1) as f64 / (end - first).as_secs_f64();

    let dir = tempfile::tempdir()?;
    let gguf = dir.path().join("bench-f32.gguf");
    let req = arkor_engine::export::ExportRequest {
        model,
        adapter: None,
        format: arkor_engine::export::ExportFormat::Gguf,
        quant: arkor_engine::export::Quant::F32,
        output: &gguf,
        name: "bench",
        system_prompt: None,
    };
    arkor_engine::export::export(&req, &mut |_, _| {})?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("running llama.cpp ({script}) on the same weights as an f32 GGUF...");
    let output = Command::new("node")
        .arg(script)
        .arg("speed")
        .arg("--model")
        .arg(&gguf)
        .args(["--prompt-ids", &serde_json::to_string(&prompt())?])
        .args(["--max-tokens", &args.decode.to_string(), "--threads", &threads.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("llama.cpp failed ({})", output.status).into());
    }
    let v: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let num = |k: &str| v[k].as_f64().ok_or_else(|| format!("llama.cpp output lacks {k}: {v}"));
    println!();
    println!(
        "decode, base model, f32 weights, {PROMPT}-token prompt, {} new tokens, {threads} threads:",
        args.decode
    );
    println!();
    println!("| {:<28} | {:>15} | {:>15} |", "engine", "prefill tok/s", "decode tok/s");
    println!("|{:-<30}|{:->17}|{:->17}|", "", "", "");
    println!("| {:<28} | {:>15.1} | {:>15.1} |", "arkor (candle)", arkor_prefill, arkor_decode);
    println!(
        "| {:<28} | {:>15.1} | {:>15.1} |",
        "llama.cpp (node-llama-cpp)",
        num("prefill_tok_s")?,
        num("decode_tok_s")?
    );
    Ok(())
}

fn measure_torch(
    python: &str,
    model_dir: &Path,
    args: &Args,
) -> Result<Row, Box<dyn std::error::Error>> {
    // Beside the sources it was built from, or (a binary carried to another machine, such
    // as `tools/gpu/check.sh` does) in the checkout it runs from.
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench_reference.py");
    let script = match built_from.exists() {
        true => built_from,
        false => Path::new("crates/arkor-engine/examples/bench_reference.py").to_path_buf(),
    };
    let device = match args.device {
        DeviceChoice::Cuda(_) => "cuda",
        _ => "cpu",
    };
    eprintln!("running the PyTorch reference ({python} {})...", script.display());
    let output = Command::new(python)
        .arg(&script)
        .arg(model_dir)
        .args(["--steps", &args.steps.to_string(), "--decode", &args.decode.to_string()])
        .args(["--batch", &BATCH.to_string(), "--seq", &SEQ.to_string()])
        .args(["--prompt", &PROMPT.to_string(), "--device", device])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("the PyTorch reference failed ({})", output.status).into());
    }
    let stdout = String::from_utf8(output.stdout)?;
    let line = stdout.lines().last().ok_or("the PyTorch reference printed nothing")?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    let num = |k: &str| v[k].as_f64().ok_or_else(|| format!("reference output lacks {k}: {line}"));
    Ok(Row {
        name: v["name"].as_str().unwrap_or("pytorch").to_owned(),
        train_tok_s: num("train_tok_s")?,
        peak_gib: Some(num("peak_gib")?),
        decode_tok_s: num("decode_tok_s")?,
    })
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        steps: 3,
        decode: 128,
        layers: 30,
        device: DeviceChoice::Cpu,
        python: None,
        llama_cpp: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--steps" => args.steps = number(value()?)?.max(1),
            "--decode" => args.decode = number(value()?)?.max(1),
            "--layers" => args.layers = number(value()?)?.max(1),
            "--python" => args.python = Some(value()?),
            "--llama-cpp" => args.llama_cpp = Some(value()?),
            "--device" => {
                args.device = match value()?.as_str() {
                    "cpu" => DeviceChoice::Cpu,
                    "cuda" => DeviceChoice::Cuda(0),
                    other => return Err(format!("--device: expected cpu or cuda, got {other:?}")),
                }
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; expected --steps, --decode, --layers, --device, --python, --llama-cpp"
                ));
            }
        }
    }
    Ok(args)
}
