//! `arkor data inspect`: what training will see, from a config or a dataset file.

use super::{CONFIG, Env, text};

#[test]
fn inspect_shows_the_mask_truncation_and_bad_lines_before_training() {
    let env = Env::new();
    let long = "word ".repeat(40);
    let rows = [
        r#"{"messages":[{"role":"system","content":"Answer in French."},{"role":"user","content":"Say hi."},{"role":"assistant","content":"Bonjour !"}]}"#.to_owned(),
        format!(r#"{{"messages":[{{"role":"user","content":"{long}"}},{{"role":"assistant","content":"Ok."}}]}}"#),
        "{\"messages\": [".to_owned(),
    ];
    env.write("data/train.jsonl", &(rows.join("\n") + "\n"));
    env.write("train.toml", &format!("max_length = 120\n{CONFIG}"));

    let out = env.arkor(&["data", "inspect", "train.toml", "--row", "0"]);
    let stdout = text(&out.stdout);
    // A malformed line makes the exit code 1, and is named with its file and line.
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("data/train.jsonl:3: invalid JSON"), "{stdout}");
    assert!(stdout.contains("rows:     2"), "{stdout}");
    assert!(stdout.contains("truncated to 120 tokens (1)"), "{stdout}");
    assert!(stdout.contains("row 1 (") && stdout.contains("train.jsonl:2)"), "{stdout}");
    // Row 0: the system prompt and the question untrained, the reply trained.
    let rendered = stdout.split("row 0 (").nth(1).expect("row 0 rendered");
    let trained: String =
        rendered.split("[[").skip(1).map(|s| s.split("]]").next().unwrap_or("")).collect();
    assert!(trained.contains("Bonjour !"), "{rendered}");
    assert!(!trained.contains("French") && !trained.contains("Say hi"), "{rendered}");
    assert!(rendered.contains("Answer in French."), "{rendered}");
    assert!(rendered.contains("<<<|im_start|>>>"), "special tokens marked: {rendered}");

    // A dataset file with an explicit model, as JSON.
    let out = env.arkor(&[
        "data",
        "inspect",
        "data/train.jsonl",
        "--model",
        "arkor/tiny",
        "--max-length",
        "1000",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["report"]["rows"], 2);
    assert_eq!(report["report"]["truncated"].as_array().unwrap().len(), 0);
    assert_eq!(report["report"]["errors"][0]["line"], 3);
    let buckets = report["report"]["histogram"].as_array().unwrap();
    assert_eq!(buckets.iter().map(|b| b["rows"].as_u64().unwrap()).sum::<u64>(), 2);
}
