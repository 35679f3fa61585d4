//! # supo-synth
//!
//! FunReason-MT for Rust: hard multi-turn function-calling data from the live BFCL
//! environments of `supo-bfcl`, with the four roles played by labelled templates (offline) or by
//! an LLM behind an OpenAI-compatible server (`supo-agent`'s client). `supo synth` is its
//! command line. No features.
//!
//! The library's main use is [`Synthesizer::fill`], which `supo synth` and
//! `examples/template_samples.rs` call (`cargo run -p supo-synth --example template_samples`,
//! with `bfcl-eval` installed):
//!
//! ```no_run
//! # use std::path::Path;
//! # use supo_synth::{output::OutputDir, roles::TemplateModel, SynthOptions, Synthesizer};
//! # fn main() -> Result<(), String> {
//! # let options = SynthOptions { seed: 7, rounds: 3, max_calls: 6, noise: 0.3, k_max: 3,
//! #     miss_func: 0.1, miss_param: 0.1, attempts: 12, round_tries: 8 };
//! let synth = Synthesizer::from_bfcl(options)?; // BFCL's scenarios, from bfcl-eval
//! let mut out = OutputDir::open(Path::new("runs/synth"))?; // resumes what is there
//! synth.fill(&mut out, 10, &mut TemplateModel, |done| eprintln!("{done} samples"))?;
//! out.write_reports(synth.graph())?;
//! # Ok(()) }
//! ```
//!
#![warn(missing_docs)]
//! FunReason-MT data synthesis (arXiv 2510.24645 §4) on the BFCL multi-turn environments:
//!
//! 1. the environment–API graph ([`graph`]),
//! 2. directed sampling toward a target tool on live instances ([`sampler`]),
//! 3. advanced tool–query synthesis and 4. the guided iterative chain ([`chain`]) through the
//!    four roles ([`roles`]: an LLM over an OpenAI-compatible server ([`llm`]), or the labelled
//!    offline templates),
//! 5. multi-turn samples (rounds with state carried over, BFCL's missing-function and
//!    missing-parameter variants), and
//! 6. resumable output in OpenAI chat and BFCL formats with a statistics report ([`output`]).
//!
//! Sample `i` is drawn from a generator seeded by `(seed, i)` and from the tool coverage of
//! samples `0..i`, so a run is reproducible byte for byte and a resumed run writes what an
//! uninterrupted one would have.

pub mod chain;
pub mod graph;
pub mod llm;
pub mod output;
pub mod roles;
pub mod sampler;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value};

use self::chain::{run_round, ChainInput, RoleCounts, Turn, Variant};
use self::graph::ApiGraph;
use self::output::OutputDir;
use self::roles::{RoleModel, RoundContext, TraceStep};
use self::sampler::{RoundReject, SampleState, Scenario};
use supo_bfcl::checker::{tool_docs, CheckEntry};
use supo_bfcl::parse::{parse_call, Expr};
use supo_bfcl::pyrandom::PyRandom;

/// The settings of a synthesis run (all of them shape the samples; a resumed run must use the
/// same).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SynthOptions {
    /// The run's seed.
    pub seed: i64,
    /// Rounds (target tools) per sample.
    pub rounds: usize,
    /// The most calls the sampler makes in one round.
    pub max_calls: usize,
    /// Query noise in `[0, 1]`.
    pub noise: f64,
    /// `K_max`: reasoning attempts per round.
    pub k_max: usize,
    /// Probability that a round after the first is a missing-function round.
    pub miss_func: f64,
    /// Probability that a round after the first is a missing-parameter round.
    pub miss_param: f64,
    /// Sample attempts (scenario drawn anew) before synthesis gives up on a sample.
    pub attempts: usize,
    /// Targets tried for one round before the sample attempt is abandoned.
    pub round_tries: usize,
}

impl SynthOptions {
    /// Checks the ranges; the error names the option.
    pub fn validate(&self) -> Result<(), String> {
        if self.rounds == 0 {
            return Err("--rounds must be at least 1".into());
        }
        if self.max_calls == 0 {
            return Err("--max-calls must be at least 1".into());
        }
        if self.k_max == 0 {
            return Err("--k-max must be at least 1".into());
        }
        if self.attempts == 0 || self.round_tries == 0 {
            return Err("--attempts and --round-tries must be at least 1".into());
        }
        for (name, v) in [
            ("--noise", self.noise),
            ("--miss-func", self.miss_func),
            ("--miss-param", self.miss_param),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be in [0, 1], not {v}"));
            }
        }
        if self.miss_func + self.miss_param > 1.0 {
            return Err("--miss-func + --miss-param must not exceed 1".into());
        }
        Ok(())
    }
}

/// The id of sample `i`.
pub fn sample_id(i: usize) -> String {
    format!("funreason_mt_{i}")
}

/// The shared, read-only inputs of a run: the graph, its depths and the scenarios.
#[derive(Debug)]
pub struct Synthesizer {
    graph: ApiGraph,
    depths: Vec<usize>,
    scenarios: Vec<Scenario>,
    options: SynthOptions,
}

/// One finished sample: its output lines and its metadata (the statistics are built from the
/// metadata alone, so a resumed run recomputes them from the files).
#[derive(Debug, Clone)]
pub struct Sample {
    /// `bfcl_questions.jsonl` line.
    pub question: Value,
    /// `bfcl_possible_answers.jsonl` line.
    pub answer: Value,
    /// `replay_input.jsonl` line (`supo bfcl replay` input).
    pub replay: Value,
    /// `chat.jsonl` line (with the metadata under `metadata`).
    pub chat: Value,
}

/// Tool coverage of the earlier samples: tool index → calls.
pub type Coverage = BTreeMap<usize, usize>;

impl Synthesizer {
    /// The synthesizer over all eight BFCL classes, reading tool docs and scenarios from the
    /// installed `bfcl-eval`.
    pub fn from_bfcl(options: SynthOptions) -> Result<Synthesizer, String> {
        options.validate()?;
        let graph = ApiGraph::from_bfcl_docs(graph::CLASSES)?;
        let scenarios = sampler::load_scenarios()?;
        if scenarios.is_empty() {
            return Err("BFCL's multi_turn_base holds no scenarios".into());
        }
        Ok(Synthesizer {
            depths: graph.depths(),
            graph,
            scenarios,
            options,
        })
    }

    /// The graph.
    pub fn graph(&self) -> &ApiGraph {
        &self.graph
    }

    /// The options.
    pub fn options(&self) -> &SynthOptions {
        &self.options
    }

    /// The coverage the metadata of finished samples records (`tools_called`).
    pub fn coverage_of(&self, chats: &[Value]) -> Coverage {
        let mut cov = Coverage::new();
        for c in chats {
            for t in c["metadata"]["tools_called"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let id = t.as_str().unwrap_or("");
                if let Some((class, name)) = id.split_once('.') {
                    if let Some(i) = self.graph.index(class, name) {
                        *cov.entry(i).or_default() += 1;
                    }
                }
            }
        }
        cov
    }

    /// Picks a target: weight `(1 + depth)² / (1 + coverage)` among the sample's tools not
    /// targeted yet (and, for a missing-function round, not called yet).
    fn choose_target(
        &self,
        state: &SampleState<'_>,
        coverage: &Coverage,
        exclude: &BTreeSet<usize>,
        uncalled: bool,
        rng: &mut PyRandom,
    ) -> Option<usize> {
        let called = state.called();
        let cands: Vec<(usize, f64)> = state
            .tools()
            .into_iter()
            .filter(|t| !(exclude.contains(t) || (uncalled && called.contains(t))))
            .map(|t| {
                let cov = coverage.get(&t).copied().unwrap_or(0)
                    + state.calls().iter().filter(|c| c.tool == t).count();
                let hard = (1 + self.depths[t]) as f64;
                (t, hard * hard / (1 + cov) as f64)
            })
            .collect();
        let total: f64 = cands.iter().map(|(_, w)| w).sum();
        let mut x = rng.random() * total;
        for (t, w) in &cands {
            if x < *w {
                return Some(*t);
            }
            x -= w;
        }
        cands.last().map(|(t, _)| *t)
    }

    /// Synthesises samples into `out` until it holds `samples` of them, after the finished
    /// samples it already holds (a resumed run writes what an uninterrupted one would have);
    /// `on_sample` gets the folder's count after each new sample.
    pub fn fill(
        &self,
        out: &mut OutputDir,
        samples: usize,
        model: &mut dyn RoleModel,
        mut on_sample: impl FnMut(usize),
    ) -> Result<(), String> {
        let mut coverage = self.coverage_of(out.finished());
        for index in out.finished().len()..samples {
            let sample = self.sample(index, &coverage, model)?;
            for (tool, n) in self.coverage_of(std::slice::from_ref(&sample.chat)) {
                *coverage.entry(tool).or_default() += n;
            }
            out.append(sample)?;
            on_sample(index + 1);
        }
        Ok(())
    }

    /// Synthesises sample `index`, given the coverage of the samples before it.
    pub fn sample(
        &self,
        index: usize,
        coverage: &Coverage,
        model: &mut dyn RoleModel,
    ) -> Result<Sample, String> {
        let o = &self.options;
        let mut rng = PyRandom::new(o.seed.wrapping_mul(1_000_003).wrapping_add(index as i64));
        let mut rejections: BTreeMap<String, usize> = BTreeMap::new();
        let mut counts = RoleCounts::new();
        for _ in 0..o.attempts {
            let k = rng.choice(self.scenarios.len()).unwrap_or(0);
            let scenario = &self.scenarios[k];
            if let Some(s) = self.try_sample(
                index,
                scenario,
                coverage,
                model,
                &mut rng,
                &mut rejections,
                &mut counts,
            )? {
                return Ok(s);
            }
            *rejections.entry("sample_abandoned".into()).or_default() += 1;
        }
        Err(format!(
            "no sample {index} after {} attempts (rejections: {rejections:?}; role requests: \
             {counts:?})",
            o.attempts
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn try_sample(
        &self,
        index: usize,
        scenario: &Scenario,
        coverage: &Coverage,
        model: &mut dyn RoleModel,
        rng: &mut PyRandom,
        rejections: &mut BTreeMap<String, usize>,
        counts: &mut RoleCounts,
    ) -> Result<Option<Sample>, String> {
        let o = &self.options;
        let graph = &self.graph;
        let mut state = SampleState::new(graph, scenario)?;
        let entry = CheckEntry {
            id: sample_id(index),
            involved_classes: scenario.classes.clone(),
            initial_config: scenario.config.clone(),
        };
        let mut turns: Vec<Turn> = Vec::new();
        let mut rounds: Vec<Value> = Vec::new();
        let mut targeted: BTreeSet<usize> = BTreeSet::new();
        let mut variant_used = false;
        for r in 0..o.rounds {
            let u = rng.random();
            let wants_func = r > 0 && !variant_used && u < o.miss_func;
            let wants_param =
                r > 0 && !variant_used && !wants_func && u < o.miss_func + o.miss_param;
            let mut done = false;
            for _ in 0..o.round_tries {
                let Some(target) = self.choose_target(&state, coverage, &targeted, wants_func, rng)
                else {
                    break;
                };
                targeted.insert(target);
                let start = state.calls().len();
                let range = match state.sample_round(target, o.max_calls, rng)? {
                    Ok(range) => range,
                    Err(RoundReject::TargetUnreached) => {
                        *rejections.entry("target_unreached".into()).or_default() += 1;
                        continue;
                    }
                };
                let trace: Vec<TraceStep> = state.calls()[range.clone()]
                    .iter()
                    .map(|c| TraceStep {
                        tool: graph.tools()[c.tool].name.clone(),
                        description: graph.tools()[c.tool].description.clone(),
                        call: c.call.clone(),
                        result: c.result.clone(),
                        fed: c
                            .fed
                            .iter()
                            .map(|(p, k)| (p.clone(), k.checked_sub(start)))
                            .collect(),
                        literals: c.literals.clone(),
                        named: c.named.clone(),
                        mutates: c.mutates,
                    })
                    .collect();
                let mut variant = Variant::Base;
                let mut withheld = None;
                if wants_func {
                    variant = Variant::MissFunc {
                        tool: graph.tools()[target].name.clone(),
                    };
                } else if wants_param {
                    let lits: Vec<_> = trace
                        .iter()
                        .flat_map(|s| s.literals.iter())
                        .filter(|(_, v)| v.as_str().is_some_and(|s| s.len() >= 3))
                        .cloned()
                        .collect();
                    if let Some(i) = rng.choice(lits.len()) {
                        let (p, v) = lits[i].clone();
                        variant = Variant::MissParam {
                            param: p.clone(),
                            value: v.py_str(),
                        };
                        withheld = Some((p, v));
                    }
                }
                let ctx = RoundContext {
                    target: graph.tools()[target].name.clone(),
                    steps: dependency_steps(&trace),
                    trace,
                    withheld,
                    noise: o.noise,
                    seed: o
                        .seed
                        .wrapping_mul(7919)
                        .wrapping_add((index * 64 + r) as i64),
                };
                let used: BTreeSet<&str> = ctx.trace.iter().map(|s| s.tool.as_str()).collect();
                let docs: Vec<Value> = graph
                    .tools()
                    .iter()
                    .filter(|t| {
                        used.contains(t.name.as_str())
                            && graph.find(&scenario.classes, &t.name)
                                == graph.index(&t.class, &t.name)
                    })
                    .map(|t| t.doc.clone())
                    .collect();
                let prior: Vec<Vec<String>> =
                    turns.iter().map(|t| t.ground_truth.clone()).collect();
                let input = ChainInput {
                    entry: &entry,
                    prior: &prior,
                    tool_docs: &docs,
                    variant: variant.clone(),
                    k_max: o.k_max,
                };
                match run_round(model, &ctx, &input, counts)? {
                    Ok(outcome) => {
                        rounds.push(json!({
                            "target": graph.tools()[target].name,
                            "variant": variant,
                            "advanced_tool": outcome.advanced_tool,
                            "query": outcome.query,
                            "attempts": outcome.attempts,
                            "hints": outcome.hints,
                            "calls": range.len(),
                        }));
                        turns.extend(outcome.turns);
                        variant_used |= variant != Variant::Base;
                        done = true;
                        break;
                    }
                    Err(reason) => {
                        *rejections.entry(reason.as_str().into()).or_default() += 1;
                        state.rollback(start)?;
                    }
                }
            }
            if !done {
                return Ok(None);
            }
        }
        let failed: usize = state.failed_calls.values().sum();
        if failed > 0 {
            rejections.insert("failed_call_attempts".into(), failed);
        }
        self.finish(
            index,
            &state,
            &turns,
            rounds,
            rejections,
            counts,
            model.mode(),
        )
        .map(Some)
    }

    /// Builds the output lines of a finished sample.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        index: usize,
        state: &SampleState<'_>,
        turns: &[Turn],
        rounds: Vec<Value>,
        rejections: &BTreeMap<String, usize>,
        counts: &RoleCounts,
        mode: &str,
    ) -> Result<Sample, String> {
        let graph = &self.graph;
        let scenario = state.scenario();
        let id = sample_id(index);
        let mut missed = serde_json::Map::new();
        for (t, turn) in turns.iter().enumerate() {
            if !turn.added_tools.is_empty() {
                missed.insert(t.to_string(), json!(turn.added_tools));
            }
        }
        let missed = if missed.is_empty() {
            Value::Null
        } else {
            Value::Object(missed)
        };
        let gt: Vec<Vec<String>> = turns.iter().map(|t| t.ground_truth.clone()).collect();
        let mut path: Vec<String> = Vec::new();
        for c in state.calls() {
            let t = &graph.tools()[c.tool];
            let p = format!("{}.{}", t.class, t.name);
            if !path.contains(&p) {
                path.push(p);
            }
        }
        let mut question = json!({
            "id": id,
            "question": turns.iter().map(|t| match &t.user {
                Some(u) => json!([{"role": "user", "content": u}]),
                None => json!([]),
            }).collect::<Vec<_>>(),
            "initial_config": scenario.config,
            "path": path,
            "involved_classes": scenario.classes,
        });
        if !missed.is_null() {
            question["missed_function"] = missed.clone();
        }
        let answer = json!({"id": id, "ground_truth": gt});
        let replay = json!({
            "id": id, "involved_classes": scenario.classes, "initial_config": scenario.config,
            "long_context": false, "turns": gt,
        });
        let (docs, added) = tool_docs(&scenario.classes, &missed)?;
        let mut messages = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
        for (t, turn) in turns.iter().enumerate() {
            let user = turn
                .user
                .clone()
                .unwrap_or_else(|| supo_bfcl::checker::ADDITIONAL_FUNCTION_PROMPT.to_string());
            messages.push(json!({"role": "user", "content": user}));
            for (s, step) in turn.steps.iter().enumerate() {
                if let Some(a) = &step.answer {
                    messages.push(json!({"role": "assistant",
                        "content": format!("<think>{}</think><answer>{a}</answer>", step.think),
                        "reasoning_content": step.think}));
                    continue;
                }
                let ids: Vec<String> = (0..step.calls.len())
                    .map(|k| format!("call_{t}_{s}_{k}"))
                    .collect();
                let tool_calls: Vec<Value> = step
                    .calls
                    .iter()
                    .zip(&ids)
                    .map(|(c, cid)| {
                        let (name, args) = self.call_json(&scenario.classes, c);
                        json!({"id": cid, "type": "function",
                               "function": {"name": name, "arguments": args.to_string()}})
                    })
                    .collect();
                messages.push(json!({"role": "assistant",
                    "content": format!("<think>{}</think><tool_call>[{}]</tool_call>",
                                       step.think, step.calls.join(", ")),
                    "reasoning_content": step.think, "tool_calls": tool_calls}));
                for ((c, r), cid) in step.calls.iter().zip(&step.results).zip(&ids) {
                    let (name, _) = self.call_json(&scenario.classes, c);
                    messages.push(
                        json!({"role": "tool", "tool_call_id": cid, "name": name, "content": r}),
                    );
                }
            }
        }
        let tools_called: Vec<String> = state
            .calls()
            .iter()
            .map(|c| {
                let t = &graph.tools()[c.tool];
                format!("{}.{}", t.class, t.name)
            })
            .collect();
        let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
        for (j, c) in state.calls().iter().enumerate() {
            for (_, k) in &c.fed {
                edges.insert((tools_called[*k].clone(), tools_called[j].clone()));
            }
        }
        let max_depth = state.calls().iter().map(|c| c.depth).max().unwrap_or(0);
        let metadata = json!({
            "mode": mode,
            "index": index,
            "options": self.options,
            "scenario": scenario.source_id,
            "rounds": rounds,
            "turns": turns.len(),
            "calls": state.calls().len(),
            "max_depth": max_depth,
            "tools_called": tools_called,
            "edges": edges.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
            "rejections": rejections,
            "role_requests": counts,
        });
        let chat = json!({
            "id": id,
            "messages": messages,
            "tools": docs.iter().map(openai_tool).collect::<Vec<_>>(),
            "added_tools": added.iter().map(|(t, d)| (t.to_string(),
                d.iter().map(openai_tool).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>(),
            "metadata": metadata,
        });
        Ok(Sample {
            question,
            answer,
            replay,
            chat,
        })
    }

    /// A call string as (function name, JSON arguments by parameter name).
    fn call_json(&self, classes: &[String], call: &str) -> (String, Value) {
        let Ok(c) = parse_call(call) else {
            return (call.to_string(), json!({}));
        };
        let spec = self
            .graph
            .find(classes, &c.name)
            .map(|i| &self.graph.tools()[i]);
        let mut args = serde_json::Map::new();
        for (k, a) in c.args.iter().enumerate() {
            if let (Expr::Value(v), Some(p)) = (a, spec.and_then(|s| s.params.get(k))) {
                args.insert(p.name.clone(), v.to_json());
            }
        }
        for (k, a) in &c.kwargs {
            if let Expr::Value(v) = a {
                args.insert(k.clone(), v.to_json());
            }
        }
        (c.name, Value::Object(args))
    }
}

/// The system message of the chat samples.
pub const SYSTEM_PROMPT: &str = "You are an assistant that solves the user's requests with \
    the tools provided. Think inside <think>…</think>, then either call tools as \
    <tool_call>[f(a=1), g(b='x')]</tool_call> or, when the request is done or cannot be done, \
    reply <answer>…</answer>.";

/// Cuts a round's calls into the steps `A_R` takes: a new step starts when a call needs the
/// output of a call in the current step.
pub fn dependency_steps(trace: &[TraceStep]) -> Vec<Vec<String>> {
    let mut steps: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for (i, s) in trace.iter().enumerate() {
        let needs_current = s
            .fed
            .iter()
            .any(|(_, k)| k.is_some_and(|k| current.contains(&k)));
        if needs_current {
            steps.push(current.iter().map(|&k| trace[k].call.clone()).collect());
            current.clear();
        }
        current.push(i);
    }
    if !current.is_empty() {
        steps.push(current.iter().map(|&k| trace[k].call.clone()).collect());
    }
    steps
}

/// A BFCL tool doc as an OpenAI tool (`dict` → `object`, `float` → `number`, `tuple` →
/// `array`, `any` untyped).
pub fn openai_tool(doc: &Value) -> Value {
    fn convert(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut out = serde_json::Map::new();
                for (k, x) in m {
                    if k == "type" {
                        match x.as_str() {
                            Some("dict") => out.insert(k.clone(), json!("object")),
                            Some("float") => out.insert(k.clone(), json!("number")),
                            Some("tuple") => out.insert(k.clone(), json!("array")),
                            Some("any") => None,
                            _ => out.insert(k.clone(), x.clone()),
                        };
                    } else {
                        out.insert(k.clone(), convert(x));
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(convert).collect()),
            other => other.clone(),
        }
    }
    json!({"type": "function", "function": {
        "name": doc["name"], "description": doc["description"],
        "parameters": convert(&doc["parameters"]),
    }})
}
