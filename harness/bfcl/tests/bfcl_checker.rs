//! The multi-turn checker against BFCL's own (`multi_turn_checker` in the installed
//! `bfcl-eval`): the ground truth as the model's answer passes in every category, and
//! perturbed answers (a call dropped, repeated or altered, a turn emptied, a turn missing) get
//! the same verdict and error type from both. Entries whose classes are not implemented are
//! skipped (and listed). Skips when python3 or the package is missing, unless
//! `SUPO_REQUIRE_BFCL=1`.

mod bfcl_common;

use bfcl_common::*;
use serde_json::{json, Value};
use supo_bfcl::checker::{check_entry, CheckEntry};
use supo_bfcl::pyrandom::PyRandom;

fn turns_of(v: &Value) -> Vec<Vec<String>> {
    serde_json::from_value(v.clone()).expect("turns")
}

/// A perturbed answer: the ground truth as one step per turn, then one change.
fn perturb(truth: &[Vec<String>], rng: &mut PyRandom) -> Vec<Vec<Vec<String>>> {
    let mut model: Vec<Vec<Vec<String>>> = truth
        .iter()
        .map(|t| {
            if t.is_empty() {
                vec![]
            } else {
                vec![t.clone()]
            }
        })
        .collect();
    let busy: Vec<usize> = (0..truth.len()).filter(|&t| !truth[t].is_empty()).collect();
    let Some(&t) = busy.get(rng.choice(busy.len().max(1)).unwrap_or(0)) else {
        return model;
    };
    let step = &mut model[t][0];
    let k = rng.choice(step.len()).unwrap_or(0);
    match rng.choice(5).unwrap_or(0) {
        0 => {
            step.remove(k);
        }
        1 => {
            let c = step[k].clone();
            step.insert(k, c);
        }
        2 => {
            // Alter the first quoted argument.
            step[k] = step[k].replacen('\'', "'x", 1);
        }
        3 => model[t].clear(),
        _ => {
            model.pop();
        }
    }
    model
}

#[test]
fn checker_matches_bfcl() {
    let Some(bfcl) = reference("bfcl_checker") else {
        return;
    };
    let mut rng = PyRandom::new(20260323);
    let mut cases = Vec::new();
    for category in [
        "base",
        "long_context",
        "miss_func",
        "miss_param",
        "composite",
    ] {
        let entries = keep_implemented(
            &format!("bfcl_checker {category}"),
            ground_truth_inputs(&bfcl, category),
        );
        for e in entries {
            let truth = turns_of(&e["turns"]);
            let exact: Vec<Vec<Vec<String>>> = truth
                .iter()
                .map(|t| {
                    if t.is_empty() {
                        vec![]
                    } else {
                        vec![t.clone()]
                    }
                })
                .collect();
            for model in [exact, perturb(&truth, &mut rng)] {
                cases.push(json!({
                    "id": e["id"], "involved_classes": e["involved_classes"],
                    "initial_config": e["initial_config"], "ground_truth": truth,
                    "model": model,
                }));
            }
        }
    }
    let dir = scratch("bfcl_checker");
    let expected = python_check(&bfcl, &dir, &cases);
    assert_eq!(expected.len(), cases.len());
    let mut diffs = Vec::new();
    let (mut passed, mut failed) = (0, 0);
    for (i, (case, exp)) in cases.iter().zip(&expected).enumerate() {
        let entry: CheckEntry = serde_json::from_value(case.clone()).expect("entry");
        let truth = turns_of(&case["ground_truth"]);
        let model: Vec<Vec<Vec<String>>> =
            serde_json::from_value(case["model"].clone()).expect("model");
        let v = check_entry(&entry, &truth, &model).expect("check");
        if i % 2 == 0 && !v.valid {
            diffs.push(format!("{}: the ground truth fails: {v:?}", case["id"]));
        }
        if v.valid {
            passed += 1;
        } else {
            failed += 1;
        }
        let same =
            exp["valid"] == json!(v.valid) && (v.valid || exp["error_type"] == json!(v.error_type));
        if !same {
            diffs.push(format!(
                "{}: BFCL {exp}, Rust {v:?}, model {}",
                case["id"], case["model"]
            ));
        }
    }
    eprintln!(
        "bfcl_checker: {} cases ({passed} pass, {failed} fail), {} differ from BFCL",
        cases.len(),
        diffs.len()
    );
    assert_no_diffs("bfcl_checker", &diffs);
}
