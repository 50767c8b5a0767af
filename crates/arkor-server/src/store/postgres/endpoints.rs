//! Endpoints, their API keys and their request log in PostgreSQL.

use arkor_protocol::endpoint::{
    DeploymentKeyDto, DeploymentStats, EndpointRequestDto, RetentionMode,
};
use tokio_postgres::GenericClient;

use super::super::endpoints::{
    ENDPOINT_COLUMNS, EndpointRow, LATENCY_WINDOW, RequestLog, parse_endpoint, percentile,
};
use super::{PgStore, StoreResult};
use crate::util::iso;

fn endpoint_row(r: &tokio_postgres::Row) -> StoreResult<EndpointRow> {
    let row = EndpointRow {
        id: r.try_get(0)?,
        slug: r.try_get(1)?,
        org_id: r.try_get(2)?,
        project_id: r.try_get(3)?,
        // Filled in by `parse_endpoint`.
        target: arkor_protocol::endpoint::DeploymentTarget::BaseModel { base_model: String::new() },
        auth_mode: arkor_protocol::endpoint::AuthMode::FixedApiKey,
        enabled: r.try_get(6)?,
        retention_mode: RetentionMode::Days,
        retention_days: r.try_get::<_, Option<i64>>(8)?.map(|d| d.clamp(0, u32::MAX.into()) as u32),
        created_at: r.try_get(9)?,
        updated_at: r.try_get(10)?,
    };
    parse_endpoint((row, r.try_get(4)?, r.try_get(5)?, r.try_get(7)?))
}

/// Applies an endpoint's retention to its log as of `now` (see the SQLite twin).
async fn prune(c: &impl GenericClient, endpoint: &EndpointRow, now: i64) -> StoreResult<()> {
    match endpoint.retention_mode {
        RetentionMode::Unlimited => {}
        RetentionMode::Disabled => {
            c.execute(
                "UPDATE endpoint_requests SET request_body = NULL, response_body = NULL
                 WHERE endpoint_id = $1 AND (request_body IS NOT NULL OR response_body IS NOT NULL)",
                &[&endpoint.id],
            )
            .await?;
        }
        RetentionMode::Days => {
            let days = i64::from(endpoint.retention_days.unwrap_or(1));
            c.execute(
                "DELETE FROM endpoint_requests WHERE endpoint_id = $1 AND created_at < $2",
                &[&endpoint.id, &(now - days * 86_400_000)],
            )
            .await?;
        }
    }
    Ok(())
}

impl PgStore {
    pub(in crate::store) async fn insert_endpoint(&self, e: &EndpointRow) -> StoreResult<bool> {
        let n = self
            .client()
            .await?
            .execute(
                &format!(
                    "INSERT INTO endpoints ({ENDPOINT_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (slug) DO NOTHING"
                ),
                &[
                    &e.id,
                    &e.slug,
                    &e.org_id,
                    &e.project_id,
                    &serde_json::to_string(&e.target)?,
                    &e.auth_mode.as_str(),
                    &e.enabled,
                    &e.retention_mode.as_str(),
                    &e.retention_days.map(i64::from),
                    &e.created_at,
                    &e.updated_at,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    pub(in crate::store) async fn update_endpoint(&self, e: &EndpointRow) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "UPDATE endpoints SET target = $2, auth_mode = $3, enabled = $4, retention_mode = $5,
             retention_days = $6, updated_at = $7 WHERE id = $1",
            &[
                &e.id,
                &serde_json::to_string(&e.target)?,
                &e.auth_mode.as_str(),
                &e.enabled,
                &e.retention_mode.as_str(),
                &e.retention_days.map(i64::from),
                &e.updated_at,
            ],
        )
        .await?;
        prune(&*tx, e, e.updated_at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn prune_requests(
        &self,
        e: &EndpointRow,
        now: i64,
    ) -> StoreResult<()> {
        prune(&**self.client().await?, e, now).await
    }

    pub(in crate::store) async fn delete_endpoint(&self, id: &str) -> StoreResult<()> {
        self.client().await?.execute("DELETE FROM endpoints WHERE id = $1", &[&id]).await?;
        Ok(())
    }

    pub(in crate::store) async fn endpoints_of_project(
        &self,
        project_id: &str,
    ) -> StoreResult<Vec<EndpointRow>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE project_id = $1 ORDER BY created_at, id"
        );
        let rows = self.client().await?.query(&sql, &[&project_id]).await?;
        rows.iter().map(endpoint_row).collect()
    }

    pub(in crate::store) async fn endpoint(&self, id: &str) -> StoreResult<Option<EndpointRow>> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = $1");
        let row = self.client().await?.query_opt(&sql, &[&id]).await?;
        row.as_ref().map(endpoint_row).transpose()
    }

    pub(in crate::store) async fn endpoint_by_slug(
        &self,
        slug: &str,
    ) -> StoreResult<Option<EndpointRow>> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE slug = $1");
        let row = self.client().await?.query_opt(&sql, &[&slug]).await?;
        row.as_ref().map(endpoint_row).transpose()
    }

    // ---- keys ----

    pub(in crate::store) async fn insert_key(
        &self,
        endpoint_id: &str,
        key: &DeploymentKeyDto,
        hash: &str,
        created_at: i64,
    ) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO endpoint_keys (id, endpoint_id, label, prefix, hash, enabled, created_at)
                 VALUES ($1, $2, $3, $4, $5, TRUE, $6)",
                &[&key.id, &endpoint_id, &key.label, &key.prefix, &hash, &created_at],
            )
            .await?;
        Ok(())
    }

    pub(in crate::store) async fn keys_of(
        &self,
        endpoint_id: &str,
    ) -> StoreResult<Vec<DeploymentKeyDto>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, label, prefix, enabled, created_at, last_used_at FROM endpoint_keys
                 WHERE endpoint_id = $1 ORDER BY created_at, id",
                &[&endpoint_id],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(DeploymentKeyDto {
                id: r.try_get(0)?,
                label: r.try_get(1)?,
                prefix: r.try_get(2)?,
                enabled: r.try_get(3)?,
                created_at: iso(r.try_get(4)?),
                last_used_at: r.try_get::<_, Option<i64>>(5)?.map(iso),
            });
        }
        Ok(out)
    }

    pub(in crate::store) async fn revoke_key(
        &self,
        endpoint_id: &str,
        key_id: &str,
    ) -> StoreResult<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE endpoint_keys SET enabled = FALSE WHERE endpoint_id = $1 AND id = $2",
                &[&endpoint_id, &key_id],
            )
            .await?;
        Ok(n > 0)
    }

    pub(in crate::store) async fn use_key(
        &self,
        endpoint_id: &str,
        hash: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE endpoint_keys SET last_used_at = $3
                 WHERE endpoint_id = $1 AND hash = $2 AND enabled RETURNING id",
                &[&endpoint_id, &hash, &now],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    // ---- request log ----

    pub(in crate::store) async fn log_request(
        &self,
        endpoint: &EndpointRow,
        log: &RequestLog,
    ) -> StoreResult<()> {
        let keep_bodies = endpoint.retention_mode != RetentionMode::Disabled;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO endpoint_requests (endpoint_id, created_at, status, latency_ms,
             prompt_tokens, completion_tokens, key_id, request_body, response_body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &endpoint.id,
                &log.created_at,
                &i64::from(log.status),
                &(log.latency_ms as i64),
                &log.prompt_tokens.map(|n| n as i64),
                &log.completion_tokens.map(|n| n as i64),
                &log.key_id,
                &log.request_body.as_ref().filter(|_| keep_bodies),
                &log.response_body.as_ref().filter(|_| keep_bodies),
            ],
        )
        .await?;
        prune(&*tx, endpoint, log.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(in crate::store) async fn requests_of(
        &self,
        endpoint_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<EndpointRequestDto>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, created_at, status, latency_ms, prompt_tokens, completion_tokens,
                 key_id, request_body, response_body FROM endpoint_requests WHERE endpoint_id = $1
                 ORDER BY id DESC LIMIT $2",
                &[&endpoint_id, &i64::from(limit)],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let count = |v: Option<i64>| v.map(|n| n.max(0) as u64);
            out.push(EndpointRequestDto {
                id: r.try_get(0)?,
                created_at: iso(r.try_get(1)?),
                status: r.try_get::<_, i64>(2)?.clamp(0, u16::MAX.into()) as u16,
                latency_ms: r.try_get::<_, i64>(3)?.max(0) as u64,
                prompt_tokens: count(r.try_get(4)?),
                completion_tokens: count(r.try_get(5)?),
                key_id: r.try_get(6)?,
                request_body: r.try_get(7)?,
                response_body: r.try_get(8)?,
            });
        }
        Ok(out)
    }

    pub(in crate::store) async fn stats_of(
        &self,
        endpoint_id: &str,
    ) -> StoreResult<DeploymentStats> {
        let client = self.client().await?;
        // SUM over BIGINT is NUMERIC in PostgreSQL; the casts keep every column an i64.
        let r = client
            .query_one(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0)::BIGINT,
                 COALESCE(SUM(prompt_tokens), 0)::BIGINT, COALESCE(SUM(completion_tokens), 0)::BIGINT,
                 MAX(created_at) FROM endpoint_requests WHERE endpoint_id = $1",
                &[&endpoint_id],
            )
            .await?;
        let (requests, errors, prompt, completion): (i64, i64, i64, i64) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        let last: Option<i64> = r.try_get(4)?;
        let rows = client
            .query(
                "SELECT latency_ms FROM endpoint_requests WHERE endpoint_id = $1 AND status < 400
                 ORDER BY id DESC LIMIT $2",
                &[&endpoint_id, &i64::from(LATENCY_WINDOW)],
            )
            .await?;
        let mut latencies: Vec<u64> = rows
            .iter()
            .map(|r| r.try_get::<_, i64>(0).map(|v| v.max(0) as u64))
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
}
