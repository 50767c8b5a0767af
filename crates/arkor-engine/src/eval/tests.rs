//! Scoring, totals, reading held-out rows, and one run on the built-in tiny model.

use super::*;

fn row(index: usize, reference: &str, reply: &str) -> RowReport {
    RowReport {
        index,
        line: index + 1,
        prompt: String::new(),
        reference: reference.to_owned(),
        reply: reply.to_owned(),
        score: score(reference, reply),
        tokens: 3,
    }
}

fn keys(pairs: &[(&str, bool)]) -> BTreeMap<String, bool> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[test]
fn eval_exact_match_ignores_surrounding_whitespace_only() {
    assert!(score("Blue.", "  Blue.\n").exact);
    assert!(!score("Blue.", "blue.").exact);
    assert!(!score("Blue.", "Blue. Green.").exact);
}

#[test]
fn eval_non_json_reference_has_no_json_scores() {
    for reference in ["Blue.", "4", "[1, 2]", "\"text\""] {
        let s = score(reference, "{\"a\": 1}");
        assert_eq!((s.json_valid, s.keys.len()), (None, 0), "{reference}");
        assert!(!s.all_keys_correct());
    }
}

#[test]
fn eval_json_reference_scores_validity_and_each_key() {
    let reference = r#"{"category": "bug", "urgency": "high", "n": 2}"#;
    let s = score(reference, r#" {"urgency": "high", "category": "bug", "n": 2.0} "#);
    // Key order and whitespace do not matter; 2.0 is not the integer 2 in JSON equality.
    assert_eq!(s.json_valid, Some(true));
    assert!(!s.exact);
    assert_eq!(s.keys, keys(&[("category", true), ("n", false), ("urgency", true)]));
    assert!(!s.all_keys_correct());

    let s = score(reference, r#"{"category":"bug","urgency":"high","n":2,"extra":1}"#);
    assert!(s.all_keys_correct() && !s.exact);
    assert!(score(reference, reference).exact);

    // A fenced or truncated reply is invalid JSON and gets no key right.
    for reply in ["```json\n{\"category\": \"bug\"}\n```", "{\"category\": \"bug\"", ""] {
        let s = score(reference, reply);
        assert_eq!(s.json_valid, Some(false), "{reply:?}");
        assert_eq!(s.keys, keys(&[("category", false), ("n", false), ("urgency", false)]));
    }
    // Valid JSON that is not an object is valid but has no key.
    let s = score(reference, "[\"bug\"]");
    assert_eq!(s.json_valid, Some(true));
    assert!(s.keys.values().all(|ok| !ok));
}

#[test]
fn eval_summary_counts_rows_keys_and_tokens() {
    let rows = [
        row(0, r#"{"a": 1, "b": "x"}"#, r#"{"a": 1, "b": "x"}"#),
        row(1, r#"{"a": 1, "b": "x"}"#, r#"{"a": 1, "b": "y"}"#),
        row(2, r#"{"a": 2}"#, "not json"),
        row(3, "Blue.", "Blue."),
        row(4, "Blue.", "Red."),
    ];
    let s = EvalSummary::of_rows(&rows);
    assert_eq!(
        (s.rows, s.exact_match, s.json_rows, s.json_valid, s.all_keys_correct),
        (5, 2, 3, 2, 1)
    );
    assert_eq!(s.per_key["a"], KeyScore { correct: 2, total: 3 });
    assert_eq!(s.per_key["b"], KeyScore { correct: 1, total: 2 });
    assert_eq!(s.tokens_generated, 15);
    let report = serde_json::to_value(&rows[2]).unwrap();
    assert_eq!(report["json_valid"], false);
    assert_eq!(report["keys"]["a"], false);
    assert_eq!(serde_json::to_value(&rows[3]).unwrap()["json_valid"], Value::Null);
}

fn read(name: &str, body: &str) -> (tempfile::TempDir, Result<EvalData, DataError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    let data = read_eval_data(&path);
    (dir, data)
}

const CHAT_ROWS: &str = r#"{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Again"}, {"role": "assistant", "content": "A2"}]}

{"messages": [{"role": "user", "content": [{"type": "text", "text": "Q"}]}, {"role": "assistant", "content": "R"}, {"role": "user", "content": "ignored"}]}
"#;

#[test]
fn eval_rows_split_at_the_last_assistant_message() {
    let (_dir, data) = read("held.jsonl", CHAT_ROWS);
    let data = data.unwrap();
    assert_eq!(data.format, DatasetFormat::Chat);
    let lines: Vec<usize> = data.cases.iter().map(|c| c.line).collect();
    assert_eq!(lines, [1, 3]);
    assert_eq!(data.cases[0].prompt.len(), 4);
    assert_eq!(data.cases[0].reference, "A2");
    assert_eq!(last_user_message(&data.cases[0].prompt), "Again");
    assert_eq!(data.cases[1].prompt, [ChatMessage { role: "user".into(), content: "Q".into() }]);
    assert_eq!(data.cases[1].reference, "R");

    let (_dir, data) = read("pc.json", r#"[{"prompt": "P", "completion": "C"}]"#);
    let data = data.unwrap();
    assert_eq!(
        (data.format, data.cases[0].reference.as_str()),
        (DatasetFormat::PromptCompletion, "C")
    );
    let (_dir, data) = read("al.jsonl", r#"{"instruction": "I", "input": "X", "output": "O"}"#);
    assert_eq!(data.unwrap().cases[0].prompt[0].content, "I\n\nX");
}

#[test]
fn eval_system_override_replaces_or_prepends() {
    let user = ChatMessage { role: "user".into(), content: "Q".into() };
    let sys = |c: &str| ChatMessage { role: "system".into(), content: c.into() };
    assert_eq!(with_system(std::slice::from_ref(&user), Some("N")), [sys("N"), user.clone()]);
    assert_eq!(with_system(&[sys("O"), user.clone()], Some("N")), [sys("N"), user.clone()]);
    assert_eq!(with_system(&[sys("O"), user.clone()], None), [sys("O"), user]);
}

#[test]
fn eval_bad_rows_name_file_line_and_field() {
    let body = "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}]}\n\
                {\"messages\": [{\"role\": \"human\", \"content\": \"q\"}]}\n\
                not json\n\
                {\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n";
    let (_dir, data) = read("bad.jsonl", body);
    let err = data.unwrap_err().to_string();
    assert!(err.starts_with("3 malformed row(s)"), "{err}");
    assert!(err.contains("bad.jsonl:1: no assistant message"), "{err}");
    assert!(err.contains("bad.jsonl:2: field `messages[0].role`"), "{err}");
    assert!(err.contains("bad.jsonl:3: invalid JSON"), "{err}");

    let (_dir, data) = read("text.jsonl", "{\"text\": \"plain\"}\n");
    assert!(data.unwrap_err().to_string().contains("text.jsonl:1: a `text` row"));
    let (_dir, data) = read("empty.jsonl", "\n\n");
    assert!(matches!(data, Err(DataError::Empty(_))));
    let (_dir, data) = read("rows.csv", "a,b\n");
    assert!(data.unwrap_err().to_string().contains("rows.csv: unsupported extension"));
    let err = read_eval_data(Path::new("/nonexistent/held.jsonl")).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/held.jsonl does not exist"), "{err}");
}

#[test]
fn eval_runs_end_to_end_on_the_tiny_model() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = crate::tiny::ensure_tiny_model(dir.path()).unwrap();
    let model = Model::load(&model_dir, &candle_core::Device::Cpu).unwrap();
    let tokenizer = TextTokenizer::from_dir(&model_dir).unwrap();
    let path = dir.path().join("held.jsonl");
    std::fs::write(
        &path,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Ticket\"}, {\"role\": \"assistant\", \"content\": \"{\\\"category\\\": \\\"bug\\\", \\\"urgency\\\": \\\"high\\\"}\"}]}\n\
         {\"prompt\": \"Name a colour.\", \"completion\": \"Blue.\"}\n",
    )
    .unwrap();
    // The second row is chat-shaped too once the format is known from the first.
    let err = read_eval_data(&path).unwrap_err().to_string();
    assert!(err.contains("held.jsonl:2: missing field `messages`"), "{err}");
    std::fs::write(
        &path,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Ticket\"}, {\"role\": \"assistant\", \"content\": \"{\\\"category\\\": \\\"bug\\\", \\\"urgency\\\": \\\"high\\\"}\"}]}\n\
         {\"messages\": [{\"role\": \"user\", \"content\": \"Name a colour.\"}, {\"role\": \"assistant\", \"content\": \"Blue.\"}]}\n",
    )
    .unwrap();
    let data = read_eval_data(&path).unwrap();
    let req = EvalRequest {
        model: &model,
        adapter: None,
        tokenizer: &tokenizer,
        data: &data,
        max_tokens: 6,
        system: Some("Be brief."),
    };
    let mut seen = vec![];
    let report = evaluate(&req, &mut |r| seen.push(r.index), &CancelToken::new()).unwrap();
    assert_eq!(seen, [0, 1]);
    assert_eq!(report.rows.len(), 2);
    let s = &report.summary;
    assert_eq!((s.rows, s.json_rows, s.cancelled), (2, 1, false));
    assert_eq!(
        s,
        &EvalSummary {
            elapsed_secs: s.elapsed_secs,
            cancelled: false,
            ..EvalSummary::of_rows(&report.rows)
        }
    );
    assert_eq!(s.per_key.keys().collect::<Vec<_>>(), ["category", "urgency"]);
    assert!(s.per_key.values().all(|k| k.total == 1 && k.correct <= 1));
    assert!(s.tokens_generated <= 12 && s.elapsed_secs > 0.0);
    assert_eq!((report.rows[1].line, report.rows[1].prompt.as_str()), (2, "Name a colour."));
    assert_eq!(report.rows[0].score, score(&report.rows[0].reference, &report.rows[0].reply));

    // Greedy decoding is deterministic; a cancelled token stops before the first row.
    let again = evaluate(&req, &mut |_| {}, &CancelToken::new()).unwrap();
    assert_eq!(again.rows, report.rows);
    let cancel = CancelToken::new();
    cancel.cancel();
    let stopped = evaluate(&req, &mut |_| {}, &cancel).unwrap();
    assert!(stopped.summary.cancelled && stopped.rows.is_empty());
}
