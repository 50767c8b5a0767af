//! The backend over real HTTP: in-process (`Backend::start`) with the real `arkor`
//! binary as the training worker, or as an `arkor server` child process for the restart
//! tests.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arkor_server::store::{Database, PgUrl};
use arkor_server::{Backend, ServerConfig, WorkerCommand};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) const CLIENT: (&str, &str) = ("X-Arkor-Client", "arkor/0.0.0");

fn worker() -> WorkerCommand {
    WorkerCommand { program: env!("CARGO_BIN_EXE_arkor").into(), args: vec!["__worker".into()] }
}

pub(crate) async fn start(data: &Path, max_jobs: usize) -> Backend {
    start_with(data, |c| c.max_concurrent_jobs = max_jobs).await
}

thread_local! {
    /// The store backends started on this thread use (see [`on_postgres`]).
    static DATABASE: RefCell<Database> = const { RefCell::new(Database::DataDir) };
    /// The bucket backends started on this thread keep artifacts in (see [`on_bucket`]).
    static BUCKET: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `test`, a `#[tokio::test]` function, with every backend it starts keeping its
/// artifacts in a fresh prefix of the test bucket (`--artifacts`), then checks they landed
/// there. Skips when `ARKOR_TEST_S3_URL` is unset outside CI; fails in CI.
pub(crate) fn on_bucket(test: fn()) {
    let Some(bucket) = arkor_test_support::s3::bucket() else { return };
    BUCKET.with(|b| *b.borrow_mut() = Some(bucket.clone()));
    test();
    BUCKET.with(|b| *b.borrow_mut() = None);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let copy = tempfile::tempdir().unwrap();
        let reader = arkor_server::artifacts::Artifacts::open(copy.path().to_owned(), &bucket)
            .await
            .unwrap();
        reader.fetch_dir(copy.path(), |_| true).await.unwrap();
        let adapters = walk(copy.path())
            .into_iter()
            .filter(|p| p.ends_with("adapter_model.safetensors"))
            .count();
        assert!(adapters > 0, "no adapter reached the bucket {bucket}");
    });
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

/// `on_bucket::NAME` for each test NAME of the module: the same test with its artifacts in
/// the test bucket.
macro_rules! also_on_bucket {
    ($($name:ident),* $(,)?) => {
        mod on_bucket {
            $(#[test]
            fn $name() {
                crate::server::on_bucket(super::$name);
            })*
        }
    };
}

also_on_bucket!(
    train_stream_artifacts_and_chat_through_both_apis,
    a_finished_job_exports_to_gguf_and_ollama_and_evaluates_on_held_out_rows,
);

/// Runs `test`, a `#[tokio::test]` function, with every backend it starts on a fresh
/// PostgreSQL database instead of SQLite in its data dir. The test's runtime runs on this
/// thread, so `start_with` sees the choice. Skips when `ARKOR_TEST_PG_URL` is unset outside
/// CI; fails in CI.
pub(crate) fn on_postgres(test: fn()) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(db) = rt.block_on(arkor_test_support::pg::database()) else { return };
    let url: PgUrl = db.url.parse().unwrap();
    DATABASE.with(|d| *d.borrow_mut() = Database::Postgres(Box::new(url)));
    test();
    DATABASE.with(|d| *d.borrow_mut() = Database::DataDir);
    rt.block_on(async {
        // The test's backend really kept its rows there.
        let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let orgs: i64 = client.query_one("SELECT COUNT(*) FROM orgs", &[]).await.unwrap().get(0);
        assert!(orgs > 0, "the backend did not use the PostgreSQL database");
        drop(client);
        db.drop_database().await;
    });
}

/// Whether backends started on this thread use PostgreSQL (inside [`on_postgres`]).
pub(crate) fn on_postgres_now() -> bool {
    DATABASE.with(|d| matches!(*d.borrow(), Database::Postgres(_)))
}

/// `on_postgres::NAME` for each test NAME of the module: the same test on PostgreSQL.
macro_rules! also_on_postgres {
    ($($name:ident),* $(,)?) => {
        mod on_postgres {
            $(#[test]
            fn $name() {
                crate::server::on_postgres(super::$name);
            })*
        }
    };
}
pub(crate) use also_on_postgres;

also_on_postgres!(
    version_gate_auth_and_scoping,
    submission_is_validated_and_listing_pages_and_filters,
    train_stream_artifacts_and_chat_through_both_apis,
    cancel_stops_a_running_job_within_a_step,
    queued_jobs_report_positions_move_to_front_and_cancel,
    the_job_moved_to_the_front_runs_next,
);

/// A backend on a free port with test timings, after `tweak` edits its config.
pub(crate) async fn start_with(data: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> Backend {
    let mut config = ServerConfig::new(data.to_owned(), 0, worker());
    config.cancel_grace = Duration::from_secs(10);
    config.keepalive = Duration::from_millis(500);
    config.device = arkor_engine::device::DeviceChoice::Cpu;
    config.database = DATABASE.with(|d| d.borrow().clone());
    config.artifacts = BUCKET.with(|b| b.borrow().clone());
    tweak(&mut config);
    Backend::start(config).await.unwrap()
}

/// A signed-in client scoped to one project.
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) token: String,
    pub(crate) org: String,
    pub(crate) project: String,
}

impl Api {
    pub(crate) async fn sign_up(base: &str, project: &str) -> Api {
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
        let mut api = Api {
            base: base.to_owned(),
            http,
            token: anon["token"].as_str().unwrap().to_owned(),
            org: anon["personalOrg"]["slug"].as_str().unwrap().to_owned(),
            project: project.to_owned(),
        };
        let (status, _) = api
            .send(
                "POST",
                &format!("/v1/projects?orgSlug={}", api.org),
                Some(json!({"name": project, "slug": project})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        api.project = project.to_owned();
        api
    }

    fn scope(&self) -> String {
        format!("orgSlug={}&projectSlug={}", self.org, self.project)
    }

    pub(crate) fn scoped(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}{}", self.scope())
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method.parse().unwrap(), url)
            .header(CLIENT.0, CLIENT.1)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub(crate) async fn submit(&self, config: Value) -> String {
        let (status, body) = self
            .send(
                "POST",
                &self.scoped("/v1/jobs"),
                Some(json!({"name": "test-run", "config": config})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["job"]["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn job(&self, id: &str) -> Value {
        let (status, body) = self.send("GET", &self.scoped(&format!("/v1/jobs/{id}")), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["job"].clone()
    }

    /// Opens the event stream; yields `(id, event, data)` frames, pings included.
    pub(crate) async fn events(
        &self,
        job: &str,
        last_event_id: Option<&str>,
    ) -> impl futures_util::Stream<Item = (String, String, String)> + Unpin + use<> {
        let mut req = self
            .http
            .get(format!("{}{}", self.base, self.scoped(&format!("/v1/jobs/{job}/events/stream"))))
            .header(CLIENT.0, CLIENT.1)
            .header("Accept", "text/event-stream")
            .bearer_auth(&self.token);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        use eventsource_stream::Eventsource;
        Box::pin(resp.bytes_stream().eventsource().map(|e| {
            let e = e.unwrap();
            (e.id, e.event, e.data)
        }))
    }

    /// Follows the stream to `end`; returns the non-ping frames.
    pub(crate) async fn follow(
        &self,
        job: &str,
        last: Option<&str>,
    ) -> Vec<(String, String, Value)> {
        let mut stream = self.events(job, last).await;
        let mut out = vec![];
        let deadline = Instant::now() + Duration::from_secs(240);
        while let Some((id, event, data)) =
            tokio::time::timeout_at(deadline.into(), stream.next()).await.expect("stream stalled")
        {
            match event.as_str() {
                "ping" => {}
                "end" => return out,
                _ => out.push((id, event, serde_json::from_str(&data).unwrap())),
            }
        }
        panic!("stream closed without `end` after {} events", out.len());
    }
}

/// 8 question/answer pairs, 4 copies each: small enough for arkor/tiny to memorise.
pub(crate) const QA: [(&str, &str); 4] = [
    ("What is arkor?", "A Rust tool to fine-tune LLMs locally."),
    ("Who trained you?", "You did, with arkor."),
    ("What colour is the sky?", "Blue, on a clear day."),
    ("Name a prime number.", "Seven."),
];

pub(crate) fn dataset(dir: &Path) -> PathBuf {
    let rows: String = (0..16)
        .map(|i| {
            let (q, a) = QA[i % QA.len()];
            json!({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
                .to_string()
                + "\n"
        })
        .collect();
    let path = dir.join("train.jsonl");
    std::fs::write(&path, rows).unwrap();
    path
}

pub(crate) fn train_config(data: &Path, max_steps: u64, save_steps: u64) -> Value {
    json!({
        "model": "arkor/tiny",
        "datasetSource": {"type": "jsonl", "path": data},
        "maxSteps": max_steps, "saveSteps": save_steps, "learningRate": 0.01,
        "loraR": 16, "loraAlpha": 32, "batchSize": 4, "warmupSteps": 5,
        "lrSchedulerType": "cosine",
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn version_gate_auth_and_scoping() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 0).await;
    let base = backend.url();
    let http = reqwest::Client::new();

    // 426 with the reference body when the client header is missing or malformed.
    for (header, reason) in
        [(None, "missing"), (Some("curl/8.0"), "malformed"), (Some("arkor/x"), "malformed")]
    {
        let mut req = http.get(format!("{base}/v1/auth/cli/config"));
        if let Some(h) = header {
            req = req.header("X-Arkor-Client", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UPGRADE_REQUIRED);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "sdk_version_unsupported");
        assert_eq!(body["reason"], reason);
        assert_eq!(body["supportedRange"], ">=0.0.0");
    }
    let cfg: Value = http
        .get(format!("{base}/v1/auth/cli/config"))
        .header(CLIENT.0, CLIENT.1)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        cfg,
        json!({"auth0Domain": null, "clientId": null, "audience": null, "callbackPorts": []})
    );

    // No token, a forged token: 401 with a JSON error.
    for auth in [None, Some("Bearer ark_forged")] {
        let mut req = http.get(format!("{base}/v1/me")).header(CLIENT.0, CLIENT.1);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    }

    let alice = Api::sign_up(&base, "alpha").await;
    let bob = Api::sign_up(&base, "beta").await;
    let (status, me) = alice.send("GET", "/v1/me", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["orgs"][0]["slug"], alice.org.as_str());
    assert_eq!(me["user"]["kind"], "anonymous");

    // Projects: list, duplicate slug, bad slug.
    let (_, list) = alice.send("GET", &format!("/v1/projects?orgSlug={}", alice.org), None).await;
    assert_eq!(list["projects"][0]["slug"], "alpha");
    let dup = json!({"name": "again", "slug": "alpha"});
    let (status, _) =
        alice.send("POST", &format!("/v1/projects?orgSlug={}", alice.org), Some(dup)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let bad = json!({"name": "x", "slug": "Bad Slug"});
    let (status, body) =
        alice.send("POST", &format!("/v1/projects?orgSlug={}", alice.org), Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("invalid slug"), "{body}");

    // Another org's job is a 404 whichever way bob asks.
    let data = dataset(tmp.path());
    let job = alice.submit(train_config(&data, 10, 5)).await;
    let (status, _) = bob.send("GET", &bob.scoped(&format!("/v1/jobs/{job}")), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = bob.send("GET", &alice.scoped(&format!("/v1/jobs/{job}")), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) =
        bob.send("POST", &alice.scoped(&format!("/v1/jobs/{job}/cancel")), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = bob.send("GET", &bob.scoped("/v1/jobs"), None).await;
    assert_eq!(listed["jobs"], json!([]));
    let (_, models) = bob.send("GET", "/v1/models", None).await;
    assert!(!models.to_string().contains(&job));
    // Every base the SDK names is listed, each saying whether it is on this machine.
    for id in arkor_protocol::SUPPORTED_MODELS {
        let listed = models["data"].as_array().unwrap().iter().find(|m| m["id"] == id);
        assert!(listed.is_some_and(|m| m["available_offline"].is_boolean()), "{id}: {models}");
    }
    let (status, _) = bob.send("GET", "/v1/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The queue is paused (max jobs 0), so a queued job cancels at once; then 409.
    let (status, body) =
        alice.send("POST", &alice.scoped(&format!("/v1/jobs/{job}/cancel")), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["job"]["status"], "cancelled");
    let (status, body) =
        alice.send("POST", &alice.scoped(&format!("/v1/jobs/{job}/cancel")), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], format!("job {job} already cancelled"));
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn submission_is_validated_and_listing_pages_and_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 0).await;
    let api = Api::sign_up(&backend.url(), "proj").await;
    let data = dataset(tmp.path());

    let cases = [
        (json!({"learningRate": "fast"}), "config.learningRate"),
        (json!({"loraRank": 8}), "unknown field `loraRank`"),
        (json!({"batchSize": 0}), "config.batchSize"),
        (json!({"lrSchedulerType": "wavy"}), "linear, cosine, constant"),
        (json!({"model": "no such model"}), "config.model"),
        (
            json!({"datasetSource": {"type": "jsonl", "path": "/does/not/exist.jsonl"}}),
            "config.datasetSource.path",
        ),
        (
            json!({"datasetSource": {"type": "jsonl", "path": "relative.jsonl"}}),
            "expected an absolute path",
        ),
        (json!({"datasetFormat": "csv"}), "chat (alias chatml)"),
        (json!({"baseQuant": "q3_k"}), "config.baseQuant"),
        (json!({"loadIn4bit": true, "baseQuant": "q8_0"}), "config.loadIn4bit"),
    ];
    for (patch, expected) in cases {
        let mut config = train_config(&data, 10, 5);
        for (k, v) in patch.as_object().unwrap() {
            config[k] = v.clone();
        }
        let (status, body) = api
            .send("POST", &api.scoped("/v1/jobs"), Some(json!({"name": "x", "config": config})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{patch}: {body}");
        let msg = body["error"].as_str().unwrap();
        assert!(msg.contains(expected), "{patch}: expected {expected:?} in {msg:?}");
    }
    let (status, _) = api.send("GET", &api.scoped("/v1/jobs?status=done"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Oversized bodies are refused with a JSON error.
    let huge = json!({"name": "x".repeat(2 << 20), "config": train_config(&data, 1, 1)});
    let (status, body) = api.send("POST", &api.scoped("/v1/jobs"), Some(huge.clone())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // ... and close the connection, whose unread rest cannot carry another request: a
    // client that reused it would see its next request fail mid-flight.
    let resp = reqwest::Client::new()
        .post(format!("{}{}", api.base, api.scoped("/v1/jobs")))
        .header(CLIENT.0, CLIENT.1)
        .bearer_auth(&api.token)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.headers()["connection"], "close");

    // 25 jobs, 5 of them named "special" and cancelled.
    let mut ids = vec![];
    for i in 0..25 {
        let name = if i % 5 == 0 { format!("special-{i}") } else { format!("run-{i}") };
        let (_, body) = api
            .send(
                "POST",
                &api.scoped("/v1/jobs"),
                Some(json!({"name": name, "config": train_config(&data, 10, 5)})),
            )
            .await;
        ids.push(body["job"]["id"].as_str().unwrap().to_owned());
    }
    for id in ids.iter().step_by(5) {
        api.send("POST", &api.scoped(&format!("/v1/jobs/{id}/cancel")), None).await;
    }
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=10&cursor={c}"),
            None => "/v1/jobs?limit=10".to_owned(),
        };
        let (_, page) = api.send("GET", &api.scoped(&path), None).await;
        assert_eq!(page["total"], 25);
        seen.extend(
            page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    let (_, cancelled) = api.send("GET", &api.scoped("/v1/jobs?status=cancelled"), None).await;
    assert_eq!(cancelled["total"], 5);
    let (_, both) =
        api.send("GET", &api.scoped("/v1/jobs?status=cancelled,queued&q=special"), None).await;
    assert_eq!(both["total"], 5);
    let (_, by_id) =
        api.send("GET", &api.scoped(&format!("/v1/jobs?q={}", &ids[3][..12])), None).await;
    assert!(by_id["jobs"].as_array().unwrap().iter().any(|j| j["id"] == ids[3].as_str()));
    let (_, none) = api.send("GET", &api.scoped("/v1/jobs?q=%25"), None).await;
    assert_eq!(none["total"], 0, "LIKE wildcards are escaped");
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn train_stream_artifacts_and_chat_through_both_apis() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 1).await;
    let api = Api::sign_up(&backend.url(), "e2e").await;
    let data = dataset(tmp.path());
    let job = api.submit(train_config(&data, 120, 40)).await;

    // Read part of the stream, drop the connection, resume with Last-Event-ID.
    let mut first = vec![];
    {
        let mut stream = api.events(&job, None).await;
        while first.len() < 5 {
            let (id, event, data) = stream.next().await.unwrap();
            if event != "ping" {
                first.push((id, event, serde_json::from_str::<Value>(&data).unwrap()));
            }
        }
    }
    let rest = api.follow(&job, Some(&first.last().unwrap().0)).await;
    let all: Vec<_> = first.into_iter().chain(rest).collect();

    // Exactly the persisted log: same ids, names and payloads, no gap, no duplicate.
    let (_, with_events) =
        api.send("GET", &api.scoped(&format!("/v1/jobs/{job}?includeEvents=true")), None).await;
    let log = with_events["events"].as_array().unwrap();
    assert_eq!(all.len(), log.len());
    for ((id, event, data), stored) in all.iter().zip(log) {
        assert_eq!(id, &stored["id"].to_string());
        assert_eq!(event, stored["type"].as_str().unwrap());
        assert_eq!(data["type"], stored["type"]);
        assert_eq!(data["jobId"], job.as_str());
        assert_eq!(data["step"], stored["step"]);
        assert_eq!(data["loss"], stored["loss"]);
    }
    let names: Vec<&str> = all.iter().map(|(_, e, _)| e.as_str()).collect();
    assert_eq!(names[0], "training.started");
    assert_eq!(*names.last().unwrap(), "training.completed");
    assert_eq!(names.iter().filter(|n| **n == "checkpoint.saved").count(), 2);
    let losses: Vec<f64> = all
        .iter()
        .filter(|(_, e, _)| e == "training.log")
        .filter_map(|(_, _, d)| d["loss"].as_f64())
        .collect();
    assert_eq!(losses.len(), 120);
    // Tokens seen grow by each step's tokens (16 rows, batch 4: every step trains on some),
    // and the run names the arkor that trained it and the digest of the file it read.
    let seen: Vec<u64> = all
        .iter()
        .filter(|(_, e, d)| e == "training.log" && d["loss"].is_number())
        .map(|(_, _, d)| d["tokensSeen"].as_u64().unwrap())
        .collect();
    assert!(seen.windows(2).all(|w| w[1] > w[0]) && seen[0] > 0, "{seen:?}");
    let meta = &all[0].2["metadata"];
    assert_eq!(meta["arkorVersion"], arkor_protocol::VERSION);
    assert_eq!(meta["datasetSha256"], digest(&std::fs::read(&data).unwrap()));
    let head: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let tail: f64 = losses[115..].iter().sum::<f64>() / 5.0;
    assert!(tail < head / 4.0, "loss went from {head} to {tail}");
    let status = api.job(&job).await;
    assert_eq!(status["status"], "completed");
    assert_eq!(status["progress"]["step"], 120);

    // Artifacts: checkpoints 40 and 80, then final; a download matches its digest.
    let (_, arts) = api.send("GET", &api.scoped(&format!("/v1/jobs/{job}/artifacts")), None).await;
    let sets = arts["artifacts"].as_array().unwrap();
    let kinds: Vec<(String, u64)> = sets
        .iter()
        .map(|s| (s["kind"].as_str().unwrap().to_owned(), s["step"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("checkpoint".into(), 40), ("checkpoint".into(), 80), ("final".into(), 120)]
    );
    let file = sets[2]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["pathname"] == "final/adapter_model.safetensors")
        .unwrap()
        .clone();
    let (_, bytes) = api.download(&job, "final/adapter_model.safetensors").await;
    assert_eq!(bytes.len() as u64, file["size"].as_u64().unwrap());
    use sha2_check::digest;
    assert_eq!(digest(&bytes), file["sha256"].as_str().unwrap());
    let (status, _) =
        api.send("GET", &api.scoped(&format!("/v1/jobs/{job}/artifacts/../job.json")), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // arkor's chat route: the final adapter answers what it was taught, non-streaming
    // and streaming; a checkpoint answers too; the base model says something else.
    let ask = |adapter: Value, stream: bool| {
        let mut body = json!({"messages": [{"role": "user", "content": "What is arkor?"}],
            "temperature": 0, "maxTokens": 40, "stream": stream});
        match adapter {
            Value::String(base) => body["baseModel"] = Value::String(base),
            a => body["adapter"] = a,
        }
        body
    };
    let final_ref = json!({"kind": "final", "jobId": job});
    let (status, reply) = api
        .send("POST", &api.scoped("/v1/inference/chat"), Some(ask(final_ref.clone(), false)))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["choices"][0]["message"]["content"], QA[0].1);
    let (status, streamed) =
        api.send("POST", &api.scoped("/v1/inference/chat"), Some(ask(final_ref, true))).await;
    assert_eq!(status, StatusCode::OK);
    let text: String = streamed
        .as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, QA[0].1);
    assert!(streamed.as_str().unwrap().trim_end().ends_with("data: [DONE]"));
    let ckpt = json!({"kind": "checkpoint", "jobId": job, "step": 80});
    let (status, reply) =
        api.send("POST", &api.scoped("/v1/inference/chat"), Some(ask(ckpt, false))).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(!reply["choices"][0]["message"]["content"].as_str().unwrap().is_empty());
    let missing = json!({"kind": "checkpoint", "jobId": job, "step": 7});
    let (status, reply) =
        api.send("POST", &api.scoped("/v1/inference/chat"), Some(ask(missing, false))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(reply["error"].as_str().unwrap().contains("saved checkpoints: 40, 80"), "{reply}");
    let (_, base) = api
        .send("POST", &api.scoped("/v1/inference/chat"), Some(ask(json!("arkor/tiny"), false)))
        .await;
    assert_ne!(base["choices"][0]["message"]["content"], QA[0].1);

    // The OpenAI-compatible routes through a maintained OpenAI client.
    use async_openai::types::chat::{
        ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs,
    };
    let config = async_openai::config::OpenAIConfig::new()
        .with_api_base(format!("{}/v1", api.base))
        .with_api_key(&api.token);
    let client = async_openai::Client::with_config(config);
    let models = client.models().list().await.unwrap();
    let ids: Vec<&str> = models.data.iter().map(|m| m.id.as_str()).collect();
    let final_id = format!("ft:{job}");
    let ckpt_id = format!("ft:{job}:checkpoint-40");
    assert!(
        ids.contains(&"arkor/tiny")
            && ids.contains(&final_id.as_str())
            && ids.contains(&ckpt_id.as_str()),
        "{ids:?}"
    );
    let request = |model: &str| {
        CreateChatCompletionRequestArgs::default()
            .model(model)
            .temperature(0.0)
            .max_completion_tokens(40u32)
            .messages([ChatCompletionRequestUserMessageArgs::default()
                .content("Who trained you?")
                .build()
                .unwrap()
                .into()])
            .build()
            .unwrap()
    };
    let reply = client.chat().create(request(&final_id)).await.unwrap();
    assert_eq!(reply.choices[0].message.content.as_deref(), Some(QA[1].1));
    let mut stream = client.chat().create_stream(request(&final_id)).await.unwrap();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        if let Some(c) = &chunk.unwrap().choices[0].delta.content {
            text.push_str(c);
        }
    }
    assert_eq!(text, QA[1].1);
    let reply = client.chat().create(request(&ckpt_id)).await.unwrap();
    assert!(reply.choices[0].message.content.is_some());
    let err = client.chat().create(request("ft:job_nope")).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    backend.shutdown().await;
}

/// Waits until the job's stream shows a `training.log`; returns the stream.
async fn wait_for_log(
    api: &Api,
    job: &str,
) -> impl futures_util::Stream<Item = (String, String, String)> + Unpin + use<> {
    let mut stream = api.events(job, None).await;
    loop {
        let (_, event, _) = tokio::time::timeout(Duration::from_secs(120), stream.next())
            .await
            .expect("no training.log in time")
            .expect("stream ended");
        if event == "training.log" {
            return stream;
        }
    }
}

async fn rest_of(
    stream: &mut (impl futures_util::Stream<Item = (String, String, String)> + Unpin),
) -> Vec<(String, Value)> {
    let mut out = vec![];
    while let Some((_, event, data)) =
        tokio::time::timeout(Duration::from_secs(60), stream.next()).await.unwrap()
    {
        match event.as_str() {
            "ping" => {}
            "end" => return out,
            _ => out.push((event, serde_json::from_str(&data).unwrap())),
        }
    }
    panic!("stream closed without end");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_running_job_within_a_step() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 1).await;
    let api = Api::sign_up(&backend.url(), "cancel").await;
    let data = dataset(tmp.path());
    let job = api.submit(train_config(&data, 100_000, 1_000)).await;
    let queued = api.submit(train_config(&data, 10, 5)).await;
    let mut stream = wait_for_log(&api, &job).await;
    assert_eq!(api.job(&queued).await["status"], "queued");
    let asked = Instant::now();
    let (status, body) =
        api.send("POST", &api.scoped(&format!("/v1/jobs/{job}/cancel")), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let rest = rest_of(&mut stream).await;
    let (last, payload) = rest.last().unwrap();
    assert_eq!(last, "training.cancelled", "{rest:?}");
    assert!(payload["step"].as_u64().unwrap() > 0);
    // One tiny step takes well under a second; the grace period before a kill is 10 s.
    assert!(asked.elapsed() < Duration::from_secs(8), "took {:?}", asked.elapsed());
    let j = api.job(&job).await;
    assert_eq!(j["status"], "cancelled");
    assert!(j["completedAt"].is_string());
    let (status, _) = api.send("POST", &api.scoped(&format!("/v1/jobs/{job}/cancel")), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The queue moves on to the next job.
    let events = api.follow(&queued, None).await;
    assert_eq!(events.last().unwrap().1, "training.completed");
    backend.shutdown().await;
}

pub(crate) fn worker_pids(job_dir_fragment: &str) -> Vec<u32> {
    let mut pids = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("__worker") && cmd.contains(job_dir_fragment) {
            pids.push(pid);
        }
    }
    pids
}

fn kill9(pid: u32) {
    let status =
        std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_fails_its_job_and_the_backend_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 1).await;
    let api = Api::sign_up(&backend.url(), "faults").await;
    let data = dataset(tmp.path());
    let job = api.submit(train_config(&data, 100_000, 1_000)).await;
    let mut stream = wait_for_log(&api, &job).await;
    let pids = worker_pids(&job);
    assert_eq!(pids.len(), 1, "one worker for {job}");
    kill9(pids[0]);
    let rest = rest_of(&mut stream).await;
    let (last, payload) = rest.last().unwrap();
    assert_eq!(last, "training.failed");
    let error = payload["error"].as_str().unwrap();
    assert!(error.contains("killed by signal 9"), "{error}");
    let j = api.job(&job).await;
    assert_eq!(j["status"], "failed");
    assert_eq!(j["error"], error);
    let (status, _) = api.send("GET", "/v1/me", None).await;
    assert_eq!(status, StatusCode::OK);
    // And it still trains (this time with the base in 4-bit blocks, as `loadIn4bit` asks).
    let mut config = train_config(&data, 5, 5);
    config["loadIn4bit"] = json!(true);
    let next = api.submit(config).await;
    assert_eq!(api.follow(&next, None).await.last().unwrap().1, "training.completed");
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_backend_per_data_dir_and_a_killed_backend_leaves_no_running_job() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_arkor"))
            .args(["server", "--port", "0", "--data-dir"])
            .arg(&data_dir)
            .env("ARKOR_CPU", "1")
            .env("HF_HUB_OFFLINE", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait_discovery = |data_dir: &Path| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(d) = arkor_server::discover(data_dir) {
                return d;
            }
            assert!(Instant::now() < deadline, "backend did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut first = spawn();
    let found = wait_discovery(&data_dir);
    assert_eq!(found.pid, first.id());

    // A second backend on the same data dir refuses, naming the running one.
    let mut config = ServerConfig::new(data_dir.clone(), 0, worker());
    config.max_concurrent_jobs = 0;
    let err = Backend::start(config.clone()).await.err().expect("second backend refused");
    assert!(err.to_string().contains(&found.url), "{err}");

    let api = Api::sign_up(&found.url, "restart").await;
    let data = dataset(tmp.path());
    let job = api.submit(train_config(&data, 100_000, 20)).await;
    let mut stream = api.events(&job, None).await;
    let mut checkpoint = None;
    while checkpoint.is_none() {
        let (_, event, data) =
            tokio::time::timeout(Duration::from_secs(120), stream.next()).await.unwrap().unwrap();
        if event == "checkpoint.saved" {
            checkpoint = Some(serde_json::from_str::<Value>(&data).unwrap());
        }
    }
    let worker = worker_pids(&job);
    assert_eq!(worker.len(), 1);
    first.kill().unwrap();
    first.wait().unwrap();

    // The orphaned worker notices (its stdin closes) and stops.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !worker_pids(&job).is_empty() {
        assert!(Instant::now() < deadline, "worker outlived its backend");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A new backend marks the job failed; events, database and checkpoints are intact.
    let second = Backend::start(config).await.unwrap();
    let api = Api { base: second.url(), ..api };
    let j = api.job(&job).await;
    assert_eq!(j["status"], "failed");
    assert!(
        j["error"].as_str().unwrap().contains("backend stopped while this job was running"),
        "{j}"
    );
    let events = api.follow(&job, None).await;
    assert_eq!(events.first().unwrap().1, "training.started");
    assert_eq!(events.last().unwrap().1, "training.failed");
    let checkpoint = checkpoint.unwrap();
    for file in checkpoint["artifacts"].as_array().unwrap() {
        let path = data_dir.join("jobs").join(&job).join(file["pathname"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            sha2_check::digest(&bytes),
            file["sha256"].as_str().unwrap(),
            "{}",
            path.display()
        );
    }
    second.shutdown().await;
}

/// SHA-256 through `sha256sum`, independent of the server's implementation.
pub(crate) mod sha2_check {
    pub fn digest(bytes: &[u8]) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_backend_takes_uploaded_datasets_not_paths_on_its_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(tmp.path().join("data"), 0, worker());
    config.max_concurrent_jobs = 0;
    config.local_paths = Some(false);
    let backend = Backend::start(config).await.unwrap();
    let api = Api::sign_up(&backend.url(), "shared").await;
    let data = dataset(tmp.path());

    let (status, body) = api
        .send(
            "POST",
            &api.scoped("/v1/jobs"),
            Some(json!({"name": "x", "config": train_config(&data, 5, 5)})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("POST /v1/datasets"), "{body}");
    // Nor inspect a file of its disk.
    let (status, body) = api
        .send(
            "POST",
            &api.scoped("/v1/datasets/inspect"),
            Some(json!({"config": train_config(&data, 5, 5)})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("POST /v1/datasets"), "{body}");

    let upload = |name: &str, bytes: Vec<u8>| {
        api.http
            .post(format!("{}{}", api.base, api.scoped(&format!("/v1/datasets?filename={name}"))))
            .header(CLIENT.0, CLIENT.1)
            .bearer_auth(&api.token)
            .body(bytes)
            .send()
    };
    let resp = upload("rows.csv", b"a,b".to_vec()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let bytes = std::fs::read(&data).unwrap();
    let resp = upload("train.jsonl", bytes.clone()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let uploaded: Value = resp.json().await.unwrap();
    assert_eq!(uploaded["size"], bytes.len());
    assert_eq!(uploaded["sha256"], sha2_check::digest(&bytes));
    let mut config = train_config(&data, 5, 5);
    config["datasetSource"] = uploaded["datasetSource"].clone();
    let (status, body) = api
        .send("POST", &api.scoped("/v1/jobs"), Some(json!({"name": "x", "config": config})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Another organisation cannot train on it, nor on a model directory of the backend.
    let other = Api::sign_up(&backend.url(), "other").await;
    let (status, _) = other
        .send("POST", &other.scoped("/v1/jobs"), Some(json!({"name": "x", "config": config})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let model_dir = tmp.path().join("some-model");
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::write(model_dir.join("config.json"), "{}").unwrap();
    config["model"] = json!(model_dir);
    let (status, body) = api
        .send("POST", &api.scoped("/v1/jobs"), Some(json!({"name": "x", "config": config})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("does not load model files from its disk"),
        "{body}"
    );
    // Nor GGUF files.
    let gguf = tmp.path().join("model.gguf");
    std::fs::write(&gguf, b"GGUF").unwrap();
    config["model"] = json!(gguf);
    let (status, body) = api
        .send("POST", &api.scoped("/v1/jobs"), Some(json!({"name": "x", "config": config})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("does not load model files from its disk"),
        "{body}"
    );
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dataset_inspector_lists_pages_renders_and_rereads_a_changed_file() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 0).await;
    let api = Api::sign_up(&backend.url(), "data").await;
    let row = |i: usize| {
        json!({"messages": [
            {"role": "system", "content": "You sort tickets."},
            {"role": "user", "content": format!("Ticket {i}: the printer is on fire")},
            {"role": "assistant", "content": "hardware"},
        ]})
        .to_string()
    };
    let mut lines: Vec<String> = (0..120).map(row).collect();
    lines.insert(7, "{\"messages\": [".to_owned());
    lines.push(
        json!({"messages": [
            {"role": "user", "content": "long ".repeat(400)},
            {"role": "assistant", "content": "ok"},
        ]})
        .to_string(),
    );
    let file = tmp.path().join("rows.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let config = json!({
        "model": "arkor/tiny", "datasetSource": {"type": "jsonl", "path": file}, "maxLength": 160,
    });
    let path = api.scoped("/v1/datasets/inspect");
    let inspect = |body: Value| api.send("POST", &path, Some(body));

    let (status, first) =
        inspect(json!({"config": config, "row": 0, "offset": 100, "limit": 30})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let report = &first["report"];
    assert_eq!((report["rows"].as_u64(), report["format"].as_str()), (Some(121), Some("chat")));
    assert_eq!(report["errorCount"], 1);
    assert_eq!(report["errors"][0]["line"], 8, "{report}");
    assert_eq!(report["truncatedCount"], 1);
    assert_eq!(report["truncated"][0]["line"], 122);
    assert_eq!(report["untrainedCount"], 1, "the long row's reply is cut off: {report}");
    // The page: rows 100 to 120 (21 of the 30 asked for), in order, with their lines.
    let items = first["rows"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 21);
    assert_eq!((items[0]["index"].as_u64(), items[0]["line"].as_u64()), (Some(100), Some(102)));
    assert!(items[0]["preview"].as_str().unwrap().contains("Ticket 100"), "{}", items[0]);
    // The rendered row: the system prompt and question are context, the reply is trained.
    let tokens = first["row"]["tokens"].as_array().unwrap();
    let text = |trained: bool| -> String {
        tokens
            .iter()
            .filter(|t| t["trained"] == trained)
            .map(|t| t["text"].as_str().unwrap())
            .collect()
    };
    assert!(text(false).contains("You sort tickets.") && text(false).contains("on fire"));
    assert!(text(true).contains("hardware") && !text(true).contains("tickets"), "{}", text(true));
    assert!(tokens.iter().any(|t| t["special"] == true));
    assert_eq!(first["cached"], false);

    // The next row comes from memory; a changed file is read again.
    let (_, again) = inspect(json!({"config": config, "row": 120})).await;
    assert_eq!(
        (again["cached"].as_bool(), again["row"]["row"]["line"].as_u64()),
        (Some(true), Some(122))
    );
    lines.push(row(120));
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (_, changed) = inspect(json!({"config": config})).await;
    assert_eq!(
        (changed["cached"].as_bool(), changed["report"]["rows"].as_u64()),
        (Some(false), Some(122))
    );

    // Bad requests say what is wrong.
    // A row past the end is said next to the report, which still stands.
    let (status, body) = inspect(json!({"config": config, "row": 500})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["rowError"].as_str().unwrap().contains("row 500 does not exist"), "{body}");
    assert_eq!((body["row"].is_null(), body["report"]["rows"].as_u64()), (true, Some(122)));
    let mut missing = config.clone();
    missing["datasetSource"]["path"] = json!(tmp.path().join("nope.jsonl"));
    let (status, body) = inspect(json!({"config": missing})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("nope.jsonl"), "{body}");
    let mut remote = config.clone();
    remote["model"] = json!("someone/not-downloaded-model");
    let (status, body) = inspect(json!({"config": remote})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("not on this machine yet"), "{body}");
    let (status, body) = inspect(json!({"config": config, "rows": 3})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("rows"), "{body}");
    backend.shutdown().await;
}

impl Api {
    pub(crate) async fn download(&self, job: &str, pathname: &str) -> (StatusCode, Vec<u8>) {
        let resp = self
            .http
            .get(format!(
                "{}{}",
                self.base,
                self.scoped(&format!("/v1/jobs/{job}/artifacts/{pathname}"))
            ))
            .header(CLIENT.0, CLIENT.1)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.bytes().await.unwrap().to_vec())
    }

    /// Starts an export and polls the list until it ends.
    pub(crate) async fn export(&self, job: &str, body: Value) -> Value {
        let (status, started) =
            self.send("POST", &self.scoped(&format!("/v1/jobs/{job}/export")), Some(body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{started}");
        assert_eq!(started["status"], "running");
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (_, list) =
                self.send("GET", &self.scoped(&format!("/v1/jobs/{job}/exports")), None).await;
            let info = list["exports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["id"] == started["id"])
                .unwrap()
                .clone();
            if info["status"] != "running" {
                return info;
            }
            assert!(Instant::now() < deadline, "export still running: {info}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_job_exports_to_gguf_and_ollama_and_evaluates_on_held_out_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 1).await;
    let api = Api::sign_up(&backend.url(), "exports").await;
    let data = dataset(tmp.path());
    let job = api.submit(train_config(&data, 80, 40)).await;
    api.follow(&job, None).await;

    // Bad requests name the field; another organisation's job is a 404.
    for (body, wanted) in [
        (
            json!({"format": "safetensors"}),
            "invalid format: expected one of hf, gguf, gguf-lora, ollama",
        ),
        (json!({"format": "gguf", "quant": "q9"}), "invalid quant"),
        (json!({"format": "gguf", "checkpointStep": 7}), "no checkpoint at step 7"),
        (json!({"format": "gguf", "colour": "red"}), "colour"),
    ] {
        let (status, reply) =
            api.send("POST", &api.scoped(&format!("/v1/jobs/{job}/export")), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert!(reply["error"].as_str().unwrap().contains(wanted), "{reply}");
    }
    let stranger = Api::sign_up(&backend.url(), "other").await;
    let (status, _) = stranger
        .send(
            "POST",
            &stranger.scoped(&format!("/v1/jobs/{job}/export")),
            Some(json!({"format": "gguf"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let gguf = api.export(&job, json!({"format": "gguf", "quant": "f32"})).await;
    assert_eq!(gguf["status"], "completed", "{gguf}");
    assert_eq!((gguf["source"].as_str(), gguf["quant"].as_str()), (Some("final"), Some("f32")));
    let files = gguf["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{gguf}");
    let pathname = files[0]["pathname"].as_str().unwrap();
    assert!(
        pathname.starts_with("exports/exp_") && pathname.ends_with("test-run-f32.gguf"),
        "{pathname}"
    );
    let (status, bytes) = api.download(&job, pathname).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes.len() as u64, files[0]["size"].as_u64().unwrap());
    assert_eq!(sha2_check::digest(&bytes), files[0]["sha256"].as_str().unwrap());
    let export_dir = pathname.rsplit_once('/').unwrap().0;
    let (status, _) = api.download(&job, &format!("{export_dir}/task.json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.download(&job, "exports/../job.json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // llama.cpp running the downloaded file answers what the backend's chat answers.
    if let Some(script) = arkor_test_support::real::llama_cpp_script() {
        let file = tmp.path().join("downloaded.gguf");
        std::fs::write(&file, &bytes).unwrap();
        let (_, reply) = api
            .send(
                "POST",
                &api.scoped("/v1/inference/chat"),
                Some(json!({"messages": [{"role": "user", "content": QA[0].0}], "temperature": 0,
                    "maxTokens": 40, "stream": false, "adapter": {"kind": "final", "jobId": job}})),
            )
            .await;
        let tiny = arkor_engine::tiny::ensure_tiny_model(tmp.path()).unwrap();
        let tokenizer = arkor_engine::tokenizer::TextTokenizer::from_dir(&tiny).unwrap();
        let messages =
            [arkor_engine::tokenizer::ChatMessage { role: "user".into(), content: QA[0].0.into() }];
        let prompt =
            tokenizer.encode(&tokenizer.render_chat(&messages, true).unwrap(), false).unwrap();
        let ids = serde_json::to_string(&prompt).unwrap();
        let answer = arkor_test_support::real::llama_cpp(
            &script,
            &[
                "greedy",
                "--model",
                file.to_str().unwrap(),
                "--prompt-ids",
                &ids,
                "--max-tokens",
                "40",
            ],
        );
        let mut theirs: Vec<u32> = serde_json::from_value(answer["ids"].clone()).unwrap();
        if answer["stopped"] == "eog" {
            theirs.pop();
        }
        let backend_says = reply["choices"][0]["message"]["content"].as_str();
        assert_eq!(
            Some(tokenizer.decode(&theirs, true).unwrap().as_str()),
            backend_says,
            "{reply}"
        );
    }

    let ollama =
        api.export(&job, json!({"format": "ollama", "quant": "q8_0", "checkpointStep": 40})).await;
    assert_eq!(ollama["status"], "completed", "{ollama}");
    assert_eq!(ollama["source"], "checkpoint-40");
    let names: Vec<&str> = ollama["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pathname"].as_str().unwrap())
        .collect();
    assert!(names.iter().any(|n| n.ends_with("test-run-ollama/Modelfile")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("test-run-ollama/model-q8_0.gguf")), "{names:?}");
    assert_eq!(ollama["ollamaCreate"], "ollama create test-run -f test-run-ollama/Modelfile");
    let (_, list) = api.send("GET", &api.scoped(&format!("/v1/jobs/{job}/exports")), None).await;
    let ids: Vec<&Value> = list["exports"].as_array().unwrap().iter().map(|e| &e["id"]).collect();
    assert_eq!(ids, [&ollama["id"], &gguf["id"]], "newest first");

    // Evaluations: the final adapter recites its training answers; the report downloads.
    let heldout = tmp.path().join("heldout.jsonl");
    std::fs::copy(&data, &heldout).unwrap();
    for (body, wanted) in [
        (json!({"datasetPath": "heldout.jsonl"}), "invalid datasetPath: expected an absolute path"),
        (json!({"datasetPath": heldout, "maxTokens": 0}), "invalid maxTokens"),
        (json!({"datasetPath": heldout, "checkpointStep": 3}), "no checkpoint at step 3"),
    ] {
        let (status, reply) =
            api.send("POST", &api.scoped(&format!("/v1/jobs/{job}/eval")), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert!(reply["error"].as_str().unwrap().contains(wanted), "{reply}");
    }
    let (status, started) = api
        .send(
            "POST",
            &api.scoped(&format!("/v1/jobs/{job}/eval")),
            Some(json!({"datasetPath": heldout, "maxTokens": 40})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let deadline = Instant::now() + Duration::from_secs(180);
    let done = loop {
        let (_, list) = api.send("GET", &api.scoped(&format!("/v1/jobs/{job}/evals")), None).await;
        let e = list["evals"][0].clone();
        if e["status"] != "running" {
            break e;
        }
        assert!(Instant::now() < deadline, "eval still running: {e}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!((done["source"].as_str(), done["step"].as_u64()), (Some("final"), Some(80)));
    assert_eq!(done["scores"]["rows"], 16);
    assert!(done["scores"]["exactMatch"].as_u64().unwrap() >= 12, "{done}");
    let (status, report) = api.download(&job, done["reportPathname"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let report: Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["rows"].as_array().unwrap().len(), 16);
    backend.shutdown().await;
}

/// Submits a job named `name`; returns its id and the queue position it was created with.
async fn submit_named(api: &Api, name: &str, config: Value) -> (String, Value) {
    let (status, body) = api
        .send("POST", &api.scoped("/v1/jobs"), Some(json!({"name": name, "config": config})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (body["job"]["id"].as_str().unwrap().to_owned(), body["job"]["queuePosition"].clone())
}

/// The project's jobs as `name status[ #position]`, oldest first, from `GET /v1/jobs`; each
/// position also checked against `GET /v1/jobs/:id`.
async fn check_queue(api: &Api, expected: &[&str]) {
    let (status, page) = api.send("GET", &api.scoped("/v1/jobs?limit=200"), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut got = vec![];
    for job in page["jobs"].as_array().unwrap().iter().rev() {
        let mut line =
            format!("{} {}", job["name"].as_str().unwrap(), job["status"].as_str().unwrap());
        match &job["queuePosition"] {
            Value::Null => {}
            p => line += &format!(" #{p}"),
        }
        let one = api.job(job["id"].as_str().unwrap()).await;
        assert_eq!(one["queuePosition"], job["queuePosition"], "{line}");
        got.push(line);
    }
    assert_eq!(got, expected);
}

/// Issue #15: queued jobs report their place in the queue; moving one to the front and
/// cancelling one reorder the rest, on a paused queue (nothing starts).
#[tokio::test(flavor = "multi_thread")]
async fn queued_jobs_report_positions_move_to_front_and_cancel() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 0).await;
    let api = Api::sign_up(&backend.url(), "queue").await;
    let data = dataset(tmp.path());
    let mut ids = vec![];
    for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let (id, position) = submit_named(&api, name, train_config(&data, 10, 5)).await;
        assert_eq!(position, json!(i + 1), "{name} is created at the back of the queue");
        ids.push(id);
    }
    check_queue(&api, &["a queued #1", "b queued #2", "c queued #3", "d queued #4"]).await;
    let api_ref = &api;
    let move_to_front = move |id: &str| {
        let path = api_ref.scoped(&format!("/v1/jobs/{id}/move-to-front"));
        async move { api_ref.send("POST", &path, None).await }
    };

    let (status, body) = move_to_front(&ids[3]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["job"]["queuePosition"], 1);
    check_queue(&api, &["a queued #2", "b queued #3", "c queued #4", "d queued #1"]).await;
    let (status, _) = move_to_front(&ids[2]).await;
    assert_eq!(status, StatusCode::OK);
    check_queue(&api, &["a queued #3", "b queued #4", "c queued #1", "d queued #2"]).await;

    // Cancelling a queued job takes it out of the queue; the jobs behind it move up.
    let (status, body) =
        api.send("POST", &api.scoped(&format!("/v1/jobs/{}/cancel", ids[3])), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["job"]["queuePosition"], Value::Null);
    check_queue(&api, &["a queued #2", "b queued #3", "c queued #1", "d cancelled"]).await;
    // A job submitted now queues behind the moved one.
    submit_named(&api, "e", train_config(&data, 10, 5)).await;
    check_queue(&api, &["a queued #2", "b queued #3", "c queued #1", "d cancelled", "e queued #4"])
        .await;

    // Only a queued job moves: 409 saying why; an unknown job or another project's is 404.
    let (status, body) = move_to_front(&ids[3]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["error"],
        format!(
            "job {} is cancelled, not queued: only a queued job can be moved to the front",
            ids[3]
        )
    );
    assert_eq!(body["code"], "conflict");
    let (status, body) = move_to_front("job_nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "job job_nope not found");
    let other = Api::sign_up(&backend.url(), "other").await;
    let (status, _) = other
        .send("POST", &other.scoped(&format!("/v1/jobs/{}/move-to-front", ids[0])), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    check_queue(&api, &["a queued #2", "b queued #3", "c queued #1", "d cancelled", "e queued #4"])
        .await;
    backend.shutdown().await;
}

/// Issue #15: with one slot, the job moved to the front is the next to run, and a running
/// job cannot be moved.
#[tokio::test(flavor = "multi_thread")]
async fn the_job_moved_to_the_front_runs_next() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start(tmp.path(), 1).await;
    let api = Api::sign_up(&backend.url(), "queue-run").await;
    let data = dataset(tmp.path());
    let (long, _) = submit_named(&api, "long", train_config(&data, 100_000, 1_000)).await;
    let mut stream = wait_for_log(&api, &long).await;
    let (first, _) = submit_named(&api, "first", train_config(&data, 100_000, 1_000)).await;
    let (second, _) = submit_named(&api, "second", train_config(&data, 100_000, 1_000)).await;
    check_queue(&api, &["long running", "first queued #1", "second queued #2"]).await;

    let (status, body) =
        api.send("POST", &api.scoped(&format!("/v1/jobs/{long}/move-to-front")), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains("is running, not queued"), "{body}");
    let (status, _) =
        api.send("POST", &api.scoped(&format!("/v1/jobs/{second}/move-to-front")), None).await;
    assert_eq!(status, StatusCode::OK);
    check_queue(&api, &["long running", "first queued #2", "second queued #1"]).await;

    let (status, _) = api.send("POST", &api.scoped(&format!("/v1/jobs/{long}/cancel")), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    rest_of(&mut stream).await;
    let mut next = wait_for_log(&api, &second).await;
    check_queue(&api, &["long cancelled", "first queued #1", "second running"]).await;
    for id in [&first, &second] {
        api.send("POST", &api.scoped(&format!("/v1/jobs/{id}/cancel")), None).await;
    }
    rest_of(&mut next).await;
    check_queue(&api, &["long cancelled", "first cancelled", "second cancelled"]).await;
    backend.shutdown().await;
}

#[test]
fn a_bad_or_unreachable_database_names_the_flag_and_hides_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |flag: Option<&str>, env: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_arkor"));
        cmd.args(["server", "--port", "0", "--data-dir"]).arg(tmp.path());
        cmd.env_remove("ARKOR_DATABASE_URL");
        if let Some(url) = flag {
            cmd.args(["--database", url]);
        }
        if let Some(url) = env {
            cmd.env("ARKOR_DATABASE_URL", url);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(Some("mysql://u:hunter2@h/db"), None);
    assert!(
        err.contains("invalid --database (or ARKOR_DATABASE_URL): expected postgres://"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let err = run(None, Some("postgres://u:hunter2@127.0.0.1:1/db"));
    assert!(
        err.contains("failed to open the database postgres://u@127.0.0.1:1/db (--database)"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn arkor_server_runs_on_postgres_with_the_database_flag() {
    let Some(db) = arkor_test_support::pg::database().await else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_arkor"))
        .args(["server", "--port", "0", "--data-dir"])
        .arg(tmp.path())
        .args(["--database", &db.url])
        .env("ARKOR_CPU", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        if let Some(d) = arkor_server::discover(tmp.path()) {
            break d.url;
        }
        assert!(Instant::now() < deadline, "the backend did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let api = Api::sign_up(&url, "on-pg").await;
    let (status, body) = api.send("GET", &api.scoped("/v1/jobs"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    child.kill().unwrap();
    child.wait().unwrap();
    // The identity and the project are rows in PostgreSQL, not in the data dir.
    assert!(!tmp.path().join("arkor.db").exists());
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let n: i64 = client
        .query_one("SELECT COUNT(*) FROM projects WHERE slug = 'on-pg'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    drop(client);
    db.drop_database().await;
}
