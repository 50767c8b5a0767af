//! `ollama:` references resolved against a fake Ollama model store written into a temp dir:
//! manifests under `manifests/<host>/<namespace>/<model>/<tag>` and blobs under
//! `blobs/sha256-<hex>`, laid out as `ollama pull` leaves them. No Ollama binary is involved.

use std::path::{Path, PathBuf};

use arkor_hub::{OllamaError, is_ollama_ref, ollama::OllamaName, resolve_ollama};

const MODEL: &str = "application/vnd.ollama.image.model";

/// A fake store; `digest` gives each blob a distinct valid sha256-shaped name.
struct Store {
    dir: tempfile::TempDir,
    next: u8,
}

impl Store {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), next: 0 }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a blob with `content` and returns its digest (`sha256:<hex>`).
    fn blob(&mut self, content: &[u8]) -> String {
        self.next += 1;
        let hex = format!("{:064x}", u32::from(self.next) * 0xabcdef);
        let blobs = self.path().join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join(format!("sha256-{hex}")), content).unwrap();
        format!("sha256:{hex}")
    }

    /// Writes the manifest for `host/namespace/model/tag` with `layers` (media type, digest).
    fn manifest(&self, rel: &str, layers: &[(&str, &str)]) -> PathBuf {
        let layers: Vec<String> = layers
            .iter()
            .map(|(m, d)| format!(r#"{{"mediaType":"{m}","digest":"{d}","size":4}}"#))
            .collect();
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:{}","size":2}},"layers":[{}]}}"#,
            "0".repeat(64),
            layers.join(",")
        );
        self.raw_manifest(rel, &json)
    }

    fn raw_manifest(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path().join("manifests").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A GGUF model with a template and params layer, as `ollama pull` leaves it.
    fn model(&mut self, rel: &str) -> PathBuf {
        let gguf = self.blob(b"GGUF\x03\x00\x00\x00rest");
        let template = self.blob(b"{{ .Prompt }}");
        let params = self.blob(br#"{"stop":["<|eot|>"]}"#);
        self.manifest(
            rel,
            &[
                (MODEL, &gguf),
                ("application/vnd.ollama.image.template", &template),
                ("application/vnd.ollama.image.params", &params),
            ],
        );
        self.blob_path(&gguf)
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.path().join("blobs").join(digest.replace(':', "-"))
    }
}

fn err(reference: &str, store: &Store) -> String {
    resolve_ollama(reference, store.path()).unwrap_err().to_string()
}

#[test]
fn names_get_ollamas_defaults() {
    let mut store = Store::new();
    let latest = store.model("registry.ollama.ai/library/llama3.2/latest");
    let small = store.model("registry.ollama.ai/library/llama3.2/1b");
    let user = store.model("registry.ollama.ai/alice/tiny-chat/q8_0");
    let hosted = store.model("localhost:5000/team/m/v1.0");
    assert_eq!(resolve_ollama("ollama:llama3.2", store.path()).unwrap(), latest);
    assert_eq!(resolve_ollama("ollama:llama3.2:latest", store.path()).unwrap(), latest);
    assert_eq!(resolve_ollama("llama3.2", store.path()).unwrap(), latest, "prefix optional");
    assert_eq!(resolve_ollama("ollama:llama3.2:1b", store.path()).unwrap(), small);
    assert_eq!(resolve_ollama("ollama:alice/tiny-chat:q8_0", store.path()).unwrap(), user);
    assert_eq!(
        resolve_ollama("ollama:registry.ollama.ai/alice/tiny-chat:q8_0", store.path()).unwrap(),
        user
    );
    assert_eq!(resolve_ollama("ollama:localhost:5000/team/m:v1.0", store.path()).unwrap(), hosted);
    assert_eq!(
        OllamaName::parse("ollama:qwen2.5").unwrap().to_string(),
        "registry.ollama.ai/library/qwen2.5:latest"
    );
}

#[test]
fn ollama_refs_are_told_apart() {
    assert!(is_ollama_ref("ollama:llama3.2:1b"));
    for not in ["llama3.2", "owner/name", "./ollama:x", "Ollama:x", ""] {
        assert!(!is_ollama_ref(not), "{not}");
    }
    assert!(!arkor_hub::is_repo_id("ollama:alice/model"));
}

#[test]
fn invalid_names_are_refused_before_touching_the_store() {
    let store = Store::new();
    for (reference, says) in [
        ("ollama:", "the model is empty"),
        ("ollama:llama:", "the tag is empty"),
        ("ollama:/llama", "the namespace is empty"),
        ("ollama:../llama", "the namespace \"..\" must start"),
        ("ollama:..", "the model \"..\" must start"),
        ("ollama:llama:..", "the tag \"..\" must start"),
        ("ollama:../../x/y", "4 '/'-separated parts"),
        ("ollama:a.b/llama", "the namespace \"a.b\""),
        ("ollama:llama\\x", "the model \"llama\\x\""),
        ("ollama:h/n/m/x:t", "4 '/'-separated parts"),
    ] {
        let e = err(reference, &store);
        assert!(e.starts_with("invalid ollama model name") && e.contains(says), "{reference}: {e}");
        assert!(e.contains("[host/][namespace/]model[:tag]"), "{e}");
    }
}

#[test]
fn a_missing_model_says_where_it_looked_and_how_to_get_it() {
    let mut store = Store::new();
    store.model("registry.ollama.ai/library/llama3.2/latest");
    let manifest = store.path().join("manifests/registry.ollama.ai/library/llama3.2/1b");
    let e = err("ollama:llama3.2:1b", &store);
    assert_eq!(
        e,
        format!(
            "ollama model llama3.2:1b is not installed: no manifest at {}; run `ollama pull llama3.2:1b`",
            manifest.display()
        )
    );
    let e = err("ollama:alice/other", &store);
    assert!(e.contains("registry.ollama.ai/alice/other/latest"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = resolve_ollama("ollama:x", &empty.path().join("nowhere")).unwrap_err();
    assert!(matches!(e, OllamaError::NotInstalled { .. }), "{e}");
}

#[test]
fn a_broken_manifest_names_its_path_and_the_json_error() {
    let store = Store::new();
    let path = store.raw_manifest("registry.ollama.ai/library/bad/latest", "{\"layers\": [");
    let e = err("ollama:bad", &store);
    assert!(
        e.contains("manifest of ollama model bad")
            && e.contains(&path.display().to_string())
            && e.contains("not a valid manifest JSON")
            && e.contains("line 1"),
        "{e}"
    );
    store.raw_manifest("registry.ollama.ai/library/shape/latest", r#"{"schemaVersion":2}"#);
    let e = err("ollama:shape", &store);
    assert!(e.contains("missing field `layers`"), "{e}");
}

#[test]
fn manifests_without_one_gguf_model_layer_are_refused() {
    let mut store = Store::new();
    let t = store.blob(b"{{ .Prompt }}");
    let path = store.manifest(
        "registry.ollama.ai/library/nomodel/latest",
        &[("application/vnd.ollama.image.template", &t)],
    );
    let e = err("ollama:nomodel", &store);
    assert!(
        e.contains("has 0 `application/vnd.ollama.image.model` layers")
            && e.contains(&path.display().to_string())
            && e.contains("layers: application/vnd.ollama.image.template"),
        "{e}"
    );

    let w = store.blob(b"safetensors bytes");
    let path = store.manifest(
        "registry.ollama.ai/library/st/latest",
        &[("application/vnd.ollama.image.tensor", &w), ("application/vnd.ollama.image.tensor", &w)],
    );
    let e = err("ollama:st", &store);
    assert!(
        e.contains("ollama model st is stored as `application/vnd.ollama.image.tensor` layers")
            && e.contains("not as a GGUF file: unsupported")
            && e.contains(&path.display().to_string()),
        "{e}"
    );
}

#[test]
fn adapters_and_projectors_are_refused_by_media_type() {
    let mut store = Store::new();
    for kind in ["adapter", "projector"] {
        let gguf = store.blob(b"GGUF....");
        let extra = store.blob(b"GGUF....");
        let rel = format!("registry.ollama.ai/library/{kind}ed/latest");
        let media = format!("application/vnd.ollama.image.{kind}");
        let path = store.manifest(&rel, &[(MODEL, &gguf), (&media, &extra)]);
        let e = err(&format!("ollama:{kind}ed"), &store);
        assert!(
            e.contains(&format!("has a `{media}` layer"))
                && e.contains("the model layer alone is not what Ollama runs")
                && e.contains(&path.display().to_string()),
            "{e}"
        );
    }
}

#[test]
fn bad_digests_missing_blobs_and_non_gguf_blobs_are_named() {
    let mut store = Store::new();
    for digest in ["sha256:abc", "md5:0123", &format!("sha256:{}", "g".repeat(64)), "../../x"] {
        store.manifest("registry.ollama.ai/library/dig/latest", &[(MODEL, digest)]);
        let e = err("ollama:dig", &store);
        assert!(
            e.contains(&format!("model layer digest \"{digest}\""))
                && e.contains("expected sha256:<64 hex digits>"),
            "{e}"
        );
    }

    let gone = format!("sha256:{}", "e".repeat(64));
    let path = store.manifest("registry.ollama.ai/library/gone/latest", &[(MODEL, &gone)]);
    let blob = store.blob_path(&gone);
    let e = err("ollama:gone", &store);
    assert!(
        e.contains("model blob of ollama model gone is missing")
            && e.contains(&format!("no file at {}", blob.display()))
            && e.contains(&path.display().to_string()),
        "{e}"
    );

    let zip = store.blob(b"PK\x03\x04more");
    store.manifest("registry.ollama.ai/library/zip/latest", &[(MODEL, &zip)]);
    let e = err("ollama:zip", &store);
    assert!(
        e.contains(&format!("at {} is not a GGUF file", store.blob_path(&zip).display()))
            && e.contains(r#"expected magic "GGUF", got "PK\x03\x04""#),
        "{e}"
    );
    let short = store.blob(b"GG");
    store.manifest("registry.ollama.ai/library/short/latest", &[(MODEL, &short)]);
    let e = err("ollama:short", &store);
    assert!(e.contains("got a 2-byte file"), "{e}");
}

#[test]
fn resolution_leaves_the_store_untouched() {
    let mut store = Store::new();
    store.model("registry.ollama.ai/library/llama3.2/latest");
    let listing = |dir: &Path| {
        let mut out = vec![];
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let meta = std::fs::metadata(&p).unwrap();
                out.push((p.clone(), meta.len(), meta.modified().unwrap()));
                if meta.is_dir() {
                    stack.push(p);
                }
            }
        }
        out.sort();
        out
    };
    let before = listing(store.path());
    resolve_ollama("ollama:llama3.2", store.path()).unwrap();
    let _ = resolve_ollama("ollama:missing", store.path());
    assert_eq!(listing(store.path()), before);
}
