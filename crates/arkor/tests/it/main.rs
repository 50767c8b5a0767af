//! The SDK against a scripted fake backend (axum on loopback): every stream connection
//! takes the next scripted answer, and the fake records what the SDK sent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arkor::{CancellationToken, Connection, Dataset, Model, ProjectScope, Trainer};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// One answer of the stream route.
#[derive(Clone)]
enum Answer {
    /// An HTTP error status.
    Status(u16),
    /// `200` with these SSE frames, then the connection closes.
    Frames(Vec<String>),
    /// `200`, these frames, then the connection breaks mid-body (a network error).
    Broken(Vec<String>),
    /// `200`, then never sends anything (for abort tests).
    Hang,
}

#[derive(Default)]
struct Fake {
    answers: Mutex<VecDeque<Answer>>,
    last_event_ids: Mutex<Vec<Option<String>>>,
    creates: Mutex<u32>,
    cancels: Mutex<u32>,
    eval_bodies: Mutex<Vec<Value>>,
    eval_polls: Mutex<u32>,
}

fn frame(id: u64, data: Value) -> String {
    let ty = data["type"].as_str().unwrap().to_owned();
    let mut data = data;
    data["jobId"] = json!("job_1");
    data["timestamp"] = json!("2026-11-23T00:00:00.000Z");
    format!("id: {id}\nevent: {ty}\ndata: {data}\n\n")
}

fn log(id: u64, step: u64) -> String {
    frame(id, json!({"type": "training.log", "step": step, "loss": 1.0 / step as f64}))
}

fn completed(id: u64) -> String {
    frame(
        id,
        json!({"type": "training.completed", "artifacts": [{"pathname": "final/adapter_model.safetensors", "size": 1, "sha256": "00"}]}),
    )
}

fn job() -> Value {
    json!({"id": "job_1", "orgId": "org", "projectId": "prj", "name": "t", "status": "queued",
        "config": {"model": "arkor/tiny"}, "error": null, "createdAt": "2026-11-23T00:00:00.000Z",
        "startedAt": null, "completedAt": null, "progress": {"step": 0, "totalSteps": 0, "loss": null}})
}

async fn serve(answers: Vec<Answer>) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake { answers: Mutex::new(answers.into()), ..Fake::default() });
    async fn create(State(f): State<Arc<Fake>>) -> Response {
        *f.creates.lock().unwrap() += 1;
        // Slow enough that concurrent start() calls overlap.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (StatusCode::CREATED, axum::Json(json!({"job": job()}))).into_response()
    }
    async fn cancel(State(f): State<Arc<Fake>>) -> Response {
        *f.cancels.lock().unwrap() += 1;
        (StatusCode::ACCEPTED, axum::Json(json!({"job": job()}))).into_response()
    }
    async fn stream(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
        let last = headers.get("last-event-id").map(|v| v.to_str().unwrap().to_owned());
        f.last_event_ids.lock().unwrap().push(last);
        let answer = f.answers.lock().unwrap().pop_front().unwrap_or(Answer::Status(500));
        match answer {
            Answer::Status(s) => (
                StatusCode::from_u16(s).unwrap(),
                axum::Json(json!({"error": format!("scripted {s}")})),
            )
                .into_response(),
            Answer::Frames(frames) => {
                ([("content-type", "text/event-stream")], frames.concat()).into_response()
            }
            Answer::Broken(frames) => {
                use futures_util::StreamExt;
                let frames =
                    futures_util::stream::iter(frames.into_iter().map(Ok::<_, std::io::Error>));
                // Let the frames reach the client before the connection breaks.
                let reset = futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err(std::io::Error::other("connection reset"))
                });
                let body = axum::body::Body::from_stream(frames.chain(reset));
                ([("content-type", "text/event-stream")], body).into_response()
            }
            Answer::Hang => {
                let body = axum::body::Body::from_stream(futures_util::stream::pending::<
                    Result<String, std::io::Error>,
                >());
                ([("content-type", "text/event-stream")], body).into_response()
            }
        }
    }
    async fn eval(State(f): State<Arc<Fake>>, axum::Json(body): axum::Json<Value>) -> Response {
        f.eval_bodies.lock().unwrap().push(body);
        (StatusCode::ACCEPTED, axum::Json(eval_record("running"))).into_response()
    }
    async fn evals(State(f): State<Arc<Fake>>) -> Response {
        let mut polls = f.eval_polls.lock().unwrap();
        *polls += 1;
        // Running on the first poll, completed on the second.
        let status = if *polls < 2 { "running" } else { "completed" };
        axum::Json(json!({"evals": [eval_record(status)]})).into_response()
    }
    let app = Router::new()
        .route("/v1/jobs", post(create))
        .route("/v1/jobs/{id}/eval", post(eval))
        .route("/v1/jobs/{id}/evals", get(evals))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/jobs/{id}/events/stream", get(stream))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

fn eval_record(status: &str) -> Value {
    let mut record = json!({"id": "eval_1", "source": "checkpoint-1", "step": 1, "dataset": "held.jsonl",
        "status": status, "createdAt": "2026-11-23T00:00:00.000Z"});
    if status == "completed" {
        record["scores"] = json!({"rows": 4, "exactMatch": 3, "jsonRows": 0, "jsonValid": 0, "perKey": {},
            "allKeysCorrect": 0, "elapsedSecs": 1.5, "tokensGenerated": 40});
    }
    record
}

fn connection(url: &str) -> Connection {
    Connection {
        base_url: Some(url.to_owned()),
        token: Some("ark_test".to_owned()),
        scope: Some(ProjectScope { org_slug: "o".into(), project_slug: "p".into() }),
        cwd: Some(std::env::temp_dir()),
        reconnect_delay: Duration::from_millis(10),
        max_reconnect_delay: Duration::from_millis(40),
        ..Connection::default()
    }
}

fn builder(url: &str) -> arkor::TrainerBuilder {
    Trainer::builder("t", Model::arkor_tiny(), Dataset::huggingface("a/b"))
        .connection(connection(url))
}

#[tokio::test]
async fn permanent_statuses_fail_at_once() {
    for status in [401, 403, 410, 426] {
        let (url, fake) = serve(vec![Answer::Status(status)]).await;
        let err = builder(&url).build().unwrap().wait().await.unwrap_err();
        assert_eq!(fake.last_event_ids.lock().unwrap().len(), 1, "{status}: one attempt only");
        match status {
            426 => assert!(err.to_string().contains("no longer supported"), "{err}"),
            s => assert!(err.to_string().contains(&format!("scripted {s}")), "{err}"),
        }
    }
}

#[tokio::test]
async fn transient_statuses_retry_and_resume_after_the_last_event() {
    let answers = vec![
        Answer::Status(404),
        Answer::Status(408),
        Answer::Status(429),
        Answer::Status(500),
        Answer::Status(503),
        Answer::Frames(vec![log(1, 1), log(2, 2)]),
        // A connection that breaks mid-stream resumes after the last event it delivered.
        Answer::Broken(vec![log(3, 3)]),
        // Ping-only and garbage-only connections count as failures but keep the cursor.
        Answer::Frames(vec!["id: 4\nevent: ping\ndata: \n\n".into()]),
        Answer::Frames(vec!["id: 5\nevent: training.log\ndata: {not json\n\n".into()]),
        Answer::Frames(vec![log(6, 4), completed(7), "event: end\ndata: {}\n\n".into()]),
    ];
    let (url, fake) = serve(answers).await;
    let steps = Arc::new(Mutex::new(vec![]));
    let s = steps.clone();
    let result = builder(&url)
        .on_log(move |ctx| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(ctx.step);
                Ok(())
            }
        })
        .build()
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(result.job.status, arkor::JobStatus::Completed);
    assert_eq!(result.artifacts.len(), 1);
    assert_eq!(*steps.lock().unwrap(), [1, 2, 3, 4]);
    let ids = fake.last_event_ids.lock().unwrap().clone();
    let expected: Vec<Option<String>> =
        [None, None, None, None, None, None, Some("2"), Some("3"), Some("4"), Some("5")]
            .map(|s| s.map(str::to_owned))
            .to_vec();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn a_reconnect_limit_gives_up() {
    let (url, fake) = serve(vec![Answer::Status(500); 10]).await;
    let mut c = connection(&url);
    c.max_reconnect_attempts = Some(2);
    let err = builder(&url).connection(c).build().unwrap().wait().await.unwrap_err();
    assert!(err.to_string().contains("failed 3 consecutive times"), "{err}");
    assert_eq!(fake.last_event_ids.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn concurrent_starts_submit_once() {
    let (url, fake) = serve(vec![]).await;
    let trainer = builder(&url).build().unwrap();
    let clone = trainer.clone();
    let (a, b, c) = tokio::join!(trainer.start(), trainer.start(), clone.start());
    assert_eq!(a.unwrap().id, "job_1");
    assert_eq!(b.unwrap().id, c.unwrap().id);
    trainer.start().await.unwrap();
    assert_eq!(*fake.creates.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_callback_error_ends_wait_without_retry() {
    let (url, fake) = serve(vec![Answer::Frames(vec![log(1, 1), log(2, 2), completed(3)])]).await;
    let err = builder(&url)
        .on_log(
            |ctx| async move { if ctx.step == 2 { Err("step two is bad".into()) } else { Ok(()) } },
        )
        .build()
        .unwrap()
        .wait()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("on_log callback failed: step two is bad"), "{err}");
    assert_eq!(fake.last_event_ids.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn callbacks_run_in_order_one_at_a_time() {
    let frames = vec![
        frame(1, json!({"type": "training.started"})),
        log(2, 1),
        frame(3, json!({"type": "checkpoint.saved", "step": 1, "artifacts": []})),
        log(4, 2),
        frame(5, json!({"type": "training.failed", "error": "out of memory"})),
    ];
    let (url, _) = serve(vec![Answer::Frames(frames)]).await;
    let seen = Arc::new(Mutex::new(vec![]));
    let push = |name: &'static str, seen: &Arc<Mutex<Vec<String>>>| {
        let seen = seen.clone();
        move |label: String| {
            let seen = seen.clone();
            async move {
                // A slow callback must still finish before the next one starts.
                tokio::time::sleep(Duration::from_millis(20)).await;
                seen.lock().unwrap().push(format!("{name}:{label}"));
                Ok::<(), arkor::BoxError>(())
            }
        }
    };
    let (s, l, c, f) = (
        push("started", &seen),
        push("log", &seen),
        push("checkpoint", &seen),
        push("failed", &seen),
    );
    let result = builder(&url)
        .on_started(move |ctx| s(ctx.job.status.as_str().to_owned()))
        .on_log(move |ctx| l(ctx.step.to_string()))
        .on_checkpoint(move |ctx| c(format!("{:?}", ctx.adapter)))
        .on_failed(move |ctx| f(ctx.error))
        .build()
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(result.job.status, arkor::JobStatus::Failed);
    assert_eq!(result.job.error.as_deref(), Some("out of memory"));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "started:running",
            "log:1",
            "checkpoint:Checkpoint { job_id: \"job_1\", step: 1 }",
            "log:2",
            "failed:out of memory"
        ]
    );
}

#[tokio::test]
async fn the_abort_token_stops_waiting_but_cancel_stops_the_job() {
    let (url, fake) = serve(vec![Answer::Hang]).await;
    let token = CancellationToken::new();
    let trainer = builder(&url).abort_token(token.clone()).build().unwrap();
    let waiting = tokio::spawn({
        let t = trainer.clone();
        async move { t.wait().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel();
    let err = waiting.await.unwrap().unwrap_err();
    assert!(matches!(err, arkor::Error::Aborted), "{err}");
    assert_eq!(*fake.cancels.lock().unwrap(), 0, "aborting does not cancel the job");
    trainer.cancel().await.unwrap();
    assert_eq!(*fake.cancels.lock().unwrap(), 1);
    // Cancel before start is a no-op.
    let (url, fake) = serve(vec![]).await;
    builder(&url).build().unwrap().cancel().await.unwrap();
    assert_eq!(*fake.cancels.lock().unwrap(), 0);
}

#[test]
fn bad_settings_fail_at_construction() {
    let err = Model::named("unsloth/gemma-4-E4B-it").unwrap_err();
    assert!(err.to_string().contains("HuggingFaceTB/SmolLM2-135M-Instruct"), "{err}");
    let b = || Trainer::builder("t", Model::arkor_tiny(), Dataset::jsonl("d.jsonl"));
    let err = b().learning_rate(3.0).build().err().unwrap();
    assert_eq!(err.field, "learning_rate");
    let err = b().lora(arkor::Lora::new(0, 16.0)).build().err().unwrap();
    assert_eq!(err.field, "lora.r");
    let err =
        Trainer::builder(" ", Model::arkor_tiny(), Dataset::jsonl("d")).build().err().unwrap();
    assert_eq!(err.field, "name");
}

#[tokio::test]
async fn a_checkpoint_callback_evaluates_the_checkpoint_and_gets_its_scores() {
    let frames = vec![
        frame(1, json!({"type": "training.started"})),
        frame(2, json!({"type": "checkpoint.saved", "step": 1, "artifacts": []})),
        completed(3),
    ];
    let (url, fake) = serve(vec![Answer::Frames(frames)]).await;
    let dir = tempfile::tempdir().unwrap();
    let held = dir.path().join("held.jsonl");
    std::fs::write(&held, "{}\n").unwrap();
    let scores = Arc::new(Mutex::new(None));
    let seen = scores.clone();
    builder(&url)
        .on_checkpoint(move |ctx| {
            let (held, seen) = (held.clone(), seen.clone());
            async move {
                let info = ctx.evaluate(&held, Some(32)).await?;
                *seen.lock().unwrap() = info.scores;
                Ok(())
            }
        })
        .build()
        .unwrap()
        .wait()
        .await
        .unwrap();
    let scores = scores.lock().unwrap().clone().expect("scores");
    assert_eq!((scores.rows, scores.exact_match), (4, 3));
    let body = fake.eval_bodies.lock().unwrap()[0].clone();
    assert_eq!(body["checkpointStep"], 1);
    assert_eq!(body["maxTokens"], 32);
    assert_eq!(body["datasetPath"], dir.path().join("held.jsonl").to_str().unwrap());
    assert_eq!(*fake.eval_polls.lock().unwrap(), 2, "polled until completed");
}
