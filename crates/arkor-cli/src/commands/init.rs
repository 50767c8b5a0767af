//! `arkor init`: scaffolds a Cargo project with a trainer, without ever overwriting a file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::args::{InitArgs, Template};

/// What happened to one file.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Created,
    Kept,
    Patched,
    Ok,
}

struct TemplateSpec {
    id: &'static str,
    trainer_name: &'static str,
    label: &'static str,
    train: &'static str,
    heldout: &'static str,
    /// Steps, learning rate and checkpoint interval on a real model (measured on
    /// SmolLM2-135M-Instruct: docs/dev/templates/README.md).
    real: (u32, &'static str, u32),
    /// The strict JSON schema of a reply; the checkpoint probe decodes with it, so every
    /// probe reply parses whatever the checkpoint.
    schema: &'static str,
}

fn spec(t: Template) -> TemplateSpec {
    match t {
        Template::Triage => TemplateSpec {
            id: "triage",
            trainer_name: "triage-run",
            label: "support ticket triage: a ticket becomes JSON with category, urgency, summary and next action",
            train: include_str!("../../templates/triage/data/train.jsonl"),
            heldout: include_str!("../../templates/triage/data/heldout.jsonl"),
            real: (120, "2e-3", 40),
            schema: r#"{"type": "object", "additionalProperties": false, "required": ["category", "urgency", "summary", "nextAction"], "properties": {"category": {"type": "string", "enum": ["account", "billing", "bug", "feature_request", "integration", "security", "performance", "other"]}, "urgency": {"type": "string", "enum": ["low", "medium", "high"]}, "summary": {"type": "string", "maxLength": 160}, "nextAction": {"type": "string", "maxLength": 160}}}"#,
        },
        Template::Translate => TemplateSpec {
            id: "translate",
            trainer_name: "translate-run",
            label: "multilingual intake translation: a message in one of 9 languages becomes JSON with the English translation and the detected language",
            train: include_str!("../../templates/translate/data/train.jsonl"),
            heldout: include_str!("../../templates/translate/data/heldout.jsonl"),
            real: (120, "2e-3", 40),
            schema: r#"{"type": "object", "additionalProperties": false, "required": ["translation", "detectedLanguage"], "properties": {"translation": {"type": "string", "maxLength": 300}, "detectedLanguage": {"type": "string", "enum": ["de", "en", "es", "fr", "it", "ja", "ko", "pt", "zh"]}}}"#,
        },
        Template::Redaction => TemplateSpec {
            id: "redaction",
            trainer_name: "redaction-run",
            label: "PII redaction: free text becomes JSON with the redacted text, the number of redactions and their tags",
            train: include_str!("../../templates/redaction/data/train.jsonl"),
            heldout: include_str!("../../templates/redaction/data/heldout.jsonl"),
            real: (120, "2e-3", 40),
            schema: r#"{"type": "object", "additionalProperties": false, "required": ["redactedText", "redactedCount", "tags"], "properties": {"redactedText": {"type": "string", "maxLength": 400}, "redactedCount": {"type": "integer", "minimum": 0, "maximum": 20}, "tags": {"type": "array", "maxItems": 20, "items": {"type": "string", "enum": ["ADDRESS", "CREDIT_CARD", "DATE_OF_BIRTH", "EMAIL", "ID_NUMBER", "IP_ADDRESS", "NAME", "PHONE"]}}}}"#,
        },
    }
}

/// Default base model of new projects (`--offline` uses `arkor/tiny`).
const DEFAULT_MODEL: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("cannot open {}", dir.display()))?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    let crate_name = crate_name(&name);
    let t = spec(args.template);
    let model = base_model(args.model.as_deref(), args.offline)?;
    let files: Vec<(&str, String)> = vec![
        ("Cargo.toml", cargo_toml(&crate_name)),
        ("src/main.rs", MAIN_RS.to_owned()),
        ("src/arkor/mod.rs", MOD_RS.to_owned()),
        ("src/arkor/trainer.rs", trainer_rs(&t, &model)?),
        ("data/train.jsonl", t.train.to_owned()),
        ("data/heldout.jsonl", t.heldout.to_owned()),
        ("data/reply.schema.json", reply_schema(&t)),
        ("README.md", readme(&name, &t, &model)),
    ];
    println!("Scaffolding {} ({} template) in {}", name, t.id, dir.display());
    let mut report = vec![];
    for (path, content) in files {
        report.push((path.to_owned(), create_if_missing(&dir.join(path), &content)?));
    }
    report.push((".gitignore".to_owned(), gitignore(&dir.join(".gitignore"))?));
    if let Some(lock) = checkout().map(|c| c.join("Cargo.lock")).filter(|l| l.is_file()) {
        // Start from the checkout's resolved versions, so the first build reuses them.
        let text = std::fs::read_to_string(&lock)?;
        report.push(("Cargo.lock".to_owned(), create_if_missing(&dir.join("Cargo.lock"), &text)?));
    }
    for (path, action) in &report {
        println!("  {:<8} {path}", format!("{action:?}").to_lowercase());
    }
    println!();
    println!("Next:");
    if dir != std::env::current_dir().unwrap_or_default() {
        println!("  cd {}", dir.display());
    }
    println!("  arkor start    # build, train, and follow the job in the terminal");
    println!("  arkor jobs list");
    Ok(ExitCode::SUCCESS)
}

/// The arkor source checkout this CLI was built from, if it is still there.
fn checkout() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("crates/arkor/Cargo.toml").is_file().then(|| root.canonicalize().ok()).flatten()
}

fn crate_name(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' })
        .collect();
    let s = s.trim_matches('-').to_owned();
    match s.chars().next() {
        None => "arkor-project".to_owned(),
        Some(c) if c.is_ascii_digit() => format!("p-{s}"),
        Some(_) => s,
    }
}

fn create_if_missing(path: &Path, content: &str) -> anyhow::Result<Action> {
    if path.exists() {
        return Ok(Action::Kept);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create {}", parent.display()))?;
    }
    std::fs::write(path, content).with_context(|| format!("failed to write {}", path.display()))?;
    Ok(Action::Created)
}

fn gitignore(path: &Path) -> anyhow::Result<Action> {
    match std::fs::read_to_string(path) {
        Err(_) => {
            std::fs::write(path, "target/\n.arkor/\n")?;
            Ok(Action::Created)
        }
        Ok(text) if text.lines().any(|l| l.trim() == ".arkor/") => Ok(Action::Ok),
        Ok(mut text) => {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(".arkor/\n");
            std::fs::write(path, text)?;
            Ok(Action::Patched)
        }
    }
}

fn cargo_toml(crate_name: &str) -> String {
    let arkor = match checkout() {
        Some(root) => format!("{{ path = {:?} }}", root.join("crates/arkor").display().to_string()),
        None => format!("\"{}\"", env!("CARGO_PKG_VERSION")),
    };
    format!(
        r#"[package]
name = "{crate_name}"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
arkor = {arkor}
serde_json = "1"

# A project of its own, even inside another Cargo workspace.
[workspace]
"#
    )
}

const MAIN_RS: &str = r#"//! Hands control to arkor: `arkor start`, `arkor dev` and `cargo run` all go through here.

mod arkor;

fn main() -> std::process::ExitCode {
    crate::arkor::project().main()
}
"#;

const MOD_RS: &str = r#"//! The project's trainers. Register more with `.trainer(...)`; Studio lets you pick one.

mod trainer;

/// Every trainer of this project.
pub fn project() -> ::arkor::Arkor {
    ::arkor::Arkor::new().trainer(trainer::trainer())
}
"#;

/// The base model of a new project: the Rust expression the trainer names it with, how
/// to show it, and whether it is the built-in tiny model (whose settings differ).
struct BaseModel {
    expr: String,
    label: String,
    tiny: bool,
}

fn base_model(model: Option<&str>, offline: bool) -> anyhow::Result<BaseModel> {
    let tiny = || BaseModel {
        expr: "Model::arkor_tiny()".to_owned(),
        label: "arkor/tiny (built in, no download)".to_owned(),
        tiny: true,
    };
    let Some(model) = model else {
        return Ok(if offline {
            tiny()
        } else {
            BaseModel {
                expr: "Model::smollm2_135m_instruct()".to_owned(),
                label: DEFAULT_MODEL.to_owned(),
                tiny: false,
            }
        });
    };
    let real = |expr: String| BaseModel { expr, label: model.to_owned(), tiny: false };
    if model == arkor::SUPPORTED_MODELS[0] {
        return Ok(tiny());
    }
    if arkor::SUPPORTED_MODELS.contains(&model) {
        return Ok(real(format!("Model::named({model:?}).expect(\"a supported model\")")));
    }
    if let Some(name) = model.strip_prefix("ollama:") {
        return Ok(real(format!("Model::ollama({name:?})")));
    }
    let path = Path::new(model);
    let absolute = || {
        std::path::absolute(path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| model.to_owned())
    };
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        if !path.is_file() {
            bail!("--model: {model} does not exist");
        }
        return Ok(BaseModel {
            expr: format!("Model::gguf({:?})", absolute()),
            label: absolute(),
            tiny: false,
        });
    }
    if path.join("config.json").is_file() {
        return Ok(BaseModel {
            expr: format!("Model::local_dir({:?})", absolute()),
            label: absolute(),
            tiny: false,
        });
    }
    bail!(
        "--model: expected a supported model ({}), a model directory with config.json, a .gguf \
         file or ollama:NAME[:TAG], got \"{model}\"",
        arkor::SUPPORTED_MODELS.join(", ")
    )
}

fn trainer_rs(t: &TemplateSpec, base: &BaseModel) -> anyhow::Result<String> {
    // The checkpoints are asked the first held-out question.
    let first = t.heldout.lines().next().context("template has no held-out rows")?;
    let row: serde_json::Value = serde_json::from_str(first)?;
    let messages = row["messages"].as_array().context("held-out row without messages")?;
    let text = |role: &str| {
        messages
            .iter()
            .find(|m| m["role"] == role)
            .and_then(|m| m["content"].as_str())
            .map(str::to_owned)
    };
    let (Some(system), Some(question)) = (text("system"), text("user")) else {
        bail!("held-out row without a system and a user message");
    };
    let model = &base.expr;
    let (steps, lr, save) = if base.tiny { (300, "1e-2", 100) } else { t.real };
    Ok(format!(
        r##"//! The {id} trainer: {label}.

use ::arkor::{{
    ChatMessage, Dataset, InferArgs, JsonSchemaFormat, Lora, Model, ResponseFormat, Scheduler,
    Trainer,
}};

/// The instruction every training row starts with.
const SYSTEM: &str = {system:?};

/// A held-out input (from data/heldout.jsonl) each checkpoint is asked.
const PROBE: &str = {question:?};

/// The shape of a reply (the JSON Schema every reply in data/train.jsonl follows); the probe
/// decodes with it, so every reply parses. Studio's Playground uses the same file by default.
const SCHEMA: &str = include_str!("../../data/reply.schema.json");

pub fn trainer() -> Trainer {{
    Trainer::builder("{name}", {model}, Dataset::jsonl("data/train.jsonl"))
        .lora(Lora::new(16, 32.0))
        .max_steps({steps})
        .learning_rate({lr})
        .batch_size(4)
        .warmup_steps(10)
        .scheduler(Scheduler::Cosine)
        .save_steps({save})
        // .dry_run(true) // 50 rows, 10 steps: check the whole pipeline first.
        .on_started(|started| async move {{
            println!("started: job {{}}", started.job.id);
            Ok(())
        }})
        .on_log(|log| async move {{
            let mut line = format!("step={{}}", log.step);
            if let Some(loss) = log.loss.filter(|l| l.is_finite()) {{
                line += &format!(" loss={{loss:.4}}");
            }}
            if let Some(loss) = log.eval_loss.filter(|l| l.is_finite()) {{
                line += &format!(" evalLoss={{loss:.4}}");
            }}
            println!("{{line}}");
            Ok(())
        }})
        .on_checkpoint(|checkpoint| async move {{
            let args = InferArgs {{
                messages: vec![message("system", SYSTEM), message("user", PROBE)],
                temperature: Some(0.0),
                max_tokens: Some(200),
                response_format: Some(ResponseFormat::JsonSchema {{
                    json_schema: JsonSchemaFormat {{
                        name: Some("{id}".to_owned()),
                        schema: serde_json::from_str(SCHEMA).ok(),
                        strict: Some(true),
                        ..JsonSchemaFormat::default()
                    }},
                }}),
                ..InferArgs::default()
            }};
            // Never abort the run because a probe failed: report and go on.
            match checkpoint.infer(args).await {{
                Ok(reply) => match serde_json::from_str::<serde_json::Value>(&reply) {{
                    Ok(json) => println!("checkpoint {{}}: {{json}}", checkpoint.step),
                    Err(_) => println!("checkpoint {{}}: not JSON yet: {{reply}}", checkpoint.step),
                }},
                Err(e) => eprintln!("checkpoint {{}}: inference failed: {{e}}", checkpoint.step),
            }}
            Ok(())
        }})
        .on_completed(|done| async move {{
            println!("completed: {{}} adapter files", done.artifacts.len());
            Ok(())
        }})
        .on_failed(|failed| async move {{
            eprintln!("training failed: {{}}", failed.error);
            Ok(())
        }})
        .build()
        .expect("valid trainer settings")
}}

fn message(role: &str, content: &str) -> ChatMessage {{
    ChatMessage {{ role: role.to_owned(), content: Some(content.to_owned()), ..Default::default() }}
}}
"##,
        id = t.id,
        label = t.label,
        name = t.trainer_name,
    ))
}

/// `data/reply.schema.json`: the template's reply schema, pretty-printed for people to edit.
fn reply_schema(t: &TemplateSpec) -> String {
    let schema: serde_json::Value =
        serde_json::from_str(t.schema).expect("template schemas are JSON");
    serde_json::to_string_pretty(&schema).expect("a JSON value serialises") + "\n"
}

fn readme(name: &str, t: &TemplateSpec, base: &BaseModel) -> String {
    let model = &base.label;
    format!(
        r#"# {name}

An arkor project ({id} template): {label}.
Base model: {model}.

## Getting started

```sh
arkor start    # build, train on the local backend, follow the job (Ctrl-C cancels it)
arkor jobs list
arkor build    # compile only (cargo build --release)
arkor dev      # Studio's local server on http://localhost:4000 (its web UI is not built yet)
```

## Files

- `src/arkor/trainer.rs`: the trainer (model, dataset, LoRA, hyperparameters, callbacks).
- `src/arkor/mod.rs`: registers the project's trainers.
- `src/main.rs`: hands control to arkor.
- `data/train.jsonl`: training rows (chat format); `data/heldout.jsonl`: rows kept out of training, to check the result.
- `data/reply.schema.json`: the JSON Schema of a reply; the checkpoint probe and Studio's Playground decode with it.
- `.arkor/`: local state (project scope, build output); not committed.
"#,
        id = t.id,
        label = t.label,
    )
}
