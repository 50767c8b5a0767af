//! Resolution of Hugging Face Hub ids to local files, through the standard HF cache.
//!
//! The engine never touches the network: the CLI (and later the backend) calls this crate
//! first and hands the engine local paths. Files land in the same cache layout the Python
//! `huggingface_hub` library uses (`models--owner--name/snapshots/<commit>/...`), so a
//! model downloaded by either is found by both.
//!
//! Online, the repo's file list is fetched first and only the files a model or dataset
//! needs are downloaded. When offline (`HF_HUB_OFFLINE=1`) or when the hub cannot be
//! reached, the cache alone is used; a missing file is then an error that says how to fix it.
//!
//! `ollama:NAME[:TAG]` references are resolved separately, read-only, against Ollama's local
//! model store (see [`ollama`]).

mod config;
pub mod ollama;

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

pub use config::{HubOptions, ollama_models_dir};
pub use ollama::{OllamaError, is_ollama_ref, resolve_ollama, resolve_ollama_from_env};

/// Why a Hub id could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Not in the cache, and the hub was not asked or not reachable.
    #[error(
        "{kind} {repo} is not in the Hugging Face cache at {cache} and the hub is unreachable \
         ({reason}): connect to the internet once, or pass a local {kind} path"
    )]
    NotCached {
        /// "model" or "dataset".
        kind: &'static str,
        /// The repo id.
        repo: String,
        /// The cache directory searched.
        cache: PathBuf,
        /// "offline mode" or the network error.
        reason: String,
    },
    /// The repo is gated or private.
    #[error(
        "{kind} {repo} needs authorisation (HTTP {status}): accept its licence on the hub and \
         set HF_TOKEN to a token that can read it"
    )]
    Unauthorized {
        /// "model" or "dataset".
        kind: &'static str,
        /// The repo id.
        repo: String,
        /// 401 or 403.
        status: u16,
    },
    /// The repo does not exist.
    #[error("{kind} {repo} was not found on the hub at {endpoint}: check the id")]
    NotFound {
        /// "model" or "dataset".
        kind: &'static str,
        /// The repo id.
        repo: String,
        /// The hub endpoint asked.
        endpoint: String,
    },
    /// The repo has no safetensors weights.
    #[error(
        "model {repo} has no model.safetensors or model.safetensors.index.json (only \
         safetensors weights are supported; files: {files})"
    )]
    NoSafetensors {
        /// The repo id.
        repo: String,
        /// The files it does have.
        files: String,
    },
    /// The dataset has no data file for the split.
    #[error(
        "dataset {repo} has no .jsonl, .json or .parquet file for split \"{split}\" (files: {files})"
    )]
    NoDataFiles {
        /// The repo id.
        repo: String,
        /// The split asked for.
        split: String,
        /// The files it does have.
        files: String,
    },
    /// Another download failure.
    #[error("failed to download {file} of {repo}: {source}")]
    Download {
        /// The repo id.
        repo: String,
        /// The file.
        file: String,
        /// The hf-hub error.
        source: Box<ApiError>,
    },
}

/// Whether `s` looks like a hub id (`owner/name`, optionally `@revision`) rather than a
/// local path.
pub fn is_repo_id(s: &str) -> bool {
    let id = s.split_once('@').map_or(s, |(id, _)| id);
    let Some((owner, name)) = id.split_once('/') else { return false };
    let valid = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    valid(owner) && valid(name) && !Path::new(s).exists()
}

fn parse(id: &str, kind: RepoType) -> Repo {
    match id.split_once('@') {
        Some((repo, rev)) => Repo::with_revision(repo.to_owned(), kind, rev.to_owned()),
        None => Repo::new(id.to_owned(), kind),
    }
}

/// Files of a model directory besides the weights; the first two are required.
const MODEL_FILES: [&str; 6] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

/// A snapshot directory holding the model's config, tokenizer files and safetensors weights.
pub fn resolve_model(repo: &str, opts: &HubOptions) -> Result<PathBuf, HubError> {
    let r = Resolver::new(repo, RepoType::Model, "model", opts);
    let files = match r.list()? {
        Some(listed) => {
            let mut wanted: Vec<String> = MODEL_FILES
                .iter()
                .filter(|f| listed.iter().any(|l| l == *f))
                .map(|f| (*f).to_owned())
                .collect();
            if listed.iter().any(|l| l == "model.safetensors") {
                wanted.push("model.safetensors".into());
            } else if listed.iter().any(|l| l == "model.safetensors.index.json") {
                let index = r.fetch("model.safetensors.index.json")?;
                wanted.push("model.safetensors.index.json".into());
                wanted.extend(shards(&index));
            } else {
                return Err(HubError::NoSafetensors {
                    repo: repo.to_owned(),
                    files: listed.join(", "),
                });
            }
            wanted
        }
        None => {
            // Offline: whatever the cache has, as long as the required files are there.
            let mut wanted: Vec<String> = MODEL_FILES.iter().map(|f| (*f).to_owned()).collect();
            if let Some(index) = r.cached("model.safetensors.index.json") {
                wanted.extend(shards(&index));
            } else {
                wanted.push("model.safetensors".into());
            }
            wanted
        }
    };
    let mut dir = None;
    for file in &files {
        let optional = MODEL_FILES[2..].contains(&file.as_str());
        match r.fetch(file) {
            Ok(path) => dir = dir.or_else(|| path.parent().map(Path::to_path_buf)),
            Err(_) if optional => {}
            Err(e) => return Err(e),
        }
    }
    Ok(dir.expect("config.json resolved"))
}

fn shards(index: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(index).unwrap_or_default();
    // The index maps tensor names to shard files; the shard names are the values.
    let mut out: Vec<String> = text
        .split('"')
        .filter(|s| s.ends_with(".safetensors") && !s.contains('/'))
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Local paths of a dataset repo's data files for `split`.
pub fn resolve_dataset(
    repo: &str,
    split: &str,
    opts: &HubOptions,
) -> Result<Vec<PathBuf>, HubError> {
    let r = Resolver::new(repo, RepoType::Dataset, "dataset", opts);
    let listed = match r.list()? {
        Some(listed) => listed,
        None => r.cached_files(),
    };
    let data: Vec<&String> = listed
        .iter()
        .filter(|f| [".jsonl", ".json", ".parquet"].iter().any(|e| f.ends_with(e)))
        .filter(|f| !f.ends_with("dataset_infos.json") && !f.starts_with('.'))
        .collect();
    let for_split: Vec<&String> = data
        .iter()
        .copied()
        .filter(|f| {
            f.rsplit('/').next().is_some_and(|n| n.starts_with(split))
                || f.contains(&format!("/{split}/"))
        })
        .collect();
    let chosen = if !for_split.is_empty() {
        for_split
    } else if data.len() == 1 {
        data
    } else {
        return Err(HubError::NoDataFiles {
            repo: repo.to_owned(),
            split: split.to_owned(),
            files: listed.join(", "),
        });
    };
    chosen.into_iter().map(|f| r.fetch(f)).collect()
}

struct Resolver<'a> {
    id: &'a str,
    kind: &'static str,
    repo: Repo,
    api: Option<ApiRepo>,
    opts: &'a HubOptions,
    offline_reason: std::cell::RefCell<String>,
}

impl<'a> Resolver<'a> {
    fn new(id: &'a str, kind: RepoType, name: &'static str, opts: &'a HubOptions) -> Self {
        let repo = parse(id, kind);
        let api = (!opts.offline)
            .then(|| {
                ApiBuilder::new()
                    .with_endpoint(opts.endpoint.clone())
                    .with_cache_dir(opts.cache_dir.clone())
                    .with_token(opts.token.clone())
                    .with_progress(opts.progress)
                    .with_retries(2)
                    .build()
                    .ok()
            })
            .flatten()
            .map(|api| api.repo(repo.clone()));
        let reason = if opts.offline { "offline mode" } else { "no client" };
        Self {
            id,
            kind: name,
            repo,
            api,
            opts,
            offline_reason: std::cell::RefCell::new(reason.to_owned()),
        }
    }

    /// The repo's file list, or `None` when working from the cache only.
    fn list(&self) -> Result<Option<Vec<String>>, HubError> {
        let Some(api) = &self.api else { return Ok(None) };
        match api.info() {
            Ok(info) => Ok(Some(info.siblings.into_iter().map(|s| s.rfilename).collect())),
            Err(e) => self.classify(e, "the file list").map(|()| None),
        }
    }

    /// Turns an API error into a hub error, or records it as the reason to fall back to
    /// the cache (network failures).
    fn classify(&self, e: ApiError, file: &str) -> Result<(), HubError> {
        if let ApiError::RequestError(inner) = &e
            && let ureq::Error::Status(status, _) = inner.as_ref()
        {
            return Err(match *status {
                401 | 403 => HubError::Unauthorized {
                    kind: self.kind,
                    repo: self.id.to_owned(),
                    status: *status,
                },
                404 => HubError::NotFound {
                    kind: self.kind,
                    repo: self.id.to_owned(),
                    endpoint: self.opts.endpoint.clone(),
                },
                _ => HubError::Download {
                    repo: self.id.to_owned(),
                    file: file.to_owned(),
                    source: Box::new(e),
                },
            });
        }
        *self.offline_reason.borrow_mut() = e.to_string();
        Ok(())
    }

    fn cache(&self) -> hf_hub::CacheRepo {
        Cache::new(self.opts.cache_dir.clone()).repo(self.repo.clone())
    }

    fn cached(&self, file: &str) -> Option<PathBuf> {
        self.cache().get(file)
    }

    /// Files of the cached snapshot, relative to it.
    fn cached_files(&self) -> Vec<String> {
        let Some(root) = self.snapshot_dir() else { return vec![] };
        let mut out = vec![];
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    fn snapshot_dir(&self) -> Option<PathBuf> {
        let folder = self.opts.cache_dir.join(self.repo.folder_name());
        let commit =
            std::fs::read_to_string(folder.join("refs").join(self.repo.revision())).ok()?;
        let dir = folder.join("snapshots").join(commit.trim());
        dir.is_dir().then_some(dir)
    }

    /// A local path for `file`: the cache first when offline, else the hub.
    fn fetch(&self, file: &str) -> Result<PathBuf, HubError> {
        if let Some(api) = &self.api {
            match api.get(file) {
                Ok(p) => return Ok(p),
                Err(e) => self.classify(e, file)?,
            }
        }
        self.cached(file).ok_or_else(|| HubError::NotCached {
            kind: self.kind,
            repo: self.id.to_owned(),
            cache: self.opts.cache_dir.clone(),
            reason: self.offline_reason.borrow().clone(),
        })
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}
