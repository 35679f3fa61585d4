//! BFCL's multi-turn checker, by the rules its current source applies: the model's calls and
//! the ground truth run on separate instances turn by turn (state carries across turns); an
//! entry fails outright when its number of turns differs from the ground truth's (the model was
//! force-terminated) or when a turn with a non-empty ground truth got no model call; each turn
//! with a non-empty ground truth then gets the state check (every public attribute equal) and
//! the response check (the turn's ground-truth results are an unordered sub-multiset of all
//! the model's results so far). Also the missing-function protocol's pieces and BFCL's
//! accuracy summaries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::env::tool_class;
use super::locate::func_doc_dir;
use super::replay::Executor;

/// Steps a model may take in one turn before BFCL force-terminates it.
pub const MAXIMUM_STEP_LIMIT: usize = 20;

/// The user message BFCL injects when it adds withheld functions (missing-function category).
pub const ADDITIONAL_FUNCTION_PROMPT: &str =
    "I have updated some more functions you can choose from. What about now?";

/// The categories whose unweighted mean is BFCL's multi-turn overall accuracy.
pub const OVERALL_CATEGORIES: &[&str] = &[
    "multi_turn_base",
    "multi_turn_miss_func",
    "multi_turn_miss_param",
    "multi_turn_long_context",
];

/// The parts of a BFCL multi-turn question the checker needs.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckEntry {
    /// The entry id (`multi_turn_base_12`); its category is the part before the last `_`.
    pub id: String,
    /// The classes to instantiate, in order.
    pub involved_classes: Vec<String>,
    /// Each class's scenario.
    #[serde(default)]
    pub initial_config: serde_json::Value,
}

impl CheckEntry {
    /// The entry's category (`multi_turn_base`).
    pub fn category(&self) -> &str {
        self.id
            .rsplit_once('_')
            .map_or(self.id.as_str(), |(c, _)| c)
    }

    /// Whether scenarios load in their long-context variant.
    pub fn long_context(&self) -> bool {
        let c = self.category();
        c.contains("long_context") || c.contains("composite")
    }
}

/// A checker verdict, with BFCL's error type and message when the entry fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Whether the entry passes.
    pub valid: bool,
    /// BFCL's error type (`multi_turn:instance_state_mismatch`, …) when it fails.
    pub error_type: Option<String>,
    /// BFCL's error message when it fails.
    pub error_message: Option<String>,
    /// The turn the failure was found in (none for a force-terminated entry).
    pub turn: Option<usize>,
}

impl Verdict {
    fn pass() -> Verdict {
        Verdict {
            valid: true,
            error_type: None,
            error_message: None,
            turn: None,
        }
    }

    fn fail(error_type: &str, message: String, turn: Option<usize>) -> Verdict {
        Verdict {
            valid: false,
            error_type: Some(error_type.to_string()),
            error_message: Some(message),
            turn,
        }
    }
}

/// BFCL's `is_empty_execute_response`: no call, or a single empty one.
pub fn is_empty_execute_response(calls: &[String]) -> bool {
    calls.is_empty() || (calls.len() == 1 && calls[0].is_empty())
}

/// Checks one entry. `model[t]` holds turn `t`'s decoded steps, each a list of call strings
/// (empty steps are dropped, as BFCL's decoding drops them). Fails (`Err`) only when the
/// entry's classes cannot be instantiated.
pub fn check_entry(
    entry: &CheckEntry,
    ground_truth: &[Vec<String>],
    model: &[Vec<Vec<String>>],
) -> Result<Verdict, String> {
    if model.len() != ground_truth.len() {
        return Ok(Verdict::fail(
            "multi_turn:force_terminated",
            format!(
                "Model was force-terminated during inference phase. The length of the model \
                 result turns ({}) does not match the length of the ground truth turns ({}).",
                model.len(),
                ground_truth.len()
            ),
            None,
        ));
    }
    let long = entry.long_context();
    let mut model_ex = Executor::new(&entry.involved_classes, &entry.initial_config, long)?;
    let mut truth_ex = Executor::new(&entry.involved_classes, &entry.initial_config, long)?;
    let mut all_model_results: Vec<String> = Vec::new();
    for (t, (truth_calls, steps)) in ground_truth.iter().zip(model).enumerate() {
        let steps: Vec<&Vec<String>> = steps
            .iter()
            .filter(|s| !is_empty_execute_response(s))
            .collect();
        for step in &steps {
            for call in step.iter() {
                all_model_results.push(model_ex.execute(call));
            }
        }
        let truth_results: Vec<String> = truth_calls.iter().map(|c| truth_ex.execute(c)).collect();
        if truth_calls.is_empty() {
            continue;
        }
        if steps.is_empty() {
            return Ok(Verdict::fail(
                "multi_turn:empty_turn_model_response",
                format!("Model response list is empty for turn {t}"),
                Some(t),
            ));
        }
        let (model_states, truth_states) = (model_ex.snapshot(), truth_ex.snapshot());
        for (class, truth_state) in &truth_states {
            let same = model_states
                .iter()
                .find(|(c, _)| c == class)
                .is_some_and(|(_, m)| python_eq(m, truth_state));
            if !same {
                return Ok(Verdict::fail(
                    "multi_turn:instance_state_mismatch",
                    format!(
                        "Model instance for {class} does not match the state with ground truth \
                         instance."
                    ),
                    Some(t),
                ));
            }
        }
        if !is_unordered_submultiset(&truth_results, &all_model_results) {
            return Ok(Verdict::fail(
                "multi_turn:execution_response_mismatch",
                format!(
                    "Model response execution results so far does not contain all the ground \
                     truth response execution results for turn {t}."
                ),
                Some(t),
            ));
        }
    }
    Ok(Verdict::pass())
}

/// Whether every item of `part` can be matched to a distinct equal item of `whole`.
pub fn is_unordered_submultiset(part: &[String], whole: &[String]) -> bool {
    let mut left: Vec<&String> = whole.iter().collect();
    part.iter()
        .all(|item| match left.iter().position(|w| *w == item) {
            Some(i) => {
                left.remove(i);
                true
            }
            None => false,
        })
}

/// Python's `==` on state values: numbers by value (`1 == 1.0 == True`), dicts regardless of
/// order.
pub fn python_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| python_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| python_eq(v, w)))
        }
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(p), Some(q)) => p == q,
            _ => num(a) == num(b),
        },
        (Value::Bool(_), Value::Number(_)) | (Value::Number(_), Value::Bool(_)) => num(a) == num(b),
        _ => a == b,
    }
}

/// An entry's tool docs: those shown from the start, and those added at each turn.
pub type ToolDocs = (
    Vec<serde_json::Value>,
    BTreeMap<usize, Vec<serde_json::Value>>,
);

/// The tool docs the model sees for an entry: the docs of its classes (from the installed
/// `bfcl-eval`) without the withheld functions, and, per turn, the withheld docs BFCL adds at
/// that turn (with [`ADDITIONAL_FUNCTION_PROMPT`]). `missed_function` is the question's field
/// (`{"3": ["sort"]}`) or null.
pub fn tool_docs(
    classes: &[String],
    missed_function: &serde_json::Value,
) -> Result<ToolDocs, String> {
    let dir = func_doc_dir()?;
    let mut docs: Vec<serde_json::Value> = Vec::new();
    for class in classes {
        let class = tool_class(class).ok_or_else(|| format!("no tool docs for class {class}"))?;
        let path = dir.join(class.doc_file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            docs.push(
                serde_json::from_str(line)
                    .map_err(|e| format!("bad tool doc in {}: {e}", path.display()))?,
            );
        }
    }
    let mut added: BTreeMap<usize, Vec<serde_json::Value>> = BTreeMap::new();
    if let Some(missed) = missed_function.as_object() {
        for (turn, names) in missed {
            let t: usize = turn
                .parse()
                .map_err(|_| format!("bad missed_function turn {turn:?}"))?;
            for name in names.as_array().into_iter().flatten() {
                if let Some(i) = docs.iter().position(|d| d["name"] == *name) {
                    added.entry(t).or_default().push(docs.remove(i));
                }
            }
        }
    }
    Ok((docs, added))
}

/// Correct and total entries of one category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CategoryScore {
    /// Entries that passed.
    pub correct: usize,
    /// Entries checked.
    pub total: usize,
}

impl CategoryScore {
    /// The accuracy (0 for an empty category).
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// BFCL's multi-turn overall accuracy: the unweighted mean of the base, missing-function,
/// missing-parameter and long-context accuracies (a missing category counts as 0).
pub fn multi_turn_overall(scores: &BTreeMap<String, CategoryScore>) -> f64 {
    let sum: f64 = OVERALL_CATEGORIES
        .iter()
        .map(|c| scores.get(*c).map_or(0.0, CategoryScore::accuracy))
        .sum();
    sum / OVERALL_CATEGORIES.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> CheckEntry {
        CheckEntry {
            id: "multi_turn_base_7".to_string(),
            involved_classes: vec!["GorillaFileSystem".to_string()],
            initial_config: serde_json::json!({"GorillaFileSystem": {"root": {"w": {
                "type": "directory", "contents": {"a.txt": {"type": "file", "content": "hi"}}}}}}),
        }
    }

    fn calls(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn verdicts() {
        let e = entry();
        assert_eq!(e.category(), "multi_turn_base");
        let truth = vec![
            calls(&["mkdir(dir_name='d')"]),
            vec![],
            calls(&["cat('a.txt')"]),
        ];
        let good = vec![
            vec![calls(&["ls()"]), calls(&["mkdir(dir_name='d')"])],
            vec![calls(&["pwd()"])],
            vec![calls(&["cat(file_name='a.txt')"])],
        ];
        assert!(check_entry(&e, &truth, &good).unwrap().valid);
        let short = &good[..2];
        let v = check_entry(&e, &truth, short).unwrap();
        assert_eq!(v.error_type.as_deref(), Some("multi_turn:force_terminated"));
        let wrong_state = vec![
            vec![calls(&["mkdir(dir_name='x')"])],
            vec![],
            good[2].clone(),
        ];
        let v = check_entry(&e, &truth, &wrong_state).unwrap();
        assert_eq!(
            v.error_type.as_deref(),
            Some("multi_turn:instance_state_mismatch")
        );
        let no_read = vec![good[0].clone(), vec![], vec![calls(&["ls()"])]];
        let v = check_entry(&e, &truth, &no_read).unwrap();
        assert_eq!(
            v.error_type.as_deref(),
            Some("multi_turn:execution_response_mismatch")
        );
        let empty = vec![good[0].clone(), vec![], vec![calls(&[""])]];
        let v = check_entry(&e, &truth, &empty).unwrap();
        assert_eq!(
            v.error_type.as_deref(),
            Some("multi_turn:empty_turn_model_response")
        );
        assert_eq!(v.turn, Some(2));
    }

    #[test]
    fn overall_is_the_unweighted_mean() {
        let mut s = BTreeMap::new();
        s.insert(
            "multi_turn_base".to_string(),
            CategoryScore {
                correct: 1,
                total: 2,
            },
        );
        s.insert(
            "multi_turn_long_context".to_string(),
            CategoryScore {
                correct: 2,
                total: 2,
            },
        );
        assert!((multi_turn_overall(&s) - 0.375).abs() < 1e-12);
    }

    #[test]
    fn python_equality() {
        use serde_json::json;
        assert!(python_eq(
            &json!({"a": 1, "b": [1.0]}),
            &json!({"b": [1], "a": 1.0})
        ));
        assert!(python_eq(&json!(true), &json!(1)));
        assert!(!python_eq(&json!("1"), &json!(1)));
    }
}
