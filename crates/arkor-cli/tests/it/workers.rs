//! Remote workers as real processes: `arkor server` (SQLite or PostgreSQL) with no local
//! jobs, `arkor workers add` for the tokens, and `arkor worker` processes that lease, train
//! and upload over HTTP.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::server::{Api, dataset, sha2_check, train_config};

/// A child process killed (SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn arkor() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_arkor"));
    cmd.env("ARKOR_CPU", "1")
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("ARKOR_DATABASE_URL")
        .env_remove("ARKOR_BACKEND_URL")
        .env_remove("ARKOR_WORKER_TOKEN")
        .env_remove("ARKOR_MAX_JOBS");
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `arkor server` with no local jobs and short leases, on `port`; waits until it answers.
async fn backend(
    data: &Path,
    port: u16,
    database: Option<&str>,
    artifacts: Option<&str>,
    ttl: u64,
) -> (Proc, String) {
    let mut cmd = arkor();
    cmd.args(["server", "--max-jobs", "0", "--lease-backoff", "0", "--port"])
        .arg(port.to_string())
        .args(["--lease-ttl", &ttl.to_string(), "--data-dir"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data.with_extension(format!("{port}.log"))).unwrap());
    if let Some(url) = database {
        cmd.args(["--database", url]);
    }
    if let Some(url) = artifacts {
        cmd.args(["--artifacts", url]);
    }
    std::fs::create_dir_all(data).unwrap();
    let proc = Proc(cmd.spawn().unwrap());
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{url}/v1/models")).await.is_err() {
        assert!(Instant::now() < deadline, "the backend did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (proc, url)
}

fn workers_cmd(data: &Path, database: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut cmd = arkor();
    cmd.arg("workers").args(args).arg("--data-dir").arg(data);
    if let Some(url) = database {
        cmd.args(["--database", url]);
    }
    cmd.output().unwrap()
}

fn add_worker(data: &Path, database: Option<&str>, name: &str) -> String {
    let out = workers_cmd(data, database, &["add", name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("arkw_"), "{token}");
    token
}

/// An `arkor worker` with its own data dir; its stdout goes to `<dir>.out`.
struct Worker {
    proc: Proc,
    out: PathBuf,
    err: PathBuf,
    dir: PathBuf,
}

impl Worker {
    fn start(dir: &Path, url: &str, token: &str) -> Worker {
        Worker::start_with(dir, url, token, &[])
    }

    fn start_with(dir: &Path, url: &str, token: &str, extra: &[&str]) -> Worker {
        std::fs::create_dir_all(dir).unwrap();
        let (out, err) = (dir.with_extension("out"), dir.with_extension("err"));
        let child = arkor()
            .args(["worker", "--backend", url, "--token", token, "--data-dir"])
            .arg(dir)
            .args(["--cancel-grace", "5"])
            .args(extra)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Worker { proc: Proc(child), out, err, dir: dir.to_owned() }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Its exit status, once it exits (within 30 s, or the test fails with `why`).
    async fn exited(&mut self, why: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.proc.0.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "{why}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The jobs it leased, with the attempt of each lease.
    fn leased(&self) -> Vec<(String, u32)> {
        self.stdout()
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("job ")?;
                let (id, rest) = rest.split_once(": leased (attempt ")?;
                let attempt = rest.split(')').next()?.parse().ok()?;
                Some((id.to_owned(), attempt))
            })
            .collect()
    }
}

/// Waits for the first event named `name` on the job's stream.
async fn wait_for(api: &Api, job: &str, name: &str) -> Value {
    use futures_util::StreamExt;
    let mut stream = api.events(job, None).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let next = tokio::time::timeout_at(deadline.into(), stream.next()).await;
        let (_, event, data) = next.expect("event did not come").expect("stream ended");
        if event == name {
            return serde_json::from_str(&data).unwrap();
        }
        assert!(event != "end", "the job ended before {name}");
    }
}

/// Events of the whole job: names in order, and ids rising.
async fn history(api: &Api, job: &str) -> Vec<String> {
    let events = api.follow(job, None).await;
    let ids: Vec<u64> = events.iter().map(|(id, ..)| id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "event ids rise: {ids:?}");
    events.into_iter().map(|(_, name, _)| name).collect()
}

/// The training loss at each logged step (the last attempt's, for a requeued job).
async fn losses(api: &Api, job: &str) -> std::collections::BTreeMap<u64, f64> {
    api.follow(job, None)
        .await
        .into_iter()
        .filter(|(_, name, _)| name == "training.log")
        .filter_map(|(_, _, d)| Some((d["step"].as_u64()?, d["loss"].as_f64()?)))
        .collect()
}

fn terminal(names: &[String]) -> usize {
    names
        .iter()
        .filter(|n| {
            matches!(n.as_str(), "training.completed" | "training.failed" | "training.cancelled")
        })
        .count()
}

/// The final adapter the backend serves equals, byte for byte, what the worker wrote.
async fn same_final_adapter(api: &Api, job: &str, worker_job_dir: &Path) {
    let (status, list) =
        api.send("GET", &api.scoped(&format!("/v1/jobs/{job}/artifacts")), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let local = worker_job_dir.join("final");
    let mut names: Vec<_> = std::fs::read_dir(&local)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.iter().any(|n| n == "adapter_model.safetensors"), "{names:?}");
    for name in names {
        let mine = sha2_check::digest(&std::fs::read(local.join(&name)).unwrap());
        let url = format!(
            "{}{}",
            api.base,
            api.scoped(&format!("/v1/jobs/{job}/artifacts/final/{name}"))
        );
        let bytes = reqwest::Client::new()
            .get(url)
            .header(crate::server::CLIENT.0, crate::server::CLIENT.1)
            .bearer_auth(&api.token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(sha2_check::digest(&bytes), mine, "final/{name} of {job}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_lease_ten_jobs_from_postgres_each_once_and_the_adapters_land_in_a_bucket() {
    let Some(db) = arkor_test_support::pg::database().await else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("backend");
    let Some(bucket) = arkor_test_support::s3::bucket() else { return };
    let (backend_proc, url) = backend(&data, free_port(), Some(&db.url), Some(&bucket), 30).await;
    let tokens: Vec<String> =
        (1..=3).map(|i| add_worker(&data, Some(&db.url), &format!("box-{i}"))).collect();
    // Worker tokens open the worker routes only; user tokens do not lease.
    let api = Api::sign_up(&url, "fleet").await;
    let http = reqwest::Client::new();
    let jobs_as_worker = http
        .get(format!("{url}{}", api.scoped("/v1/jobs")))
        .header(crate::server::CLIENT.0, crate::server::CLIENT.1)
        .bearer_auth(&tokens[0])
        .send()
        .await
        .unwrap();
    assert_eq!(jobs_as_worker.status(), StatusCode::UNAUTHORIZED);
    let lease_as_user = http
        .post(format!("{url}/v1/worker/lease"))
        .header(crate::server::CLIENT.0, crate::server::CLIENT.1)
        .bearer_auth(&api.token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(lease_as_user.status(), StatusCode::UNAUTHORIZED);

    let rows = dataset(tmp.path());
    // The first two ask for a GPU worker: only the third worker says it has one.
    let mut jobs = vec![];
    for i in 0..10 {
        let mut config = train_config(&rows, 6, 3);
        if i < 2 {
            config["workerLabels"] = serde_json::json!(["gpu"]);
        }
        jobs.push(api.submit(config).await);
    }
    let workers: Vec<Worker> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let labels: &[&str] = if i == 2 { &["--labels", "gpu,linux"] } else { &[] };
            Worker::start_with(&tmp.path().join(format!("worker-{i}")), &url, t, labels)
        })
        .collect();
    for job in &jobs {
        let names = history(&api, job).await;
        assert_eq!(
            names.last().map(String::as_str),
            Some("training.completed"),
            "{job}: {names:?}"
        );
        assert_eq!(names.iter().filter(|n| *n == "training.started").count(), 1, "{names:?}");
        assert_eq!(terminal(&names), 1, "{names:?}");
    }
    // Every job leased exactly once, on its first attempt, across the three workers.
    let mut by_job: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, w) in workers.iter().enumerate() {
        for (job, attempt) in w.leased() {
            assert_eq!(attempt, 1, "{job}");
            by_job.entry(job).or_default().push(i);
        }
    }
    for job in &jobs {
        assert_eq!(by_job.get(job).map(Vec::len), Some(1), "{job}: {by_job:?}");
    }
    for job in &jobs[..2] {
        assert_eq!(by_job[job], [2], "{job} asked for a gpu worker");
    }
    assert!(
        by_job.values().flatten().collect::<std::collections::HashSet<_>>().len() >= 2,
        "the jobs were spread over the workers: {by_job:?}"
    );
    // The adapters landed on the backend with the worker's bytes.
    for job in &jobs {
        let w = &workers[by_job[job][0]];
        same_final_adapter(&api, job, &w.dir.join("worker/jobs").join(format!("{job}-1"))).await;
    }
    // And in the bucket, read back by a client of its own: the same bytes again.
    let copy = tmp.path().join("from-bucket");
    let reader = arkor_server::artifacts::Artifacts::open(copy.clone(), &bucket).await.unwrap();
    reader.fetch_dir(&copy, |_| true).await.unwrap();
    for job in &jobs {
        let mine = workers[by_job[job][0]].dir.join("worker/jobs").join(format!("{job}-1"));
        let dirs: Vec<String> = std::fs::read_dir(&mine)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n == "final" || n.starts_with("checkpoint-"))
            .collect();
        assert!(dirs.len() >= 2, "{dirs:?}");
        for dir in &dirs {
            let names = std::fs::read_dir(mine.join(dir)).unwrap();
            for name in names.map(|e| e.unwrap().file_name()) {
                let theirs = copy.join("jobs").join(job).join(dir).join(&name);
                assert_eq!(
                    std::fs::read(&theirs).unwrap_or_else(|e| panic!("{}: {e}", theirs.display())),
                    std::fs::read(mine.join(dir).join(&name)).unwrap(),
                    "{}",
                    theirs.display()
                );
            }
        }
    }
    // The rows are PostgreSQL's: one attempt each.
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let attempts: Vec<i64> = client
        .query("SELECT attempt FROM jobs ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(attempts, vec![1; 10]);
    drop(client);
    drop(workers);
    drop(backend_proc);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_s_job_finishes_on_another_and_the_backend_restarts_under_workers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("backend");
    let port = free_port();
    let (backend_proc, url) = backend(&data, port, None, None, 4).await;
    let (a, b) = (add_worker(&data, None, "a"), add_worker(&data, None, "b"));
    let api = Api::sign_up(&url, "resilience").await;
    let rows = dataset(tmp.path());

    // Worker A takes the job, uploads a checkpoint, then dies without a word.
    let job = api.submit(train_config(&rows, 40, 10)).await;
    let worker_a = Worker::start(&tmp.path().join("worker-a"), &url, &a);
    let checkpoint = wait_for(&api, &job, "checkpoint.saved").await;
    assert_eq!(checkpoint["step"], 10);
    let path = checkpoint["artifacts"][0]["pathname"].as_str().unwrap();
    let uploaded = std::fs::read(data.join("jobs").join(&job).join(path)).unwrap();
    assert_eq!(
        sha2_check::digest(&uploaded),
        checkpoint["artifacts"][0]["sha256"].as_str().unwrap()
    );
    drop(worker_a);
    // Its training process notices its parent is gone and stops.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !crate::server::worker_pids(&format!("worker-a/worker/jobs/{job}")).is_empty() {
        assert!(Instant::now() < deadline, "the dead worker's trainer lives on");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Worker B gets the job once A's lease expires, as attempt 2, continues from A's
    // uploaded checkpoint, and finishes it.
    let worker_b = Worker::start(&tmp.path().join("worker-b"), &url, &b);
    let names = history(&api, &job).await;
    let starts: Vec<Value> = api
        .follow(&job, None)
        .await
        .into_iter()
        .filter(|(_, name, _)| name == "training.started")
        .map(|(_, _, data)| data["metadata"]["startStep"].clone())
        .collect();
    assert_eq!(starts, [serde_json::json!(0), serde_json::json!(10)]);
    assert!(worker_b.stdout().contains("resuming from step 10"), "{}", worker_b.stdout());
    // Resumed exactly: the same losses as the run done in one go, step for step.
    let reference = api.submit(train_config(&rows, 40, 10)).await;
    let (resumed, whole) = (losses(&api, &job).await, losses(&api, &reference).await);
    assert_eq!(resumed.keys().max(), Some(&40));
    for (step, loss) in resumed.iter().filter(|(s, _)| **s > 10) {
        let other = whole[step];
        assert!(
            (loss - other).abs() < 1e-4 * other.abs().max(1.0),
            "step {step}: {loss} vs {other}"
        );
    }
    assert_eq!(names.last().map(String::as_str), Some("training.completed"), "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "training.started").count(), 2, "{names:?}");
    assert_eq!(terminal(&names), 1, "{names:?}");
    assert_eq!(worker_b.leased()[0], (job.clone(), 2));
    let j = api.job(&job).await;
    assert_eq!((j["worker"].as_str(), j["attempt"].as_u64()), (Some("b"), Some(2)), "{j}");
    same_final_adapter(&api, &job, &worker_b.dir.join("worker/jobs").join(format!("{job}-2")))
        .await;

    // The backend dies and comes back on the same port: the running job carries on.
    let long = api.submit(train_config(&rows, 100_000, 1_000_000)).await;
    let first = wait_for(&api, &long, "training.log").await;
    drop(backend_proc);
    let (backend_proc, _) = backend(&data, port, None, None, 4).await;
    let j = api.job(&long).await;
    assert_eq!(j["status"], "running", "{j}");
    let before = j["progress"]["step"].as_u64().unwrap_or(0).max(first["step"].as_u64().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let step = api.job(&long).await["progress"]["step"].as_u64().unwrap_or(0);
        if step > before + 5 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress after the restart (step {step})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A cancel reaches the remote worker, which stops the run within a few steps.
    let (status, body) =
        api.send("POST", &api.scoped(&format!("/v1/jobs/{long}/cancel")), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let asked = Instant::now();
    let names = history(&api, &long).await;
    assert_eq!(names.last().map(String::as_str), Some("training.cancelled"), "{names:?}");
    assert!(asked.elapsed() < Duration::from_secs(20), "cancel took {:?}", asked.elapsed());
    assert_eq!(terminal(&names), 1);

    // A revoked token is refused at the worker's next heartbeat: it stops its job and exits;
    // the job goes back to the queue.
    let third = api.submit(train_config(&rows, 100_000, 1_000_000)).await;
    wait_for(&api, &third, "training.log").await;
    let out = workers_cmd(&data, None, &["revoke", "b"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut worker_b = worker_b;
    let status = worker_b.exited("the revoked worker kept going").await;
    assert!(!status.success());
    assert!(worker_b.stderr().contains("refused this worker's token"), "{}", worker_b.stderr());
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.job(&third).await["status"] != "queued" {
        assert!(Instant::now() < deadline, "the revoked worker's job was not requeued");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let list = String::from_utf8(workers_cmd(&data, None, &["list"]).stdout).unwrap();
    assert!(list.lines().any(|l| l.starts_with("b ") && l.contains("revoked")), "{list}");
    let (status, body) =
        api.send("POST", &api.scoped(&format!("/v1/jobs/{third}/cancel")), None).await;
    assert!(status.is_success(), "{body}");
    assert_eq!(api.job(&third).await["status"], "cancelled");
    drop(backend_proc);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_worker_hands_its_job_back_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("backend");
    // Leases of two minutes: only the hand-back can requeue the job within this test.
    let (backend_proc, url) = backend(&data, free_port(), None, None, 120).await;
    let (a, b) = (add_worker(&data, None, "a"), add_worker(&data, None, "b"));
    let api = Api::sign_up(&url, "handback").await;
    let rows = dataset(tmp.path());
    let job = api.submit(train_config(&rows, 100_000, 20)).await;
    let mut worker_a = Worker::start(&tmp.path().join("worker-a"), &url, &a);
    wait_for(&api, &job, "checkpoint.saved").await;
    // What a supervisor, Slurm at the end of an allocation or Kubernetes does: SIGTERM.
    let pid = worker_a.proc.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = worker_a.exited("the worker did not stop on SIGTERM").await;
    assert!(status.success(), "{}", worker_a.stderr());
    assert!(worker_a.stdout().contains(&format!("job {job}: handed back to the queue")));
    assert_eq!(api.job(&job).await["status"], "queued");

    // The next worker takes it (the hand-back cost no attempt) and continues from a checkpoint.
    let worker_b = Worker::start(&tmp.path().join("worker-b"), &url, &b);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !worker_b.stdout().contains(&format!("job {job}: resuming from step")) {
        assert!(Instant::now() < deadline, "not resumed: {}", worker_b.stdout());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(worker_b.leased(), [(job.clone(), 1)]);
    let (status, body) =
        api.send("POST", &api.scoped(&format!("/v1/jobs/{job}/cancel")), None).await;
    assert!(status.is_success(), "{body}");
    let names = history(&api, &job).await;
    assert_eq!(names.iter().filter(|n| *n == "training.started").count(), 2, "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("training.cancelled"), "{names:?}");
    assert_eq!(terminal(&names), 1);
    drop(backend_proc);
}

/// `--device cuda` on a machine (or a build) without CUDA stops before leasing anything.
#[test]
fn a_worker_told_to_use_a_gpu_it_lacks_does_not_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_arkor"))
        .args(["worker", "--backend", "http://127.0.0.1:9", "--token", "arkw_x"])
        .args(["--device", "cuda"])
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("ARKOR_CPU")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--device cuda") && err.contains("cuda support"), "{err}");
}
