//! Row formats, masks, truncation, splits and the errors bad rows produce.

use super::*;
use crate::tokenizer::write_byte_level_tokenizer;

struct Fixture {
    dir: tempfile::TempDir,
    tok: TextTokenizer,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    write_byte_level_tokenizer(dir.path()).unwrap();
    let tok = TextTokenizer::from_dir(dir.path()).unwrap();
    Fixture { dir, tok }
}

fn opts() -> PrepareOptions {
    PrepareOptions {
        format: DatasetFormat::Auto,
        max_length: 512,
        train_on_responses_only: true,
        eval_split: 0.0,
        seed: 1,
        max_rows: None,
    }
}

impl Fixture {
    fn file(&self, name: &str, body: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    fn prepare(
        &self,
        name: &str,
        body: &str,
        opts: &PrepareOptions,
    ) -> Result<PreparedDataset, DataError> {
        prepare_dataset(&[self.file(name, body)], &self.tok, opts)
    }

    /// The decoded text of the trained tokens of the first example.
    fn trained_text(&self, ds: &PreparedDataset) -> String {
        let e = &ds.train[0];
        let ids: Vec<u32> =
            e.input_ids.iter().zip(&e.loss_mask).filter(|(_, m)| **m).map(|(i, _)| *i).collect();
        self.tok.decode(&ids, false).unwrap()
    }
}

#[test]
fn each_format_is_detected_and_only_the_reply_is_trained() {
    let f = fixture();
    let cases = [
        (
            r#"{"messages":[{"role":"system","content":"S"},{"role":"user","content":"Q?"},{"role":"assistant","content":"A!"}]}"#,
            DatasetFormat::Chat,
        ),
        (r#"{"prompt":"Q?","completion":"A!"}"#, DatasetFormat::PromptCompletion),
        (r#"{"instruction":"Q?","input":"","output":"A!"}"#, DatasetFormat::Alpaca),
        (
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"Q"},{"type":"text","text":"?"}]},{"role":"assistant","content":"A!"}]}"#,
            DatasetFormat::Chat,
        ),
    ];
    for (row, format) in cases {
        let ds = f.prepare("d.jsonl", &format!("{row}\n"), &opts()).unwrap();
        assert_eq!(ds.report.format, format);
        assert_eq!(f.trained_text(&ds), "A!<|im_end|>\n", "row {row}");
    }
    let ds = f.prepare("t.jsonl", "{\"text\":\"hello world\"}\n", &opts()).unwrap();
    assert_eq!(ds.report.format, DatasetFormat::Text);
    assert_eq!(f.trained_text(&ds), "llo world<|im_end|>", "all but the first token (\"he\")");

    let all = PrepareOptions { train_on_responses_only: false, ..opts() };
    let ds = f.prepare("p.jsonl", "{\"prompt\":\"Q?\",\"completion\":\"A!\"}\n", &all).unwrap();
    assert_eq!(ds.report.trained_tokens, ds.report.tokens - 1);
}

#[test]
fn multi_turn_chats_train_every_assistant_turn() {
    let f = fixture();
    let row = r#"{"messages":[{"role":"user","content":"1"},{"role":"assistant","content":"one"},{"role":"user","content":"2"},{"role":"assistant","content":"two"}]}"#;
    let ds = f.prepare("m.jsonl", row, &opts()).unwrap();
    assert_eq!(f.trained_text(&ds), "one<|im_end|>\ntwo<|im_end|>\n");
}

#[test]
fn malformed_rows_name_file_line_and_field() {
    let f = fixture();
    let body = [
        r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}"#,
        "",
        r#"{"messages":[{"role":"bot","content":"x"}]}"#,
        r#"{"messages":[{"role":"user"}]}"#,
        r#"{"messages":[]}"#,
        r#"{"messages": "hi"}"#,
        "{not json",
        r#"{"messages":[{"role":"user","content":"only a question"}]}"#,
        r#"[1,2]"#,
    ]
    .join("\n");
    let err = f.prepare("bad.jsonl", &body, &opts()).unwrap_err();
    let DataError::InvalidRows(rows) = &err else { panic!("{err}") };
    let lines: Vec<(usize, &str)> = rows.iter().map(|r| (r.line, r.message.as_str())).collect();
    let path = f.dir.path().join("bad.jsonl").display().to_string();
    expect_test::expect![[r#"
        [
            (
                3,
                "field `messages[0].role`: expected one of system, user, assistant, tool, got \"bot\"",
            ),
            (
                4,
                "missing field `messages[0].content`",
            ),
            (
                5,
                "field `messages`: expected at least one message, got an empty array",
            ),
            (
                6,
                "field `messages`: expected an array, got a string",
            ),
            (
                7,
                "invalid JSON: key must be a string at line 1 column 2",
            ),
            (
                8,
                "no assistant message to train on (train_on_responses_only is set)",
            ),
            (
                9,
                "expected a JSON object",
            ),
        ]
    "#]]
    .assert_debug_eq(&lines);
    let msg = err.to_string();
    assert!(
        msg.starts_with("7 malformed row(s)") && msg.contains(&format!("{path}:3: field")),
        "{msg}"
    );
}

#[test]
fn file_level_errors() {
    let f = fixture();
    let missing = f.dir.path().join("nope.jsonl");
    let err = prepare_dataset(&[missing], &f.tok, &opts()).unwrap_err().to_string();
    assert!(err.contains("does not exist") && err.contains("nope.jsonl"), "{err}");
    let err = f.prepare("d.csv", "a,b", &opts()).unwrap_err().to_string();
    assert!(err.contains("d.csv") && err.contains("unsupported extension"), "{err}");
    let err = f.prepare("e.jsonl", "\n\n", &opts()).unwrap_err().to_string();
    assert!(err.contains("no rows"), "{err}");
    let err = f.prepare("u.jsonl", r#"{"question":"x"}"#, &opts()).unwrap_err().to_string();
    assert!(
        err.contains("u.jsonl:1: cannot tell the row format") && err.contains("`question`"),
        "{err}"
    );
    // Long prompts whose reply is cut off entirely leave nothing to learn.
    let long = format!(r#"{{"prompt":"{}","completion":"A"}}"#, "x".repeat(100));
    let tight = PrepareOptions { max_length: 10, ..opts() };
    let err = f.prepare("l.jsonl", &long, &tight).unwrap_err().to_string();
    assert!(err.contains("no trainable tokens") && err.contains("max_length"), "{err}");
}

#[test]
fn truncation_split_and_row_limit() {
    let f = fixture();
    let body: String = (0..20)
        .map(|i| {
            format!("{{\"prompt\":\"question {i}\",\"completion\":\"{}\"}}\n", "answer ".repeat(i))
        })
        .collect();
    let o = PrepareOptions { max_length: 40, eval_split: 0.2, ..opts() };
    let a = f.prepare("s.jsonl", &body, &o).unwrap();
    let b = f.prepare("s.jsonl", &body, &o).unwrap();
    assert_eq!((a.report.rows, a.report.train_rows, a.report.eval_rows), (20, 16, 4));
    assert_eq!(a.eval, b.eval, "the split depends only on the seed");
    assert!(a.report.truncated_rows > 0);
    assert!(a.train.iter().chain(&a.eval).all(|e| e.input_ids.len() <= 40));
    let c = f.prepare("s.jsonl", &body, &PrepareOptions { seed: 2, ..o.clone() }).unwrap();
    assert_ne!(a.eval, c.eval);
    let dry = f.prepare("s.jsonl", &body, &PrepareOptions { max_rows: Some(5), ..o }).unwrap();
    assert_eq!(dry.report.rows, 5);
    assert!(a.report.summary().contains("20 rows (16 train, 4 eval)"));
}

#[test]
fn json_arrays_are_read_too() {
    let f = fixture();
    let ds = f
        .prepare(
            "a.json",
            r#"[{"prompt":"a","completion":"b"},{"prompt":"c","completion":"d"}]"#,
            &opts(),
        )
        .unwrap();
    assert_eq!(ds.report.rows, 2);
}

#[test]
fn parquet_exports_are_read_like_jsonl() {
    let f = fixture();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parquet");
    let ds = prepare_dataset(&[dir.join("chat.snappy.parquet")], &f.tok, &opts()).unwrap();
    assert_eq!((ds.report.rows, ds.report.format), (3, DatasetFormat::Chat));
    assert_eq!(f.trained_text(&ds), "Blue.<|im_end|>\n");
    let both = [dir.join("chat.snappy.parquet"), dir.join("prompt_completion.zstd.parquet")];
    let ds = prepare_dataset(&both, &f.tok, &opts()).unwrap();
    assert_eq!(ds.report.rows, 5);
    let err =
        prepare_dataset(&[dir.join("bad_role.parquet")], &f.tok, &opts()).unwrap_err().to_string();
    assert!(
        err.contains("bad_role.parquet:1: field `messages[0].role`") && err.contains("\"robot\""),
        "{err}"
    );
}

#[test]
fn histogram_buckets_have_round_widths_and_hold_every_row() {
    use inspect::{Bucket, histogram};
    assert_eq!(histogram(&[], 10), vec![]);
    assert_eq!(histogram(&[7], 10), vec![Bucket { from: 7, to: 8, rows: 1 }]);
    // 3..=95 in at most 10 buckets: width 10, from 0.
    let lengths = [3, 9, 10, 11, 50, 95];
    let h = histogram(&lengths, 10);
    assert_eq!(h.len(), 10);
    assert!(h.iter().all(|b| b.to - b.from == 10));
    assert_eq!((h[0].from, h[0].rows, h[1].rows, h[5].rows, h[9].rows), (0, 2, 2, 1, 1));
    assert_eq!(h.iter().map(|b| b.rows).sum::<usize>(), lengths.len());
    // A wide spread gets a 1-2-5 width: 40..=1000 in at most 12 buckets is 100 wide.
    let h = histogram(&[40, 1000, 555], 12);
    assert_eq!((h[0].from, h[0].to, h.len()), (0, 100, 11));
    assert_eq!(h.iter().map(|b| b.rows).sum::<usize>(), 3);
}

#[test]
fn inspection_lists_truncated_untrained_and_malformed_rows_and_renders_the_mask() {
    let f = fixture();
    let long = "x".repeat(300);
    let long_row = format!(
        r#"{{"messages":[{{"role":"user","content":"{long}"}},{{"role":"assistant","content":"Ok."}}]}}"#
    );
    let body = [
        r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi?"},{"role":"assistant","content":"Hello!"}]}"#,
        &long_row,
        "not json",
        r#"{"messages":[{"role":"user","content":"no reply"}]}"#,
    ]
    .join("\n");
    let file = f.file("rows.jsonl", &body);
    let opts = PrepareOptions { max_length: 200, ..opts() };
    let inspected = inspect::Inspected::new(std::slice::from_ref(&file), &f.tok, &opts).unwrap();
    let (report, row) = (&inspected.report, inspected.render(0, &f.tok).unwrap());
    assert_eq!((report.format, report.rows), (DatasetFormat::Chat, 2));
    // Listed, not fatal: the line that is not JSON and the row without a reply.
    let bad: Vec<usize> = report.errors.iter().map(|e| e.line).collect();
    assert_eq!(bad, vec![3, 4], "{:?}", report.errors);
    assert!(report.errors[0].message.contains("invalid JSON"), "{:?}", report.errors);
    assert_eq!(report.truncated.len(), 1);
    assert_eq!((report.truncated[0].index, report.truncated[0].line), (1, 2));
    assert!(report.truncated[0].tokens > 300);
    // The long row's reply was cut off with it: that row teaches nothing.
    let untrained: Vec<usize> = report.untrained.iter().map(|r| r.line).collect();
    assert_eq!(untrained, vec![2]);
    assert_eq!(report.histogram.iter().map(|b| b.rows).sum::<usize>(), 2);

    let text = |trained: bool| -> String {
        row.tokens.iter().filter(|t| t.trained == trained).map(|t| t.text.as_str()).collect()
    };
    assert!(text(false).contains("Be brief.") && text(false).contains("Hi?"), "{}", text(false));
    assert!(text(true).contains("Hello!") && !text(true).contains("Be brief"), "{}", text(true));
    assert!(row.tokens.iter().any(|t| t.special && t.text == "<|im_start|>"));
    let missing = inspected.render(2, &f.tok).unwrap_err();
    assert!(missing.to_string().contains("0 to 1"), "{missing}");

    // A page lists rows in order with where they are, what they train and how they begin.
    let page = inspected.page(0, 10, &f.tok).unwrap();
    assert_eq!(
        page.iter().map(|r| (r.row.index, r.row.line)).collect::<Vec<_>>(),
        [(0, 1), (1, 2)]
    );
    assert!(page[0].preview.contains("Be brief.") && !page[0].preview.contains("<|im_start|>"));
    assert_eq!(page[0].trained, report.trained_tokens);
    assert_eq!(page[1].trained, 0);
    assert_eq!(inspected.page(1, 1, &f.tok).unwrap()[0].row.index, 1);
    assert!(inspected.page(5, 10, &f.tok).unwrap().is_empty());

    // Parsed and tokenised a line at a time (as Studio shows a large file while it is
    // read), the report grows to the same one.
    let mut reader = inspect::Reader::open(std::slice::from_ref(&file), &opts).unwrap();
    let mut partial = reader.inspection(opts.max_length);
    assert_eq!((partial.report.rows, partial.report.pending), (0, 4));
    let mut seen = vec![];
    while let Some(chunk) = reader.next_chunk(1, &f.tok, &opts) {
        partial.extend(chunk);
        seen.push((partial.report.rows, partial.report.pending));
    }
    assert_eq!(seen, [(1, 3), (2, 2), (2, 1), (2, 0)]);
    let (a, b) = (&partial.report, &inspected.report);
    assert_eq!(
        (a.tokens, a.trained_tokens, &a.histogram),
        (b.tokens, b.trained_tokens, &b.histogram)
    );
    assert_eq!((&a.truncated, &a.untrained, &a.errors), (&b.truncated, &b.untrained, &b.errors));
}
