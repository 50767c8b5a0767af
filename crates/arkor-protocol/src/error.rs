//! The one error-code vocabulary of the HTTP and SSE edge.

use serde::{Deserialize, Serialize};

/// A closed set of error codes; exactly one function (in the server) maps them to HTTP
/// statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or a field is invalid.
    BadRequest,
    /// Missing or invalid credentials.
    Unauthorized,
    /// The resource does not exist or is not visible to the caller.
    NotFound,
    /// The request conflicts with the resource's state (e.g. cancelling a finished job).
    Conflict,
    /// The request body is larger than the route accepts.
    PayloadTooLarge,
    /// The client version is not supported.
    UpgradeRequired,
    /// The service cannot take the request now.
    Unavailable,
    /// Something failed on the server; details are in its log.
    Internal,
    /// A response format's JSON schema, a regex or a grammar is invalid (400).
    InvalidSchema,
    /// Tools were sent to a model whose chat template has no tool support, with
    /// `toolChoice` `auto` (400).
    ToolCallingNotConfigured,
}

/// The JSON body of every error response: the reference system's `{ "error": message }`
/// plus a machine-readable `code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable message, safe to show to the user.
    pub error: String,
    /// Machine-readable code.
    pub code: ErrorCode,
}

/// Body of the 426 answer when `X-Arkor-Client` is missing, malformed or too old.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionGateBody {
    /// Always `"sdk_version_unsupported"`.
    pub error: String,
    /// The version the client sent (empty when missing or malformed).
    pub current_version: String,
    /// Versions the backend accepts, as a semver range.
    pub supported_range: String,
    /// What to run to upgrade.
    pub upgrade: String,
    /// `"missing"` or `"malformed"` when the header was not usable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_shape() {
        let body = ErrorBody { error: "job already finished".into(), code: ErrorCode::Conflict };
        expect_test::expect![[r#"{"error":"job already finished","code":"conflict"}"#]]
            .assert_eq(&serde_json::to_string(&body).unwrap());
    }
}
