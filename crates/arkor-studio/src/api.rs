//! Studio's routes: `/api/*` for the web UI, everything else static.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Request, State as AxumState};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::State;

type St = AxumState<Arc<State>>;

/// `/api/train` and `/api/manifest` children, killed when Studio stops.
#[derive(Default)]
pub(crate) struct Children {
    pids: Mutex<HashMap<u32, ()>>,
}

impl Children {
    pub(crate) fn kill_all(&self) {
        for pid in self.pids.lock().unwrap_or_else(|p| p.into_inner()).keys() {
            kill(*pid);
        }
    }

    fn insert(&self, pid: u32) {
        self.pids.lock().unwrap_or_else(|p| p.into_inner()).insert(pid, ());
    }

    fn remove(&self, pid: u32) {
        self.pids.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
    }
}

fn kill(pid: u32) {
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
}

pub(crate) fn router(state: Arc<State>) -> Router {
    let api = Router::new()
        .route("/api/credentials", get(credentials))
        .route("/api/me", get(me))
        .route("/api/models", get(models))
        .route("/api/manifest", get(manifest))
        .route("/api/project", get(project))
        .route("/api/jobs", get(jobs))
        .route("/api/jobs/{id}", get(job))
        .route("/api/jobs/{id}/events", get(events))
        .route("/api/jobs/{id}/cancel", post(cancel))
        .route("/api/jobs/{id}/move-to-front", post(move_to_front))
        .route("/api/jobs/{id}/artifacts", get(artifacts))
        .route("/api/jobs/{id}/artifacts/{*path}", get(download))
        .route("/api/jobs/{id}/export", post(export))
        .route("/api/jobs/{id}/exports", get(exports))
        .route("/api/jobs/{id}/eval", post(eval))
        .route("/api/jobs/{id}/evals", get(evals))
        .route("/api/data/inspect", post(inspect_data))
        .route("/api/train", post(train))
        .route("/api/inference/chat", post(chat))
        .route("/api/deployments", get(deployments).post(create_deployment))
        .route(
            "/api/deployments/{id}",
            get(deployment).patch(update_deployment).delete(delete_deployment),
        )
        .route("/api/deployments/{id}/keys", get(deployment_keys).post(create_deployment_key))
        .route("/api/deployments/{id}/keys/{key}", axum::routing::delete(revoke_deployment_key))
        .route("/api/deployments/{id}/requests", get(deployment_requests))
        .route(
            "/api/{*rest}",
            any(|| async { error(StatusCode::NOT_FOUND, "unknown Studio API route") }),
        );
    api.fallback(get(asset))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::guard::guard))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// Credentials valid on the backend (an anonymous identity is created on first use).
async fn creds(state: &State) -> Result<arkor::Credentials, Response> {
    arkor::ensure_credentials(&state.config.home, &state.config.backend_url).await.map_err(|e| {
        match e {
            arkor::ScopeError::Api(arkor::ApiError::Status { status, message }) => {
                error(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), message)
            }
            other => error(StatusCode::BAD_GATEWAY, other.to_string()),
        }
    })
}

/// The project's scope when `.arkor/state.json` is usable with these credentials.
fn read_scope(state: &State, creds: &arkor::Credentials) -> Option<arkor::ProjectState> {
    let text = std::fs::read_to_string(state.config.project_dir.join(".arkor/state.json")).ok()?;
    let s: arkor::ProjectState = serde_json::from_str(&text).ok()?;
    let usable = creds.kind == arkor::CredentialsKind::Token
        || creds.org_slug.as_deref() == Some(&s.org_slug);
    usable.then_some(s)
}

/// Calls the backend and streams its answer back (status, content type, length and
/// disposition, body): a download of hundreds of megabytes is never held in memory.
async fn upstream(
    state: &State,
    creds: &arkor::Credentials,
    method: Method,
    path: &str,
    query: &[(&str, String)],
    body: Option<Bytes>,
    last_event_id: Option<&str>,
) -> Response {
    let url = format!("{}{path}", state.config.backend_url.trim_end_matches('/'));
    let mut req = state
        .http
        .request(method, url)
        .header(arkor_protocol::CLIENT_HEADER, arkor::client_header())
        .bearer_auth(&creds.token)
        .query(query);
    if let Some(b) = body {
        req = req.header(header::CONTENT_TYPE, "application/json").body(b);
    }
    if let Some(id) = last_event_id.filter(|v| !v.is_empty()) {
        req = req.header("Last-Event-ID", id);
    }
    match req.send().await {
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("the backend at {} is unreachable: {e}", state.config.backend_url),
        ),
        Ok(resp) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let ctype = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            let passed: Vec<_> = [header::CONTENT_LENGTH, header::CONTENT_DISPOSITION]
                .into_iter()
                .filter_map(|name| resp.headers().get(&name).cloned().map(|v| (name, v)))
                .collect();
            let stream = resp.bytes_stream().map(|c| c.map_err(std::io::Error::other));
            let mut r = (
                status,
                [
                    (header::CONTENT_TYPE, ctype),
                    (header::CACHE_CONTROL, "no-cache, no-transform".to_owned()),
                ],
                Body::from_stream(stream),
            )
                .into_response();
            r.headers_mut().extend(passed);
            r
        }
    }
}

fn scope_query(s: &arkor::ProjectState) -> Vec<(&'static str, String)> {
    vec![("orgSlug", s.org_slug.clone()), ("projectSlug", s.project_slug.clone())]
}

async fn credentials(AxumState(state): St) -> Response {
    let c = match creds(&state).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let scope = read_scope(&state, &c);
    let mode = match c.kind {
        arkor::CredentialsKind::Anonymous => "anon",
        arkor::CredentialsKind::Token => "token",
    };
    axum::Json(json!({
        "token": c.token, "mode": mode, "baseUrl": c.base_url,
        "orgSlug": scope.as_ref().map(|s| s.org_slug.clone()).or(c.org_slug.clone()),
        "projectSlug": scope.map(|s| s.project_slug),
    }))
    .into_response()
}

async fn me(AxumState(state): St) -> Response {
    match creds(&state).await {
        Ok(c) => upstream(&state, &c, Method::GET, "/v1/me", &[], None, None).await,
        Err(r) => r,
    }
}

/// Base models and this org's fine-tunes (the Playground's sources).
async fn models(AxumState(state): St) -> Response {
    match creds(&state).await {
        Ok(c) => upstream(&state, &c, Method::GET, "/v1/models", &[], None, None).await,
        Err(r) => r,
    }
}

async fn jobs(AxumState(state): St, req: Request) -> Response {
    let c = match creds(&state).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(scope) = read_scope(&state, &c) else {
        return axum::Json(json!({ "jobs": [], "total": 0 })).into_response();
    };
    let mut query = scope_query(&scope);
    for (k, v) in url_query(req.uri().query()) {
        if ["limit", "cursor", "status", "q"].contains(&k.as_str()) {
            let key: &'static str = match k.as_str() {
                "limit" => "limit",
                "cursor" => "cursor",
                "status" => "status",
                _ => "q",
            };
            query.push((key, v));
        }
    }
    upstream(&state, &c, Method::GET, "/v1/jobs", &query, None, None).await
}

fn url_query(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return vec![] };
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn scoped(
    state: &State,
    method: Method,
    path: String,
    body: Option<Bytes>,
    last: Option<&str>,
) -> Response {
    let c = match creds(state).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(scope) = read_scope(state, &c) else {
        return error(StatusCode::BAD_REQUEST, "No project state: run a training first");
    };
    upstream(state, &c, method, &path, &scope_query(&scope), body, last).await
}

async fn job(AxumState(state): St, UrlPath(id): UrlPath<String>) -> Response {
    scoped(&state, Method::GET, format!("/v1/jobs/{}", seg(&id)), None, None).await
}

async fn events(
    AxumState(state): St,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut r = scoped(
        &state,
        Method::GET,
        format!("/v1/jobs/{}/events/stream", seg(&id)),
        None,
        last.as_deref(),
    )
    .await;
    if r.status().is_success() {
        r.headers_mut().insert(header::CONTENT_TYPE, "text/event-stream".parse().expect("valid"));
    }
    r
}

async fn cancel(AxumState(state): St, UrlPath(id): UrlPath<String>) -> Response {
    scoped(&state, Method::POST, format!("/v1/jobs/{}/cancel", seg(&id)), None, None).await
}

/// Moves a queued job to the front of the backend's queue.
async fn move_to_front(AxumState(state): St, UrlPath(id): UrlPath<String>) -> Response {
    scoped(&state, Method::POST, format!("/v1/jobs/{}/move-to-front", seg(&id)), None, None).await
}

async fn artifacts(AxumState(state): St, UrlPath(id): UrlPath<String>) -> Response {
    scoped(&state, Method::GET, format!("/v1/jobs/{}/artifacts", seg(&id)), None, None).await
}

async fn download(
    AxumState(state): St,
    UrlPath((id, path)): UrlPath<(String, String)>,
) -> Response {
    let path = path.split('/').map(seg).collect::<Vec<_>>().join("/");
    scoped(&state, Method::GET, format!("/v1/jobs/{}/artifacts/{path}", seg(&id)), None, None).await
}

/// Starts an export of the final adapter or a checkpoint (`{ format, quant?, checkpointStep?,
/// systemPrompt? }`, passed through).
async fn export(AxumState(state): St, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    scoped(&state, Method::POST, format!("/v1/jobs/{}/export", seg(&id)), Some(body), None).await
}

async fn exports(AxumState(state): St, UrlPath(id): UrlPath<String>) -> Response {
    scoped(&state, Method::GET, format!("/v1/jobs/{}/exports", seg(&id)), None, None).await
}

/// Starts an evaluation of the final adapter or a checkpoint on held-out rows
/// (`{ datasetPath, checkpointStep?, maxTokens?, systemPrompt? }`, passed through).
async fn eval(AxumState(state): St, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    scoped(&state, Method::POST, format!("/v1/jobs/{}/eval", seg(&id)), Some(body), None).await
}

async fn evals(AxumState(state): St, UrlPath(id): UrlPath<String>) -> Response {
    scoped(&state, Method::GET, format!("/v1/jobs/{}/evals", seg(&id)), None, None).await
}

/// The project's endpoints; before the project has a scope, none (`scopeMissing`).
async fn deployments(AxumState(state): St) -> Response {
    let c = match creds(&state).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(scope) = read_scope(&state, &c) else {
        return axum::Json(json!({ "deployments": [], "scopeMissing": true })).into_response();
    };
    upstream(&state, &c, Method::GET, "/v1/endpoints", &scope_query(&scope), None, None).await
}

/// Creates an endpoint; an anonymous identity gets its project scope first (as a training
/// run would create it).
async fn create_deployment(AxumState(state): St, body: Bytes) -> Response {
    post_ensured(&state, "/v1/endpoints", body).await
}

async fn deployment(AxumState(state): St, UrlPath(id): UrlPath<String>) -> Response {
    scoped(&state, Method::GET, format!("/v1/endpoints/{}", seg(&id)), None, None).await
}

async fn update_deployment(
    AxumState(state): St,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    scoped(&state, Method::PATCH, format!("/v1/endpoints/{}", seg(&id)), Some(body), None).await
}

async fn delete_deployment(AxumState(state): St, UrlPath(id): UrlPath<String>) -> Response {
    scoped(&state, Method::DELETE, format!("/v1/endpoints/{}", seg(&id)), None, None).await
}

async fn deployment_keys(AxumState(state): St, UrlPath(id): UrlPath<String>) -> Response {
    scoped(&state, Method::GET, format!("/v1/endpoints/{}/keys", seg(&id)), None, None).await
}

async fn create_deployment_key(
    AxumState(state): St,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let path = format!("/v1/endpoints/{}/keys", seg(&id));
    scoped(&state, Method::POST, path, Some(body), None).await
}

async fn revoke_deployment_key(
    AxumState(state): St,
    UrlPath((id, key)): UrlPath<(String, String)>,
) -> Response {
    let path = format!("/v1/endpoints/{}/keys/{}", seg(&id), seg(&key));
    scoped(&state, Method::DELETE, path, None, None).await
}

async fn deployment_requests(AxumState(state): St, UrlPath(id): UrlPath<String>) -> Response {
    let path = format!("/v1/endpoints/{}/requests", seg(&id));
    scoped(&state, Method::GET, path, None, None).await
}

/// The Data tab: `{ config, row?, offset?, limit? }` (a job config, as the manifest gives
/// a trainer's, or one naming any file) to the backend's `POST /v1/datasets/inspect`, a
/// relative dataset path taken as the project's.
async fn inspect_data(AxumState(state): St, body: Bytes) -> Response {
    let mut v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")),
    };
    let source = &mut v["config"]["datasetSource"];
    if source["type"] == "jsonl"
        && let Some(path) = source["path"].as_str()
    {
        let path = std::path::absolute(state.config.project_dir.join(path.trim()))
            .unwrap_or_else(|_| state.config.project_dir.join(path.trim()));
        source["path"] = path.display().to_string().into();
    }
    post_ensured(&state, "/v1/datasets/inspect", Bytes::from(v.to_string())).await
}

/// The project folder (the web UI suggests `<dir>/data/heldout.jsonl`), and the reply schema
/// its Playground decodes with by default (`data/reply.schema.json`, written by the templates):
/// `replySchema`, or `replySchemaError` saying what is wrong with the file.
async fn project(AxumState(state): St) -> Response {
    let dir = std::path::absolute(&state.config.project_dir)
        .unwrap_or_else(|_| state.config.project_dir.clone());
    let mut body = json!({ "dir": dir.display().to_string() });
    let path = dir.join(REPLY_SCHEMA);
    match tokio::fs::read_to_string(&path).await {
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(schema) if schema.is_object() => body["replySchema"] = schema,
            Ok(_) => {
                body["replySchemaError"] =
                    format!("{}: expected a JSON object (a JSON Schema)", path.display()).into()
            }
            Err(e) => body["replySchemaError"] = format!("{}: {e}", path.display()).into(),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => body["replySchemaError"] = format!("{}: {e}", path.display()).into(),
    }
    axum::Json(body).into_response()
}

/// The project's reply schema, relative to the project folder.
const REPLY_SCHEMA: &str = "data/reply.schema.json";

async fn chat(AxumState(state): St, body: Bytes) -> Response {
    post_ensured(&state, "/v1/inference/chat", body).await
}

/// POSTs `body` to the backend's `path` in the project's scope, creating the scope first
/// for an anonymous identity.
async fn post_ensured(state: &State, path: &str, body: Bytes) -> Response {
    let c = match creds(state).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let scope = match ensured_scope(state, &c).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    upstream(state, &c, Method::POST, path, &scope_query(&scope), Some(body), None).await
}

/// The project's scope, created first for an anonymous identity (as a training run would):
/// 409 when the state file belongs to another identity, 400 when a token login has none.
async fn ensured_scope(
    state: &State,
    c: &arkor::Credentials,
) -> Result<arkor::ProjectState, Response> {
    let client = arkor::Client::new(&c.base_url, Some(c.token.clone()));
    match arkor::ensure_project_state(&state.config.project_dir, c, &client).await {
        Ok(s) => Ok(arkor::ProjectState {
            org_slug: s.org_slug,
            project_slug: s.project_slug,
            project_id: String::new(),
        }),
        Err(e @ arkor::ScopeError::ProjectStateMismatch { .. }) => {
            Err(error(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e @ arkor::ScopeError::NoState) => Err(error(StatusCode::BAD_REQUEST, e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// Percent-encodes a path segment.
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

async fn manifest(AxumState(state): St) -> Response {
    let dir = &state.config.project_dir;
    // Tracked like `/api/train`'s children: a build still running when Studio stops (or
    // when the page that asked goes away) is stopped, not left writing into `.arkor/build`.
    let child = tokio::process::Command::new(&state.config.arkor_exe)
        .arg("build")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("failed to run arkor build: {e}")),
    };
    let pid = child.id().unwrap_or(0);
    state.children.insert(pid);
    let out = child.wait_with_output().await;
    state.children.remove(pid);
    let out = match out {
        Ok(o) => o,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("failed to run arkor build: {e}")),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let msg = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        return error(StatusCode::BAD_REQUEST, msg);
    }
    let binary = dir.join(".arkor/build/trainer");
    let out = tokio::process::Command::new(&binary).arg("manifest").current_dir(dir).output().await;
    match out {
        Ok(o) if o.status.success() => match serde_json::from_slice::<serde_json::Value>(&o.stdout)
        {
            Ok(m) => {
                let first = m["trainers"].get(0).map(|t| json!({ "name": t["name"] }));
                axum::Json(json!({ "trainer": first, "trainers": m["trainers"] })).into_response()
            }
            Err(e) => error(
                StatusCode::BAD_REQUEST,
                format!("the trainer binary printed an invalid manifest: {e}"),
            ),
        },
        Ok(o) => {
            error(StatusCode::BAD_REQUEST, String::from_utf8_lossy(&o.stderr).trim().to_owned())
        }
        Err(e) => {
            error(StatusCode::BAD_REQUEST, format!("failed to run {}: {e}", binary.display()))
        }
    }
}

async fn train(AxumState(state): St, body: Bytes) -> Response {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut cmd = tokio::process::Command::new(&state.config.arkor_exe);
    cmd.arg("start").current_dir(&state.config.project_dir);
    if let Some(t) = v["trainer"].as_str() {
        cmd.args(["--trainer", t]);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let text = format!("\n---\nfailed to start: {e}\n");
            return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
        }
    };
    let pid = child.id().unwrap_or(0);
    state.children.insert(pid);
    let (mut out, mut err) =
        (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let st = state.clone();
    tokio::spawn(async move {
        let (mut b1, mut b2) = (vec![0u8; 8192], vec![0u8; 8192]);
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            let chunk = tokio::select! {
                n = out.read(&mut b1), if out_open => match n { Ok(0) | Err(_) => { out_open = false; None } Ok(n) => Some(Bytes::copy_from_slice(&b1[..n])) },
                n = err.read(&mut b2), if err_open => match n { Ok(0) | Err(_) => { err_open = false; None } Ok(n) => Some(Bytes::copy_from_slice(&b2[..n])) },
            };
            if let Some(c) = chunk
                && tx.send(Ok(c)).await.is_err()
            {
                // The client went away: stop `arkor start` with SIGTERM, like on shutdown
                // (the job itself goes on).
                kill(pid);
                break;
            }
        }
        let code = match child.wait().await {
            Ok(s) => s.code().map_or("signal".to_owned(), |c| c.to_string()),
            Err(e) => format!("unknown ({e})"),
        };
        let _ = tx.send(Ok(Bytes::from(format!("\n---\nexit={code}\n")))).await;
        st.children.remove(pid);
    });
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-transform"),
        ],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response()
}

/// The web UI: files of the built front end, with the token injected into HTML.
async fn asset(AxumState(state): St, req: Request) -> Response {
    let path = req.uri().path().trim_start_matches('/').to_owned();
    if path.split('/').any(|s| s == ".." || s == ".") || path.contains('\\') {
        return (StatusCode::BAD_REQUEST, "Bad path").into_response();
    }
    let has_ext = path.rsplit('/').next().is_some_and(|n| n.contains('.'));
    let wanted = if path.is_empty() { "index.html" } else { &path };
    // The named file; else, for a path without an extension, the SPA's index.html.
    let found = match load(&state, wanted).await {
        Some(b) => Some((wanted.to_owned(), b)),
        None if has_ext => return (StatusCode::NOT_FOUND, "Not found").into_response(),
        None => load(&state, "index.html").await.map(|b| ("index.html".to_owned(), b)),
    };
    let (name, bytes) = found
        .unwrap_or_else(|| ("index.html".to_owned(), Bytes::from_static(MISSING_UI.as_bytes())));
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    if ext == "html" {
        let text = String::from_utf8_lossy(&bytes);
        let meta = format!("<meta name=\"arkor-studio-token\" content=\"{}\">", attr(&state.token));
        let page = match text.find("</head>") {
            Some(i) => format!("{}{meta}{}", &text[..i], &text[i..]),
            None => format!("{meta}{text}"),
        };
        return ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
    }
    let ctype = match ext {
        "js" | "mjs" => "text/javascript",
        "css" => "text/css",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, ctype)], bytes).into_response()
}

/// One file of the web UI: from `StudioConfig::assets` when set, else embedded.
async fn load(state: &State, rel: &str) -> Option<Bytes> {
    match &state.config.assets {
        Some(dir) => {
            let file = dir.join(rel);
            if !file.is_file() {
                return None;
            }
            tokio::fs::read(file).await.ok().map(Bytes::from)
        }
        None => crate::EMBEDDED
            .iter()
            .find(|(name, _)| *name == rel)
            .map(|(_, bytes)| Bytes::from_static(bytes)),
    }
}

fn attr(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Served when no built web UI is configured.
const MISSING_UI: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Arkor Studio</title></head>\
<body><h1>Arkor Studio</h1><p>This arkor was built without the Studio web UI (<code>ARKOR_STUDIO_SKIP_UI</code>, or no \
<code>studio/</code> folder). The API under /api is running; train from the terminal with <code>arkor start</code>, \
or rebuild arkor with Node.js 20+ and npm installed.</p></body></html>";
