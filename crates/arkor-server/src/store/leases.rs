//! Remote workers and their job leases: the types both backends store and return.
//!
//! The protocol (`arkor worker`, [`crate::remote_worker`]): a worker leases the next queued
//! job ([`super::Store::lease_next`]), which gives it a token only that lease knows and an
//! expiry; heartbeats extend the expiry ([`super::Store::heartbeat`]); its events carry the
//! token and a sequence number ([`super::Store::append_leased`]), so a retried post is
//! dropped and a worker whose lease has ended is refused. A lease that expires is requeued
//! with a backoff, or ended when a cancel was asked or the attempts are used up
//! ([`super::Store::expire_leases`]); the terminal event is written in the same transaction.

use arkor_protocol::event::{EventKind, StoredEvent};
use arkor_protocol::job::Job;

/// A job leased to a worker.
#[derive(Clone, Debug)]
pub struct Lease {
    /// The job, now running.
    pub job: Job,
    /// 1 for the first lease of the job, 2 after one requeue, ...
    pub attempt: u32,
    /// What the worker proves the lease with.
    pub token: String,
}

/// What a lease's settings are.
#[derive(Clone, Copy, Debug)]
pub struct LeaseTerms {
    /// Milliseconds a lease lasts without a heartbeat.
    pub ttl_ms: i64,
    /// Leases a job gets before an expiry fails it.
    pub max_attempts: u32,
    /// Delay before a requeued job is leased again, doubled per attempt.
    pub backoff_ms: i64,
}

/// A worker token's record (the token itself is only ever shown once, at creation).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WorkerRow {
    /// The worker's name, unique.
    pub name: String,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// The last request it authenticated.
    pub last_seen_at: Option<i64>,
}

/// One event of a lease, numbered by the worker from 1.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LeasedEvent {
    /// Rises by one per event of the lease; a number already applied is dropped.
    pub seq: u64,
    /// The event.
    pub event: EventKind,
}

/// The answer to a leased operation.
#[derive(Clone, Debug, PartialEq)]
pub enum LeaseReply<T> {
    /// The lease holds: the result, and whether the job's owner asked to cancel it.
    Held { value: T, cancel: bool },
    /// The lease is not this worker's any more (expired and requeued, job ended, or never).
    Lost,
}

/// What [`super::Store::expire_leases`] did to a job whose lease expired.
#[derive(Clone, Debug)]
pub enum Expired {
    /// Queued again for another worker.
    Requeued { job_id: String, worker: String, attempt: u32 },
    /// Ended (cancelled as asked, or failed after its last attempt) with this event.
    Ended { job_id: String, event: StoredEvent },
}

/// What an expired lease ends its job with: cancelled when a cancel was asked, failed after
/// the last attempt; `None` requeues it.
pub(super) fn expiry_end(
    terms: &LeaseTerms,
    worker: &str,
    attempt: i64,
    cancel_requested: bool,
) -> Option<EventKind> {
    if cancel_requested {
        Some(EventKind::Cancelled { step: None })
    } else if attempt >= i64::from(terms.max_attempts) {
        Some(EventKind::Failed {
            error: lost_worker_error(worker, attempt, terms.max_attempts),
            step: None,
        })
    } else {
        None
    }
}

/// The failure a job gets when its last lease expires.
fn lost_worker_error(worker: &str, attempt: i64, max: u32) -> String {
    format!(
        "worker \"{worker}\" stopped renewing its lease (attempt {attempt} of {max}): the \
         machine or its network went away, or the worker was killed; the job is not retried \
         again. Its uploaded checkpoints are kept; submit the job again to retrain."
    )
}

/// The delay before attempt `attempt + 1` of a requeued job.
pub(super) fn backoff(terms: &LeaseTerms, attempt: i64) -> i64 {
    terms.backoff_ms.saturating_mul(1i64 << attempt.clamp(1, 16).saturating_sub(1))
}
