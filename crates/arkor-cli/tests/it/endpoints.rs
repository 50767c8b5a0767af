//! Endpoints through the real backend over HTTP: management routes and their validation,
//! scoping across organisations, API keys (hashed at rest, revocation at once), serving to
//! an OpenAI client by path and by host, the request log, disabling and deleting.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::server::{Api, CLIENT, QA, dataset, start_with, train_config};

/// Chat through an endpoint with a key sent as `header` (`Authorization` or `x-api-key`).
async fn call(
    url: &str,
    host: Option<&str>,
    key: Option<(&str, &str)>,
    body: &Value,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().post(url).json(body);
    if let Some(h) = host {
        req = req.header("Host", h);
    }
    if let Some((header, value)) = key {
        req = req.header(header, value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn question(q: &str) -> Value {
    json!({"messages": [{"role": "user", "content": q}], "temperature": 0, "max_tokens": 40})
}

fn answer(reply: &Value) -> &str {
    reply["choices"][0]["message"]["content"].as_str().unwrap_or_else(|| panic!("{reply}"))
}

/// The endpoint's request log once it holds `n` entries (entries are written as answers end).
async fn log_of(api: &Api, id: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) =
            api.send("GET", &api.scoped(&format!("/v1/endpoints/{id}/requests")), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let list = body["requests"].as_array().unwrap().clone();
        if list.len() >= n || Instant::now() > deadline {
            assert_eq!(list.len(), n, "{list:?}");
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

crate::server::also_on_postgres!(endpoints_serve_a_fine_tune_behind_keys);

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_serve_a_fine_tune_behind_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start_with(tmp.path(), |c| c.endpoint_domain = Some("ep.test".to_owned())).await;
    let base = backend.url();
    let alice = Api::sign_up(&base, "shop").await;
    let bob = Api::sign_up(&base, "other").await;
    let job = alice.submit(train_config(&dataset(tmp.path()), 120, 40)).await;

    // Validation, each a 400 naming the field.
    let final_target = json!({"kind": "adapter", "adapter": {"kind": "final", "jobId": job}});
    let create = async |api: &Api, body: Value| {
        let path = api.scoped("/v1/endpoints");
        api.send("POST", &path, Some(body)).await
    };
    for (body, needle) in [
        (json!({"slug": "A", "target": final_target}), "invalid slug"),
        (json!({"slug": "-ab", "target": final_target}), "invalid slug"),
        (json!({"slug": "www", "target": final_target}), "reserved"),
        (json!({"slug": "ok-slug"}), "missing target"),
        (
            json!({"slug": "ok-slug", "target": final_target, "authMode": "oauth"}),
            "invalid authMode",
        ),
        (
            json!({"slug": "ok-slug", "target": final_target, "runRetentionMode": "days"}),
            "runRetentionDays",
        ),
        (
            json!({"slug": "ok-slug", "target": final_target, "runRetentionMode": "days", "runRetentionDays": 0}),
            "invalid runRetentionDays 0",
        ),
        (
            json!({"slug": "ok-slug", "target": final_target, "runRetentionMode": "disabled", "runRetentionDays": 3}),
            "only valid with runRetentionMode days",
        ),
        (
            json!({"slug": "ok-slug", "target": {"kind": "base_model", "baseModel": "not a model"}}),
            "invalid target.baseModel",
        ),
        (
            json!({"slug": "ok-slug", "target": {"kind": "adapter", "adapter": {"kind": "checkpoint", "jobId": job, "step": 7}}}),
            "invalid target.adapter.step 7",
        ),
    ] {
        let (status, err) = create(&alice, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {err}");
        assert!(err["error"].as_str().unwrap().contains(needle), "{body} -> {err}");
    }
    // Another organisation's job is not a target.
    let (status, err) = create(&bob, json!({"slug": "bobs", "target": final_target})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["error"].as_str().unwrap().contains("target.adapter.jobId"), "{err}");

    // Created before the job completes: it answers 503 until then.
    let (status, created) = create(&alice, json!({"slug": "triage", "target": final_target})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let ep = created["deployment"].clone();
    let id = ep["id"].as_str().unwrap().to_owned();
    assert_eq!(ep["authMode"], "fixed_api_key");
    assert_eq!(
        (ep["runRetentionMode"].as_str(), ep["runRetentionDays"].as_u64()),
        (Some("days"), Some(7))
    );
    assert_eq!(
        ep["url"],
        format!(
            "http://triage.ep.test{}/v1",
            base.rsplit_once(':').map(|(_, p)| format!(":{p}")).unwrap()
        )
    );
    let (status, err) = create(
        &bob,
        json!({"slug": "triage", "target": {"kind": "base_model", "baseModel": "arkor/tiny"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    // Other organisations see nothing.
    for (method, path) in [
        ("GET", format!("/v1/endpoints/{id}")),
        ("DELETE", format!("/v1/endpoints/{id}")),
        ("GET", format!("/v1/endpoints/{id}/keys")),
    ] {
        let (status, _) = bob.send(method, &bob.scoped(&path), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let (_, list) = bob.send("GET", &bob.scoped("/v1/endpoints"), None).await;
    assert_eq!(list["deployments"], json!([]));

    // A key: plaintext once, a hash at rest.
    let keys = alice.scoped(&format!("/v1/endpoints/{id}/keys"));
    let (status, err) = alice.send("POST", &keys, Some(json!({"label": "  "}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, issued) = alice.send("POST", &keys, Some(json!({"label": "web app"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let key = issued["key"]["plaintext"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ark_live_") && key.len() > 40, "{key}");
    assert_eq!(issued["key"]["prefix"].as_str().unwrap(), &key[..17]);
    let (_, listed) = alice.send("GET", &keys, None).await;
    assert!(!listed.to_string().contains(&key), "{listed}");
    assert_eq!(listed["keys"][0]["label"], "web app");
    assert_eq!(listed["keys"][0]["lastUsedAt"], Value::Null);
    let stored: Vec<u8> = ["arkor.db", "arkor.db-wal"]
        .iter()
        .flat_map(|f| std::fs::read(tmp.path().join(f)).unwrap_or_default())
        .collect();
    assert!(
        !stored.windows(key.len()).any(|w| w == key.as_bytes()),
        "the database holds a plaintext key"
    );

    // An endpoint for a job still queued or training answers 503 until it completes.
    let pending = alice.submit(train_config(&dataset(tmp.path()), 100_000, 1_000)).await;
    let later = json!({"kind": "adapter", "adapter": {"kind": "final", "jobId": pending}});
    let (status, _) =
        create(&alice, json!({"slug": "later", "target": later, "authMode": "none"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let later_url = format!("{base}/endpoints/later/v1/chat/completions");
    let (status, err) = call(&later_url, None, None, &question(QA[1].0)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert!(err["error"].as_str().unwrap().contains("not ready"), "{err}");
    let (status, _) =
        alice.send("POST", &alice.scoped(&format!("/v1/jobs/{pending}/cancel")), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    alice.follow(&job, None).await;

    let url = format!("{base}/endpoints/triage/v1/chat/completions");
    let bearer = format!("Bearer {key}");

    // Serving: the key by either header; no key, a user token or a wrong key is a 401.
    let (status, reply) =
        call(&url, None, Some(("Authorization", &bearer)), &question(QA[1].0)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(answer(&reply), QA[1].1);
    assert_eq!(reply["model"], "triage");
    let (status, reply) = call(&url, None, Some(("x-api-key", &key)), &question(QA[0].0)).await;
    assert_eq!((status, answer(&reply)), (StatusCode::OK, QA[0].1));
    let user_token = format!("Bearer {}", alice.token);
    for k in
        [None, Some(("Authorization", user_token.as_str())), Some(("x-api-key", "ark_live_nope"))]
    {
        let (status, err) = call(&url, None, k, &question(QA[0].0)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{k:?}: {err}");
    }
    // By host, on the configured domain; nothing else is reachable there.
    let host = format!("triage.ep.test:{}", backend.addr().port());
    let (status, reply) = call(
        &format!("{base}/v1/chat/completions"),
        Some(&host),
        Some(("x-api-key", &key)),
        &question(QA[2].0),
    )
    .await;
    assert_eq!((status, answer(&reply)), (StatusCode::OK, QA[2].1));
    let jobs = reqwest::Client::new()
        .get(format!("{base}{}", alice.scoped("/v1/jobs")))
        .header("Host", &host)
        .header(CLIENT.0, CLIENT.1)
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.status(), StatusCode::NOT_FOUND);

    // A maintained OpenAI client, plain and streaming.
    use async_openai::types::chat::{
        ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs,
    };
    let client = |key: &str| {
        let config = async_openai::config::OpenAIConfig::new()
            .with_api_base(format!("{base}/endpoints/triage/v1"))
            .with_api_key(key);
        async_openai::Client::with_config(config)
    };
    let request = CreateChatCompletionRequestArgs::default()
        .model("ignored")
        .temperature(0.0)
        .max_completion_tokens(40u32)
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content(QA[3].0)
            .build()
            .unwrap()
            .into()])
        .build()
        .unwrap();
    let openai = client(&key);
    let models = openai.models().list().await.unwrap();
    assert_eq!(models.data.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["triage"]);
    let reply = openai.chat().create(request.clone()).await.unwrap();
    assert_eq!(reply.choices[0].message.content.as_deref(), Some(QA[3].1));
    let mut stream = openai.chat().create_stream(request.clone()).await.unwrap();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        if let Some(c) = &chunk.unwrap().choices[0].delta.content {
            text.push_str(c);
        }
    }
    assert_eq!(text, QA[3].1);

    // The log: every chat request, refused ones included, with tokens and bodies (retention
    // `days`); the figures and the key's last use.
    let log = log_of(&alice, &id, 8).await;
    let statuses: Vec<u64> = log.iter().rev().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200, 200, 401, 401, 401, 200, 200, 200]);
    assert!(log[0]["requestBody"].as_str().unwrap().contains(QA[3].0), "{:?}", log[0]);
    assert!(log[0]["completionTokens"].as_u64().unwrap() > 0);
    let (_, got) = alice.send("GET", &alice.scoped(&format!("/v1/endpoints/{id}")), None).await;
    let stats = &got["deployment"]["stats"];
    assert_eq!(
        (stats["requests"].as_u64(), stats["errors"].as_u64()),
        (Some(8), Some(3)),
        "{stats}"
    );
    assert!(stats["p50LatencyMs"].as_u64().is_some() && stats["lastUsedAt"].is_string(), "{stats}");
    let (_, listed) = alice.send("GET", &keys, None).await;
    assert!(listed["keys"][0]["lastUsedAt"].is_string(), "{listed}");

    // The official OpenAI Python client, plain and streaming; a wrong key is a 401 there too.
    let python = arkor_test_support::real::openai_python();
    let py_chat = |key: String, stream: bool| {
        let (py, url) = (python.clone().unwrap(), format!("{base}/endpoints/triage/v1"));
        let req = json!({"model": "ignored", "messages": [{"role": "user", "content": QA[2].0}],
            "temperature": 0, "max_tokens": 40});
        tokio::task::spawn_blocking(move || {
            arkor_test_support::real::openai_python_chat(&py, &url, &key, &req, stream)
        })
    };
    let python_calls = if python.is_some() {
        for stream in [false, true] {
            let r = py_chat(key.clone(), stream).await.unwrap();
            assert_eq!(
                (r["status"].as_u64(), r["content"].as_str()),
                (Some(200), Some(QA[2].1)),
                "{r}"
            );
        }
        let r = py_chat("ark_live_wrong".into(), false).await.unwrap();
        assert_eq!(r["status"], 401, "{r}");
        3
    } else {
        0
    };

    // Revoked: the next request is refused.
    let key_id = issued["key"]["id"].as_str().unwrap();
    let (status, _) = alice
        .send("DELETE", &alice.scoped(&format!("/v1/endpoints/{id}/keys/{key_id}")), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let err = openai.chat().create(request.clone()).await.unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    if python.is_some() {
        let r = py_chat(key.clone(), false).await.unwrap();
        assert_eq!(r["status"], 401, "{r}");
    }
    let python_calls = python_calls + usize::from(python.is_some());
    let (_, listed) = alice.send("GET", &keys, None).await;
    assert_eq!(listed["keys"][0]["enabled"], false);

    // Settings: open access, retention without bodies, another target, disabled.
    let patch = async |body: Value| {
        let path = alice.scoped(&format!("/v1/endpoints/{id}"));
        alice.send("PATCH", &path, Some(body)).await
    };
    let (status, err) =
        patch(json!({"runRetentionDays": 3, "runRetentionMode": "unlimited"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, ep) = patch(json!({"authMode": "none", "runRetentionMode": "disabled"})).await;
    assert_eq!(status, StatusCode::OK, "{ep}");
    assert_eq!(ep["deployment"]["runRetentionDays"], Value::Null);
    let logged = log_of(&alice, &id, 9 + python_calls).await;
    assert!(logged.iter().all(|r| r.get("requestBody").is_none()));
    let (status, reply) = call(&url, None, None, &question(QA[0].0)).await;
    assert_eq!((status, answer(&reply)), (StatusCode::OK, QA[0].1));

    // Concurrent requests on one base share its decode batch, the fine-tune's and the
    // base's mixed: each still gets what it gets alone.
    let (status, _) = create(
        &alice,
        json!({"slug": "plain", "target": {"kind": "base_model", "baseModel": "arkor/tiny"}, "authMode": "none"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let plain_url = format!("{base}/endpoints/plain/v1/chat/completions");
    let mut plain_alone = vec![];
    for (q, _) in QA {
        let (status, reply) = call(&plain_url, None, None, &question(q)).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        plain_alone.push(answer(&reply).to_owned());
    }
    let mut asks = vec![];
    for round in 0..3 {
        for i in 0..QA.len() {
            asks.push((url.clone(), i, true));
            asks.push((plain_url.clone(), (i + round) % QA.len(), false));
        }
    }
    let replies =
        futures_util::future::join_all(asks.into_iter().map(|(u, i, tuned)| async move {
            let (status, reply) = call(&u, None, None, &question(QA[i].0)).await;
            (status, reply, i, tuned)
        }))
        .await;
    for (status, reply, i, tuned) in replies {
        assert_eq!(status, StatusCode::OK, "{reply}");
        let alone = if tuned { QA[i].1 } else { plain_alone[i].as_str() };
        assert_eq!(answer(&reply), alone, "tuned: {tuned}, question {i}");
    }

    let (status, _) =
        patch(json!({"target": {"kind": "base_model", "baseModel": "arkor/tiny"}})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, reply) = call(&url, None, None, &question(QA[0].0)).await;
    assert_ne!(answer(&reply), QA[0].1, "the base model does not know the fine-tune's answers");
    let (status, _) = patch(json!({"enabled": false})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&url, None, None, &question(QA[0].0)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleted: gone everywhere, keys and log with it.
    let (status, _) =
        alice.send("DELETE", &alice.scoped(&format!("/v1/endpoints/{id}")), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = alice.send("GET", &alice.scoped(&format!("/v1/endpoints/{id}")), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&url, None, None, &question(QA[0].0)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The slug is free again.
    let (status, _) = create(&bob, json!({"slug": "triage", "target": {"kind": "base_model", "baseModel": "arkor/tiny"}, "authMode": "none"})).await;
    assert_eq!(status, StatusCode::CREATED);
    backend.shutdown().await;
}

/// `arkor endpoints` against a backend the CLI is logged in to.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_manages_endpoints_and_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start_with(&tmp.path().join("backend"), |_| {}).await;
    let base = backend.url();
    let api = Api::sign_up(&base, "proj").await;
    let (proj, data) = (tmp.path().join("proj"), tmp.path().join("cli"));
    std::fs::create_dir_all(proj.join(".arkor")).unwrap();
    let state = json!({"orgSlug": api.org, "projectSlug": api.project, "projectId": ""});
    std::fs::write(proj.join(".arkor/state.json"), state.to_string()).unwrap();
    let cli = |args: Vec<String>| {
        let (proj, data) = (proj.clone(), data.clone());
        async move {
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_arkor"))
                    .args(&args)
                    .current_dir(&proj)
                    .env("ARKOR_DATA_DIR", &data)
                    .env("HF_HUB_OFFLINE", "1")
                    .env_remove("ARKOR_BACKEND_URL")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (out.status.success(), text(&out.stdout), text(&out.stderr))
        }
    };
    let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let (ok, _, err) = cli(vec![
        "login".into(),
        "--token".into(),
        api.token.clone(),
        "--url".into(),
        base.clone(),
    ])
    .await;
    assert!(ok, "{err}");

    // The backend's validation messages, and the CLI's own for a missing target.
    let (ok, _, err) = cli(args("endpoints create Bad --base-model arkor/tiny")).await;
    assert!(!ok && err.contains("invalid slug \"Bad\""), "{err}");
    let (ok, _, err) = cli(args("endpoints create demo")).await;
    assert!(!ok && err.contains("--job JOB_ID"), "{err}");
    let (ok, _, err) =
        cli(args("endpoints create demo --base-model arkor/tiny --retention days")).await;
    assert!(!ok && err.contains("runRetentionDays"), "{err}");

    let (ok, out, err) =
        cli(args("endpoints create demo --base-model arkor/tiny --auth none")).await;
    assert!(ok, "{err}");
    let url = format!("{base}/endpoints/demo/v1");
    assert!(out.contains(&format!("OpenAI base URL: {url}")), "{out}");
    let (ok, out, _) = cli(args("endpoints list")).await;
    assert!(
        ok && out.contains("demo")
            && out.contains("enabled")
            && out.contains("base model arkor/tiny"),
        "{out}"
    );
    let chat = format!("{url}/chat/completions");
    let (status, _) = call(&chat, None, None, &question("hi")).await;
    assert_eq!(status, StatusCode::OK);

    // Keys: printed once, then listed by prefix; revoked at once.
    let (ok, _, err) = cli(args("endpoints update demo --auth fixed_api_key")).await;
    assert!(ok, "{err}");
    let (ok, key, err) = cli(args("endpoints keys create demo --label ci")).await;
    assert!(ok && err.contains("cannot be shown again"), "{err}");
    let key = key.trim().to_owned();
    let (status, _) = call(&chat, None, Some(("x-api-key", &key)), &question("hi")).await;
    assert_eq!(status, StatusCode::OK);
    let (ok, listed, _) = cli(args("endpoints keys list demo")).await;
    assert!(
        ok && listed.contains("active") && listed.contains("ci") && !listed.contains(&key),
        "{listed}"
    );
    let key_id = listed.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let (ok, _, err) = cli(args(&format!("endpoints keys revoke demo {key_id}"))).await;
    assert!(ok, "{err}");
    let (status, _) = call(&chat, None, Some(("x-api-key", &key)), &question("hi")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let deadline = Instant::now() + Duration::from_secs(10);
    let requests = loop {
        let (ok, out, _) = cli(args("endpoints requests demo")).await;
        assert!(ok);
        if out.lines().count() == 4 || Instant::now() > deadline {
            break out;
        }
    };
    let statuses: Vec<&str> =
        requests.lines().skip(1).map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(statuses, ["401", "200", "200"], "{requests}");

    // Disabled, then deleted.
    let (ok, _, _) = cli(args("endpoints update demo --disable")).await;
    assert!(ok);
    let (status, _) = call(&chat, None, Some(("x-api-key", &key)), &question("hi")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (ok, _, err) = cli(args("endpoints update demo")).await;
    assert!(!ok && err.contains("nothing to change"), "{err}");
    let (ok, _, _) = cli(args("endpoints delete demo")).await;
    assert!(ok);
    let (_, out, _) = cli(args("endpoints list")).await;
    assert!(out.contains("No endpoints yet"), "{out}");
    let (ok, _, err) = cli(args("endpoints show demo")).await;
    assert!(!ok && err.contains("no endpoint \"demo\""), "{err}");
    backend.shutdown().await;
}

/// A trainer that asks to be deployed: each completed run points the endpoint at its adapter.
#[tokio::test(flavor = "multi_thread")]
async fn a_trainer_deploys_its_final_adapter_when_it_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = start_with(&tmp.path().join("backend"), |_| {}).await;
    let api = Api::sign_up(&backend.url(), "sdk").await;
    let data = dataset(tmp.path());
    let trainer = |steps: u64| {
        let connection = arkor::Connection {
            base_url: Some(backend.url()),
            token: Some(api.token.clone()),
            scope: Some(arkor::ProjectScope {
                org_slug: api.org.clone(),
                project_slug: api.project.clone(),
            }),
            cwd: Some(tmp.path().to_owned()),
            ..arkor::Connection::default()
        };
        arkor::Trainer::builder("qa", arkor::Model::arkor_tiny(), arkor::Dataset::jsonl(&data))
            .lora(arkor::Lora::new(16, 32.0))
            .max_steps(steps)
            .learning_rate(1e-2)
            .batch_size(4)
            .warmup_steps(5)
            .connection(connection)
            .deploy(arkor::Deploy::endpoint("qa-bot").auth_mode(arkor::AuthMode::None))
            .build()
            .unwrap()
    };
    let first = arkor::Arkor::new().trainer(trainer(120)).run(None).await.unwrap();
    let url = format!("{}/endpoints/qa-bot/v1/chat/completions", backend.url());
    let (status, reply) = call(&url, None, None, &question(QA[1].0)).await;
    assert_eq!((status, answer(&reply)), (StatusCode::OK, QA[1].1));
    // A second run moves the same endpoint to its own adapter.
    let second = arkor::Arkor::new().trainer(trainer(2)).run(None).await.unwrap();
    assert_ne!(first.job.id, second.job.id);
    let (_, list) = api.send("GET", &api.scoped("/v1/endpoints"), None).await;
    let deployments = list["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 1, "{list}");
    assert_eq!(deployments[0]["target"]["adapter"]["jobId"], second.job.id.as_str());
    let (_, reply) = call(&url, None, None, &question(QA[1].0)).await;
    assert_ne!(answer(&reply), QA[1].1, "two steps have not learned the answers");
    backend.shutdown().await;
}
