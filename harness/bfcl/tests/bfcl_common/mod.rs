//! Shared helpers of the BFCL tests: finding BFCL's Python reference, building replay inputs
//! from BFCL's data, running the reference, and comparing replays by the rules (JSON
//! compared structurally, floats to 1e-9 relative, any `Error during execution` equal to any
//! other, set literals compared with their elements sorted).

#![allow(dead_code)] // Each test crate uses a part of these helpers.

// Skip notices go straight to stderr: the test harness captures `eprintln!`, and a skip
// must be visible in CI logs.
use std::io::Write as _;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use supo_bfcl::env::new_env;
use supo_bfcl::locate::{bfcl_eval_dir, INSTALL_COMMAND};
use supo_bfcl::parse::parse_literal;
use supo_bfcl::value::PyValue;

/// The `bfcl_eval` package folder when python3 and the package can be had. Otherwise prints
/// why the test is skipped (naming the install command) and returns `None` — or panics when
/// `SUPO_REQUIRE_BFCL=1`.
pub fn reference(test: &str) -> Option<PathBuf> {
    let python = Command::new("python3").arg("--version").output();
    let problem = match (python, bfcl_eval_dir()) {
        (Ok(o), Ok(dir)) if o.status.success() => return Some(dir),
        (Ok(o), Err(e)) if o.status.success() => e,
        _ => format!(
            "python3 not found; BFCL's reference needs it and `{INSTALL_COMMAND}` \
             (or scripts/install-bfcl.sh DIR, then BFCL_EVAL_DIR=DIR/bfcl_eval)"
        ),
    };
    let msg = format!("{test}: skipped: {problem}");
    if std::env::var("SUPO_REQUIRE_BFCL").is_ok_and(|v| v == "1") {
        panic!("{msg}; SUPO_REQUIRE_BFCL=1 forbids skipping");
    }
    let _ = writeln!(std::io::stderr(), "{msg}");
    None
}

/// Whether every class of an entry is implemented in Rust.
pub fn implemented(entry: &Value) -> bool {
    entry["involved_classes"]
        .as_array()
        .is_some_and(|cs| cs.iter().all(|c| c.as_str().and_then(new_env).is_some()))
}

/// Keeps the entries whose classes are all implemented and prints what was left out.
pub fn keep_implemented(what: &str, entries: Vec<Value>) -> Vec<Value> {
    let total = entries.len();
    let mut missing: HashMap<String, usize> = HashMap::new();
    let kept: Vec<Value> = entries
        .into_iter()
        .filter(|e| {
            let ok = implemented(e);
            if !ok {
                for c in e["involved_classes"].as_array().into_iter().flatten() {
                    if let Some(c) = c.as_str().filter(|c| new_env(c).is_none()) {
                        *missing.entry(c.to_string()).or_default() += 1;
                    }
                }
            }
            ok
        })
        .collect();
    if kept.len() < total {
        let mut names: Vec<_> = missing.into_iter().collect();
        names.sort();
        eprintln!(
            "{what}: {} of {total} entries skipped: classes not implemented yet: {names:?}",
            total - kept.len()
        );
    }
    kept
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// The replay inputs of a multi-turn category's ground truth (`base`, `long_context`,
/// `miss_func`, `miss_param`, `composite`).
pub fn ground_truth_inputs(bfcl: &Path, category: &str) -> Vec<Value> {
    let name = format!("BFCL_v4_multi_turn_{category}.json");
    let data = bfcl.join("data");
    let (questions, answers) = if category == "composite" {
        let unused = data.join("unused_datasets");
        (
            unused.join("question").join(&name),
            unused.join("possible_answer").join(&name),
        )
    } else {
        (data.join(&name), data.join("possible_answer").join(&name))
    };
    let truth: HashMap<String, Value> = read_jsonl(&answers)
        .into_iter()
        .filter_map(|a| Some((a["id"].as_str()?.to_string(), a["ground_truth"].clone())))
        .collect();
    let long_context = category.contains("long_context") || category.contains("composite");
    read_jsonl(&questions)
        .into_iter()
        .filter_map(|q| {
            let turns = truth.get(q["id"].as_str()?)?.clone();
            Some(serde_json::json!({
                "id": q["id"],
                "involved_classes": q["involved_classes"],
                "initial_config": q["initial_config"],
                "long_context": long_context,
                "turns": turns,
            }))
        })
        .collect()
}

/// A scratch folder for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(test);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Writes entries as JSONL.
pub fn write_jsonl(path: &Path, entries: &[Value]) {
    let mut text = String::new();
    for e in entries {
        text.push_str(&e.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Replays `entries` with BFCL's own Python classes (tests/bfcl_reference.py).
/// `bfcl_reference.py`, BFCL's Python executor and checker behind a JSONL interface (this
/// module is shared by the tests of `supo-bfcl` and `supo-cli`, siblings under `harness/`).
pub fn reference_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bfcl/tests/bfcl_reference.py")
}

pub fn python_replay(bfcl: &Path, dir: &Path, entries: &[Value]) -> Vec<Value> {
    let input = dir.join("input.jsonl");
    let output = dir.join("python.jsonl");
    write_jsonl(&input, entries);
    let script = reference_script();
    let site = bfcl.parent().unwrap_or(bfcl);
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(&input)
        .arg(&output)
        .env("PYTHONPATH", site)
        .env("PYTHONHASHSEED", "0");
    run_reference(cmd, dir, "bfcl_reference.py");
    read_jsonl(&output)
}

/// How long BFCL's Python may take for one batch: the golden replays take seconds, so a run
/// past this is stuck (an input Python cannot finish, such as a huge integer power).
const REFERENCE_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `cmd` (BFCL's Python reference), its standard error kept in `dir`; panics naming
/// `what` and that error if it fails or runs past [`REFERENCE_TIMEOUT`] (then it is killed).
fn run_reference(mut cmd: Command, dir: &Path, what: &str) {
    let stderr_path = dir.join(format!("{what}.stderr"));
    let stderr = std::fs::File::create(&stderr_path).expect("create the reference's stderr");
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3: {e}"));
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait for python3") {
            Some(status) => break status,
            None if start.elapsed() > REFERENCE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{what} ran past {} s and was killed; its inputs are in {}",
                    REFERENCE_TIMEOUT.as_secs(),
                    dir.display()
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(status.success(), "{what} failed: {err}");
}

/// Runs BFCL's own multi-turn checker on `cases` (`{id, involved_classes, initial_config,
/// ground_truth, model}`) and returns its verdicts, one per case.
pub fn python_check(bfcl: &Path, dir: &Path, cases: &[Value]) -> Vec<Value> {
    let input = dir.join("check_input.jsonl");
    let output = dir.join("check_output.jsonl");
    write_jsonl(&input, cases);
    let mut cmd = Command::new("python3");
    cmd.arg(reference_script())
        .arg("check")
        .arg(&input)
        .arg(&output)
        .env("PYTHONPATH", bfcl.parent().unwrap_or(bfcl))
        .env("PYTHONHASHSEED", "0");
    run_reference(cmd, dir, "bfcl_reference.py check");
    let verdicts = read_jsonl(&output);
    assert_eq!(verdicts.len(), cases.len());
    verdicts
}

/// Replays `entries` with the Rust environments (the library behind `supo bfcl replay`); an
/// entry that cannot be replayed becomes `{id, error}`.
pub fn rust_replay(entries: &[Value]) -> Vec<Value> {
    entries
        .iter()
        .map(|e| {
            let input = serde_json::from_value(e.clone()).expect("replay input");
            match supo_bfcl::replay::replay(&input) {
                Ok(out) => serde_json::to_value(out).expect("replay output"),
                Err(err) => serde_json::json!({"id": e["id"], "error": err}),
            }
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) || (a.is_nan() && b.is_nan())
}

/// JSON values equal structurally (object key order aside), floats to 1e-9 relative.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(p), Some(q)) => p == q,
            (None, None) => close(
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            ),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Python values equal, floats to 1e-9 relative, sets with their elements sorted.
fn py_eq(a: &PyValue, b: &PyValue) -> bool {
    match (a, b) {
        (PyValue::Float(x), PyValue::Float(y)) => close(*x, *y),
        (PyValue::List(x), PyValue::List(y)) | (PyValue::Tuple(x), PyValue::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (PyValue::Set(x), PyValue::Set(y)) => {
            let sort = |v: &[PyValue]| {
                let mut s: Vec<String> = v.iter().map(PyValue::py_repr).collect();
                s.sort();
                s
            };
            sort(x) == sort(y)
        }
        (PyValue::Dict(x), PyValue::Dict(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.iter()
                        .find(|(k2, _)| py_eq(k, k2))
                        .is_some_and(|(_, w)| py_eq(v, w))
                })
        }
        _ => a == b,
    }
}

/// Two rendered call results equal by the rules.
pub fn result_eq(a: &str, b: &str) -> bool {
    const ERR: &str = "Error during execution";
    if a == b || (a.starts_with(ERR) && b.starts_with(ERR)) {
        return true;
    }
    if let (Ok(x), Ok(y)) = (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        return json_eq(&x, &y);
    }
    if let (Ok(x), Ok(y)) = (parse_literal(a), parse_literal(b)) {
        return py_eq(&x, &y);
    }
    false
}

/// The differences between expected and actual replays (matched by position), as messages.
pub fn diff_replays(entries: &[Value], expected: &[Value], actual: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    if expected.len() != actual.len() {
        out.push(format!(
            "{} expected replays, {} actual",
            expected.len(),
            actual.len()
        ));
    }
    for ((entry, exp), act) in entries.iter().zip(expected).zip(actual) {
        let id = &entry["id"];
        match (exp.get("error"), act.get("error")) {
            (None, None) => {}
            (Some(_), Some(_)) => continue,
            (Some(e), None) if e.as_str().is_some_and(|e| e.starts_with("RecursionError")) => {
                // A directory moved into itself: Python cannot even show (or compare) the
                // state; the Rust state stops at a fixed depth.
                eprintln!("{id}: Python cannot show the cyclic state; not compared");
                continue;
            }
            (e, a) => {
                out.push(format!(
                    "{id}: replay failed on one side only: expected {e:?}, actual {a:?}"
                ));
                continue;
            }
        }
        let empty = Vec::new();
        let turns = |v: &Value, k: &str| v[k].as_array().cloned().unwrap_or_default();
        let (er, ar) = (turns(exp, "results"), turns(act, "results"));
        if er.len() != ar.len() {
            out.push(format!(
                "{id}: {} turns expected, {} replayed",
                er.len(),
                ar.len()
            ));
            continue;
        }
        for (t, (et, at)) in er.iter().zip(&ar).enumerate() {
            let (et, at) = (
                et.as_array().unwrap_or(&empty),
                at.as_array().unwrap_or(&empty),
            );
            if et.len() != at.len() {
                out.push(format!("{id} turn {t}: result counts differ"));
                continue;
            }
            for (k, (x, y)) in et.iter().zip(at).enumerate() {
                let (x, y) = (x.as_str().unwrap_or(""), y.as_str().unwrap_or(""));
                if !result_eq(x, y) {
                    let call = &entry["turns"][t][k];
                    out.push(format!(
                        "{id} turn {t} call {k} {call}:\n  expected {x}\n  actual   {y}"
                    ));
                }
            }
        }
        let (es, as_) = (turns(exp, "states"), turns(act, "states"));
        for (t, (x, y)) in es.iter().zip(&as_).enumerate() {
            if !json_eq(x, y) {
                out.push(format!(
                    "{id} state after turn {t}:\n  expected {x}\n  actual   {y}"
                ));
            }
        }
    }
    out
}

/// Fails with the first differences, if any.
pub fn assert_no_diffs(what: &str, diffs: &[String]) {
    if !diffs.is_empty() {
        let shown: Vec<&str> = diffs.iter().take(15).map(String::as_str).collect();
        panic!(
            "{what}: {} differences; first ones:\n{}",
            diffs.len(),
            shown.join("\n")
        );
    }
}
