//! Held-out evaluation: a greedy reply for every row of a dataset, scored against the
//! row's last assistant message.
//!
//! A row's prompt is its messages before the last assistant message (later messages are
//! ignored); that message is the reference. Replies are generated with temperature 0
//! through the model's chat template, so a run is deterministic. Each row scores:
//! - exact match, after trimming surrounding whitespace on both sides;
//! - when the reference is a JSON object: whether the trimmed reply parses as JSON
//!   (strictly: a reply in a code fence or with prose around it does not count), and for
//!   each top-level key of the reference whether the reply has an equal value there.
//!
//! Rows come in the conversation shapes of [`crate::data`] (chat, prompt/completion,
//! alpaca; detected from the first row of the file) and malformed rows are reported all
//! at once with file, line and field, as [`crate::data::prepare_dataset`] does. Plain
//! `text` rows have no reference and are rejected. Cancellation is checked between rows
//! and between tokens; a cancelled run returns the rows finished so far.
//!
//! It computes no loss or perplexity: training already reports the eval loss.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cancel::CancelToken;
use crate::data::{DataError, DatasetFormat, RowError};
use crate::generate::{FinishReason, SamplingParams, chat};
use crate::lora::Adapter;
use crate::models::Model;
use crate::tokenizer::{ChatMessage, TextTokenizer};
use crate::{Error, Result};

/// One row to evaluate: the prompt and the reply it should get.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalCase {
    /// 1-based line in the file (row number for JSON arrays).
    pub line: usize,
    /// The messages before the row's last assistant message.
    pub prompt: Vec<ChatMessage>,
    /// The content of the row's last assistant message.
    pub reference: String,
}

/// The rows of one held-out file.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalData {
    /// The file read.
    pub file: PathBuf,
    /// Its row shape, detected from the first row.
    pub format: DatasetFormat,
    /// Its rows, in order.
    pub cases: Vec<EvalCase>,
}

/// What to evaluate, and how.
#[derive(Clone, Copy)]
pub struct EvalRequest<'a> {
    /// The base model.
    pub model: &'a Model,
    /// The adapter under test (`None`: the base model alone).
    pub adapter: Option<&'a Adapter>,
    /// The model's tokenizer and chat template.
    pub tokenizer: &'a TextTokenizer,
    /// The rows.
    pub data: &'a EvalData,
    /// Most tokens per reply.
    pub max_tokens: usize,
    /// Replaces each row's system message (or is put first when it has none).
    pub system: Option<&'a str>,
}

/// The scores of one reply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    /// The trimmed reply equals the trimmed reference.
    pub exact: bool,
    /// Whether the reply parses as JSON; `None` when the reference is not a JSON object.
    pub json_valid: Option<bool>,
    /// Per top-level key of the reference object: the reply has an equal value there.
    pub keys: BTreeMap<String, bool>,
}

impl Score {
    /// A JSON-object row whose reply is valid JSON with every reference key right.
    pub fn all_keys_correct(&self) -> bool {
        self.json_valid == Some(true) && self.keys.values().all(|&ok| ok)
    }
}

/// One evaluated row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowReport {
    /// 0-based position in the file's rows.
    pub index: usize,
    /// 1-based line in the file.
    pub line: usize,
    /// The last user message of the prompt (empty when it has none).
    pub prompt: String,
    /// The expected reply.
    pub reference: String,
    /// The generated reply, raw.
    pub reply: String,
    /// The reply's scores.
    #[serde(flatten)]
    pub score: Score,
    /// Tokens generated for this reply.
    pub tokens: usize,
}

/// How often one reference key was answered right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyScore {
    /// Replies with an equal value for the key.
    pub correct: usize,
    /// Rows whose reference has the key.
    pub total: usize,
}

/// Totals over the evaluated rows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    /// Rows evaluated.
    pub rows: usize,
    /// Rows whose reply matched exactly.
    pub exact_match: usize,
    /// Rows whose reference is a JSON object.
    pub json_rows: usize,
    /// Of those, rows whose reply is valid JSON.
    pub json_valid: usize,
    /// Per reference key, across the JSON rows.
    pub per_key: BTreeMap<String, KeyScore>,
    /// JSON rows with a valid reply and every key right.
    pub all_keys_correct: usize,
    /// Wall-clock seconds.
    pub elapsed_secs: f64,
    /// Tokens generated in all replies.
    pub tokens_generated: usize,
    /// The run was cancelled: only the first `rows` rows were evaluated.
    pub cancelled: bool,
}

impl EvalSummary {
    /// Totals of `rows` (elapsed time zero, not cancelled).
    pub fn of_rows(rows: &[RowReport]) -> Self {
        let mut s = EvalSummary { rows: rows.len(), ..Default::default() };
        for row in rows {
            s.exact_match += usize::from(row.score.exact);
            s.tokens_generated += row.tokens;
            let Some(valid) = row.score.json_valid else { continue };
            s.json_rows += 1;
            s.json_valid += usize::from(valid);
            s.all_keys_correct += usize::from(row.score.all_keys_correct());
            for (key, &ok) in &row.score.keys {
                let k = s.per_key.entry(key.clone()).or_default();
                k.total += 1;
                k.correct += usize::from(ok);
            }
        }
        s
    }
}

/// The result of a run: totals and every row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Totals.
    pub summary: EvalSummary,
    /// Rows in file order.
    pub rows: Vec<RowReport>,
}

/// Scores `reply` against `reference`.
pub fn score(reference: &str, reply: &str) -> Score {
    let (reference, reply) = (reference.trim(), reply.trim());
    let exact = reference == reply;
    let Ok(Value::Object(expected)) = serde_json::from_str::<Value>(reference) else {
        return Score { exact, json_valid: None, keys: BTreeMap::new() };
    };
    let parsed = serde_json::from_str::<Value>(reply).ok();
    let keys = expected
        .iter()
        .map(|(k, v)| (k.clone(), parsed.as_ref().and_then(|p| p.get(k)) == Some(v)))
        .collect();
    Score { exact, json_valid: Some(parsed.is_some()), keys }
}

/// Generates a greedy reply for every row and scores it, calling `on_row` after each.
///
/// A cancelled run returns the rows finished before the token fired, with
/// `summary.cancelled` set. A row whose prompt cannot be rendered or is too long for the
/// model fails the run with an error naming its line.
pub fn evaluate(
    req: &EvalRequest<'_>,
    on_row: &mut dyn FnMut(&RowReport),
    cancel: &CancelToken,
) -> Result<EvalReport> {
    let start = Instant::now();
    let params = SamplingParams {
        max_tokens: req.max_tokens,
        temperature: 0.0,
        top_p: 1.0,
        top_k: None,
        repetition_penalty: 1.0,
        seed: 0,
        stop: vec![],
        constraint: None,
    };
    let mut rows = Vec::with_capacity(req.data.cases.len());
    let mut cancelled = false;
    for (index, case) in req.data.cases.iter().enumerate() {
        if cancel.is_cancelled() {
            cancelled = true;
            break;
        }
        let messages = with_system(&case.prompt, req.system);
        let generation =
            chat(req.model, req.adapter, req.tokenizer, &messages, &params, cancel, &mut |_| {})
                .map_err(|e| match e {
                    Error::Config { .. } | Error::Tokenizer(_) => Error::InvalidFile {
                        path: req.data.file.clone(),
                        message: format!("line {}: {e}", case.line),
                    },
                    e => e,
                })?;
        if generation.finish_reason == FinishReason::Cancelled {
            cancelled = true;
            break;
        }
        let row = RowReport {
            index,
            line: case.line,
            prompt: last_user_message(&messages),
            score: score(&case.reference, &generation.text),
            reference: case.reference.clone(),
            reply: generation.text,
            tokens: generation.tokens.len(),
        };
        on_row(&row);
        rows.push(row);
    }
    let summary = EvalSummary {
        elapsed_secs: start.elapsed().as_secs_f64(),
        cancelled,
        ..EvalSummary::of_rows(&rows)
    };
    Ok(EvalReport { summary, rows })
}

fn with_system(prompt: &[ChatMessage], system: Option<&str>) -> Vec<ChatMessage> {
    let mut messages = prompt.to_vec();
    if let Some(content) = system {
        let message = ChatMessage { role: "system".into(), content: content.to_owned() };
        match messages.first_mut() {
            Some(first) if first.role == "system" => *first = message,
            _ => messages.insert(0, message),
        }
    }
    messages
}

fn last_user_message(messages: &[ChatMessage]) -> String {
    messages.iter().rev().find(|m| m.role == "user").map(|m| m.content.clone()).unwrap_or_default()
}

/// Reads a dataset file of conversations (JSONL, JSON or Parquet; chat, prompt/completion
/// or alpaca rows) into evaluation rows: each row's prompt is everything before its last
/// assistant message, and that message is the reference.
///
/// Every malformed row, and every row without an assistant message, is reported with its
/// file and line in one [`DataError::InvalidRows`].
pub fn read_eval_data(path: &Path) -> Result<EvalData, DataError> {
    let (format, rows, mut errors) = crate::data::read_conversations(path, DatasetFormat::Auto)?;
    let mut cases = vec![];
    for row in rows {
        let mut messages = row.messages;
        let Some(last) = messages.iter().rposition(|m| m.role == "assistant") else {
            errors.push(RowError {
                file: path.to_path_buf(),
                line: row.line,
                message: "no assistant message: the reference is the row's last assistant message"
                    .to_owned(),
            });
            continue;
        };
        messages.truncate(last + 1);
        let reference = messages.pop().map(|m| m.content).unwrap_or_default();
        cases.push(EvalCase { line: row.line, prompt: messages, reference });
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(DataError::InvalidRows(errors));
    }
    Ok(EvalData { file: path.to_path_buf(), format, cases })
}

#[cfg(test)]
mod tests;
