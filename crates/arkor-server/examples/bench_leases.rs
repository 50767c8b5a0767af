//! Remote-worker bench: lease throughput and latency, and SSE fan-out of remote events.
//!
//! ```text
//! ARKOR_TEST_PG_URL=postgres://postgres@127.0.0.1:55432/postgres \
//! cargo run --release -p arkor-server --example bench_leases -- \
//!     [--workers 20] [--jobs 1000] [--events 2000] [--subscribers 50] [--store postgres|sqlite|both]
//! ```
//!
//! An in-process backend that runs no jobs itself (`max_concurrent_jobs = 0`), on SQLite in
//! a temp data dir or on a fresh PostgreSQL database (`ARKOR_TEST_PG_URL`'s server, dropped
//! afterwards), over real HTTP:
//! 1. `--jobs` queued jobs; `--workers` simulated workers (one HTTP client each) lease them
//!    (long poll), post `training.started` and `training.completed` with the lease token, and
//!    lease again until the queue is empty: leases per second, and p50 / p99 of the lease
//!    and the events calls. Checked: every job leased exactly once and completed.
//! 2. One leased job whose worker posts `--events` `training.log` events one request each
//!    (as `arkor worker` does), followed live by `--subscribers` SSE clients: events per
//!    second delivered in total, and a check that each subscriber got every event once, in
//!    order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arkor_server::{Backend, ServerConfig, WorkerCommand};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

const CLIENT: (&str, &str) = ("X-Arkor-Client", "arkor/0.0.0");

struct Args {
    workers: usize,
    jobs: usize,
    events: usize,
    subscribers: usize,
    stores: Vec<&'static str>,
}

fn args() -> Args {
    let mut a =
        Args { workers: 20, jobs: 1000, events: 2000, subscribers: 50, stores: vec!["postgres"] };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--workers" => a.workers = value().parse().expect("--workers N"),
            "--jobs" => a.jobs = value().parse().expect("--jobs N"),
            "--events" => a.events = value().parse().expect("--events N"),
            "--subscribers" => a.subscribers = value().parse().expect("--subscribers N"),
            "--store" => {
                a.stores = match value().as_str() {
                    "postgres" => vec!["postgres"],
                    "sqlite" => vec!["sqlite"],
                    "both" => vec!["sqlite", "postgres"],
                    other => panic!("--store postgres|sqlite|both, got {other}"),
                }
            }
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

struct Http {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Http {
    async fn post(&self, path: &str, body: Value) -> (reqwest::StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CLIENT.0, CLIENT.1)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("backend answers");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    println!(
        "lease bench: {} workers, {} jobs; fan-out: {} events to {} subscribers",
        a.workers, a.jobs, a.events, a.subscribers
    );
    println!();
    println!(
        "| store | jobs | workers | wall s | leases/s | lease p50 ms | lease p99 ms | events p50 ms | events p99 ms | fan-out events/s delivered |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for kind in &a.stores {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut config = ServerConfig::new(
            tmp.path().to_owned(),
            0,
            WorkerCommand { program: "false".into(), args: vec![] },
        );
        config.max_concurrent_jobs = 0;
        config.keepalive = Duration::from_secs(5);
        let db = if *kind == "postgres" {
            let Some(db) = arkor_test_support::pg::database().await else {
                println!("| postgres | skipped: set ARKOR_TEST_PG_URL |");
                continue;
            };
            config.database = arkor_server::store::Database::Postgres(Box::new(
                db.url.parse().expect("a postgres URL"),
            ));
            Some(db)
        } else {
            None
        };
        let database = config.database.clone();
        let backend = Backend::start(config).await.expect("backend starts");
        // Worker tokens go straight into the backend's store, as `arkor workers add` does.
        let store = arkor_server::store::Store::open(&database, &tmp.path().join("arkor.db"))
            .await
            .expect("the store opens");
        let row = run(&a, &backend, &store).await;
        println!("| {kind} | {row}");
        backend.shutdown().await;
        if let Some(db) = db {
            db.drop_database().await;
        }
    }
}

async fn run(a: &Args, backend: &Backend, store: &arkor_server::store::Store) -> String {
    let base = backend.url();
    let http = reqwest::Client::new();
    let anon: Value = http
        .post(format!("{base}/v1/auth/anonymous"))
        .header(CLIENT.0, CLIENT.1)
        .json(&json!({"kind": "cli"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = Http {
        http: http.clone(),
        base: base.clone(),
        token: anon["token"].as_str().unwrap().into(),
    };
    let org = anon["personalOrg"]["slug"].as_str().unwrap().to_owned();
    let (status, _) =
        user.post(&format!("/v1/projects?orgSlug={org}"), json!({"name": "b", "slug": "b"})).await;
    assert!(status.is_success());
    let scope = format!("orgSlug={org}&projectSlug=b");
    let config =
        json!({"model": "arkor/tiny", "datasetSource": {"type": "huggingface", "name": "a/b"}});
    for i in 0..a.jobs {
        let (status, body) = user
            .post(&format!("/v1/jobs?{scope}"), json!({"name": format!("j{i}"), "config": config}))
            .await;
        assert!(status.is_success(), "{body}");
    }

    let mut tokens = vec![];
    for w in 0..a.workers {
        tokens.push(store.add_worker(&format!("bench-{w}")).await.unwrap().unwrap());
    }

    let started = Instant::now();
    let tasks: Vec<_> = tokens
        .iter()
        .map(|t| {
            let w = Http { http: reqwest::Client::new(), base: base.clone(), token: t.clone() };
            tokio::spawn(async move {
                let (mut lease_ms, mut events_ms, mut got) = (vec![], vec![], vec![]);
                loop {
                    let t0 = Instant::now();
                    let (status, grant) =
                        w.post("/v1/worker/lease", json!({"wait_seconds": 0})).await;
                    lease_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                    if status == reqwest::StatusCode::NO_CONTENT {
                        break;
                    }
                    assert!(status.is_success(), "{grant}");
                    let id = grant["job_id"].as_str().unwrap().to_owned();
                    let token = grant["lease_token"].as_str().unwrap();
                    let body = json!({"lease_token": token, "events": [
                        {"seq": 1, "event": {"type": "training.started"}},
                        {"seq": 2, "event": {"type": "training.completed", "artifacts": []}},
                    ]});
                    let t1 = Instant::now();
                    let (status, answer) =
                        w.post(&format!("/v1/worker/jobs/{id}/events"), body).await;
                    events_ms.push(t1.elapsed().as_secs_f64() * 1e3);
                    assert!(status.is_success(), "{answer}");
                    got.push(id);
                }
                (lease_ms, events_ms, got)
            })
        })
        .collect();
    let (mut lease_ms, mut events_ms, mut leased) = (vec![], vec![], HashMap::<String, u32>::new());
    for t in tasks {
        let (l, e, g) = t.await.unwrap();
        lease_ms.extend(l);
        events_ms.extend(e);
        for id in g {
            *leased.entry(id).or_default() += 1;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(leased.len(), a.jobs, "every job leased");
    assert!(leased.values().all(|&n| n == 1), "no job leased twice");
    let (status, page) = {
        let resp = http
            .get(format!("{base}/v1/jobs?{scope}&status=completed&limit=1"))
            .header(CLIENT.0, CLIENT.1)
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    assert!(status.is_success(), "{page}");
    assert_eq!(page["total"].as_u64(), Some(a.jobs as u64), "every job completed: {page}");
    lease_ms.sort_by(f64::total_cmp);
    events_ms.sort_by(f64::total_cmp);

    let delivered = fan_out(a, &user, &scope, &tokens[0]).await;
    format!(
        "{} | {} | {wall:.2} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {delivered:.0} |",
        a.jobs,
        a.workers,
        a.jobs as f64 / wall,
        pct(&lease_ms, 50.0),
        pct(&lease_ms, 99.0),
        pct(&events_ms, 50.0),
        pct(&events_ms, 99.0),
    )
}

/// Events per second delivered to all subscribers of one remote job.
async fn fan_out(a: &Args, user: &Http, scope: &str, worker_token: &str) -> f64 {
    let config =
        json!({"model": "arkor/tiny", "datasetSource": {"type": "huggingface", "name": "a/b"}});
    let (status, body) =
        user.post(&format!("/v1/jobs?{scope}"), json!({"name": "fan-out", "config": config})).await;
    assert!(status.is_success(), "{body}");
    let job = body["job"]["id"].as_str().unwrap().to_owned();
    let w =
        Http { http: reqwest::Client::new(), base: user.base.clone(), token: worker_token.into() };
    let (status, grant) = w.post("/v1/worker/lease", json!({"wait_seconds": 5})).await;
    assert!(status.is_success(), "{grant}");
    assert_eq!(grant["job_id"].as_str(), Some(job.as_str()));
    let token = grant["lease_token"].as_str().unwrap().to_owned();
    let (status, _) = w
        .post(
            &format!("/v1/worker/jobs/{job}/events"),
            json!({"lease_token": token, "events": [
            {"seq": 1, "event": {"type": "training.started"}}]}),
        )
        .await;
    assert!(status.is_success());
    let mut subs = vec![];
    for _ in 0..a.subscribers {
        let resp = user
            .http
            .get(format!("{}/v1/jobs/{job}/events/stream?{scope}", user.base))
            .header(CLIENT.0, CLIENT.1)
            .header("Accept", "text/event-stream")
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        subs.push(resp);
    }
    let started = Instant::now();
    let readers: Vec<_> = subs
        .into_iter()
        .map(|resp| {
            tokio::spawn(async move {
                let mut steps = vec![];
                let mut stream = resp.bytes_stream().eventsource();
                while let Some(Ok(e)) = stream.next().await {
                    match e.event.as_str() {
                        "training.log" => {
                            let v: Value = serde_json::from_str(&e.data).unwrap();
                            steps.push(v["step"].as_u64().unwrap());
                        }
                        "end" => break,
                        _ => {}
                    }
                }
                steps
            })
        })
        .collect();
    let w = Arc::new(w);
    for step in 1..=a.events as u64 {
        let body = json!({"lease_token": token, "events": [{"seq": step + 1,
            "event": {"type": "training.log", "step": step, "loss": 1.0 / step as f64}}]});
        let (status, answer) = w.post(&format!("/v1/worker/jobs/{job}/events"), body).await;
        assert!(status.is_success(), "{answer}");
    }
    let end = json!({"lease_token": token, "events": [{"seq": a.events as u64 + 2,
        "event": {"type": "training.completed", "artifacts": []}}]});
    assert!(w.post(&format!("/v1/worker/jobs/{job}/events"), end).await.0.is_success());
    let want: Vec<u64> = (1..=a.events as u64).collect();
    for r in readers {
        assert_eq!(r.await.unwrap(), want, "a subscriber missed or repeated an event");
    }
    (a.events * a.subscribers) as f64 / started.elapsed().as_secs_f64()
}
