//! `/v1/endpoints`: create, list, read, update and delete endpoints, issue and revoke their
//! API keys, and read their request log. Scoped by org and project like jobs; an endpoint of
//! another project is a 404.

use std::sync::Arc;

use arkor_protocol::endpoint::{
    AuthMode, CreateDeploymentInput, CreateDeploymentKeyInput, CreateDeploymentKeyResult,
    DEFAULT_RETENTION_DAYS, DeploymentDto, DeploymentEnvelope, DeploymentKeyDto,
    DeploymentKeyEnvelope, DeploymentKeyList, DeploymentList, DeploymentTarget,
    EndpointRequestList, RetentionMode, UpdateDeploymentInput,
};
use arkor_protocol::error::ErrorCode;
use arkor_protocol::inference::AdapterRef;
use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::jobs::scoped_job;
use super::{ApiError, ApiResult, JsonBody, Scope};
use crate::AppState;
use crate::store::EndpointRow;
use crate::util::{iso, new_id, now_ms, token_hash};

/// Slugs that name the service itself, never an endpoint.
const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "assets",
    "auth",
    "blog",
    "cdn",
    "console",
    "dashboard",
    "docs",
    "endpoints",
    "help",
    "login",
    "mail",
    "static",
    "status",
    "studio",
    "support",
    "v1",
    "www",
];

/// Checks a slug: 2-50 characters, lowercase letters, digits and inner hyphens, not reserved.
pub fn check_slug(slug: &str) -> Result<(), String> {
    let bytes = slug.as_bytes();
    let shape = bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(|b| *b != b'-')
        && bytes.last().is_some_and(|b| *b != b'-');
    if !(2..=50).contains(&slug.len()) || !shape {
        return Err(format!(
            "invalid slug {slug:?}: expected 2-50 characters of a-z, 0-9 and -, starting and \
             ending with a letter or digit"
        ));
    }
    if RESERVED_SLUGS.contains(&slug) {
        return Err(format!("invalid slug {slug:?}: reserved, choose another"));
    }
    Ok(())
}

fn auth_mode(raw: &str) -> ApiResult<AuthMode> {
    AuthMode::parse(raw).ok_or_else(|| {
        ApiError::bad_request(format!("invalid authMode {raw:?}: expected none or fixed_api_key"))
    })
}

/// The retention pair after a request: `days` needs a whole number of days (1-3650), and
/// days go with `days` only.
fn retention(mode: RetentionMode, days: Option<i64>) -> ApiResult<(RetentionMode, Option<u32>)> {
    match (mode, days) {
        (RetentionMode::Days, Some(d)) if (1..=3650).contains(&d) => Ok((mode, Some(d as u32))),
        (RetentionMode::Days, Some(d)) => Err(ApiError::bad_request(format!(
            "invalid runRetentionDays {d}: expected a whole number of days from 1 to 3650"
        ))),
        (RetentionMode::Days, None) => Err(ApiError::bad_request(
            "invalid runRetentionMode days: runRetentionDays (1-3650) is required with it",
        )),
        (_, Some(_)) => Err(ApiError::bad_request(format!(
            "invalid runRetentionDays: only valid with runRetentionMode days, not {}",
            mode.as_str()
        ))),
        (_, None) => Ok((mode, None)),
    }
}

fn retention_mode(raw: &str) -> ApiResult<RetentionMode> {
    RetentionMode::parse(raw).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid runRetentionMode {raw:?}: expected unlimited, disabled or days"
        ))
    })
}

/// Checks a target against the project: its job exists here, its checkpoint was saved, its
/// base model is a model reference. (A final adapter may still be training: the endpoint
/// answers 503 until the job completes.)
async fn check_target(state: &AppState, scope: &Scope, target: &DeploymentTarget) -> ApiResult<()> {
    match target {
        DeploymentTarget::Adapter { adapter } => {
            let (job_id, step) = match adapter {
                AdapterRef::Final { job_id } => (job_id, None),
                AdapterRef::Checkpoint { job_id, step } => (job_id, Some(*step)),
            };
            let job = scoped_job(state, scope, job_id).await.map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid target.adapter.jobId: job {job_id} not found in project {}",
                    scope.project.slug
                ))
            })?;
            if let Some(step) = step {
                let dir = super::jobs::job_folder(state, &job.id).await?;
                let steps = super::jobs::checkpoint_steps(&dir);
                if !steps.contains(&step) {
                    let saved: Vec<String> = steps.iter().map(u64::to_string).collect();
                    return Err(ApiError::bad_request(format!(
                        "invalid target.adapter.step {step}: job {job_id} saved no checkpoint \
                         there; saved: {}",
                        if saved.is_empty() { "none".to_owned() } else { saved.join(", ") }
                    )));
                }
            }
            Ok(())
        }
        DeploymentTarget::BaseModel { base_model } => {
            if crate::resolve::is_model_reference(base_model) {
                Ok(())
            } else {
                Err(ApiError::bad_request(format!(
                    "invalid target.baseModel {base_model:?}: expected arkor/tiny, a Hugging Face \
                     model id, a local model directory or .gguf file, or ollama:NAME[:TAG]"
                )))
            }
        }
    }
}

/// The OpenAI base URL of an endpoint as the caller reaches this backend.
pub fn endpoint_url(state: &AppState, headers: &HeaderMap, slug: &str) -> Option<String> {
    let host = headers.get(axum::http::header::HOST)?.to_str().ok()?;
    Some(match &state.endpoint_domain {
        Some(domain) => {
            let port = host.rsplit_once(':').map(|(_, p)| p).filter(|p| p.parse::<u16>().is_ok());
            match port {
                Some(p) => format!("http://{slug}.{domain}:{p}/v1"),
                None => format!("http://{slug}.{domain}/v1"),
            }
        }
        None => format!("http://{host}/endpoints/{slug}/v1"),
    })
}

async fn dto(state: &AppState, headers: &HeaderMap, row: EndpointRow) -> ApiResult<DeploymentDto> {
    let id = row.id.clone();
    let stats = state.store.stats_of(&id).await?;
    Ok(dto_with(state, headers, row, stats))
}

fn dto_with(
    state: &AppState,
    headers: &HeaderMap,
    row: EndpointRow,
    stats: arkor_protocol::endpoint::DeploymentStats,
) -> DeploymentDto {
    DeploymentDto {
        url: endpoint_url(state, headers, &row.slug),
        id: row.id,
        slug: row.slug,
        org_id: row.org_id,
        project_id: row.project_id,
        target: row.target,
        auth_mode: row.auth_mode,
        url_format: "openai_compat".to_owned(),
        enabled: row.enabled,
        custom_domain: None,
        run_retention_mode: row.retention_mode,
        run_retention_days: row.retention_days,
        created_at: iso(row.created_at),
        updated_at: iso(row.updated_at),
        stats,
    }
}

/// The endpoint `id` if it belongs to the scope's project.
async fn scoped(state: &AppState, scope: &Scope, id: &str) -> ApiResult<EndpointRow> {
    let (eid, project) = (id.to_owned(), scope.project.id.clone());
    let row = state.store.endpoint(&eid).await?;
    row.filter(|e| e.project_id == project)
        .ok_or_else(|| ApiError::not_found(format!("endpoint {id} not found")))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    headers: HeaderMap,
) -> ApiResult<Json<DeploymentList>> {
    let project = scope.project.id.clone();
    let mut rows = vec![];
    for row in state.store.endpoints_of_project(&project).await? {
        rows.push((state.store.stats_of(&row.id).await?, row));
    }
    let deployments =
        rows.into_iter().map(|(stats, row)| dto_with(&state, &headers, row, stats)).collect();
    Ok(Json(DeploymentList { deployments }))
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    headers: HeaderMap,
    JsonBody(input): JsonBody<CreateDeploymentInput>,
) -> ApiResult<(StatusCode, Json<DeploymentEnvelope>)> {
    check_slug(&input.slug).map_err(ApiError::bad_request)?;
    let target = input.target.ok_or_else(|| {
        ApiError::bad_request(
            "missing target: expected {\"kind\": \"adapter\", \"adapter\": {...}} or \
             {\"kind\": \"base_model\", \"baseModel\": \"...\"}",
        )
    })?;
    check_target(&state, &scope, &target).await?;
    let auth = input.auth_mode.as_deref().map(auth_mode).transpose()?;
    let (mode, days) = match (&input.run_retention_mode, input.run_retention_days) {
        (None, None) => (RetentionMode::Days, Some(DEFAULT_RETENTION_DAYS)),
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid runRetentionDays: only valid with runRetentionMode days",
            ));
        }
        (Some(m), d) => retention(retention_mode(m)?, d)?,
    };
    let now = now_ms();
    let row = EndpointRow {
        id: new_id("ep"),
        slug: input.slug.clone(),
        org_id: scope.org.id.clone(),
        project_id: scope.project.id.clone(),
        target,
        auth_mode: auth.unwrap_or(AuthMode::FixedApiKey),
        enabled: true,
        retention_mode: mode,
        retention_days: days,
        created_at: now,
        updated_at: now,
    };
    let r = row.clone();
    if !state.store.insert_endpoint(&r).await? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("slug {:?} is taken: choose another", input.slug),
        ));
    }
    let deployment = dto(&state, &headers, row).await?;
    Ok((StatusCode::CREATED, Json(DeploymentEnvelope { deployment })))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<DeploymentEnvelope>> {
    let row = scoped(&state, &scope, &id).await?;
    Ok(Json(DeploymentEnvelope { deployment: dto(&state, &headers, row).await? }))
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    JsonBody(input): JsonBody<UpdateDeploymentInput>,
) -> ApiResult<Json<DeploymentEnvelope>> {
    let mut row = scoped(&state, &scope, &id).await?;
    if let Some(target) = input.target {
        check_target(&state, &scope, &target).await?;
        row.target = target;
    }
    if let Some(a) = &input.auth_mode {
        row.auth_mode = auth_mode(a)?;
    }
    if let Some(enabled) = input.enabled {
        row.enabled = enabled;
    }
    if input.run_retention_mode.is_some() || input.run_retention_days.is_some() {
        let mode = match &input.run_retention_mode {
            Some(m) => retention_mode(m)?,
            None => row.retention_mode,
        };
        // Switching to `days` without days keeps nothing implicit: say how many.
        let days = match (input.run_retention_days, &input.run_retention_mode) {
            (Some(d), _) => Some(d),
            (None, None) => row.retention_days.map(i64::from),
            (None, Some(_)) => None,
        };
        (row.retention_mode, row.retention_days) = retention(mode, days)?;
    }
    row.updated_at = now_ms();
    let r = row.clone();
    state.store.update_endpoint(&r).await?;
    Ok(Json(DeploymentEnvelope { deployment: dto(&state, &headers, row).await? }))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<StatusCode> {
    let row = scoped(&state, &scope, &id).await?;
    state.store.delete_endpoint(&row.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<DeploymentKeyList>> {
    let row = scoped(&state, &scope, &id).await?;
    let keys = state.store.keys_of(&row.id).await?;
    Ok(Json(DeploymentKeyList { keys }))
}

/// Characters of a key shown in lists (`ark_live_` and 8 more).
const KEY_PREFIX_LEN: usize = 17;

pub async fn create_key(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
    JsonBody(input): JsonBody<CreateDeploymentKeyInput>,
) -> ApiResult<(StatusCode, Json<DeploymentKeyEnvelope>)> {
    let row = scoped(&state, &scope, &id).await?;
    let label = input.label.trim().to_owned();
    let chars = label.chars().count();
    if !(1..=80).contains(&chars) {
        return Err(ApiError::bad_request(format!(
            "invalid label: expected 1-80 characters, got {chars}"
        )));
    }
    let plaintext = format!("ark_live_{}", crate::util::random_hex(24));
    let now = now_ms();
    let key = DeploymentKeyDto {
        id: new_id("key"),
        label,
        prefix: plaintext[..KEY_PREFIX_LEN].to_owned(),
        enabled: true,
        created_at: iso(now),
        last_used_at: None,
    };
    let (k, hash) = (key.clone(), token_hash(&plaintext));
    state.store.insert_key(&row.id, &k, &hash, now).await?;
    let key = CreateDeploymentKeyResult {
        id: key.id,
        label: key.label,
        plaintext,
        prefix: key.prefix,
        created_at: key.created_at,
    };
    Ok((StatusCode::CREATED, Json(DeploymentKeyEnvelope { key })))
}

pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath((id, key_id)): UrlPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let row = scoped(&state, &scope, &id).await?;
    let k = key_id.clone();
    if !state.store.revoke_key(&row.id, &k).await? {
        return Err(ApiError::not_found(format!("key {key_id} not found on endpoint {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct RequestsQuery {
    limit: Option<u32>,
}

pub async fn requests(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<RequestsQuery>,
) -> ApiResult<Json<EndpointRequestList>> {
    let row = scoped(&state, &scope, &id).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let requests = state.store.requests_of(&row.id, limit).await?;
    Ok(Json(EndpointRequestList { requests }))
}

#[cfg(test)]
mod tests {
    use super::check_slug;

    #[test]
    fn slug_rules() {
        for ok in ["ab", "triage-v2", "a1", &"x".repeat(50)] {
            assert!(check_slug(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "-ab", "ab-", "Ab", "a_b", "a.b", "", &"x".repeat(51), "www", "api"] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
    }
}
