//! Studio's security model against a running server: Host guard first, then the
//! per-launch token on `/api/*`, the query token only on the event stream, no CORS.

use std::time::Duration;

use arkor_server::{Backend, ServerConfig, WorkerCommand};
use arkor_studio::{Studio, StudioConfig};
use reqwest::StatusCode;

async fn setup(tmp: &std::path::Path) -> (Backend, Studio) {
    setup_with(tmp, true).await
}

/// `ui_dir`: serve the test's own `ui/` folder; else the web UI built into the binary.
async fn setup_with(tmp: &std::path::Path, ui_dir: bool) -> (Backend, Studio) {
    let worker = WorkerCommand {
        program: env!("CARGO_BIN_EXE_arkor").into(),
        args: vec!["__worker".into()],
    };
    let mut config = ServerConfig::new(tmp.join("data"), 0, worker);
    config.device = arkor_engine::device::DeviceChoice::Cpu;
    config.keepalive = Duration::from_millis(300);
    let backend = Backend::start(config).await.unwrap();
    std::fs::create_dir_all(tmp.join("proj")).unwrap();
    // A built UI, and a file beside it that no request may reach.
    std::fs::create_dir_all(tmp.join("ui/assets")).unwrap();
    std::fs::write(
        tmp.join("ui/index.html"),
        "<html><head><title>Arkor Studio</title></head><body></body></html>",
    )
    .unwrap();
    std::fs::write(tmp.join("ui/assets/app.js"), "console.log(1)").unwrap();
    std::fs::write(tmp.join("secret.txt"), "top secret").unwrap();
    let studio = Studio::start(StudioConfig {
        port: Some(0),
        project_dir: tmp.join("proj"),
        home: tmp.join("data"),
        backend_url: backend.url(),
        arkor_exe: env!("CARGO_BIN_EXE_arkor").into(),
        assets: ui_dir.then(|| tmp.join("ui")),
    })
    .await
    .unwrap();
    (backend, studio)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_guard_and_the_token_protect_studio() {
    let tmp = tempfile::tempdir().unwrap();
    let (backend, studio) = setup(tmp.path()).await;
    let base = format!("http://127.0.0.1:{}", studio.addr().port());
    let http = reqwest::Client::new();
    let token = studio.token().to_owned();
    assert_eq!(token.len(), 43, "32 bytes, base64url without padding");
    let file = std::fs::read_to_string(tmp.path().join("data/studio-token")).unwrap();
    assert_eq!(file, token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(tmp.path().join("data/studio-token")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The page carries the token, for loopback hosts only.
    let page = http.get(&base).header("Host", "localhost:4000").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers().get("access-control-allow-origin").is_none());
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("<meta name=\"arkor-studio-token\" content=\"{token}\">")),
        "{html}"
    );
    assert!(html.contains("<title>Arkor Studio</title>"));

    // Forged Host: 403 and no HTML, even with a valid token.
    for (path, with_token) in [("/", false), ("/", true), ("/api/me", true), ("/index.html", false)]
    {
        let mut req = http.get(format!("{base}{path}")).header("Host", "evil.example:4000");
        if with_token {
            req = req.header("X-Arkor-Studio-Token", &token);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
        let body = resp.text().await.unwrap();
        assert!(!body.contains("arkor-studio-token") && !body.contains(&token), "{body}");
    }

    // Missing, wrong and short tokens.
    let last = if token.ends_with('A') { 'B' } else { 'A' };
    let wrong = format!("{}{last}", &token[..42]);
    for t in [None, Some(wrong.as_str()), Some(&token[..10]), Some("")] {
        let mut req = http.get(format!("{base}/api/me"));
        if let Some(t) = t {
            req = req.header("X-Arkor-Studio-Token", t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{t:?}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "Missing or invalid studio token");
    }
    // The query token is refused on anything but the event stream.
    let resp = http
        .post(format!("{base}/api/jobs/job_x/cancel?studioToken={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = http.get(format!("{base}/api/me?studioToken={token}")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // A cross-origin "simple" POST (text/plain, no custom header) cannot start a run.
    let resp = http
        .post(format!("{base}/api/train"))
        .header("Origin", "http://evil.example")
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // Unknown API paths are a JSON 404; `..` in asset paths is refused.
    let resp = http
        .get(format!("{base}/api/nope"))
        .header("X-Arkor-Studio-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    let js = http.get(format!("{base}/assets/app.js")).send().await.unwrap();
    assert_eq!(js.headers()["content-type"], "text/javascript");
    assert_eq!(js.text().await.unwrap(), "console.log(1)");
    // Raw request lines: HTTP clients normalise `..` away before sending.
    for target in ["/../secret.txt", "/assets/../../secret.txt"] {
        let reply = raw_get(studio.addr(), target).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{target}: {reply}");
        assert!(!reply.contains("top secret"), "{target}: {reply}");
    }
    let reply = raw_get(studio.addr(), "/jobs/some/route").await;
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.contains("arkor-studio-token"),
        "SPA fallback: {reply}"
    );

    // With the token: the identity, then a job whose event stream opens with ?studioToken=.
    let me = http
        .get(format!("{base}/api/me"))
        .header("X-Arkor-Studio-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let creds: serde_json::Value = http
        .get(format!("{base}/api/credentials"))
        .header("X-Arkor-Studio-Token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(creds["mode"], "anon");
    let client =
        arkor::Client::new(&backend.url(), Some(creds["token"].as_str().unwrap().to_owned()));
    let c = arkor::read_credentials(&arkor::credentials_path(&tmp.path().join("data")))
        .unwrap()
        .unwrap();
    let scope = arkor::ensure_project_state(&tmp.path().join("proj"), &c, &client).await.unwrap();
    let data = tmp.path().join("train.jsonl");
    std::fs::write(&data, "{\"text\": \"hello studio\"}\n").unwrap();
    let config = arkor_protocol::job::JobConfig {
        model: "arkor/tiny".into(),
        dataset_source: Some(arkor_protocol::job::DatasetSource::Jsonl {
            path: data.display().to_string(),
        }),
        max_steps: Some(3),
        ..Default::default()
    };
    let job = client.create_job(&scope, "studio-test", &config).await.unwrap();
    let listed: serde_json::Value = http
        .get(format!("{base}/api/jobs?limit=5"))
        .header("X-Arkor-Studio-Token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["jobs"][0]["id"], job.id.as_str());
    let resp = http
        .get(format!("{base}/api/jobs/{}/events?studioToken={token}", job.id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = tokio::time::timeout(Duration::from_secs(60), resp.text()).await.unwrap().unwrap();
    assert!(text.contains("event: training.completed") && text.contains("event: end"), "{text}");

    // Exports go through Studio behind the token; the backend's 400s name the field.
    let export_url = format!("{base}/api/jobs/{}/export", job.id);
    let exports_url = format!("{base}/api/jobs/{}/exports", job.id);
    let resp = http.post(&export_url).json(&serde_json::json!({ "format": "gguf" })).send().await;
    assert_eq!(resp.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(http.get(&exports_url).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let resp = http
        .post(&export_url)
        .header("X-Arkor-Studio-Token", &token)
        .json(&serde_json::json!({ "format": "zip" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("format"), "{body}");
    let resp = http
        .post(&export_url)
        .header("X-Arkor-Studio-Token", &token)
        .json(&serde_json::json!({ "format": "hf" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let started: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(started["status"], "running", "{started}");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let done = loop {
        let list: serde_json::Value = http
            .get(&exports_url)
            .header("X-Arkor-Studio-Token", &token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let e = list["exports"][0].clone();
        assert_eq!(e["id"], started["id"], "{list}");
        if e["status"] != "running" {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "export still running: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    // A file inside the export's folder (`exports/<id>/<dir>/<file>`), streamed through
    // with the backend's length and file name.
    let file = done["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["pathname"].as_str().unwrap().ends_with("/model.safetensors"))
        .unwrap_or_else(|| panic!("no model.safetensors: {done}"));
    let pathname = file["pathname"].as_str().unwrap();
    assert_eq!(pathname.split('/').count(), 4, "{pathname}");
    let resp = http
        .get(format!("{base}/api/jobs/{}/artifacts/{pathname}", job.id))
        .header("X-Arkor-Studio-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let size = file["size"].as_u64().unwrap();
    assert_eq!(resp.headers()["content-length"], size.to_string().as_str());
    assert_eq!(resp.headers()["content-disposition"], "attachment; filename=\"model.safetensors\"");
    assert_eq!(resp.bytes().await.unwrap().len() as u64, size);

    // Evaluations too: behind the token, the backend's 400 naming the field, then one that
    // completes with its scores and a downloadable report.
    let eval_url = format!("{base}/api/jobs/{}/eval", job.id);
    let evals_url = format!("{base}/api/jobs/{}/evals", job.id);
    let heldout = tmp.path().join("heldout.jsonl");
    let row = |q: &str, a: &str| {
        serde_json::json!({ "messages": [
            { "role": "user", "content": q },
            { "role": "assistant", "content": a },
        ] })
        .to_string()
    };
    std::fs::write(&heldout, format!("{}\n{}\n", row("hi", "{\"a\": 1}"), row("yo", "hey")))
        .unwrap();
    let body = serde_json::json!({ "datasetPath": heldout.display().to_string(), "maxTokens": 4 });
    let resp = http.post(&eval_url).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(http.get(&evals_url).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        http.get(format!("{base}/api/project")).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let project: serde_json::Value = http
        .get(format!("{base}/api/project"))
        .header("X-Arkor-Studio-Token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(project["dir"], tmp.path().join("proj").display().to_string());
    assert!(project.get("replySchema").is_none(), "{project}");
    // The Playground's default reply schema comes from the project's data/reply.schema.json;
    // a broken file is reported with its path, not served.
    let project_json = async |http: &reqwest::Client| -> serde_json::Value {
        let req = http.get(format!("{base}/api/project")).header("X-Arkor-Studio-Token", &token);
        req.send().await.unwrap().json().await.unwrap()
    };
    let schema_file = tmp.path().join("proj/data/reply.schema.json");
    std::fs::create_dir_all(schema_file.parent().unwrap()).unwrap();
    std::fs::write(&schema_file, "{\"type\": \"object\",\n  \"properties\": }").unwrap();
    let project = project_json(&http).await;
    assert!(project.get("replySchema").is_none(), "{project}");
    let err = project["replySchemaError"].as_str().unwrap();
    assert!(err.contains("reply.schema.json") && err.contains("line 2"), "{err}");
    std::fs::write(&schema_file, r#"{"type": "object", "required": ["a"]}"#).unwrap();
    let project = project_json(&http).await;
    assert_eq!(project["replySchema"]["required"][0], "a", "{project}");
    assert!(project.get("replySchemaError").is_none(), "{project}");
    let resp = http
        .post(&eval_url)
        .header("X-Arkor-Studio-Token", &token)
        .json(&serde_json::json!({ "datasetPath": heldout.display().to_string(), "maxTokens": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("maxTokens"), "{err}");
    let resp = http
        .post(&eval_url)
        .header("X-Arkor-Studio-Token", &token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let started: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(started["status"], "running", "{started}");
    assert_eq!(started["source"], "final", "{started}");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let done = loop {
        let list: serde_json::Value = http
            .get(&evals_url)
            .header("X-Arkor-Studio-Token", &token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let e = list["evals"][0].clone();
        assert_eq!(e["id"], started["id"], "{list}");
        if e["status"] != "running" {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "eval still running: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["scores"]["rows"], 2, "{done}");
    assert_eq!(done["scores"]["jsonRows"], 1, "{done}");
    let report = done["reportPathname"].as_str().unwrap();
    let resp = http
        .get(format!("{base}/api/jobs/{}/artifacts/{report}", job.id))
        .header("X-Arkor-Studio-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.json::<serde_json::Value>().await.is_ok(), "the report is JSON");
    studio.shutdown().await;
    assert!(!tmp.path().join("data/studio-token").exists(), "the token file goes with Studio");
    backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_ui_built_into_the_binary_is_served_with_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let (backend, studio) = setup_with(tmp.path(), false).await;
    assert!(arkor_studio::has_embedded_ui(), "built without ARKOR_STUDIO_SKIP_UI");
    let base = format!("http://127.0.0.1:{}", studio.addr().port());
    let http = reqwest::Client::new();
    let token = studio.token().to_owned();

    // The SPA's index for `/` and for any extension-less path (hash routes reload there).
    for path in ["/", "/jobs/anything"] {
        let resp = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
        let html = resp.text().await.unwrap();
        assert!(html.contains("<title>Arkor Studio</title>"), "{html}");
        assert!(html.contains(&format!("content=\"{token}\">")), "{html}");
        // Its script and stylesheet are served from the binary too.
        let script = html.split("src=\"").nth(1).and_then(|s| s.split('"').next()).unwrap();
        let js =
            http.get(format!("{base}/{}", script.trim_start_matches("./"))).send().await.unwrap();
        assert_eq!(js.status(), StatusCode::OK, "{script}");
        assert_eq!(js.headers()["content-type"], "text/javascript");
        assert!(js.text().await.unwrap().contains("arkor-studio-token"));
    }
    let missing = http.get(format!("{base}/assets/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // The Playground's model list comes from the backend, behind the token.
    let models = http.get(format!("{base}/api/models")).send().await.unwrap();
    assert_eq!(models.status(), StatusCode::FORBIDDEN);
    let models: serde_json::Value = http
        .get(format!("{base}/api/models"))
        .header("X-Arkor-Studio-Token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(models["data"].as_array().unwrap().iter().any(|m| m["id"] == "arkor/tiny"), "{models}");

    studio.shutdown().await;
    backend.shutdown().await;
}

#[test]
fn an_explicit_busy_port_fails_at_once() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arkor"))
        .args(["dev", "--port", &port])
        .current_dir(tmp.path())
        .env("ARKOR_DATA_DIR", tmp.path().join("data"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && stderr.contains("pick another --port"),
        "{stderr}"
    );
}

async fn raw_get(addr: std::net::SocketAddr, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    out
}
