//! The `arkor` binary, run as a user would: in temp directories, with its own data dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod artifacts;
mod endpoints;
mod models;
mod server;
mod workers;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn arkor(&self, args: &[&str]) -> Output {
        self.arkor_with(args, &[])
    }

    fn arkor_with(&self, args: &[&str], vars: &[(&str, &Path)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_arkor"))
            .args(args)
            .envs(vars.iter().copied())
            .current_dir(self.path())
            .env("ARKOR_DATA_DIR", self.path().join("data-dir"))
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HOME", self.path().join("hf"))
            .output()
            .unwrap()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn dataset(&self) {
        let rows: String = (0..12)
            .map(|i| {
                let (q, a) = [("Say hi.", "Hi there!"), ("Name a colour.", "Blue."), ("What is 2 + 2?", "4.")][i % 3];
                format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"{q}\"}},{{\"role\":\"assistant\",\"content\":\"{a}\"}}]}}\n")
            })
            .collect();
        self.write("data/train.jsonl", &rows);
    }
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

const CONFIG: &str = r#"
name = "cli-test"
model = "arkor/tiny"
max_steps = 60
learning_rate = 1e-2
batch_size = 3
save_steps = 30
[dataset]
type = "jsonl"
path = "data/train.jsonl"
[lora]
r = 8
alpha = 16
"#;

#[test]
fn train_writes_checkpoints_metrics_and_an_adapter_that_chat_uses() {
    let env = Env::new();
    env.dataset();
    env.write("train.toml", CONFIG);
    let out = env.arkor(&["train", "train.toml", "--output", "run", "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("12 rows (12 train, 0 eval)"), "{stderr}");
    assert!(stderr.contains("done: 60 steps"), "{stderr}");
    let run = env.path().join("run");
    for f in [
        "final/adapter_model.safetensors",
        "final/adapter_config.json",
        "checkpoint-30/optimizer.safetensors",
        "train_config.json",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> =
        metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let losses: Vec<f64> =
        lines.iter().filter(|l| l["type"] == "log").map(|l| l["loss"].as_f64().unwrap()).collect();
    assert_eq!(losses.len(), 60);
    assert!(losses[59] < losses[0] / 2.0, "loss {} -> {}", losses[0], losses[59]);
    assert_eq!(lines.last().unwrap()["type"], "completed");

    let chat = |adapter: Option<&str>| {
        let mut args = vec![
            "chat",
            "--model",
            "arkor/tiny",
            "--temperature",
            "0",
            "--prompt",
            "Name a colour.",
        ];
        if let Some(a) = adapter {
            args.extend(["--adapter", a]);
        }
        let out = env.arkor(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(chat(Some("run/final")), "Blue.\n");
    assert_ne!(chat(None), "Blue.\n");

    // Resuming from the checkpoint finishes the remaining 30 steps.
    let out = env.arkor(&[
        "train",
        "train.toml",
        "--output",
        "run",
        "--no-progress",
        "--resume",
        "run/checkpoint-30",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("step 31/60") && !stderr.contains("step 30/60"), "{stderr}");
}

fn train_error(env: &Env, config: &str) -> String {
    env.write("bad.toml", config);
    let out = env.arkor(&["train", "bad.toml", "--no-progress"]);
    assert!(!out.status.success(), "training with a bad config succeeded");
    text(&out.stderr)
}

#[test]
fn bad_configs_and_datasets_say_what_and_where() {
    let env = Env::new();
    env.dataset();
    let err = train_error(&env, &format!("learning_rat = 0.1{CONFIG}"));
    assert!(
        err.contains("bad.toml")
            && err.contains("unknown field `learning_rat`")
            && err.contains("line 1,"),
        "{err}"
    );
    let err = train_error(&env, &format!("{CONFIG}ranks = 4\n"));
    assert!(
        err.contains("unknown field `ranks`") && err.contains("expected one of `r`, `alpha`"),
        "{err}"
    );
    let err = train_error(&env, &CONFIG.replace("r = 8", "r = 8\ndropout = 2.0"));
    assert!(err.contains("lora.dropout") && err.contains("got 2"), "{err}");
    let err = train_error(&env, &CONFIG.replace("max_steps = 60", "max_steps = \"lots\""));
    assert!(err.contains("max_steps") && err.contains("line 4"), "{err}");
    let err = train_error(&env, &CONFIG.replace("data/train.jsonl", "data/missing.jsonl"));
    assert!(err.contains("data/missing.jsonl") && err.contains("does not exist"), "{err}");
    let err = train_error(
        &env,
        &CONFIG
            .replace("lr_scheduler_type", "x")
            .replace("batch_size = 3", "batch_size = 3\nlr_scheduler_type = \"step\""),
    );
    assert!(
        err.contains("lr_scheduler_type") && err.contains("linear") && err.contains("cosine"),
        "{err}"
    );
    env.write("data/bad.jsonl", "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}]}\n{\"messages\":[{\"role\":\"human\",\"content\":\"q\"}]}\n");
    let err = train_error(&env, &CONFIG.replace("data/train.jsonl", "data/bad.jsonl"));
    assert!(
        err.contains("bad.jsonl:2: field `messages[0].role`") && err.contains("\"human\""),
        "{err}"
    );
    let err = train_error(&env, &CONFIG.replace("arkor/tiny", "no-such-model"));
    assert!(err.contains("no-such-model") && err.contains("Hugging Face repo id"), "{err}");
    let err = train_error(&env, &CONFIG.replace("arkor/tiny", "acme/not-cached"));
    assert!(
        err.contains("acme/not-cached is not in the Hugging Face cache")
            && err.contains("offline mode"),
        "{err}"
    );
}

#[test]
fn chat_errors_are_clear() {
    let env = Env::new();
    let out =
        env.arkor(&["chat", "--model", "arkor/tiny", "--adapter", "nowhere", "--prompt", "hi"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("failed to load the adapter nowhere")
            && err.contains("no adapter_config.json"),
        "{err}"
    );
    let out = env.arkor(&["chat", "--model", "arkor/tiny", "--top-p", "0", "--prompt", "hi"]);
    assert!(text(&out.stderr).contains("top_p"), "{}", text(&out.stderr));
    let out = env.arkor(&["chat", "--model", "arkor/tiny", "--regex", "(open", "--prompt", "hi"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unclosed"), "{}", text(&out.stderr));
    env.write("schema.json", "{\"type\": \"strin\"}");
    let out = env.arkor(&[
        "chat",
        "--model",
        "arkor/tiny",
        "--json-schema",
        "schema.json",
        "--prompt",
        "hi",
    ]);
    assert!(text(&out.stderr).contains("strin"), "{}", text(&out.stderr));
    let out =
        env.arkor(&["chat", "--model", "arkor/tiny", "--regex", "a", "--choice", "b", "-p", "hi"]);
    assert!(text(&out.stderr).contains("cannot be used with"), "{}", text(&out.stderr));
}

#[test]
fn chat_holds_replies_to_a_schema_regex_or_choice() {
    let env = Env::new();
    let chat = |extra: &[&str]| {
        let mut args =
            vec!["chat", "--model", "arkor/tiny", "--temperature", "1", "--prompt", "Go."];
        args.extend(extra);
        let out = env.arkor(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim_end_matches('\n').to_owned()
    };
    for seed in ["1", "2", "3"] {
        let reply = chat(&["--seed", seed, "--choice", "red,green,blue"]);
        assert!(["red", "green", "blue"].contains(&reply.as_str()), "{reply}");
        let reply = chat(&["--seed", seed, "--regex", "[0-9]{2}:[0-9]{2}"]);
        assert!(reply.len() == 5 && reply.as_bytes()[2] == b':', "{reply}");
    }
    env.write(
        "schema.json",
        r#"{"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
            "additionalProperties": false}"#,
    );
    let reply = chat(&["--json-schema", "schema.json"]);
    let value: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert!(value["ok"].is_boolean(), "{reply}");
}

mod eval;

mod project;

mod structured;

mod studio;

mod data;
