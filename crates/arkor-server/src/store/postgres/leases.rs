//! Remote workers and leases on PostgreSQL: a lease is taken with `FOR UPDATE SKIP LOCKED`,
//! so backends sharing the database hand each job to one worker; the reaper skips rows
//! another backend's reaper holds.

use arkor_protocol::event::StoredEvent;

use super::super::leases::{
    Expired, Lease, LeaseReply, LeaseTerms, LeasedEvent, WorkerRow, backoff, expiry_end,
};
use super::{PgStore, apply_event, job_by_id};
use crate::store::{QUEUE_ORDER, StoreResult};
use crate::util::{now_ms, random_hex};

impl PgStore {
    pub(in crate::store) async fn insert_worker(
        &self,
        name: &str,
        token_hash: &str,
    ) -> StoreResult<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "INSERT INTO workers (name, token_hash, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&name, &token_hash, &now_ms()],
            )
            .await?;
        Ok(n == 1)
    }

    pub(in crate::store) async fn workers(&self) -> StoreResult<Vec<WorkerRow>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT name, created_at, revoked_at, last_seen_at FROM workers
                 ORDER BY created_at, name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| WorkerRow {
                name: r.get(0),
                created_at: r.get(1),
                revoked_at: r.get(2),
                last_seen_at: r.get(3),
            })
            .collect())
    }

    pub(in crate::store) async fn revoke_worker(&self, name: &str) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = now_ms();
        let n = tx
            .execute(
                "UPDATE workers SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &now],
            )
            .await?;
        tx.execute(
            "UPDATE jobs SET lease_expires_at = $2 WHERE status = 'running' AND lease_owner = $1",
            &[&name, &(now - 1)],
        )
        .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    pub(in crate::store) async fn worker_by_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<String>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE workers SET last_seen_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL
                 RETURNING name",
                &[&token_hash, &now_ms()],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(in crate::store) async fn lease_next(
        &self,
        worker: &str,
        labels: &str,
        terms: LeaseTerms,
    ) -> StoreResult<Option<Lease>> {
        let client = self.client().await?;
        let token = random_hex(16);
        let now = now_ms();
        let sql = format!(
            "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, $1),
                 attempt = attempt + 1, lease_owner = $2, lease_token = $3,
                 lease_expires_at = $4, lease_seq = 0
             WHERE seq = (
                SELECT seq FROM jobs WHERE status = 'queued' AND run_after <= $1
                AND labels::jsonb <@ $5::text::jsonb
                ORDER BY {QUEUE_ORDER} LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING id, attempt"
        );
        let row = client
            .query_opt(&sql, &[&now, &worker, &token, &(now + terms.ttl_ms), &labels])
            .await?;
        let Some(row) = row else { return Ok(None) };
        let (id, attempt): (String, i64) = (row.get(0), row.get(1));
        let job = job_by_id(&client, &id).await?;
        Ok(job.map(|job| Lease { job, attempt: attempt as u32, token }))
    }

    pub(in crate::store) async fn heartbeat(
        &self,
        job_id: &str,
        token: &str,
        terms: LeaseTerms,
    ) -> StoreResult<LeaseReply<()>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE jobs SET lease_expires_at = $3
                 WHERE id = $1 AND status = 'running' AND lease_token = $2
                 RETURNING cancel_requested",
                &[&job_id, &token, &(now_ms() + terms.ttl_ms)],
            )
            .await?;
        Ok(match row {
            Some(r) => LeaseReply::Held { value: (), cancel: r.get(0) },
            None => LeaseReply::Lost,
        })
    }

    pub(in crate::store) async fn check_lease(
        &self,
        job_id: &str,
        token: &str,
    ) -> StoreResult<LeaseReply<()>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT cancel_requested FROM jobs
                 WHERE id = $1 AND status = 'running' AND lease_token = $2",
                &[&job_id, &token],
            )
            .await?;
        Ok(match row {
            Some(r) => LeaseReply::Held { value: (), cancel: r.get(0) },
            None => LeaseReply::Lost,
        })
    }

    pub(in crate::store) async fn append_leased(
        &self,
        job_id: &str,
        token: &str,
        events: &[LeasedEvent],
    ) -> StoreResult<LeaseReply<Vec<StoredEvent>>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "SELECT lease_seq, cancel_requested FROM jobs
                 WHERE id = $1 AND status = 'running' AND lease_token = $2 FOR UPDATE",
                &[&job_id, &token],
            )
            .await?;
        let Some(row) = row else { return Ok(LeaseReply::Lost) };
        let (mut last, cancel): (i64, bool) = (row.get(0), row.get(1));
        let mut stored = vec![];
        for e in events {
            if e.seq as i64 <= last {
                continue;
            }
            stored.push(apply_event(&tx, job_id, &e.event).await?);
            last = e.seq as i64;
            if e.event.is_terminal() {
                break;
            }
        }
        tx.execute("UPDATE jobs SET lease_seq = $2 WHERE id = $1", &[&job_id, &last]).await?;
        tx.commit().await?;
        Ok(LeaseReply::Held { value: stored, cancel })
    }

    pub(in crate::store) async fn release_lease(
        &self,
        job_id: &str,
        token: &str,
    ) -> StoreResult<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_token = NULL,
                     lease_expires_at = NULL, lease_seq = 0, attempt = attempt - 1,
                     run_after = 0, step = 0, loss = NULL
                 WHERE id = $1 AND status = 'running' AND lease_token = $2
                     AND NOT cancel_requested",
                &[&job_id, &token],
            )
            .await?;
        Ok(n == 1)
    }

    pub(in crate::store) async fn request_cancel(&self, job_id: &str) -> StoreResult<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE jobs SET cancel_requested = TRUE
                 WHERE id = $1 AND status = 'running' AND lease_token IS NOT NULL",
                &[&job_id],
            )
            .await?;
        Ok(n == 1)
    }

    pub(in crate::store) async fn unleased_running(&self) -> StoreResult<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id FROM jobs WHERE status = 'running' AND lease_token IS NULL ORDER BY seq",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(in crate::store) async fn expire_leases(
        &self,
        terms: LeaseTerms,
    ) -> StoreResult<Vec<Expired>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = now_ms();
        let rows = tx
            .query(
                "SELECT id, lease_owner, attempt, cancel_requested FROM jobs
                 WHERE status = 'running' AND lease_token IS NOT NULL AND lease_expires_at < $1
                 ORDER BY seq FOR UPDATE SKIP LOCKED",
                &[&now],
            )
            .await?;
        let mut out = vec![];
        for r in rows {
            let (job_id, worker, attempt, cancel): (String, String, i64, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let end = expiry_end(&terms, &worker, attempt, cancel);
            match end {
                Some(kind) => {
                    let event = apply_event(&tx, &job_id, &kind).await?;
                    out.push(Expired::Ended { job_id, event });
                }
                None => {
                    tx.execute(
                        "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_token = NULL,
                             lease_expires_at = NULL, lease_seq = 0, run_after = $2, step = 0,
                             loss = NULL
                         WHERE id = $1",
                        &[&job_id, &(now + backoff(&terms, attempt))],
                    )
                    .await?;
                    out.push(Expired::Requeued { job_id, worker, attempt: attempt as u32 });
                }
            }
        }
        tx.commit().await?;
        Ok(out)
    }
}
