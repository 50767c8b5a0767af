//! The Host guard and the token check, as one middleware in the order the security model
//! needs: Host first (every path), then the token (only `/api/*`).

use std::sync::Arc;

use axum::extract::{Request, State as AxumState};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::State;

/// Header the web UI sends the token in.
pub const TOKEN_HEADER: &str = "x-arkor-studio-token";

pub(crate) async fn guard(
    AxumState(state): AxumState<Arc<State>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let api = path == "/api" || path.starts_with("/api/");
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !loopback_host(host) {
        return if api {
            (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"error": "Studio API is loopback-only"})),
            )
                .into_response()
        } else {
            (StatusCode::FORBIDDEN, "Studio is loopback-only").into_response()
        };
    }
    if api {
        let provided = match req.headers().get(TOKEN_HEADER) {
            Some(v) => Some(v.as_bytes().to_vec()),
            None if req.method() == Method::GET && is_events_path(&path) => {
                query_token(req.uri().query().unwrap_or("")).map(String::into_bytes)
            }
            None => None,
        };
        let expected = state.token.as_bytes();
        let ok =
            provided.is_some_and(|p| p.len() == expected.len() && bool::from(p.ct_eq(expected)));
        if !ok {
            return (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"error": "Missing or invalid studio token"})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// `127.0.0.1` or `localhost`, with an optional numeric port.
fn loopback_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    (name == "127.0.0.1" || name == "localhost")
        && port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `/api/jobs/<id>/events`, exactly.
fn is_events_path(path: &str) -> bool {
    path.strip_prefix("/api/jobs/")
        .and_then(|rest| rest.strip_suffix("/events"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

fn query_token(query: &str) -> Option<String> {
    query.split('&').find_map(|kv| kv.strip_prefix("studioToken=")).map(|v| {
        // Tokens are base64url: no percent-encoding is needed, but tolerate it.
        v.replace("%2D", "-").replace("%5F", "_")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in ["127.0.0.1", "localhost", "localhost:4000", "127.0.0.1:65535"] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "localhost.evil.com",
            "127.0.0.1.nip.io",
            "localhost:",
            "localhost:abc",
            "[::1]:4000",
            "",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
        assert!(is_events_path("/api/jobs/job_1/events"));
        assert!(!is_events_path("/api/jobs/job_1/cancel"));
        assert!(!is_events_path("/api/jobs//events"));
        assert!(!is_events_path("/api/jobs/a/b/events"));
    }
}
