//! `supo loss` end to end: the golden pairs, and clean errors (exit code 2) on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn supo(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the supo binary runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/supo-loss")
}

/// Structural comparison: numbers to 1e-6 relative with a 1e-12 absolute floor.
fn compare(
    path: &str,
    want: &serde_json::Value,
    got: &serde_json::Value,
    errors: &mut Vec<String>,
) {
    compare_within(path, want, got, (1e-6, 1e-12), errors)
}

/// Structural comparison with a `(relative, absolute)` tolerance for numbers.
fn compare_within(
    path: &str,
    want: &serde_json::Value,
    got: &serde_json::Value,
    tol: (f64, f64),
    errors: &mut Vec<String>,
) {
    use serde_json::Value::*;
    match (want, got) {
        (Array(a), Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare_within(&format!("{path}[{i}]"), x, y, tol, errors);
            }
        }
        (Object(a), Object(b)) => {
            for (k, x) in a {
                match b.get(k) {
                    Some(y) => compare_within(&format!("{path}.{k}"), x, y, tol, errors),
                    None => errors.push(format!("{path}.{k}: missing")),
                }
            }
        }
        (Number(a), Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            if (a - b).abs() > tol.0 * a.abs() + tol.1 {
                errors.push(format!("{path}: expected {a}, got {b}"));
            }
        }
        _ => errors.push(format!("{path}: expected {want}, got {got}")),
    }
}

#[test]
fn golden_pairs_match() {
    let mut checked = 0;
    for entry in std::fs::read_dir(data()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(id) = name
            .strip_prefix("batch-")
            .and_then(|s| s.strip_suffix(".json"))
        else {
            continue;
        };
        let out = supo(&["loss", "--input", path.to_str().unwrap()], None);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(data().join(format!("expected-{id}.json"))).unwrap(),
        )
        .unwrap();
        let mut errors = Vec::new();
        compare("", &want, &got, &mut errors);
        assert!(
            errors.is_empty(),
            "{name}: {} mismatches, first: {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        );
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} golden pairs found");
}

/// `--backend` computes the group advantages on a device in f32: the golden pairs still agree
/// to 1e-5 relative. wgpu runs where an adapter exists (required with `SUPO_REQUIRE_WGPU=1`).
#[test]
fn golden_pairs_match_with_device_advantages() {
    use std::io::Write as _;
    for backend in ["cpu", "wgpu"] {
        for id in ["1001", "1005", "1008", "1013"] {
            let path = data().join(format!("batch-{id}.json"));
            let out = supo(
                &[
                    "loss",
                    "--input",
                    path.to_str().unwrap(),
                    "--backend",
                    backend,
                ],
                None,
            );
            let err = String::from_utf8_lossy(&out.stderr);
            if backend == "wgpu" && !out.status.success() && err.contains("unavailable") {
                let required = std::env::var("SUPO_REQUIRE_WGPU").is_ok_and(|v| v == "1");
                assert!(!required, "SUPO_REQUIRE_WGPU=1 but: {err}");
                let _ = writeln!(std::io::stderr(), "skipped --backend wgpu: {err}");
                break;
            }
            assert!(out.status.success(), "{backend} {id}: {err}");
            let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let want: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(data().join(format!("expected-{id}.json"))).unwrap(),
            )
            .unwrap();
            let mut errors = Vec::new();
            compare_within("", &want, &got, (1e-5, 1e-9), &mut errors);
            assert!(
                errors.is_empty(),
                "{backend} {id}: {:?}",
                &errors[..errors.len().min(5)]
            );
        }
    }
}

#[test]
fn reads_standard_input_and_the_shipped_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/batch.json");
    let text = std::fs::read_to_string(example).unwrap();
    let out = supo(&["loss", "--input", "-"], Some(&text));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["loss"].as_f64().unwrap().is_finite());
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let seg = r#"{"logp": [-1.0, -2.0], "old_logp": [-1.0, -2.0], "mask": [1, 1]}"#;
    let cases = [
        ("malformed JSON", "{not json".to_string()),
        ("ragged arrays", r#"{"trajectories": [{"group": "a", "reward": 1, "finish": "Answered", "segments": [{"logp": [-1.0], "old_logp": [-1.0, -2.0], "mask": [1]}]}]}"#.to_string()),
        ("unknown mode", format!(r#"{{"config": {{"agg": "seq-sum"}}, "trajectories": [{{"group": "a", "reward": 1, "finish": "Answered", "segments": [{seg}]}}]}}"#)),
        ("unknown kl", format!(r#"{{"config": {{"kl_type": "k9"}}, "trajectories": [{{"group": "a", "reward": 1, "finish": "Answered", "segments": [{seg}]}}]}}"#)),
        ("unknown finish", format!(r#"{{"trajectories": [{{"group": "a", "reward": 1, "finish": "Bored", "segments": [{seg}]}}]}}"#)),
        ("NaN", r#"{"trajectories": [{"group": "a", "reward": NaN, "finish": "Answered", "segments": []}]}"#.to_string()),
        ("kl without ref", format!(r#"{{"config": {{"kl_coef": 0.1}}, "trajectories": [{{"group": "a", "reward": 1, "finish": "Answered", "segments": [{seg}]}}]}}"#)),
        ("mask of 2", r#"{"trajectories": [{"group": "a", "reward": 1, "finish": "Answered", "segments": [{"logp": [-1.0], "old_logp": [-1.0], "mask": [2]}]}]}"#.to_string()),
        ("negative clip", format!(r#"{{"config": {{"clip_low": -0.1}}, "trajectories": [{{"group": "a", "reward": 1, "finish": "Answered", "segments": [{seg}]}}]}}"#)),
    ];
    for (what, input) in cases {
        let out = supo(&["loss", "--input", "-"], Some(&input));
        assert_eq!(out.status.code(), Some(2), "{what}: {:?}", out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
        assert!(out.stdout.is_empty(), "{what}");
    }
    let missing = supo(&["loss", "--input", "/nonexistent/batch.json"], None);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn empty_batch_has_zero_loss() {
    let input = r#"{"trajectories": [{"group": "a", "reward": 1, "finish": "MaxSteps", "segments": [{"logp": [-1.0], "old_logp": [-0.5], "mask": [1]}]}]}"#;
    let out = supo(&["loss", "--input", "-"], Some(input));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "loss",
        "pg_loss",
        "kl_loss",
        "clipfrac",
        "clipfrac_lower",
        "approx_kl",
    ] {
        assert_eq!(v[k].as_f64(), Some(0.0), "{k}");
    }
    assert_eq!(v["grad_logp"][0][0][0].as_f64(), Some(0.0));
}

#[test]
fn tolerant_of_boolean_masks_and_unknown_config_fields() {
    let ints = r#"{"config": {"agg": "seq-mean-token-mean"}, "trajectories": [{"group": 1, "reward": 1, "finish": "Answered", "segments": [{"logp": [-1, -2], "old_logp": [-1.1, -2], "mask": [1, 0]}]}, {"group": 1, "reward": 0, "finish": "Answered", "segments": [{"logp": [-1], "old_logp": [-1], "mask": [1]}]}]}"#;
    let bools = ints
        .replace(r#""mask": [1, 0]"#, r#""mask": [true, false]"#)
        .replace(
            r#""agg": "seq-mean-token-mean""#,
            r#""agg": "seq-mean-token-mean", "future_knob": 3"#,
        );
    let a = supo(&["loss", "--input", "-"], Some(ints));
    let b = supo(&["loss", "--input", "-"], Some(&bools));
    assert!(a.status.success() && b.status.success(), "{:?} {:?}", a, b);
    assert_eq!(a.stdout, b.stdout);
    assert!(String::from_utf8_lossy(&b.stderr)
        .contains("ignoring unknown config field \"future_knob\""));
}
