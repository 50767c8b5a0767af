//! The schema's numbered migrations, one list for both backends.
//!
//! Entry `i` (0-based) is schema version `i + 1`; each gives the same change in SQLite's and
//! in PostgreSQL's dialect (PostgreSQL spells SQLite's `INTEGER PRIMARY KEY AUTOINCREMENT` as
//! `BIGSERIAL`, its 0/1 flags as `BOOLEAN` and `REAL` as `DOUBLE PRECISION`; every other
//! integer is `BIGINT`, read as `i64` on both). Never edit an entry that has shipped: existing
//! databases record how many they applied (SQLite in `PRAGMA user_version`, PostgreSQL in
//! `schema_migrations`), so a change is a new entry at the end.

/// One schema change in both dialects.
pub struct Migration {
    /// The change for SQLite.
    pub sqlite: &'static str,
    /// The same change for PostgreSQL.
    pub postgres: &'static str,
}

/// Migrations, applied in order.
pub const MIGRATIONS: &[Migration] = &[
    // 1: the initial schema.
    Migration {
        sqlite: "CREATE TABLE orgs (
        id TEXT PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
        created_at INTEGER NOT NULL);
    CREATE TABLE users (
        id TEXT PRIMARY KEY, anonymous_id TEXT, kind TEXT NOT NULL, created_at INTEGER NOT NULL);
    CREATE TABLE memberships (
        user_id TEXT NOT NULL REFERENCES users(id), org_id TEXT NOT NULL REFERENCES orgs(id),
        PRIMARY KEY (user_id, org_id));
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id),
        created_at INTEGER NOT NULL);
    CREATE TABLE projects (
        id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), slug TEXT NOT NULL,
        name TEXT NOT NULL, created_at INTEGER NOT NULL, UNIQUE (org_id, slug));
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        org_id TEXT NOT NULL REFERENCES orgs(id), project_id TEXT NOT NULL REFERENCES projects(id),
        name TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL, error TEXT,
        created_at INTEGER NOT NULL, started_at INTEGER, completed_at INTEGER,
        step INTEGER NOT NULL DEFAULT 0, total_steps INTEGER NOT NULL DEFAULT 0, loss REAL);
    CREATE INDEX jobs_by_project ON jobs (project_id, seq DESC);
    CREATE INDEX jobs_by_status ON jobs (status);
    CREATE TABLE job_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL REFERENCES jobs(id),
        type TEXT NOT NULL, data TEXT NOT NULL, created_at INTEGER NOT NULL);
    CREATE INDEX job_events_by_job ON job_events (job_id, id);",
        postgres: "CREATE TABLE orgs (
        id TEXT PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
        created_at BIGINT NOT NULL);
    CREATE TABLE users (
        id TEXT PRIMARY KEY, anonymous_id TEXT, kind TEXT NOT NULL, created_at BIGINT NOT NULL);
    CREATE TABLE memberships (
        user_id TEXT NOT NULL REFERENCES users(id), org_id TEXT NOT NULL REFERENCES orgs(id),
        PRIMARY KEY (user_id, org_id));
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id),
        created_at BIGINT NOT NULL);
    CREATE TABLE projects (
        id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES orgs(id), slug TEXT NOT NULL,
        name TEXT NOT NULL, created_at BIGINT NOT NULL, UNIQUE (org_id, slug));
    CREATE TABLE jobs (
        seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE,
        org_id TEXT NOT NULL REFERENCES orgs(id), project_id TEXT NOT NULL REFERENCES projects(id),
        name TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL, error TEXT,
        created_at BIGINT NOT NULL, started_at BIGINT, completed_at BIGINT,
        step BIGINT NOT NULL DEFAULT 0, total_steps BIGINT NOT NULL DEFAULT 0,
        loss DOUBLE PRECISION);
    CREATE INDEX jobs_by_project ON jobs (project_id, seq DESC);
    CREATE INDEX jobs_by_status ON jobs (status);
    CREATE TABLE job_events (
        id BIGSERIAL PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(id),
        type TEXT NOT NULL, data TEXT NOT NULL, created_at BIGINT NOT NULL);
    CREATE INDEX job_events_by_job ON job_events (job_id, id);",
    },
    // 2: endpoints, their API keys (hashed) and their request log.
    Migration {
        sqlite: "CREATE TABLE endpoints (
        id TEXT PRIMARY KEY, slug TEXT NOT NULL UNIQUE,
        org_id TEXT NOT NULL REFERENCES orgs(id), project_id TEXT NOT NULL REFERENCES projects(id),
        target TEXT NOT NULL, auth_mode TEXT NOT NULL, enabled INTEGER NOT NULL,
        retention_mode TEXT NOT NULL, retention_days INTEGER,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
    CREATE INDEX endpoints_by_project ON endpoints (project_id, created_at);
    CREATE TABLE endpoint_keys (
        id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
        label TEXT NOT NULL, prefix TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
        enabled INTEGER NOT NULL, created_at INTEGER NOT NULL, last_used_at INTEGER);
    CREATE INDEX endpoint_keys_by_endpoint ON endpoint_keys (endpoint_id, created_at);
    CREATE TABLE endpoint_requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL, status INTEGER NOT NULL, latency_ms INTEGER NOT NULL,
        prompt_tokens INTEGER, completion_tokens INTEGER, key_id TEXT,
        request_body TEXT, response_body TEXT);
    CREATE INDEX endpoint_requests_by_endpoint ON endpoint_requests (endpoint_id, id);",
        postgres: "CREATE TABLE endpoints (
        id TEXT PRIMARY KEY, slug TEXT NOT NULL UNIQUE,
        org_id TEXT NOT NULL REFERENCES orgs(id), project_id TEXT NOT NULL REFERENCES projects(id),
        target TEXT NOT NULL, auth_mode TEXT NOT NULL, enabled BOOLEAN NOT NULL,
        retention_mode TEXT NOT NULL, retention_days BIGINT,
        created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
    CREATE INDEX endpoints_by_project ON endpoints (project_id, created_at);
    CREATE TABLE endpoint_keys (
        id TEXT PRIMARY KEY, endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
        label TEXT NOT NULL, prefix TEXT NOT NULL, hash TEXT NOT NULL UNIQUE,
        enabled BOOLEAN NOT NULL, created_at BIGINT NOT NULL, last_used_at BIGINT);
    CREATE INDEX endpoint_keys_by_endpoint ON endpoint_keys (endpoint_id, created_at);
    CREATE TABLE endpoint_requests (
        id BIGSERIAL PRIMARY KEY,
        endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
        created_at BIGINT NOT NULL, status BIGINT NOT NULL, latency_ms BIGINT NOT NULL,
        prompt_tokens BIGINT, completion_tokens BIGINT, key_id TEXT,
        request_body TEXT, response_body TEXT);
    CREATE INDEX endpoint_requests_by_endpoint ON endpoint_requests (endpoint_id, id);",
    },
    // 3: the queue's order. A job moved to the front gets a priority above every queued
    // one; `seq` stays untouched because listing cursors page by it.
    Migration {
        sqlite: "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_queue ON jobs (status, priority DESC, seq);",
        postgres: "ALTER TABLE jobs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX jobs_queue ON jobs (status, priority DESC, seq);",
    },
    // 4: remote workers (`arkor worker`) and their leases. A leased job holds its worker's
    // name, a token only that lease knows, an expiry heartbeats extend, the last event
    // sequence number applied (retried posts are dropped) and whether a cancel was asked;
    // `attempt` counts leases, `run_after` holds a requeued job back (the backoff), `labels`
    // (a sorted JSON array) names what a worker must have to take the job.
    Migration {
        sqlite: "ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN run_after INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_token TEXT;
    ALTER TABLE jobs ADD COLUMN lease_expires_at INTEGER;
    ALTER TABLE jobs ADD COLUMN lease_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE status = 'running';
    CREATE TABLE workers (
        name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL,
        revoked_at INTEGER, last_seen_at INTEGER);",
        postgres: "ALTER TABLE jobs ADD COLUMN attempt BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN run_after BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_token TEXT;
    ALTER TABLE jobs ADD COLUMN lease_expires_at BIGINT;
    ALTER TABLE jobs ADD COLUMN lease_seq BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
    ALTER TABLE jobs ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE status = 'running';
    CREATE TABLE workers (
        name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL,
        revoked_at BIGINT, last_seen_at BIGINT);",
    },
];
