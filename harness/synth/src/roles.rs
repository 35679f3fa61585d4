//! The four LLM roles of FunReason-MT — tooling `A_T`, querying `A_Q`, reasoning `A_R`,
//! critiquing `A_C` — behind one interface ([`RoleModel`]: chat messages in, text out), and the
//! offline template implementation ([`TemplateModel`], labelled `"mode": "template"` in every
//! output). The prompts are built here; the pipeline parses the replies of both
//! implementations the same way.

use serde::Serialize;

use supo_bfcl::checker::Verdict;
use supo_bfcl::pyrandom::PyRandom;
use supo_bfcl::value::PyValue;

/// A role of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Role {
    /// `A_T`: abstracts a round's trace into one advanced tool.
    Tooling,
    /// `A_Q`: writes the hard query for the advanced tool.
    Querying,
    /// `A_R`: reasons and calls the primitive tools.
    Reasoning,
    /// `A_C`: turns a failed verdict into a hint.
    Critiquing,
}

impl Role {
    /// The paper's name of the role (`A_T`, …).
    pub fn paper_name(self) -> &'static str {
        match self {
            Role::Tooling => "A_T",
            Role::Querying => "A_Q",
            Role::Reasoning => "A_R",
            Role::Critiquing => "A_C",
        }
    }
}

/// A chat message (`system`, `user` or `assistant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The speaker.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message from `role`.
    pub fn new(role: &str, content: impl Into<String>) -> Message {
        Message {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// One call of a round's trace, as the roles see it.
#[derive(Debug, Clone)]
pub struct TraceStep {
    /// The tool name.
    pub tool: String,
    /// The tool's description.
    pub description: String,
    /// The call string.
    pub call: String,
    /// Its rendered result.
    pub result: String,
    /// Parameters fed by earlier calls: (parameter, index of the feeding step in this round,
    /// or `None` when an earlier turn fed it).
    pub fed: Vec<(String, Option<usize>)>,
    /// Parameters the user states: (parameter, value).
    pub literals: Vec<(String, PyValue)>,
    /// Fed parameters whose value was a choice among several: the query names them.
    pub named: Vec<(String, PyValue)>,
    /// Whether the call changed the state (such a step is never left implicit).
    pub mutates: bool,
}

/// What the roles know about the round being synthesised. The LLM implementation reads only the
/// messages; the template implementation builds its text from this structured context.
#[derive(Debug, Clone)]
pub struct RoundContext {
    /// The target tool's name.
    pub target: String,
    /// The round's trace `(C_1, E_1, …, C_M, E_M)`; its last call is the target's.
    pub trace: Vec<TraceStep>,
    /// The call strings the reasoning role emits at each step (the trace cut where a call
    /// needs the output of a call of the same step).
    pub steps: Vec<Vec<String>>,
    /// A parameter value the query must leave out (missing-parameter variant).
    pub withheld: Option<(String, PyValue)>,
    /// Difficulty noise in `[0, 1]`: distracting details in the query.
    pub noise: f64,
    /// Seed for the template's phrasing choices.
    pub seed: i64,
}

/// One request to a role: the messages, and the structured context behind them.
#[derive(Debug, Clone)]
pub struct RoleRequest<'a> {
    /// The role asked.
    pub role: Role,
    /// The chat messages (system prompt first).
    pub messages: Vec<Message>,
    /// The round.
    pub context: &'a RoundContext,
    /// For `A_R`: how many steps it took so far in this attempt.
    pub step: usize,
    /// For `A_C`: the verdict to explain.
    pub verdict: Option<&'a Verdict>,
}

/// The interface of the four roles: messages in, text out.
pub trait RoleModel {
    /// `"template"` or `"llm"`, written into every output.
    fn mode(&self) -> &'static str;
    /// The role's reply to `request`, or why none came.
    fn complete(&mut self, request: &RoleRequest<'_>) -> Result<String, String>;
}

/// The offline template implementation of the four roles: deterministic text built from the
/// round's trace. Its `A_R` writes the ground-truth calls, so it never needs `A_C`; its output is
/// marked `"mode": "template"`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TemplateModel;

impl RoleModel for TemplateModel {
    fn mode(&self) -> &'static str {
        "template"
    }

    fn complete(&mut self, request: &RoleRequest<'_>) -> Result<String, String> {
        let ctx = request.context;
        Ok(match request.role {
            Role::Tooling => template_advanced_tool(ctx).to_string(),
            Role::Querying => template_query(ctx),
            Role::Reasoning => template_reasoning(ctx, request.step),
            Role::Critiquing => template_hint(ctx, request.verdict),
        })
    }
}

/// The text of a tool description as an instruction, without its final period.
fn task_phrase(description: &str) -> String {
    let first = description.split(". ").next().unwrap_or(description);
    let first = first.trim().trim_end_matches('.');
    let mut chars = first.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether step `i` of the trace only prepares a later step (a read-only call whose output
/// feeds one): such steps stay implicit in the query.
fn is_feeder(ctx: &RoundContext, i: usize) -> bool {
    !ctx.trace[i].mutates
        && ctx.trace[i + 1..]
            .iter()
            .any(|s| s.fed.iter().any(|(_, k)| *k == Some(i)))
}

/// The literals a step needs, its own and those of the implicit steps feeding it.
fn needed_literals(ctx: &RoundContext, i: usize, out: &mut Vec<(String, PyValue)>) {
    for (_, k) in &ctx.trace[i].fed {
        if let Some(k) = k.filter(|&k| is_feeder(ctx, k)) {
            needed_literals(ctx, k, out);
        }
    }
    for l in ctx.trace[i].literals.iter().chain(&ctx.trace[i].named) {
        if !out.contains(l) {
            out.push(l.clone());
        }
    }
}

/// `A_T` in template mode: the round's trace as one composite tool whose parameters are the
/// user-stated values and whose description lists the sub-tools and their dependencies.
pub fn template_advanced_tool(ctx: &RoundContext) -> serde_json::Value {
    let target = &ctx.target;
    let mut props = serde_json::Map::new();
    let mut lines = Vec::new();
    for (i, s) in ctx.trace.iter().enumerate() {
        let mut args = Vec::new();
        for (p, v) in &s.literals {
            let mut key = p.clone();
            let mut n = 2;
            while props.contains_key(&key) {
                key = format!("{p}_{n}");
                n += 1;
            }
            props.insert(
                key.clone(),
                serde_json::json!({"type": json_type(v), "description": format!("{p} of {}", s.tool)}),
            );
            args.push(format!("{p}=<{key}>"));
        }
        for (p, k) in &s.fed {
            args.push(match k {
                Some(k) => format!("{p}=<output of step {}>", k + 1),
                None => format!("{p}=<from an earlier turn>"),
            });
        }
        lines.push(format!("{}. {}({})", i + 1, s.tool, args.join(", ")));
    }
    let required: Vec<&String> = props.keys().collect();
    let description = format!(
        "{} Wraps: {}",
        ctx.trace
            .iter()
            .find(|s| s.tool == ctx.target)
            .map_or("", |s| s.description.as_str()),
        lines.join("; ")
    );
    serde_json::json!({
        "name": format!("{target}_adv"),
        "description": description,
        "parameters": {"type": "object", "properties": props, "required": required},
    })
}

fn json_type(v: &PyValue) -> &'static str {
    match v {
        PyValue::Bool(_) => "boolean",
        PyValue::Int(_) => "integer",
        PyValue::Float(_) => "number",
        PyValue::List(_) | PyValue::Tuple(_) | PyValue::Set(_) => "array",
        PyValue::Dict(_) => "object",
        _ => "string",
    }
}

/// Distracting sentences the query's noise draws from.
const DISTRACTORS: &[&str] = &[
    "I have been putting this off all week.",
    "My manager asked about it this morning.",
    "It is raining here, so I am staying in today.",
    "Last time this took me far too long.",
    "Ignore the notes I mentioned yesterday, they are unrelated.",
];

/// `A_Q` in template mode: the explicit steps as instructions, the implicit (feeder) steps left
/// out, the user-stated values given, the withheld value (missing-parameter variant) omitted,
/// and `noise` distracting sentences.
pub fn template_query(ctx: &RoundContext) -> String {
    let mut rng = PyRandom::new(ctx.seed);
    let mut parts = Vec::new();
    for i in 0..ctx.trace.len() {
        if is_feeder(ctx, i) && i + 1 < ctx.trace.len() {
            continue;
        }
        let mut lits = Vec::new();
        needed_literals(ctx, i, &mut lits);
        let shown: Vec<String> = lits
            .iter()
            .filter(|l| ctx.withheld.as_ref() != Some(*l))
            .map(|(p, v)| format!("{} {}", p.replace('_', " "), v.py_repr()))
            .collect();
        let mut text = task_phrase(&ctx.trace[i].description);
        if !shown.is_empty() {
            text.push_str(&format!(" (using {})", shown.join(", ")));
        }
        parts.push(text);
    }
    let leads = ["Please", "Could you", "I need you to"];
    let lead = leads[rng.choice(leads.len()).unwrap_or(0)];
    let mut query = format!("{lead} {}.", parts.join(", then "));
    if lead == "Could you" {
        query.pop();
        query.push('?');
    }
    for d in DISTRACTORS {
        if rng.random() < ctx.noise / 2.0 {
            query = format!("{d} {query}");
        }
    }
    query
}

/// `A_R` in template mode: step `step` of the ground truth with a short reasoning, then the
/// answer once all steps are out.
pub fn template_reasoning(ctx: &RoundContext, step: usize) -> String {
    match ctx.steps.get(step) {
        Some(calls) => {
            let mut why = Vec::new();
            for c in calls {
                let s = ctx.trace.iter().find(|s| s.call == *c);
                match s {
                    Some(s) if !s.fed.is_empty() => why.push(format!(
                        "{} needs {} from what I already know",
                        s.tool,
                        s.fed
                            .iter()
                            .map(|(p, _)| p.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                    Some(s) => why.push(format!("I can call {} directly", s.tool)),
                    None => {}
                }
            }
            format!(
                "<think>Step {}: {}.</think><tool_call>[{}]</tool_call>",
                step + 1,
                why.join("; "),
                calls.join(", ")
            )
        }
        None => {
            let last = ctx.trace.last().map_or("", |s| s.result.as_str());
            format!(
                "<think>All the needed calls succeeded.</think><answer>Done. The last result \
                 was: {last}</answer>"
            )
        }
    }
}

/// `A_C` in template mode: the verdict's error, and the first step that should have been taken.
pub fn template_hint(ctx: &RoundContext, verdict: Option<&Verdict>) -> String {
    let what = verdict
        .and_then(|v| v.error_message.clone())
        .unwrap_or_else(|| "the calls did not pass the check".to_string());
    let first = ctx.steps.first().and_then(|s| s.first()).cloned();
    match first {
        Some(c) => format!("{what} Start with {c} and follow the dependencies step by step."),
        None => what,
    }
}

/// The prompts of the LLM roles.
pub mod prompts {
    use super::{Message, RoundContext};

    /// `A_T`'s messages: the trace, asking for one composite tool as JSON.
    pub fn tooling(ctx: &RoundContext) -> Vec<Message> {
        let trace: Vec<String> = ctx
            .trace
            .iter()
            .enumerate()
            .map(|(i, s)| format!("C_{}: {}\nE_{}: {}", i + 1, s.call, i + 1, s.result))
            .collect();
        vec![
            Message::new(
                "system",
                "You are the tooling agent A_T of FunReason-MT. Abstract a trace of tool calls \
                 into one advanced tool that hides the intermediate steps: its parameters are \
                 only the values a user would state, its description names the sub-tools and \
                 how their outputs feed each other. Reply with one JSON object {\"name\": …, \
                 \"description\": …, \"parameters\": {JSON schema}} and nothing else.",
            ),
            Message::new("user", format!("Trace:\n{}", trace.join("\n"))),
        ]
    }

    /// `A_Q`'s messages: the advanced tool and its call, asking for a hard query.
    pub fn querying(ctx: &RoundContext, advanced: &str) -> Vec<Message> {
        let values: Vec<String> = ctx
            .trace
            .iter()
            .flat_map(|s| s.literals.iter().chain(&s.named))
            .filter(|l| ctx.withheld.as_ref() != Some(*l))
            .map(|(p, v)| format!("{p}={}", v.py_repr()))
            .collect();
        let mut sys = String::from(
            "You are the querying agent A_Q of FunReason-MT. Write the request a user would \
             type so that fulfilling it needs the advanced tool below. Leave the intermediate \
             steps implicit, but state every value listed. Reply with the request only.",
        );
        if let Some((p, v)) = &ctx.withheld {
            sys.push_str(&format!(
                " Do not mention the {p} ({}) at all: the user forgets it.",
                v.py_repr()
            ));
        }
        if ctx.noise > 0.0 {
            sys.push_str(&format!(
                " Add about {} irrelevant detail(s) to make it harder.",
                (ctx.noise * 3.0).round()
            ));
        }
        vec![
            Message::new("system", sys),
            Message::new(
                "user",
                format!("Advanced tool: {advanced}\nValues: {}", values.join(", ")),
            ),
        ]
    }

    /// `A_R`'s system prompt: the primitive tools, the advanced tool, the output format and
    /// the critic's hints so far.
    pub fn reasoning_system(
        tools: &[serde_json::Value],
        advanced: &str,
        hints: &[String],
    ) -> String {
        let docs: Vec<String> = tools.iter().map(|t| t.to_string()).collect();
        let mut sys = format!(
            "You are the reasoning agent A_R of FunReason-MT. Solve the user's request with \
             these tools:\n{}\nThe request is the job of this composite tool: {advanced}\n\
             Each reply is either <think>your reasoning</think><tool_call>[f(a=1), \
             g(b='x')]</tool_call> (Python call syntax; the results come back as the next \
             message), or, when everything is done, <think>…</think><answer>…</answer>.",
            docs.join("\n")
        );
        for h in hints {
            sys.push_str(&format!("\nHint from a reviewer of your last attempt: {h}"));
        }
        sys
    }

    /// `A_C`'s messages: the query, the calls made, the verdict and the expected trace.
    pub fn critiquing(
        ctx: &RoundContext,
        query: &str,
        made: &[Vec<String>],
        problem: &str,
    ) -> Vec<Message> {
        let expected: Vec<&str> = ctx.trace.iter().map(|s| s.call.as_str()).collect();
        vec![
            Message::new(
                "system",
                "You are the critiquing agent A_C of FunReason-MT. A solver's tool calls failed \
                 verification. Write one short, targeted hint that helps it fix the mistake, \
                 without quoting the expected calls verbatim.",
            ),
            Message::new(
                "user",
                format!(
                    "Request: {query}\nSolver's calls: {made:?}\nVerification: {problem}\n\
                     Expected calls: {expected:?}"
                ),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RoundContext {
        let step = |tool: &str,
                    desc: &str,
                    call: &str,
                    fed: Vec<(String, Option<usize>)>,
                    lit: Vec<(String, PyValue)>| TraceStep {
            tool: tool.into(),
            description: desc.into(),
            call: call.into(),
            result: "{}".into(),
            fed,
            literals: lit,
            named: vec![],
            mutates: false,
        };
        RoundContext {
            target: "estimate_distance".into(),
            trace: vec![
                step(
                    "get_zipcode_based_on_city",
                    "Get the zipcode of a city.",
                    "get_zipcode_based_on_city(city='Rivermist')",
                    vec![],
                    vec![("city".into(), PyValue::str("Rivermist"))],
                ),
                step(
                    "get_zipcode_based_on_city",
                    "Get the zipcode of a city.",
                    "get_zipcode_based_on_city(city='Stonebrook')",
                    vec![],
                    vec![("city".into(), PyValue::str("Stonebrook"))],
                ),
                step(
                    "estimate_distance",
                    "Estimate the distance between two cities.",
                    "estimate_distance(cityA='83214', cityB='74532')",
                    vec![("cityA".into(), Some(0)), ("cityB".into(), Some(1))],
                    vec![],
                ),
            ],
            steps: vec![],
            withheld: None,
            noise: 0.0,
            seed: 3,
        }
    }

    #[test]
    fn query_hides_prerequisites() {
        let c = ctx();
        let q = template_query(&c);
        assert!(
            q.contains("estimate the distance between two cities"),
            "{q}"
        );
        assert!(
            q.contains("'Rivermist'") && q.contains("'Stonebrook'"),
            "{q}"
        );
        assert!(!q.contains("zipcode"), "{q}");
        let mut w = c.clone();
        w.withheld = Some(("city".into(), PyValue::str("Stonebrook")));
        assert!(!template_query(&w).contains("Stonebrook"));
        let tool = template_advanced_tool(&c);
        assert_eq!(tool["name"], "estimate_distance_adv");
        assert!(tool["parameters"]["properties"]["city_2"].is_object());
        assert!(tool["description"]
            .as_str()
            .unwrap()
            .contains("estimate_distance(cityA=<output of step 1>"));
    }
}
