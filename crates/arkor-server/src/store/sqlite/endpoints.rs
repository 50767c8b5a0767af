//! Endpoints, their API keys and their request log in SQLite.

use arkor_protocol::endpoint::{
    AuthMode, DeploymentKeyDto, DeploymentStats, DeploymentTarget, EndpointRequestDto,
    RetentionMode,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::super::endpoints::{
    ENDPOINT_COLUMNS, EndpointRow, LATENCY_WINDOW, RequestLog, parse_endpoint, percentile,
};
use super::StoreResult;
use crate::util::iso;

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

/// Saves every field but the id, slug, scope and creation time, and applies the (maybe new)
/// retention as of `updated_at`, in one transaction.
pub fn update_endpoint(conn: &mut Connection, e: &EndpointRow) -> StoreResult<()> {
    let tx = conn.transaction()?;
    tx.execute(
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
    prune_requests(&tx, e, e.updated_at)?;
    tx.commit()?;
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

/// Logs a request, then prunes the log by the endpoint's retention (with `days`, rows older
/// than that many days before `log.created_at` go), in one transaction.
pub fn log_request(
    conn: &mut Connection,
    endpoint: &EndpointRow,
    log: &RequestLog,
) -> StoreResult<()> {
    let keep_bodies = endpoint.retention_mode != RetentionMode::Disabled;
    let tx = conn.transaction()?;
    tx.execute(
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
    prune_requests(&tx, endpoint, log.created_at)?;
    tx.commit()?;
    Ok(())
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
