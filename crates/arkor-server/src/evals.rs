//! Evaluations of a job's final adapter or checkpoints on held-out rows, run as
//! `arkor eval` child processes (see [`crate::tasks`]). Each lives in
//! `<job dir>/evals/<id>/` with the full report (`report.json`: every row, reply and score)
//! next to its record, which carries the totals once it completes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arkor_engine::eval::EvalSummary;
use arkor_protocol::tasks::{EvalInfo, EvalRequest, EvalScores, KeyScore, TaskStatus};

use crate::tasks::{self, LiveTasks};
use crate::util::{iso, new_id, now_ms};

/// The report file of each evaluation.
pub const REPORT_FILE: &str = "report.json";

/// A request checked against the job.
pub struct ValidEval {
    /// The held-out rows.
    pub dataset: PathBuf,
    /// `final` or `checkpoint-<step>`.
    pub source: String,
    /// The step of that adapter.
    pub step: u64,
    /// Most tokens per reply.
    pub max_tokens: u32,
    /// System prompt override.
    pub system_prompt: Option<String>,
}

/// Checks the adapter and the numbers; the dataset path is checked by the caller (which
/// knows whether this backend reads local paths).
pub fn validate(req: &EvalRequest, job_dir: &Path, final_step: u64) -> Result<ValidEval, String> {
    let source = tasks::adapter_source(job_dir, req.checkpoint_step)?;
    let step = req.checkpoint_step.unwrap_or(final_step);
    let max_tokens = req.max_tokens.unwrap_or(256);
    if !(1..=4096).contains(&max_tokens) {
        return Err(format!("invalid maxTokens: expected 1-4096, got {max_tokens}"));
    }
    Ok(ValidEval {
        dataset: PathBuf::from(&req.dataset_path),
        source,
        step,
        max_tokens,
        system_prompt: req.system_prompt.clone(),
    })
}

/// Starts an evaluation in a child process and returns its record (status `running`).
pub fn start(
    live: &Arc<LiveTasks>,
    artifacts: &Arc<crate::artifacts::Artifacts>,
    program: &Path,
    data_dir: &Path,
    base_model: &str,
    job_dir: &Path,
    req: ValidEval,
) -> std::io::Result<EvalInfo> {
    let id = new_id("eval");
    let dir = job_dir.join("evals").join(&id);
    std::fs::create_dir_all(&dir)?;
    let info = EvalInfo {
        id,
        source: req.source.clone(),
        step: req.step,
        dataset: req
            .dataset
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        status: TaskStatus::Running,
        created_at: iso(now_ms()),
        finished_at: None,
        error: None,
        scores: None,
        report_pathname: None,
    };
    tasks::write_record(&dir, &info)?;
    let report = dir.join(REPORT_FILE);
    let mut args: Vec<OsString> =
        vec!["eval".into(), "--no-progress".into(), "--model".into(), base_model.into()];
    args.extend(["--adapter".into(), job_dir.join(&req.source).into_os_string()]);
    args.extend(["--data".into(), req.dataset.into_os_string()]);
    args.extend(["--max-tokens".into(), req.max_tokens.to_string().into()]);
    args.extend(["--output".into(), report.clone().into_os_string()]);
    if let Some(system) = &req.system_prompt {
        args.extend(["--system".into(), system.into()]);
    }
    let mut done = info.clone();
    let pathname = format!("evals/{}/{REPORT_FILE}", done.id);
    tasks::spawn(live, artifacts, program, data_dir, &dir, args, move |ended| {
        done.finished_at = Some(iso(now_ms()));
        let scores = ended.error().map_or_else(|| read_scores(&report), Err);
        match scores {
            Ok(scores) => {
                done.status = TaskStatus::Completed;
                done.scores = Some(scores);
                done.report_pathname = Some(pathname);
            }
            Err(error) => {
                done.status = TaskStatus::Failed;
                done.error = Some(format!("evaluation {error}"));
            }
        }
        done
    })?;
    Ok(info)
}

/// The totals of a report `arkor eval` wrote, as wire scores.
fn read_scores(report: &Path) -> Result<EvalScores, String> {
    #[derive(serde::Deserialize)]
    struct Report {
        summary: EvalSummary,
    }
    let bytes = std::fs::read(report).map_err(|e| format!("wrote no report: {e}"))?;
    let s = serde_json::from_slice::<Report>(&bytes)
        .map_err(|e| format!("wrote an unreadable report: {e}"))?
        .summary;
    Ok(EvalScores {
        rows: s.rows as u64,
        exact_match: s.exact_match as u64,
        json_rows: s.json_rows as u64,
        json_valid: s.json_valid as u64,
        per_key: s
            .per_key
            .into_iter()
            .map(|(k, v)| (k, KeyScore { correct: v.correct as u64, total: v.total as u64 }))
            .collect(),
        all_keys_correct: s.all_keys_correct as u64,
        elapsed_secs: s.elapsed_secs,
        tokens_generated: s.tokens_generated as u64,
    })
}
