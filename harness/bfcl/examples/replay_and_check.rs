//! Replays a BFCL multi-turn entry's ground-truth calls on the Rust environments and runs BFCL's
//! multi-turn checker on them, then on a model answer that forgets the last call.
//!
//! ```sh
//! export BFCL_EVAL_DIR=$(scripts/install-bfcl.sh target/pydeps/bfcl)
//! cargo run -p supo-bfcl --example replay_and_check [-- multi_turn_base_3]
//! ```

use std::path::Path;

use serde_json::Value;
use supo_bfcl::checker::{check_entry, CheckEntry};
use supo_bfcl::locate::data_dir;
use supo_bfcl::replay::{replay, ReplayInput};

/// The line of a BFCL JSONL file whose `id` is `id`.
fn find(path: &Path, id: &str) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|v| v["id"] == id)
        .ok_or_else(|| format!("no entry {id} in {}", path.display()))
}

fn main() -> Result<(), String> {
    let id = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "multi_turn_base_0".to_string());
    let dir = data_dir()?;
    let question = find(&dir.join("BFCL_v4_multi_turn_base.json"), &id)?;
    let answer = find(
        &dir.join("possible_answer/BFCL_v4_multi_turn_base.json"),
        &id,
    )?;
    let ground_truth: Vec<Vec<String>> =
        serde_json::from_value(answer["ground_truth"].clone()).map_err(|e| e.to_string())?;

    // Replay: every call's result and each instance's state after every turn.
    let mut input: ReplayInput =
        serde_json::from_value(question.clone()).map_err(|e| e.to_string())?;
    input.turns = ground_truth.clone();
    let out = replay(&input)?;
    for (turn, (calls, results)) in ground_truth.iter().zip(&out.results).enumerate() {
        for (call, result) in calls.iter().zip(results) {
            println!("turn {turn}: {call} -> {result}");
        }
    }

    // Check: the ground truth as the model's answer (one step per turn) passes...
    let entry: CheckEntry = serde_json::from_value(question).map_err(|e| e.to_string())?;
    let model: Vec<Vec<Vec<String>>> = ground_truth.iter().map(|t| vec![t.clone()]).collect();
    let verdict = check_entry(&entry, &ground_truth, &model)?;
    println!("ground truth as the answer: valid = {}", verdict.valid);

    // ...and an answer that forgets the last call of the last turn is caught.
    let mut forgetful = model;
    if let Some(step) = forgetful.last_mut().and_then(|t| t.last_mut()) {
        step.pop();
    }
    let verdict = check_entry(&entry, &ground_truth, &forgetful)?;
    println!(
        "without the last call: valid = {}, {}",
        verdict.valid,
        verdict.error_type.unwrap_or_default()
    );
    Ok(())
}
