//! `supo synth --mode template` end to end: every generated sample's ground truth replays
//! without error (library and `supo bfcl replay`), passes the Rust BFCL checker when used as the
//! model's answer, matches the chat transcript, and — when BFCL's Python reference is installed —
//! replays identically and passes BFCL's own checker. Also: byte-identical output for a seed,
//! resumption after an interruption, and clear errors on bad input.

mod agent_common;
#[path = "../../bfcl/tests/bfcl_common/mod.rs"]
mod bfcl_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use agent_common::bfcl_available;
use bfcl_common::*;
use serde_json::Value;
use supo_bfcl::checker::{check_entry, CheckEntry};
use supo_bfcl::replay::{replay, ReplayInput};
use supo_synth::sampler::failure;

const SAMPLES: usize = 40;

fn synth(out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(["synth", "--mode", "template", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("run supo synth")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "supo synth failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn fresh(name: &str) -> PathBuf {
    let dir = scratch("synth_template").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const OUTPUTS: &[&str] = &[
    "chat.jsonl",
    "bfcl_questions.jsonl",
    "bfcl_possible_answers.jsonl",
    "replay_input.jsonl",
    "stats.json",
    "graph.json",
    "graph.dot",
];

#[test]
fn template_samples_replay_and_pass_the_checker() {
    if !bfcl_available("template_samples_replay_and_pass_the_checker") {
        return;
    }
    let dir = fresh("main");
    let n = SAMPLES.to_string();
    ok(&synth(&dir, &["--samples", &n, "--seed", "7"]));
    let questions = read_lines(&dir.join("bfcl_questions.jsonl"));
    let answers = read_lines(&dir.join("bfcl_possible_answers.jsonl"));
    let replays = read_lines(&dir.join("replay_input.jsonl"));
    let chats = read_lines(&dir.join("chat.jsonl"));
    assert_eq!(questions.len(), SAMPLES);
    assert_eq!(answers.len(), SAMPLES);
    assert_eq!(replays.len(), SAMPLES);
    assert_eq!(chats.len(), SAMPLES);
    let mut calls = 0;
    let mut variants = 0;
    for (i, (((q, a), r), c)) in questions
        .iter()
        .zip(&answers)
        .zip(&replays)
        .zip(&chats)
        .enumerate()
    {
        let id = format!("funreason_mt_{i}");
        for v in [q, a, r, c] {
            assert_eq!(v["id"], id);
        }
        assert_eq!(c["metadata"]["mode"], "template");
        let truth: Vec<Vec<String>> =
            serde_json::from_value(a["ground_truth"].clone()).expect("ground truth");
        assert_eq!(q["question"].as_array().map(Vec::len), Some(truth.len()));
        assert_eq!(r["turns"], a["ground_truth"]);
        assert!(truth.iter().any(|t| !t.is_empty()), "{id}: no calls");
        // Missing-function turns: the question is empty exactly where a tool is added.
        if let Some(m) = q["missed_function"].as_object() {
            variants += 1;
            for t in m.keys() {
                let t: usize = t.parse().expect("turn");
                assert_eq!(q["question"][t], serde_json::json!([]), "{id}");
                assert!(truth[t - 1].is_empty(), "{id}: the withheld turn has calls");
            }
        }
        // The ground truth replays without error.
        let input: ReplayInput = serde_json::from_value(r.clone()).expect("replay input");
        let out = replay(&input).expect("replay");
        let results: Vec<&String> = out.results.iter().flatten().collect();
        for (k, res) in results.iter().enumerate() {
            assert!(
                failure(res).is_none(),
                "{id}: call {k} fails on replay: {res}"
            );
        }
        calls += results.len();
        // The chat's tool messages are those results, in order.
        let tool_msgs: Vec<&str> = c["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| m["content"].as_str().expect("content"))
            .collect();
        assert_eq!(
            tool_msgs,
            results.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "{id}"
        );
        // The ground truth as the model's answer passes the checker.
        let entry = CheckEntry {
            id: id.clone(),
            involved_classes: serde_json::from_value(q["involved_classes"].clone()).unwrap(),
            initial_config: q["initial_config"].clone(),
        };
        let model: Vec<Vec<Vec<String>>> = truth.iter().map(|t| vec![t.clone()]).collect();
        let verdict = check_entry(&entry, &truth, &model).expect("check");
        assert!(verdict.valid, "{id}: {verdict:?}");
        // Without the last calls the answer fails.
        let mut short = model.clone();
        if let Some(t) = short.iter_mut().rev().find(|t| !t[0].is_empty()) {
            t.clear();
        }
        assert!(!check_entry(&entry, &truth, &short).expect("check").valid);
    }
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["mode"], "template");
    assert_eq!(stats["samples"], SAMPLES);
    assert_eq!(stats["calls"], calls);
    assert!(stats["tools"]["covered"].as_u64().unwrap() >= 20, "{stats}");
    assert!(stats["edges"]["observed_distinct"].as_u64().unwrap() >= 10);
    assert!(stats["dependency_depth"]["max"].as_u64().unwrap() >= 2);
    assert_eq!(
        stats["llm"]["role_requests"]["A_T"], stats["rounds"],
        "one A_T request per kept round in template mode"
    );
    eprintln!("synth: {SAMPLES} samples, {calls} calls, {variants} missing-function samples");

    // The environment–API graph, exported: the paper's example edges and the preconditions.
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("graph.json")).unwrap()).unwrap();
    assert_eq!(graph["nodes"].as_array().map(Vec::len), Some(128));
    let has = |from: &str, to: &str, kind: &str| {
        graph["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["from"] == from && e["to"] == to && e["kind"] == kind)
    };
    assert!(has(
        "VehicleControlAPI.get_zipcode_based_on_city",
        "VehicleControlAPI.estimate_distance",
        "data"
    ));
    assert!(has("GorillaFileSystem.ls", "GorillaFileSystem.cat", "data"));
    assert!(has(
        "TravelAPI.authenticate_travel",
        "TravelAPI.book_flight",
        "data"
    ));
    assert!(has(
        "TicketAPI.ticket_login",
        "TicketAPI.create_ticket",
        "state"
    ));
    assert!(!has("GorillaFileSystem.ls", "TwitterAPI.get_tweet", "data"));
    let used: u64 = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["observed"].as_u64().unwrap())
        .sum();
    assert!(used > 0);
    let dot = std::fs::read_to_string(dir.join("graph.dot")).unwrap();
    assert!(dot.starts_with("digraph api_graph {") && dot.trim_end().ends_with('}'));

    // `supo bfcl replay` reads the replay file as is.
    let replayed = dir.join("replayed.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(["bfcl", "replay", "--input"])
        .arg(dir.join("replay_input.jsonl"))
        .arg("--output")
        .arg(&replayed)
        .output()
        .expect("supo bfcl replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_lines(&replayed).len(), SAMPLES);

    // BFCL's own Python executor and checker, when installed.
    let Some(bfcl) = reference("synth_python_reference") else {
        return;
    };
    let subset: Vec<Value> = replays.iter().take(20).cloned().collect();
    let py = python_replay(&bfcl, &dir, &subset);
    assert_no_diffs(
        "synth vs BFCL's executor",
        &diff_replays(&subset, &py, &rust_replay(&subset)),
    );
    for (p, r) in py.iter().zip(&subset) {
        assert!(p.get("error").is_none(), "{}: {p}", r["id"]);
        for res in p["results"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| t.as_array().into_iter().flatten())
        {
            assert!(
                failure(res.as_str().unwrap_or("")).is_none(),
                "{}: {res}",
                r["id"]
            );
        }
    }
    let cases: Vec<Value> = questions
        .iter()
        .zip(&answers)
        .take(20)
        .map(|(q, a)| {
            let model: Vec<Value> = a["ground_truth"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| serde_json::json!([t]))
                .collect();
            serde_json::json!({"id": q["id"], "involved_classes": q["involved_classes"],
                "initial_config": q["initial_config"], "ground_truth": a["ground_truth"],
                "model": model})
        })
        .collect();
    let verdicts = python_check(&bfcl, &dir, &cases);
    assert_eq!(verdicts.len(), cases.len());
    for v in &verdicts {
        assert_eq!(v["valid"], true, "BFCL's checker rejects {v}");
    }
    eprintln!("synth: 20 samples replayed and checked by BFCL's Python reference");
}

#[test]
fn same_seed_same_bytes_and_resume_appends() {
    if !bfcl_available("same_seed_same_bytes_and_resume_appends") {
        return;
    }
    let a = fresh("seed_a");
    let b = fresh("seed_b");
    let c = fresh("seed_c");
    ok(&synth(&a, &["--samples", "12", "--seed", "3"]));
    ok(&synth(&b, &["--samples", "12", "--seed", "3"]));
    ok(&synth(&c, &["--samples", "12", "--seed", "4"]));
    for f in OUTPUTS {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between two runs with the same seed");
    }
    assert_ne!(
        std::fs::read(a.join("chat.jsonl")).unwrap(),
        std::fs::read(c.join("chat.jsonl")).unwrap()
    );

    // An interrupted run: 5 samples finished, the 6th written to some files and cut half-way
    // through its chat line. The rerun keeps the 5, drops the partial one and appends.
    let r = fresh("resume");
    ok(&synth(&r, &["--samples", "5", "--seed", "3"]));
    let five = std::fs::read(r.join("chat.jsonl")).unwrap();
    for f in ["bfcl_questions.jsonl", "bfcl_possible_answers.jsonl"] {
        let line = std::fs::read_to_string(a.join(f))
            .unwrap()
            .lines()
            .nth(5)
            .unwrap()
            .to_string();
        let mut text = std::fs::read_to_string(r.join(f)).unwrap();
        text.push_str(&line);
        text.push('\n');
        std::fs::write(r.join(f), text).unwrap();
    }
    let chat6 = std::fs::read_to_string(a.join("chat.jsonl"))
        .unwrap()
        .lines()
        .nth(5)
        .unwrap()
        .to_string();
    let mut text = String::from_utf8(five.clone()).unwrap();
    text.push_str(&chat6[..chat6.len() / 2]);
    std::fs::write(r.join("chat.jsonl"), text).unwrap();
    let out = synth(&r, &["--samples", "12", "--seed", "3"]);
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(7 new"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in OUTPUTS {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(r.join(f)).unwrap(),
            "{f}: the resumed run differs from the uninterrupted one"
        );
    }
    assert!(std::fs::read(r.join("chat.jsonl"))
        .unwrap()
        .starts_with(&five));
    // Nothing to do: nothing rewritten.
    let before = std::fs::read(r.join("chat.jsonl")).unwrap();
    let out = synth(&r, &["--samples", "12", "--seed", "3"]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("(0 new"));
    assert_eq!(before, std::fs::read(r.join("chat.jsonl")).unwrap());
    // Other options on the same folder: refused, files untouched.
    let out = synth(&r, &["--samples", "14", "--seed", "4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("other options"));
    assert_eq!(before, std::fs::read(r.join("chat.jsonl")).unwrap());
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = fresh("bad");
    for (args, needle) in [
        (vec!["--noise", "2"], "--noise"),
        (vec!["--rounds", "0"], "--rounds"),
        (
            vec!["--miss-func", "0.7", "--miss-param", "0.6"],
            "must not exceed 1",
        ),
        (vec!["--k-max", "0"], "--k-max"),
    ] {
        let out = synth(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(["synth", "--mode", "llm", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--base-url"));
    if !bfcl_available("bad_input_is_a_clear_error") {
        return;
    }
    // A folder holding something else than synthesised samples.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("chat.jsonl"), "{\"id\": \"other_0\"}\n").unwrap();
    let out = synth(&dir, &["--samples", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("chat.jsonl line 1") && err.contains("another --out"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}
