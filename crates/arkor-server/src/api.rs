//! The `/v1` HTTP API: router, errors, extractors and the client-version gate.
//!
//! Order on every request: body limit, version gate (`X-Arkor-Client`, except on the
//! OpenAI-compatible routes, which generic OpenAI clients call), then the handler's own
//! extractors: bearer token ([`Caller`]), scope ([`Scope`]), JSON body ([`JsonBody`]).

use std::sync::Arc;

use arkor_protocol::auth::{Org, Project, User};
use arkor_protocol::error::{ErrorBody, ErrorCode, VersionGateBody};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::{HeaderMap, StatusCode, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::store::StoreError;

mod auth;
mod constraint;
mod datasets;
mod endpoints;
pub mod events;
mod inference;
mod jobs;
mod serve;
mod tools;
pub mod workers;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1 << 20;

/// Builds the router.
pub fn router(state: Arc<AppState>) -> Router {
    let gated = Router::new()
        .route("/v1/auth/cli/config", get(auth::cli_config))
        .route("/v1/auth/anonymous", post(auth::anonymous))
        .route("/v1/me", get(auth::me))
        .route("/v1/projects", get(auth::list_projects).post(auth::create_project))
        .route(
            "/v1/datasets",
            post(datasets::upload)
                .layer(axum::extract::DefaultBodyLimit::max(datasets::UPLOAD_LIMIT)),
        )
        .route("/v1/datasets/inspect", post(datasets::inspect))
        .route("/v1/jobs", get(jobs::list).post(jobs::create))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/move-to-front", post(jobs::move_to_front))
        .route("/v1/jobs/{id}/events/stream", get(events::stream))
        .route("/v1/jobs/{id}/artifacts", get(jobs::artifacts))
        .route("/v1/jobs/{id}/export", post(jobs::export))
        .route("/v1/jobs/{id}/exports", get(jobs::exports))
        .route("/v1/jobs/{id}/eval", post(jobs::eval))
        .route("/v1/jobs/{id}/evals", get(jobs::evals))
        .route("/v1/jobs/{id}/artifacts/{*path}", get(jobs::download))
        .route("/v1/inference/chat", post(inference::chat))
        .route("/v1/endpoints", get(endpoints::list).post(endpoints::create))
        .route(
            "/v1/endpoints/{id}",
            get(endpoints::get).patch(endpoints::update).delete(endpoints::delete),
        )
        .route("/v1/endpoints/{id}/keys", get(endpoints::list_keys).post(endpoints::create_key))
        .route("/v1/endpoints/{id}/keys/{key_id}", delete(endpoints::revoke_key))
        .route("/v1/endpoints/{id}/requests", get(endpoints::requests))
        .route("/v1/worker/lease", post(workers::lease))
        .route("/v1/worker/jobs/{id}/heartbeat", post(workers::heartbeat))
        .route("/v1/worker/jobs/{id}/events", post(workers::events))
        .route("/v1/worker/jobs/{id}/release", post(workers::release))
        .route(
            "/v1/worker/jobs/{id}/files/{*path}",
            axum::routing::put(workers::upload)
                .layer(axum::extract::DefaultBodyLimit::max(workers::UPLOAD_LIMIT))
                .get(workers::download),
        )
        .route("/v1/worker/jobs/{id}/dataset", get(workers::dataset))
        .layer(axum::middleware::from_fn(version_gate));
    // Called by OpenAI clients: no version gate.
    let openai = Router::new()
        .route("/v1/models", get(inference::models))
        .route("/v1/chat/completions", post(inference::completions))
        .route("/endpoints/{slug}/v1/models", get(serve::models))
        .route("/endpoints/{slug}/v1/chat/completions", post(serve::completions));
    let domain = state.endpoint_domain.clone();
    let app = gated
        .merge(openai)
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state);
    match domain {
        // Endpoint hosts are rewritten before routing, so around the whole router.
        Some(domain) => Router::new().fallback_service(app).layer(
            axum::middleware::from_fn_with_state(Arc::<str>::from(domain), serve::host_rewrite),
        ),
        None => app,
    }
}

/// An error answer: status, code and a message for the user.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = match code {
            ErrorCode::BadRequest
            | ErrorCode::InvalidSchema
            | ErrorCode::ToolCallingNotConfigured => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError { status, code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// The bucket behind the data directory (`--artifacts`) failed: 503, which a client
    /// (and `arkor worker`) may retry.
    pub fn artifacts(e: anyhow::Error) -> Self {
        let message = format!("artifact store: {}", crate::artifacts::describe(&e));
        eprintln!("arkor server: {message}");
        Self::new(ErrorCode::Unavailable, message)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        eprintln!("arkor server: internal error: {message}");
        Self::new(ErrorCode::Internal, format!("internal error: {message}"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let too_large = self.status == StatusCode::PAYLOAD_TOO_LARGE;
        let mut response =
            (self.status, Json(ErrorBody { error: self.message, code: self.code })).into_response();
        // The rest of an oversized body is never read, so the connection cannot carry another
        // request; saying so keeps a client from reusing it (its next request would fail with
        // the connection closed under it).
        if too_large {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// 426 unless `X-Arkor-Client: arkor/<semver>` names a supported version.
async fn version_gate(req: Request, next: Next) -> Response {
    let header = req.headers().get(arkor_protocol::CLIENT_HEADER).map(|v| v.to_str().unwrap_or(""));
    let reason = match header {
        None => Some("missing"),
        Some(v) => match v.strip_prefix("arkor/").and_then(parse_version) {
            None => Some("malformed"),
            Some(version) if version >= parse_version(MIN_CLIENT).expect("valid") => {
                return next.run(req).await;
            }
            Some(_) => None,
        },
    };
    let current = header.and_then(|v| v.strip_prefix("arkor/")).unwrap_or("").to_owned();
    let body = VersionGateBody {
        error: "sdk_version_unsupported".to_owned(),
        current_version: current,
        supported_range: arkor_protocol::SUPPORTED_CLIENT_RANGE.to_owned(),
        upgrade: "cargo update -p arkor".to_owned(),
        reason: reason.map(str::to_owned),
    };
    (StatusCode::UPGRADE_REQUIRED, Json(body)).into_response()
}

/// Oldest client version accepted (the lower bound of `SUPPORTED_CLIENT_RANGE`).
const MIN_CLIENT: &str = "0.0.0";

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// The authenticated user (`Authorization: Bearer <token>`).
pub struct Caller(pub User);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "missing `Authorization: Bearer <token>`; get a token with POST /v1/auth/anonymous \
                 or `arkor login`",
            )
        })?;
        let hash = crate::util::token_hash(&token);
        let user = state.store.user_by_token(&hash).await?;
        user.map(Caller).ok_or_else(|| {
            ApiError::new(ErrorCode::Unauthorized, "unknown or revoked token; log in again")
        })
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScopeQuery {
    org_slug: Option<String>,
    project_slug: Option<String>,
}

/// `orgSlug` (a member organisation) and `projectSlug` (a project in it).
pub struct Scope {
    pub user: User,
    pub org: Org,
    pub project: Project,
}

/// Just `orgSlug`.
pub struct OrgScope {
    pub org: Org,
}

async fn resolve_org(state: &AppState, user: &User, slug: Option<String>) -> ApiResult<Org> {
    let slug = slug.ok_or_else(|| ApiError::bad_request("missing query parameter orgSlug"))?;
    let user_id = user.id.clone();
    let s = slug.clone();
    let org = state.store.member_org(&user_id, &s).await?;
    org.ok_or_else(|| ApiError::not_found(format!("organisation \"{slug}\" not found")))
}

impl FromRequestParts<Arc<AppState>> for OrgScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let Caller(user) = Caller::from_request_parts(parts, state).await?;
        let Query(q) = Query::<ScopeQuery>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        Ok(OrgScope { org: resolve_org(state, &user, q.org_slug).await? })
    }
}

impl FromRequestParts<Arc<AppState>> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let Caller(user) = Caller::from_request_parts(parts, state).await?;
        let Query(q) = Query::<ScopeQuery>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let org = resolve_org(state, &user, q.org_slug).await?;
        let slug = q
            .project_slug
            .ok_or_else(|| ApiError::bad_request("missing query parameter projectSlug"))?;
        let org_id = org.id.clone();
        let s = slug.clone();
        let project = state.store.project(&org_id, &s).await?;
        let project = project.ok_or_else(|| {
            ApiError::not_found(format!(
                "project \"{slug}\" not found in organisation \"{}\"",
                org.slug
            ))
        })?;
        Ok(Scope { user, org, project })
    }
}

/// A JSON body whose errors name the offending field path.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("request body larger than {BODY_LIMIT} bytes"),
                )
            } else {
                ApiError::bad_request(e.body_text())
            }
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(JsonBody).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                ApiError::bad_request(format!("invalid request body: {inner}"))
            } else {
                ApiError::bad_request(format!("invalid request body at `{path}`: {inner}"))
            }
        })
    }
}
