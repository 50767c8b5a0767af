//! Endpoints, their API keys and their request log.

use arkor_protocol::endpoint::{
    AuthMode, DeploymentKeyDto, DeploymentStats, DeploymentTarget, EndpointRequestDto,
    RetentionMode,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreResult;
use crate::util::iso;

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

const ENDPOINT_COLUMNS: &str = "id, slug, org_id, project_id, target, auth_mode, enabled, \
     retention_mode, retention_days, created_at, updated_at";

fn endpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(EndpointRow, String, String, String)> {
    let target: String = r.get(4)?;
    let auth: String = r.get(5)?;
    let retention: String = r.get(7)?;
    let row = EndpointRow {
        id: r.get(0)?,
        slug: r.get(1)?,
        org_id: r.get(2)?,
        project_id: r.get(3)?,
        // Filled in by `parse_endpoint`.
        target: DeploymentTarget::BaseModel { base_model: String::new() },
        auth_mode: AuthMode::FixedApiKey,
        enabled: r.get(6)?,
        retention_mode: RetentionMode::Days,
        retention_days: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    };
    Ok((row, target, auth, retention))
}

fn parse_endpoint(
    (mut row, target, auth, retention): (EndpointRow, String, String, String),
) -> StoreResult<EndpointRow> {
    row.target = serde_json::from_str(&target)?;
    row.auth_mode = AuthMode::parse(&auth).ok_or_else(|| corrupt("auth_mode", &auth))?;
    row.retention_mode =
        RetentionMode::parse(&retention).ok_or_else(|| corrupt("retention_mode", &retention))?;
    Ok(row)
}

fn corrupt(column: &str, value: &str) -> super::StoreError {
    use serde::de::Error;
    super::StoreError::Json(serde_json::Error::custom(format!(
        "unknown {column} {value:?} in the endpoints table"
    )))
}

/// Inserts an endpoint; false when its slug is taken.
pub fn insert_endpoint(conn: &Connection, e: &EndpointRow) -> StoreResult<bool> {
    let taken: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM endpoints WHERE slug = ?1)",
        [&e.slug],
        |r| r.get(0),
    )?;
    if taken {
        return Ok(false);
    }
    conn.execute(
        &format!("INSERT INTO endpoints ({ENDPOINT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
        params![
            e.id,
            e.slug,
            e.org_id,
            e.project_id,
            serde_json::to_string(&e.target)?,
            e.auth_mode.as_str(),
            e.enabled,
            e.retention_mode.as_str(),
            e.retention_days,
            e.created_at,
            e.updated_at
        ],
    )?;
    Ok(true)
}

/// Saves every field but the id, slug, scope and creation time.
pub fn update_endpoint(conn: &Connection, e: &EndpointRow) -> StoreResult<()> {
    conn.execute(
        "UPDATE endpoints SET target = ?2, auth_mode = ?3, enabled = ?4, retention_mode = ?5,
         retention_days = ?6, updated_at = ?7 WHERE id = ?1",
        params![
            e.id,
            serde_json::to_string(&e.target)?,
            e.auth_mode.as_str(),
            e.enabled,
            e.retention_mode.as_str(),
            e.retention_days,
            e.updated_at
        ],
    )?;
    Ok(())
}

/// Deletes an endpoint with its keys and request log.
pub fn delete_endpoint(conn: &Connection, id: &str) -> StoreResult<()> {
    conn.execute("DELETE FROM endpoints WHERE id = ?1", [id])?;
    Ok(())
}

/// The endpoints of a project, oldest first.
pub fn endpoints_of_project(conn: &Connection, project_id: &str) -> StoreResult<Vec<EndpointRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE project_id = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([project_id], endpoint_row)?;
    rows.map(|r| parse_endpoint(r?)).collect()
}

/// An endpoint by id.
pub fn endpoint(conn: &Connection, id: &str) -> StoreResult<Option<EndpointRow>> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?1");
    conn.query_row(&sql, [id], endpoint_row).optional()?.map(parse_endpoint).transpose()
}

/// An endpoint by slug.
pub fn endpoint_by_slug(conn: &Connection, slug: &str) -> StoreResult<Option<EndpointRow>> {
    let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE slug = ?1");
    conn.query_row(&sql, [slug], endpoint_row).optional()?.map(parse_endpoint).transpose()
}

// ---- keys ----

/// Stores a key by its hash (the plaintext never reaches the database).
pub fn insert_key(
    conn: &Connection,
    endpoint_id: &str,
    key: &DeploymentKeyDto,
    hash: &str,
    created_at: i64,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO endpoint_keys (id, endpoint_id, label, prefix, hash, enabled, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
        params![key.id, endpoint_id, key.label, key.prefix, hash, created_at],
    )?;
    Ok(())
}

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeploymentKeyDto> {
    let created: i64 = r.get(4)?;
    let used: Option<i64> = r.get(5)?;
    Ok(DeploymentKeyDto {
        id: r.get(0)?,
        label: r.get(1)?,
        prefix: r.get(2)?,
        enabled: r.get(3)?,
        created_at: iso(created),
        last_used_at: used.map(iso),
    })
}

/// An endpoint's keys, oldest first, revoked ones included.
pub fn keys_of(conn: &Connection, endpoint_id: &str) -> StoreResult<Vec<DeploymentKeyDto>> {
    let mut stmt = conn.prepare(
        "SELECT id, label, prefix, enabled, created_at, last_used_at FROM endpoint_keys
         WHERE endpoint_id = ?1 ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([endpoint_id], key_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes a key; false when the endpoint has no such key.
pub fn revoke_key(conn: &Connection, endpoint_id: &str, key_id: &str) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE endpoint_keys SET enabled = 0 WHERE endpoint_id = ?1 AND id = ?2",
        [endpoint_id, key_id],
    )?;
    Ok(n > 0)
}

/// The enabled key of this endpoint with this hash, marked used now.
pub fn use_key(
    conn: &Connection,
    endpoint_id: &str,
    hash: &str,
    now: i64,
) -> StoreResult<Option<String>> {
    let id: Option<String> = conn
        .query_row(
            "SELECT id FROM endpoint_keys WHERE endpoint_id = ?1 AND hash = ?2 AND enabled = 1",
            [endpoint_id, hash],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = &id {
        conn.execute("UPDATE endpoint_keys SET last_used_at = ?2 WHERE id = ?1", params![id, now])?;
    }
    Ok(id)
}

// ---- request log ----

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

/// Logs a request, then prunes the log by the endpoint's retention (with `days`, rows older
/// than that many days before `log.created_at` go).
pub fn log_request(conn: &Connection, endpoint: &EndpointRow, log: &RequestLog) -> StoreResult<()> {
    let keep_bodies = endpoint.retention_mode != RetentionMode::Disabled;
    conn.execute(
        "INSERT INTO endpoint_requests (endpoint_id, created_at, status, latency_ms, prompt_tokens,
         completion_tokens, key_id, request_body, response_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            endpoint.id,
            log.created_at,
            log.status,
            log.latency_ms as i64,
            log.prompt_tokens.map(|n| n as i64),
            log.completion_tokens.map(|n| n as i64),
            log.key_id,
            log.request_body.as_ref().filter(|_| keep_bodies),
            log.response_body.as_ref().filter(|_| keep_bodies),
        ],
    )?;
    prune_requests(conn, endpoint, log.created_at)
}

/// Applies an endpoint's retention to its log as of `now`: `days` drops older rows,
/// `disabled` drops every stored body.
pub fn prune_requests(conn: &Connection, endpoint: &EndpointRow, now: i64) -> StoreResult<()> {
    match endpoint.retention_mode {
        RetentionMode::Unlimited => {}
        RetentionMode::Disabled => {
            conn.execute(
                "UPDATE endpoint_requests SET request_body = NULL, response_body = NULL
                 WHERE endpoint_id = ?1 AND (request_body IS NOT NULL OR response_body IS NOT NULL)",
                [&endpoint.id],
            )?;
        }
        RetentionMode::Days => {
            let days = i64::from(endpoint.retention_days.unwrap_or(1));
            conn.execute(
                "DELETE FROM endpoint_requests WHERE endpoint_id = ?1 AND created_at < ?2",
                params![endpoint.id, now - days * 86_400_000],
            )?;
        }
    }
    Ok(())
}

/// The newest `limit` requests, newest first.
pub fn requests_of(
    conn: &Connection,
    endpoint_id: &str,
    limit: u32,
) -> StoreResult<Vec<EndpointRequestDto>> {
    let mut stmt = conn.prepare(
        "SELECT id, created_at, status, latency_ms, prompt_tokens, completion_tokens, key_id,
         request_body, response_body FROM endpoint_requests WHERE endpoint_id = ?1
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![endpoint_id, limit], |r| {
        let created: i64 = r.get(1)?;
        let latency: i64 = r.get(3)?;
        let p: Option<i64> = r.get(4)?;
        let c: Option<i64> = r.get(5)?;
        Ok(EndpointRequestDto {
            id: r.get(0)?,
            created_at: iso(created),
            status: r.get(2)?,
            latency_ms: latency.max(0) as u64,
            prompt_tokens: p.map(|n| n.max(0) as u64),
            completion_tokens: c.map(|n| n.max(0) as u64),
            key_id: r.get(6)?,
            request_body: r.get(7)?,
            response_body: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Requests answered without an error that the latency figures look at (the newest ones).
const LATENCY_WINDOW: u32 = 1000;

/// Counts, token totals, latency percentiles and the last use of an endpoint.
pub fn stats_of(conn: &Connection, endpoint_id: &str) -> StoreResult<DeploymentStats> {
    let (requests, errors, prompt, completion, last): (i64, i64, i64, i64, Option<i64>) = conn
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(status >= 400), 0), COALESCE(SUM(prompt_tokens), 0),
             COALESCE(SUM(completion_tokens), 0), MAX(created_at)
             FROM endpoint_requests WHERE endpoint_id = ?1",
            [endpoint_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
    let mut stmt = conn.prepare(
        "SELECT latency_ms FROM endpoint_requests WHERE endpoint_id = ?1 AND status < 400
         ORDER BY id DESC LIMIT ?2",
    )?;
    let mut latencies: Vec<u64> = stmt
        .query_map(params![endpoint_id, LATENCY_WINDOW], |r| r.get::<_, i64>(0))?
        .map(|r| r.map(|v| v.max(0) as u64))
        .collect::<Result<_, _>>()?;
    latencies.sort_unstable();
    Ok(DeploymentStats {
        requests: requests as u64,
        errors: errors as u64,
        p50_latency_ms: percentile(&latencies, 50),
        p95_latency_ms: percentile(&latencies, 95),
        prompt_tokens: prompt as u64,
        completion_tokens: completion as u64,
        last_used_at: last.map(iso),
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use arkor_protocol::endpoint::{AuthMode, DeploymentTarget, RetentionMode};
    use rusqlite::Connection;

    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn retention_prunes_old_rows_and_drops_bodies() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        crate::store::migrate(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO orgs VALUES ('o', 'o', 'o', 0);
             INSERT INTO projects VALUES ('p', 'o', 'p', 'p', 0);",
        )
        .unwrap();
        let mut ep = EndpointRow {
            id: "ep_1".into(),
            slug: "s1".into(),
            org_id: "o".into(),
            project_id: "p".into(),
            target: DeploymentTarget::BaseModel { base_model: "arkor/tiny".into() },
            auth_mode: AuthMode::None,
            enabled: true,
            retention_mode: RetentionMode::Days,
            retention_days: Some(2),
            created_at: 0,
            updated_at: 0,
        };
        assert!(insert_endpoint(&conn, &ep).unwrap());
        assert!(!insert_endpoint(&conn, &EndpointRow { id: "ep_2".into(), ..ep.clone() }).unwrap());
        let now = 1_000 * DAY;
        let log = |at: i64| RequestLog {
            created_at: at,
            status: 200,
            latency_ms: 5,
            request_body: Some("q".into()),
            response_body: Some("a".into()),
            ..RequestLog::default()
        };
        // `days`: rows older than 2 days go when the next request is logged.
        log_request(&conn, &ep, &log(now - 3 * DAY)).unwrap();
        log_request(&conn, &ep, &log(now - DAY)).unwrap();
        assert_eq!(requests_of(&conn, "ep_1", 10).unwrap().len(), 2);
        log_request(&conn, &ep, &log(now)).unwrap();
        let rows = requests_of(&conn, "ep_1", 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.request_body.as_deref() == Some("q")));
        // `disabled`: the stored bodies go at once, new rows come without them.
        ep.retention_mode = RetentionMode::Disabled;
        ep.retention_days = None;
        prune_requests(&conn, &ep, now).unwrap();
        log_request(&conn, &ep, &log(now)).unwrap();
        let rows = requests_of(&conn, "ep_1", 10).unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.request_body.is_none() && r.response_body.is_none()));
        // `unlimited`: nothing goes.
        ep.retention_mode = RetentionMode::Unlimited;
        log_request(&conn, &ep, &log(now - 900 * DAY)).unwrap();
        assert_eq!(requests_of(&conn, "ep_1", 10).unwrap().len(), 4);
        let stats = stats_of(&conn, "ep_1").unwrap();
        assert_eq!((stats.requests, stats.p50_latency_ms), (4, Some(5)));
        // Deleting the endpoint deletes its log.
        delete_endpoint(&conn, "ep_1").unwrap();
        assert_eq!(requests_of(&conn, "ep_1", 10).unwrap().len(), 0);
    }

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
