//! Remote workers and leases on SQLite: each operation is one immediate transaction (SQLite
//! has one writer, so a lease is taken by exactly one caller).

use arkor_protocol::event::StoredEvent;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::super::leases::{
    Expired, Lease, LeaseReply, LeaseTerms, LeasedEvent, WorkerRow, backoff, expiry_end,
};
use super::{apply_event, job, next_queued};
use crate::store::StoreResult;
use crate::util::{now_ms, random_hex};

pub fn insert_worker(conn: &mut Connection, name: &str, token_hash: &str) -> StoreResult<bool> {
    let n = conn.execute(
        "INSERT INTO workers (name, token_hash, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        params![name, token_hash, now_ms()],
    )?;
    Ok(n == 1)
}

pub fn workers(conn: &mut Connection) -> StoreResult<Vec<WorkerRow>> {
    let mut stmt = conn.prepare(
        "SELECT name, created_at, revoked_at, last_seen_at FROM workers ORDER BY created_at, name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(WorkerRow {
            name: r.get(0)?,
            created_at: r.get(1)?,
            revoked_at: r.get(2)?,
            last_seen_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn revoke_worker(conn: &mut Connection, name: &str) -> StoreResult<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    let n = tx.execute(
        "UPDATE workers SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
        params![name, now],
    )?;
    tx.execute(
        "UPDATE jobs SET lease_expires_at = ?2 WHERE status = 'running' AND lease_owner = ?1",
        params![name, now - 1],
    )?;
    tx.commit()?;
    Ok(n == 1)
}

pub fn worker_by_token(conn: &mut Connection, token_hash: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row(
            "UPDATE workers SET last_seen_at = ?2 WHERE token_hash = ?1 AND revoked_at IS NULL
             RETURNING name",
            params![token_hash, now_ms()],
            |r| r.get(0),
        )
        .optional()?)
}

pub fn lease_next(
    conn: &mut Connection,
    worker: &str,
    labels: &str,
    terms: LeaseTerms,
) -> StoreResult<Option<Lease>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(next) = next_queued(&tx, labels)? else { return Ok(None) };
    let token = random_hex(16);
    let now = now_ms();
    let attempt: i64 = tx.query_row(
        "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?2),
             attempt = attempt + 1, lease_owner = ?3, lease_token = ?4,
             lease_expires_at = ?5, lease_seq = 0
         WHERE id = ?1 AND status = 'queued' RETURNING attempt",
        params![next.id, now, worker, token, now + terms.ttl_ms],
        |r| r.get(0),
    )?;
    let leased = job(&tx, &next.id)?;
    tx.commit()?;
    Ok(leased.map(|job| Lease { job, attempt: attempt as u32, token }))
}

/// `(lease_seq, cancel_requested)` when `token` holds the running job's lease.
fn held(conn: &Connection, job_id: &str, token: &str) -> StoreResult<Option<(i64, bool)>> {
    Ok(conn
        .query_row(
            "SELECT lease_seq, cancel_requested FROM jobs
             WHERE id = ?1 AND status = 'running' AND lease_token = ?2",
            params![job_id, token],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)),
        )
        .optional()?)
}

pub fn heartbeat(
    conn: &mut Connection,
    job_id: &str,
    token: &str,
    terms: LeaseTerms,
) -> StoreResult<LeaseReply<()>> {
    let cancel: Option<i64> = conn
        .query_row(
            "UPDATE jobs SET lease_expires_at = ?3
             WHERE id = ?1 AND status = 'running' AND lease_token = ?2
             RETURNING cancel_requested",
            params![job_id, token, now_ms() + terms.ttl_ms],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match cancel {
        Some(c) => LeaseReply::Held { value: (), cancel: c != 0 },
        None => LeaseReply::Lost,
    })
}

pub fn check_lease(
    conn: &mut Connection,
    job_id: &str,
    token: &str,
) -> StoreResult<LeaseReply<()>> {
    Ok(match held(conn, job_id, token)? {
        Some((_, cancel)) => LeaseReply::Held { value: (), cancel },
        None => LeaseReply::Lost,
    })
}

pub fn append_leased(
    conn: &mut Connection,
    job_id: &str,
    token: &str,
    events: &[LeasedEvent],
) -> StoreResult<LeaseReply<Vec<StoredEvent>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some((mut last, cancel)) = held(&tx, job_id, token)? else { return Ok(LeaseReply::Lost) };
    let mut stored = vec![];
    for e in events {
        if e.seq as i64 <= last {
            continue;
        }
        stored.push(apply_event(&tx, job_id, &e.event)?);
        last = e.seq as i64;
        if e.event.is_terminal() {
            break;
        }
    }
    tx.execute("UPDATE jobs SET lease_seq = ?2 WHERE id = ?1", params![job_id, last])?;
    tx.commit()?;
    Ok(LeaseReply::Held { value: stored, cancel })
}

pub fn release_lease(conn: &mut Connection, job_id: &str, token: &str) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_token = NULL,
             lease_expires_at = NULL, lease_seq = 0, attempt = attempt - 1, run_after = 0,
             step = 0, loss = NULL
         WHERE id = ?1 AND status = 'running' AND lease_token = ?2 AND cancel_requested = 0",
        params![job_id, token],
    )?;
    Ok(n == 1)
}

pub fn request_cancel(conn: &mut Connection, job_id: &str) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE jobs SET cancel_requested = 1
         WHERE id = ?1 AND status = 'running' AND lease_token IS NOT NULL",
        [job_id],
    )?;
    Ok(n == 1)
}

pub fn unleased_running(conn: &mut Connection) -> StoreResult<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT id FROM jobs WHERE status = 'running' AND lease_token IS NULL ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn expire_leases(conn: &mut Connection, terms: LeaseTerms) -> StoreResult<Vec<Expired>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    let expired: Vec<(String, String, i64, bool)> = {
        let mut stmt = tx.prepare(
            "SELECT id, lease_owner, attempt, cancel_requested FROM jobs
             WHERE status = 'running' AND lease_token IS NOT NULL AND lease_expires_at < ?1
             ORDER BY seq",
        )?;
        let rows = stmt.query_map([now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let mut out = vec![];
    for (job_id, worker, attempt, cancel) in expired {
        let end = expiry_end(&terms, &worker, attempt, cancel);
        match end {
            Some(kind) => {
                let event = apply_event(&tx, &job_id, &kind)?;
                out.push(Expired::Ended { job_id, event });
            }
            None => {
                tx.execute(
                    "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_token = NULL,
                         lease_expires_at = NULL, lease_seq = 0, run_after = ?2, step = 0,
                         loss = NULL
                     WHERE id = ?1",
                    params![job_id, now + backoff(&terms, attempt)],
                )?;
                out.push(Expired::Requeued { job_id, worker, attempt: attempt as u32 });
            }
        }
    }
    tx.commit()?;
    Ok(out)
}
