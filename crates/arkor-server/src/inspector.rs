//! `POST /v1/datasets/inspect`: a dataset as a training run would see it, computed by the
//! engine (templates and loss masks are the engine's), kept for paging.
//!
//! Tokenising a large file takes a while (100k chat rows: tens of seconds), so the rows
//! are read and parsed at once, then tokenised chunk by chunk on a thread of their own,
//! and every request is answered with what is ready: the first rows within a fraction of a
//! second, the report growing until `pending` is 0 (Studio polls and draws a progress
//! bar). The last dataset inspected stays in memory (its token ids and masks, not its text)
//! and the next request for the same files, model and options is answered from it; a file
//! that changed on disk (size or modification time) is read again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use arkor_engine::config::TrainConfig;
use arkor_engine::data::PrepareOptions;
use arkor_engine::data::inspect::{Inspected, Reader};
use arkor_engine::tokenizer::TextTokenizer;

/// One inspected dataset, complete or being tokenised.
pub struct Entry {
    /// The dataset's files, in order.
    pub files: Vec<PathBuf>,
    /// Rows, report and tokens so far.
    pub inspected: RwLock<Inspected>,
    /// The model's tokenizer (renders rows and previews).
    pub tokenizer: Arc<TextTokenizer>,
    /// Seconds from the request that started it to its last row tokenised, once complete.
    pub seconds: Mutex<Option<f64>>,
    /// Set when another dataset replaced this one: its tokenising stops.
    stale: AtomicBool,
}

/// What makes two inspections the same: the model, the files as they are on disk now, and
/// the options that change tokens or masks.
#[derive(Clone, Debug, PartialEq)]
struct Key {
    model_dir: PathBuf,
    files: Vec<(PathBuf, u64, Option<SystemTime>)>,
    format: String,
    max_length: usize,
    responses_only: bool,
}

/// The last dataset inspected.
pub struct Inspector {
    data_dir: PathBuf,
    hub: arkor_hub::HubOptions,
    last: Mutex<Option<(Key, Arc<Entry>)>>,
    /// Serialises starting one, so that a page and a row asked for together read it once.
    starting: Mutex<()>,
}

/// Rows in the first chunk (what the first answer waits for) and in the later ones.
const FIRST_CHUNK: usize = 256;
const CHUNK: usize = 2048;

impl Inspector {
    /// Models resolve as for training, but never download: a model that is not on this
    /// machine yet is an error saying so (its first training run downloads it).
    pub fn new(data_dir: PathBuf, hub: arkor_hub::HubOptions) -> Self {
        let hub = arkor_hub::HubOptions { offline: true, progress: false, ..hub };
        Inspector { data_dir, hub, last: Mutex::new(None), starting: Mutex::new(()) }
    }

    /// The inspection of `config`'s dataset with its model's tokenizer and template (maybe
    /// still being tokenised), and whether it was already in memory. The files are read and
    /// parsed before this returns; errors there (a missing file, an unknown format) are
    /// returned. Blocking: call it off the async runtime.
    pub fn inspect(&self, config: &TrainConfig) -> anyhow::Result<(Arc<Entry>, bool)> {
        let _starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        let model_dir = crate::resolve::model(&self.data_dir, &self.hub, &config.model)
            .with_context(|| {
                format!(
                    "model {} is not on this machine yet (a training run downloads it)",
                    config.model
                )
            })?;
        let files = crate::resolve::dataset(&self.hub, &config.dataset)?;
        let key = Key {
            model_dir: model_dir.clone(),
            files: files.iter().map(|f| stamp(f)).collect(),
            format: format!("{:?}", config.dataset.format()),
            max_length: config.max_length,
            responses_only: config.train_on_responses_only,
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, entry)) = &*last
            && *k == key
        {
            return Ok((entry.clone(), true));
        }
        // The previous dataset stops tokenising and its rows go before these are read.
        if let Some((_, old)) = last.take() {
            old.stale.store(true, Ordering::Relaxed);
        }
        drop(last);
        let started = Instant::now();
        let tokenizer = Arc::new(
            TextTokenizer::from_dir(&model_dir)
                .with_context(|| format!("failed to load the tokenizer of {}", config.model))?,
        );
        let opts = PrepareOptions {
            format: config.dataset.format(),
            max_length: config.max_length,
            train_on_responses_only: config.train_on_responses_only,
            eval_split: 0.0,
            seed: config.seed,
            max_rows: None,
        };
        let mut reader = Reader::open(&files, &opts)?;
        let entry = Arc::new(Entry {
            files,
            inspected: RwLock::new(reader.inspection(opts.max_length)),
            tokenizer: tokenizer.clone(),
            seconds: Mutex::new(None),
            stale: AtomicBool::new(false),
        });
        let filling = entry.clone();
        std::thread::Builder::new()
            .name("arkor-inspect".into())
            .spawn(move || {
                let mut n = FIRST_CHUNK;
                while !filling.stale.load(Ordering::Relaxed)
                    && let Some(chunk) = reader.next_chunk(n, &tokenizer, &opts)
                {
                    filling.inspected.write().unwrap_or_else(|p| p.into_inner()).extend(chunk);
                    n = CHUNK;
                }
                *filling.seconds.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(started.elapsed().as_secs_f64());
            })
            .context("failed to start tokenising")?;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((key, entry.clone()));
        Ok((entry, false))
    }
}

impl Entry {
    /// Waits up to `max` for `rows` rows to be tokenised, or for all of them.
    pub fn wait_for(&self, rows: usize, max: Duration) {
        let deadline = Instant::now() + max;
        loop {
            let ready = {
                let ins = self.inspected.read().unwrap_or_else(|p| p.into_inner());
                ins.report.pending == 0 || ins.report.rows >= rows
            };
            if ready || Instant::now() >= deadline || self.stale.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn stamp(path: &Path) -> (PathBuf, u64, Option<SystemTime>) {
    let meta = std::fs::metadata(path).ok();
    let len = meta.as_ref().map_or(0, |m| m.len());
    (path.to_path_buf(), len, meta.and_then(|m| m.modified().ok()))
}
