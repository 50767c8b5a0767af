//! Serving endpoints to OpenAI clients: `/endpoints/<slug>/v1/chat/completions` and
//! `/endpoints/<slug>/v1/models` (and the same on `<slug>.<domain>` hosts, rewritten here by
//! [`host_rewrite`]). The endpoint pins the model (`model` in the body is ignored); keys are
//! checked on every request, so a revoked key fails at once; a disabled or deleted endpoint
//! is a 404; no user token is accepted and nothing outside the endpoint's target is reachable.
//! Each chat request is logged (time, status, latency, tokens, key; bodies as the endpoint's
//! retention allows).

use std::sync::Arc;
use std::time::Instant;

use arkor_protocol::endpoint::{AuthMode, DeploymentTarget};
use arkor_protocol::error::ErrorCode;
use arkor_protocol::inference::{AdapterRef, ChatCompletionRequest, ModelInfo, ModelList};
use arkor_protocol::job::JobStatus;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::inference::{Ended, OnEnd, adapter_target, base_target, complete};
use super::{ApiError, ApiResult};
use crate::AppState;
use crate::inference::Target;
use crate::store::{EndpointRow, RequestLog};
use crate::util::{now_ms, token_hash};

/// The endpoint `slug` if it exists and is enabled.
async fn live_endpoint(state: &AppState, slug: &str) -> ApiResult<EndpointRow> {
    let s = slug.to_owned();
    let row = state.store.endpoint_by_slug(&s).await?;
    row.filter(|e| e.enabled)
        .ok_or_else(|| ApiError::not_found(format!("no endpoint named {slug:?}")))
}

/// The key a request presents: `Authorization: Bearer <key>` or `x-api-key: <key>`.
fn presented_key(headers: &HeaderMap) -> Option<String> {
    super::bearer(headers).or_else(|| {
        let v = headers.get("x-api-key")?.to_str().ok()?.trim();
        (!v.is_empty()).then(|| v.to_owned())
    })
}

/// The id of the key that lets this request in (`None` for an open endpoint), or a 401.
async fn authorize(
    state: &AppState,
    endpoint: &EndpointRow,
    headers: &HeaderMap,
) -> ApiResult<Option<String>> {
    if endpoint.auth_mode == AuthMode::None {
        return Ok(None);
    }
    let key = presented_key(headers).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
        )
    })?;
    let (id, hash) = (endpoint.id.clone(), token_hash(&key));
    let found = state.store.use_key(&id, &hash, now_ms()).await?;
    found
        .map(Some)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "invalid or revoked API key"))
}

/// What the endpoint serves; 503 while its final adapter is still training.
async fn target(state: &AppState, endpoint: &EndpointRow) -> ApiResult<Target> {
    let (job_id, step) = match &endpoint.target {
        DeploymentTarget::BaseModel { base_model } => return base_target(base_model),
        DeploymentTarget::Adapter { adapter: AdapterRef::Final { job_id } } => (job_id, None),
        DeploymentTarget::Adapter { adapter: AdapterRef::Checkpoint { job_id, step } } => {
            (job_id, Some(*step))
        }
    };
    let (j, project) = (job_id.clone(), endpoint.project_id.clone());
    let job = state.store.job_in_project(&project, &j).await?;
    let job = job.ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("endpoint {}: its job {job_id} no longer exists", endpoint.slug),
        )
    })?;
    if step.is_none() && job.status != JobStatus::Completed {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "endpoint {} serves job {job_id}'s final adapter, which is not ready: the job \
                 is {}",
                endpoint.slug,
                job.status.as_str()
            ),
        ));
    }
    adapter_target(state, &job, step).await
}

/// A request log entry written when the answer has been sent whole.
fn logger(
    state: &Arc<AppState>,
    endpoint: &EndpointRow,
    key_id: Option<String>,
    request_body: Option<String>,
) -> impl FnOnce(Ended) + Send + 'static {
    let (store, endpoint) = (state.store.clone(), endpoint.clone());
    let (started, created_at) = (Instant::now(), now_ms());
    move |ended: Ended| {
        let log = RequestLog {
            created_at,
            status: ended.status,
            latency_ms: started.elapsed().as_millis() as u64,
            prompt_tokens: ended.prompt_tokens,
            completion_tokens: ended.completion_tokens,
            key_id,
            request_body,
            response_body: ended.response,
        };
        tokio::spawn(async move {
            if let Err(e) = store.log_request(&endpoint, &log).await {
                eprintln!("arkor server: failed to log a request to endpoint: {e}");
            }
        });
    }
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    UrlPath(slug): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let endpoint = match live_endpoint(&state, &slug).await {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let key_id = match authorize(&state, &endpoint, &headers).await {
        Ok(k) => k,
        Err(e) => {
            // Refused callers are logged without their body.
            logger(&state, &endpoint, None, None)(Ended::failed(&e));
            return e.into_response();
        }
    };
    let log = logger(&state, &endpoint, key_id, Some(body_text));
    let req = match parse_request(&body) {
        Ok(r) => r,
        Err(e) => {
            log(Ended::failed(&e));
            return e.into_response();
        }
    };
    let target = target(&state, &endpoint).await;
    let on_end: OnEnd = Box::new(log);
    complete(&state, req, target, endpoint.slug.clone(), Some(on_end))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The body as a chat completion request; `model` may be missing (the endpoint pins it).
fn parse_request(body: &[u8]) -> ApiResult<ChatCompletionRequest> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    let Some(obj) = value.as_object_mut() else {
        return Err(ApiError::bad_request("invalid request body: expected a JSON object"));
    };
    obj.entry("model").or_insert_with(|| "endpoint".into());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad_request(format!("invalid request body at `{path}`: {}", e.into_inner()))
    })
}

pub async fn models(
    State(state): State<Arc<AppState>>,
    UrlPath(slug): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<Json<ModelList>> {
    let endpoint = live_endpoint(&state, &slug).await?;
    authorize(&state, &endpoint, &headers).await?;
    let base_model = match &endpoint.target {
        DeploymentTarget::BaseModel { base_model } => Some(base_model.clone()),
        DeploymentTarget::Adapter { .. } => {
            target(&state, &endpoint).await.ok().map(|t| t.base_model)
        }
    };
    let model = ModelInfo {
        id: endpoint.slug.clone(),
        object: "model".to_owned(),
        created: (endpoint.created_at / 1000).max(0) as u64,
        owned_by: endpoint.org_id.clone(),
        kind: "endpoint".to_owned(),
        base_model,
        available_offline: None,
        job_id: None,
        step: None,
    };
    Ok(Json(ModelList { object: "list".to_owned(), data: vec![model] }))
}

/// On a backend given `--endpoint-domain D`, a request to `<slug>.D` is a request to that
/// endpoint: `/v1/chat/completions` and `/v1/models` are rewritten to `/endpoints/<slug>/...`
/// before routing, and every other path there is a 404 (an endpoint host reaches nothing else).
pub async fn host_rewrite(
    State(domain): State<Arc<str>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(slug) = endpoint_host(req.headers(), &domain) else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path != "/v1/chat/completions" && path != "/v1/models" {
        return ApiError::not_found(format!(
            "{slug}.{domain} serves /v1/chat/completions and /v1/models only"
        ))
        .into_response();
    }
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    match format!("/endpoints/{slug}{path}{query}").parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => {
            return ApiError::not_found(format!("no endpoint named {slug:?}")).into_response();
        }
    }
    next.run(req).await
}

/// The slug of an endpoint host (`<slug>.<domain>`, any port).
fn endpoint_host(headers: &HeaderMap, domain: &str) -> Option<String> {
    let host = headers.get(axum::http::header::HOST)?.to_str().ok()?;
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => h,
        _ => host,
    }
    .to_ascii_lowercase();
    let slug = name.strip_suffix(domain)?.strip_suffix('.')?;
    (!slug.is_empty() && !slug.contains('.')).then(|| slug.to_owned())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(axum::http::header::HOST, h.parse().unwrap());
        m
    }

    #[test]
    fn endpoint_hosts() {
        let slug = |h: &str| super::endpoint_host(&host(h), "ep.local");
        assert_eq!(slug("triage.ep.local").as_deref(), Some("triage"));
        assert_eq!(slug("Triage.EP.local:8080").as_deref(), Some("triage"));
        assert_eq!(slug("ep.local"), None);
        assert_eq!(slug("a.b.ep.local"), None);
        assert_eq!(slug("triageep.local"), None);
        assert_eq!(slug("127.0.0.1:4100"), None);
    }
}
