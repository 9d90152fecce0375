//! Every worked case of the filter-pattern spec: match, no match, or refusal.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use cairn_filter::{FilterPattern, LogEvent};
use serde_json::Value;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_vectors(text: &str) -> usize {
    let mut failures = Vec::new();
    let mut count = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        count += 1;
        let case: Value = serde_json::from_str(line).unwrap();
        let id = case["id"].as_str().unwrap_or("?").to_owned();
        let pattern = case["pattern"].as_str().unwrap();
        let event = case["event"].as_str().unwrap();
        let parsed = FilterPattern::parse(pattern);
        match (case.get("error").and_then(Value::as_str), parsed) {
            (Some(_), Ok(_)) => failures.push(format!(
                "line {} ({id}): {pattern:?} should be refused",
                n + 1
            )),
            (Some(_), Err(_)) => {}
            (None, Err(e)) => {
                failures.push(format!("line {} ({id}): {pattern:?} refused: {e}", n + 1))
            }
            (None, Ok(p)) => {
                let want = case["match"].as_bool().unwrap();
                let got = p.matches(&LogEvent::new(event));
                if got != want {
                    failures.push(format!(
                        "line {} ({id}): {pattern:?} on {event:?}: want {want}, got {got}",
                        n + 1
                    ));
                }
                // The printed form must mean the same thing.
                let again = FilterPattern::parse(&p.to_string()).unwrap();
                assert_eq!(again, p, "{id}: {p}");
                assert_eq!(again.matches(&LogEvent::new(event)), want, "{id}: {p}");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    count
}

#[test]
fn test_every_vector_in_the_copy() {
    let text =
        std::fs::read_to_string(manifest_dir().join("tests/data/filter-vectors.jsonl")).unwrap();
    assert!(run_vectors(&text) >= 85);
}

#[test]
fn test_shared_spec_vectors_when_present() {
    // The spec's own file, beside the repository; absent in a bare clone.
    let shared = manifest_dir().join("../../../shared/spec/filter-vectors.jsonl");
    let Ok(text) = std::fs::read_to_string(shared) else {
        return;
    };
    run_vectors(&text);
    let copy =
        std::fs::read_to_string(manifest_dir().join("tests/data/filter-vectors.jsonl")).unwrap();
    assert_eq!(
        text, copy,
        "tests/data/filter-vectors.jsonl has drifted from the spec's file"
    );
}
