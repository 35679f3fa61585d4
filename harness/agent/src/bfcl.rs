//! BFCL's multi-turn entries as agent [`Environment`]s: the entry's user turns, its tool docs
//! (withheld functions added at their turn, excluded ones left out), its calls executed by the
//! Rust [`Executor`], and BFCL's checker verdict as the reward (1 when the entry passes).

use std::collections::BTreeMap;

use serde_json::Value;
use supo_core::FinishReason;

use crate::{Environment, Outcome, UserTurn};
use supo_bfcl::checker::{check_entry, tool_docs, CheckEntry, ADDITIONAL_FUNCTION_PROMPT};
use supo_bfcl::locate::data_dir;
use supo_bfcl::replay::Executor;

/// One BFCL multi-turn entry with its ground truth.
#[derive(Debug, Clone)]
pub struct BfclEntry {
    /// The entry id (`multi_turn_base_0`).
    pub id: String,
    /// The user messages of each turn (empty for a turn that only adds functions).
    pub turns: Vec<Vec<String>>,
    /// The classes and their scenarios.
    pub check: CheckEntry,
    /// The question's `missed_function` field (null when absent).
    pub missed_function: Value,
    /// Functions left out of the docs.
    pub excluded_function: Vec<String>,
    /// The ground-truth call strings of each turn.
    pub ground_truth: Vec<Vec<String>>,
}

fn read_jsonl(path: &std::path::Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{} line {}: bad JSON: {e}", path.display(), i + 1))
        })
        .collect()
}

/// The entries of a multi-turn category (`multi_turn_base`, …) from the installed `bfcl-eval`,
/// in file order.
pub fn load_category(category: &str) -> Result<Vec<BfclEntry>, String> {
    if !category.starts_with("multi_turn_") || category.contains(['/', '.']) {
        return Err(format!(
            "unknown category {category:?}: expected a multi-turn category such as \
             multi_turn_base"
        ));
    }
    let dir = data_dir()?;
    let questions = read_jsonl(&dir.join(format!("BFCL_v4_{category}.json")))?;
    let answers = read_jsonl(
        &dir.join("possible_answer")
            .join(format!("BFCL_v4_{category}.json")),
    )?;
    let truth: BTreeMap<String, Value> = answers
        .into_iter()
        .filter_map(|a| Some((a.get("id")?.as_str()?.to_string(), a)))
        .collect();
    questions
        .into_iter()
        .map(|q| {
            let id = q["id"].as_str().ok_or("a question has no id")?.to_string();
            let bad = |what: &str| format!("{id}: bad {what}");
            let turns = q["question"]
                .as_array()
                .ok_or_else(|| bad("question"))?
                .iter()
                .map(|t| {
                    t.as_array()
                        .ok_or_else(|| bad("question turn"))?
                        .iter()
                        .map(|m| {
                            m["content"]
                                .as_str()
                                .map(str::to_string)
                                .ok_or_else(|| bad("message"))
                        })
                        .collect()
                })
                .collect::<Result<Vec<Vec<String>>, String>>()?;
            let ground_truth: Vec<Vec<String>> = serde_json::from_value(
                truth
                    .get(&id)
                    .ok_or_else(|| format!("{id}: no ground truth"))?["ground_truth"]
                    .clone(),
            )
            .map_err(|e| format!("{id}: bad ground truth: {e}"))?;
            let check: CheckEntry =
                serde_json::from_value(q.clone()).map_err(|e| format!("{id}: {e}"))?;
            Ok(BfclEntry {
                id,
                turns,
                check,
                missed_function: q.get("missed_function").cloned().unwrap_or(Value::Null),
                excluded_function: serde_json::from_value(
                    q.get("excluded_function").cloned().unwrap_or(Value::Null),
                )
                .unwrap_or_default(),
                ground_truth,
            })
        })
        .collect()
}

/// A live BFCL episode.
pub struct BfclEnv {
    entry: BfclEntry,
    executor: Executor,
    docs: Vec<Value>,
    added: BTreeMap<usize, Vec<Value>>,
    turn: usize,
    /// `record[t][s]`: the call strings of step `s` of turn `t`.
    record: Vec<Vec<Vec<String>>>,
}

impl BfclEnv {
    /// A fresh episode of `entry`: its instances loaded, its docs read from `bfcl-eval`.
    pub fn new(entry: BfclEntry) -> Result<BfclEnv, String> {
        let executor = Executor::new(
            &entry.check.involved_classes,
            &entry.check.initial_config,
            entry.check.long_context(),
        )?;
        let (mut docs, added) = tool_docs(&entry.check.involved_classes, &entry.missed_function)?;
        docs.retain(|d| {
            d["name"]
                .as_str()
                .is_none_or(|n| !entry.excluded_function.iter().any(|x| x == n))
        });
        Ok(BfclEnv {
            entry,
            executor,
            docs,
            added,
            turn: 0,
            record: vec![Vec::new()],
        })
    }

    /// The calls made so far: `record[t][s]` holds step `s` of turn `t`.
    pub fn record(&self) -> &[Vec<Vec<String>>] {
        &self.record
    }

    fn user_message(&self, t: usize) -> String {
        let msgs = &self.entry.turns[t];
        if msgs.is_empty() {
            ADDITIONAL_FUNCTION_PROMPT.to_string()
        } else {
            msgs.join("\n")
        }
    }
}

impl Environment for BfclEnv {
    fn tools(&self) -> Vec<Value> {
        self.docs.clone()
    }

    fn first_message(&self) -> String {
        self.user_message(0)
    }

    fn step(&mut self, calls: &[String]) -> Vec<String> {
        let results = calls.iter().map(|c| self.executor.execute(c)).collect();
        if let Some(turn) = self.record.last_mut() {
            turn.push(calls.to_vec());
        }
        results
    }

    fn next_turn(&mut self) -> Option<UserTurn> {
        if self.turn + 1 >= self.entry.turns.len() {
            return None;
        }
        self.turn += 1;
        self.record.push(Vec::new());
        Some(UserTurn {
            message: self.user_message(self.turn),
            new_tools: self.added.get(&self.turn).cloned().unwrap_or_default(),
        })
    }

    fn outcome(&mut self, _finish: FinishReason) -> Outcome {
        // As BFCL does, a force-terminated episode is checked on the turns it reached (the
        // unfinished one included): fewer turns than the ground truth fail the entry.
        let turns = &self.record[..];
        match check_entry(&self.entry.check, &self.entry.ground_truth, turns) {
            Ok(v) => Outcome {
                reward: if v.valid { 1.0 } else { 0.0 },
                verdict: serde_json::to_value(&v).unwrap_or(Value::Null),
            },
            Err(e) => Outcome {
                reward: 0.0,
                verdict: serde_json::json!({"valid": false, "error_type": "checker_error",
                    "error_message": e, "turn": null}),
            },
        }
    }
}
