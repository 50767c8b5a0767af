//! The remote workers' API (`arkor worker`): lease a job (long poll), heartbeat, post events,
//! upload adapter files, download the job's dataset. Every route takes a worker token, its
//! own kind (`arkor workers add`): it opens these routes only, and user tokens do not.
//! Every route after the lease proves it with the lease's token; a lease that ended is
//! answered 409, and the worker stops that job.

use std::path::{Component, Path};
use std::sync::Arc;
use std::time::Duration;

use arkor_protocol::error::ErrorCode;
use arkor_protocol::event::EventKind;
use arkor_protocol::job::ArtifactFile;
use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path as UrlPath, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{ApiError, ApiResult, JsonBody, bearer};
use crate::AppState;
use crate::store::{LeaseReply, LeasedEvent};
use crate::worker::JobFile;

/// The header carrying the lease's token on uploads and downloads.
pub const LEASE_HEADER: &str = "x-arkor-lease";
/// The header carrying an upload's hex SHA-256.
pub const SHA256_HEADER: &str = "x-arkor-sha256";
/// The largest adapter file a worker may upload (a full-rank checkpoint of a 3B model fits).
pub const UPLOAD_LIMIT: usize = 16 << 30;
/// The longest a lease request waits for a job.
pub const MAX_WAIT_SECONDS: u64 = 25;

/// `POST /v1/worker/lease`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// Seconds to wait for a job when none is queued (at most [`MAX_WAIT_SECONDS`]).
    #[serde(default)]
    pub wait_seconds: u64,
    /// What this worker has (`arkor worker --labels gpu`): it takes the jobs whose labels
    /// are all among these.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A leased job (200), or 204 when none came within the wait.
#[derive(Debug, Serialize, Deserialize)]
pub struct LeaseGrant {
    pub job_id: String,
    /// 1 on the first lease, 2 after a requeue, ...
    pub attempt: u32,
    /// Proves the lease on every later request.
    pub lease_token: String,
    /// The lease lasts this long past each heartbeat.
    pub ttl_ms: u64,
    /// How often to heartbeat.
    pub heartbeat_ms: u64,
    /// The run, as the backend validated it.
    pub job: JobFile,
    /// The dataset file's name when the backend serves its bytes
    /// (`GET /v1/worker/jobs/{id}/dataset`); the worker saves it and trains on its copy.
    pub dataset_file: Option<String>,
    /// The last checkpoint an earlier attempt uploaded: the worker downloads its files
    /// (`GET /v1/worker/jobs/{id}/files/{path}`) and continues from it.
    #[serde(default)]
    pub resume: Option<ResumePoint>,
}

/// A checkpoint to continue a requeued job from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResumePoint {
    /// Its step.
    pub step: u64,
    /// Its files, relative to the job directory (`checkpoint-<step>/...`).
    pub files: Vec<ArtifactFile>,
}

/// `POST /v1/worker/jobs/{id}/heartbeat`.
#[derive(Debug, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub lease_token: String,
}

/// `POST /v1/worker/jobs/{id}/events`.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventsRequest {
    pub lease_token: String,
    pub events: Vec<LeasedEvent>,
}

/// The answer while a lease holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct LeaseStatus {
    /// The job's owner asked to cancel: stop within a step, then post `training.cancelled`.
    pub cancel: bool,
}

/// The worker a request's token belongs to.
pub struct WorkerCaller(pub String);

impl FromRequestParts<Arc<AppState>> for WorkerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "missing `Authorization: Bearer <worker token>`; create one on the backend \
                 with `arkor workers add NAME`",
            )
        })?;
        let name = state.store.worker_by_token(&crate::util::token_hash(&token)).await?;
        name.map(WorkerCaller).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "unknown or revoked worker token (user tokens do not lease jobs)",
            )
        })
    }
}

fn lost(job_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!(
            "the lease on job {job_id} is not this worker's any more (it expired and the job \
             was requeued, or the job ended); stop working on it"
        ),
    )
}

fn lease_status<T>(job_id: &str, reply: LeaseReply<T>) -> ApiResult<(T, LeaseStatus)> {
    match reply {
        LeaseReply::Held { value, cancel } => Ok((value, LeaseStatus { cancel })),
        LeaseReply::Lost => Err(lost(job_id)),
    }
}

pub async fn lease(
    State(state): State<Arc<AppState>>,
    WorkerCaller(worker): WorkerCaller,
    JsonBody(req): JsonBody<LeaseRequest>,
) -> ApiResult<Response> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(req.wait_seconds.min(MAX_WAIT_SECONDS));
    let terms = state.lease;
    crate::jobconfig::check_labels("labels", &req.labels)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    loop {
        // Registered before looking, so a submission in between still wakes this poll.
        let woken = state.runner.lease_wake().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if let Some(lease) = state.store.lease_next(&worker, &req.labels, terms).await? {
            let id = lease.job.id.clone();
            // The dataset this data directory lost is in the bucket. If the bucket fails, the
            // job goes back to the queue as it was and the worker asks again.
            if let Err(e) = state.artifacts.fetch_dataset(&lease.job.config).await {
                state.store.release_lease(&id, &lease.token).await?;
                return Err(ApiError::artifacts(e));
            }
            match crate::jobconfig::to_train_config(&lease.job.name, &lease.job.config) {
                Ok(config) => {
                    let dataset_file = match &config.dataset {
                        arkor_engine::config::DatasetConfig::Jsonl { path, .. } => path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .or_else(|| Some("dataset.jsonl".to_owned())),
                        arkor_engine::config::DatasetConfig::Huggingface { .. } => None,
                    };
                    eprintln!(
                        "arkor server: job {id} leased to worker \"{worker}\" (attempt {})",
                        lease.attempt
                    );
                    // Any earlier lease's last checkpoint (a job handed back keeps its attempt
                    // number, so every lease looks; a new job's log is empty).
                    let resume = last_checkpoint(&state, &id).await?;
                    let grant = LeaseGrant {
                        job_id: id.clone(),
                        attempt: lease.attempt,
                        lease_token: lease.token,
                        ttl_ms: terms.ttl_ms as u64,
                        heartbeat_ms: (terms.ttl_ms / 3).max(100) as u64,
                        job: JobFile { job_id: id, config, resume_from: None },
                        dataset_file,
                        resume,
                    };
                    return Ok(Json(grant).into_response());
                }
                // Validated at submission; a config this version no longer takes ends here.
                Err(e) => {
                    let end = LeasedEvent {
                        seq: 1,
                        event: EventKind::Failed { error: e.to_string(), step: None },
                    };
                    publish(
                        &state,
                        &id,
                        state.store.append_leased(&id, &lease.token, &[end]).await?,
                    );
                    continue;
                }
            }
        }
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
}

/// The newest `checkpoint.saved` of the job whose files are all in its folder, if any.
async fn last_checkpoint(state: &AppState, job_id: &str) -> ApiResult<Option<ResumePoint>> {
    let mut last = None;
    let mut after = 0;
    loop {
        let page = state.store.events_after(job_id, after, 1000).await?;
        let Some(end) = page.last() else { break };
        after = end.id;
        for ev in &page {
            if let EventKind::CheckpointSaved { step, artifacts } = &ev.event.kind {
                last = Some(ResumePoint { step: *step, files: artifacts.clone() });
            }
        }
    }
    let dir = state.runner.job_dir(job_id);
    if let Some(r) = &last {
        for f in &r.files {
            state.artifacts.fetch(&dir.join(&f.pathname)).await.map_err(ApiError::artifacts)?;
        }
    }
    Ok(last.filter(|r| {
        !r.files.is_empty()
            && r.files
                .iter()
                .all(|f| std::fs::metadata(dir.join(&f.pathname)).is_ok_and(|m| m.len() == f.size))
    }))
}

/// `GET /v1/worker/jobs/{id}/files/{path}`: an uploaded checkpoint file, for a requeued
/// job's next worker.
pub async fn download(
    State(state): State<Arc<AppState>>,
    WorkerCaller(_): WorkerCaller,
    UrlPath((id, path)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = header_str(&headers, LEASE_HEADER)?;
    lease_status(&id, state.store.check_lease(&id, token).await?)?;
    if !super::jobs::adapter_file(&path) {
        return Err(ApiError::not_found(format!("no file \"{path}\" in job {id}")));
    }
    let file_path = state.runner.job_dir(&id).join(&path);
    state.artifacts.fetch(&file_path).await.map_err(ApiError::artifacts)?;
    let file = tokio::fs::File::open(file_path)
        .await
        .map_err(|_| ApiError::not_found(format!("no file \"{path}\" in job {id}")))?;
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(([(header::CONTENT_LENGTH, len.to_string())], body).into_response())
}

fn publish(
    state: &AppState,
    job_id: &str,
    reply: LeaseReply<Vec<arkor_protocol::event::StoredEvent>>,
) {
    if let LeaseReply::Held { value, .. } = reply {
        for ev in &value {
            state.runner.publish(job_id, ev);
        }
    }
}

pub async fn heartbeat(
    State(state): State<Arc<AppState>>,
    WorkerCaller(_): WorkerCaller,
    UrlPath(id): UrlPath<String>,
    JsonBody(req): JsonBody<HeartbeatRequest>,
) -> ApiResult<Json<LeaseStatus>> {
    let reply = state.store.heartbeat(&id, &req.lease_token, state.lease).await?;
    Ok(Json(lease_status(&id, reply)?.1))
}

/// `POST /v1/worker/jobs/{id}/release`: the worker is stopping and hands the job back; it
/// is queued again at once (the attempt does not count) and resumes from its last uploaded
/// checkpoint on the next worker.
pub async fn release(
    State(state): State<Arc<AppState>>,
    WorkerCaller(worker): WorkerCaller,
    UrlPath(id): UrlPath<String>,
    JsonBody(req): JsonBody<HeartbeatRequest>,
) -> ApiResult<StatusCode> {
    if !state.store.release_lease(&id, &req.lease_token).await? {
        return Err(lost(&id));
    }
    eprintln!("arkor server: job {id}: worker \"{worker}\" handed it back; queued again");
    state.runner.lease_wake().notify_waiters();
    Ok(StatusCode::NO_CONTENT)
}

pub async fn events(
    State(state): State<Arc<AppState>>,
    WorkerCaller(_): WorkerCaller,
    UrlPath(id): UrlPath<String>,
    JsonBody(req): JsonBody<EventsRequest>,
) -> ApiResult<Json<LeaseStatus>> {
    // An event naming adapter files is accepted once they are uploaded, whole.
    let dir = state.runner.job_dir(&id);
    for e in &req.events {
        if let EventKind::CheckpointSaved { artifacts, .. }
        | EventKind::Completed { artifacts, .. } = &e.event
        {
            check_uploaded(&dir, artifacts).await?;
            // Answered 503 when the bucket fails: the worker retries the post.
            state.artifacts.put_files(&dir, artifacts).await.map_err(ApiError::artifacts)?;
        }
    }
    let reply = state.store.append_leased(&id, &req.lease_token, &req.events).await?;
    let (stored, status) = lease_status(&id, reply)?;
    for ev in &stored {
        state.runner.publish(&id, ev);
    }
    Ok(Json(status))
}

async fn check_uploaded(dir: &Path, artifacts: &[ArtifactFile]) -> ApiResult<()> {
    for a in artifacts {
        if !super::jobs::adapter_file(&a.pathname) {
            return Err(ApiError::bad_request(format!(
                "artifact \"{}\": expected final/<file> or checkpoint-<step>/<file>",
                a.pathname
            )));
        }
        let path = dir.join(&a.pathname);
        let digest = tokio::task::spawn_blocking(move || crate::util::file_digest(&path))
            .await
            .map_err(ApiError::internal)?;
        match digest {
            Ok((size, sha)) if size == a.size && sha == a.sha256 => {}
            Ok((size, sha)) => {
                return Err(ApiError::bad_request(format!(
                    "artifact \"{}\": the uploaded file has {size} bytes and SHA-256 {sha}, the \
                     event says {} bytes and {}; upload it again",
                    a.pathname, a.size, a.sha256
                )));
            }
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "artifact \"{}\" was not uploaded: PUT /v1/worker/jobs/{{id}}/files/{} first",
                    a.pathname, a.pathname
                )));
            }
        }
    }
    Ok(())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> ApiResult<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request(format!("missing header {name}")))
}

/// `PUT /v1/worker/jobs/{id}/files/{*path}`: streamed to a temporary file, checked against
/// `x-arkor-sha256`, then moved into the job directory while the lease still holds.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    WorkerCaller(_): WorkerCaller,
    UrlPath((id, path)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ArtifactFile>> {
    let token = header_str(&headers, LEASE_HEADER)?.to_owned();
    let expected = header_str(&headers, SHA256_HEADER)?.to_ascii_lowercase();
    if !super::jobs::adapter_file(&path)
        || Path::new(&path).components().any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(ApiError::bad_request(format!(
            "cannot upload \"{path}\": expected final/<file> or checkpoint-<step>/<file>"
        )));
    }
    lease_status(&id, state.store.check_lease(&id, &token).await?)?;
    let dir = state.runner.job_dir(&id);
    let target = dir.join(&path);
    let parent = target.parent().expect("two components");
    tokio::fs::create_dir_all(parent).await.map_err(ApiError::internal)?;
    let tmp = parent.join(format!(".upload-{}", crate::util::random_hex(8)));
    let written = write_checked(&tmp, body).await;
    let (size, sha) = match written {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    if sha != expected {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(ApiError::bad_request(format!(
            "upload of \"{path}\" has SHA-256 {sha} ({size} bytes), not {expected}: it was cut \
             or changed on the way; upload it again"
        )));
    }
    // A worker whose lease ended while it uploaded must not replace the new attempt's file.
    if let Err(e) = lease_status(&id, state.store.check_lease(&id, &token).await?) {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    tokio::fs::rename(&tmp, &target).await.map_err(ApiError::internal)?;
    Ok(Json(ArtifactFile { pathname: path, size, sha256: sha }))
}

async fn write_checked(tmp: &Path, body: Body) -> ApiResult<(u64, String)> {
    let mut file = tokio::fs::File::create(tmp).await.map_err(ApiError::internal)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("upload cut short: {e}")))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    file.sync_all().await.map_err(ApiError::internal)?;
    let sha = crate::util::hex(&hasher.finalize());
    Ok((size, sha))
}

/// `GET /v1/worker/jobs/{id}/dataset`: the bytes of the job's dataset file, streamed.
pub async fn dataset(
    State(state): State<Arc<AppState>>,
    WorkerCaller(_): WorkerCaller,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = header_str(&headers, LEASE_HEADER)?;
    lease_status(&id, state.store.check_lease(&id, token).await?)?;
    let job = state.store.job(&id).await?.ok_or_else(|| ApiError::not_found("no such job"))?;
    let config = crate::jobconfig::to_train_config(&job.name, &job.config)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let arkor_engine::config::DatasetConfig::Jsonl { path, .. } = &config.dataset else {
        return Err(ApiError::not_found(
            "this job trains on a Hugging Face dataset: the worker downloads it itself",
        ));
    };
    state.artifacts.fetch(path).await.map_err(ApiError::artifacts)?;
    let file = tokio::fs::File::open(path).await.map_err(|e| {
        ApiError::not_found(format!("the job's dataset {} cannot be read: {e}", path.display()))
    })?;
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok(([(header::CONTENT_LENGTH, len.to_string())], body).into_response())
}
