//! `arkor eval`: score a model, or a model plus an adapter, on a held-out dataset.
//!
//! Order: read the rows (so bad data fails before the model loads), resolve and load the
//! model and adapter, generate a greedy reply per row behind a progress bar, print a
//! table of the scores on stdout and, with `--output`, write the full report as JSON
//! (through a temporary file in the same directory, so a reader never sees half of it).
//! Ctrl-C stops after the current row, reports the rows done and exits with 130.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use arkor_engine::cancel::CancelToken;
use arkor_engine::eval::{EvalReport, EvalRequest, EvalSummary, evaluate, read_eval_data};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::EvalArgs;
use crate::config::Global;

pub fn run(global: &Global, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let data = read_eval_data(&args.data)
        .with_context(|| format!("failed to read the eval data {}", args.data.display()))?;
    // Fail on an unwritable output before the slow part, not after it.
    if let Some(dir) = args.output.as_deref().and_then(Path::parent)
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create the output directory {}", dir.display()))?;
    }
    let super::Loaded { model, tokenizer, adapter } =
        super::load_model(global, &args.model, args.adapter.as_deref())?;

    let cancel = CancelToken::new();
    let on_signal = cancel.clone();
    ctrlc::set_handler(move || {
        if on_signal.is_cancelled() {
            std::process::exit(130);
        }
        eprintln!("\ncancelling after the current row (Ctrl-C again to quit now)");
        on_signal.cancel();
    })
    .context("failed to install the Ctrl-C handler")?;

    let total = data.cases.len();
    let bar = (!args.no_progress).then(|| {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30.cyan/blue} row {pos}/{len}  {msg}  elapsed {elapsed}  eta {eta}",
            )
            .expect("valid template"),
        );
        bar
    });
    let request = EvalRequest {
        model: &model,
        adapter: adapter.as_ref(),
        tokenizer: &tokenizer,
        data: &data,
        max_tokens: args.max_tokens,
        system: args.system.as_deref(),
    };
    let mut exact = 0;
    let result = evaluate(
        &request,
        &mut |row| {
            exact += usize::from(row.score.exact);
            let done = row.index + 1;
            match &bar {
                Some(bar) => {
                    bar.set_position(done as u64);
                    bar.set_message(format!("exact {exact}/{done}"));
                }
                None => eprintln!("row {done}/{total} (line {}): exact {exact}/{done}", row.line),
            }
        },
        &cancel,
    );
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = result?;

    let mut title = format!("{} on {}", args.model, args.data.display());
    if let Some(dir) = &args.adapter {
        title = format!("{} + {title}", dir.display());
    }
    print!("{}", table(&title, total, &report.summary));
    if let Some(path) = &args.output {
        write_report(path, &report)?;
        eprintln!("wrote {}", path.display());
    }
    if report.summary.cancelled {
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary as aligned text lines.
fn table(title: &str, total: usize, s: &EvalSummary) -> String {
    let ratio = |n: usize, of: usize| {
        let pct = if of == 0 { 0.0 } else { 100.0 * n as f64 / of as f64 };
        format!("{:>9}  {pct:5.1}%", format!("{n}/{of}"))
    };
    let mut out = format!("eval: {title}\n");
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<20}{value}");
    };
    let rows =
        if s.cancelled { format!("{} of {total} (cancelled)", s.rows) } else { s.rows.to_string() };
    line("rows", rows);
    line("exact match", ratio(s.exact_match, s.rows));
    if s.json_rows > 0 {
        line("valid JSON", ratio(s.json_valid, s.json_rows));
        for (key, k) in &s.per_key {
            line(&format!("  {key}"), ratio(k.correct, k.total));
        }
        line("all keys correct", ratio(s.all_keys_correct, s.json_rows));
    }
    line("tokens generated", s.tokens_generated.to_string());
    line("time", format!("{:.1}s", s.elapsed_secs));
    out
}

/// Writes the report as pretty JSON through a temporary file renamed into place.
fn write_report(path: &Path, report: &EvalReport) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).context("failed to serialise the report")?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name =
        path.file_name().with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    std::fs::write(&tmp, json + "\n")
        .with_context(|| format!("failed to write the report {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("failed to write the report {}", path.display()))
}
