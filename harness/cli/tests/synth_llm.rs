//! `supo synth --mode llm --base-url …` end to end against a real `supo serve` on a free local
//! port. The served model is the tiny built-in one with random weights, so its replies are
//! nonsense: the test checks the mechanics — every role is asked over HTTP, a failed `A_R`
//! attempt goes to `A_C` before the next one, rounds are rejected after `K_max` attempts, a run
//! that keeps nothing fails with a clear report of why, and the same seed asks the same.

mod agent_common;

use std::process::{Command, Output};

use agent_common::{bfcl_available, Server};

fn synth(url: &str, dir: &std::path::Path) -> Output {
    let _ = std::fs::remove_dir_all(dir);
    Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(["synth", "--mode", "llm", "--base-url", url])
        .args(["--samples", "1", "--rounds", "1", "--k-max", "3"])
        .args([
            "--attempts",
            "1",
            "--round-tries",
            "2",
            "--max-tokens",
            "48",
        ])
        .arg("--out")
        .arg(dir)
        .output()
        .expect("run supo synth")
}

/// The number after `"name": ` in the report (0 when absent).
fn count(report: &str, name: &str) -> usize {
    let key = format!("\"{name}\": ");
    report.find(&key).map_or(0, |i| {
        report[i + key.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0)
    })
}

#[test]
fn llm_mode_runs_the_feedback_loop_against_supo_serve() {
    if !bfcl_available("llm_mode_runs_the_feedback_loop_against_supo_serve") {
        return;
    }
    let server = Server::start(&["--truncate-prompt"]);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("synth_llm");
    let out = synth(&server.base_url, &dir);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    // Nonsense never passes the checker: no sample, exit 1, and the report says why.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no sample 0 after 1 attempts"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (failed, no_tool, no_query) = (
        count(&err, "chain_failed"),
        count(&err, "bad_advanced_tool"),
        count(&err, "empty_query"),
    );
    assert_eq!(
        failed + no_tool + no_query,
        2,
        "both rounds rejected: {err}"
    );
    assert!(failed >= 1, "the reasoning role was reached: {err}");
    assert_eq!(count(&err, "A_T"), 2, "{err}");
    assert_eq!(count(&err, "A_Q"), 2 - no_tool, "{err}");
    // K_max = 3 attempts per round reaching A_R, a critic hint between attempts.
    assert_eq!(count(&err, "A_C"), 2 * failed, "{err}");
    assert!(count(&err, "A_R") >= 3 * failed, "{err}");
    // The folder holds no finished sample.
    let chat = std::fs::read_to_string(dir.join("chat.jsonl")).unwrap_or_default();
    assert!(chat.is_empty());
    // Seeded requests: a second run asks and gets the same.
    let again = synth(&server.base_url, &dir);
    assert_eq!(String::from_utf8_lossy(&again.stderr), err);
}
