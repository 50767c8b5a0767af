//! The HTTP client of the backend's `/v1` API.

use arkor_protocol::auth::{AnonymousResponse, Me, Project, ProjectList, ProjectResponse};
use arkor_protocol::endpoint::{
    CreateDeploymentInput, CreateDeploymentKeyInput, CreateDeploymentKeyResult, DeploymentDto,
    DeploymentEnvelope, DeploymentKeyDto, DeploymentKeyEnvelope, DeploymentKeyList, DeploymentList,
    EndpointRequestDto, EndpointRequestList, UpdateDeploymentInput,
};
use arkor_protocol::job::{Job, JobConfig, JobResponse};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::json;

/// `X-Arkor-Client` value this SDK sends.
pub fn client_header() -> String {
    format!("arkor/{}", arkor_protocol::VERSION)
}

/// A non-2xx answer or a failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The backend answered with an error status.
    #[error("{message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The body's `error`, the raw body, or `backend <status>`.
        message: String,
    },
    /// The request did not complete (connection refused, reset, timeout, bad body).
    #[error("cannot reach the arkor backend at {url}: {source}")]
    Network {
        /// The URL asked.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// A downloaded file could not be written.
    #[error("failed to write {path}: {source}")]
    Write {
        /// The destination.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

impl ApiError {
    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Network { .. } | ApiError::Write { .. } => None,
        }
    }
}

/// Where jobs live: an organisation and a project in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectScope {
    /// `orgSlug`.
    pub org_slug: String,
    /// `projectSlug`.
    pub project_slug: String,
}

/// A client of one backend with one token.
#[derive(Clone, Debug)]
pub struct Client {
    base_url: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of `base_url` (a trailing `/` is ignored), authenticated with `token`.
    pub fn new(base_url: &str, token: Option<String>) -> Client {
        Client {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header(arkor_protocol::CLIENT_HEADER, client_header());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    /// Sends a request and returns the raw response when it is 2xx.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ApiError> {
        let built = req
            .build()
            .map_err(|source| ApiError::Network { url: self.base_url.clone(), source })?;
        let url = built.url().to_string();
        let resp =
            self.http.execute(built).await.map_err(|source| ApiError::Network { url, source })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Err(ApiError::Status { status: status.as_u16(), message: error_message(status, &text) })
    }

    async fn json<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ApiError> {
        let resp = self.send(req).await?;
        let url = resp.url().to_string();
        resp.json().await.map_err(|source| ApiError::Network { url, source })
    }

    /// `POST /v1/auth/anonymous`: a new anonymous identity with a personal organisation.
    pub async fn anonymous(&self) -> Result<AnonymousResponse, ApiError> {
        self.json(
            self.request(reqwest::Method::POST, "/v1/auth/anonymous").json(&json!({"kind": "cli"})),
        )
        .await
    }

    /// `GET /v1/me`.
    pub async fn me(&self) -> Result<Me, ApiError> {
        self.json(self.request(reqwest::Method::GET, "/v1/me")).await
    }

    /// `GET /v1/projects`.
    pub async fn list_projects(&self, org_slug: &str) -> Result<ProjectList, ApiError> {
        self.json(
            self.request(reqwest::Method::GET, "/v1/projects").query(&[("orgSlug", org_slug)]),
        )
        .await
    }

    /// `POST /v1/projects`.
    pub async fn create_project(
        &self,
        org_slug: &str,
        name: &str,
        slug: &str,
    ) -> Result<Project, ApiError> {
        let r: ProjectResponse = self
            .json(
                self.request(reqwest::Method::POST, "/v1/projects")
                    .query(&[("orgSlug", org_slug)])
                    .json(&json!({"name": name, "slug": slug})),
            )
            .await?;
        Ok(r.project)
    }

    fn scoped(
        &self,
        method: reqwest::Method,
        path: &str,
        scope: &ProjectScope,
    ) -> reqwest::RequestBuilder {
        self.request(method, path)
            .query(&[("orgSlug", &scope.org_slug), ("projectSlug", &scope.project_slug)])
    }

    /// `POST /v1/jobs`.
    pub async fn create_job(
        &self,
        scope: &ProjectScope,
        name: &str,
        config: &JobConfig,
    ) -> Result<Job, ApiError> {
        let r: JobResponse = self
            .json(
                self.scoped(reqwest::Method::POST, "/v1/jobs", scope)
                    .json(&json!({"name": name, "config": config})),
            )
            .await?;
        Ok(r.job)
    }

    /// `GET /v1/jobs/:id`.
    pub async fn get_job(&self, scope: &ProjectScope, id: &str) -> Result<Job, ApiError> {
        let r: JobResponse = self
            .json(self.scoped(reqwest::Method::GET, &format!("/v1/jobs/{}", encode(id)), scope))
            .await?;
        Ok(r.job)
    }

    /// `GET /v1/jobs` (first page, newest first).
    pub async fn list_jobs(
        &self,
        scope: &ProjectScope,
        limit: u32,
    ) -> Result<arkor_protocol::job::JobList, ApiError> {
        self.json(self.scoped(reqwest::Method::GET, "/v1/jobs", scope).query(&[("limit", limit)]))
            .await
    }

    /// `POST /v1/jobs/:id/cancel`.
    pub async fn cancel_job(&self, scope: &ProjectScope, id: &str) -> Result<(), ApiError> {
        self.send(self.scoped(
            reqwest::Method::POST,
            &format!("/v1/jobs/{}/cancel", encode(id)),
            scope,
        ))
        .await?;
        Ok(())
    }

    /// `GET /v1/jobs/:id/events/stream`, resuming after `last_event_id`.
    pub async fn open_events(
        &self,
        scope: &ProjectScope,
        id: &str,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, ApiError> {
        let mut req = self
            .scoped(reqwest::Method::GET, &format!("/v1/jobs/{}/events/stream", encode(id)), scope)
            .header("Accept", "text/event-stream");
        if let Some(last) = last_event_id {
            req = req.header("Last-Event-ID", last);
        }
        self.send(req).await
    }

    /// `GET /v1/endpoints`: the project's endpoints, oldest first.
    pub async fn list_deployments(
        &self,
        scope: &ProjectScope,
    ) -> Result<Vec<DeploymentDto>, ApiError> {
        let r: DeploymentList =
            self.json(self.scoped(reqwest::Method::GET, "/v1/endpoints", scope)).await?;
        Ok(r.deployments)
    }

    /// `GET /v1/endpoints/:id`.
    pub async fn get_deployment(
        &self,
        scope: &ProjectScope,
        id: &str,
    ) -> Result<DeploymentDto, ApiError> {
        let path = format!("/v1/endpoints/{}", encode(id));
        let r: DeploymentEnvelope =
            self.json(self.scoped(reqwest::Method::GET, &path, scope)).await?;
        Ok(r.deployment)
    }

    /// `POST /v1/endpoints`.
    pub async fn create_deployment(
        &self,
        scope: &ProjectScope,
        input: &CreateDeploymentInput,
    ) -> Result<DeploymentDto, ApiError> {
        let req = self.scoped(reqwest::Method::POST, "/v1/endpoints", scope).json(input);
        let r: DeploymentEnvelope = self.json(req).await?;
        Ok(r.deployment)
    }

    /// `PATCH /v1/endpoints/:id` (only the fields set).
    pub async fn update_deployment(
        &self,
        scope: &ProjectScope,
        id: &str,
        input: &UpdateDeploymentInput,
    ) -> Result<DeploymentDto, ApiError> {
        let path = format!("/v1/endpoints/{}", encode(id));
        let r: DeploymentEnvelope =
            self.json(self.scoped(reqwest::Method::PATCH, &path, scope).json(input)).await?;
        Ok(r.deployment)
    }

    /// `DELETE /v1/endpoints/:id`, with its keys and request log.
    pub async fn delete_deployment(&self, scope: &ProjectScope, id: &str) -> Result<(), ApiError> {
        let path = format!("/v1/endpoints/{}", encode(id));
        self.send(self.scoped(reqwest::Method::DELETE, &path, scope)).await?;
        Ok(())
    }

    /// `GET /v1/endpoints/:id/keys` (never the plaintexts).
    pub async fn list_deployment_keys(
        &self,
        scope: &ProjectScope,
        id: &str,
    ) -> Result<Vec<DeploymentKeyDto>, ApiError> {
        let path = format!("/v1/endpoints/{}/keys", encode(id));
        let r: DeploymentKeyList =
            self.json(self.scoped(reqwest::Method::GET, &path, scope)).await?;
        Ok(r.keys)
    }

    /// `POST /v1/endpoints/:id/keys`: the new key's plaintext is in this answer only.
    pub async fn create_deployment_key(
        &self,
        scope: &ProjectScope,
        id: &str,
        label: &str,
    ) -> Result<CreateDeploymentKeyResult, ApiError> {
        let path = format!("/v1/endpoints/{}/keys", encode(id));
        let body = CreateDeploymentKeyInput { label: label.to_owned() };
        let r: DeploymentKeyEnvelope =
            self.json(self.scoped(reqwest::Method::POST, &path, scope).json(&body)).await?;
        Ok(r.key)
    }

    /// `DELETE /v1/endpoints/:id/keys/:keyId`: refused from the next request on.
    pub async fn revoke_deployment_key(
        &self,
        scope: &ProjectScope,
        id: &str,
        key_id: &str,
    ) -> Result<(), ApiError> {
        let path = format!("/v1/endpoints/{}/keys/{}", encode(id), encode(key_id));
        self.send(self.scoped(reqwest::Method::DELETE, &path, scope)).await?;
        Ok(())
    }

    /// `GET /v1/endpoints/:id/requests`: the newest `limit` logged requests.
    pub async fn list_deployment_requests(
        &self,
        scope: &ProjectScope,
        id: &str,
        limit: u32,
    ) -> Result<Vec<EndpointRequestDto>, ApiError> {
        let path = format!("/v1/endpoints/{}/requests", encode(id));
        let req = self.scoped(reqwest::Method::GET, &path, scope).query(&[("limit", limit)]);
        let r: EndpointRequestList = self.json(req).await?;
        Ok(r.requests)
    }

    /// `POST /v1/jobs/:id/export`: starts exporting the job's final adapter (or
    /// `req.checkpoint_step`) as `req.format`; poll [`Client::list_exports`] until it ends.
    pub async fn export_job(
        &self,
        scope: &ProjectScope,
        id: &str,
        req: &arkor_protocol::tasks::ExportRequest,
    ) -> Result<arkor_protocol::tasks::ExportInfo, ApiError> {
        self.json(
            self.scoped(reqwest::Method::POST, &format!("/v1/jobs/{}/export", encode(id)), scope)
                .json(req),
        )
        .await
    }

    /// `GET /v1/jobs/:id/exports`, newest first.
    pub async fn list_exports(
        &self,
        scope: &ProjectScope,
        id: &str,
    ) -> Result<arkor_protocol::tasks::ExportList, ApiError> {
        self.json(self.scoped(
            reqwest::Method::GET,
            &format!("/v1/jobs/{}/exports", encode(id)),
            scope,
        ))
        .await
    }

    /// `POST /v1/jobs/:id/eval`: starts scoring the job's final adapter (or
    /// `req.checkpoint_step`) on held-out rows; poll [`Client::list_evals`] until it ends.
    pub async fn eval_job(
        &self,
        scope: &ProjectScope,
        id: &str,
        req: &arkor_protocol::tasks::EvalRequest,
    ) -> Result<arkor_protocol::tasks::EvalInfo, ApiError> {
        self.json(
            self.scoped(reqwest::Method::POST, &format!("/v1/jobs/{}/eval", encode(id)), scope)
                .json(req),
        )
        .await
    }

    /// `GET /v1/jobs/:id/evals`, newest first.
    pub async fn list_evals(
        &self,
        scope: &ProjectScope,
        id: &str,
    ) -> Result<arkor_protocol::tasks::EvalList, ApiError> {
        self.json(self.scoped(
            reqwest::Method::GET,
            &format!("/v1/jobs/{}/evals", encode(id)),
            scope,
        ))
        .await
    }

    /// `GET /v1/jobs/:id/artifacts/<pathname>`: one artifact or export file, streamed
    /// into `dest`.
    pub async fn download_artifact(
        &self,
        scope: &ProjectScope,
        id: &str,
        pathname: &str,
        dest: &std::path::Path,
    ) -> Result<u64, ApiError> {
        let path: Vec<String> = pathname.split('/').map(encode).collect();
        let url = format!("/v1/jobs/{}/artifacts/{}", encode(id), path.join("/"));
        let mut response = self.send(self.scoped(reqwest::Method::GET, &url, scope)).await?;
        let io = |source| ApiError::Write { path: dest.to_path_buf(), source };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut written = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|source| ApiError::Network {
            url: format!("{}{url}", self.base_url),
            source,
        })? {
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await.map_err(io)?;
            written += chunk.len() as u64;
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await.map_err(io)?;
        Ok(written)
    }

    /// `POST /v1/datasets`: uploads a dataset file to a remote backend.
    pub async fn upload_dataset(
        &self,
        scope: &ProjectScope,
        filename: &str,
        bytes: Vec<u8>,
    ) -> Result<arkor_protocol::job::DatasetUpload, ApiError> {
        self.json(
            self.scoped(reqwest::Method::POST, "/v1/datasets", scope)
                .query(&[("filename", filename)])
                .body(bytes),
        )
        .await
    }

    /// `POST /v1/inference/chat`; the raw response (SSE when streaming).
    pub async fn chat(
        &self,
        scope: &ProjectScope,
        body: &serde_json::Value,
    ) -> Result<reqwest::Response, ApiError> {
        self.send(self.scoped(reqwest::Method::POST, "/v1/inference/chat", scope).json(body)).await
    }
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The reference rule: 426 is the upgrade message; else the body's `error`, the raw
/// body, or `backend <status>`.
fn error_message(status: StatusCode, body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    if status == StatusCode::UPGRADE_REQUIRED {
        let v = parsed.unwrap_or_default();
        let current = v["currentVersion"].as_str().unwrap_or(arkor_protocol::VERSION);
        let range = v["supportedRange"].as_str().unwrap_or("a newer version");
        let upgrade = v["upgrade"].as_str().unwrap_or("cargo update -p arkor");
        return match v["reason"].as_str() {
            Some(reason @ ("missing" | "malformed")) => format!(
                "the X-Arkor-Client header was {reason}; the backend supports arkor {range}. Run `{upgrade}`."
            ),
            _ => format!(
                "arkor {current} is no longer supported by the backend (supported: {range}). Run `{upgrade}`."
            ),
        };
    }
    if let Some(e) = parsed.as_ref().and_then(|v| v["error"].as_str()).filter(|e| !e.is_empty()) {
        return e.to_owned();
    }
    if !body.trim().is_empty() {
        return body.trim().to_owned();
    }
    format!("backend {}", status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_follow_the_reference_rules() {
        assert_eq!(
            error_message(StatusCode::CONFLICT, r#"{"error":"already cancelled"}"#),
            "already cancelled"
        );
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, "upstream down"), "upstream down");
        assert_eq!(error_message(StatusCode::NOT_FOUND, ""), "backend 404");
        let m = error_message(
            StatusCode::UPGRADE_REQUIRED,
            r#"{"error":"sdk_version_unsupported","currentVersion":"0.0.1","supportedRange":">=1.0.0","upgrade":"cargo update -p arkor"}"#,
        );
        assert!(
            m.contains("0.0.1 is no longer supported")
                && m.contains(">=1.0.0")
                && m.contains("cargo update"),
            "{m}"
        );
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
