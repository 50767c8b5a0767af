//! The dataset inspector's backend route on a large generated file: time to the first
//! answer (read and tokenise every row), a page and a row from memory, and the process's
//! memory. Prints a table.
//!
//! ```text
//! cargo run --release -p arkor-cli --example bench_inspect -- [--rows 100000] [--model arkor/tiny|DIR]
//! ```
//!
//! Rows look like the triage template's (a system prompt, a ticket, a JSON reply), each
//! different. `--model` takes a model directory (e.g. SmolLM2-135M-Instruct imported from its
//! GGUF) to measure a real tokenizer; the default is the built-in tiny model.

use std::time::{Duration, Instant};

use arkor_server::{Backend, ServerConfig, WorkerCommand};
use serde_json::{Value, json};

const CLIENT: (&str, &str) = (arkor_protocol::CLIENT_HEADER, "arkor/0.0.0");

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut rows = 100_000usize;
    let mut model = "arkor/tiny".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rows" => rows = args.next().unwrap_or_default().parse()?,
            "--model" => model = args.next().unwrap_or_default(),
            other => anyhow::bail!("unknown argument {other}; expected --rows N or --model M"),
        }
    }
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("rows.jsonl");
    let size = write_rows(&file, rows)?;

    let mut config = ServerConfig::new(
        tmp.path().join("data"),
        0,
        WorkerCommand { program: "/bin/false".into(), args: vec![] },
    );
    config.max_concurrent_jobs = 0;
    let backend = Backend::start(config).await?;
    let base = backend.url();
    let http = reqwest::Client::new();
    let anon: Value = http
        .post(format!("{base}/v1/auth/anonymous"))
        .header(CLIENT.0, CLIENT.1)
        .json(&json!({"kind": "cli"}))
        .send()
        .await?
        .json()
        .await?;
    let token = anon["token"].as_str().unwrap_or_default().to_owned();
    let org = anon["personalOrg"]["slug"].as_str().unwrap_or_default().to_owned();
    http.post(format!("{base}/v1/projects?orgSlug={org}"))
        .header(CLIENT.0, CLIENT.1)
        .bearer_auth(&token)
        .json(&json!({"name": "bench", "slug": "bench"}))
        .send()
        .await?
        .error_for_status()?;
    let url = format!("{base}/v1/datasets/inspect?orgSlug={org}&projectSlug=bench");
    let job = json!({"model": model, "datasetSource": {"type": "jsonl", "path": file}});
    let ask = |body: Value| {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            let started = Instant::now();
            let resp = http
                .post(url)
                .header(CLIENT.0, CLIENT.1)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?;
            let status = resp.status();
            let bytes = resp.bytes().await?;
            anyhow::ensure!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&bytes));
            let v: Value = serde_json::from_slice(&bytes)?;
            anyhow::Ok((started.elapsed(), bytes.len(), v))
        }
    };

    let rss_before = status_mib("VmRSS");
    let (first, first_bytes, v) = ask(json!({"config": job, "row": 0})).await?;
    let ready_at_first = v["report"]["rows"].as_u64().unwrap_or(0);
    // Then as Studio does: ask again every 500 ms until nothing is pending.
    let started = Instant::now();
    let mut v = v;
    while v["report"]["pending"].as_u64().unwrap_or(0) > 0 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        v = ask(json!({"config": job, "row": 0})).await?.2;
    }
    let complete = first + started.elapsed();
    let rss_after = status_mib("VmRSS");
    let report = &v["report"];
    let (page, page_bytes, _) =
        ask(json!({"config": job, "offset": rows / 2, "limit": 50})).await?;
    let (row, row_bytes, _) = ask(json!({"config": job, "row": rows - 1})).await?;
    backend.shutdown().await;

    println!("dataset inspector route, {rows} rows ({:.1} MiB), model {model}", mib(size));
    println!(
        "  {} tokens, {} trained, {} buckets",
        report["tokens"],
        report["trainedTokens"],
        report["histogram"].as_array().map_or(0, Vec::len)
    );
    println!("| request                          | time      | answer   |");
    println!("|----------------------------------|-----------|----------|");
    let line = |what: &str, t: Duration, b: usize| {
        println!("| {what:<32} | {:>7.3} s | {:>5.1} KiB |", t.as_secs_f64(), b as f64 / 1024.0);
    };
    line(&format!("first answer ({ready_at_first} rows ready)"), first, first_bytes);
    line("whole dataset tokenised", complete, 0);
    line("page of 50 rows (from memory)", page, page_bytes);
    line("last row rendered (from memory)", row, row_bytes);
    println!(
        "backend RSS: {:.0} MiB before, {:.0} MiB with the dataset in memory, peak {:.0} MiB \
         (the server's own tokenisation: {:.2} s)",
        rss_before,
        rss_after,
        status_mib("VmHWM"),
        v["seconds"].as_f64().unwrap_or_default()
    );
    breakdown(&file, &model, &tmp.path().join("data"))?;
    Ok(())
}

/// Where the time goes, with the engine called directly on the same file.
fn breakdown(file: &std::path::Path, model: &str, data: &std::path::Path) -> anyhow::Result<()> {
    use arkor_engine::data::inspect::Reader;
    use arkor_engine::data::{DatasetFormat, PrepareOptions};
    let dir = if model == arkor_engine::tiny::TINY_MODEL_ID {
        arkor_engine::tiny::ensure_tiny_model(data)?
    } else {
        model.into()
    };
    let t = Instant::now();
    let tok = arkor_engine::tokenizer::TextTokenizer::from_dir(&dir)?;
    let load = t.elapsed();
    let opts = PrepareOptions {
        format: DatasetFormat::Auto,
        max_length: 2048,
        train_on_responses_only: true,
        eval_split: 0.0,
        seed: 0,
        max_rows: None,
    };
    let t = Instant::now();
    let mut reader = Reader::open(&[file.to_path_buf()], &opts)?;
    let read = t.elapsed();
    let mut ins = reader.inspection(opts.max_length);
    let t = Instant::now();
    let chunk = reader.next_chunk(256, &tok, &opts).expect("rows");
    ins.extend(chunk);
    let first = t.elapsed();
    let t = Instant::now();
    let chunk = reader.next_chunk(4096, &tok, &opts).expect("rows");
    ins.extend(chunk);
    let per_row = t.elapsed() / 4096;
    println!(
        "engine, same file: tokenizer loaded in {:.3} s, rows read and parsed in {:.3} s, first 256 rows tokenised in {:.3} s, then {:.0} µs a row ({} threads)",
        load.as_secs_f64(),
        read.as_secs_f64(),
        first.as_secs_f64(),
        per_row.as_secs_f64() * 1e6,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}

/// Writes `rows` triage-like chat rows; returns the file's size.
fn write_rows(path: &std::path::Path, rows: usize) -> anyhow::Result<u64> {
    use std::io::Write;
    const SYSTEM: &str = "You are a support triage assistant for Tasklane, a project management \
        SaaS. Classify the ticket and reply with only a JSON object with the keys \"category\", \
        \"urgency\", \"summary\" and \"nextAction\".";
    const WORDS: [&str; 12] = [
        "invoice", "login", "export", "crash", "slow", "calendar", "webhook", "password", "refund",
        "board", "sync", "token",
    ];
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..rows {
        let words: Vec<&str> = (0..20 + i % 40).map(|k| WORDS[(i * 7 + k * 3) % 12]).collect();
        let ticket = format!("Ticket {i}: {}.", words.join(" "));
        let reply =
            json!({"category": WORDS[i % 12], "urgency": "low", "summary": words[..6].join(" ")});
        let row = json!({"messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": ticket},
            {"role": "assistant", "content": reply.to_string()},
        ]});
        writeln!(out, "{row}")?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
