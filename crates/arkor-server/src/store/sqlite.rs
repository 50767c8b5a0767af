//! The SQLite backend: today's single-node store, a file in the data directory.
//!
//! One connection behind a mutex, used from blocking tasks ([`SqliteStore::call`]); WAL mode
//! so readers of the file (backups, `sqlite3`) never block the backend. The functions here
//! take the connection; [`super::Store`] runs them on a blocking thread. Multi-statement
//! operations run in one transaction.

use std::path::Path;
use std::sync::{Arc, Mutex};

use arkor_protocol::auth::{Org, Project, User};
use arkor_protocol::event::{EventKind, JobEvent, StoredEvent};
use arkor_protocol::job::{Job, JobConfig, JobProgress, JobStatus};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::migrations::MIGRATIONS;
use super::{JOB_COLUMNS, JobPage, JobQuery, QUEUE_ORDER, StoreError, StoreResult};
use crate::util::{iso, now_ms};

mod endpoints;
mod leases;
pub use endpoints::*;
pub use leases::*;

/// The SQLite database; cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&conn)?;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)) })
    }

    /// A private in-memory database (tests).
    #[cfg(test)]
    pub fn open_in_memory() -> StoreResult<SqliteStore> {
        let conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&conn)?;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }
}

/// Applies the migrations `PRAGMA user_version` says are missing, each in a transaction.
pub(super) fn migrate(conn: &Connection) -> StoreResult<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let sql = m.sqlite;
        conn.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1))?;
    }
    Ok(())
}

// ---- identities ----

/// Creates an anonymous user with a personal organisation and a token (stored hashed).
pub fn create_anonymous(
    conn: &mut Connection,
    user_id: &str,
    anonymous_id: &str,
    org: &Org,
    token_hash: &str,
) -> StoreResult<()> {
    let tx = conn.transaction()?;
    let now = now_ms();
    tx.execute(
        "INSERT INTO users (id, anonymous_id, kind, created_at) VALUES (?1, ?2, 'anonymous', ?3)",
        params![user_id, anonymous_id, now],
    )?;
    tx.execute(
        "INSERT INTO orgs (id, slug, name, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![org.id, org.slug, org.name, now],
    )?;
    tx.execute(
        "INSERT INTO memberships (user_id, org_id) VALUES (?1, ?2)",
        params![user_id, org.id],
    )?;
    tx.execute(
        "INSERT INTO tokens (hash, user_id, created_at) VALUES (?1, ?2, ?3)",
        params![token_hash, user_id, now],
    )?;
    tx.commit()?;
    Ok(())
}

/// The user a token hash belongs to.
pub fn user_by_token(conn: &Connection, token_hash: &str) -> StoreResult<Option<User>> {
    Ok(conn
        .query_row(
            "SELECT u.id, u.anonymous_id, u.kind FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.hash = ?1",
            [token_hash],
            |r| Ok(User { id: r.get(0)?, anonymous_id: r.get(1)?, kind: r.get(2)? }),
        )
        .optional()?)
}

/// Organisations of a user.
pub fn orgs_of(conn: &Connection, user_id: &str) -> StoreResult<Vec<Org>> {
    let mut stmt = conn.prepare(
        "SELECT o.id, o.slug, o.name FROM orgs o JOIN memberships m ON m.org_id = o.id
         WHERE m.user_id = ?1 ORDER BY o.created_at",
    )?;
    let rows =
        stmt.query_map([user_id], |r| Ok(Org { id: r.get(0)?, slug: r.get(1)?, name: r.get(2)? }))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The organisation `slug` if `user_id` is a member.
pub fn member_org(conn: &Connection, user_id: &str, slug: &str) -> StoreResult<Option<Org>> {
    Ok(conn
        .query_row(
            "SELECT o.id, o.slug, o.name FROM orgs o JOIN memberships m ON m.org_id = o.id
             WHERE m.user_id = ?1 AND o.slug = ?2",
            [user_id, slug],
            |r| Ok(Org { id: r.get(0)?, slug: r.get(1)?, name: r.get(2)? }),
        )
        .optional()?)
}

// ---- projects ----

/// Projects of an organisation, oldest first.
pub fn projects(conn: &Connection, org_id: &str) -> StoreResult<Vec<Project>> {
    let mut stmt = conn.prepare(
        "SELECT id, slug, name, org_id FROM projects WHERE org_id = ?1 ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([org_id], project_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A project by slug.
pub fn project(conn: &Connection, org_id: &str, slug: &str) -> StoreResult<Option<Project>> {
    Ok(conn
        .query_row(
            "SELECT id, slug, name, org_id FROM projects WHERE org_id = ?1 AND slug = ?2",
            [org_id, slug],
            project_row,
        )
        .optional()?)
}

/// Inserts a project; `Ok(false)` when the slug is taken.
pub fn insert_project(conn: &Connection, p: &Project) -> StoreResult<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO projects (id, org_id, slug, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![p.id, p.org_id, p.slug, p.name, now_ms()],
    )?;
    Ok(n == 1)
}

fn project_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project { id: r.get(0)?, slug: r.get(1)?, name: r.get(2)?, org_id: r.get(3)? })
}

// ---- jobs ----

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Result<Job, serde_json::Error>)> {
    let status: String = r.get(5)?;
    let config: String = r.get(6)?;
    let seq: i64 = r.get(0)?;
    let opt_iso = |v: Option<i64>| v.map(iso);
    let job = serde_json::from_str::<JobConfig>(&config).map(|config| Job {
        id: r.get(1).unwrap_or_default(),
        org_id: r.get(2).unwrap_or_default(),
        project_id: r.get(3).unwrap_or_default(),
        name: r.get(4).unwrap_or_default(),
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        config,
        error: r.get(7).unwrap_or_default(),
        created_at: iso(r.get(8).unwrap_or_default()),
        started_at: opt_iso(r.get(9).unwrap_or_default()),
        completed_at: opt_iso(r.get(10).unwrap_or_default()),
        progress: JobProgress {
            step: r.get::<_, i64>(11).unwrap_or_default() as u64,
            total_steps: r.get::<_, i64>(12).unwrap_or_default() as u64,
            loss: r.get(13).unwrap_or_default(),
        },
        queue_position: r.get::<_, Option<i64>>(14).unwrap_or_default().map(|p| p as u64),
        worker: r.get(15).unwrap_or_default(),
        attempt: r.get::<_, i64>(16).ok().filter(|a| *a > 0).map(|a| a as u32),
    });
    Ok((seq, job))
}

/// Inserts a queued job and reads it back as stored.
pub fn insert_job(conn: &Connection, job: &Job) -> StoreResult<Job> {
    conn.execute(
        "INSERT INTO jobs (id, org_id, project_id, name, status, config, created_at, labels)
         VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7)",
        params![
            job.id,
            job.org_id,
            job.project_id,
            job.name,
            serde_json::to_string(&job.config)?,
            now_ms(),
            crate::jobconfig::labels_json(&job.config.worker_labels),
        ],
    )?;
    Ok(self::job(conn, &job.id)?.unwrap_or_else(|| job.clone()))
}

/// A job inside a project.
pub fn job_in_project(conn: &Connection, project_id: &str, id: &str) -> StoreResult<Option<Job>> {
    let row = conn
        .query_row(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1 AND project_id = ?2"),
            [id, project_id],
            job_row,
        )
        .optional()?;
    Ok(row.map(|(_, j)| j).transpose()?)
}

/// A job by id, whatever its scope (internal use).
pub fn job(conn: &Connection, id: &str) -> StoreResult<Option<Job>> {
    let row = conn
        .query_row(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"), [id], job_row)
        .optional()?;
    Ok(row.map(|(_, j)| j).transpose()?)
}

/// Jobs of a project, newest first, filtered and paged.
pub fn list_jobs(conn: &Connection, project_id: &str, q: &JobQuery) -> StoreResult<JobPage> {
    let mut filter = String::from("project_id = ?1");
    let mut args: Vec<rusqlite::types::Value> = vec![project_id.to_owned().into()];
    if !q.statuses.is_empty() {
        let marks: Vec<String> = q
            .statuses
            .iter()
            .map(|s| {
                args.push(s.as_str().to_owned().into());
                format!("?{}", args.len())
            })
            .collect();
        filter += &format!(" AND status IN ({})", marks.join(", "));
    }
    if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
        let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        args.push(format!("%{escaped}%").into());
        let name = args.len();
        args.push(format!("{escaped}%").into());
        filter +=
            &format!(" AND (name LIKE ?{name} ESCAPE '\\' OR id LIKE ?{} ESCAPE '\\')", args.len());
    }
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM jobs WHERE {filter}"),
        rusqlite::params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    if let Some(before) = q.before_seq {
        args.push(before.into());
        filter += &format!(" AND seq < ?{}", args.len());
    }
    args.push(i64::from(q.limit + 1).into());
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE {filter} ORDER BY seq DESC LIMIT ?{}",
        args.len()
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows: Vec<(i64, Result<Job, serde_json::Error>)> = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), job_row)?
        .collect::<Result<_, _>>()?;
    let more = rows.len() > q.limit as usize;
    let mut jobs = Vec::with_capacity(rows.len());
    let mut last_seq = None;
    for (seq, job) in rows.into_iter().take(q.limit as usize) {
        jobs.push(job?);
        last_seq = Some(seq);
    }
    Ok(JobPage { jobs, next_before_seq: if more { last_seq } else { None }, total: total as u64 })
}

/// Completed and running jobs of the given organisations, newest first (for `/v1/models`).
pub fn jobs_of_orgs(conn: &Connection, org_ids: &[String]) -> StoreResult<Vec<Job>> {
    let mut out = vec![];
    let mut stmt = conn.prepare(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE org_id = ?1 AND status IN ('completed', 'running', \
         'cancelled', 'failed') ORDER BY seq DESC LIMIT 500"
    ))?;
    for org in org_ids {
        for row in stmt.query_map([org], job_row)? {
            out.push(row?.1?);
        }
    }
    Ok(out)
}

/// Takes the queued job to start next (first in [`QUEUE_ORDER`]) and marks it running, in
/// one immediate transaction, so two callers never take the same job.
pub fn claim_next(conn: &mut Connection) -> StoreResult<Option<Job>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(next) = next_queued(&tx, "[]")? else { return Ok(None) };
    if !mark_running(&tx, &next.id)? {
        return Ok(None);
    }
    let claimed = job(&tx, &next.id)?;
    tx.commit()?;
    Ok(claimed)
}

/// The queued job to start next (first in [`QUEUE_ORDER`]), if any.
///
/// Only jobs whose labels are all in `labels` (a JSON array; `[]` for the backend's own
/// queue, which takes only unlabelled jobs).
pub(super) fn next_queued(conn: &Connection, labels: &str) -> StoreResult<Option<Job>> {
    let row = conn
        .query_row(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'queued' AND run_after <= ?1
                 AND NOT EXISTS (SELECT 1 FROM json_each(jobs.labels) AS l
                     WHERE l.value NOT IN (SELECT value FROM json_each(?2)))
                 ORDER BY {QUEUE_ORDER} LIMIT 1"
            ),
            params![now_ms(), labels],
            job_row,
        )
        .optional()?;
    Ok(row.map(|(_, j)| j).transpose()?)
}

/// Moves a queued job to the front of the queue: a priority above every queued job's, so
/// [`claim_next`] takes it next. `Ok(false)` when the job is not queued (any more).
pub fn move_to_front(conn: &Connection, id: &str) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE jobs SET priority = (SELECT COALESCE(MAX(priority), 0) + 1 FROM jobs
         WHERE status = 'queued') WHERE id = ?1 AND status = 'queued'",
        [id],
    )?;
    Ok(n == 1)
}

/// Ids of jobs in a status.
pub fn job_ids_with_status(conn: &Connection, status: JobStatus) -> StoreResult<Vec<String>> {
    let mut stmt = conn.prepare("SELECT id FROM jobs WHERE status = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([status.as_str()], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Moves a queued job to running.
fn mark_running(conn: &Connection, id: &str) -> StoreResult<bool> {
    let n = conn.execute(
        "UPDATE jobs SET status = 'running', started_at = ?2 WHERE id = ?1 AND status = 'queued'",
        params![id, now_ms()],
    )?;
    Ok(n == 1)
}

/// Persists an event (and its effect on the job row) in one transaction; returns the
/// event's id. A job already terminal takes no further terminal event (`None`).
pub fn append_event(
    conn: &mut Connection,
    job_id: &str,
    kind: &EventKind,
) -> StoreResult<Option<StoredEvent>> {
    let tx = conn.transaction()?;
    let status: Option<String> =
        tx.query_row("SELECT status FROM jobs WHERE id = ?1", [job_id], |r| r.get(0)).optional()?;
    let Some(status) = status.and_then(|s| JobStatus::parse(&s)) else { return Ok(None) };
    if status.is_terminal() {
        return Ok(None);
    }
    let event = apply_event(&tx, job_id, kind)?;
    tx.commit()?;
    Ok(Some(event))
}

/// Inserts an event and applies it to the job row, inside the caller's transaction (which
/// has checked that the job takes it).
pub(super) fn apply_event(
    tx: &Connection,
    job_id: &str,
    kind: &EventKind,
) -> StoreResult<StoredEvent> {
    let now = now_ms();
    let event = JobEvent { job_id: job_id.to_owned(), timestamp: iso(now), kind: kind.clone() };
    let data = serde_json::to_string(&event)?;
    tx.execute(
        "INSERT INTO job_events (job_id, type, data, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![job_id, kind.name(), data, now],
    )?;
    let id = tx.last_insert_rowid();
    match kind {
        EventKind::Started { metadata } => {
            let total = metadata.as_ref().map_or(0, |m| m.total_steps as i64);
            let start = metadata.as_ref().map_or(0, |m| m.start_step as i64);
            tx.execute(
                "UPDATE jobs SET status = 'running', total_steps = ?2, step = ?3,
                 started_at = COALESCE(started_at, ?4) WHERE id = ?1",
                params![job_id, total, start, now],
            )?;
        }
        EventKind::Log { step, loss, .. } => {
            tx.execute(
                "UPDATE jobs SET step = MAX(step, ?2), loss = COALESCE(?3, loss) WHERE id = ?1",
                params![job_id, *step as i64, loss],
            )?;
        }
        EventKind::CheckpointSaved { .. } => {}
        EventKind::Completed { metrics, .. } => {
            let step = metrics.as_ref().map(|m| m.step as i64);
            tx.execute(
                "UPDATE jobs SET status = 'completed', completed_at = ?2, step = COALESCE(?3, step)
                 WHERE id = ?1",
                params![job_id, now, step],
            )?;
        }
        EventKind::Failed { error, .. } => {
            tx.execute(
                "UPDATE jobs SET status = 'failed', completed_at = ?2, error = ?3 WHERE id = ?1",
                params![job_id, now, error],
            )?;
        }
        EventKind::Cancelled { .. } => {
            tx.execute(
                "UPDATE jobs SET status = 'cancelled', completed_at = ?2 WHERE id = ?1",
                params![job_id, now],
            )?;
        }
    }
    Ok(StoredEvent { id: id as u64, event })
}

/// Events of a job after `after` (exclusive), oldest first, at most `limit`.
pub fn events_after(
    conn: &Connection,
    job_id: &str,
    after: u64,
    limit: u32,
) -> StoreResult<Vec<StoredEvent>> {
    let mut stmt = conn.prepare(
        "SELECT id, data FROM job_events WHERE job_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![job_id, after as i64, limit], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = vec![];
    for row in rows {
        let (id, data) = row?;
        out.push(StoredEvent { id: id as u64, event: serde_json::from_str(&data)? });
    }
    Ok(out)
}
