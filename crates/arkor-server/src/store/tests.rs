//! The store conformance suite: every test runs against SQLite (in memory) and against
//! PostgreSQL (a fresh database per test on `ARKOR_TEST_PG_URL`; skipped when unset outside
//! CI, failing in CI), through [`Store`] only, so both backends answer the same.

use std::collections::HashSet;

use arkor_protocol::auth::{Org, Project};
use arkor_protocol::endpoint::{AuthMode, DeploymentKeyDto, DeploymentTarget, RetentionMode};
use arkor_protocol::event::{CompletedMetrics, EventKind, StartedMetadata};
use arkor_protocol::job::{Job, JobConfig, JobProgress, JobStatus};

use super::*;

const DAY: i64 = 86_400_000;

/// Expands each test into `sqlite::NAME` and `postgres::NAME`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use crate::store::{SqliteStore, Store};
            $(#[tokio::test]
            async fn $name() {
                let store = Store::Sqlite(SqliteStore::open_in_memory().unwrap());
                super::$name(store).await;
            })*
        }
        mod postgres {
            use crate::store::{PgStore, PgUrl, Store};
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = arkor_test_support::pg::database().await else { return };
                let url: PgUrl = db.url.parse().unwrap();
                let pg = PgStore::connect(&url).await.unwrap();
                super::$name(Store::Postgres(pg.clone())).await;
                pg.close();
                db.drop_database().await;
            })*
        }
    };
}

conformance!(
    identities_tokens_and_projects,
    positions_follow_submission_then_move_to_front,
    claim_next_starts_jobs_in_position_order,
    concurrent_claims_each_get_a_different_job,
    listing_filters_searches_and_pages,
    events_update_the_job_and_resume_after_a_cursor,
    endpoints_keys_and_stats,
    retention_prunes_old_rows_and_drops_bodies,
    concurrent_leases_each_get_a_different_job,
    a_lease_guards_heartbeats_events_and_drops_retried_events,
    expired_leases_requeue_with_backoff_then_fail_naming_the_worker,
    cancel_of_a_leased_job_reaches_the_worker_or_the_reaper,
    worker_tokens_are_listed_and_revoked,
    labels_pick_the_workers_that_may_lease_a_job,
    a_job_handed_back_is_queued_at_once_without_costing_an_attempt,
);

/// Org `o` (slug `o`) owned by user `u` with token hash `h`, and project `p`.
async fn scope(store: &Store) {
    let org = Org { id: "o".into(), slug: "o".into(), name: "O".into() };
    store.create_anonymous("u", "anon", &org, "h").await.unwrap();
    let p = Project { id: "p".into(), slug: "p".into(), name: "P".into(), org_id: "o".into() };
    assert!(store.insert_project(&p).await.unwrap());
}

fn job(i: usize, name: &str) -> Job {
    Job {
        id: format!("j{i}"),
        org_id: "o".into(),
        project_id: "p".into(),
        name: name.into(),
        status: JobStatus::Queued,
        config: JobConfig { model: "arkor/tiny".into(), ..JobConfig::default() },
        error: None,
        created_at: String::new(),
        started_at: None,
        completed_at: None,
        progress: JobProgress::default(),
        queue_position: None,
        worker: None,
        attempt: None,
    }
}

async fn queue_db(store: &Store, jobs: usize) {
    scope(store).await;
    for i in 1..=jobs {
        let stored = store.insert_job(&job(i, &format!("run-{i}"))).await.unwrap();
        assert_eq!(stored.queue_position, Some(i as u64));
        assert_eq!(stored.status, JobStatus::Queued);
    }
}

/// `(id, queue position)` of every job, oldest first.
async fn positions(store: &Store) -> Vec<(String, Option<u64>)> {
    let q = JobQuery { limit: 100, ..JobQuery::default() };
    let page = store.list_jobs("p", &q).await.unwrap();
    page.jobs.into_iter().rev().map(|j| (j.id, j.queue_position)).collect()
}

async fn expect(store: &Store, want: &[(&str, Option<u64>)]) {
    let want: Vec<(String, Option<u64>)> =
        want.iter().map(|(i, p)| ((*i).to_owned(), *p)).collect();
    assert_eq!(positions(store).await, want);
}

async fn identities_tokens_and_projects(store: Store) {
    scope(&store).await;
    let user = store.user_by_token("h").await.unwrap().unwrap();
    assert_eq!((user.id.as_str(), user.anonymous_id.as_deref()), ("u", Some("anon")));
    assert_eq!(user.kind, "anonymous");
    assert!(store.user_by_token("nope").await.unwrap().is_none());
    let orgs = store.orgs_of("u").await.unwrap();
    assert_eq!(orgs.iter().map(|o| o.slug.as_str()).collect::<Vec<_>>(), ["o"]);
    assert_eq!(store.member_org("u", "o").await.unwrap().unwrap().id, "o");
    assert!(store.member_org("u", "other").await.unwrap().is_none());
    assert!(store.member_org("nobody", "o").await.unwrap().is_none());
    // A second user with its own org is not a member of the first.
    let org2 = Org { id: "o2".into(), slug: "o2".into(), name: "O2".into() };
    store.create_anonymous("u2", "anon2", &org2, "h2").await.unwrap();
    assert!(store.member_org("u2", "o").await.unwrap().is_none());
    // A taken slug is refused; projects list oldest first.
    let dup = Project { id: "p9".into(), slug: "p".into(), name: "x".into(), org_id: "o".into() };
    assert!(!store.insert_project(&dup).await.unwrap());
    let q = Project { id: "q".into(), slug: "q".into(), name: "Q".into(), org_id: "o".into() };
    assert!(store.insert_project(&q).await.unwrap());
    let slugs: Vec<String> =
        store.projects("o").await.unwrap().into_iter().map(|p| p.slug).collect();
    assert_eq!(slugs, ["p", "q"]);
    assert_eq!(store.project("o", "q").await.unwrap().unwrap().id, "q");
    assert!(store.project("o2", "q").await.unwrap().is_none());
}

async fn positions_follow_submission_then_move_to_front(store: Store) {
    queue_db(&store, 4).await;
    expect(&store, &[("j1", Some(1)), ("j2", Some(2)), ("j3", Some(3)), ("j4", Some(4))]).await;

    assert!(store.move_to_front("j3").await.unwrap());
    assert!(store.move_to_front("j4").await.unwrap());
    expect(&store, &[("j1", Some(3)), ("j2", Some(4)), ("j3", Some(2)), ("j4", Some(1))]).await;
    assert_eq!(store.job("j4").await.unwrap().unwrap().queue_position, Some(1));
    assert_eq!(store.job_in_project("p", "j3").await.unwrap().unwrap().queue_position, Some(2));
    assert!(store.job_in_project("other", "j3").await.unwrap().is_none());

    // A cancelled job leaves the queue; the ones behind it move up.
    store.append_event("j3", &EventKind::Cancelled { step: None }).await.unwrap().unwrap();
    expect(&store, &[("j1", Some(2)), ("j2", Some(3)), ("j3", None), ("j4", Some(1))]).await;
    assert!(!store.move_to_front("j3").await.unwrap(), "a cancelled job is not queued");
    assert!(!store.move_to_front("nope").await.unwrap());
}

async fn claim_next_starts_jobs_in_position_order(store: Store) {
    queue_db(&store, 5).await;
    assert!(store.move_to_front("j5").await.unwrap());
    assert!(store.move_to_front("j2").await.unwrap());
    // Moving the job already at the front keeps it there.
    assert!(store.move_to_front("j2").await.unwrap());
    let mut by_position: Vec<(u64, String)> =
        positions(&store).await.into_iter().map(|(id, p)| (p.unwrap(), id)).collect();
    by_position.sort();
    let expected: Vec<String> = by_position.into_iter().map(|(_, id)| id).collect();
    assert_eq!(expected, ["j2", "j5", "j1", "j3", "j4"]);

    let mut started = vec![];
    while let Some(next) = store.claim_next().await.unwrap() {
        assert_eq!(next.status, JobStatus::Running);
        assert!(next.started_at.is_some());
        assert_eq!(next.queue_position, None);
        assert!(!store.move_to_front(&next.id).await.unwrap(), "a running job is not queued");
        started.push(next.id);
    }
    assert_eq!(started, expected);
    let running = store.job_ids_with_status(JobStatus::Running).await.unwrap();
    assert_eq!(running, ["j1", "j2", "j3", "j4", "j5"]);
    assert!(store.job_ids_with_status(JobStatus::Queued).await.unwrap().is_empty());
}

/// The seed of the lease protocol: claims racing on one database never share a job.
async fn concurrent_claims_each_get_a_different_job(store: Store) {
    const JOBS: usize = 40;
    queue_db(&store, JOBS).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = vec![];
                while let Some(job) = store.claim_next().await.unwrap() {
                    mine.push(job.id);
                }
                mine
            })
        })
        .collect();
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), JOBS, "every job claimed once: {all:?}");
    assert_eq!(distinct.len(), JOBS, "no job claimed twice: {all:?}");
}

async fn listing_filters_searches_and_pages(store: Store) {
    scope(&store).await;
    let names = ["alpha", "Beta 50%", "gamma_x", "ALPHA two", "delta"];
    for (i, name) in names.iter().enumerate() {
        store.insert_job(&job(i + 1, name)).await.unwrap();
    }
    store.claim_next().await.unwrap();
    let list = |q: JobQuery| {
        let store = store.clone();
        async move {
            let page = store.list_jobs("p", &q).await.unwrap();
            let ids: Vec<String> = page.jobs.into_iter().map(|j| j.id).collect();
            (ids, page.next_before_seq, page.total)
        }
    };
    let all = JobQuery { limit: 10, ..JobQuery::default() };
    assert_eq!(
        list(all.clone()).await,
        (vec!["j5", "j4", "j3", "j2", "j1"].into_iter().map(String::from).collect(), None, 5)
    );
    // Case-insensitive name search; `%` and `_` are literal.
    let q = |text: &str| JobQuery { q: Some(text.into()), ..all.clone() };
    assert_eq!(list(q("alpha")).await.0, ["j4", "j1"]);
    assert_eq!(list(q("50%")).await.0, ["j2"]);
    assert_eq!(list(q("a_x")).await.0, ["j3"]);
    assert_eq!(list(q("a_b")).await.0, Vec::<String>::new());
    // An id prefix.
    assert_eq!(list(q("j3")).await.0, ["j3"]);
    let running = JobQuery { statuses: vec![JobStatus::Running], ..all.clone() };
    assert_eq!(list(running).await.0, ["j1"]);
    let both = JobQuery { statuses: vec![JobStatus::Running, JobStatus::Queued], ..all.clone() };
    assert_eq!(list(both).await.2, 5);
    // Pages of two, newest first, with the total of the whole filter.
    let (page1, cursor, total) = list(JobQuery { limit: 2, ..all.clone() }).await;
    assert_eq!((page1, total), (vec!["j5".to_owned(), "j4".to_owned()], 5));
    let (page2, cursor2, _) = list(JobQuery { limit: 2, before_seq: cursor, ..all.clone() }).await;
    assert_eq!(page2, ["j3", "j2"]);
    let (page3, cursor3, _) = list(JobQuery { limit: 2, before_seq: cursor2, ..all.clone() }).await;
    assert_eq!((page3, cursor3), (vec!["j1".to_owned()], None));
    // `/v1/models` sees the running job only (queued ones are not models yet).
    let models = store.jobs_of_orgs(&["o".to_owned(), "nope".to_owned()]).await.unwrap();
    assert_eq!(models.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["j1"]);
}

fn log(step: u64, loss: Option<f64>) -> EventKind {
    EventKind::Log {
        step,
        loss,
        eval_loss: None,
        learning_rate: None,
        epoch: None,
        samples_per_second: None,
        tokens_per_second: None,
        grad_norm: None,
        total_steps: None,
        tokens_seen: None,
    }
}

async fn events_update_the_job_and_resume_after_a_cursor(store: Store) {
    queue_db(&store, 2).await;
    let meta = StartedMetadata { total_steps: 10, start_step: 2, ..StartedMetadata::default() };
    let kinds = [
        EventKind::Started { metadata: Some(meta) },
        log(3, Some(1.5)),
        log(5, None),
        log(4, Some(0.75)),
    ];
    let mut ids = vec![];
    for kind in &kinds {
        let stored = store.append_event("j1", kind).await.unwrap().unwrap();
        assert_eq!(&stored.event.kind, kind);
        assert_eq!(stored.event.job_id, "j1");
        ids.push(stored.id);
    }
    // Another job's event takes an id in between; the cursor is per job.
    let other = store.append_event("j2", &log(1, None)).await.unwrap().unwrap();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let j1 = store.job("j1").await.unwrap().unwrap();
    assert_eq!(j1.status, JobStatus::Running);
    // The step never goes back; a log without a loss keeps the last one.
    assert_eq!((j1.progress.step, j1.progress.total_steps, j1.progress.loss), (5, 10, Some(0.75)));

    let after = |a: u64, limit: u32| {
        let store = store.clone();
        async move {
            let events = store.events_after("j1", a, limit).await.unwrap();
            events.into_iter().map(|e| e.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(after(0, 100).await, ids);
    assert_eq!(after(ids[1], 100).await, ids[2..]);
    assert_eq!(after(0, 2).await, ids[..2]);
    assert_eq!(after(*ids.last().unwrap(), 100).await, Vec::<u64>::new());
    assert!(!after(0, 100).await.contains(&other.id));

    let done = EventKind::Completed {
        metrics: Some(CompletedMetrics { step: 9, train_loss: 0.5 }),
        artifacts: vec![],
    };
    let last = store.append_event("j1", &done).await.unwrap().unwrap();
    let j1 = store.job("j1").await.unwrap().unwrap();
    assert_eq!((j1.status, j1.progress.step), (JobStatus::Completed, 9));
    assert!(j1.completed_at.is_some());
    // A terminal job takes no further event, terminal or not; a missing job takes none.
    let fail = EventKind::Failed { error: "late".into(), step: None };
    assert!(store.append_event("j1", &fail).await.unwrap().is_none());
    assert!(store.append_event("j1", &log(10, None)).await.unwrap().is_none());
    assert!(store.append_event("nope", &log(1, None)).await.unwrap().is_none());
    assert_eq!(after(ids[3], 100).await, [last.id]);

    let failed = store.append_event("j2", &fail).await.unwrap().unwrap();
    assert_eq!(failed.event.kind, fail);
    let j2 = store.job("j2").await.unwrap().unwrap();
    assert_eq!((j2.status, j2.error.as_deref()), (JobStatus::Failed, Some("late")));
}

fn endpoint(id: &str, slug: &str) -> EndpointRow {
    EndpointRow {
        id: id.into(),
        slug: slug.into(),
        org_id: "o".into(),
        project_id: "p".into(),
        target: DeploymentTarget::BaseModel { base_model: "arkor/tiny".into() },
        auth_mode: AuthMode::FixedApiKey,
        enabled: true,
        retention_mode: RetentionMode::Unlimited,
        retention_days: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn request(at: i64, status: u16, latency_ms: u64, key: Option<&str>) -> RequestLog {
    RequestLog {
        created_at: at,
        status,
        latency_ms,
        prompt_tokens: Some(3),
        completion_tokens: (status < 400).then_some(4),
        key_id: key.map(str::to_owned),
        request_body: Some("q".into()),
        response_body: Some("a".into()),
    }
}

async fn endpoints_keys_and_stats(store: Store) {
    scope(&store).await;
    let mut ep = endpoint("ep_1", "one");
    assert!(store.insert_endpoint(&ep).await.unwrap());
    assert!(
        store
            .insert_endpoint(&EndpointRow { created_at: 2, ..endpoint("ep_2", "two") })
            .await
            .unwrap()
    );
    assert!(!store.insert_endpoint(&endpoint("ep_3", "one")).await.unwrap(), "slug taken");
    assert_eq!(store.endpoint("ep_1").await.unwrap().unwrap(), ep);
    assert_eq!(store.endpoint_by_slug("two").await.unwrap().unwrap().id, "ep_2");
    assert!(store.endpoint_by_slug("three").await.unwrap().is_none());
    let listed: Vec<String> =
        store.endpoints_of_project("p").await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(listed, ["ep_1", "ep_2"]);

    ep.target = DeploymentTarget::BaseModel { base_model: "other".into() };
    ep.enabled = false;
    ep.auth_mode = AuthMode::None;
    ep.retention_mode = RetentionMode::Days;
    ep.retention_days = Some(7);
    ep.updated_at = 5;
    store.update_endpoint(&ep).await.unwrap();
    assert_eq!(store.endpoint("ep_1").await.unwrap().unwrap(), ep);

    let key = |id: &str| DeploymentKeyDto {
        id: id.into(),
        label: format!("label {id}"),
        prefix: "ark_live_ab".into(),
        enabled: true,
        created_at: String::new(),
        last_used_at: None,
    };
    store.insert_key("ep_1", &key("k1"), "hash1", 10).await.unwrap();
    store.insert_key("ep_1", &key("k2"), "hash2", 20).await.unwrap();
    assert_eq!(store.use_key("ep_1", "hash1", 30).await.unwrap().as_deref(), Some("k1"));
    assert_eq!(store.use_key("ep_2", "hash1", 30).await.unwrap(), None, "another endpoint's key");
    assert!(store.revoke_key("ep_1", "k2").await.unwrap());
    assert!(!store.revoke_key("ep_2", "k1").await.unwrap());
    assert_eq!(store.use_key("ep_1", "hash2", 40).await.unwrap(), None, "revoked");
    let keys = store.keys_of("ep_1").await.unwrap();
    assert_eq!(
        keys.iter().map(|k| (k.id.as_str(), k.enabled)).collect::<Vec<_>>(),
        [("k1", true), ("k2", false)]
    );
    assert_eq!(keys[0].last_used_at.as_deref(), Some("1970-01-01T00:00:00.030Z"));
    assert_eq!(keys[1].last_used_at, None);
    assert_eq!(keys[0].label, "label k1");

    let now = 1_000 * DAY;
    for (i, latency) in [10u64, 30, 20, 40].into_iter().enumerate() {
        store.log_request(&ep, &request(now + i as i64, 200, latency, Some("k1"))).await.unwrap();
    }
    store.log_request(&ep, &request(now + 9, 500, 999, None)).await.unwrap();
    let stats = store.stats_of("ep_1").await.unwrap();
    assert_eq!((stats.requests, stats.errors), (5, 1));
    assert_eq!((stats.prompt_tokens, stats.completion_tokens), (15, 16));
    assert_eq!((stats.p50_latency_ms, stats.p95_latency_ms), (Some(20), Some(40)));
    assert!(stats.last_used_at.is_some());
    let empty = store.stats_of("ep_2").await.unwrap();
    assert_eq!((empty.requests, empty.errors, empty.p50_latency_ms), (0, 0, None));
    let rows = store.requests_of("ep_1", 2).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| (r.status, r.latency_ms)).collect::<Vec<_>>(),
        [(500, 999), (200, 40)]
    );
    assert_eq!((rows[0].prompt_tokens, rows[0].completion_tokens), (Some(3), None));
    assert_eq!(rows[1].key_id.as_deref(), Some("k1"));

    // Deleting an endpoint takes its keys and log with it.
    store.delete_endpoint("ep_1").await.unwrap();
    assert!(store.endpoint("ep_1").await.unwrap().is_none());
    assert!(store.keys_of("ep_1").await.unwrap().is_empty());
    assert!(store.requests_of("ep_1", 10).await.unwrap().is_empty());
}

async fn retention_prunes_old_rows_and_drops_bodies(store: Store) {
    scope(&store).await;
    let mut ep = EndpointRow {
        auth_mode: AuthMode::None,
        retention_mode: RetentionMode::Days,
        retention_days: Some(2),
        ..endpoint("ep_1", "s1")
    };
    assert!(store.insert_endpoint(&ep).await.unwrap());
    let now = 1_000 * DAY;
    let log = |at: i64| request(at, 200, 5, None);
    // `days`: rows older than 2 days go when the next request is logged.
    store.log_request(&ep, &log(now - 3 * DAY)).await.unwrap();
    store.log_request(&ep, &log(now - DAY)).await.unwrap();
    assert_eq!(store.requests_of("ep_1", 10).await.unwrap().len(), 2);
    store.log_request(&ep, &log(now)).await.unwrap();
    let rows = store.requests_of("ep_1", 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.request_body.as_deref() == Some("q")));
    // `disabled`: the stored bodies go at once, new rows come without them.
    ep.retention_mode = RetentionMode::Disabled;
    ep.retention_days = None;
    store.prune_requests(&ep, now).await.unwrap();
    store.log_request(&ep, &log(now)).await.unwrap();
    let rows = store.requests_of("ep_1", 10).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.request_body.is_none() && r.response_body.is_none()));
    // `unlimited`: nothing goes.
    ep.retention_mode = RetentionMode::Unlimited;
    store.log_request(&ep, &log(now - 900 * DAY)).await.unwrap();
    assert_eq!(store.requests_of("ep_1", 10).await.unwrap().len(), 4);
    // Saving a 1-day retention prunes as of the save.
    ep.retention_mode = RetentionMode::Days;
    ep.retention_days = Some(1);
    ep.updated_at = now;
    store.update_endpoint(&ep).await.unwrap();
    assert_eq!(store.requests_of("ep_1", 10).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backends_starting_at_once_migrate_once() {
    let Some(db) = arkor_test_support::pg::database().await else { return };
    let url: PgUrl = db.url.parse().unwrap();
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await })
        })
        .collect();
    let mut stores = vec![];
    for o in opens {
        stores.push(o.await.unwrap().unwrap());
    }
    let client = stores[0].client().await.unwrap();
    let versions: Vec<i64> = client
        .query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let want: Vec<i64> = (1..=migrations::MIGRATIONS.len() as i64).collect();
    assert_eq!(versions, want);
    // A schema from a newer arkor is refused rather than used.
    client.execute("INSERT INTO schema_migrations VALUES (999, 0)", &[]).await.unwrap();
    drop(client);
    let err = PgStore::connect(&url).await.err().expect("a newer schema is refused");
    assert!(err.to_string().contains("version 999"), "{err}");
    for s in &stores {
        s.close();
    }
    db.drop_database().await;
}

#[test]
fn sqlite_files_keep_their_migration_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arkor.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, migrations::MIGRATIONS.len() as i64);
    drop(conn);
    // Opening again applies nothing and keeps working.
    SqliteStore::open(&path).unwrap();
}

#[test]
fn database_urls_are_checked_and_passwords_kept_out_of_messages() {
    let ok: PgUrl = "postgres://arkor:secret@db.internal:6543/arkor".parse().unwrap();
    assert_eq!(ok.describe(), "postgres://arkor@db.internal:6543/arkor");
    assert!(!format!("{ok:?}").contains("secret"));
    let err = "mysql://u:pw@h/db".parse::<PgUrl>().unwrap_err();
    assert!(err.starts_with("expected postgres://"), "{err}");
    assert!(!err.contains("pw"), "{err}");
    let err = "postgres://u:pw@h:notaport/db".parse::<PgUrl>().unwrap_err();
    assert!(err.contains("expected postgres://") && !err.contains(":pw@"), "{err}");
}

/// Lease terms with no backoff, so an expired job is leased again at once.
const TERMS: LeaseTerms = LeaseTerms { ttl_ms: 60_000, max_attempts: 2, backoff_ms: 0 };

/// Pushes a lease's expiry into the past (what a silent worker's lease comes to).
async fn expire_now(store: &Store, job_id: &str) {
    let id = job_id.to_owned();
    match store {
        Store::Sqlite(s) => s
            .call(move |c| {
                c.execute("UPDATE jobs SET lease_expires_at = 0 WHERE id = ?1", [id])?;
                Ok(())
            })
            .await
            .unwrap(),
        Store::Postgres(p) => {
            let client = p.client().await.unwrap();
            client
                .execute("UPDATE jobs SET lease_expires_at = 0 WHERE id = $1", &[&id])
                .await
                .unwrap();
        }
    }
}

async fn concurrent_leases_each_get_a_different_job(store: Store) {
    const JOBS: usize = 30;
    queue_db(&store, JOBS).await;
    let tasks: Vec<_> = (0..6)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = vec![];
                while let Some(lease) =
                    store.lease_next(&format!("w{w}"), &[], TERMS).await.unwrap()
                {
                    assert_eq!(lease.attempt, 1);
                    assert_eq!(lease.job.status, JobStatus::Running);
                    mine.push(lease.job.id);
                }
                mine
            })
        })
        .collect();
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), JOBS, "every job leased once: {all:?}");
    assert_eq!(distinct.len(), JOBS, "no job leased twice: {all:?}");
    // The backend's own queue finds nothing left either.
    assert!(store.claim_next().await.unwrap().is_none());
}

async fn a_lease_guards_heartbeats_events_and_drops_retried_events(store: Store) {
    queue_db(&store, 1).await;
    let lease = store.lease_next("w", &[], TERMS).await.unwrap().unwrap();
    let (id, token) = (lease.job.id.clone(), lease.token.clone());
    assert_eq!((lease.job.worker.as_deref(), lease.job.attempt), (Some("w"), Some(1)));
    assert_eq!(store.heartbeat(&id, "forged", TERMS).await.unwrap(), LeaseReply::Lost);
    assert_eq!(
        store.heartbeat(&id, &token, TERMS).await.unwrap(),
        LeaseReply::Held { value: (), cancel: false }
    );
    let started = LeasedEvent { seq: 1, event: EventKind::Started { metadata: None } };
    let step = |seq: u64, step: u64| LeasedEvent { seq, event: log(step, Some(1.0 / step as f64)) };
    let forged = store.append_leased(&id, "forged", std::slice::from_ref(&started)).await.unwrap();
    assert_eq!(forged, LeaseReply::Lost);
    let LeaseReply::Held { value: first, .. } =
        store.append_leased(&id, &token, &[started.clone(), step(2, 1)]).await.unwrap()
    else {
        panic!("lease lost")
    };
    assert_eq!(first.len(), 2);
    // A retried post (the answer was lost on the way) appends nothing twice.
    let LeaseReply::Held { value: again, .. } =
        store.append_leased(&id, &token, &[step(2, 1), step(3, 2)]).await.unwrap()
    else {
        panic!("lease lost")
    };
    assert_eq!(again.len(), 1);
    assert!(again[0].id > first[1].id);
    let events = store.events_after(&id, 0, 100).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event.kind.name()).collect();
    assert_eq!(names, ["training.started", "training.log", "training.log"]);
    assert_eq!(store.job(&id).await.unwrap().unwrap().progress.step, 2);
    // The terminal event ends the lease: nothing after it is taken.
    let done = LeasedEvent {
        seq: 4,
        event: EventKind::Completed {
            metrics: Some(CompletedMetrics { step: 2, train_loss: 0.5 }),
            artifacts: vec![],
        },
    };
    assert!(matches!(
        store.append_leased(&id, &token, &[done]).await.unwrap(),
        LeaseReply::Held { .. }
    ));
    assert_eq!(store.job(&id).await.unwrap().unwrap().status, JobStatus::Completed);
    assert_eq!(store.append_leased(&id, &token, &[step(5, 3)]).await.unwrap(), LeaseReply::Lost);
    assert_eq!(store.heartbeat(&id, &token, TERMS).await.unwrap(), LeaseReply::Lost);
    assert_eq!(store.events_after(&id, 0, 100).await.unwrap().len(), 4);
}

async fn expired_leases_requeue_with_backoff_then_fail_naming_the_worker(store: Store) {
    queue_db(&store, 1).await;
    let first = store.lease_next("gpu-1", &[], TERMS).await.unwrap().unwrap();
    let id = first.job.id.clone();
    // Not expired yet: nothing happens.
    assert!(store.expire_leases(TERMS).await.unwrap().is_empty());
    expire_now(&store, &id).await;
    let expired = store.expire_leases(TERMS).await.unwrap();
    assert!(
        matches!(&expired[..], [Expired::Requeued { job_id, worker, attempt: 1 }] if *job_id == id && worker == "gpu-1"),
        "{expired:?}"
    );
    assert_eq!(store.job(&id).await.unwrap().unwrap().status, JobStatus::Queued);
    // The old lease is dead: its late events and heartbeats are refused.
    let late = LeasedEvent { seq: 1, event: log(1, Some(1.0)) };
    assert_eq!(store.append_leased(&id, &first.token, &[late]).await.unwrap(), LeaseReply::Lost);
    assert_eq!(store.heartbeat(&id, &first.token, TERMS).await.unwrap(), LeaseReply::Lost);
    // A backoff holds the requeued job back from the backend's queue and from leases alike.
    let slow = LeaseTerms { backoff_ms: 3_600_000, ..TERMS };
    let second = store.lease_next("gpu-2", &[], TERMS).await.unwrap().unwrap();
    assert_eq!((second.job.id.as_str(), second.attempt), (id.as_str(), 2));
    assert_ne!(second.token, first.token);
    expire_now(&store, &id).await;
    // The second expiry is the last attempt: the job fails, naming the worker, in one event.
    let expired = store.expire_leases(slow).await.unwrap();
    let [Expired::Ended { job_id, event }] = &expired[..] else { panic!("{expired:?}") };
    assert_eq!(job_id, &id);
    let EventKind::Failed { error, .. } = &event.event.kind else { panic!("{event:?}") };
    assert!(error.contains("worker \"gpu-2\"") && error.contains("attempt 2 of 2"), "{error}");
    let failed = store.job(&id).await.unwrap().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some(error.as_str()));
    assert!(store.expire_leases(TERMS).await.unwrap().is_empty());
    let ends = store.events_after(&id, 0, 100).await.unwrap();
    assert_eq!(ends.iter().filter(|e| e.event.kind.is_terminal()).count(), 1);

    // With a backoff, a requeued job waits.
    let mut j = job(2, "backoff");
    j.id = "k".into();
    store.insert_job(&j).await.unwrap();
    let lease = store.lease_next("w", &[], slow).await.unwrap().unwrap();
    expire_now(&store, &lease.job.id).await;
    assert_eq!(store.expire_leases(slow).await.unwrap().len(), 1);
    assert!(store.lease_next("w", &[], slow).await.unwrap().is_none());
    assert!(store.claim_next().await.unwrap().is_none());
}

async fn cancel_of_a_leased_job_reaches_the_worker_or_the_reaper(store: Store) {
    queue_db(&store, 2).await;
    // Not leased: the caller cancels it itself.
    assert!(!store.request_cancel("j1").await.unwrap());
    let a = store.lease_next("w", &[], TERMS).await.unwrap().unwrap();
    let b = store.lease_next("w", &[], TERMS).await.unwrap().unwrap();
    for lease in [&a, &b] {
        assert!(store.request_cancel(&lease.job.id).await.unwrap());
    }
    // The worker hears it at its next heartbeat and at its next event post.
    assert_eq!(
        store.heartbeat(&a.job.id, &a.token, TERMS).await.unwrap(),
        LeaseReply::Held { value: (), cancel: true }
    );
    let ev = LeasedEvent { seq: 1, event: log(1, Some(1.0)) };
    assert!(matches!(
        store.append_leased(&b.job.id, &b.token, &[ev]).await.unwrap(),
        LeaseReply::Held { cancel: true, .. }
    ));
    // A worker that never answers: its lease expires into `cancelled`, not a requeue.
    expire_now(&store, &b.job.id).await;
    let expired = store.expire_leases(TERMS).await.unwrap();
    let [Expired::Ended { event, .. }] = &expired[..] else { panic!("{expired:?}") };
    assert!(matches!(event.event.kind, EventKind::Cancelled { .. }));
    assert_eq!(store.job(&b.job.id).await.unwrap().unwrap().status, JobStatus::Cancelled);
    // Leased jobs are not the backend's own: a restart leaves them to their workers.
    assert!(store.unleased_running().await.unwrap().is_empty());
}

async fn worker_tokens_are_listed_and_revoked(store: Store) {
    queue_db(&store, 1).await;
    let token = store.add_worker("gpu-1").await.unwrap().unwrap();
    assert!(token.starts_with("arkw_"));
    assert!(store.add_worker("gpu-1").await.unwrap().is_none(), "names are unique");
    let hash = crate::util::token_hash(&token);
    assert_eq!(store.worker_by_token(&hash).await.unwrap().as_deref(), Some("gpu-1"));
    assert!(store.worker_by_token("nope").await.unwrap().is_none());
    // A user token is no worker token.
    assert!(store.worker_by_token("h").await.unwrap().is_none());
    let listed = store.workers().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_seen_at.is_some() && listed[0].revoked_at.is_none());

    let lease = store.lease_next("gpu-1", &[], TERMS).await.unwrap().unwrap();
    assert!(store.revoke_worker("gpu-1").await.unwrap());
    assert!(!store.revoke_worker("gpu-1").await.unwrap());
    assert!(store.worker_by_token(&hash).await.unwrap().is_none());
    assert!(store.workers().await.unwrap()[0].revoked_at.is_some());
    // Its lease is expired at once, so the reaper requeues the job.
    let expired = store.expire_leases(TERMS).await.unwrap();
    assert!(matches!(&expired[..], [Expired::Requeued { job_id, .. }] if *job_id == lease.job.id));
}

async fn labels_pick_the_workers_that_may_lease_a_job(store: Store) {
    scope(&store).await;
    let mut gpu = job(1, "gpu");
    gpu.config.worker_labels = vec!["gpu".into(), "a100".into(), "gpu".into()];
    store.insert_job(&gpu).await.unwrap();
    store.insert_job(&job(2, "anywhere")).await.unwrap();
    let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // The backend's own queue and a worker without both labels skip the labelled job.
    let first = store.lease_next("cpu-box", &labels(&["gpu"]), TERMS).await.unwrap().unwrap();
    assert_eq!(first.job.id, "j2");
    assert!(store.lease_next("cpu-box", &labels(&["gpu"]), TERMS).await.unwrap().is_none());
    assert!(store.claim_next().await.unwrap().is_none());
    // A worker with them (and more) takes it.
    let lease =
        store.lease_next("gpu-box", &labels(&["x", "a100", "gpu"]), TERMS).await.unwrap().unwrap();
    assert_eq!(lease.job.id, "j1");
}

async fn a_job_handed_back_is_queued_at_once_without_costing_an_attempt(store: Store) {
    queue_db(&store, 2).await;
    let lease = store.lease_next("w", &[], TERMS).await.unwrap().unwrap();
    let id = lease.job.id.clone();
    assert!(!store.release_lease(&id, "forged").await.unwrap());
    assert!(store.release_lease(&id, &lease.token).await.unwrap());
    assert_eq!(store.job(&id).await.unwrap().unwrap().status, JobStatus::Queued);
    // Its old token is dead; the next lease is attempt 1 again (TERMS allows 2).
    assert_eq!(store.heartbeat(&id, &lease.token, TERMS).await.unwrap(), LeaseReply::Lost);
    let again = store.lease_next("w2", &[], TERMS).await.unwrap().unwrap();
    assert_eq!((again.job.id.as_str(), again.attempt), (id.as_str(), 1));
    // A job whose owner asked to cancel is not handed back: the worker reports the cancel.
    assert!(store.request_cancel(&id).await.unwrap());
    assert!(!store.release_lease(&id, &again.token).await.unwrap());
}
