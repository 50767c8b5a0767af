//! `arkor data inspect`: a dataset as training will see it, before any training.
//!
//! The report comes from the engine's [`arkor_engine::data::inspect`], the same code that
//! prepares rows for training, so what it shows (lengths, truncation, the loss mask) is
//! what the trainer gets. Malformed rows are listed with file and line instead of stopping
//! the report; the exit code is 1 when there are any.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use arkor_engine::config::TrainConfig;
use arkor_engine::data::inspect::{Inspection, Reader, RenderedRow};
use arkor_engine::data::{DatasetFormat, PrepareOptions};
use arkor_engine::tokenizer::TextTokenizer;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{DataCommand, InspectArgs};
use crate::config::{Global, load_train_config};

pub fn run(global: &Global, cmd: DataCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DataCommand::Inspect(args) => inspect_command(global, args),
    }
}

fn inspect_command(global: &Global, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let is_config = args.source.extension().is_some_and(|e| e == "toml");
    let (config, files) = if is_config {
        let config = load_train_config(&args.source)?;
        let files = super::resolve_dataset(global, &config.dataset)?;
        (config, files)
    } else {
        (TrainConfig::default(), vec![args.source.clone()])
    };
    let model = args.model.clone().unwrap_or_else(|| config.model.clone());
    let dir = super::resolve_model(global, &model)?;
    let tokenizer = TextTokenizer::from_dir(&dir)
        .with_context(|| format!("failed to load the tokenizer of {model}"))?;
    let opts = PrepareOptions {
        format: if is_config { config.dataset.format() } else { DatasetFormat::Auto },
        max_length: args.max_length.unwrap_or(config.max_length),
        train_on_responses_only: config.train_on_responses_only,
        eval_split: 0.0,
        seed: config.seed,
        max_rows: None,
    };
    // Tokenising takes a while on a large file (100k chat rows: tens of seconds): a bar on
    // a terminal's stderr, nothing elsewhere.
    let mut reader = Reader::open(&files, &opts)?;
    let mut inspected = reader.inspection(opts.max_length);
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(reader.rows() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} rows tokenised  eta {eta}")
            .expect("valid template"),
    );
    while let Some(chunk) = reader.next_chunk(1024, &tokenizer, &opts) {
        inspected.extend(chunk);
        bar.set_position((reader.rows() - inspected.report.pending) as u64);
    }
    bar.finish_and_clear();
    let report = &inspected.report;
    let row = args.row.map(|i| inspected.render(i, &tokenizer)).transpose()?;
    if args.json {
        let value = serde_json::json!({ "model": model, "report": report, "row": row });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let colour = std::io::stdout().is_terminal() && !args.no_color;
        print!("{}", describe(&model, &files, report));
        if let Some(row) = &row {
            print!("{}", render(row, colour));
        }
    }
    Ok(if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The report as text: a summary, the length histogram as bars, then the rows to look at.
fn describe(model: &str, files: &[PathBuf], r: &Inspection) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let _ = writeln!(out, "dataset:  {}", names.join(", "));
    let _ = writeln!(out, "model:    {model} (its tokenizer and chat template)");
    let _ = writeln!(out, "format:   {:?}", r.format);
    let share = 100.0 * r.trained_tokens as f64 / r.tokens.max(1) as f64;
    let _ = writeln!(
        out,
        "rows:     {} ({} tokens, {} trained = {share:.0}%)",
        r.rows, r.tokens, r.trained_tokens
    );
    let _ = writeln!(out, "\ntokens per row (before truncation at {}):", r.max_length);
    let most = r.histogram.iter().map(|b| b.rows).max().unwrap_or(0).max(1);
    for b in &r.histogram {
        let bar = "#".repeat((b.rows * 40).div_ceil(most));
        let cut = match (b.from > r.max_length, b.to - 1 > r.max_length) {
            (true, _) => "  (truncated)",
            (false, true) => "  (some truncated)",
            _ => "",
        };
        let _ = writeln!(out, "  {:>6}-{:<6} {:>6}  {bar}{cut}", b.from, b.to - 1, b.rows);
    }
    let list = |out: &mut String, title: &str, rows: &[arkor_engine::data::inspect::RowRef]| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n{title} ({}):", rows.len());
        for row in rows.iter().take(20) {
            let _ = writeln!(
                out,
                "  row {} ({}:{}): {} tokens",
                row.index,
                row.file.display(),
                row.line,
                row.tokens
            );
        }
        if rows.len() > 20 {
            let _ = writeln!(out, "  ... and {} more", rows.len() - 20);
        }
    };
    list(&mut out, &format!("truncated to {} tokens", r.max_length), &r.truncated);
    list(&mut out, "rows with no trained token (they teach nothing)", &r.untrained);
    if !r.errors.is_empty() {
        let _ = writeln!(out, "\nmalformed rows ({}):", r.errors.len());
        for e in &r.errors {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}

/// A row's tokens in order: trained ones green (or between `[[` and `]]`), special tokens
/// in angle-bracket colour (or `<<...>>`), so the loss mask reads at a glance.
fn render(row: &RenderedRow, colour: bool) -> String {
    let mut out = format!(
        "\nrow {} ({}:{}), {} tokens; trained tokens {}:\n",
        row.row.index,
        row.row.file.display(),
        row.row.line,
        row.tokens.len(),
        if colour { "in green" } else { "between [[ and ]]" }
    );
    let mut in_trained = false;
    for t in &row.tokens {
        if !colour && t.trained != in_trained {
            out.push_str(if t.trained { "[[" } else { "]]" });
        }
        in_trained = t.trained;
        let text = if t.special && !colour { format!("<<{}>>", t.text) } else { t.text.clone() };
        if colour {
            let code = match (t.trained, t.special) {
                (true, true) => "1;32;4",
                (true, false) => "32",
                (false, true) => "2;35",
                (false, false) => "2",
            };
            out.push_str(&format!("\x1b[{code}m{text}\x1b[0m"));
        } else {
            out.push_str(&text);
        }
    }
    if in_trained && !colour {
        out.push_str("]]");
    }
    out.push('\n');
    out
}
