//! Peak memory of a LoRA fine-tune with the frozen base in fp32, 8-bit and 4-bit blocks.
//!
//! ```text
//! cargo run --release -p arkor-engine --example bench_memory -- [--shapes 135m,360m,1.7b]
//!     [--quants none,q8_0,q4_1] [--steps N] [--recompute]
//! ```
//!
//! For each shape (SmolLM2-135M and -360M at batch 4 x 512 tokens, SmolLM2-1.7B at batch
//! 1 x 256) a random fp32 model of that shape is written to a temp dir; then, for each
//! `base_quant`, a child process loads it and trains `--steps` LoRA steps (r 16 on all
//! seven projections, AdamW) on random tokens. Each child reports the resident memory it
//! holds once loaded (anonymous pages: the weights as kept), the peak while loading (which
//! includes the memory-mapped fp32 file being read), the peak while training (`VmHWM`
//! reset after loading via `/proc/self/clear_refs`), and seconds per step. With
//! `--recompute`, every run uses `gradient_checkpointing` (each block's activations
//! recomputed in the backward pass). Linux only.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use arkor_engine::cancel::CancelToken;
use arkor_engine::config::{BaseQuant, LoraConfig, TrainConfig};
use arkor_engine::event::EngineEvent;
use arkor_engine::models::{Family, Model};
use arkor_engine::tiny::{TinySpec, write_model};
use arkor_engine::train::{TrainRequest, train};
use candle_core::Device;

#[global_allocator]
static ALLOCATOR: arkor_engine::alloc::Allocator = arkor_engine::alloc::Allocator;

/// A model shape and the batch it is trained at.
struct Shape {
    name: &'static str,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    mlp: usize,
    batch: usize,
    seq: usize,
}

const SHAPES: [Shape; 4] = [
    Shape {
        name: "135m",
        hidden: 576,
        layers: 30,
        heads: 9,
        kv_heads: 3,
        mlp: 1536,
        batch: 4,
        seq: 512,
    },
    Shape {
        name: "360m",
        hidden: 960,
        layers: 32,
        heads: 15,
        kv_heads: 5,
        mlp: 2560,
        batch: 4,
        seq: 512,
    },
    Shape {
        name: "1.7b",
        hidden: 2048,
        layers: 24,
        heads: 32,
        kv_heads: 32,
        mlp: 8192,
        batch: 1,
        seq: 256,
    },
    // CI's smoke run: the same code path in seconds; its numbers mean nothing.
    Shape {
        name: "smoke",
        hidden: 64,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        mlp: 128,
        batch: 2,
        seq: 32,
    },
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    arkor_engine::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    let mut shapes = vec!["135m".to_owned(), "360m".to_owned()];
    let mut quants = vec!["none".to_owned(), "q8_0".to_owned(), "q4_1".to_owned()];
    let mut steps = 2usize;
    let mut recompute = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--recompute" {
            recompute = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let list = || value.split(',').map(str::to_owned).collect::<Vec<_>>();
        match flag.as_str() {
            "--shapes" => shapes = list(),
            "--quants" => quants = list(),
            "--steps" => steps = value.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let me = std::env::current_exe()?;
    let mut rows = vec![];
    for name in &shapes {
        let shape = SHAPES
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("--shapes: unknown {name:?} (135m, 360m, 1.7b, smoke)"))?;
        let dir = tempfile::tempdir()?;
        eprintln!("writing a random SmolLM2-{}-shaped fp32 model...", shape.name);
        let vocab = write_model(
            dir.path(),
            &TinySpec {
                family: Family::Llama,
                hidden_size: shape.hidden,
                num_layers: shape.layers,
                num_heads: shape.heads,
                num_kv_heads: shape.kv_heads,
                intermediate_size: shape.mlp,
                tie_word_embeddings: true,
                max_position_embeddings: 2048,
                seed: 1,
                min_vocab_size: 49152,
            },
        )?;
        for quant in &quants {
            eprintln!("  base_quant {quant}: {steps} steps at {} x {}", shape.batch, shape.seq);
            let out = Command::new(&me)
                .arg("--child")
                .arg(dir.path())
                .args([quant, &shape.batch.to_string(), &shape.seq.to_string()])
                .args([&steps.to_string(), &vocab.to_string(), &recompute.to_string()])
                .output()?;
            if !out.status.success() {
                return Err(format!(
                    "child for {} {quant} failed: {}",
                    shape.name,
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            let line = String::from_utf8(out.stdout)?;
            rows.push((shape, quant.clone(), line.trim().to_owned()));
        }
    }
    println!();
    println!(
        "LoRA r16 on q,k,v,o,gate,up,down, AdamW, random tokens; {steps} steps per run{}",
        if recompute { "; gradient_checkpointing" } else { "" }
    );
    println!();
    println!(
        "| shape | batch | base_quant | held after load GiB | peak while loading GiB | peak while training GiB | s/step | losses |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (shape, quant, line) in rows {
        let v: serde_json::Value = serde_json::from_str(&line)?;
        let losses: Vec<String> = v["losses"]
            .as_array()
            .map(|l| l.iter().map(|x| format!("{:.3}", x.as_f64().unwrap_or(f64::NAN))).collect())
            .unwrap_or_default();
        println!(
            "| SmolLM2-{} | {} x {} | {quant} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
            shape.name,
            shape.batch,
            shape.seq,
            v["held_gib"].as_f64().unwrap_or(f64::NAN),
            v["load_peak_gib"].as_f64().unwrap_or(f64::NAN),
            v["train_peak_gib"].as_f64().unwrap_or(f64::NAN),
            v["step_s"].as_f64().unwrap_or(f64::NAN),
            losses.join(" "),
        );
    }
    Ok(())
}

/// `--child DIR QUANT BATCH SEQ STEPS VOCAB RECOMPUTE`: one measured run, one JSON line on
/// stdout.
fn child(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [dir, quant, batch, seq, steps, vocab, recompute] = args else {
        return Err("--child DIR QUANT BATCH SEQ STEPS VOCAB RECOMPUTE".into());
    };
    let quant: BaseQuant = serde_json::from_value(serde_json::Value::String(quant.clone()))?;
    let (batch, seq, steps, vocab): (usize, usize, usize, usize) =
        (batch.parse()?, seq.parse()?, steps.parse()?, vocab.parse()?);
    let model = Model::load_with(Path::new(dir), &Device::Cpu, quant)?;
    let load_peak_gib = common::peak_rss_gib();
    let held_gib = common::status_gib("RssAnon:");
    // Reset the peak so the training peak is measured on its own.
    std::fs::write("/proc/self/clear_refs", "5")?;
    let data = common::random_dataset(batch * steps, seq, vocab);
    let config = TrainConfig {
        model: "bench".to_owned(),
        lora: LoraConfig::default(),
        max_steps: Some(steps),
        batch_size: batch,
        max_length: seq + 1,
        base_quant: quant,
        gradient_checkpointing: recompute == "true",
        ..TrainConfig::default()
    };
    let out = tempfile::tempdir()?;
    let req = TrainRequest {
        model: &model,
        data: &data,
        config: &config,
        output_dir: out.path(),
        resume_from: None,
    };
    let mut losses = vec![];
    let start = Instant::now();
    train(
        &req,
        &mut |e| {
            if let EngineEvent::Log(m) = e {
                losses.push(m.loss);
            }
        },
        &CancelToken::new(),
    )?;
    let step_s = start.elapsed().as_secs_f64() / steps as f64;
    let line = serde_json::json!({
        "held_gib": held_gib,
        "load_peak_gib": load_peak_gib,
        "train_peak_gib": common::peak_rss_gib(),
        "step_s": step_s,
        "losses": losses,
    });
    println!("{line}");
    Ok(())
}
