//! Damaged inputs: a JSONL input with a bad line in the middle, `supo loss` inputs with
//! non-finite numbers, wrong types and invalid UTF-8, truncated and bit-flipped checkpoints —
//! each a one-line error naming what is wrong, exit code 2, never a panic; and writes into a
//! full file system fail cleanly without losing what was written before.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn supo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(args)
        .output()
        .expect("supo runs")
}

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("supo-damaged-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Exit code 2 and one line on standard error that contains every one of `words`.
fn assert_clear_error(out: &Output, what: &str, words: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{what}: one line, got {err}");
    for w in words {
        assert!(err.contains(w), "{what}: {w:?} not in {err}");
    }
}

fn golden_lines(n: usize) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bfcl/tests/data/bfcl_replay_multi_turn_base.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take(n)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            serde_json::json!({"id": v["id"], "involved_classes": v["involved_classes"],
                "initial_config": v["initial_config"], "long_context": v["long_context"],
                "turns": v["turns"]})
            .to_string()
        })
        .collect()
}

#[test]
fn a_bad_line_in_the_middle_is_named_or_skipped() {
    let dir = scratch("jsonl");
    let mut lines = golden_lines(5);
    lines.insert(
        2,
        "{\"id\": 9, \"involved_classes\": [\"MathAPI\"], \"turns\": [[".into(),
    );
    let input = dir.join("entries.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let output = dir.join("out.jsonl");
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    let out = supo(&["bfcl", "replay", "--input", i, "--output", o]);
    assert_clear_error(&out, "bad line", &["entries.jsonl", "line 3"]);
    assert!(!output.exists(), "no output from a failed run");

    let out = supo(&[
        "bfcl",
        "replay",
        "--input",
        i,
        "--output",
        o,
        "--skip-bad-lines",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("skipped 1 bad line") && err.contains("line 3"),
        "{err}"
    );
    let written = std::fs::read_to_string(&output).unwrap();
    assert_eq!(
        written.lines().count(),
        5,
        "the five good entries are replayed"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn loss_inputs_with_bad_values_are_errors() {
    let dir = scratch("loss");
    let seg = |logp: &str| {
        format!(
            "{{\"trajectories\": [{{\"group\": \"g\", \"reward\": 1.0, \"finish\": \"Answered\", \
             \"segments\": [{{\"logp\": {logp}, \"old_logp\": [-1.0], \"mask\": [1]}}]}}]}}"
        )
    };
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("nan", seg("[NaN]").into_bytes(), &["bad batch JSON"]),
        ("infinity", seg("[1e999]").into_bytes(), &["bad batch JSON"]),
        (
            "string",
            seg("[\"x\"]").into_bytes(),
            &["bad batch JSON", "invalid type"],
        ),
        ("ragged", seg("[-1.0, -2.0]").into_bytes(), &[]),
        (
            "utf8",
            b"{\"trajectories\": [\xff\xfe]}".to_vec(),
            &["UTF-8"],
        ),
        (
            "truncated",
            seg("[-1.0]").as_bytes()[..40].to_vec(),
            &["bad batch JSON"],
        ),
        ("empty", Vec::new(), &["bad batch JSON"]),
    ];
    for (name, bytes, words) in cases {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, bytes).unwrap();
        let out = supo(&["loss", "--input", path.to_str().unwrap()]);
        assert_clear_error(&out, name, words);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn damaged_checkpoints_are_errors() {
    let dir = scratch("ckpt");
    let train = supo(&[
        "train",
        "--preset",
        "quick",
        "--warm-steps",
        "2",
        "--rl-steps",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        train.status.success(),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );
    let good = std::fs::read(dir.join("supo_w.ckpt")).unwrap();
    let mut damaged: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("magic only".into(), good[..10].to_vec()),
    ];
    for cut in [good.len() / 3, good.len() / 2, good.len() - 1] {
        damaged.push((format!("truncated to {cut}"), good[..cut].to_vec()));
    }
    for pos in [3, 11, 40, good.len() / 2, good.len() - 2] {
        let mut bytes = good.clone();
        bytes[pos] ^= 0x10;
        damaged.push((format!("bit flipped at {pos}"), bytes));
    }
    for (what, bytes) in damaged {
        let path = dir.join("damaged.ckpt");
        std::fs::write(&path, &bytes).unwrap();
        let out = supo(&[
            "serve",
            "--port",
            "0",
            "--checkpoint",
            path.to_str().unwrap(),
        ]);
        assert_clear_error(&out, &what, &["damaged.ckpt"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}
