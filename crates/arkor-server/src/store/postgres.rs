//! The PostgreSQL backend: the store several backends (and later remote workers) can share.
//!
//! A `deadpool-postgres` pool of plain-TCP `tokio-postgres` connections (no TLS yet: use
//! loopback or a private network). At connect, the migrations `schema_migrations` does not
//! list are applied in one transaction under an advisory lock, so two backends starting at
//! once never race. The SQL mirrors `store/sqlite.rs` statement for statement; where they
//! differ it is dialect (`$n`, `GREATEST`, `ILIKE`, `ON CONFLICT DO NOTHING`) or locking:
//! [`PgStore::claim_next`] takes the next queued job with `FOR UPDATE SKIP LOCKED`, and
//! [`PgStore::append_event`] locks the job row so a job's event ids grow in commit order
//! (what SSE reconnects with `Last-Event-ID` rely on).

use std::time::Duration;

use arkor_protocol::auth::{Org, Project, User};
use arkor_protocol::event::{EventKind, JobEvent, StoredEvent};
use arkor_protocol::job::{Job, JobConfig, JobProgress, JobStatus};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::migrations::MIGRATIONS;
use super::{JOB_COLUMNS, JobPage, JobQuery, PgUrl, QUEUE_ORDER, StoreError, StoreResult};
use crate::util::{iso, now_ms};

mod endpoints;
mod leases;

/// Connections the pool keeps at most.
const POOL_SIZE: usize = 16;

/// The `pg_advisory_xact_lock` key migrations run under ("arkor" in ASCII).
const MIGRATION_LOCK: i64 = 0x61_72_6b_6f_72;

/// The PostgreSQL database; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> StoreError {
        match e {
            PoolError::Backend(e) => StoreError::Postgres(e),
            other => StoreError::Pool(other.to_string()),
        }
    }
}

impl PgStore {
    /// Connects (checking the database answers) and migrates it.
    pub async fn connect(url: &PgUrl) -> StoreResult<PgStore> {
        let mut config = url.config().clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let mut client = pool.get().await?;
        migrate(&mut client).await?;
        Ok(PgStore { pool })
    }

    pub(super) async fn client(&self) -> StoreResult<Object> {
        Ok(self.pool.get().await?)
    }

    /// Closes the pool's connections (tests drop their database afterwards).
    pub fn close(&self) {
        self.pool.close();
    }

    // ---- identities ----

    pub(super) async fn create_anonymous(
        &self,
        user_id: &str,
        anonymous_id: &str,
        org: &Org,
        token_hash: &str,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = now_ms();
        tx.execute(
            "INSERT INTO users (id, anonymous_id, kind, created_at) VALUES ($1, $2, 'anonymous', $3)",
            &[&user_id, &anonymous_id, &now],
        )
        .await?;
        tx.execute(
            "INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)",
            &[&org.id, &org.slug, &org.name, &now],
        )
        .await?;
        tx.execute(
            "INSERT INTO memberships (user_id, org_id) VALUES ($1, $2)",
            &[&user_id, &org.id],
        )
        .await?;
        tx.execute(
            "INSERT INTO tokens (hash, user_id, created_at) VALUES ($1, $2, $3)",
            &[&token_hash, &user_id, &now],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn user_by_token(&self, token_hash: &str) -> StoreResult<Option<User>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT u.id, u.anonymous_id, u.kind FROM tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.hash = $1",
                &[&token_hash],
            )
            .await?;
        Ok(row.map(|r| User { id: r.get(0), anonymous_id: r.get(1), kind: r.get(2) }))
    }

    pub(super) async fn orgs_of(&self, user_id: &str) -> StoreResult<Vec<Org>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT o.id, o.slug, o.name FROM orgs o JOIN memberships m ON m.org_id = o.id
                 WHERE m.user_id = $1 ORDER BY o.created_at",
                &[&user_id],
            )
            .await?;
        Ok(rows.iter().map(|r| Org { id: r.get(0), slug: r.get(1), name: r.get(2) }).collect())
    }

    pub(super) async fn member_org(&self, user_id: &str, slug: &str) -> StoreResult<Option<Org>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT o.id, o.slug, o.name FROM orgs o JOIN memberships m ON m.org_id = o.id
                 WHERE m.user_id = $1 AND o.slug = $2",
                &[&user_id, &slug],
            )
            .await?;
        Ok(row.map(|r| Org { id: r.get(0), slug: r.get(1), name: r.get(2) }))
    }

    // ---- projects ----

    pub(super) async fn projects(&self, org_id: &str) -> StoreResult<Vec<Project>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, slug, name, org_id FROM projects WHERE org_id = $1 ORDER BY created_at, id",
                &[&org_id],
            )
            .await?;
        Ok(rows.iter().map(project_row).collect())
    }

    pub(super) async fn project(&self, org_id: &str, slug: &str) -> StoreResult<Option<Project>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT id, slug, name, org_id FROM projects WHERE org_id = $1 AND slug = $2",
                &[&org_id, &slug],
            )
            .await?;
        Ok(row.as_ref().map(project_row))
    }

    pub(super) async fn insert_project(&self, p: &Project) -> StoreResult<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "INSERT INTO projects (id, org_id, slug, name, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
                &[&p.id, &p.org_id, &p.slug, &p.name, &now_ms()],
            )
            .await?;
        Ok(n == 1)
    }

    // ---- jobs ----

    pub(super) async fn insert_job(&self, job: &Job) -> StoreResult<Job> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO jobs (id, org_id, project_id, name, status, config, created_at, labels)
                 VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7)",
                &[
                    &job.id,
                    &job.org_id,
                    &job.project_id,
                    &job.name,
                    &serde_json::to_string(&job.config)?,
                    &now_ms(),
                    &crate::jobconfig::labels_json(&job.config.worker_labels),
                ],
            )
            .await?;
        Ok(job_by_id(&client, &job.id).await?.unwrap_or_else(|| job.clone()))
    }

    pub(super) async fn job_in_project(
        &self,
        project_id: &str,
        id: &str,
    ) -> StoreResult<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND project_id = $2");
        let row = self.client().await?.query_opt(&sql, &[&id, &project_id]).await?;
        row.map(|r| job_row(&r).map(|(_, j)| j)).transpose()
    }

    pub(super) async fn job(&self, id: &str) -> StoreResult<Option<Job>> {
        job_by_id(&self.client().await?, id).await
    }

    pub(super) async fn list_jobs(&self, project_id: &str, q: &JobQuery) -> StoreResult<JobPage> {
        let mut filter = String::from("project_id = $1");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(project_id.to_owned())];
        if !q.statuses.is_empty() {
            let statuses: Vec<String> = q.statuses.iter().map(|s| s.as_str().to_owned()).collect();
            args.push(Box::new(statuses));
            filter += &format!(" AND status = ANY(${})", args.len());
        }
        if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
            let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            args.push(Box::new(format!("%{escaped}%")));
            let name = args.len();
            args.push(Box::new(format!("{escaped}%")));
            filter += &format!(
                " AND (name ILIKE ${name} ESCAPE '\\' OR id ILIKE ${} ESCAPE '\\')",
                args.len()
            );
        }
        let client = self.client().await?;
        fn params(args: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
            args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect()
        }
        let total: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM jobs WHERE {filter}"), &params(&args))
            .await?
            .get(0);
        if let Some(before) = q.before_seq {
            args.push(Box::new(before));
            filter += &format!(" AND seq < ${}", args.len());
        }
        args.push(Box::new(i64::from(q.limit) + 1));
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE {filter} ORDER BY seq DESC LIMIT ${}",
            args.len()
        );
        let rows = client.query(&sql, &params(&args)).await?;
        let more = rows.len() > q.limit as usize;
        let mut jobs = Vec::with_capacity(rows.len());
        let mut last_seq = None;
        for row in rows.iter().take(q.limit as usize) {
            let (seq, job) = job_row(row)?;
            jobs.push(job);
            last_seq = Some(seq);
        }
        Ok(JobPage {
            jobs,
            next_before_seq: if more { last_seq } else { None },
            total: total as u64,
        })
    }

    pub(super) async fn jobs_of_orgs(&self, org_ids: &[String]) -> StoreResult<Vec<Job>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE org_id = $1 AND status IN ('completed', \
             'running', 'cancelled', 'failed') ORDER BY seq DESC LIMIT 500"
        );
        let client = self.client().await?;
        let mut out = vec![];
        for org in org_ids {
            for row in client.query(&sql, &[org]).await? {
                out.push(job_row(&row)?.1);
            }
        }
        Ok(out)
    }

    /// `FOR UPDATE SKIP LOCKED`: a caller skips the row another caller is taking, so
    /// concurrent claims get distinct jobs without waiting on each other.
    pub(super) async fn claim_next(&self) -> StoreResult<Option<Job>> {
        let client = self.client().await?;
        let sql = format!(
            "UPDATE jobs SET status = 'running', started_at = $1 WHERE seq = (
                SELECT seq FROM jobs WHERE status = 'queued' AND run_after <= $1
                AND labels = '[]' ORDER BY {QUEUE_ORDER} LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING id"
        );
        let Some(row) = client.query_opt(&sql, &[&now_ms()]).await? else { return Ok(None) };
        let id: String = row.get(0);
        job_by_id(&client, &id).await
    }

    pub(super) async fn move_to_front(&self, id: &str) -> StoreResult<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE jobs SET priority = (SELECT COALESCE(MAX(priority), 0) + 1 FROM jobs
                 WHERE status = 'queued') WHERE id = $1 AND status = 'queued'",
                &[&id],
            )
            .await?;
        Ok(n == 1)
    }

    pub(super) async fn job_ids_with_status(&self, status: JobStatus) -> StoreResult<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query("SELECT id FROM jobs WHERE status = $1 ORDER BY seq", &[&status.as_str()])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(super) async fn append_event(
        &self,
        job_id: &str,
        kind: &EventKind,
    ) -> StoreResult<Option<StoredEvent>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let status = tx
            .query_opt("SELECT status FROM jobs WHERE id = $1 FOR UPDATE", &[&job_id])
            .await?
            .map(|r| r.get::<_, String>(0));
        let Some(status) = status.and_then(|s| JobStatus::parse(&s)) else { return Ok(None) };
        if status.is_terminal() {
            return Ok(None);
        }
        let event = apply_event(&tx, job_id, kind).await?;
        tx.commit().await?;
        Ok(Some(event))
    }

    pub(super) async fn events_after(
        &self,
        job_id: &str,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, data FROM job_events WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[&job_id, &(after as i64), &i64::from(limit)],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.get(0);
            let data: String = row.get(1);
            out.push(StoredEvent { id: id as u64, event: serde_json::from_str(&data)? });
        }
        Ok(out)
    }
}

/// Applies the migrations `schema_migrations` does not list, in one transaction that holds
/// an advisory lock: a second backend starting at the same time waits, then finds them done.
async fn migrate(client: &mut Object) -> StoreResult<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let found: i64 =
        tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?.get(0);
    if found > MIGRATIONS.len() as i64 {
        return Err(StoreError::NewerSchema { found, known: MIGRATIONS.len() });
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(m.postgres).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&(i as i64 + 1), &now_ms()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn job_by_id(client: &Object, id: &str) -> StoreResult<Option<Job>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    let row = client.query_opt(&sql, &[&id]).await?;
    row.map(|r| job_row(&r).map(|(_, j)| j)).transpose()
}

fn project_row(r: &tokio_postgres::Row) -> Project {
    Project { id: r.get(0), slug: r.get(1), name: r.get(2), org_id: r.get(3) }
}

/// A row of [`JOB_COLUMNS`] as `(seq, job)`.
fn job_row(r: &tokio_postgres::Row) -> StoreResult<(i64, Job)> {
    let status: String = r.try_get(5)?;
    let config: JobConfig = serde_json::from_str(r.try_get(6)?)?;
    let opt_iso = |v: Option<i64>| v.map(iso);
    let job = Job {
        id: r.try_get(1)?,
        org_id: r.try_get(2)?,
        project_id: r.try_get(3)?,
        name: r.try_get(4)?,
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        config,
        error: r.try_get(7)?,
        created_at: iso(r.try_get(8)?),
        started_at: opt_iso(r.try_get(9)?),
        completed_at: opt_iso(r.try_get(10)?),
        progress: JobProgress {
            step: r.try_get::<_, i64>(11)?.max(0) as u64,
            total_steps: r.try_get::<_, i64>(12)?.max(0) as u64,
            loss: r.try_get(13)?,
        },
        queue_position: r.try_get::<_, Option<i64>>(14)?.map(|p| p as u64),
        worker: r.try_get(15)?,
        attempt: Some(r.try_get::<_, i64>(16)?).filter(|a| *a > 0).map(|a| a as u32),
    };
    Ok((r.try_get(0)?, job))
}

/// Inserts an event and applies it to the job row, inside the caller's transaction (which
/// has locked the row and checked that the job takes it).
pub(super) async fn apply_event(
    tx: &tokio_postgres::Transaction<'_>,
    job_id: &str,
    kind: &EventKind,
) -> StoreResult<StoredEvent> {
    let now = now_ms();
    let event = JobEvent { job_id: job_id.to_owned(), timestamp: iso(now), kind: kind.clone() };
    let data = serde_json::to_string(&event)?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO job_events (job_id, type, data, created_at) VALUES ($1, $2, $3, $4)
             RETURNING id",
            &[&job_id, &kind.name(), &data, &now],
        )
        .await?
        .get(0);
    match kind {
        EventKind::Started { metadata } => {
            let total = metadata.as_ref().map_or(0, |m| m.total_steps as i64);
            let start = metadata.as_ref().map_or(0, |m| m.start_step as i64);
            tx.execute(
                "UPDATE jobs SET status = 'running', total_steps = $2, step = $3,
                 started_at = COALESCE(started_at, $4) WHERE id = $1",
                &[&job_id, &total, &start, &now],
            )
            .await?;
        }
        EventKind::Log { step, loss, .. } => {
            tx.execute(
                "UPDATE jobs SET step = GREATEST(step, $2), loss = COALESCE($3, loss)
                 WHERE id = $1",
                &[&job_id, &(*step as i64), loss],
            )
            .await?;
        }
        EventKind::CheckpointSaved { .. } => {}
        EventKind::Completed { metrics, .. } => {
            let step = metrics.as_ref().map(|m| m.step as i64);
            tx.execute(
                "UPDATE jobs SET status = 'completed', completed_at = $2,
                 step = COALESCE($3, step) WHERE id = $1",
                &[&job_id, &now, &step],
            )
            .await?;
        }
        EventKind::Failed { error, .. } => {
            tx.execute(
                "UPDATE jobs SET status = 'failed', completed_at = $2, error = $3 WHERE id = $1",
                &[&job_id, &now, error],
            )
            .await?;
        }
        EventKind::Cancelled { .. } => {
            tx.execute(
                "UPDATE jobs SET status = 'cancelled', completed_at = $2 WHERE id = $1",
                &[&job_id, &now],
            )
            .await?;
        }
    }
    Ok(StoredEvent { id: id as u64, event })
}
