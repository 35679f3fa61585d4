//! `supo bfcl replay` against golden replays BFCL's Python reference produced
//! (harness/bfcl/tests/data/bfcl_replay_multi_turn_base.jsonl, BFCL-derived, Apache-2.0), and its
//! errors on bad input.

#[path = "../../bfcl/tests/bfcl_common/mod.rs"]
mod bfcl_common;

use std::path::Path;
use std::process::Command;

use bfcl_common::*;
use serde_json::Value;

fn supo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_supo"))
}

#[test]
fn replay_matches_golden() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bfcl/tests/data/bfcl_replay_multi_turn_base.jsonl");
    let text = std::fs::read_to_string(&golden).expect("golden file");
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("golden line"))
        .collect();
    let entries = keep_implemented("replay_matches_golden", entries);
    assert!(!entries.is_empty());
    let dir = scratch("replay_matches_golden");
    let input = dir.join("input.jsonl");
    let output = dir.join("output.jsonl");
    let inputs: Vec<Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "id": e["id"], "involved_classes": e["involved_classes"],
                "initial_config": e["initial_config"], "long_context": e["long_context"],
                "turns": e["turns"],
            })
        })
        .collect();
    write_jsonl(&input, &inputs);
    let out = supo()
        .args(["bfcl", "replay", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .output()
        .expect("run supo");
    assert!(
        out.status.success(),
        "supo bfcl replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let actual: Vec<Value> = std::fs::read_to_string(&output)
        .expect("output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("output line"))
        .collect();
    for (e, a) in entries.iter().zip(&actual) {
        assert_eq!(e["id"], a["id"]);
    }
    assert_no_diffs(
        "replay_matches_golden",
        &diff_replays(&entries, &entries, &actual),
    );
    eprintln!("replay_matches_golden: {} entries identical", entries.len());
}

#[test]
fn bad_input_exits_2() {
    let dir = scratch("bfcl_bad_input");
    let output = dir.join("out.jsonl");
    for (name, body) in [
        ("not_json.jsonl", "{not json\n"),
        (
            "unknown_class.jsonl",
            "{\"id\": 1, \"involved_classes\": [\"NoSuchAPI\"], \"turns\": []}\n",
        ),
        (
            "missing_turns.jsonl",
            "{\"id\": 1, \"involved_classes\": []}\n",
        ),
    ] {
        let input = dir.join(name);
        std::fs::write(&input, body).expect("write input");
        let out = supo()
            .args(["bfcl", "replay", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .output()
            .expect("run supo");
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{name}: one-line error, got {err}"
        );
    }
    let out = supo()
        .args([
            "bfcl",
            "replay",
            "--input",
            "/nonexistent/in.jsonl",
            "--output",
        ])
        .arg(&output)
        .output()
        .expect("run supo");
    assert_eq!(out.status.code(), Some(2));
}
