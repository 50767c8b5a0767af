//! The store: organisations, users, tokens, projects, jobs, the job event log, endpoints.
//!
//! [`Store`] is the one interface the handlers and the runner use, an enum over two
//! backends with the same behaviour:
//! - [`SqliteStore`] (`store/sqlite.rs`), the default: a file in the data directory, one
//!   connection used from blocking tasks;
//! - [`PgStore`] (`store/postgres.rs`), selected with `arkor server --database
//!   postgres://...`: a `deadpool-postgres` pool of `tokio-postgres` connections.
//!
//! Each method is one operation callers need; an operation of several statements runs in one
//! transaction on both backends. The schema is one numbered list of migrations with both
//! dialects (`store/migrations.rs`). `store/tests.rs` is the conformance suite both run.
//! Jobs the backend runs itself are taken with [`Store::claim_next`] and stay running until
//! their terminal event; remote workers lease them instead (`store/leases.rs`).

use std::path::Path;
use std::str::FromStr;

use arkor_protocol::auth::{Org, Project, User};
use arkor_protocol::endpoint::{DeploymentKeyDto, DeploymentStats, EndpointRequestDto};
use arkor_protocol::event::{EventKind, StoredEvent};
use arkor_protocol::job::{Job, JobStatus};

mod endpoints;
mod leases;
mod migrations;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

pub use endpoints::{EndpointRow, RequestLog};
pub use leases::{Expired, Lease, LeaseReply, LeaseTerms, LeasedEvent, WorkerRow};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// The order [`Store::claim_next`] starts queued jobs in: highest priority first, then oldest.
const QUEUE_ORDER: &str = "priority DESC, seq";

/// The columns a job row is read from, the same on both backends; only valid in a query
/// over `jobs` without an alias.
///
/// After the progress comes the queue position: 1 + the queued jobs that sort before this
/// one in [`QUEUE_ORDER`], NULL when it is not queued; then the last lease's worker and the
/// number of leases. It must agree with `QUEUE_ORDER` (a store
/// test checks that it does).
const JOB_COLUMNS: &str = "seq, id, org_id, project_id, name, status, config, error, created_at, \
    started_at, completed_at, step, total_steps, loss, \
    CASE WHEN jobs.status = 'queued' THEN (SELECT COUNT(*) FROM jobs AS q \
        WHERE q.status = 'queued' AND (q.priority > jobs.priority \
        OR (q.priority = jobs.priority AND q.seq <= jobs.seq))) END, lease_owner, attempt";

/// A store error: the database failed or a stored value no longer parses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error (or the connection to it failed).
    #[error("postgres error: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be taken from the pool.
    #[error("postgres connection pool: {0}")]
    Pool(String),
    /// The PostgreSQL schema was migrated by a newer arkor than this one.
    #[error(
        "the postgres schema is at version {found}, newer than this arkor knows ({known}); \
         upgrade arkor"
    )]
    NewerSchema {
        /// The version `schema_migrations` records.
        found: i64,
        /// The number of migrations this build has.
        known: usize,
    },
    /// A row holds JSON this version cannot read.
    #[error("corrupt stored value: {0}")]
    Json(#[from] serde_json::Error),
    /// The blocking task died.
    #[error("database task failed: {0}")]
    Join(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A `tokio_postgres::Error` with its cause: its own text is only the kind ("db error",
/// "error connecting to server"), the server's message or the IO error is its source.
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Filters and paging of a job listing.
#[derive(Clone, Debug, Default)]
pub struct JobQuery {
    /// Page size.
    pub limit: u32,
    /// Only jobs with `seq` below this (the cursor).
    pub before_seq: Option<i64>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<JobStatus>,
    /// Case-insensitive substring of the name, or a prefix of the id.
    pub q: Option<String>,
}

/// A page of jobs plus the cursor of the next page.
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub next_before_seq: Option<i64>,
    pub total: u64,
}

/// Where the backend keeps its database.
#[derive(Clone, Debug, Default)]
pub enum Database {
    /// SQLite, `arkor.db` in the data directory (the default).
    #[default]
    DataDir,
    /// A PostgreSQL database.
    Postgres(Box<PgUrl>),
}

/// A parsed `postgres://` (or `postgresql://`, or `key=value`) connection string.
#[derive(Clone)]
pub struct PgUrl(tokio_postgres::Config);

impl PgUrl {
    /// The parsed connection settings.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.0
    }
}

impl PgUrl {
    /// `user@host:port/database` for messages (never the password).
    pub fn describe(&self) -> String {
        let c = &self.0;
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => String::new(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        let user = c.get_user().unwrap_or("");
        format!("postgres://{user}@{host}:{port}/{}", c.get_dbname().unwrap_or(user))
    }
}

impl FromStr for PgUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<PgUrl, String> {
        let expected = "expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE";
        if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
            return Err(format!("{expected}, got {:?}", redact(s)));
        }
        let config = tokio_postgres::Config::from_str(s)
            .map_err(|e| format!("{expected}: {e} (in {:?})", redact(s)))?;
        if config.get_hosts().is_empty() {
            return Err(format!("{expected}: no host in {:?}", redact(s)));
        }
        Ok(PgUrl(config))
    }
}

impl std::fmt::Debug for PgUrl {
    /// Hosts, port and database only: the password never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgUrl")
            .field("hosts", &self.0.get_hosts())
            .field("ports", &self.0.get_ports())
            .field("user", &self.0.get_user())
            .field("dbname", &self.0.get_dbname())
            .finish_non_exhaustive()
    }
}

/// `s` with the password of a `scheme://user:password@` prefix replaced by `***`.
fn redact(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else { return s.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return s.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => s.to_owned(),
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub enum Store {
    /// SQLite (the default).
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PgStore),
}

/// Runs one operation on either backend. SQLite gets owned copies of the `refs` (moved into
/// the blocking task) and the `vals` as they are; both take them in that order.
macro_rules! dispatch {
    ($self:ident, $name:ident ( $($r:ident),* ; $($v:ident),* )) => {
        match $self {
            Store::Sqlite(s) => {
                $(let $r = $r.to_owned();)*
                s.call(move |c| sqlite::$name(c, $(&$r,)* $($v),*)).await
            }
            Store::Postgres(p) => p.$name($($r,)* $($v),*).await,
        }
    };
}

impl Store {
    /// Opens the database `db` names: SQLite at `sqlite_path`, or a PostgreSQL database
    /// (connecting once and migrating it).
    pub async fn open(db: &Database, sqlite_path: &Path) -> StoreResult<Store> {
        match db {
            Database::DataDir => Ok(Store::Sqlite(SqliteStore::open(sqlite_path)?)),
            Database::Postgres(url) => Ok(Store::Postgres(PgStore::connect(url).await?)),
        }
    }

    // ---- identities ----

    /// Creates an anonymous user with a personal organisation and a token (stored hashed).
    pub async fn create_anonymous(
        &self,
        user_id: &str,
        anonymous_id: &str,
        org: &Org,
        token_hash: &str,
    ) -> StoreResult<()> {
        dispatch!(self, create_anonymous(user_id, anonymous_id, org, token_hash;))
    }

    /// The user a token hash belongs to.
    pub async fn user_by_token(&self, token_hash: &str) -> StoreResult<Option<User>> {
        dispatch!(self, user_by_token(token_hash;))
    }

    /// Organisations of a user, oldest first.
    pub async fn orgs_of(&self, user_id: &str) -> StoreResult<Vec<Org>> {
        dispatch!(self, orgs_of(user_id;))
    }

    /// The organisation `slug` if `user_id` is a member.
    pub async fn member_org(&self, user_id: &str, slug: &str) -> StoreResult<Option<Org>> {
        dispatch!(self, member_org(user_id, slug;))
    }

    // ---- projects ----

    /// Projects of an organisation, oldest first.
    pub async fn projects(&self, org_id: &str) -> StoreResult<Vec<Project>> {
        dispatch!(self, projects(org_id;))
    }

    /// A project by slug.
    pub async fn project(&self, org_id: &str, slug: &str) -> StoreResult<Option<Project>> {
        dispatch!(self, project(org_id, slug;))
    }

    /// Inserts a project; `Ok(false)` when the slug is taken.
    pub async fn insert_project(&self, p: &Project) -> StoreResult<bool> {
        dispatch!(self, insert_project(p;))
    }

    // ---- jobs ----

    /// Inserts a queued job; returns it as stored (with its queue position).
    pub async fn insert_job(&self, job: &Job) -> StoreResult<Job> {
        dispatch!(self, insert_job(job;))
    }

    /// A job inside a project.
    pub async fn job_in_project(&self, project_id: &str, id: &str) -> StoreResult<Option<Job>> {
        dispatch!(self, job_in_project(project_id, id;))
    }

    /// A job by id, whatever its scope (internal use).
    pub async fn job(&self, id: &str) -> StoreResult<Option<Job>> {
        dispatch!(self, job(id;))
    }

    /// Jobs of a project, newest first, filtered and paged.
    pub async fn list_jobs(&self, project_id: &str, q: &JobQuery) -> StoreResult<JobPage> {
        dispatch!(self, list_jobs(project_id, q;))
    }

    /// Completed, running, cancelled and failed jobs of the given organisations, newest
    /// first (for `/v1/models`).
    pub async fn jobs_of_orgs(&self, org_ids: &[String]) -> StoreResult<Vec<Job>> {
        dispatch!(self, jobs_of_orgs(org_ids;))
    }

    /// Takes the next queued job (first in the queue's order) and marks it running, at most
    /// once: concurrent callers, on this backend or another sharing the database, each get a
    /// different job or none. Jobs with worker labels are left to remote workers.
    pub async fn claim_next(&self) -> StoreResult<Option<Job>> {
        dispatch!(self, claim_next(;))
    }

    /// Moves a queued job to the front of the queue. `Ok(false)` when it is not queued.
    pub async fn move_to_front(&self, id: &str) -> StoreResult<bool> {
        dispatch!(self, move_to_front(id;))
    }

    /// Ids of jobs in a status, oldest first.
    pub async fn job_ids_with_status(&self, status: JobStatus) -> StoreResult<Vec<String>> {
        dispatch!(self, job_ids_with_status(; status))
    }

    /// Persists an event (and its effect on the job row) in one transaction; returns it with
    /// its id. A job already terminal (or missing) takes no further event (`None`).
    pub async fn append_event(
        &self,
        job_id: &str,
        kind: &EventKind,
    ) -> StoreResult<Option<StoredEvent>> {
        dispatch!(self, append_event(job_id, kind;))
    }

    /// Events of a job after id `after` (exclusive), oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        job_id: &str,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        dispatch!(self, events_after(job_id; after, limit))
    }

    // ---- remote workers and leases ----

    /// Registers a worker token (by its hash); `Ok(false)` when the name is taken.
    pub async fn insert_worker(&self, name: &str, token_hash: &str) -> StoreResult<bool> {
        dispatch!(self, insert_worker(name, token_hash;))
    }

    /// Creates a worker and its token (`arkw_` + 64 hex chars; only its hash is stored);
    /// `Ok(None)` when the name is taken.
    pub async fn add_worker(&self, name: &str) -> StoreResult<Option<String>> {
        let token = format!("arkw_{}", crate::util::random_hex(32));
        let added = self.insert_worker(name, &crate::util::token_hash(&token)).await?;
        Ok(added.then_some(token))
    }

    /// Every worker token, oldest first, revoked ones included.
    pub async fn workers(&self) -> StoreResult<Vec<WorkerRow>> {
        dispatch!(self, workers(;))
    }

    /// Revokes a worker token and expires its leases at once (the reaper requeues them);
    /// `Ok(false)` when no unrevoked worker has that name.
    pub async fn revoke_worker(&self, name: &str) -> StoreResult<bool> {
        dispatch!(self, revoke_worker(name;))
    }

    /// The name of the unrevoked worker holding this token, marked seen now.
    pub async fn worker_by_token(&self, token_hash: &str) -> StoreResult<Option<String>> {
        dispatch!(self, worker_by_token(token_hash;))
    }

    /// Leases the next queued job (in the queue's order, past its backoff) whose labels
    /// are all in `labels` to `worker`: concurrent callers each get a different job or none.
    pub async fn lease_next(
        &self,
        worker: &str,
        labels: &[String],
        terms: LeaseTerms,
    ) -> StoreResult<Option<Lease>> {
        let json = crate::jobconfig::labels_json(labels);
        let labels = json.as_str();
        dispatch!(self, lease_next(worker, labels; terms))
    }

    /// Extends a lease by the TTL.
    pub async fn heartbeat(
        &self,
        job_id: &str,
        token: &str,
        terms: LeaseTerms,
    ) -> StoreResult<LeaseReply<()>> {
        dispatch!(self, heartbeat(job_id, token; terms))
    }

    /// Appends a lease's events in one transaction, dropping those whose `seq` was applied
    /// already; a terminal one ends the job (and the lease). Returns what was appended.
    pub async fn append_leased(
        &self,
        job_id: &str,
        token: &str,
        events: &[LeasedEvent],
    ) -> StoreResult<LeaseReply<Vec<StoredEvent>>> {
        dispatch!(self, append_leased(job_id, token, events;))
    }

    /// Whether this token holds the job's lease (for uploads), and whether a cancel was asked.
    pub async fn check_lease(&self, job_id: &str, token: &str) -> StoreResult<LeaseReply<()>> {
        dispatch!(self, check_lease(job_id, token;))
    }

    /// A worker hands a job back (it is stopping): queued again at once, the attempt not
    /// counted. `Ok(false)` when the lease is not this token's (or a cancel was asked: the
    /// worker reports `training.cancelled` instead).
    pub async fn release_lease(&self, job_id: &str, token: &str) -> StoreResult<bool> {
        dispatch!(self, release_lease(job_id, token;))
    }

    /// Asks a remote worker to cancel the job it leased: `Ok(false)` when the job is not
    /// running under a lease (the caller cancels it itself).
    pub async fn request_cancel(&self, job_id: &str) -> StoreResult<bool> {
        dispatch!(self, request_cancel(job_id;))
    }

    /// Ids of running jobs the backend itself runs (no lease), oldest first.
    pub async fn unleased_running(&self) -> StoreResult<Vec<String>> {
        dispatch!(self, unleased_running(;))
    }

    /// Handles the leases past their expiry: requeued with a backoff, cancelled when a
    /// cancel was asked, failed after the last attempt (naming the worker).
    pub async fn expire_leases(&self, terms: LeaseTerms) -> StoreResult<Vec<Expired>> {
        dispatch!(self, expire_leases(; terms))
    }

    // ---- endpoints ----

    /// Inserts an endpoint; false when its slug is taken.
    pub async fn insert_endpoint(&self, e: &EndpointRow) -> StoreResult<bool> {
        dispatch!(self, insert_endpoint(e;))
    }

    /// Saves every field but the id, slug, scope and creation time, and applies the (maybe
    /// new) retention as of `updated_at`.
    pub async fn update_endpoint(&self, e: &EndpointRow) -> StoreResult<()> {
        dispatch!(self, update_endpoint(e;))
    }

    /// Applies an endpoint's retention to its log as of `now`.
    pub async fn prune_requests(&self, e: &EndpointRow, now: i64) -> StoreResult<()> {
        dispatch!(self, prune_requests(e; now))
    }

    /// Deletes an endpoint with its keys and request log.
    pub async fn delete_endpoint(&self, id: &str) -> StoreResult<()> {
        dispatch!(self, delete_endpoint(id;))
    }

    /// The endpoints of a project, oldest first.
    pub async fn endpoints_of_project(&self, project_id: &str) -> StoreResult<Vec<EndpointRow>> {
        dispatch!(self, endpoints_of_project(project_id;))
    }

    /// An endpoint by id.
    pub async fn endpoint(&self, id: &str) -> StoreResult<Option<EndpointRow>> {
        dispatch!(self, endpoint(id;))
    }

    /// An endpoint by slug.
    pub async fn endpoint_by_slug(&self, slug: &str) -> StoreResult<Option<EndpointRow>> {
        dispatch!(self, endpoint_by_slug(slug;))
    }

    /// Stores a key by its hash (the plaintext never reaches the database).
    pub async fn insert_key(
        &self,
        endpoint_id: &str,
        key: &DeploymentKeyDto,
        hash: &str,
        created_at: i64,
    ) -> StoreResult<()> {
        dispatch!(self, insert_key(endpoint_id, key, hash; created_at))
    }

    /// An endpoint's keys, oldest first, revoked ones included.
    pub async fn keys_of(&self, endpoint_id: &str) -> StoreResult<Vec<DeploymentKeyDto>> {
        dispatch!(self, keys_of(endpoint_id;))
    }

    /// Revokes a key; false when the endpoint has no such key.
    pub async fn revoke_key(&self, endpoint_id: &str, key_id: &str) -> StoreResult<bool> {
        dispatch!(self, revoke_key(endpoint_id, key_id;))
    }

    /// The id of the enabled key of this endpoint with this hash, marked used at `now`.
    pub async fn use_key(
        &self,
        endpoint_id: &str,
        hash: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        dispatch!(self, use_key(endpoint_id, hash; now))
    }

    /// Logs a request, then prunes the log by the endpoint's retention.
    pub async fn log_request(&self, e: &EndpointRow, log: &RequestLog) -> StoreResult<()> {
        dispatch!(self, log_request(e, log;))
    }

    /// The newest `limit` requests of an endpoint, newest first.
    pub async fn requests_of(
        &self,
        endpoint_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<EndpointRequestDto>> {
        dispatch!(self, requests_of(endpoint_id; limit))
    }

    /// Counts, token totals, latency percentiles and the last use of an endpoint.
    pub async fn stats_of(&self, endpoint_id: &str) -> StoreResult<DeploymentStats> {
        dispatch!(self, stats_of(endpoint_id;))
    }
}
