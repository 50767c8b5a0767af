//! Endpoints (`/v1/endpoints`): a fine-tune, a checkpoint or a base model deployed behind an
//! OpenAI-compatible URL, with optional API keys. The reference calls them deployments.

use serde::{Deserialize, Serialize};

use crate::inference::AdapterRef;

/// What an endpoint serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum DeploymentTarget {
    /// A job's final adapter or one of its checkpoints, on the job's base model.
    Adapter {
        /// Which adapter.
        adapter: AdapterRef,
    },
    /// A base model alone.
    BaseModel {
        /// A model reference (`arkor/tiny`, a Hub id, a `.gguf` file, `ollama:NAME`).
        base_model: String,
    },
}

/// Who may call an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Anyone who can reach the backend.
    None,
    /// A key issued for this endpoint (`Authorization: Bearer` or `x-api-key`).
    FixedApiKey,
}

impl AuthMode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::FixedApiKey => "fixed_api_key",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<AuthMode> {
        match s {
            "none" => Some(AuthMode::None),
            "fixed_api_key" => Some(AuthMode::FixedApiKey),
            _ => None,
        }
    }
}

/// How long an endpoint's request log is kept, and whether it holds the bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionMode {
    /// Every request with its bodies, forever.
    Unlimited,
    /// Requests without bodies (time, status, latency, tokens, key), forever.
    Disabled,
    /// Requests with their bodies for `runRetentionDays` days.
    Days,
}

impl RetentionMode {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Unlimited => "unlimited",
            RetentionMode::Disabled => "disabled",
            RetentionMode::Days => "days",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<RetentionMode> {
        match s {
            "unlimited" => Some(RetentionMode::Unlimited),
            "disabled" => Some(RetentionMode::Disabled),
            "days" => Some(RetentionMode::Days),
            _ => None,
        }
    }
}

/// Retention when a create request names none.
pub const DEFAULT_RETENTION_DAYS: u32 = 7;

/// Figures from an endpoint's request log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStats {
    /// Requests in the log.
    pub requests: u64,
    /// Of which answered with a 4xx or 5xx status.
    pub errors: u64,
    /// Median latency (ms), over the last 1,000 answered requests.
    pub p50_latency_ms: Option<u64>,
    /// 95th percentile latency (ms), over the same requests.
    pub p95_latency_ms: Option<u64>,
    /// Tokens in and out over the log.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The newest request (ISO 8601).
    pub last_used_at: Option<String>,
}

/// An endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentDto {
    pub id: String,
    /// Unique across the backend: `/endpoints/<slug>/v1` (or `<slug>.<domain>`).
    pub slug: String,
    pub org_id: String,
    pub project_id: String,
    pub target: DeploymentTarget,
    pub auth_mode: AuthMode,
    /// Always `openai_compat`.
    pub url_format: String,
    pub enabled: bool,
    /// Not supported: always null.
    pub custom_domain: Option<String>,
    pub run_retention_mode: RetentionMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_retention_days: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
    /// The OpenAI base URL clients use (ends in `/v1`), as seen from the request's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub stats: DeploymentStats,
}

/// `POST /v1/endpoints`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDeploymentInput {
    pub slug: String,
    pub target: Option<DeploymentTarget>,
    /// Default `fixed_api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_retention_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_retention_days: Option<i64>,
}

/// `PATCH /v1/endpoints/:id` (every field optional; the slug cannot change).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateDeploymentInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<DeploymentTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_retention_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_retention_days: Option<i64>,
}

/// `{ deployment }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentEnvelope {
    pub deployment: DeploymentDto,
}

/// `{ deployments }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentList {
    pub deployments: Vec<DeploymentDto>,
}

/// An API key as listed (never the plaintext).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentKeyDto {
    pub id: String,
    pub label: String,
    /// The key's first characters, e.g. `ark_live_abcd1234`.
    pub prefix: String,
    /// False once revoked.
    pub enabled: bool,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// `POST /v1/endpoints/:id/keys`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateDeploymentKeyInput {
    pub label: String,
}

/// A new key: the plaintext is in this answer and nowhere else, ever.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateDeploymentKeyResult {
    pub id: String,
    pub label: String,
    pub plaintext: String,
    pub prefix: String,
    pub created_at: String,
}

/// `{ keys }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentKeyList {
    pub keys: Vec<DeploymentKeyDto>,
}

/// `{ key }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentKeyEnvelope {
    pub key: CreateDeploymentKeyResult,
}

/// One logged request (`GET /v1/endpoints/:id/requests`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointRequestDto {
    pub id: i64,
    pub created_at: String,
    pub status: u16,
    pub latency_ms: u64,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub key_id: Option<String>,
    /// Kept only with retention `days` or `unlimited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// `{ requests }`, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointRequestList {
    pub requests: Vec<EndpointRequestDto>,
}
