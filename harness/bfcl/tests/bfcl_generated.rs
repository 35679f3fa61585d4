//! Differential property test: random call sequences — valid calls, wrong types, missing and
//! unknown arguments, extra positional arguments, nonexistent files and ids, unknown functions
//! — run on BFCL's scenarios by the Rust environments and by BFCL's own Python reference, and
//! compared. A new seed every run (printed; `SUPO_BFCL_SEED=N` replays one). Only implemented
//! classes are exercised. Skips when python3 or the package is missing, unless
//! `SUPO_REQUIRE_BFCL=1`.

mod bfcl_common;

use std::path::Path;

use bfcl_common::*;
use serde_json::Value;
use supo_bfcl::env::new_env;
use supo_bfcl::parse::{parse_call, Expr};
use supo_bfcl::pyrandom::PyRandom;
use supo_bfcl::value::PyValue;

/// Entries generated per run.
const ENTRIES: usize = 120;

/// One tool: its name and parameters (name, JSON-schema type, required).
struct Tool {
    name: String,
    params: Vec<(String, String, bool)>,
}

fn tools(bfcl: &Path, class: &str) -> Vec<Tool> {
    let Some(class) = supo_bfcl::env::tool_class(class) else {
        return Vec::new();
    };
    let path = bfcl.join("data/multi_turn_func_doc").join(class.doc_file);
    let text = std::fs::read_to_string(&path).expect("tool docs");
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|d| {
            let required: Vec<&str> = d["parameters"]["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let params = d["parameters"]["properties"]
                .as_object()
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| {
                            let ty = v["type"].as_str().unwrap_or("string").to_string();
                            (k.clone(), ty, required.contains(&k.as_str()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Tool {
                name: d["name"].as_str().unwrap_or("").to_string(),
                params,
            }
        })
        .collect()
}

/// Strings and numbers found in a scenario (names, ids, contents), to draw realistic arguments.
fn harvest(v: &Value, strings: &mut Vec<String>, ints: &mut Vec<i64>) {
    match v {
        Value::String(s) if s.len() < 60 => strings.push(s.clone()),
        Value::Number(n) => ints.extend(n.as_i64()),
        Value::Array(a) => a.iter().for_each(|x| harvest(x, strings, ints)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            if k.len() < 60 {
                strings.push(k.clone());
                ints.extend(k.parse::<i64>().ok());
            }
            harvest(x, strings, ints);
        }),
        _ => {}
    }
}

struct Gen {
    rng: PyRandom,
    strings: Vec<String>,
    ints: Vec<i64>,
}

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        self.rng.choice(n).unwrap_or(0)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random() < p
    }

    fn string(&mut self) -> PyValue {
        const EXTRA: &[&str] = &[
            "",
            "..",
            ".",
            "/",
            "nope.txt",
            "new_dir",
            "a/b",
            "x|y",
            "USR999",
            "hello world",
            "km",
            "m",
            "cm",
            "celsius",
            "fahrenheit",
            "#tag",
            "Report",
            "REPORT",
        ];
        if !self.strings.is_empty() && self.chance(0.7) {
            let i = self.below(self.strings.len());
            PyValue::Str(self.strings[i].clone())
        } else {
            let i = self.below(EXTRA.len());
            PyValue::str(EXTRA[i])
        }
    }

    fn int(&mut self) -> PyValue {
        if !self.ints.is_empty() && self.chance(0.5) {
            let i = self.below(self.ints.len());
            PyValue::Int(self.ints[i])
        } else {
            PyValue::Int(self.rng.randint(-3, 12).unwrap_or(0))
        }
    }

    fn float(&mut self) -> PyValue {
        match self.below(4) {
            0 => PyValue::Float(0.0),
            1 => self.int(),
            _ => PyValue::Float((self.rng.uniform(-50.0, 500.0) * 100.0).round() / 100.0),
        }
    }

    fn any(&mut self) -> PyValue {
        match self.below(7) {
            0 => PyValue::None,
            1 => PyValue::Bool(self.chance(0.5)),
            2 => self.int(),
            3 => self.float(),
            4 => PyValue::List(vec![self.string()]),
            5 => PyValue::Dict(vec![(self.string(), self.int())]),
            _ => self.string(),
        }
    }

    fn value(&mut self, ty: &str) -> PyValue {
        if self.chance(0.08) {
            return self.any();
        }
        match ty {
            "integer" => self.int(),
            "float" | "number" => self.float(),
            "boolean" => PyValue::Bool(self.chance(0.5)),
            "array" => {
                let n = self.below(4);
                let numeric = self.chance(0.5);
                PyValue::List(
                    (0..n)
                        .map(|_| if numeric { self.float() } else { self.string() })
                        .collect(),
                )
            }
            "dict" => PyValue::Dict(Vec::new()),
            _ => self.string(),
        }
    }

    fn call(&mut self, tools: &[Tool]) -> String {
        if self.chance(0.03) {
            return "no_such_function()".to_string();
        }
        let tool = &tools[self.below(tools.len())];
        let positional = self.chance(0.2);
        let mut parts = Vec::new();
        for (name, ty, required) in &tool.params {
            let skip = if *required {
                self.chance(0.05)
            } else {
                self.chance(0.5)
            };
            if skip {
                if positional {
                    break;
                }
                continue;
            }
            let mut v = self.value(ty);
            if tool.name == "logarithm" || tool.name == "square_root" {
                // Precisions beyond binary64 (working precisions over 53 bits) are not reproduced.
                v = match v {
                    PyValue::Int(i) if name == "precision" => PyValue::Int(i.min(12)),
                    PyValue::Float(f) if name == "precision" => PyValue::Float(f.min(12.0)),
                    other => other,
                };
            }
            if tool.name == "power" && name == "exponent" {
                // Python computes `base ** exponent` for any int exponent: one harvested from the
                // scenarios (an id like 1974202140965533) would keep BFCL's reference busy forever.
                v = match v {
                    PyValue::Int(i) => PyValue::Int(i.min(5000)),
                    other => other,
                };
            }
            let v = v.py_repr();
            parts.push(if positional { v } else { format!("{name}={v}") });
        }
        if self.chance(0.04) {
            parts.push(format!("bogus={}", self.any().py_repr()));
        }
        if self.chance(0.03) {
            parts.insert(0, self.any().py_repr());
        }
        format!("{}({})", tool.name, parts.join(", "))
    }
}

#[test]
fn generated_call_sequences() {
    let Some(bfcl) = reference("bfcl_generated") else {
        return;
    };
    let seed = std::env::var("SUPO_BFCL_SEED")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as i64 & 0xffff_ffff)
        });
    eprintln!("bfcl_generated: seed {seed} (SUPO_BFCL_SEED={seed} replays it)");
    let mut scenarios = keep_implemented("bfcl_generated", ground_truth_inputs(&bfcl, "base"));
    scenarios.extend(keep_implemented(
        "bfcl_generated",
        ground_truth_inputs(&bfcl, "long_context"),
    ));
    assert!(
        !scenarios.is_empty(),
        "no scenario with implemented classes"
    );
    let mut g = Gen {
        rng: PyRandom::new(seed),
        strings: Vec::new(),
        ints: Vec::new(),
    };
    let mut entries = Vec::with_capacity(ENTRIES);
    for k in 0..ENTRIES {
        let base = scenarios[g.below(scenarios.len())].clone();
        let classes: Vec<String> = base["involved_classes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut all_tools = Vec::new();
        for c in &classes {
            debug_assert!(new_env(c).is_some());
            all_tools.extend(tools(&bfcl, c));
        }
        g.strings.clear();
        g.ints.clear();
        harvest(&base["initial_config"], &mut g.strings, &mut g.ints);
        // Arguments of the ground truth keep the sequences on realistic paths. (Call-like
        // text inside strings is left out: BFCL's executor rewrites `name(` even there.)
        for turn in base["turns"].as_array().into_iter().flatten() {
            for c in turn.as_array().into_iter().flat_map(|t| t.iter()) {
                let Some(Ok(call)) = c.as_str().map(parse_call) else {
                    continue;
                };
                let args = call.args.iter().chain(call.kwargs.iter().map(|(_, v)| v));
                for a in args {
                    match a {
                        Expr::Value(PyValue::Str(s)) if !s.contains('(') => {
                            g.strings.push(s.clone())
                        }
                        Expr::Value(PyValue::Int(i)) => g.ints.push(*i),
                        _ => {}
                    }
                }
            }
        }
        g.strings.retain(|s| !s.contains('('));
        let truth: Vec<String> = base["turns"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| t.as_array().cloned().unwrap_or_default())
            .filter_map(|c| c.as_str().map(String::from))
            .collect();
        let turns: Vec<Vec<String>> = (0..3)
            .map(|_| {
                let n = 1 + g.below(6);
                (0..n)
                    .map(|_| {
                        if !truth.is_empty() && g.chance(0.3) {
                            truth[g.below(truth.len())].clone()
                        } else {
                            g.call(&all_tools)
                        }
                    })
                    .collect()
            })
            .collect();
        entries.push(serde_json::json!({
            "id": format!("generated_{k}"),
            "involved_classes": classes,
            "initial_config": base["initial_config"],
            "long_context": base["long_context"],
            "turns": turns,
        }));
    }
    let dir = scratch("bfcl_generated");
    let expected = python_replay(&bfcl, &dir, &entries);
    let actual = rust_replay(&entries);
    let diffs = diff_replays(&entries, &expected, &actual);
    if !diffs.is_empty() {
        eprintln!(
            "bfcl_generated: seed {seed} failed; inputs in {}",
            dir.display()
        );
    }
    assert_no_diffs(&format!("bfcl_generated (seed {seed})"), &diffs);
}
