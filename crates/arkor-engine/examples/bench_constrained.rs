//! What constrained decoding costs: decode tokens/s with and without a constraint, on the
//! built-in tiny model and (with `--gguf`) on a real model, in one run.
//!
//! ```text
//! cargo run --release -p arkor-engine --example bench_constrained -- [--gguf PATH]
//!     [--tokens N] [--repeats N]
//! ```
//!
//! Each row samples `--tokens` new tokens (temperature 1, so the reply does not end early
//! on the unconstrained side; the constrained side uses a schema whose strings are long
//! enough not to close before), `--repeats` times with different seeds, after a short chat
//! prompt. The first constrained reply also pays for building llguidance's view of the
//! vocabulary; that one-off cost is reported on its own row and left out of the others.

use std::path::PathBuf;
use std::time::Instant;

use arkor_engine::cancel::CancelToken;
use arkor_engine::constrain::Constraint;
use arkor_engine::device::DeviceChoice;
use arkor_engine::generate::{SamplingParams, chat};
use arkor_engine::models::Model;
use arkor_engine::tokenizer::{ChatMessage, TextTokenizer};

#[global_allocator]
static ALLOCATOR: arkor_engine::alloc::Allocator = arkor_engine::alloc::Allocator;

struct Args {
    gguf: Option<PathBuf>,
    tokens: usize,
    repeats: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    arkor_engine::alloc::keep_freed_memory();
    let args = parse_args()?;
    let device = DeviceChoice::Cpu.open()?;
    let cache = tempfile::tempdir()?;
    let mut models =
        vec![("arkor/tiny".to_owned(), arkor_engine::tiny::ensure_tiny_model(cache.path())?)];
    if let Some(gguf) = &args.gguf {
        let name = gguf.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        models.push((name, arkor_engine::gguf::import(gguf, cache.path())?));
    }
    println!(
        "{} new tokens per reply, temperature 1, {} seeds, {} threads",
        args.tokens,
        args.repeats,
        rayon::current_num_threads()
    );
    println!("| {:<36} | {:<22} | {:>12} | {:>14} |", "model", "constraint", "tokens/s", "vs free");
    println!("|{:-<38}|{:-<24}|{:-<14}|{:-<16}|", "", "", "", "");
    for (name, dir) in models {
        let model = Model::load(&dir, &device)?;
        let tokenizer = TextTokenizer::from_dir(&dir)?;
        let messages = [ChatMessage {
            role: "user".into(),
            content: "My invoice shows two charges this month. Classify the ticket.".into(),
        }];
        let run = |constraint: Option<Constraint>,
                   seed: u64|
         -> Result<(usize, f64), Box<dyn std::error::Error>> {
            let params = SamplingParams {
                max_tokens: args.tokens,
                temperature: 1.0,
                top_p: 1.0,
                seed,
                constraint,
                ..SamplingParams::default()
            };
            let start = Instant::now();
            let g = chat(
                &model,
                None,
                &tokenizer,
                &messages,
                &params,
                &CancelToken::new(),
                &mut |_| {},
            )?;
            Ok((g.tokens.len(), start.elapsed().as_secs_f64()))
        };
        let schema = serde_json::json!({"type": "object", "additionalProperties": false,
            "required": ["category", "notes"], "properties": {
                "category": {"enum": ["billing", "bug", "account"]},
                "notes": {"type": "array", "items": {"type": "string", "minLength": 40}}}});
        let constraints = [
            ("none", None),
            ("JSON schema", Some(Constraint::Json { schema, whitespace: Default::default() })),
            ("regex [a-z ]+", Some(Constraint::Regex("[a-z ]+".into()))),
        ];
        let mut free = 0.0;
        for (label, constraint) in constraints {
            if let Some(c) = &constraint
                && label == "JSON schema"
            {
                // The one-off environment build (first constrained reply of a tokenizer).
                let start = Instant::now();
                run(Some(c.clone()), 999)?;
                let first = start.elapsed().as_secs_f64();
                println!(
                    "| {name:<36} | {:<22} | {:>12} | {:>14} |",
                    "first reply (setup)",
                    format!("{first:.2} s"),
                    ""
                );
            }
            let (mut tokens, mut secs) = (0, 0.0);
            for seed in 0..args.repeats {
                let (t, s) = run(constraint.clone(), seed)?;
                tokens += t;
                secs += s;
            }
            let rate = tokens as f64 / secs;
            if constraint.is_none() {
                free = rate;
            }
            println!("| {name:<36} | {label:<22} | {rate:>12.1} | {:>13.2}x |", rate / free);
        }
    }
    Ok(())
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { gguf: None, tokens: 128, repeats: 5 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--gguf" => args.gguf = Some(PathBuf::from(value()?)),
            "--tokens" => args.tokens = value()?.parse().map_err(|e| format!("--tokens: {e}"))?,
            "--repeats" => {
                args.repeats = value()?.parse().map_err(|e| format!("--repeats: {e}"))?
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; expected --gguf, --tokens, --repeats"
                ));
            }
        }
    }
    Ok(args)
}
