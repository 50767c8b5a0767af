//! Tokenizer files, chat templates and streaming decoding.

use super::*;

fn tiny() -> (tempfile::TempDir, TextTokenizer) {
    let dir = tempfile::tempdir().unwrap();
    write_byte_level_tokenizer(dir.path()).unwrap();
    let tok = TextTokenizer::from_dir(dir.path()).unwrap();
    (dir, tok)
}

fn msgs(pairs: &[(&str, &str)]) -> Vec<ChatMessage> {
    pairs.iter().map(|(r, c)| ChatMessage { role: (*r).into(), content: (*c).into() }).collect()
}

#[test]
fn byte_level_tokenizer_round_trips_any_text_and_is_deterministic() {
    let (dir, tok) = tiny();
    let text = "The thing is: héllo wörld 👋🏽 日本語\n<|im_end|>";
    let ids = tok.encode(text, false).unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
    assert!(ids.len() < text.len(), "merges should shorten English text");
    assert_eq!(tok.eos_token_ids(), &[tok.token_id("<|im_end|>").unwrap()]);
    assert_eq!(tok.pad_token_id(), tok.token_id("<|endoftext|>").unwrap());
    let again = tempfile::tempdir().unwrap();
    write_byte_level_tokenizer(again.path()).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        assert_eq!(
            std::fs::read(dir.path().join(f)).unwrap(),
            std::fs::read(again.path().join(f)).unwrap()
        );
    }
}

#[test]
fn streaming_decode_equals_full_decode_across_split_characters() {
    let (_dir, tok) = tiny();
    let text = "Grüße 👋🏽, 日本語 and the end";
    let ids = tok.encode(text, false).unwrap();
    let mut stream = tok.decode_stream();
    let mut pieces = vec![];
    for id in &ids {
        if let Some(p) = stream.step(*id).unwrap() {
            assert!(!p.contains('\u{FFFD}'), "emitted a broken character: {p:?}");
            pieces.push(p);
        }
    }
    if let Some(p) = stream.flush().unwrap() {
        pieces.push(p);
    }
    assert_eq!(pieces.concat(), text);
    assert!(pieces.len() > 5);
}

#[test]
fn chatml_renders_with_and_without_generation_prompt() {
    let (_dir, tok) = tiny();
    let m = msgs(&[("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!")]);
    expect_test::expect![[r#"
        <|im_start|>system
        Be brief.<|im_end|>
        <|im_start|>user
        Hi<|im_end|>
        <|im_start|>assistant
        Hello!<|im_end|>
    "#]]
    .assert_eq(&tok.render_chat(&m, false).unwrap());
    assert!(tok.render_chat(&m[..2], true).unwrap().ends_with("<|im_start|>assistant\n"));
}

fn with_template(template: &str) -> (tempfile::TempDir, TextTokenizer) {
    let dir = tempfile::tempdir().unwrap();
    write_byte_level_tokenizer(dir.path()).unwrap();
    let cfg = serde_json::json!({"chat_template": template, "bos_token": {"content": "<s>"}, "eos_token": "</s>"});
    std::fs::write(dir.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
    let tok = TextTokenizer::from_dir(dir.path()).unwrap();
    (dir, tok)
}

#[test]
fn hub_template_features_work() {
    // Python string methods, loop controls, namespace, tojson, bos/eos, raise_exception.
    let template = "{{ bos_token }}{% set ns = namespace(n=0) %}{% for m in messages %}\
        {% if m['role'] == 'tool' %}{% continue %}{% endif %}{% set ns.n = ns.n + 1 %}\
        {% if m['role'] not in ['user', 'assistant', 'system'] %}{{ raise_exception('bad role ' + m['role']) }}{% endif %}\
        [{{ m['role'] | upper }}:{{ m['content'].strip().lower() }}{% if m['content'].startswith(' ') %}!{% endif %}]\
        {% endfor %}{{ ns.n }}{{ {'a': 1} | tojson }}{{ eos_token }}{% if add_generation_prompt %}>{% endif %}";
    let (_dir, tok) = with_template(template);
    let m = msgs(&[("user", "  Hello "), ("tool", "x"), ("assistant", "OK")]);
    assert_eq!(
        tok.render_chat(&m, true).unwrap(),
        "<s>[USER:hello!][ASSISTANT:ok]2{\"a\": 1}</s>>"
    );
    let err = tok.render_chat(&msgs(&[("robot", "x")]), false).unwrap_err().to_string();
    assert!(err.contains("bad role robot") && err.contains("chat template"), "{err}");
}

#[test]
fn missing_and_broken_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = TextTokenizer::from_dir(dir.path()).err().unwrap().to_string();
    assert!(err.contains("no tokenizer.json"), "{err}");
    write_byte_level_tokenizer(dir.path()).unwrap();
    std::fs::write(dir.path().join("tokenizer_config.json"), "{\"chat_template\": 5}").unwrap();
    let err = TextTokenizer::from_dir(dir.path()).err().unwrap().to_string();
    assert!(err.contains("tokenizer_config.json"), "{err}");
}

#[test]
fn civil_dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(20_415), (2025, 11, 23));
}

#[test]
fn tools_render_exactly_as_transformers_renders_them() {
    let reference_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference/tools");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reference_dir.join("tools_reference.json")).unwrap(),
    )
    .unwrap();
    let tools = &reference["tools"];
    let mut checked = 0;
    for (name, format) in [
        ("hermes", crate::tools::ToolFormat::Hermes),
        ("llama3", crate::tools::ToolFormat::Llama3Json),
    ] {
        let template =
            std::fs::read_to_string(reference_dir.join(format!("{name}.jinja"))).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_byte_level_tokenizer(dir.path()).unwrap();
        let cfg = serde_json::json!({"chat_template": template, "bos_token": "<|begin_of_text|>"});
        std::fs::write(dir.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
        let tok = TextTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tok.tool_format(), Some(format), "{name}");
        for (conv, messages) in reference["conversations"].as_object().unwrap() {
            for (key, tools) in [("tools", Some(tools)), ("no_tools", None)] {
                let id = format!("{name}/{conv}/{key}");
                let want = reference["rendered"][&id].as_str().unwrap();
                let got = tok.render_conversation(messages, tools, true).unwrap();
                assert_eq!(got, want, "{id}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 8);
    // ChatML (arkor/tiny) cannot show tools.
    assert_eq!(tiny().1.tool_format(), None);
}

#[test]
fn tojson_writes_what_python_json_dumps_writes() {
    let v = serde_json::json!({"b": [1, 2.5, {"x": null}], "a": "é \"q\" <&>\n", "e": [], "o": {}});
    let dumps = |indent, sort, ascii| {
        let mut out = String::new();
        python_dumps(&v, indent, sort, ascii, 0, &mut out);
        out
    };
    assert_eq!(
        dumps(None, false, false),
        r#"{"b": [1, 2.5, {"x": null}], "a": "é \"q\" <&>\n", "e": [], "o": {}}"#
    );
    assert_eq!(
        dumps(Some(2), true, true),
        "{\n  \"a\": \"\\u00e9 \\\"q\\\" <&>\\n\",\n  \"b\": [\n    1,\n    2.5,\n    {\n      \"x\": null\n    }\n  ],\n  \"e\": [],\n  \"o\": {}\n}"
    );
}
