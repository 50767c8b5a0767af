//! Backend benchmark: listing latency, event fan-out, time to the first training log.
//!
//! ```text
//! cargo build --release -p arkor-cli
//! cargo run --release -p arkor-server --example bench -- [--jobs 10000] [--subscribers 100]
//!     [--events 2000] [--arkor target/release/arkor] [--only endpoints] [--clients 1,4,16]
//!     [--gguf SMOLLM2.gguf] [--max-batch 1,16]
//! ```
//!
//! 1. `GET /v1/jobs` (first page of 50, a status filter, a name search) with `--jobs`
//!    jobs in the store: p50 / p99 over 500 requests each, one client at a time.
//! 2. Fan-out: a worker that prints `--events` `training.log` lines as fast as it can
//!    (the real worker contract, from `awk`), followed live by `--subscribers` SSE
//!    clients; events per second delivered in total, and a check that every subscriber
//!    got every event exactly once, in order.
//! 3. `POST /v1/jobs` to the first `training.log` of a real `arkor/tiny` job with the
//!    real worker (`--arkor`): median of 3.
//! 4. Endpoints under load (`--only endpoints` runs just this): two `arkor/tiny` adapters
//!    trained on different answers plus the base model, each behind an endpoint; 1, 4 and 16
//!    concurrent clients (`--clients`) send greedy requests round-robin over the endpoints:
//!    requests/s, p50/p99 latency, and every reply compared with what that endpoint answers
//!    alone. `--gguf SMOLLM2.gguf` adds a SmolLM2-135M base-model endpoint, alone and mixed
//!    with a tiny adapter's endpoint. `--max-batch 1,16` repeats it all for each setting of
//!    the backend's decode batch (1: one request at a time per base).
//!    Then 20 endpoints on the one base: the process's peak RSS before and after calling each.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use arkor_server::{Backend, ServerConfig, WorkerCommand};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

struct Args {
    jobs: usize,
    subscribers: usize,
    events: usize,
    arkor: PathBuf,
    only_endpoints: bool,
    clients: Vec<usize>,
    max_batch: Vec<usize>,
    gguf: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let tmp = tempfile::tempdir()?;
    if args.only_endpoints {
        return endpoints(&args, tmp.path()).await;
    }

    // 1. Listing latency with a paused queue.
    let mut config = ServerConfig::new(tmp.path().join("list"), 0, fake_worker(0));
    config.max_concurrent_jobs = 0;
    let backend = Backend::start(config).await?;
    let api = Api::sign_up(&backend.url()).await?;
    let data = tmp.path().join("train.jsonl");
    std::fs::write(&data, "{\"text\": \"hello\"}\n")?;
    let job_config =
        json!({"model": "arkor/tiny", "datasetSource": {"type": "jsonl", "path": data}});
    eprintln!("submitting {} jobs...", args.jobs);
    let started = Instant::now();
    for i in 0..args.jobs {
        let name = if i % 100 == 0 { format!("needle-{i}") } else { format!("run-{i}") };
        api.post("/v1/jobs", json!({"name": name, "config": job_config})).await?;
    }
    let submit_rate = args.jobs as f64 / started.elapsed().as_secs_f64();
    let mut rows = vec![];
    for (label, query) in [
        ("GET /v1/jobs (first page of 50)", ""),
        ("GET /v1/jobs?status=queued", "&status=queued"),
        ("GET /v1/jobs?q=needle (search)", "&q=needle"),
    ] {
        let mut times = vec![];
        for _ in 0..500 {
            let t = Instant::now();
            api.get(&format!("/v1/jobs?limit=50{query}")).await?;
            times.push(t.elapsed());
        }
        times.sort();
        rows.push((label, times[times.len() / 2], times[times.len() * 99 / 100]));
    }
    backend.shutdown().await;

    // 2. Fan-out to live subscribers.
    let mut config = ServerConfig::new(tmp.path().join("fanout"), 0, fake_worker(args.events));
    config.max_concurrent_jobs = 0;
    let backend = Backend::start(config.clone()).await?;
    let api = Api::sign_up(&backend.url()).await?;
    let job =
        api.post("/v1/jobs", json!({"name": "fanout", "config": job_config})).await?["job"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    backend.shutdown().await;
    // Restart with a running queue once every subscriber is connected: the worker waits
    // a second before printing, so the events arrive live, not from the replay.
    config.max_concurrent_jobs = 1;
    let backend = Backend::start(config).await?;
    let api = Api { base: backend.url(), ..api };
    let mut tasks = vec![];
    let started = Instant::now();
    for _ in 0..args.subscribers {
        let stream = api.stream(&job).await?;
        tasks.push(tokio::spawn(async move {
            let mut ids = vec![];
            let mut stream = stream;
            while let Some(ev) = stream.next().await {
                match ev.event.as_str() {
                    "end" => break,
                    "ping" => {}
                    _ => ids.push(ev.id.parse::<u64>().unwrap_or(0)),
                }
            }
            ids
        }));
    }
    let mut delivered = 0usize;
    let mut intact = true;
    for t in tasks {
        let ids = t.await?;
        intact &= ids.len() == args.events + 2 && ids.windows(2).all(|w| w[1] == w[0] + 1);
        delivered += ids.len();
    }
    let fanout_secs = started.elapsed().as_secs_f64() - 1.0;
    backend.shutdown().await;

    // 3. Submission to the first training.log on arkor/tiny with the real worker.
    let worker = WorkerCommand { program: args.arkor.clone(), args: vec!["__worker".into()] };
    let mut config = ServerConfig::new(tmp.path().join("first-log"), 0, worker);
    config.device = arkor_engine::device::DeviceChoice::Cpu;
    let backend = Backend::start(config).await?;
    let api = Api::sign_up(&backend.url()).await?;
    let rows_text: String = (0..16)
        .map(|i| {
            json!({"messages": [{"role": "user", "content": format!("Question {i}?")},
            {"role": "assistant", "content": "An answer."}]})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&data, rows_text)?;
    let mut first_log = vec![];
    for _ in 0..3 {
        let t = Instant::now();
        let config = json!({"model": "arkor/tiny", "datasetSource": {"type": "jsonl", "path": data},
            "maxSteps": 2});
        let job = api.post("/v1/jobs", json!({"name": "first-log", "config": config})).await?;
        let id = job["job"]["id"].as_str().unwrap_or_default().to_owned();
        let mut stream = api.stream(&id).await?;
        while let Some(ev) = stream.next().await {
            if ev.event == "training.log" {
                first_log.push(t.elapsed());
                break;
            }
        }
        while let Some(ev) = stream.next().await {
            if ev.event == "end" {
                break;
            }
        }
    }
    first_log.sort();
    backend.shutdown().await;

    println!();
    println!("store: {} jobs (submitted at {submit_rate:.0} jobs/s)", args.jobs);
    println!("| {:<34} | {:>9} | {:>9} |", "request", "p50 ms", "p99 ms");
    println!("|{:-<36}|{:->11}|{:->11}|", "", "", "");
    for (label, p50, p99) in &rows {
        println!(
            "| {label:<34} | {:>9.2} | {:>9.2} |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    println!();
    println!(
        "fan-out: {} events x {} subscribers = {delivered} delivered in {fanout_secs:.2} s: \
         {:.0} events/s; every subscriber got every event once, in order: {intact}",
        args.events + 2,
        args.subscribers,
        delivered as f64 / fanout_secs
    );
    println!(
        "POST /v1/jobs -> first training.log (arkor/tiny, real worker): median {:.2} s \
         (runs: {})",
        first_log.get(first_log.len() / 2).map_or(f64::NAN, Duration::as_secs_f64),
        first_log.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect::<Vec<_>>().join(", ")
    );
    endpoints(&args, tmp.path()).await
}

/// Section 4: endpoints under concurrent load.
async fn endpoints(args: &Args, tmp: &std::path::Path) -> anyhow::Result<()> {
    for &max_batch in &args.max_batch {
        endpoints_with(args, &tmp.join(format!("batch-{max_batch}")), max_batch).await?;
    }
    Ok(())
}

async fn endpoints_with(
    args: &Args,
    tmp: &std::path::Path,
    max_batch: usize,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(tmp)?;
    let worker = WorkerCommand { program: args.arkor.clone(), args: vec!["__worker".into()] };
    let mut config = ServerConfig::new(tmp.join("endpoints"), 0, worker);
    config.device = arkor_engine::device::DeviceChoice::Cpu;
    config.max_batch = max_batch;
    let backend = Backend::start(config).await?;
    let api = Api::sign_up(&backend.url()).await?;
    const QUESTIONS: [&str; 4] =
        ["What is arkor?", "Who trained you?", "What colour is the sky?", "Name a prime."];
    let mut endpoints: Vec<(String, Value)> = vec![];
    // Two adapters that answer the same questions differently.
    for (name, answer) in [("alpha", "Alpha says hello."), ("bravo", "Bravo, at your service.")] {
        let rows: String = (0..16)
            .map(|i| {
                json!({"messages": [{"role": "user", "content": QUESTIONS[i % 4]},
                    {"role": "assistant", "content": format!("{answer} ({})", i % 4)}]})
                .to_string()
                    + "\n"
            })
            .collect();
        let data = tmp.join(format!("{name}.jsonl"));
        std::fs::write(&data, rows)?;
        let config = json!({"model": "arkor/tiny", "datasetSource": {"type": "jsonl", "path": data},
            "maxSteps": 120, "learningRate": 0.01, "loraR": 16, "loraAlpha": 32, "batchSize": 4,
            "warmupSteps": 5});
        let job = api.post("/v1/jobs", json!({"name": name, "config": config})).await?;
        let id = job["job"]["id"].as_str().unwrap_or_default().to_owned();
        eprintln!("training adapter {name} ({id})...");
        let mut stream = api.stream(&id).await?;
        while let Some(ev) = stream.next().await {
            if ev.event == "end" {
                break;
            }
        }
        endpoints.push((
            name.to_owned(),
            json!({"kind": "adapter", "adapter": {"kind": "final", "jobId": id}}),
        ));
    }
    endpoints.push(("base".to_owned(), json!({"kind": "base_model", "baseModel": "arkor/tiny"})));
    if let Some(gguf) = &args.gguf {
        endpoints.push(("smollm2".to_owned(), json!({"kind": "base_model", "baseModel": gguf})));
    }
    for (slug, target) in &endpoints {
        api.post("/v1/endpoints", json!({"slug": slug, "target": target, "authMode": "none"}))
            .await?;
    }
    let (http, base) = (reqwest::Client::new(), backend.url());
    let ask = move |slug: String, q: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let body = json!({"messages": [{"role": "user", "content": q}], "temperature": 0,
                "max_tokens": 24});
            let t = Instant::now();
            let resp = http
                .post(format!("{base}/endpoints/{slug}/v1/chat/completions"))
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "{slug}: {}", resp.status());
            let v: Value = resp.json().await?;
            let text =
                v["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned();
            anyhow::Ok((t.elapsed(), text))
        }
    };
    // One group per base model, then the two bases mixed (the backend keeps the two most
    // recently used bases loaded; with one it would reload them by turns).
    let mut groups = vec![("arkor/tiny (alpha, bravo, base)", vec!["alpha", "bravo", "base"])];
    if args.gguf.is_some() {
        groups.push(("SmolLM2-135M-Instruct (smollm2)", vec!["smollm2"]));
        // Two bases at once (the backend keeps two loaded by default).
        groups.push(("both bases (alpha, smollm2)", vec!["alpha", "smollm2"]));
    }
    let mut table = vec![];
    let mut memory = String::new();
    for (g, (label, slugs)) in groups.iter().enumerate() {
        // What each endpoint answers alone (this also loads the model and the adapters).
        let mut alone = std::collections::HashMap::new();
        for slug in slugs {
            for q in QUESTIONS {
                alone.insert((slug.to_string(), q), ask(slug.to_string(), q).await?.1);
            }
        }
        let distinct = alone.values().collect::<std::collections::HashSet<_>>().len();
        for &clients in &args.clients {
            let per_client = 48 / clients.min(48) + 2;
            let started = Instant::now();
            let mut tasks = vec![];
            for c in 0..clients {
                let (slugs, ask) = (slugs.clone(), ask.clone());
                tasks.push(tokio::spawn(async move {
                    let mut out = vec![];
                    for r in 0..per_client {
                        let slug = slugs[(c + r) % slugs.len()].to_owned();
                        let q = QUESTIONS[(c * 7 + r) % QUESTIONS.len()];
                        let (took, text) = ask(slug.clone(), q).await?;
                        out.push((slug, q, took, text));
                    }
                    anyhow::Ok(out)
                }));
            }
            let mut times = vec![];
            let mut mixed = 0;
            for t in tasks {
                for (slug, q, took, text) in t.await?? {
                    mixed += usize::from(alone[&(slug, q)] != text);
                    times.push(took);
                }
            }
            let secs = started.elapsed().as_secs_f64();
            times.sort();
            let pick =
                |p: usize| times[(times.len() * p).div_ceil(100).max(1) - 1].as_secs_f64() * 1e3;
            let rate = times.len() as f64 / secs;
            table.push((*label, distinct, clients, times.len(), rate, pick(50), pick(99), mixed));
        }
        if g == 0 {
            // 20 more endpoints on the tiny base: the two adapters and the base, alternating.
            let before = rss_mib("VmRSS:");
            for i in 0..20 {
                let target = &endpoints[i % 3].1;
                let slug = format!("many-{i}");
                let body = json!({"slug": slug, "target": target, "authMode": "none"});
                api.post("/v1/endpoints", body).await?;
                ask(slug, QUESTIONS[i % 4]).await?;
            }
            memory = format!(
                "20 more endpoints on the tiny base (its 2 adapters and the base, alternating), \
                 each called once: RSS {before:.0} MiB -> {:.0} MiB",
                rss_mib("VmRSS:")
            );
        }
    }
    let peak = rss_mib("VmHWM:");
    backend.shutdown().await;

    println!();
    println!(
        "endpoints under load (--max-batch {max_batch}): greedy replies of at most 24 tokens, \
         round-robin over a group's endpoints"
    );
    println!(
        "| {:<32} | {:>8} | {:>7} | {:>8} | {:>7} | {:>8} | {:>8} | {:>12} |",
        "endpoints", "distinct", "clients", "requests", "req/s", "p50 ms", "p99 ms", "unlike alone"
    );
    println!(
        "|{:-<34}|{:->10}|{:->9}|{:->10}|{:->9}|{:->10}|{:->10}|{:->14}|",
        "", "", "", "", "", "", "", ""
    );
    for (label, distinct, clients, n, rate, p50, p99, mixed) in table {
        println!(
            "| {label:<32} | {distinct:>8} | {clients:>7} | {n:>8} | {rate:>7.1} | {p50:>8.1} | \
             {p99:>8.1} | {mixed:>12} |"
        );
    }
    println!("{memory}; peak RSS of the backend process {peak:.0} MiB");
    Ok(())
}

/// A line of /proc/self/status (`VmRSS:` now, `VmHWM:` the peak), in MiB.
fn rss_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(key))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A worker that sleeps a second, then prints `n` log events and a completion.
fn fake_worker(n: usize) -> WorkerCommand {
    let script = format!(
        "sleep 1; awk 'BEGIN {{ print \"{{\\\"type\\\":\\\"training.started\\\"}}\"; \
         for (i = 1; i <= {n}; i++) printf \"{{\\\"type\\\":\\\"training.log\\\",\\\"step\\\":%d,\\\"loss\\\":1.5}}\\n\", i; \
         print \"{{\\\"type\\\":\\\"training.completed\\\",\\\"artifacts\\\":[]}}\" }}'"
    );
    WorkerCommand { program: "sh".into(), args: vec!["-c".into(), script, "fake-worker".into()] }
}

type Events = std::pin::Pin<Box<dyn futures_util::Stream<Item = eventsource_stream::Event> + Send>>;

struct Api {
    base: String,
    http: reqwest::Client,
    token: String,
    scope: String,
}

impl Api {
    async fn sign_up(base: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::new();
        let anon: Value = http
            .post(format!("{base}/v1/auth/anonymous"))
            .header("X-Arkor-Client", "arkor/0.0.0")
            .json(&json!({"kind": "cli"}))
            .send()
            .await?
            .json()
            .await?;
        let token = anon["token"].as_str().unwrap_or_default().to_owned();
        let org = anon["personalOrg"]["slug"].as_str().unwrap_or_default().to_owned();
        let api = Api { base: base.to_owned(), http, token, scope: format!("orgSlug={org}") };
        api.post("/v1/projects", json!({"name": "bench", "slug": "bench"})).await?;
        Ok(Api { scope: format!("orgSlug={org}&projectSlug=bench"), ..api })
    }

    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}{}", self.base, self.scope)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(self.url(path))
            .header("X-Arkor-Client", "arkor/0.0.0")
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        anyhow::ensure!(status.is_success(), "POST {path}: {status}: {}", resp.text().await?);
        Ok(resp.json().await?)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(self.url(path))
            .header("X-Arkor-Client", "arkor/0.0.0")
            .bearer_auth(&self.token)
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "GET {path}: {}", resp.status());
        Ok(resp.json().await?)
    }

    async fn stream(&self, job: &str) -> anyhow::Result<Events> {
        let resp = self
            .http
            .get(self.url(&format!("/v1/jobs/{job}/events/stream")))
            .header("X-Arkor-Client", "arkor/0.0.0")
            .bearer_auth(&self.token)
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "stream: {}", resp.status());
        Ok(Box::pin(resp.bytes_stream().eventsource().filter_map(|e| async move { e.ok() })))
    }
}

fn parse_args() -> anyhow::Result<Args> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = Args {
        jobs: 10_000,
        subscribers: 100,
        events: 2_000,
        arkor: root.join("target/release/arkor"),
        only_endpoints: false,
        clients: vec![1, 4, 16],
        max_batch: vec![16],
        gguf: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--only" {
            let part = it.next().unwrap_or_default();
            anyhow::ensure!(part == "endpoints", "--only takes `endpoints`, got {part:?}");
            args.only_endpoints = true;
            continue;
        }
        let value = it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--jobs" => args.jobs = value.parse()?,
            "--subscribers" => args.subscribers = value.parse()?,
            "--events" => args.events = value.parse()?,
            "--arkor" => args.arkor = value.into(),
            "--gguf" => args.gguf = Some(value.into()),
            "--max-batch" => {
                args.max_batch = value.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            "--clients" => {
                args.clients = value.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            other => anyhow::bail!(
                "unknown argument {other}; expected --jobs, --subscribers, --events, --arkor, \
                 --only endpoints, --clients 1,4,16, --max-batch 1,16, --gguf"
            ),
        }
    }
    anyhow::ensure!(
        args.arkor.is_file(),
        "{} not found: run `cargo build --release -p arkor-cli` first or pass --arkor",
        args.arkor.display()
    );
    Ok(args)
}
