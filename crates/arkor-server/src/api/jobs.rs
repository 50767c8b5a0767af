//! Jobs: submit, list, get, cancel, move to the front of the queue, artifacts, exports.

use std::path::Path;
use std::sync::Arc;

use arkor_protocol::error::ErrorCode;
use arkor_protocol::event::StoredEvent;
use arkor_protocol::job::{
    ArtifactKind, ArtifactList, ArtifactSet, CreateJobRequest, Job, JobList, JobProgress,
    JobResponse, JobStatus, checkpoint_model_id, final_model_id,
};
use arkor_protocol::tasks::{
    EvalInfo, EvalList, EvalRequest, ExportInfo, ExportList, ExportRequest,
};
use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, ApiResult, JsonBody, Scope};
use crate::AppState;
use crate::store::JobQuery;
use crate::util::{iso, new_id, now_ms};

pub async fn create(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    JsonBody(req): JsonBody<CreateJobRequest>,
) -> ApiResult<(StatusCode, Json<JobResponse>)> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::bad_request("invalid name: expected 1-200 characters"));
    }
    state.artifacts.fetch_dataset(&req.config).await.map_err(ApiError::artifacts)?;
    let config = crate::jobconfig::to_train_config(name, &req.config)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !state.local_paths {
        super::datasets::check_remote_paths(&state, &scope.org.id, &config).await?;
    }
    let job = Job {
        id: new_id("job"),
        org_id: scope.org.id,
        project_id: scope.project.id,
        name: name.to_owned(),
        status: JobStatus::Queued,
        config: req.config,
        error: None,
        created_at: iso(now_ms()),
        started_at: None,
        completed_at: None,
        progress: JobProgress::default(),
        queue_position: None,
        worker: None,
        attempt: None,
    };
    // Read back: the stored job carries its queue position.
    let job = state.store.insert_job(&job).await?;
    state.runner.notify();
    Ok((StatusCode::CREATED, Json(JobResponse { job })))
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    status: Option<String>,
    q: Option<String>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<JobList>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(format!("invalid limit {limit}: expected 1-200")));
    }
    let before_seq = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid cursor \"{c}\": pass nextCursor from the previous page"
            ))
        })?),
    };
    let mut statuses = vec![];
    for s in query.status.iter().flat_map(|s| s.split(',')).filter(|s| !s.is_empty()) {
        statuses.push(JobStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid status \"{s}\": expected one or more of queued, running, completed, failed, cancelled (comma-separated)"
            ))
        })?);
    }
    let q = JobQuery { limit, before_seq, statuses, q: query.q };
    let project = scope.project.id.clone();
    let page = state.store.list_jobs(&project, &q).await?;
    Ok(Json(JobList {
        jobs: page.jobs,
        next_cursor: page.next_before_seq.map(|s| s.to_string()),
        total: page.total,
    }))
}

/// A job in the caller's scope, or 404 (also for other organisations' jobs).
pub async fn scoped_job(state: &AppState, scope: &Scope, id: &str) -> ApiResult<Job> {
    let project = scope.project.id.clone();
    let job_id = id.to_owned();
    state
        .store
        .job_in_project(&project, &job_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetQuery {
    #[serde(default)]
    include_events: bool,
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<GetQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let job = scoped_job(&state, &scope, &id).await?;
    let mut body = serde_json::json!({ "job": job });
    if query.include_events {
        let events: Vec<StoredEvent> = state.store.events_after(&id, 0, 100_000).await?;
        body["events"] = serde_json::to_value(events).map_err(ApiError::internal)?;
    }
    Ok(Json(body))
}

pub async fn cancel(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<(StatusCode, Json<JobResponse>)> {
    let job = scoped_job(&state, &scope, &id).await?;
    if job.status.is_terminal() {
        return Err(already(&job));
    }
    let accepted = state.runner.cancel(&id).await?;
    // Re-read: the cancel (or a race with the job's own end) changed it.
    let job = scoped_job(&state, &scope, &id).await?;
    if !accepted {
        return Err(already(&job));
    }
    Ok((StatusCode::ACCEPTED, Json(JobResponse { job })))
}

/// `POST /v1/jobs/:id/move-to-front`: the queued job starts next (queue position 1).
pub async fn move_to_front(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<JobResponse>> {
    let job = scoped_job(&state, &scope, &id).await?;
    if job.status != JobStatus::Queued {
        return Err(not_queued(&job));
    }
    let job_id = id.clone();
    let moved = state.store.move_to_front(&job_id).await?;
    // Re-read: the position changed, or the job started (or was cancelled) meanwhile.
    let job = scoped_job(&state, &scope, &id).await?;
    if !moved {
        return Err(not_queued(&job));
    }
    Ok(Json(JobResponse { job }))
}

fn not_queued(job: &Job) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!(
            "job {} is {}, not queued: only a queued job can be moved to the front",
            job.id,
            job.status.as_str()
        ),
    )
}

fn already(job: &Job) -> ApiError {
    ApiError::new(ErrorCode::Conflict, format!("job {} already {}", job.id, job.status.as_str()))
}

pub async fn artifacts(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<ArtifactList>> {
    let job = scoped_job(&state, &scope, &id).await?;
    let dir = job_folder(&state, &id).await?;
    let step = job.progress.step;
    let sets = tokio::task::spawn_blocking(move || artifact_sets(&id, &dir, step))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(ArtifactList { artifacts: sets }))
}

/// A job's folder, with what the bucket holds of it fetched first (`--artifacts`; once per
/// job and process).
pub(super) async fn job_folder(state: &AppState, id: &str) -> ApiResult<std::path::PathBuf> {
    let dir = state.runner.job_dir(id);
    state.artifacts.fetch_job(&dir).await.map_err(ApiError::artifacts)?;
    Ok(dir)
}

/// Saved checkpoints by step, then the final adapter, with their files.
pub fn artifact_sets(job_id: &str, dir: &Path, final_step: u64) -> Vec<ArtifactSet> {
    let mut sets: Vec<ArtifactSet> = checkpoint_steps(dir)
        .into_iter()
        .map(|step| ArtifactSet {
            kind: ArtifactKind::Checkpoint,
            step,
            model_id: checkpoint_model_id(job_id, step),
            files: crate::worker::artifact_files(dir, &dir.join(format!("checkpoint-{step}"))),
        })
        .collect();
    let final_dir = dir.join("final");
    if final_dir.join("adapter_model.safetensors").is_file() {
        sets.push(ArtifactSet {
            kind: ArtifactKind::Final,
            step: final_step,
            model_id: final_model_id(job_id),
            files: crate::worker::artifact_files(dir, &final_dir),
        });
    }
    sets
}

/// Steps of the complete checkpoints in a job directory, ascending.
pub fn checkpoint_steps(dir: &Path) -> Vec<u64> {
    let mut steps: Vec<u64> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
                    e.path().join("adapter_model.safetensors").is_file().then_some(step)
                })
                .collect()
        })
        .unwrap_or_default();
    steps.sort_unstable();
    steps
}

/// `POST /v1/jobs/:id/export`: starts an export of the final adapter or a checkpoint.
pub async fn export(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
    JsonBody(req): JsonBody<ExportRequest>,
) -> ApiResult<(StatusCode, Json<ExportInfo>)> {
    let job = scoped_job(&state, &scope, &id).await?;
    let dir = job_folder(&state, &id).await?;
    let valid = crate::exports::validate(&req, &dir).map_err(ApiError::bad_request)?;
    let info = crate::exports::start(
        &state.tasks,
        &state.artifacts,
        state.runner.program(),
        state.runner.data_dir(),
        &job.name,
        &job.config.model,
        &dir,
        valid,
    )
    .map_err(ApiError::internal)?;
    Ok((StatusCode::ACCEPTED, Json(info)))
}

/// `GET /v1/jobs/:id/exports`: the job's exports, newest first.
pub async fn exports(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<ExportList>> {
    scoped_job(&state, &scope, &id).await?;
    let dir = job_folder(&state, &id).await?;
    let live = state.tasks.clone();
    let exports =
        tokio::task::spawn_blocking(move || crate::tasks::list(&live, &dir.join("exports")))
            .await
            .map_err(ApiError::internal)?;
    Ok(Json(ExportList { exports }))
}

/// `POST /v1/jobs/:id/eval`: starts scoring the final adapter or a checkpoint on held-out rows.
pub async fn eval(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
    JsonBody(req): JsonBody<EvalRequest>,
) -> ApiResult<(StatusCode, Json<EvalInfo>)> {
    let job = scoped_job(&state, &scope, &id).await?;
    let dir = job_folder(&state, &id).await?;
    let valid =
        crate::evals::validate(&req, &dir, job.progress.step).map_err(ApiError::bad_request)?;
    super::datasets::check_dataset_file(&state, &scope.org.id, &valid.dataset, "datasetPath")
        .await?;
    let info = crate::evals::start(
        &state.tasks,
        &state.artifacts,
        state.runner.program(),
        state.runner.data_dir(),
        &job.config.model,
        &dir,
        valid,
    )
    .map_err(ApiError::internal)?;
    Ok((StatusCode::ACCEPTED, Json(info)))
}

/// `GET /v1/jobs/:id/evals`: the job's evaluations, newest first.
pub async fn evals(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<EvalList>> {
    scoped_job(&state, &scope, &id).await?;
    let dir = job_folder(&state, &id).await?;
    let live = state.tasks.clone();
    let evals = tokio::task::spawn_blocking(move || crate::tasks::list(&live, &dir.join("evals")))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(EvalList { evals }))
}

/// Whether `path` names a file this route serves: `final/<file>`, `checkpoint-<step>/<file>`
/// `exports/<id>/<path inside the export>` or `evals/<id>/report.json` (never a task's
/// record or log); no hidden names, no `..`.
fn downloadable(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let plain = |p: &&str| !p.is_empty() && !p.starts_with('.') && !p.contains('\\');
    match parts.as_slice() {
        [_, _] => adapter_file(path),
        ["exports" | "evals", id, rest @ ..] => {
            plain(id)
                && !rest.is_empty()
                && rest.iter().all(plain)
                && rest != [crate::tasks::TASK_FILE]
                && rest != [crate::tasks::LOG_FILE]
        }
        _ => false,
    }
}

/// `final/<file>` or `checkpoint-<step>/<file>`: what a training worker writes (and what a
/// remote worker may upload).
pub(super) fn adapter_file(path: &str) -> bool {
    let plain = |p: &str| !p.is_empty() && !p.starts_with('.') && !p.contains('\\');
    match path.split('/').collect::<Vec<_>>().as_slice() {
        [dir, file] => {
            (*dir == "final"
                || dir.strip_prefix("checkpoint-").is_some_and(|s| s.parse::<u64>().is_ok()))
                && plain(file)
        }
        _ => false,
    }
}

pub async fn download(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath((id, path)): UrlPath<(String, String)>,
) -> ApiResult<Response> {
    scoped_job(&state, &scope, &id).await?;
    if !downloadable(&path) {
        return Err(ApiError::not_found(format!(
            "artifact \"{path}\" not found: expected final/<file>, checkpoint-<step>/<file>, \
             exports/<id>/<file> or evals/<id>/report.json"
        )));
    }
    let file_path = job_folder(&state, &id).await?.join(&path);
    // An export's files are fetched from the bucket when one is downloaded.
    state.artifacts.fetch(&file_path).await.map_err(ApiError::artifacts)?;
    let not_found = || ApiError::not_found(format!("artifact \"{path}\" not found in job {id}"));
    let file = tokio::fs::File::open(&file_path).await.map_err(|_| not_found())?;
    let meta = file.metadata().await.map_err(|_| not_found())?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let name = path.rsplit('/').next().unwrap_or("artifact");
    let disposition = format!("attachment; filename=\"{}\"", name.replace('"', ""));
    // Streamed: exports are hundreds of megabytes.
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CONTENT_LENGTH, meta.len().to_string()),
        ],
        body,
    )
        .into_response())
}
