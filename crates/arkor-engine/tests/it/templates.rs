//! Real chat templates render exactly as transformers renders them: Qwen3 (thinking on and
//! off, a reply with its reasoning, tools and a tool result), Qwen2.5, SmolLM3, Gemma 2
//! (whose refusal of a system prompt is an error here too), Llama 3.2 (tools), Phi-3.5 and
//! Mistral Nemo (tools). The templates come from llama.cpp's copy of them in the pinned npm
//! package (`ARKOR_CHAT_TEMPLATES`); the expected text from transformers
//! (`tests/data/reference/make_template_reference.py`, committed as `chat_templates.json`).

use arkor_engine::tokenizer::render_chat_template;
use arkor_test_support::real::chat_templates_dir;
use sha2::{Digest, Sha256};

#[test]
fn real_chat_templates_render_as_transformers_renders_them() {
    let Some(dir) = chat_templates_dir() else { return };
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../data/reference/chat_templates.json")).unwrap();
    let mut checked = 0;
    for t in reference["templates"].as_array().unwrap() {
        let file = t["file"].as_str().unwrap();
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let digest: String =
            Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, t["sha256"].as_str().unwrap(), "{file} is not the template rendered");
        for case in t["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let got = render_chat_template(&text, &case["context"]);
            match (&case["expected"], got) {
                (serde_json::Value::String(want), Ok(got)) => {
                    assert_eq!(got, *want, "{file}, {name}")
                }
                (serde_json::Value::Null, Err(e)) => {
                    let want = case["error"].as_str().unwrap();
                    assert!(e.contains(want), "{file}, {name}: {e} (transformers: {want})");
                }
                (want, got) => panic!("{file}, {name}: transformers gave {want}, arkor {got:?}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 32);
}
