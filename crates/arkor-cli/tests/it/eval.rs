//! `arkor eval`: the table, the JSON report, and errors that name the file and line.

use super::{Env, text};

const ROWS: &str = concat!(
    r#"{"messages":[{"role":"user","content":"Login is broken."},{"role":"assistant","content":"{\"category\": \"bug\", \"urgency\": \"high\"}"}]}"#,
    "\n",
    r#"{"messages":[{"role":"user","content":"Name a colour."},{"role":"assistant","content":"Blue."}]}"#,
    "\n",
);

#[test]
fn eval_prints_a_table_and_writes_the_report() {
    let env = Env::new();
    env.write("held.jsonl", ROWS);
    let out = env.arkor(&[
        "eval",
        "--model",
        "arkor/tiny",
        "--data",
        "held.jsonl",
        "--max-tokens",
        "8",
        "--output",
        "out/r.json",
        "--no-progress",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for label in ["eval: arkor/tiny on held.jsonl", "rows", "exact match", "/2", "valid JSON", "/1"]
    {
        assert!(stdout.contains(label), "missing {label:?} in\n{stdout}");
    }
    for label in ["category", "urgency", "all keys correct", "tokens generated", "time"] {
        assert!(stdout.contains(label), "missing {label:?} in\n{stdout}");
    }
    let stderr = text(&out.stderr);
    assert!(stderr.contains("row 2/2 (line 2)"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path().join("out/r.json")).unwrap())
            .unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["reference"], "Blue.");
    assert_eq!(rows[1]["json_valid"], serde_json::Value::Null);
    assert_eq!(report["summary"]["rows"], 2);
    assert_eq!(report["summary"]["json_rows"], 1);
    assert_eq!(report["summary"]["per_key"]["category"]["total"], 1);
    let leftovers: Vec<_> = std::fs::read_dir(env.path().join("out")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");
}

#[test]
fn eval_errors_name_the_file_and_line() {
    let env = Env::new();
    let out = env.arkor(&["eval", "--model", "arkor/tiny", "--data", "missing.jsonl"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("failed to read the eval data missing.jsonl")
            && err.contains("does not exist"),
        "{err}"
    );

    env.write(
        "held.jsonl",
        &format!("{ROWS}{}\n", r#"{"messages":[{"role":"user","content":"No reply here."}]}"#),
    );
    let out = env.arkor(&["eval", "--model", "arkor/tiny", "--data", "held.jsonl"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("held.jsonl:3: no assistant message"), "{err}");
}
