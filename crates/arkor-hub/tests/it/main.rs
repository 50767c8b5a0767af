//! arkor-hub against a real HTTP server on loopback that speaks the parts of the Hugging
//! Face Hub protocol hf-hub uses: repo info, and ranged `resolve` downloads with the
//! `x-repo-commit` / `etag` / `content-range` headers; and `ollama:` references against a
//! fake Ollama model store in a temp dir (`ollama.rs`).

mod fake_hub;
mod ollama;

use arkor_hub::{HubOptions, is_repo_id, resolve_dataset, resolve_model};
use fake_hub::FakeHub;

fn options(hub: &FakeHub, cache: &std::path::Path, offline: bool) -> HubOptions {
    HubOptions {
        endpoint: hub.url(),
        cache_dir: cache.to_path_buf(),
        token: None,
        offline,
        progress: false,
    }
}

#[test]
fn a_model_is_downloaded_once_then_served_from_the_cache_offline() {
    let hub = FakeHub::start();
    let cache = tempfile::tempdir().unwrap();
    let dir = resolve_model("acme/tiny", &options(&hub, cache.path(), false)).unwrap();
    assert!(
        dir.starts_with(cache.path().join("models--acme--tiny/snapshots")),
        "{}",
        dir.display()
    );
    for f in [
        "config.json",
        "tokenizer.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), fake_hub::content("acme/tiny", f), "{f}");
    }
    assert!(!dir.join("README.md").exists(), "downloaded a file the model does not need");
    let served = hub.requests();
    hub.stop();
    let again = resolve_model("acme/tiny", &options(&hub, cache.path(), true)).unwrap();
    assert_eq!(again, dir);
    assert_eq!(hub.requests(), served, "offline resolution made requests");
}

#[test]
fn unreachable_hub_falls_back_to_the_cache_or_says_what_to_do() {
    let hub = FakeHub::start();
    let cache = tempfile::tempdir().unwrap();
    resolve_model("acme/tiny", &options(&hub, cache.path(), false)).unwrap();
    hub.stop();
    // Online mode with the hub gone: the cached copy is used.
    resolve_model("acme/tiny", &options(&hub, cache.path(), false)).unwrap();
    let err =
        resolve_model("acme/other", &options(&hub, cache.path(), false)).unwrap_err().to_string();
    assert!(
        err.contains("acme/other is not in the Hugging Face cache")
            && err.contains("pass a local model"),
        "{err}"
    );
    let err =
        resolve_model("acme/other", &options(&hub, cache.path(), true)).unwrap_err().to_string();
    assert!(err.contains("offline mode"), "{err}");
}

#[test]
fn hub_errors_say_what_to_do() {
    let hub = FakeHub::start();
    let cache = tempfile::tempdir().unwrap();
    let o = options(&hub, cache.path(), false);
    let err = resolve_model("acme/missing", &o).unwrap_err().to_string();
    assert!(err.contains("not found") && err.contains("check the id"), "{err}");
    let err = resolve_model("acme/gated", &o).unwrap_err().to_string();
    assert!(err.contains("HF_TOKEN") && err.contains("401"), "{err}");
    let err = resolve_model("acme/pytorch-only", &o).unwrap_err().to_string();
    assert!(err.contains("safetensors") && err.contains("pytorch_model.bin"), "{err}");
}

#[test]
fn a_dataset_split_resolves_to_its_files() {
    let hub = FakeHub::start();
    let cache = tempfile::tempdir().unwrap();
    let o = options(&hub, cache.path(), false);
    let files = resolve_dataset("acme/chats", "train", &o).unwrap();
    let names: Vec<String> =
        files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["train.jsonl"]);
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        fake_hub::content("acme/chats", "data/train.jsonl")
    );
    let test = resolve_dataset("acme/chats", "test", &o).unwrap();
    assert!(test[0].ends_with("data/test.jsonl"));
    let err = resolve_dataset("acme/chats", "validation", &o).unwrap_err().to_string();
    assert!(err.contains("validation") && err.contains("data/train.jsonl"), "{err}");
    hub.stop();
    let offline =
        resolve_dataset("acme/chats", "train", &options(&hub, cache.path(), true)).unwrap();
    assert_eq!(offline, files);
}

#[test]
fn repo_ids_are_told_apart_from_paths() {
    assert!(is_repo_id("HuggingFaceTB/SmolLM2-135M-Instruct"));
    assert!(is_repo_id("Qwen/Qwen2.5-0.5B-Instruct@main"));
    for not in ["./model", "/abs/path", "model", "a/b/c", "../x", "~/m", ""] {
        assert!(!is_repo_id(not), "{not}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("owner/name")).unwrap();
    let local = dir.path().join("owner/name");
    assert!(!is_repo_id(&local.display().to_string()));
}
