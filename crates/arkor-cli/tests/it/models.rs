//! Real-model formats from the command line: a model exported with `arkor export` is
//! named as a `.gguf` path or as `ollama:NAME` (through an Ollama store laid out as Ollama
//! writes it) by `arkor chat` and `arkor train`, and bad references get clear errors.

use std::path::Path;

use crate::{CONFIG, Env, text};

/// Lays out `gguf` in an Ollama model store at `store` as `name:latest`.
fn install_in_fake_ollama_store(store: &Path, name: &str, gguf: &Path) {
    let out = std::process::Command::new("sha256sum").arg(gguf).output().unwrap();
    let digest = text(&out.stdout).split_whitespace().next().unwrap().to_owned();
    let blobs = store.join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::copy(gguf, blobs.join(format!("sha256-{digest}"))).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": format!("sha256:{digest}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": format!("sha256:{digest}"),
                    "size": std::fs::metadata(gguf).unwrap().len()}],
    });
    let dir = store.join("manifests/registry.ollama.ai/library").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("latest"), manifest.to_string()).unwrap();
}

#[test]
fn an_exported_gguf_is_a_model_for_chat_and_train_as_a_path_and_through_ollama() {
    let env = Env::new();
    env.dataset();
    env.write("train.toml", CONFIG);
    let out = env.arkor(&["train", "train.toml", "--output", "run", "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = env.arkor(&[
        "export",
        "--model",
        "arkor/tiny",
        "--adapter",
        "run/final",
        "--format",
        "gguf",
        "--quant",
        "f32",
        "--output",
        "merged.gguf",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("merged.gguf"), "{}", text(&out.stdout));
    let ask = |model: &str, store: &Path| {
        let out = env.arkor_with(
            &[
                "chat",
                "--model",
                model,
                "--prompt",
                "Say hi.",
                "--temperature",
                "0",
                "--max-tokens",
                "20",
            ],
            &[("OLLAMA_MODELS", store)],
        );
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let store = env.path().join("ollama-models");
    let (ok, reply, err) = ask("merged.gguf", &store);
    assert!(ok, "{err}");
    assert_eq!(reply.trim(), "Hi there!", "the merged GGUF alone answers what the adapter learned");

    install_in_fake_ollama_store(&store, "tiny-merged", &env.path().join("merged.gguf"));
    let (ok, reply, err) = ask("ollama:tiny-merged", &store);
    assert!(ok, "{err}");
    assert_eq!(reply.trim(), "Hi there!");
    let (ok, _, err) = ask("ollama:not-pulled:7b", &store);
    assert!(!ok);
    let manifest = store.join("manifests/registry.ollama.ai/library/not-pulled/7b");
    assert!(
        err.contains("not installed") && err.contains(&manifest.display().to_string()),
        "{err}"
    );
    let (ok, _, err) = ask("missing.gguf", &store);
    assert!(!ok && err.contains("missing.gguf does not exist"), "{err}");
    std::fs::write(env.path().join("broken.gguf"), b"GGUF\x03\x00\x00\x00").unwrap();
    let (ok, _, err) = ask("broken.gguf", &store);
    assert!(!ok && err.contains("broken.gguf") && err.contains("header"), "{err}");

    // Training starts from the GGUF too (a few steps: it loads, learns and saves).
    env.write(
        "gguf.toml",
        &CONFIG
            .replace("model = \"arkor/tiny\"", "model = \"merged.gguf\"")
            .replace("max_steps = 60", "max_steps = 4"),
    );
    let out = env.arkor(&["train", "gguf.toml", "--output", "run-gguf", "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(env.path().join("run-gguf/final/adapter_model.safetensors").is_file());
}

#[test]
fn export_refuses_bad_arguments_before_doing_any_work() {
    let env = Env::new();
    let run = |args: &[&str]| {
        let out = env.arkor(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        text(&out.stderr)
    };
    let err = run(&["export", "--model", "arkor/tiny", "--format", "onnx", "--output", "x"]);
    assert!(
        err.contains("--format: expected one of hf, gguf, gguf-lora, ollama, got \"onnx\""),
        "{err}"
    );
    let err = run(&[
        "export",
        "--model",
        "arkor/tiny",
        "--format",
        "gguf",
        "--quant",
        "q3",
        "--output",
        "x",
    ]);
    assert!(err.contains("--quant: expected one of f32, f16, bf16, q8_0, q4_k_m"), "{err}");
    let err = run(&["export", "--model", "arkor/tiny", "--format", "gguf-lora", "--output", "x"]);
    assert!(err.contains("--adapter is required"), "{err}");
    env.write("taken/keep.txt", "mine");
    let err = run(&["export", "--model", "arkor/tiny", "--format", "hf", "--output", "taken"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(env.path().join("taken/keep.txt")).unwrap(), "mine");
}
