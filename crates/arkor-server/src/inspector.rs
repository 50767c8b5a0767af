//! `POST /v1/datasets/inspect`: a dataset as a training run would see it, computed by the
//! engine (templates and loss masks are the engine's), kept for paging.
//!
//! Reading and tokenising a large file takes seconds, and Studio asks for it page by page
//! and row by row, so the last dataset inspected stays in memory (its token ids and masks,
//! not its text) and the next request for the same files, model and options is answered
//! from it. A file that changed on disk (size or modification time) is read again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::Context;
use arkor_engine::config::TrainConfig;
use arkor_engine::data::PrepareOptions;
use arkor_engine::data::inspect::Inspected;
use arkor_engine::tokenizer::TextTokenizer;

/// One inspected dataset.
pub struct Entry {
    /// The dataset's files, in order.
    pub files: Vec<PathBuf>,
    /// Rows, report and tokens.
    pub inspected: Inspected,
    /// The model's tokenizer (renders rows and previews).
    pub tokenizer: TextTokenizer,
    /// Seconds the read and tokenisation took.
    pub seconds: f64,
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
    /// Serialises the work so that a page and a row asked for together read the file once.
    busy: Mutex<()>,
}

impl Inspector {
    /// Models resolve as for training, but never download: a model that is not on this
    /// machine yet is an error saying so (its first training run downloads it).
    pub fn new(data_dir: PathBuf, hub: arkor_hub::HubOptions) -> Self {
        let hub = arkor_hub::HubOptions { offline: true, progress: false, ..hub };
        Inspector { data_dir, hub, last: Mutex::new(None), busy: Mutex::new(()) }
    }

    /// The inspection of `config`'s dataset with its model's tokenizer and template, and
    /// whether it came from memory. Blocking: call it off the async runtime.
    pub fn inspect(&self, config: &TrainConfig) -> anyhow::Result<(Arc<Entry>, bool)> {
        let _busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
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
        if let Some((k, entry)) = &*self.last.lock().unwrap_or_else(|p| p.into_inner())
            && *k == key
        {
            return Ok((entry.clone(), true));
        }
        // The previous dataset's tokens go before the next one's are read.
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let started = Instant::now();
        let tokenizer = TextTokenizer::from_dir(&model_dir)
            .with_context(|| format!("failed to load the tokenizer of {}", config.model))?;
        let opts = PrepareOptions {
            format: config.dataset.format(),
            max_length: config.max_length,
            train_on_responses_only: config.train_on_responses_only,
            eval_split: 0.0,
            seed: config.seed,
            max_rows: None,
        };
        let inspected = Inspected::new(&files, &tokenizer, &opts)?;
        let entry = Arc::new(Entry {
            files,
            inspected,
            tokenizer,
            seconds: started.elapsed().as_secs_f64(),
        });
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((key, entry.clone()));
        Ok((entry, false))
    }
}

fn stamp(path: &Path) -> (PathBuf, u64, Option<SystemTime>) {
    let meta = std::fs::metadata(path).ok();
    let len = meta.as_ref().map_or(0, |m| m.len());
    (path.to_path_buf(), len, meta.and_then(|m| m.modified().ok()))
}
