//! `POST /v1/datasets`: a client uploads a dataset file to a backend that cannot read
//! the client's disk. Files are stored by content under the organisation's folder and the
//! answer is the `datasetSource` to put in a job config.

use std::path::Path;
use std::sync::Arc;

use arkor_engine::config::{DatasetConfig, TrainConfig};
use arkor_engine::tiny::TINY_MODEL_ID;
use arkor_protocol::job::{DatasetSource, DatasetUpload, JobConfig};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, ApiResult, Scope};
use crate::AppState;

/// Largest dataset upload.
pub const UPLOAD_LIMIT: usize = 512 << 20;

#[derive(Deserialize)]
pub struct UploadQuery {
    filename: Option<String>,
}

pub async fn upload(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    Query(q): Query<UploadQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, Json<DatasetUpload>)> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                arkor_protocol::error::ErrorCode::PayloadTooLarge,
                format!("dataset larger than {} MiB", UPLOAD_LIMIT >> 20),
            )
        } else {
            ApiError::bad_request(e.body_text())
        }
    })?;
    let filename = q.filename.unwrap_or_else(|| "data.jsonl".to_owned());
    let ext = Path::new(&filename).extension().and_then(|e| e.to_str()).unwrap_or("");
    if !["jsonl", "json", "parquet"].contains(&ext) {
        return Err(ApiError::bad_request(format!(
            "invalid filename \"{filename}\": expected a .jsonl, .json or .parquet file"
        )));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("the uploaded dataset is empty"));
    }
    let sha256 = crate::util::sha256_hex(&body);
    let dir = state.datasets_dir.join(&scope.org.id);
    let path = dir.join(format!("{sha256}.{ext}"));
    let size = body.len() as u64;
    let target = path.clone();
    let tmp = dir.join(format!(".{sha256}.{}.tmp", crate::util::new_id("up")));
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if target.is_file() {
            return Ok(());
        }
        std::fs::create_dir_all(&dir)?;
        std::fs::write(&tmp, &body)?;
        std::fs::rename(&tmp, &target)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    // In the bucket before the answer names it (`--artifacts`).
    state.artifacts.put(&path, Some((size, &sha256))).await.map_err(ApiError::artifacts)?;
    let source = DatasetSource::Jsonl { path: path.to_string_lossy().into_owned() };
    Ok((StatusCode::CREATED, Json(DatasetUpload { dataset_source: source, size, sha256 })))
}

/// `POST /v1/datasets/inspect` body: the dataset and model of a job config, and which
/// rows to list or render.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InspectRequest {
    /// Model, dataset source and format, `maxLength`, `trainOnResponsesOnly` (the rest of a
    /// job config is accepted and unused).
    config: JobConfig,
    /// A row to render token by token (0-based among the rows that tokenise).
    row: Option<usize>,
    /// First row of the page of rows to list (default 0).
    #[serde(default)]
    offset: usize,
    /// Rows in the page (default 50, at most 500).
    limit: Option<usize>,
}

/// Rows listed per page by default, and at most.
const PAGE: usize = 50;
const MAX_PAGE: usize = 500;
/// How long a request waits for the rows it shows to be tokenised before it answers with
/// what is ready (the rest of the report fills in on later requests).
const WAIT: std::time::Duration = std::time::Duration::from_millis(800);
/// Truncated, untrained and malformed rows listed at most in an answer (their counts are
/// always whole).
const MAX_LISTED: usize = 200;

/// What training would see of a dataset: format, sizes, length histogram, the truncated,
/// untrained and malformed rows, a page of rows, and a row rendered through the model's chat
/// template with its loss mask. The dataset is read once and kept for the next page; a large
/// one is answered while it is being tokenised (`report.pending` rows to go, `rowPending`
/// when the asked-for row is not tokenised yet, `rowError` when it does not exist).
pub async fn inspect(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    super::JsonBody(req): super::JsonBody<InspectRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    state.artifacts.fetch_dataset(&req.config).await.map_err(ApiError::artifacts)?;
    let config = crate::jobconfig::to_train_config("inspect", &req.config)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !state.local_paths {
        check_remote_paths(&state, &scope.org.id, &config).await?;
    }
    let limit = req.limit.unwrap_or(PAGE).min(MAX_PAGE);
    let inspector = state.inspector.clone();
    let model = config.model.clone();
    let answer = tokio::task::spawn_blocking(move || -> anyhow::Result<serde_json::Value> {
        let (entry, cached) = inspector.inspect(&config)?;
        // What this request shows, if it is tokenised within a moment; else what is ready.
        let needed = req.row.map_or(0, |r| r + 1).max(req.offset.saturating_add(limit));
        entry.wait_for(needed, WAIT);
        let ins = entry.inspected.read().unwrap_or_else(|p| p.into_inner());
        let r = &ins.report;
        let page = ins.page(req.offset, limit, &entry.tokenizer)?;
        let row_pending = req.row.is_some_and(|i| i >= r.rows && r.pending > 0);
        // A row that does not exist is said next to the report, which still stands.
        let (row, row_error) = match req.row.filter(|_| !row_pending) {
            None => (None, None),
            Some(i) => match ins.render(i, &entry.tokenizer) {
                Ok(row) => (Some(row), None),
                Err(e) => (None, Some(e.to_string())),
            },
        };
        let listed = |v: &[arkor_engine::data::inspect::RowRef]| {
            serde_json::to_value(&v[..v.len().min(MAX_LISTED)]).unwrap_or_default()
        };
        let mut report = serde_json::to_value(r)?;
        report["truncated"] = listed(&r.truncated);
        report["untrained"] = listed(&r.untrained);
        report["errors"] = serde_json::to_value(&r.errors[..r.errors.len().min(MAX_LISTED)])?;
        report["truncatedCount"] = r.truncated.len().into();
        report["untrainedCount"] = r.untrained.len().into();
        report["errorCount"] = r.errors.len().into();
        let seconds = *entry.seconds.lock().unwrap_or_else(|p| p.into_inner());
        Ok(serde_json::json!({
            "model": model,
            "files": entry.files,
            "report": report,
            "rows": { "offset": req.offset, "limit": limit, "items": page },
            "row": row,
            "rowPending": row_pending,
            "rowError": row_error,
            "cached": cached,
            "seconds": seconds,
        }))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    Ok(Json(answer))
}

/// On a backend that does not take local paths: the dataset must be one of the
/// organisation's uploads and the model must not be a directory on the backend.
pub async fn check_remote_paths(
    state: &AppState,
    org_id: &str,
    config: &TrainConfig,
) -> ApiResult<()> {
    let installed =
        arkor_hub::is_repo_id(&config.model) || arkor_hub::ollama::is_ollama_ref(&config.model);
    if config.model != TINY_MODEL_ID && !installed {
        return Err(ApiError::bad_request(format!(
            "invalid config.model: this backend does not load model files from its disk; \
             expected {TINY_MODEL_ID}, a Hugging Face model id or ollama:NAME, got \"{}\"",
            config.model
        )));
    }
    if let DatasetConfig::Jsonl { path, .. } = &config.dataset {
        check_uploaded(state, org_id, path, "config.datasetSource.path").await?;
    }
    Ok(())
}

/// A dataset file a request names: on a shared backend only an upload of the caller's
/// organisation, on a local one any absolute path.
pub async fn check_dataset_file(
    state: &AppState,
    org_id: &str,
    path: &Path,
    field: &str,
) -> ApiResult<()> {
    if !state.local_paths {
        return check_uploaded(state, org_id, path, field).await;
    }
    if path.is_absolute() {
        state.artifacts.fetch(path).await.map_err(ApiError::artifacts)?;
    }
    if !path.is_absolute() || !path.is_file() {
        return Err(ApiError::bad_request(format!(
            "invalid {field}: expected an absolute path to an existing file, got {}",
            path.display()
        )));
    }
    Ok(())
}

async fn check_uploaded(state: &AppState, org_id: &str, path: &Path, field: &str) -> ApiResult<()> {
    let uploads = state.datasets_dir.join(org_id);
    // An upload this data directory lost is fetched from the bucket (`--artifacts`).
    if path.parent().is_some_and(|p| p == uploads)
        && state.artifacts.fetch(path).await.map_err(ApiError::artifacts)?
    {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "invalid {field}: this backend reads only uploaded datasets; upload the file with POST \
         /v1/datasets and use the path it returns (got {})",
        path.display()
    )))
}
