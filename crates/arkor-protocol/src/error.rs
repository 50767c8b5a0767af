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
    /// The client version is not supported.
    UpgradeRequired,
    /// The service cannot take the request now.
    Unavailable,
    /// Something failed on the server; details are in its log.
    Internal,
}

/// The JSON body of every error response and SSE `error` frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message, safe to show to the user.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_shape() {
        let body = ErrorBody { code: ErrorCode::Conflict, message: "job already finished".into() };
        expect_test::expect![[r#"{"code":"conflict","message":"job already finished"}"#]]
            .assert_eq(&serde_json::to_string(&body).unwrap());
    }
}
