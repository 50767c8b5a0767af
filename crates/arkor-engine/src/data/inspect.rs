//! What a dataset turns into before any training: its format, sizes, token lengths, the
//! rows that will be truncated or refused, and any row rendered through the chat template
//! token by token with its loss mask.
//!
//! Most small fine-tunes that go wrong go wrong here (a template that trains on the system
//! prompt, rows cut off before the answer), so `arkor data inspect` and Studio's Data tab
//! show it from the same code that prepares the rows for training.

use std::path::PathBuf;

use serde::Serialize;

use super::{DataError, DatasetFormat, EncodedRow, PrepareOptions, RowError, RowReader};
use crate::tokenizer::TextTokenizer;

/// A dataset as the trainer will see it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// The row format (detected from the first row when `auto`).
    pub format: DatasetFormat,
    /// Rows that tokenised.
    pub rows: usize,
    /// Rows read but not tokenised yet (0 once the inspection is complete).
    pub pending: usize,
    /// Tokens after truncation.
    pub tokens: usize,
    /// Tokens that are training targets.
    pub trained_tokens: usize,
    /// The truncation length.
    pub max_length: usize,
    /// Token lengths (before truncation) by bucket.
    pub histogram: Vec<Bucket>,
    /// Rows longer than `max_length`, with their length.
    pub truncated: Vec<RowRef>,
    /// Rows without any trained token (after truncation): they teach nothing.
    pub untrained: Vec<RowRef>,
    /// Malformed rows, each with its file, line and what is wrong.
    pub errors: Vec<RowError>,
}

/// Rows whose token length is in `from..to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Smallest length in the bucket.
    pub from: usize,
    /// One past the largest length in the bucket.
    pub to: usize,
    /// Rows in the bucket.
    pub rows: usize,
}

/// A row by position, with its token length before truncation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowRef {
    /// 0-based index among the rows that tokenised (what [`inspect`] renders).
    pub index: usize,
    /// File it came from.
    pub file: PathBuf,
    /// 1-based line (row number for JSON arrays and Parquet).
    pub line: usize,
    /// Tokens before truncation.
    pub tokens: usize,
}

/// One row as the model sees it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedRow {
    /// Where the row came from and its length.
    pub row: RowRef,
    /// Every token after truncation, in order.
    pub tokens: Vec<TokenView>,
}

/// One token of a rendered row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenView {
    /// Token id.
    pub id: u32,
    /// Its text (special tokens by name).
    pub text: String,
    /// Whether the loss is computed on it.
    pub trained: bool,
    /// Whether it is one of the tokenizer's special tokens (template markers, EOS).
    pub special: bool,
}

/// A dataset read and tokenised once: the report, and every row kept so that any of
/// them renders, and any page of them lists, without reading the files again (Studio's
/// Data tab pages through a large file this way). It may be partial: a [`Reader`] fills it
/// chunk by chunk, and the report counts what is tokenised so far.
pub struct Inspected {
    /// What training would see (of the rows tokenised so far).
    pub report: Inspection,
    rows: Vec<EncodedRow>,
}

/// A dataset's files read, their rows to be parsed and tokenised in order, a chunk at a
/// time.
pub struct Reader {
    rows: RowReader,
}

/// Rows tokenised by [`Reader::next_chunk`], for [`Inspected::extend`].
pub struct Chunk {
    format: DatasetFormat,
    pending: usize,
    rows: Vec<EncodedRow>,
    errors: Vec<RowError>,
}

/// A row in a list of rows: where it is, its sizes, and the start of its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RowSummary {
    /// Position, file, line and length.
    #[serde(flatten)]
    pub row: RowRef,
    /// Tokens the loss is computed on (after truncation).
    pub trained: usize,
    /// Its first characters as the model reads them, special tokens left out.
    pub preview: String,
}

/// Characters of a row's preview, at most.
const PREVIEW_CHARS: usize = 160;

/// Rows tokenised per chunk by [`Inspected::new`].
const CHUNK: usize = 4096;

impl Reader {
    /// Reads `files` (a missing, unreadable or empty file, or one of an unknown kind, is an
    /// error); no row is parsed or tokenised yet.
    pub fn open(files: &[PathBuf], opts: &PrepareOptions) -> Result<Reader, DataError> {
        Ok(Reader { rows: RowReader::open(files, opts)? })
    }

    /// Rows in the files (JSONL: non-empty lines, each a row or a malformed row).
    pub fn rows(&self) -> usize {
        self.rows.total()
    }

    /// An inspection with nothing read yet: every row pending.
    pub fn inspection(&mut self, max_length: usize) -> Inspected {
        Inspected {
            report: Inspection {
                format: self.rows.format(),
                rows: 0,
                pending: self.rows.pending(),
                tokens: 0,
                trained_tokens: 0,
                max_length,
                histogram: vec![],
                truncated: vec![],
                untrained: vec![],
                errors: vec![],
            },
            rows: vec![],
        }
    }

    /// The next `n` rows parsed and tokenised (on every core), or none when all are.
    pub fn next_chunk(
        &mut self,
        n: usize,
        tokenizer: &TextTokenizer,
        opts: &PrepareOptions,
    ) -> Option<Chunk> {
        let (rows, errors) = self.rows.next_chunk(n, tokenizer, opts)?;
        Some(Chunk { format: self.rows.format(), pending: self.rows.pending(), rows, errors })
    }
}

impl Inspected {
    /// Reads and tokenises every row of `files` and reports what training would see
    /// (malformed rows are listed rather than stopping the report).
    pub fn new(
        files: &[PathBuf],
        tokenizer: &TextTokenizer,
        opts: &PrepareOptions,
    ) -> Result<Inspected, DataError> {
        let mut reader = Reader::open(files, opts)?;
        let mut inspected = reader.inspection(opts.max_length);
        while let Some(chunk) = reader.next_chunk(CHUNK, tokenizer, opts) {
            inspected.extend(chunk);
        }
        Ok(inspected)
    }

    /// Adds the next rows tokenised to the rows and the report.
    pub fn extend(&mut self, chunk: Chunk) {
        let r = &mut self.report;
        for row in chunk.rows {
            let index = self.rows.len();
            let trained = trained_count(&row);
            r.tokens += row.example.input_ids.len();
            r.trained_tokens += trained;
            if row.full_len > r.max_length {
                r.truncated.push(row_ref(index, &row));
            }
            if trained == 0 {
                r.untrained.push(row_ref(index, &row));
            }
            self.rows.push(row);
        }
        r.pending = chunk.pending;
        r.rows = self.rows.len();
        r.format = chunk.format;
        r.errors.extend(chunk.errors);
        r.histogram = histogram(&self.rows.iter().map(|r| r.full_len).collect::<Vec<_>>(), 12);
    }

    /// Row `index` (0-based among the rows that tokenise) token by token.
    pub fn render(
        &self,
        index: usize,
        tokenizer: &TextTokenizer,
    ) -> Result<RenderedRow, DataError> {
        let r = self.get(index)?;
        let mut tokens = Vec::with_capacity(r.example.input_ids.len());
        for (&id, &trained) in r.example.input_ids.iter().zip(&r.example.loss_mask) {
            let text = tokenizer.decode(&[id], false)?;
            let special = !text.is_empty() && tokenizer.decode(&[id], true)?.is_empty();
            tokens.push(TokenView { id, text, trained, special });
        }
        Ok(RenderedRow { row: row_ref(index, r), tokens })
    }

    /// Up to `limit` rows from `offset`, each with the start of its text.
    pub fn page(
        &self,
        offset: usize,
        limit: usize,
        tokenizer: &TextTokenizer,
    ) -> Result<Vec<RowSummary>, DataError> {
        let end = offset.saturating_add(limit).min(self.rows.len());
        (offset.min(end)..end)
            .map(|index| {
                let r = &self.rows[index];
                // A preview needs the first tokens only (a few per character at most).
                let head = &r.example.input_ids[..r.example.input_ids.len().min(PREVIEW_CHARS)];
                let text = tokenizer.decode(head, true)?;
                let preview: String = text
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(PREVIEW_CHARS)
                    .collect();
                Ok(RowSummary { row: row_ref(index, r), trained: trained_count(r), preview })
            })
            .collect()
    }

    fn get(&self, index: usize) -> Result<&EncodedRow, DataError> {
        self.rows.get(index).ok_or_else(|| {
            DataError::Row(match self.rows.len() {
                0 => format!("row {index} does not exist: no row of the dataset tokenises"),
                n => format!(
                    "row {index} does not exist: the dataset has {n} rows that tokenise (0 to {})",
                    n - 1
                ),
            })
        })
    }
}

fn row_ref(index: usize, r: &EncodedRow) -> RowRef {
    RowRef { index, file: r.file.clone(), line: r.line, tokens: r.full_len }
}

/// Trained tokens of a row: the mask after the first position (the first token is never a
/// target, it has nothing before it).
fn trained_count(r: &EncodedRow) -> usize {
    r.example.loss_mask.iter().skip(1).filter(|m| **m).count()
}

/// `lengths` in at most `max_buckets` buckets of equal width (a round number), from the
/// shortest to the longest; no buckets for no rows.
pub fn histogram(lengths: &[usize], max_buckets: usize) -> Vec<Bucket> {
    let (Some(&min), Some(&max)) = (lengths.iter().min(), lengths.iter().max()) else {
        return vec![];
    };
    let span = max - min + 1;
    let raw = span.div_ceil(max_buckets.max(1));
    // 1, 2, 5, 10, 20, 50, ... so the edges read well.
    let width = [1, 2, 5]
        .iter()
        .flat_map(|m| (0..12).map(move |e| m * 10usize.pow(e)))
        .filter(|w| *w >= raw)
        .min()
        .unwrap_or(raw);
    let start = min / width * width;
    let buckets = (max - start) / width + 1;
    let mut out: Vec<Bucket> = (0..buckets)
        .map(|i| Bucket { from: start + i * width, to: start + (i + 1) * width, rows: 0 })
        .collect();
    for &l in lengths {
        out[(l - start) / width].rows += 1;
    }
    out
}
