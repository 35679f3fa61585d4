//! `supo bench bfcl`: the JSON line it prints (the Rust executor against BFCL's Python on the
//! golden entries; figures are not asserted, only that they are there and consistent) and its
//! errors on bad input. The Python side skips without python3 and `bfcl-eval`, unless
//! `SUPO_REQUIRE_BFCL=1`.

#[path = "../../bfcl/tests/bfcl_common/mod.rs"]
mod bfcl_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bfcl/tests/data/bfcl_replay_multi_turn_base.jsonl")
}

fn bench(input: &Path, extra: &[&str], bfcl: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_supo"));
    cmd.args([
        "bench",
        "bfcl",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--input",
    ])
    .arg(input)
    .args(extra);
    if let Some(dir) = bfcl {
        cmd.env("BFCL_EVAL_DIR", dir);
    }
    cmd.output().expect("run supo")
}

/// The golden file's entries and calls.
fn counts() -> (usize, usize) {
    let text = std::fs::read_to_string(golden()).expect("golden file");
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("golden line"))
        .collect();
    let calls = entries
        .iter()
        .flat_map(|e| e["turns"].as_array().expect("turns").iter())
        .map(|t| t.as_array().expect("turn").len())
        .sum();
    (entries.len(), calls)
}

fn line(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "supo bench bfcl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

#[test]
fn rust_only() {
    let v = line(&bench(&golden(), &["--no-python"], None));
    let (entries, calls) = counts();
    assert_eq!(v["entries"], entries);
    assert_eq!(v["calls"], calls);
    assert!(v["calls_per_s"]
        .as_f64()
        .is_some_and(|x| x.is_finite() && x > 0.0));
    assert!(v["python_calls_per_s"].is_null() && v["speedup_vs_python"].is_null());
    assert_eq!(v["runs_s"].as_array().map(Vec::len), Some(1));
    assert!(v["result_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(["thread-cpu", "wall"].contains(&v["clock"].as_str().unwrap_or("")));
}

#[test]
fn against_python() {
    let Some(bfcl) = bfcl_common::reference("bench_bfcl_against_python") else {
        return;
    };
    let v = line(&bench(&golden(), &[], Some(&bfcl)));
    let (_, calls) = counts();
    assert_eq!(v["calls"], calls);
    let rust = v["calls_per_s"].as_f64().expect("calls_per_s");
    let python = v["python_calls_per_s"]
        .as_f64()
        .expect("python_calls_per_s");
    let speedup = v["speedup_vs_python"].as_f64().expect("speedup_vs_python");
    assert!(python.is_finite() && python > 0.0);
    assert!((speedup - rust / python).abs() <= 1e-9 * speedup.abs());
    assert_eq!(v["python_runs_s"].as_array().map(Vec::len), Some(1));
}

#[test]
fn bad_input_is_an_error() {
    let dir = bfcl_common::scratch("bench_bfcl_bad_input");
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": 1, \"involved_classes\": [\"MathAPI\"], \"turns\": [[]]}\n{oops\n",
    )
    .expect("write");
    let out = bench(&bad, &["--no-python"], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    let unknown = dir.join("unknown.jsonl");
    std::fs::write(
        &unknown,
        "{\"id\": 1, \"involved_classes\": [\"NoSuchAPI\"], \"turns\": [[]]}\n",
    )
    .expect("write");
    let out = bench(&unknown, &["--no-python"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NoSuchAPI"));
    let out = Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(["bench", "bfcl", "--no-python", "--repeats", "0", "--input"])
        .arg(golden())
        .output()
        .expect("run supo");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--repeats"));
}
