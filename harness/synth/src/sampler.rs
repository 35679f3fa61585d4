//! Directed sampling toward a target tool on live BFCL environments (FunReason-MT §4.1): pick
//! the target if legal, else the legal tool nearest to it in the graph (a random legal tool once
//! it was called), fill arguments from earlier outputs and the scenario, execute every call,
//! keep only calls that succeed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::graph::{feeds, is_fresh_param, ApiGraph, ParamSpec};
use supo_bfcl::pyrandom::PyRandom;
use supo_bfcl::replay::{Executor, ERROR_PREFIX};
use supo_bfcl::value::PyValue;

/// The BFCL scenarios synthesis starts from: `initial_config` and `involved_classes` of BFCL's
/// `multi_turn_base` entries.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The BFCL entry the scenario comes from.
    pub source_id: String,
    /// The classes to instantiate.
    pub classes: Vec<String>,
    /// Each class's scenario.
    pub config: Value,
}

/// Reads the scenarios of BFCL's `multi_turn_base` category from the installed `bfcl-eval`.
pub fn load_scenarios() -> Result<Vec<Scenario>, String> {
    let path = supo_bfcl::locate::data_dir()?.join("BFCL_v4_multi_turn_base.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let e: Value = serde_json::from_str(l)
                .map_err(|e| format!("bad entry in {}: {e}", path.display()))?;
            let classes = e["involved_classes"]
                .as_array()
                .ok_or_else(|| format!("an entry of {} has no involved_classes", path.display()))?
                .iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect();
            Ok(Scenario {
                source_id: e["id"].as_str().unwrap_or("").to_string(),
                classes,
                config: e["initial_config"].clone(),
            })
        })
        .collect()
}

/// One executed, successful call of a sample.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The tool's index in the graph.
    pub tool: usize,
    /// The call string.
    pub call: String,
    /// The rendered result.
    pub result: String,
    /// Parameters filled from earlier outputs: (parameter, index of the producing call).
    pub fed: Vec<(String, usize)>,
    /// Parameters the user states: (parameter, value).
    pub literals: Vec<(String, PyValue)>,
    /// Fed parameters whose value was one choice among several observed ones: the query must
    /// name it.
    pub named: Vec<(String, PyValue)>,
    /// Whether the call changed the instances' state.
    pub mutates: bool,
    /// 1 + the deepest call feeding this one (1 for a call fed by none).
    pub depth: usize,
}

/// Why a call's result counts as a failure: an exception, an `error` field, or a false
/// `success`/`…status` flag.
pub fn failure(result: &str) -> Option<String> {
    if let Some(e) = result.strip_prefix(ERROR_PREFIX) {
        return Some(e.to_string());
    }
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(result) else {
        return None;
    };
    if let Some(e) = m.get("error") {
        return Some(e.as_str().map_or_else(|| e.to_string(), str::to_string));
    }
    m.iter()
        .find(|(k, v)| (*k == "success" || k.ends_with("status")) && **v == Value::Bool(false))
        .map(|(k, _)| format!("{k} is false"))
}

/// Output fields that list things to pick from (a folder's entries, users, stocks): a value
/// taken from one is always named in the query, unlike one derived from stated values (a
/// city's zipcode) or an opaque id the user cannot know.
const NAMEABLE: &[&str] = &[
    "current_directory_content",
    "user_list",
    "following_list",
    "stock_list",
    "watchlist",
    "airports",
    "username",
];

/// Output fields derived from values the query states (a city's zipcode, a company's symbol,
/// a computed number): never named in the query.
const DERIVED: &[&str] = &[
    "zipcode",
    "nearest_airport",
    "symbol",
    "result",
    "distance",
    "gallon",
    "liter",
    "access_token",
];

/// Literal values a user may state for a parameter (besides doc enums and the scenario's own
/// values).
const LITERALS: &[(&str, &str)] = &[
    (
        "file_name",
        r#"["notes.txt", "summary.md", "todo.txt", "draft_v2.txt"]"#,
    ),
    (
        "dir_name",
        r#"["archive_2024", "backup", "drafts", "temp"]"#,
    ),
    ("destination", r#"["backup_copy.txt", "notes_old.txt"]"#),
    (
        "name",
        r#"["notes", "report", "Apple", "Tesla", "Nvidia", "Microsoft"]"#,
    ),
    (
        "content",
        r#"["Quarterly numbers look good.", "Meeting moved to Friday.", "Remember to back up the files."]"#,
    ),
    (
        "pattern",
        r#"["report", "budget", "analysis", "data", "Year"]"#,
    ),
    (
        "keyword",
        r#"["report", "budget", "update", "meeting", "analysis"]"#,
    ),
    ("lines", "[2, 5]"),
    ("mode", r#"["l", "w", "c"]"#),
    ("human_readable", "[true]"),
    (
        "city",
        r#"["Rivermist", "Stonebrook", "Silverpine", "Oakendale", "San Francisco", "Crescent Hollow"]"#,
    ),
    (
        "location",
        r#"["Rivermist", "Stonebrook", "Silverpine", "Oakendale", "San Francisco", "Crescent Hollow"]"#,
    ),
    ("travel_from", r#"["SFO", "LAX", "RMS", "JFK"]"#),
    ("travel_to", r#"["LAX", "JFK", "ORD", "BOS", "SBK"]"#),
    (
        "travel_date",
        r#"["2024-11-15", "2024-12-01", "2024-12-24"]"#,
    ),
    ("travel_class", r#"["economy", "business", "first"]"#),
    ("card_number", r#"["4012888888881881", "5555555555554444"]"#),
    ("expiration_date", r#"["12/2028", "06/2027"]"#),
    ("cardholder_name", r#"["Alex Morgan", "Jamie Lee"]"#),
    ("card_verification_number", "[123, 456]"),
    ("client_id", r#"["client_520", "app_7731"]"#),
    ("client_secret", r#"["s3cr3t_key", "k9x2secret"]"#),
    ("refresh_token", r#"["rt_9083", "rt_4471"]"#),
    ("grant_type", r#"["read_write", "read"]"#),
    ("user_first_name", r#"["Alex", "Jamie"]"#),
    ("user_last_name", r#"["Morgan", "Lee"]"#),
    ("first_name", r#"["Alex", "Jamie"]"#),
    ("last_name", r#"["Morgan", "Lee"]"#),
    ("date_of_birth", r#"["1990-04-12", "1985-09-30"]"#),
    ("passport_number", r#"["P12345678", "P87654321"]"#),
    ("budget_limit", "[1000.0, 2500.0]"),
    ("insurance_type", r#"["comprehensive", "basic"]"#),
    ("insurance_cost", "[50.0, 120.0]"),
    ("base_currency", r#"["USD", "EUR", "GBP", "RMB"]"#),
    ("target_currency", r#"["USD", "EUR", "GBP", "RMB"]"#),
    ("price", "[150.0, 210.5, 99.99]"),
    ("min_price", "[50.0, 100.0]"),
    ("max_price", "[300.0, 500.0]"),
    ("threshold", "[2.0, 5.0]"),
    ("order_type", r#"["Buy", "Sell"]"#),
    ("sector", r#"["Technology", "Automobile"]"#),
    ("symbol", r#"["AAPL", "TSLA", "NVDA", "MSFT", "GOOG"]"#),
    ("stock", r#"["AAPL", "TSLA", "NVDA", "MSFT", "GOOG"]"#),
    (
        "title",
        r#"["Login page broken", "Refund request", "Flight delay"]"#,
    ),
    (
        "description",
        r#"["The page shows an error after login.", "Please process my refund."]"#,
    ),
    ("priority", "[1, 2, 3, 4, 5]"),
    ("status", r#"["Open", "Closed"]"#),
    (
        "resolution",
        r#"["Fixed after a restart.", "Refund issued."]"#,
    ),
    (
        "updates",
        r#"[{"priority": 2}, {"title": "Updated title"}, {"status": "In Progress"}]"#,
    ),
    ("tags", r##"[["#update"], ["#travel", "#fun"], []]"##),
    ("mentions", r#"[[], ["alex_m"]]"#),
    (
        "comment_content",
        r#"["Great point!", "Thanks for sharing."]"#,
    ),
    (
        "message",
        r#"["See you at 5.", "The report is ready.", "Please call me back."]"#,
    ),
    ("temperature", "[22.0, 25.0, 70.0]"),
    ("fanSpeed", "[30, 50]"),
    ("fuelAmount", "[10.0, 20.0]"),
    ("pedalPosition", "[1.0, 0.5]"),
    ("speed", "[60.0, 65.0]"),
    ("distanceToNextVehicle", "[100.0, 80.0]"),
    ("unlock", "[false, true]"),
    (
        "door",
        r#"[["driver", "passenger", "rear_left", "rear_right"], ["driver"]]"#,
    ),
    (
        "messages",
        r#"[["Check tire pressure"], ["Refuel soon", "Engine started"]]"#,
    ),
    ("numbers", "[[3.0, 5.0, 8.0], [10, 20, 30, 40], [2.5, 7.5]]"),
    (
        "unit_in",
        r#"["meter", "kilometer", "inch", "foot", "kilogram", "pound"]"#,
    ),
    (
        "unit_out",
        r#"["meter", "kilometer", "inch", "foot", "kilogram", "pound"]"#,
    ),
    ("precision", "[2, 4]"),
    ("decimal_places", "[1, 2]"),
    ("base", "[2.0, 10.0]"),
    ("exponent", "[2.0, 3.0]"),
    ("amount", "[100.0, 500.0, 10]"),
    ("a", "[12.0, 7.5, 100.0]"),
    ("b", "[3.0, 4.0, 2.5]"),
    ("number", "[16.0, 2.75, 81.0]"),
    ("value", "[10.0, 100.0, 3.5]"),
    ("part", "[25.0, 40.0]"),
    ("whole", "[200.0, 160.0]"),
    ("distance", "[120.0, 450.0]"),
    ("gallon", "[10.0, 30.0]"),
    ("liter", "[20.0, 40.0]"),
];

/// Scenario keys whose dict keys (`user_map`) or values (`user_map.values`) a parameter may take.
const SCENARIO_KEYS: &[(&str, &[&str])] = &[
    ("username", &["username"]),
    ("password", &["password"]),
    ("user", &["user_map"]),
    ("user_name", &["user_map"]),
    ("user_id", &["user_map.values"]),
    ("symbol", &["stocks", "watch_list"]),
    ("stock", &["stocks"]),
    ("username_to_follow", &["following_list"]),
];

/// Values of the scenario by key: for every key, its scalar values and the elements of its
/// lists; for a dict, its keys (under the key) and its scalar values (under `key.values`).
fn scenario_pool(v: &Value, out: &mut BTreeMap<String, Vec<Value>>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            match child {
                Value::Array(items) => {
                    let scalars = items.iter().filter(|i| !i.is_object() && !i.is_array());
                    out.entry(k.clone()).or_default().extend(scalars.cloned());
                    for i in items {
                        scenario_pool(i, out);
                    }
                }
                Value::Object(inner) => {
                    let keys = inner.keys().map(|x| Value::String(x.clone()));
                    out.entry(k.clone()).or_default().extend(keys);
                    let vals = inner.values().filter(|i| !i.is_object() && !i.is_array());
                    out.entry(format!("{k}.values"))
                        .or_default()
                        .extend(vals.cloned());
                    scenario_pool(child, out);
                }
                other => out.entry(k.clone()).or_default().push(other.clone()),
            }
        }
    }
}

/// Observed values of one output, by field: scalars, list elements, dict keys, recursively.
fn observe(field: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Array(items) => {
            for i in items {
                if i.is_object() || i.is_array() {
                    observe(field, i, out);
                } else {
                    out.push((field.to_string(), i.clone()));
                }
            }
        }
        Value::Object(m) => {
            for (k, child) in m {
                if !field.is_empty() {
                    out.push((field.to_string(), Value::String(k.clone())));
                }
                observe(k, child, out);
            }
        }
        Value::Null => {}
        other => {
            if !field.is_empty() {
                out.push((field.to_string(), other.clone()));
            }
        }
    }
}

/// The deepest nesting a sane state has (BFCL's file trees are a few levels deep; a cyclic one
/// is cut off far deeper).
const MAX_STATE_DEPTH: usize = 48;

/// The nesting depth of a JSON value.
fn json_depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Whether a JSON value fits a BFCL parameter type.
fn fits(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "integer" => v.is_i64(),
        "float" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "dict" => v.is_object(),
        _ => true,
    }
}

/// A call's value of a parameter: where it came from.
#[derive(Debug, Clone)]
enum Source {
    /// From the output of call `k` of the sample; whether the query must name the value (it
    /// was one among several, or picked from a listing).
    Fed(usize, bool),
    /// Stated by the user.
    Literal,
}

/// Why the sampler gave up on a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundReject {
    /// The target was not reached within the call budget.
    TargetUnreached,
}

/// The live state of one sample being synthesised: the executor, the successful calls so far
/// (state carries across rounds) and what they revealed.
pub struct SampleState<'g> {
    graph: &'g ApiGraph,
    scenario: Scenario,
    ex: Executor,
    calls: Vec<CallRecord>,
    scenario_values: BTreeMap<String, Vec<Value>>,
    /// Failed call attempts, by tool name (rejection statistics).
    pub failed_calls: BTreeMap<String, usize>,
}

impl std::fmt::Debug for SampleState<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleState")
            .field("scenario", &self.scenario.source_id)
            .field("calls", &self.calls.len())
            .finish()
    }
}

impl<'g> SampleState<'g> {
    /// Fresh instances of the scenario's classes.
    pub fn new(graph: &'g ApiGraph, scenario: &Scenario) -> Result<SampleState<'g>, String> {
        let mut scenario_values = BTreeMap::new();
        scenario_pool(&scenario.config, &mut scenario_values);
        Ok(SampleState {
            graph,
            ex: Executor::new(&scenario.classes, &scenario.config, false)?,
            scenario: scenario.clone(),
            calls: Vec::new(),
            scenario_values,
            failed_calls: BTreeMap::new(),
        })
    }

    /// The successful calls so far.
    pub fn calls(&self) -> &[CallRecord] {
        &self.calls
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The tools of the sample's classes (graph indices).
    pub fn tools(&self) -> Vec<usize> {
        let mut out: Vec<usize> = (0..self.graph.tools().len())
            .filter(|&t| {
                let spec = &self.graph.tools()[t];
                self.graph.find(&self.scenario.classes, &spec.name) == Some(t)
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// The tools called so far.
    pub fn called(&self) -> BTreeSet<usize> {
        self.calls.iter().map(|c| c.tool).collect()
    }

    /// Drops the calls after the first `n` and rebuilds the instances by replaying the rest.
    pub fn rollback(&mut self, n: usize) -> Result<(), String> {
        self.calls.truncate(n);
        self.rebuild()
    }

    fn rebuild(&mut self) -> Result<(), String> {
        self.ex = Executor::new(&self.scenario.classes, &self.scenario.config, false)?;
        for c in &self.calls {
            let r = self.ex.execute(&c.call);
            if r != c.result {
                return Err(format!(
                    "replaying {} gave {r:?}, not {:?}: the environment is not deterministic",
                    c.call, c.result
                ));
            }
        }
        Ok(())
    }

    /// Observed values of the sample's class `class`: (field, value, producing call).
    fn observed(&self, class: &str) -> Vec<(String, Value, usize)> {
        let mut out = Vec::new();
        for (k, c) in self.calls.iter().enumerate() {
            if self.graph.tools()[c.tool].class != class {
                continue;
            }
            if let Ok(v) = serde_json::from_str::<Value>(&c.result) {
                let mut vals = Vec::new();
                observe("", &v, &mut vals);
                out.extend(vals.into_iter().map(|(f, v)| (f, v, k)));
            }
        }
        out
    }

    /// The candidate values of parameter `p` of tool `t`.
    fn candidates(&self, t: usize, p: &ParamSpec) -> Vec<(Value, Source)> {
        let spec = &self.graph.tools()[t];
        let fields = feeds(&p.name);
        let mut fed: Vec<(Value, Source)> = Vec::new();
        for (f, v, k) in self.observed(&spec.class) {
            if fields.contains(&f.as_str()) {
                let v = if p.ty == "array" && !v.is_array() {
                    Value::Array(vec![v])
                } else {
                    v
                };
                if fits(&p.ty, &v) && !fed.iter().any(|(x, _)| *x == v) {
                    fed.push((v, Source::Fed(k, NAMEABLE.contains(&f.as_str()))));
                }
            }
        }
        // One value among several is named too, unless it follows from stated values (the
        // zipcodes of the two cities the query names).
        if fed.len() > 1 && !fields.iter().any(|f| DERIVED.contains(f)) {
            for (_, s) in &mut fed {
                *s = match s {
                    Source::Fed(k, _) => Source::Fed(*k, true),
                    Source::Literal => Source::Literal,
                };
            }
        }
        let prerequisite = self
            .graph
            .prerequisites(t)
            .iter()
            .any(|(name, _)| *name == p.name);
        if prerequisite {
            return fed;
        }
        let mut lit: Vec<Value> = if p.ty == "array" && !p.enum_values.is_empty() {
            // An array of enum members: all of them, or one.
            let mut v = vec![Value::Array(p.enum_values.clone())];
            v.extend(p.enum_values.iter().map(|e| Value::Array(vec![e.clone()])));
            v
        } else {
            p.enum_values.clone()
        };
        lit.retain(|v| fits(&p.ty, v));
        if lit.is_empty() {
            if let Some((_, keys)) = SCENARIO_KEYS.iter().find(|(n, _)| *n == p.name) {
                for key in *keys {
                    lit.extend(
                        self.scenario_values
                            .get(*key)
                            .into_iter()
                            .flatten()
                            .cloned(),
                    );
                }
            }
            if let Some((_, json)) = LITERALS.iter().find(|(n, _)| *n == p.name) {
                lit.extend(serde_json::from_str::<Vec<Value>>(json).unwrap_or_default());
            }
        }
        lit.retain(|v| fits(&p.ty, v));
        let mut out = fed;
        let fresh = is_fresh_param(&spec.name, &p.name);
        if out.is_empty() || fresh {
            out.extend(lit.into_iter().map(|v| (v, Source::Literal)));
        }
        out
    }

    /// Draws arguments for tool `t`; `None` when a required parameter has no candidate.
    fn draw_args(&self, t: usize, rng: &mut PyRandom) -> Option<Vec<(String, Value, Source)>> {
        let spec = &self.graph.tools()[t];
        let mut args = Vec::new();
        for p in &spec.params {
            // Optional lists are always given: BFCL's Python shares a mutable default list
            // between the checker's two instances (post_tweet's `mentions=[]`), so a call that
            // leaves one out can replay differently there.
            if !p.required && p.ty != "array" && rng.random() >= 0.25 {
                continue;
            }
            let cands = self.candidates(t, p);
            match rng.choice(cands.len()) {
                Some(i) => {
                    let (v, s) = cands[i].clone();
                    args.push((p.name.clone(), v, s));
                }
                None if p.required => return None,
                None => {}
            }
        }
        Some(args)
    }

    /// Tries tool `t` with up to `tries` argument draws; keeps the first call that succeeds.
    /// Failed attempts roll the instances back and are counted in [`Self::failed_calls`].
    pub fn try_tool(&mut self, t: usize, tries: usize, rng: &mut PyRandom) -> Result<bool, String> {
        let name = self.graph.tools()[t].name.clone();
        let mut seen: Vec<String> = Vec::new();
        for _ in 0..tries {
            let Some(args) = self.draw_args(t, rng) else {
                return Ok(false);
            };
            let rendered: Vec<String> = args
                .iter()
                .map(|(p, v, _)| format!("{p}={}", PyValue::from_json(v).py_repr()))
                .collect();
            let call = format!("{name}({})", rendered.join(", "));
            if seen.contains(&call) {
                continue;
            }
            seen.push(call.clone());
            let before = self.ex.snapshot();
            let result = self.ex.execute(&call);
            let after = self.ex.snapshot();
            let mutates = before
                .iter()
                .zip(&after)
                .any(|((_, x), (_, y))| !std::sync::Arc::ptr_eq(x, y) && x != y);
            // A directory moved or copied into itself makes a cyclic tree BFCL's Python
            // reference cannot even show: such a call counts as failed.
            let cyclic = self.graph.tools()[t].class == "GorillaFileSystem"
                && self
                    .ex
                    .snapshot()
                    .iter()
                    .any(|(_, s)| json_depth(s) > MAX_STATE_DEPTH);
            if cyclic || failure(&result).is_some() {
                *self.failed_calls.entry(name.clone()).or_default() += 1;
                self.rebuild()?;
                continue;
            }
            let mut fed = Vec::new();
            let mut literals = Vec::new();
            let mut named = Vec::new();
            for (p, v, s) in args {
                match s {
                    Source::Fed(k, many) => {
                        if many {
                            named.push((p.clone(), PyValue::from_json(&v)));
                        }
                        fed.push((p, k));
                    }
                    Source::Literal => literals.push((p, PyValue::from_json(&v))),
                }
            }
            let depth = 1 + fed
                .iter()
                .map(|(_, k)| self.calls[*k].depth)
                .max()
                .unwrap_or(0);
            self.calls.push(CallRecord {
                tool: t,
                call,
                result,
                fed,
                literals,
                named,
                mutates,
                depth,
            });
            return Ok(true);
        }
        Ok(false)
    }

    /// One round of directed sampling toward `target` (at most `max_calls` calls): the calls
    /// made (indices into [`Self::calls`]), or why the round failed (the instances are then
    /// rolled back to the round's start).
    pub fn sample_round(
        &mut self,
        target: usize,
        max_calls: usize,
        rng: &mut PyRandom,
    ) -> Result<Result<std::ops::Range<usize>, RoundReject>, String> {
        let start = self.calls.len();
        let dist = self.graph.distances_to(target);
        let tools = self.tools();
        let mut exhausted: BTreeSet<usize> = BTreeSet::new();
        let mut reached = false;
        while self.calls.len() - start < max_calls {
            let called = self.called();
            // A tool runs once per round, a direct producer of the target twice (two zipcodes
            // for one distance).
            let room = |t: usize| {
                let n = self.calls[start..].iter().filter(|c| c.tool == t).count();
                n < if dist[t] == Some(1) { 2 } else { 1 }
            };
            let legal: Vec<usize> = tools
                .iter()
                .copied()
                .filter(|&t| !exhausted.contains(&t) && room(t))
                .filter(|&t| self.graph.is_legal(t, &called))
                .collect();
            let choice = if reached {
                // The paper's first rule: the target was called, so a random legal tool, here
                // at most once and only sometimes, to end the round.
                if rng.random() >= 0.3 {
                    break;
                }
                rng.choice(legal.len()).map(|i| legal[i])
            } else if legal.contains(&target) {
                Some(target)
            } else {
                let best = legal.iter().filter_map(|&t| dist[t]).min();
                let near: Vec<usize> = legal
                    .iter()
                    .copied()
                    .filter(|&t| best.is_some() && dist[t] == best)
                    .collect();
                let pool = if near.is_empty() { &legal } else { &near };
                rng.choice(pool.len()).map(|i| pool[i])
            };
            let Some(t) = choice else { break };
            if self.try_tool(t, 4, rng)? {
                reached |= t == target;
                // The state changed: what failed before may work now.
                exhausted.clear();
            } else {
                exhausted.insert(t);
            }
        }
        if reached {
            Ok(Ok(start..self.calls.len()))
        } else {
            self.rollback(start)?;
            Ok(Err(RoundReject::TargetUnreached))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures() {
        assert!(failure("Error during execution: boom").is_some());
        assert!(failure("{\"error\": \"No such file\"}").is_some());
        assert!(failure("{\"login_status\": false, \"message\": \"x\"}").is_some());
        assert!(failure("{\"canDrive\": false}").is_none());
        assert!(failure("None").is_none());
        assert!(failure("{\"current_directory_content\": []}").is_none());
    }

    #[test]
    fn observes_nested_outputs() {
        let v: Value = serde_json::from_str(
            r#"{"credit_card_list": {"card_1": {"balance": 5.0}}, "user_list": ["Alice"],
                "user_tweets": [{"id": 3, "username": "bob"}]}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        observe("", &v, &mut out);
        let has = |f: &str, x: Value| out.iter().any(|(g, y)| g == f && *y == x);
        assert!(has("credit_card_list", Value::from("card_1")));
        assert!(has("balance", Value::from(5.0)));
        assert!(has("user_list", Value::from("Alice")));
        assert!(has("id", Value::from(3)));
        assert!(has("username", Value::from("bob")));
    }
}
