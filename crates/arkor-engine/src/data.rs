//! Datasets: reading rows, rendering them through the chat template, tokenising and
//! masking, with a report before any compute is spent.
//!
//! Files are JSONL, JSON arrays or Parquet (Hugging Face dataset exports).
//! Row shapes (detected per file from its first row, or forced with [`DatasetFormat`]):
//! chat `{"messages": [{"role", "content"}, ...]}`, prompt/completion
//! `{"prompt", "completion"}`, alpaca `{"instruction", "input"?, "output"}` and plain
//! `{"text"}`. The first three become conversations rendered with the model's chat
//! template; with `train_on_responses_only` the loss covers only the assistant turns
//! (their text and the end-of-turn marker the template writes after it), found by
//! rendering each conversation prefix and mapping character offsets to tokens.
//!
//! Every malformed row is collected with its file, line and field; if there is any,
//! [`prepare_dataset`] fails listing them, so nothing trains on half-broken data.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tokenizer::{ChatMessage, TextTokenizer, TokenizerError};

/// Errors preparing a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A dataset file does not exist.
    #[error("dataset file {0} does not exist")]
    Missing(PathBuf),
    /// A dataset file could not be read.
    #[error("failed to read dataset file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file extension is not one we read.
    #[error("dataset file {0}: unsupported extension (expected .jsonl, .json or .parquet)")]
    UnsupportedFile(PathBuf),
    /// The files hold no rows.
    #[error("dataset {0} has no rows")]
    Empty(PathBuf),
    /// Some rows are malformed.
    #[error("{} malformed row(s) in the dataset:\n{}{}", .0.len(), first_errors(.0), more_errors(.0))]
    InvalidRows(Vec<RowError>),
    /// After masking and truncation no token is left to train on.
    #[error(
        "no trainable tokens in {rows} rows: every trained token was masked or truncated \
         (check train_on_responses_only, max_length and that rows have assistant replies)"
    )]
    NoTrainableTokens {
        /// Rows read.
        rows: usize,
    },
    /// The chat template failed.
    #[error(transparent)]
    Template(#[from] TokenizerError),
    /// A row asked for by number does not exist.
    #[error("{0}")]
    Row(String),
}

fn first_errors(errors: &[RowError]) -> String {
    errors.iter().take(10).map(|e| format!("  {e}\n")).collect()
}

fn more_errors(errors: &[RowError]) -> String {
    if errors.len() > 10 { format!("  ... and {} more", errors.len() - 10) } else { String::new() }
}

/// One malformed row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (row number for JSON arrays).
    pub line: usize,
    /// What was wrong, naming the field.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// The shape of dataset rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetFormat {
    /// Detect from the first row of each file.
    #[default]
    Auto,
    /// `{"messages": [{"role", "content"}, ...]}`
    Chat,
    /// `{"prompt", "completion"}`
    PromptCompletion,
    /// `{"instruction", "input"?, "output"}`
    Alpaca,
    /// `{"text"}`: plain language modelling, every token trained.
    Text,
}

impl DatasetFormat {
    fn name(self) -> &'static str {
        match self {
            DatasetFormat::Auto => "auto",
            DatasetFormat::Chat => "chat",
            DatasetFormat::PromptCompletion => "prompt_completion",
            DatasetFormat::Alpaca => "alpaca",
            DatasetFormat::Text => "text",
        }
    }
}

/// How rows become training examples.
#[derive(Clone, Debug, PartialEq)]
pub struct PrepareOptions {
    /// Row shape, or auto-detection.
    pub format: DatasetFormat,
    /// Longest example in tokens; longer ones are truncated and counted.
    pub max_length: usize,
    /// Train only on assistant tokens.
    pub train_on_responses_only: bool,
    /// Fraction of rows held out for evaluation.
    pub eval_split: f64,
    /// Seed of the split.
    pub seed: u64,
    /// Use only the first rows (dry runs).
    pub max_rows: Option<usize>,
}

/// One tokenised training sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// `loss_mask[i]`: token `i` is a training target (predicted from position `i - 1`);
    /// `loss_mask[0]` is always false.
    pub loss_mask: Vec<bool>,
}

/// What the dataset looked like after tokenisation.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetReport {
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Detected (or forced) row format of the first file.
    pub format: DatasetFormat,
    /// Rows read.
    pub rows: usize,
    /// Rows used for training.
    pub train_rows: usize,
    /// Rows held out.
    pub eval_rows: usize,
    /// Tokens in all examples.
    pub tokens: usize,
    /// Tokens that contribute to the loss.
    pub trained_tokens: usize,
    /// Rows cut to `max_length`.
    pub truncated_rows: usize,
    /// Malformed rows (empty when preparation succeeded).
    pub errors: Vec<RowError>,
}

impl DatasetReport {
    /// A few human-readable lines for the CLI.
    pub fn summary(&self) -> String {
        let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        format!(
            "dataset {} ({} format): {} rows ({} train, {} eval), {} tokens, {} trained, {} truncated",
            files.join(", "),
            self.format.name(),
            self.rows,
            self.train_rows,
            self.eval_rows,
            self.tokens,
            self.trained_tokens,
            self.truncated_rows
        )
    }
}

/// Tokenised train and eval examples plus the report.
#[derive(Clone, Debug)]
pub struct PreparedDataset {
    /// Training examples.
    pub train: Vec<Example>,
    /// Held-out examples.
    pub eval: Vec<Example>,
    /// What was read.
    pub report: DatasetReport,
}

/// One row of a dataset file as a conversation, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationRow {
    /// 1-based line (row number for JSON arrays and Parquet).
    pub line: usize,
    /// The row's messages (prompt/completion and alpaca rows become user + assistant).
    pub messages: Vec<ChatMessage>,
}

/// Reads every row of one dataset file (JSONL, JSON or Parquet, in any shape but plain
/// `text`) as a conversation: the good rows, and next to them every malformed row as a
/// [`RowError`] with its file and line (an unreadable or empty file is an error).
pub fn read_conversations(
    path: &Path,
    format: DatasetFormat,
) -> Result<(DatasetFormat, Vec<ConversationRow>, Vec<RowError>), DataError> {
    let opts = PrepareOptions {
        format,
        max_length: usize::MAX,
        train_on_responses_only: false,
        eval_split: 0.0,
        seed: 0,
        max_rows: None,
    };
    let mut errors = vec![];
    let (format, rows) = read_file(path, &opts, &mut errors)?;
    let mut out = Vec::with_capacity(rows.len());
    for (file, line, row) in rows {
        match row {
            Row::Chat(messages) => out.push(ConversationRow { line, messages }),
            Row::Text(_) => errors.push(RowError {
                file,
                line,
                message: "a `text` row has no conversation (expected `messages`, `prompt` + \
                          `completion`, or `instruction` + `output`)"
                    .to_owned(),
            }),
        }
    }
    if out.is_empty() && errors.is_empty() {
        return Err(DataError::Empty(path.to_path_buf()));
    }
    Ok((format, out, errors))
}

/// A parsed row.
pub(crate) enum Row {
    Chat(Vec<ChatMessage>),
    Text(String),
}

/// Reads, validates, tokenises, masks and splits the dataset files.
pub fn prepare_dataset(
    files: &[PathBuf],
    tokenizer: &TextTokenizer,
    opts: &PrepareOptions,
) -> Result<PreparedDataset, DataError> {
    let encoded = encode_files(files, tokenizer, opts)?;
    if !encoded.errors.is_empty() {
        return Err(DataError::InvalidRows(encoded.errors));
    }
    let detected = encoded.format;
    let truncated_rows = encoded.rows.iter().filter(|r| r.full_len > opts.max_length).count();
    let examples: Vec<Example> = encoded.rows.into_iter().map(|r| r.example).collect();
    let total_rows = examples.len();
    let tokens = examples.iter().map(|e| e.input_ids.len()).sum();
    let trained_tokens: usize =
        examples.iter().map(|e| e.loss_mask.iter().skip(1).filter(|m| **m).count()).sum();
    if trained_tokens == 0 {
        return Err(DataError::NoTrainableTokens { rows: total_rows });
    }
    let (train, eval) = split(examples, opts.eval_split, opts.seed);
    let report = DatasetReport {
        files: files.to_vec(),
        format: detected,
        rows: total_rows,
        train_rows: train.len(),
        eval_rows: eval.len(),
        tokens,
        trained_tokens,
        truncated_rows,
        errors: vec![],
    };
    Ok(PreparedDataset { train, eval, report })
}

/// One row read, tokenised and truncated, with where it came from.
pub(crate) struct EncodedRow {
    pub file: PathBuf,
    pub line: usize,
    /// Tokens before truncation to `max_length`.
    pub full_len: usize,
    pub example: Example,
}

/// Every row of `files` read and tokenised (up to `opts.max_rows`), the malformed ones as
/// errors next to the rest.
pub(crate) struct Encoded {
    pub format: DatasetFormat,
    pub rows: Vec<EncodedRow>,
    pub errors: Vec<RowError>,
}

/// Every row of `files` read and tokenised (on every core, a chunk at a time).
pub(crate) fn encode_files(
    files: &[PathBuf],
    tokenizer: &TextTokenizer,
    opts: &PrepareOptions,
) -> Result<Encoded, DataError> {
    let mut reader = RowReader::open(files, opts)?;
    let (mut rows, mut errors) = (vec![], vec![]);
    while let Some((mut r, mut e)) = reader.next_chunk(4096, tokenizer, opts) {
        rows.append(&mut r);
        errors.append(&mut e);
    }
    Ok(Encoded { format: reader.format(), rows, errors })
}

/// The rows of dataset files, read at once but parsed and tokenised a chunk at a time, in
/// order (so that a large file's first rows are ready long before its last ones).
pub(crate) struct RowReader {
    files: Vec<FileItems>,
    /// Each file's row format (detected from its first row when `auto`).
    formats: Vec<DatasetFormat>,
    /// Next item: file and position in it.
    at: (usize, usize),
    /// Items (rows, or lines that may be rows) in all files, and consumed so far.
    total: usize,
    done: usize,
    /// Rows kept so far (`max_rows` stops tokenising, not reading: later rows' errors
    /// still count).
    kept: usize,
}

impl RowReader {
    pub fn open(files: &[PathBuf], opts: &PrepareOptions) -> Result<RowReader, DataError> {
        let files = files.iter().map(|f| load_file(f)).collect::<Result<Vec<_>, _>>()?;
        let total = files.iter().map(|f| f.items.len()).sum();
        if total == 0 {
            return Err(DataError::Empty(
                files.first().map(|f| f.path.clone()).unwrap_or_default(),
            ));
        }
        let formats = vec![opts.format; files.len()];
        Ok(RowReader { files, formats, at: (0, 0), total, done: 0, kept: 0 })
    }

    /// Rows (and lines that may be rows) in all files.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Rows (and lines) not read yet.
    pub fn pending(&self) -> usize {
        self.total - self.done
    }

    /// The first file's row format, as far as it is known.
    pub fn format(&self) -> DatasetFormat {
        self.formats[0]
    }

    /// The next `n` items parsed and tokenised: the rows, and the malformed ones as errors;
    /// none when every item is read.
    pub fn next_chunk(
        &mut self,
        n: usize,
        tokenizer: &TextTokenizer,
        opts: &PrepareOptions,
    ) -> Option<(Vec<EncodedRow>, Vec<RowError>)> {
        use rayon::prelude::*;
        if self.done >= self.total {
            return None;
        }
        let mut positions = Vec::with_capacity(n);
        while positions.len() < n.max(1) && self.done < self.total {
            let (f, i) = self.at;
            if i >= self.files[f].items.len() {
                self.at = (f + 1, 0);
                continue;
            }
            positions.push((f, i));
            self.at = (f, i + 1);
            self.done += 1;
        }
        let values: Vec<Result<Value, String>> =
            positions.par_iter().map(|&(f, i)| self.files[f].value(i)).collect();
        // In line order: a row that does not parse (its error), or a row kept for
        // tokenising (`Ok`, its result comes from `encode_rows` in the same order).
        let mut slots = Vec::with_capacity(positions.len());
        let mut rows = vec![];
        for (&(f, i), value) in positions.iter().zip(values) {
            let file = &self.files[f];
            let line = file.items[i].0;
            match row_of(value, &mut self.formats[f], opts) {
                Ok(row) if opts.max_rows.is_none_or(|m| self.kept < m) => {
                    rows.push((file.path.clone(), line, row));
                    self.kept += 1;
                    slots.push(Ok(()));
                }
                Ok(_) => {}
                Err(message) => {
                    slots.push(Err(RowError { file: file.path.clone(), line, message }))
                }
            }
        }
        let mut results = encode_rows(&rows, tokenizer, opts).into_iter();
        let (mut encoded, mut errors) = (vec![], vec![]);
        for slot in slots {
            match slot.and_then(|()| results.next().expect("one result per kept row")) {
                Ok(row) => encoded.push(row),
                Err(e) => errors.push(e),
            }
        }
        Some((encoded, errors))
    }
}

/// Tokenises and masks `rows` on every core; a result per row, in order (an error where the
/// template or tokenizer refuses the row).
fn encode_rows(
    rows: &[(PathBuf, usize, Row)],
    tokenizer: &TextTokenizer,
    opts: &PrepareOptions,
) -> Vec<Result<EncodedRow, RowError>> {
    use rayon::prelude::*;
    rows.par_iter()
        .map(|(file, line, row)| match encode_row(row, tokenizer, opts) {
            Ok(mut example) => {
                let full_len = example.input_ids.len();
                example.input_ids.truncate(opts.max_length);
                example.loss_mask.truncate(opts.max_length);
                Ok(EncodedRow { file: file.clone(), line: *line, full_len, example })
            }
            Err(message) => Err(RowError { file: file.clone(), line: *line, message }),
        })
        .collect()
}

fn split(mut examples: Vec<Example>, fraction: f64, seed: u64) -> (Vec<Example>, Vec<Example>) {
    if fraction <= 0.0 || examples.len() < 2 {
        return (examples, vec![]);
    }
    let n_eval = ((examples.len() as f64 * fraction).ceil() as usize).min(examples.len() - 1);
    let mut idx: Vec<usize> = (0..examples.len()).collect();
    idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let mut is_eval = vec![false; examples.len()];
    idx[..n_eval].iter().for_each(|&i| is_eval[i] = true);
    let mut eval = vec![];
    let mut train = vec![];
    for (i, e) in examples.drain(..).enumerate() {
        if is_eval[i] { eval.push(e) } else { train.push(e) }
    }
    (train, eval)
}

pub(crate) type FileRows = Vec<(PathBuf, usize, Row)>;

/// A dataset file's rows before parsing: JSONL lines (parsed when needed), or the values of
/// a JSON array or a Parquet file; each with its 1-based line (row number).
struct FileItems {
    path: PathBuf,
    text: String,
    items: Vec<(usize, Item)>,
}

enum Item {
    Line(std::ops::Range<usize>),
    Value(Result<Value, String>),
}

impl FileItems {
    fn value(&self, i: usize) -> Result<Value, String> {
        match &self.items[i].1 {
            Item::Line(range) => serde_json::from_str(&self.text[range.clone()])
                .map_err(|e| format!("invalid JSON: {e}")),
            Item::Value(v) => v.clone(),
        }
    }
}

fn load_file(path: &Path) -> Result<FileItems, DataError> {
    if !path.is_file() {
        return Err(DataError::Missing(path.to_path_buf()));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let read_text = || {
        std::fs::read_to_string(path)
            .map_err(|source| DataError::Io { path: path.to_path_buf(), source })
    };
    let values = |items: Vec<(usize, Result<Value, String>)>| {
        items.into_iter().map(|(line, v)| (line, Item::Value(v))).collect()
    };
    let (text, items) = match ext {
        "parquet" => (String::new(), values(parquet_rows(path)?)),
        "jsonl" | "ndjson" => {
            let text = read_text()?;
            let mut items = vec![];
            let mut start = 0;
            for (i, line) in text.split('\n').enumerate() {
                let end = start + line.len();
                if !line.trim().is_empty() {
                    items.push((i + 1, Item::Line(start..end)));
                }
                start = end + 1;
            }
            (text, items)
        }
        "json" => {
            let items = match serde_json::from_str::<Value>(&read_text()?) {
                Ok(Value::Array(items)) => {
                    items.into_iter().enumerate().map(|(i, v)| (i + 1, Ok(v))).collect()
                }
                Ok(_) => vec![(1, Err("expected a JSON array of rows".to_owned()))],
                Err(e) => vec![(e.line(), Err(format!("invalid JSON: {e}")))],
            };
            (String::new(), values(items))
        }
        _ => return Err(DataError::UnsupportedFile(path.to_path_buf())),
    };
    Ok(FileItems { path: path.to_path_buf(), text, items })
}

/// One parsed value as a row, in the file's `format` (set from this row when `auto`).
fn row_of(
    value: Result<Value, String>,
    format: &mut DatasetFormat,
    opts: &PrepareOptions,
) -> Result<Row, String> {
    let Value::Object(obj) = value? else {
        return Err("expected a JSON object".to_owned());
    };
    if *format == DatasetFormat::Auto {
        *format = detect(&obj).ok_or_else(|| {
            format!(
                "cannot tell the row format: expected a field `messages`, `prompt` + \
                 `completion`, `instruction` + `output`, or `text`; got {}",
                keys(&obj)
            )
        })?;
    }
    parse_row(&obj, *format, opts.train_on_responses_only)
}

fn read_file(
    path: &Path,
    opts: &PrepareOptions,
    errors: &mut Vec<RowError>,
) -> Result<(DatasetFormat, FileRows), DataError> {
    let file = load_file(path)?;
    let mut format = opts.format;
    let mut rows = vec![];
    for (i, (line, _)) in file.items.iter().enumerate() {
        match row_of(file.value(i), &mut format, opts) {
            Ok(row) => rows.push((path.to_path_buf(), *line, row)),
            Err(message) => {
                errors.push(RowError { file: path.to_path_buf(), line: *line, message })
            }
        }
    }
    Ok((format, rows))
}

/// Rows of a Parquet file as JSON objects (row numbers are 1-based "lines").
fn parquet_rows(path: &Path) -> Result<Vec<(usize, Result<Value, String>)>, DataError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let invalid = |e: parquet::errors::ParquetError| DataError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    };
    let file = std::fs::File::open(path)
        .map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let reader = SerializedFileReader::new(file).map_err(invalid)?;
    let rows = reader.get_row_iter(None).map_err(invalid)?;
    Ok(rows
        .enumerate()
        .map(|(i, row)| {
            (i + 1, row.map(|r| r.to_json_value()).map_err(|e| format!("unreadable row: {e}")))
        })
        .collect())
}

fn keys(obj: &serde_json::Map<String, Value>) -> String {
    let k: Vec<String> = obj.keys().map(|k| format!("`{k}`")).collect();
    if k.is_empty() { "an empty object".to_owned() } else { format!("fields {}", k.join(", ")) }
}

fn detect(obj: &serde_json::Map<String, Value>) -> Option<DatasetFormat> {
    if obj.contains_key("messages") {
        Some(DatasetFormat::Chat)
    } else if obj.contains_key("prompt") && obj.contains_key("completion") {
        Some(DatasetFormat::PromptCompletion)
    } else if obj.contains_key("instruction") && obj.contains_key("output") {
        Some(DatasetFormat::Alpaca)
    } else if obj.contains_key("text") {
        Some(DatasetFormat::Text)
    } else {
        None
    }
}

/// "a string", "an array", ...: a JSON value's kind for error messages.
pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field, or text parts `[{"type": "text", "text": ...}]` joined.
fn text_field(
    obj: &serde_json::Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<String, String> {
    match obj.get(field) {
        None => Err(format!("missing field `{path}`")),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(i, p)| match p.get("text").and_then(Value::as_str) {
                Some(t) => Ok(t),
                None => Err(format!("field `{path}[{i}]`: expected a text part {{\"type\": \"text\", \"text\": ...}}")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|p| p.concat()),
        Some(other) => Err(format!("field `{path}`: expected a string, got {}", describe(other))),
    }
}

const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

fn parse_row(
    obj: &serde_json::Map<String, Value>,
    format: DatasetFormat,
    responses_only: bool,
) -> Result<Row, String> {
    let user = |c: String| ChatMessage { role: "user".into(), content: c };
    let assistant = |c: String| ChatMessage { role: "assistant".into(), content: c };
    let messages = match format {
        DatasetFormat::Auto => unreachable!("detected before parsing"),
        DatasetFormat::Text => return Ok(Row::Text(text_field(obj, "text", "text")?)),
        DatasetFormat::PromptCompletion => {
            vec![
                user(text_field(obj, "prompt", "prompt")?),
                assistant(text_field(obj, "completion", "completion")?),
            ]
        }
        DatasetFormat::Alpaca => {
            let instruction = text_field(obj, "instruction", "instruction")?;
            let input = match obj.get("input") {
                None | Some(Value::Null) => String::new(),
                Some(_) => text_field(obj, "input", "input")?,
            };
            let prompt = if input.trim().is_empty() {
                instruction
            } else {
                format!("{instruction}\n\n{input}")
            };
            vec![user(prompt), assistant(text_field(obj, "output", "output")?)]
        }
        DatasetFormat::Chat => {
            let list = match obj.get("messages") {
                Some(Value::Array(l)) => l,
                Some(other) => {
                    return Err(format!(
                        "field `messages`: expected an array, got {}",
                        describe(other)
                    ));
                }
                None => {
                    return Err(format!("missing field `messages` (the row has {})", keys(obj)));
                }
            };
            if list.is_empty() {
                return Err(
                    "field `messages`: expected at least one message, got an empty array".into()
                );
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, m) in list.iter().enumerate() {
                let Value::Object(m) = m else {
                    return Err(format!(
                        "field `messages[{i}]`: expected an object, got {}",
                        describe(m)
                    ));
                };
                let role = match m.get("role") {
                    Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.clone(),
                    Some(Value::String(r)) => {
                        return Err(format!(
                            "field `messages[{i}].role`: expected one of system, user, assistant, tool, got \"{r}\""
                        ));
                    }
                    Some(other) => {
                        return Err(format!(
                            "field `messages[{i}].role`: expected a string, got {}",
                            describe(other)
                        ));
                    }
                    None => return Err(format!("missing field `messages[{i}].role`")),
                };
                let content = text_field(m, "content", &format!("messages[{i}].content"))?;
                out.push(ChatMessage { role, content });
            }
            out
        }
    };
    if responses_only && !messages.iter().any(|m| m.role == "assistant") {
        return Err("no assistant message to train on (train_on_responses_only is set)".into());
    }
    Ok(Row::Chat(messages))
}

fn encode_row(row: &Row, tok: &TextTokenizer, opts: &PrepareOptions) -> Result<Example, String> {
    match row {
        Row::Text(text) => {
            let mut ids = tok.encode(text, true).map_err(|e| e.to_string())?;
            ids.extend(tok.eos_token_ids().first());
            let mut loss_mask = vec![true; ids.len()];
            if let Some(first) = loss_mask.first_mut() {
                *first = false;
            }
            Ok(Example { input_ids: ids, loss_mask })
        }
        Row::Chat(messages) => {
            encode_chat(messages, tok, opts.train_on_responses_only).map_err(|e| e.to_string())
        }
    }
}

fn encode_chat(
    messages: &[ChatMessage],
    tok: &TextTokenizer,
    responses_only: bool,
) -> Result<Example, DataError> {
    let full = tok.render_chat(messages, false)?;
    let mut spans = vec![];
    if responses_only {
        for (i, m) in messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let before = tok.render_chat(&messages[..i], true)?;
            let upto = tok.render_chat(&messages[..=i], false)?;
            if !full.starts_with(&upto) || !upto.starts_with(&before) {
                return Err(DataError::Template(TokenizerError::Tokenize(
                    "the chat template renders earlier turns differently once later turns are added, \
                     so assistant tokens cannot be located; set train_on_responses_only = false"
                        .into(),
                )));
            }
            spans.push((before.len(), upto.len()));
        }
    }
    let (ids, offsets) = tok.encode_with_offsets(&full, false)?;
    let mut loss_mask: Vec<bool> = if responses_only {
        offsets
            .iter()
            .map(|&(start, end)| spans.iter().any(|&(a, b)| start < b && end > a))
            .collect()
    } else {
        vec![true; ids.len()]
    };
    if let Some(first) = loss_mask.first_mut() {
        *first = false;
    }
    Ok(Example { input_ids: ids, loss_mask })
}

pub mod inspect;
#[cfg(test)]
mod tests;
