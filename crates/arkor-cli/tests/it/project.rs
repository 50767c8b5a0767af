//! `arkor init` -> `arkor build` -> `arkor start`, as a user runs them: the real binary,
//! a scaffolded Cargo project compiled with cargo, an embedded backend, `arkor/tiny`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn arkor(dir: &Path, data: &Path, args: &[&str]) -> Output {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/arkor-projects");
    Command::new(env!("CARGO_BIN_EXE_arkor"))
        .args(args)
        .current_dir(dir)
        .env("ARKOR_DATA_DIR", data)
        .env("HF_HUB_OFFLINE", "1")
        .env("ARKOR_CPU", "1")
        // Scaffolded projects share one target dir, so the SDK is compiled once.
        .env("CARGO_TARGET_DIR", target)
        .env_remove("ARKOR_BACKEND_URL")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Runs `arkor start` in its own process group, sends SIGINT to the group once the first
/// training log is printed (what a terminal does on Ctrl-C), and collects the output.
fn interrupt_after_first_log(proj: &Path, data: &Path) -> Output {
    use std::io::{BufRead, Read};
    use std::os::unix::process::CommandExt;
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/arkor-projects");
    let mut child = Command::new(env!("CARGO_BIN_EXE_arkor"))
        .arg("start")
        .current_dir(proj)
        .env("ARKOR_DATA_DIR", data)
        .env("HF_HUB_OFFLINE", "1")
        .env("ARKOR_CPU", "1")
        .env("CARGO_TARGET_DIR", target)
        .env_remove("ARKOR_BACKEND_URL")
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pgid = child.id();
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        stderr.read_to_end(&mut s).unwrap();
        s
    });
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "no training log before the end");
        seen.extend_from_slice(line.as_bytes());
        if line.starts_with("step=") {
            break;
        }
    }
    let status =
        Command::new("kill").args(["-s", "INT", "--", &format!("-{pgid}")]).status().unwrap();
    assert!(status.success());
    stdout.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    Output { status, stdout: seen, stderr: err_reader.join().unwrap() }
}

#[test]
fn init_keeps_existing_files_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("mine");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::write(proj.join("README.md"), "my own readme\n").unwrap();
    std::fs::write(proj.join(".gitignore"), "node_modules/").unwrap();
    let out =
        arkor(tmp.path(), &tmp.path().join("data"), &["init", "mine", "--template", "redaction"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("kept     README.md"), "{stdout}");
    assert!(stdout.contains("patched  .gitignore"), "{stdout}");
    assert!(stdout.contains("created  src/arkor/trainer.rs"), "{stdout}");
    assert_eq!(std::fs::read_to_string(proj.join("README.md")).unwrap(), "my own readme\n");
    assert_eq!(
        std::fs::read_to_string(proj.join(".gitignore")).unwrap(),
        "node_modules/\n.arkor/\n"
    );
    let trainer = std::fs::read_to_string(proj.join("src/arkor/trainer.rs")).unwrap();
    assert!(
        trainer.contains("\"redaction-run\"") && trainer.contains("Model::arkor_tiny()"),
        "{trainer}"
    );
    // The reply schema the trainer's probe includes and the Playground defaults to.
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(proj.join("data/reply.schema.json")).unwrap())
            .unwrap();
    assert_eq!(schema["properties"]["tags"]["items"]["enum"][0], "ADDRESS", "{schema}");
    assert!(trainer.contains("include_str!(\"../../data/reply.schema.json\")"), "{trainer}");

    let before = snapshot(&proj);
    let out =
        arkor(tmp.path(), &tmp.path().join("data"), &["init", "mine", "--template", "triage"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("created") && !stdout.contains("patched"), "{stdout}");
    assert!(stdout.contains("ok       .gitignore"), "{stdout}");
    assert_eq!(snapshot(&proj), before, "a second init changes nothing");
}

#[test]
fn init_model_names_any_supported_base_model_and_refuses_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let trainer = |project: &str| {
        std::fs::read_to_string(tmp.path().join(project).join("src/arkor/trainer.rs")).unwrap()
    };
    std::fs::write(tmp.path().join("base.gguf"), b"GGUF").unwrap();
    let gguf = tmp.path().join("base.gguf").canonicalize().unwrap();
    for (project, model, expected) in [
        ("a", "ollama:smollm2:135m", "Model::ollama(\"smollm2:135m\")".to_owned()),
        (
            "b",
            "Qwen/Qwen2.5-0.5B-Instruct",
            "Model::named(\"Qwen/Qwen2.5-0.5B-Instruct\")".to_owned(),
        ),
        ("c", "base.gguf", format!("Model::gguf({:?})", gguf.display().to_string())),
        ("d", "arkor/tiny", "Model::arkor_tiny()".to_owned()),
    ] {
        let out = arkor(tmp.path(), &data, &["init", project, "--model", model]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(trainer(project).contains(&expected), "{model}: {}", trainer(project));
    }
    assert!(trainer("d").contains(".learning_rate(1e-2)"), "tiny keeps its own settings");
    let out = arkor(tmp.path(), &data, &["init", "e", "--model", "gpt-5"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--model: expected a supported model"),
        "{}",
        text(&out.stderr)
    );
    assert!(!tmp.path().join("e/src").exists(), "nothing is written for a bad --model");
}

#[test]
fn init_build_start_trains_with_callbacks_then_a_bad_dataset_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = arkor(tmp.path(), &data, &["init", "tickets", "--template", "triage"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let proj = tmp.path().join("tickets");
    // A shorter run than the template's, as a user would edit it.
    let trainer = proj.join("src/arkor/trainer.rs");
    let code = std::fs::read_to_string(&trainer).unwrap();
    assert!(code.contains(".max_steps(300)") && code.contains(".save_steps(100)"), "{code}");
    let code = code
        .replace(".max_steps(300)", ".max_steps(20)")
        .replace(".save_steps(100)", ".save_steps(10)");
    std::fs::write(&trainer, code).unwrap();

    // `build` without a project says what to do.
    let out = arkor(tmp.path(), &data, &["build"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("Training entry not found"), "{}", text(&out.stderr));

    let out = arkor(&proj, &data, &["build"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(proj.join(".arkor/build/trainer").is_file());
    let manifest =
        Command::new(proj.join(".arkor/build/trainer")).arg("manifest").output().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    assert_eq!(manifest["trainers"][0]["name"], "triage-run");
    assert_eq!(manifest["trainers"][0]["model"], "arkor/tiny");

    let out = arkor(&proj, &data, &["start"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Callbacks ran in event order: started, logs, checkpoints (whose infer answered),
    // completed; then the runner's summary.
    let at = |needle: &str| {
        stdout.find(needle).unwrap_or_else(|| panic!("{needle:?} missing in:\n{stdout}"))
    };
    let started = at("Started job ");
    let on_started = at("started: job ");
    let first_log = at("step=1 loss=");
    let checkpoint = at("checkpoint 10: ");
    let last_log = at("step=20 loss=");
    let completed = at("completed: 2 adapter files");
    let finished = at("finished with status=completed");
    assert!(started < on_started && on_started < first_log && first_log < checkpoint);
    assert!(checkpoint < last_log && last_log < completed && completed < finished, "{stdout}");
    assert!(!stderr.contains("inference failed"), "{stderr}");
    assert!(proj.join(".arkor/state.json").is_file());
    let loss = |step: &str| -> f64 {
        let line = stdout.lines().find(|l| l.starts_with(&format!("step={step} loss="))).unwrap();
        line.split("loss=").nth(1).unwrap().parse().unwrap()
    };
    assert!(loss("20") < loss("1"), "the loss went down");

    // The jobs command and whoami see it (through a new embedded backend on another port).
    let out = arkor(&proj, &data, &["jobs", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("completed"), "{}", text(&out.stdout));
    let out = arkor(&proj, &data, &["whoami"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("(anonymous)"), "{}", text(&out.stdout));
    // `jobs logs` replays the whole event log in order and stops at the end.
    let id = stdout.split("Started job ").nth(1).unwrap().split_whitespace().next().unwrap();
    let out = arkor(&proj, &data, &["jobs", "logs", id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let logs = text(&out.stdout);
    let names: Vec<&str> = logs.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names.first(), Some(&"training.started"), "{logs}");
    assert_eq!(names.last(), Some(&"training.completed"), "{logs}");
    assert_eq!(names.iter().filter(|n| **n == "training.log").count(), 20, "{logs}");
    assert_eq!(names.iter().filter(|n| **n == "checkpoint.saved").count(), 1, "{logs}");
    assert!(logs.contains("\"step\":20"), "{logs}");

    // Ctrl-C (SIGINT to the foreground process group) cancels the job; exit code 130.
    let code =
        std::fs::read_to_string(&trainer).unwrap().replace(".max_steps(20)", ".max_steps(100000)");
    std::fs::write(&trainer, code).unwrap();
    let out = interrupt_after_first_log(&proj, &data);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stdout.contains("finished with status=cancelled"), "{stdout}");
    assert!(stderr.contains("cancelling job"), "{stderr}");
    let out = arkor(&proj, &data, &["jobs", "list"]);
    assert!(text(&out.stdout).contains("cancelled"), "{}", text(&out.stdout));

    // A malformed dataset: the job fails, the reason reaches the user, exit code 1.
    std::fs::write(proj.join("data/train.jsonl"), "{\"messages\": [}\n").unwrap();
    let out = arkor(&proj, &data, &["start"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("finished with status=failed"), "{stdout}");
    assert!(stderr.contains("train.jsonl") && stderr.contains("line 1"), "{stderr}");
}
