//! Advanced tool–query synthesis and the guided iterative chain (FunReason-MT §4.2–4.3): `A_T`
//! abstracts the round's trace into an advanced tool, `A_Q` writes the hard query, `A_R` reasons
//! and calls the primitive tools on live instances, the BFCL checker validates the calls against
//! the round's ground truth, and on a failure `A_C`'s hint is appended and `A_R` tries again, up
//! to `K_max` times.

use std::collections::BTreeMap;

use serde::Serialize;

use super::roles::{
    prompts, template_advanced_tool, Message, Role, RoleModel, RoleRequest, RoundContext,
};
use supo_bfcl::checker::{check_entry, CheckEntry, Verdict, ADDITIONAL_FUNCTION_PROMPT};
use supo_bfcl::parse::{parse_expr, Call, Expr};
use supo_bfcl::replay::Executor;
use supo_bfcl::value::PyValue;

/// BFCL's turn variants a round may take.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// One turn: query, calls.
    Base,
    /// The target tool is withheld: the assistant says it cannot, then BFCL adds the tool
    /// (an empty question turn) and the calls follow.
    MissFunc {
        /// The withheld tool.
        tool: String,
    },
    /// The query lacks a parameter: the assistant asks, the user gives it, the calls follow.
    MissParam {
        /// The parameter left out.
        param: String,
        /// Its value, given in the follow-up turn.
        value: String,
    },
}

/// One step of `A_R`: its reply, the calls it made and their results.
#[derive(Debug, Clone, Serialize)]
pub struct AgentStep {
    /// The reasoning (`<think>` text).
    pub think: String,
    /// The call strings (empty for the final answer).
    pub calls: Vec<String>,
    /// The rendered results of the calls.
    pub results: Vec<String>,
    /// The final answer (`<answer>` text), on the last step.
    pub answer: Option<String>,
}

/// One BFCL turn produced by a round.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    /// The user message (`None` for BFCL's empty turn where withheld tools are added).
    pub user: Option<String>,
    /// The ground-truth calls of the turn.
    pub ground_truth: Vec<String>,
    /// What the assistant does: its steps.
    pub steps: Vec<AgentStep>,
    /// Tools added at this turn (missing-function variant).
    pub added_tools: Vec<String>,
}

/// A round that passed the chain.
#[derive(Debug, Clone)]
pub struct RoundOutcome {
    /// `A_T`'s advanced tool.
    pub advanced_tool: serde_json::Value,
    /// `A_Q`'s query.
    pub query: String,
    /// The turns (one, or two for a variant).
    pub turns: Vec<Turn>,
    /// `A_R` attempts used (1 = passed at once).
    pub attempts: usize,
    /// `A_C`'s hints, in order.
    pub hints: Vec<String>,
}

/// Why the chain rejected a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainReject {
    /// `A_T`'s reply is empty.
    BadAdvancedTool,
    /// `A_Q`'s reply is empty.
    EmptyQuery,
    /// `A_Q`'s query names the value it had to leave out.
    QueryLeaksWithheld,
    /// `A_R` failed `K_max` times.
    ChainFailed,
}

impl ChainReject {
    /// The name used in the statistics.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainReject::BadAdvancedTool => "bad_advanced_tool",
            ChainReject::EmptyQuery => "empty_query",
            ChainReject::QueryLeaksWithheld => "query_leaks_withheld_param",
            ChainReject::ChainFailed => "chain_failed",
        }
    }
}

/// The chain's settings and the entry it builds on.
#[derive(Debug)]
pub struct ChainInput<'a> {
    /// The entry (classes and scenario) the calls run against.
    pub entry: &'a CheckEntry,
    /// The ground truth of the earlier turns.
    pub prior: &'a [Vec<String>],
    /// The docs of the round's primitive tools (shown to `A_R`).
    pub tool_docs: &'a [serde_json::Value],
    /// The round's variant.
    pub variant: Variant,
    /// `K_max`: `A_R` attempts before the round is rejected.
    pub k_max: usize,
}

/// Counts of role requests, by paper name.
pub type RoleCounts = BTreeMap<&'static str, usize>;

fn ask(
    model: &mut dyn RoleModel,
    counts: &mut RoleCounts,
    req: &RoleRequest<'_>,
) -> Result<String, String> {
    *counts.entry(req.role.paper_name()).or_default() += 1;
    model
        .complete(req)
        .map_err(|e| format!("{} failed: {e}", req.role.paper_name()))
}

/// The text between `<tag>` and `</tag>`.
pub fn tagged<'t>(text: &'t str, tag: &str) -> Option<&'t str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    Some(text[start..end].trim())
}

/// A parsed call as a BFCL call string, keyword arguments only where the doc names the
/// positional ones; `None` when an argument is not a literal.
fn render_call(c: &Call) -> Option<String> {
    let mut args = Vec::new();
    for a in &c.args {
        match a {
            Expr::Value(v) => args.push(v.py_repr()),
            _ => return None,
        }
    }
    for (k, a) in &c.kwargs {
        match a {
            Expr::Value(v) => args.push(format!("{k}={}", v.py_repr())),
            _ => return None,
        }
    }
    Some(format!("{}({})", c.name, args.join(", ")))
}

/// Parses an `A_R` reply: `<think>…</think>` then `<tool_call>[calls]</tool_call>` or
/// `<answer>…</answer>`.
pub fn parse_reasoning(reply: &str) -> Result<AgentStep, String> {
    let think = tagged(reply, "think").unwrap_or("").to_string();
    if let Some(body) = tagged(reply, "tool_call") {
        let expr = parse_expr(body).map_err(|e| format!("the <tool_call> is not Python: {e}"))?;
        let items = match expr {
            Expr::List(items) | Expr::Tuple(items) => items,
            Expr::Value(PyValue::List(v)) if v.is_empty() => Vec::new(),
            single @ Expr::Call(_) => vec![single],
            _ => return Err("the <tool_call> is not a list of calls".to_string()),
        };
        let mut calls = Vec::new();
        for item in items {
            match item {
                Expr::Call(c) => {
                    calls.push(render_call(&c).ok_or_else(|| {
                        format!("the call to {} has a non-literal argument", c.name)
                    })?)
                }
                _ => return Err("the <tool_call> list holds something other than calls".into()),
            }
        }
        if calls.is_empty() {
            return Err("the <tool_call> list is empty".to_string());
        }
        return Ok(AgentStep {
            think,
            calls,
            results: Vec::new(),
            answer: None,
        });
    }
    match tagged(reply, "answer") {
        Some(a) => Ok(AgentStep {
            think,
            calls: Vec::new(),
            results: Vec::new(),
            answer: Some(a.to_string()),
        }),
        None => Err("the reply has neither <tool_call>[…]</tool_call> nor <answer>".to_string()),
    }
}

/// The assistant's reply in a withheld turn (missing function or parameter): fixed text.
fn clarification(variant: &Variant) -> Option<AgentStep> {
    let answer = match variant {
        Variant::Base => return None,
        Variant::MissFunc { .. } => {
            "None of the functions I have can do this; I need a suitable function first."
                .to_string()
        }
        Variant::MissParam { param, .. } => {
            format!("I need one more detail before I can do this: which {param} should I use?")
        }
    };
    Some(AgentStep {
        think: "A required piece is missing, so I must not guess.".to_string(),
        calls: Vec::new(),
        results: Vec::new(),
        answer: Some(answer),
    })
}

/// Runs `A_T`, `A_Q` and the guided `A_R`/`A_C` chain on one sampled round. `Ok(Err(…))` is a
/// rejected round; `Err` a failure that stops synthesis (a role that cannot be reached, an entry
/// that does not load).
pub fn run_round(
    model: &mut dyn RoleModel,
    ctx: &RoundContext,
    input: &ChainInput<'_>,
    counts: &mut RoleCounts,
) -> Result<Result<RoundOutcome, ChainReject>, String> {
    let req = |role, messages| RoleRequest {
        role,
        messages,
        context: ctx,
        step: 0,
        verdict: None,
    };
    let tool_text = ask(model, counts, &req(Role::Tooling, prompts::tooling(ctx)))?;
    // A JSON tool is taken as is; prose is taken as the description of the tool the trace
    // defines (name and parameters from the trace).
    let advanced_tool: serde_json::Value = match serde_json::from_str(tool_text.trim()) {
        Ok(v @ serde_json::Value::Object(_))
            if v["name"].is_string() && v["description"].is_string() =>
        {
            v
        }
        _ if tool_text.trim().is_empty() => return Ok(Err(ChainReject::BadAdvancedTool)),
        _ => {
            let mut v = template_advanced_tool(ctx);
            v["description"] = serde_json::Value::String(tool_text.trim().to_string());
            v
        }
    };
    let advanced = advanced_tool.to_string();
    let query = ask(
        model,
        counts,
        &req(Role::Querying, prompts::querying(ctx, &advanced)),
    )?
    .trim()
    .to_string();
    if query.is_empty() {
        return Ok(Err(ChainReject::EmptyQuery));
    }
    if let Some((_, v)) = &ctx.withheld {
        if query.contains(&v.py_str()) {
            return Ok(Err(ChainReject::QueryLeaksWithheld));
        }
    }
    let truth: Vec<String> = ctx.trace.iter().map(|s| s.call.clone()).collect();
    let mut convo = vec![Message::new("user", query.clone())];
    let mut turns_gt: Vec<Vec<String>> = Vec::new();
    let mut first_turn = None;
    if let Some(step) = clarification(&input.variant) {
        convo.push(Message::new(
            "assistant",
            format!(
                "<think>{}</think><answer>{}</answer>",
                step.think,
                step.answer.clone().unwrap_or_default()
            ),
        ));
        let (follow, user) = match &input.variant {
            Variant::MissParam { param, value } => {
                let text = format!(
                    "Sorry, I forgot: the {} is {value}.",
                    param.replace('_', " ")
                );
                (text.clone(), Some(text))
            }
            _ => (ADDITIONAL_FUNCTION_PROMPT.to_string(), None),
        };
        convo.push(Message::new("user", follow));
        turns_gt.push(Vec::new());
        first_turn = Some((step, user));
    }
    turns_gt.push(truth.clone());
    let mut all_gt: Vec<Vec<String>> = input.prior.to_vec();
    all_gt.extend(turns_gt.iter().cloned());
    let mut hints: Vec<String> = Vec::new();
    for attempt in 1..=input.k_max.max(1) {
        let sys = prompts::reasoning_system(input.tool_docs, &advanced, &hints);
        let (steps, problem) = reason(model, ctx, input, &sys, &convo, counts)?;
        let made: Vec<Vec<String>> = steps.iter().map(|s| s.calls.clone()).collect();
        let verdict = match &problem {
            None => {
                let mut model_turns: Vec<Vec<Vec<String>>> =
                    input.prior.iter().map(|t| vec![t.clone()]).collect();
                if first_turn.is_some() {
                    model_turns.push(Vec::new());
                }
                model_turns.push(made.clone());
                check_entry(input.entry, &all_gt, &model_turns)?
            }
            Some(p) => Verdict {
                valid: false,
                error_type: Some("synth:unusable_reply".to_string()),
                error_message: Some(p.clone()),
                turn: None,
            },
        };
        if verdict.valid {
            let mut turns = Vec::new();
            let mut added_tools = Vec::new();
            if let Some((step, _)) = &first_turn {
                turns.push(Turn {
                    user: Some(query.clone()),
                    ground_truth: Vec::new(),
                    steps: vec![step.clone()],
                    added_tools: Vec::new(),
                });
                if let Variant::MissFunc { tool } = &input.variant {
                    added_tools.push(tool.clone());
                }
            }
            turns.push(Turn {
                user: match &first_turn {
                    Some((_, user)) => user.clone(),
                    None => Some(query.clone()),
                },
                ground_truth: truth,
                steps,
                added_tools,
            });
            return Ok(Ok(RoundOutcome {
                advanced_tool,
                query,
                turns,
                attempts: attempt,
                hints,
            }));
        }
        if attempt < input.k_max {
            let problem = format!(
                "{}: {}",
                verdict.error_type.as_deref().unwrap_or("failed"),
                verdict.error_message.as_deref().unwrap_or("")
            );
            let msgs = prompts::critiquing(ctx, &query, &made, &problem);
            let hint = ask(
                model,
                counts,
                &RoleRequest {
                    role: Role::Critiquing,
                    messages: msgs,
                    context: ctx,
                    step: 0,
                    verdict: Some(&verdict),
                },
            )?;
            hints.push(hint.trim().to_string());
        }
    }
    Ok(Err(ChainReject::ChainFailed))
}

/// One `A_R` attempt: steps until an answer (or the step limit), each step's calls executed on
/// instances that replayed the earlier turns. Returns the steps and, when the attempt is
/// unusable (an unparseable reply, no answer in time), why.
fn reason(
    model: &mut dyn RoleModel,
    ctx: &RoundContext,
    input: &ChainInput<'_>,
    system: &str,
    convo: &[Message],
    counts: &mut RoleCounts,
) -> Result<(Vec<AgentStep>, Option<String>), String> {
    let entry = input.entry;
    let mut ex = Executor::new(&entry.involved_classes, &entry.initial_config, false)?;
    for call in input.prior.iter().flatten() {
        ex.execute(call);
    }
    let mut messages = vec![Message::new("system", system)];
    messages.extend(convo.iter().cloned());
    let mut steps: Vec<AgentStep> = Vec::new();
    let limit = ctx.trace.len() + 3;
    for step in 0..limit {
        let reply = ask(
            model,
            counts,
            &RoleRequest {
                role: Role::Reasoning,
                messages: messages.clone(),
                context: ctx,
                step,
                verdict: None,
            },
        )?;
        let mut parsed = match parse_reasoning(&reply) {
            Ok(p) => p,
            Err(e) => return Ok((steps, Some(e))),
        };
        messages.push(Message::new("assistant", reply.trim()));
        if parsed.answer.is_some() {
            steps.push(parsed);
            return Ok((steps, None));
        }
        parsed.results = parsed.calls.iter().map(|c| ex.execute(c)).collect();
        messages.push(Message::new(
            "user",
            format!(
                "<tool_response>{}</tool_response>",
                serde_json::to_string(&parsed.results).unwrap_or_default()
            ),
        ));
        steps.push(parsed);
    }
    Ok((steps, Some(format!("no <answer> within {limit} steps"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies() {
        let s = parse_reasoning("<think>go</think><tool_call>[cd(folder='a'), ls()]</tool_call>")
            .unwrap();
        assert_eq!(s.think, "go");
        assert_eq!(s.calls, vec!["cd(folder='a')", "ls()"]);
        let s = parse_reasoning("<think>x</think><tool_call>cat('f.txt')</tool_call>").unwrap();
        assert_eq!(s.calls, vec!["cat('f.txt')"]);
        let a = parse_reasoning("<answer>done</answer>").unwrap();
        assert_eq!(a.answer.as_deref(), Some("done"));
        for bad in [
            "hello",
            "<tool_call>[</tool_call>",
            "<tool_call>[]</tool_call>",
            "<tool_call>[f(g())]</tool_call>",
            "<tool_call>[1, 2]</tool_call>",
        ] {
            assert!(parse_reasoning(bad).is_err(), "{bad}");
        }
    }
}
