//! Endpoints, their API keys and their request log: the types both backends store and read.

use arkor_protocol::endpoint::{AuthMode, DeploymentTarget, RetentionMode};

use super::{StoreError, StoreResult};

/// An endpoint as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointRow {
    pub id: String,
    pub slug: String,
    pub org_id: String,
    pub project_id: String,
    pub target: DeploymentTarget,
    pub auth_mode: AuthMode,
    pub enabled: bool,
    pub retention_mode: RetentionMode,
    pub retention_days: Option<u32>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(super) const ENDPOINT_COLUMNS: &str = "id, slug, org_id, project_id, target, auth_mode, enabled, \
     retention_mode, retention_days, created_at, updated_at";

/// Fills in the fields [`EndpointRow`] holds parsed from their stored text.
pub(super) fn parse_endpoint(
    (mut row, target, auth, retention): (EndpointRow, String, String, String),
) -> StoreResult<EndpointRow> {
    row.target = serde_json::from_str(&target)?;
    row.auth_mode = AuthMode::parse(&auth).ok_or_else(|| corrupt("auth_mode", &auth))?;
    row.retention_mode =
        RetentionMode::parse(&retention).ok_or_else(|| corrupt("retention_mode", &retention))?;
    Ok(row)
}

fn corrupt(column: &str, value: &str) -> StoreError {
    use serde::de::Error;
    StoreError::Json(serde_json::Error::custom(format!(
        "unknown {column} {value:?} in the endpoints table"
    )))
}

/// One request to an endpoint, as logged.
#[derive(Clone, Debug, Default)]
pub struct RequestLog {
    pub created_at: i64,
    pub status: u16,
    pub latency_ms: u64,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub key_id: Option<String>,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
}

/// Requests answered without an error that the latency figures look at (the newest ones).
pub(super) const LATENCY_WINDOW: u32 = 1000;

/// Nearest-rank percentile of sorted values.
pub(super) fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 95), Some(7));
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 95), Some(4));
    }
}
