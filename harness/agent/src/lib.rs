//! # supo-agent
//!
//! Long-horizon tool-using agents past their context window, for Rust programs: the
//! [`Policy`] and [`Environment`] traits, the rollout loop with SUPO's summarization rule
//! (`supo_core`'s [`TrajectoryBuilder`]), the OpenAI-compatible client ([`http`]) that reads
//! token ids and log-probs from vLLM-style servers, a local `tokenizer.json` ([`local`]) for
//! servers without `/tokenize`, the tool-call formats ([`toolcall`]) and the export of
//! trajectories as training rows, one per summary segment ([`export`]).
//!
//! Features: `bfcl` (default) adds [`bfcl`], the BFCL multi-turn entries as an
//! [`Environment`] with BFCL's checker as the reward. Calls are BFCL call strings
//! (`f(a=1, b='x')`) whatever the format the model writes, so `supo-bfcl`'s parser is always
//! a dependency; it is small and pulls no I/O crates. The crate uses tokio and reqwest, and no
//! GPU, server or command-line crate.
//!
//! `examples/bfcl_agent.rs` is a small agent that runs BFCL entries against any
//! OpenAI-compatible server with SUPO's context rule:
//! `cargo run -p supo-agent --example bfcl_agent -- --base-url http://127.0.0.1:8000/v1`.
//!
//! ## The rollout loop
//!
//! A [`Policy`] acting in an [`Environment`], its working context managed by
//! `supo_core`'s [`TrajectoryBuilder`] (SUPO's summarization rule), producing a
//! [`Trajectory`] with summary segments, token ids and the server's log-probs.
//!
//! One episode: the task prompt (system message with the tool docs, first user message) →
//! generation → the calls it holds are executed → their results are appended as tool messages
//! → the context manager keeps the pair, or discards it and asks for a summary with the paper's
//! instruction, after which the next segment starts from the task prompt followed by the
//! summary; a message without calls ends a user turn, and the environment either gives the next
//! user message (appended like an observation) or ends the task and gives the reward.
//!
//! Token ids: agent turns carry the ids and log-probs the server returned; prompts,
//! observations and the summary instruction are tokenized by the server's `/tokenize` with its
//! chat template, each tool-result or user message group rendered alone with the generation
//! prompt. A rebuilt prompt is sent as the task messages followed by an assistant message
//! `prefix ⊕ summary` that the model continues (`continue_final_message`), so the text the
//! server sees is the paper's `task prompt ⊕ template ⊕ summary`. With `supo serve`'s template
//! the ids of a segment are exactly the ids the server fed the model (the end-to-end test checks
//! it against the server's `usage`); with other templates they can differ by the template's
//! extra tokens.

#![warn(missing_docs)]

#[cfg(feature = "bfcl")]
pub mod bfcl;
pub mod export;
pub mod http;
pub mod local;
pub mod toolcall;

use std::future::Future;
use std::rc::Rc;

use serde_json::Value;
use supo_core::context::{ContextConfig, Decision, TrajectoryBuilder};
use supo_core::{FinishReason, Role, Trajectory, Turn};

use crate::http::{ChatMessage, ChatRequest, Completion, HttpPolicy, PolicyError};
use crate::toolcall::{json_call, parse_text_calls};

/// What the agent talks to: an OpenAI-compatible chat server, or anything that answers the same
/// three requests.
pub trait Policy {
    /// One chat completion.
    fn complete(&self, req: &ChatRequest) -> impl Future<Output = Result<Completion, PolicyError>>;
    /// Token ids of `messages` rendered by the chat template (with the generation prompt when
    /// `add_generation_prompt`).
    fn tokenize_chat(
        &self,
        messages: &[ChatMessage],
        tools: &[Value],
        add_generation_prompt: bool,
    ) -> impl Future<Output = Result<Vec<u32>, PolicyError>>;
    /// Token ids of a plain text.
    fn tokenize_text(&self, text: &str) -> impl Future<Output = Result<Vec<u32>, PolicyError>>;
}

impl Policy for HttpPolicy {
    fn complete(&self, req: &ChatRequest) -> impl Future<Output = Result<Completion, PolicyError>> {
        HttpPolicy::complete(self, req)
    }

    fn tokenize_chat(
        &self,
        messages: &[ChatMessage],
        tools: &[Value],
        add_generation_prompt: bool,
    ) -> impl Future<Output = Result<Vec<u32>, PolicyError>> {
        HttpPolicy::tokenize_chat(self, messages, tools, add_generation_prompt)
    }

    fn tokenize_text(&self, text: &str) -> impl Future<Output = Result<Vec<u32>, PolicyError>> {
        HttpPolicy::tokenize_text(self, text)
    }
}

/// A user turn the environment starts after the agent answered.
#[derive(Debug, Clone, PartialEq)]
pub struct UserTurn {
    /// The user's message.
    pub message: String,
    /// Tool docs made available from this turn on (BFCL's missing-function category).
    pub new_tools: Vec<Value>,
}

/// How an episode ended, as the environment judges it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// The scalar reward.
    pub reward: f64,
    /// The environment's verdict (any JSON; BFCL's checker verdict for BFCL).
    pub verdict: Value,
}

/// A text-based tool environment: tool docs, call strings executed into observations, user
/// turns, and a reward at the end.
pub trait Environment {
    /// The tool docs shown from the start (JSON schema, BFCL's or OpenAI's function format).
    fn tools(&self) -> Vec<Value>;
    /// The first user message.
    fn first_message(&self) -> String;
    /// Executes one step's call strings, in order; one observation per call.
    fn step(&mut self, calls: &[String]) -> Vec<String>;
    /// The agent answered without calling a tool: the next user turn, or `None` when the task
    /// is over.
    fn next_turn(&mut self) -> Option<UserTurn>;
    /// The episode ended with `finish`: the reward and verdict.
    fn outcome(&mut self, finish: FinishReason) -> Outcome;
}

/// How tools are offered and calls read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// The OpenAI `tools` field; calls from `tool_calls` (text calls are read too).
    Openai,
    /// Docs in the system prompt; calls as Hermes/Qwen `<tool_call>{…}</tool_call>` blocks.
    Hermes,
    /// Docs in the system prompt; calls in BFCL's Python syntax `[f(a=1), g()]`.
    Python,
}

impl ToolFormat {
    /// The formats' names, in the order of the variants.
    pub const NAMES: [&'static str; 3] = ["openai", "hermes", "python"];

    /// The format's name (`"openai"`, `"hermes"`, `"python"`).
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl std::fmt::Display for ToolFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ToolFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<ToolFormat, String> {
        match s {
            "openai" => Ok(ToolFormat::Openai),
            "hermes" => Ok(ToolFormat::Hermes),
            "python" => Ok(ToolFormat::Python),
            _ => Err(format!(
                "unknown tool format {s:?} (one of: {})",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// Settings of the rollout loop.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The working-context rule (`W`, `L`, `S`, `H`, instruction and template).
    pub context: ContextConfig,
    /// The most tokens of one generation.
    pub max_tokens: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// How tools are offered.
    pub tool_format: ToolFormat,
    /// Steps allowed in one user turn (BFCL force-terminates after 20); exceeding it ends the
    /// episode with [`FinishReason::MaxSteps`].
    pub max_steps_per_turn: usize,
}

/// Token counts around one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GenerationRecord {
    /// Tokens of the working context the generation was asked for (local count).
    pub context_tokens: usize,
    /// The prompt tokens the server reported, when it did.
    pub server_prompt_tokens: Option<usize>,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Whether it was a summary.
    pub summary: bool,
}

/// One finished episode (serializable, so a run can journal it and resume).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rollout {
    /// The trajectory with its segments.
    pub trajectory: Trajectory,
    /// The environment's reward and verdict.
    pub outcome: Outcome,
    /// Calls executed.
    pub tool_calls: usize,
    /// Agent messages that tried to call a tool in a form that could not be read (taken as
    /// answers).
    #[serde(default)]
    pub call_parse_failures: usize,
    /// The largest working context, generations included.
    pub peak_context: usize,
    /// Every generation's token counts, in order.
    pub generations: Vec<GenerationRecord>,
    /// Whether every agent turn carries the server's log-probs (required for training rows).
    pub has_logprobs: bool,
    /// The failure that ended the episode early ([`FinishReason::EnvError`]), if any.
    pub error: Option<String>,
}

/// A failure before the episode could start (the prompt could not be tokenized, a bad config).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentError(pub String);

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AgentError {}

impl From<PolicyError> for AgentError {
    fn from(e: PolicyError) -> Self {
        AgentError(e.to_string())
    }
}

impl From<supo_core::Error> for AgentError {
    fn from(e: supo_core::Error) -> Self {
        AgentError(e.to_string())
    }
}

/// BFCL's docs use Python type names (`dict`, `float`, `tuple`, `any`); the OpenAI format
/// wants JSON schema ones.
fn json_schema_types(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, x) in map {
                if k == "type" {
                    match x.as_str() {
                        Some("dict") => out.insert(k.clone(), "object".into()),
                        Some("float") => out.insert(k.clone(), "number".into()),
                        Some("tuple") => out.insert(k.clone(), "array".into()),
                        Some("any") => None,
                        _ => out.insert(k.clone(), x.clone()),
                    };
                } else {
                    out.insert(k.clone(), json_schema_types(x));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema_types).collect()),
        other => other.clone(),
    }
}

/// Tool docs in the OpenAI `tools` format (a doc already in it is kept as is).
pub fn openai_tools(docs: &[Value]) -> Vec<Value> {
    docs.iter()
        .map(|d| {
            if d.get("type").and_then(|t| t.as_str()) == Some("function") {
                d.clone()
            } else {
                serde_json::json!({"type": "function", "function": json_schema_types(d)})
            }
        })
        .collect()
}

/// The system prompt of an episode: for the text formats, the tool docs and how to call them.
pub fn system_prompt(format: ToolFormat, docs: &[Value]) -> String {
    let docs_text = || {
        docs.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    match format {
        ToolFormat::Openai => "You are an agent that completes the user's tasks by calling the \
            functions you are given. When the task is done, answer in plain text without calling \
            a function."
            .to_string(),
        ToolFormat::Hermes => format!(
            "You are an agent that completes the user's tasks by calling functions. To call \
             functions, write one block per call: <tool_call>{{\"name\": <function-name>, \
             \"arguments\": <args-json-object>}}</tool_call>. When the task is done, answer in \
             plain text without a block. The functions:\n<tools>\n{}\n</tools>",
            docs_text()
        ),
        ToolFormat::Python => format!(
            "You are an expert in composing functions. You are given a question and a set of \
             possible functions. If you decide to invoke any of the function(s), you MUST put it \
             in the format of [func_name1(params_name1=params_value1, params_name2=params_value2\
             ...), func_name2(params)]. You SHOULD NOT include any other text in the response \
             when you call functions. When the task is done, answer in plain text. Here is a \
             list of functions in JSON format that you can invoke.\n{}",
            docs_text()
        ),
    }
}

/// The calls of a completion: the server's structured calls, else those written in the text.
/// `None` (an answer) when there are none or they do not parse, as BFCL counts them.
fn completion_calls(c: &Completion) -> Option<Vec<String>> {
    if !c.tool_calls.is_empty() {
        return c
            .tool_calls
            .iter()
            .map(|t| json_call(&t.function.name, &t.function.arguments))
            .collect::<Result<Vec<_>, _>>()
            .ok();
    }
    match parse_text_calls(&c.text) {
        Some(Ok(calls)) if !calls.is_empty() => Some(calls),
        _ => None,
    }
}

/// Whether a completion tried to call a tool and the call could not be read (a structured call
/// whose arguments are not an object, a `<tool_call>` block that is not JSON, Python call syntax
/// that does not parse): the agent then takes the message as its answer, as BFCL does.
fn call_unreadable(c: &Completion) -> bool {
    if !c.tool_calls.is_empty() {
        return c
            .tool_calls
            .iter()
            .any(|t| json_call(&t.function.name, &t.function.arguments).is_err());
    }
    matches!(parse_text_calls(&c.text), Some(Err(_)))
}

/// Appends a continuation to an open message: a space between two non-space ends (a word-level
/// tokenizer's decoded text has no leading space; a BPE continuation brings its own).
fn continue_text(prev: &mut String, next: &str) {
    if !prev.is_empty()
        && !next.is_empty()
        && !prev.ends_with(char::is_whitespace)
        && !next.starts_with(char::is_whitespace)
    {
        prev.push(' ');
    }
    prev.push_str(next);
}

/// The state of one episode.
struct Episode<'a, P: Policy> {
    policy: &'a P,
    config: &'a AgentConfig,
    tools_param: Vec<Value>,
    task_messages: Vec<ChatMessage>,
    messages: Vec<ChatMessage>,
    /// The last message is an assistant message the next generation continues.
    continuing: bool,
    builder: TrajectoryBuilder,
    generations: Vec<GenerationRecord>,
    has_logprobs: bool,
    tool_calls: usize,
    call_parse_failures: usize,
    seed: u64,
}

impl<P: Policy> Episode<'_, P> {
    async fn generate(&mut self, summary: bool) -> Result<Option<(Turn, Completion)>, PolicyError> {
        let budget = self
            .builder
            .manager()
            .generation_budget()
            .min(self.config.max_tokens);
        if budget == 0 {
            return Ok(None);
        }
        let req = ChatRequest {
            messages: self.messages.clone(),
            tools: self.tools_param.clone(),
            max_tokens: budget,
            temperature: self.config.temperature,
            seed: Some(self.seed + self.generations.len() as u64),
            continue_final_message: self.continuing,
        };
        let c = match self.policy.complete(&req).await {
            Ok(c) => c,
            Err(e) if e.is_context_length() => return Ok(None),
            Err(e) => return Err(e),
        };
        let turn = match (&c.token_ids, &c.logprobs) {
            (Some(ids), Some(lps)) if ids.len() == lps.len() => {
                Turn::agent(ids.clone(), lps.clone())
            }
            _ => {
                self.has_logprobs = false;
                let ids = self.policy.tokenize_text(&c.text).await?;
                let n = ids.len();
                Turn::agent(ids, vec![0.0; n])
            }
        };
        self.generations.push(GenerationRecord {
            context_tokens: self.builder.manager().context_len(),
            server_prompt_tokens: c.usage.map(|u| u.prompt_tokens),
            completion_tokens: turn.tokens.len(),
            summary,
        });
        Ok(Some((turn, c)))
    }

    /// The assistant message of a completion, continuing the open one when there is one.
    fn push_assistant(&mut self, c: &Completion) {
        if self.continuing {
            if let Some(last) = self.messages.last_mut() {
                continue_text(&mut last.content, &c.text);
                last.tool_calls = c.tool_calls.clone();
            }
        } else {
            let mut m = ChatMessage::new("assistant", c.text.clone());
            m.tool_calls = c.tool_calls.clone();
            self.messages.push(m);
        }
    }

    /// Records a step (action, observation messages); keeps the messages in step with the
    /// builder: a discarded pair leaves them as they were, a summary request appends the
    /// instruction.
    async fn step(
        &mut self,
        action: Turn,
        completion: Option<&Completion>,
        observation: Vec<ChatMessage>,
        role: Role,
    ) -> Result<Decision, AgentError> {
        let obs_ids = self.policy.tokenize_chat(&observation, &[], true).await?;
        let d = self.builder.push_step(action, Turn::other(role, obs_ids))?;
        if self.builder.manager().last_pair_kept() {
            if let Some(c) = completion {
                self.push_assistant(c);
            }
            self.messages.extend(observation);
            self.continuing = false;
        }
        if d == Decision::Summarize {
            if self.messages.last().is_none_or(|m| m.role != "assistant") {
                self.messages.push(ChatMessage::new("assistant", ""));
            }
            self.messages.push(ChatMessage::new(
                "user",
                self.config.context.summary_instruction.clone(),
            ));
            self.continuing = false;
        }
        Ok(d)
    }
}

/// Runs one episode of `env` with `policy`. `group` names the task (advantages are relative
/// within a group); generation `i` of the episode is sampled with seed `seed + i`. A policy failure mid-episode ends it with [`FinishReason::EnvError`] and the
/// message in [`Rollout::error`]; only a failure before the first generation is an `Err`.
pub async fn rollout<P: Policy, E: Environment>(
    policy: &P,
    env: &mut E,
    config: &AgentConfig,
    group: &str,
    seed: u64,
) -> Result<Rollout, AgentError> {
    let docs = env.tools();
    let tools_param = match config.tool_format {
        ToolFormat::Openai => openai_tools(&docs),
        _ => Vec::new(),
    };
    let task_messages = vec![
        ChatMessage::new("system", system_prompt(config.tool_format, &docs)),
        ChatMessage::new("user", env.first_message()),
    ];
    let task_ids = policy
        .tokenize_chat(&task_messages, &tools_param, true)
        .await?;
    let instruction = vec![ChatMessage::new(
        "user",
        config.context.summary_instruction.clone(),
    )];
    let instruction_ids = policy.tokenize_chat(&instruction, &[], true).await?;
    let prefix_ids = policy.tokenize_text(&config.context.summary_prefix).await?;
    let builder = TrajectoryBuilder::new(
        config.context.clone(),
        task_ids,
        instruction_ids,
        prefix_ids,
    )?;
    let mut ep = Episode {
        policy,
        config,
        tools_param,
        messages: task_messages.clone(),
        task_messages,
        continuing: false,
        builder,
        generations: Vec::new(),
        has_logprobs: true,
        tool_calls: 0,
        call_parse_failures: 0,
        seed,
    };
    let mut error = None;
    let mut pending_user: Option<ChatMessage> = None;
    let mut turn_steps = 0;
    let finish = loop {
        if let Some(r) = ep.builder.manager().finished() {
            break r;
        }
        let summarizing = ep.builder.manager().awaiting_summary();
        let (action, c) = match ep.generate(summarizing).await {
            Ok(Some(g)) => g,
            Ok(None) => break FinishReason::ContextOverflow,
            Err(e) => {
                error = Some(e.to_string());
                break FinishReason::EnvError;
            }
        };
        let decision = if summarizing {
            let summary_text = c.text.clone();
            let d = ep.builder.push_summary(action)?;
            if d == Decision::Continue {
                let mut open = ChatMessage::new("assistant", config.context.summary_prefix.clone());
                continue_text(&mut open.content, &summary_text);
                ep.messages = ep.task_messages.clone();
                ep.messages.push(open);
                ep.continuing = true;
                match pending_user.clone() {
                    // The user message of a discarded pair is given again after the summary.
                    Some(user) => {
                        let empty = Turn::agent(Vec::new(), Vec::new());
                        let d = ep.step(empty, None, vec![user], Role::User).await?;
                        if ep.builder.manager().last_pair_kept() {
                            pending_user = None;
                        }
                        d
                    }
                    None => d,
                }
            } else {
                d
            }
        } else {
            match completion_calls(&c) {
                Some(calls) => {
                    turn_steps += 1;
                    if turn_steps > config.max_steps_per_turn {
                        break FinishReason::MaxSteps;
                    }
                    let results = env.step(&calls);
                    ep.tool_calls += calls.len();
                    let ids: Vec<Option<String>> = if c.tool_calls.len() == calls.len() {
                        c.tool_calls.iter().map(|t| Some(t.id.clone())).collect()
                    } else {
                        vec![None; calls.len()]
                    };
                    let obs = results
                        .into_iter()
                        .zip(ids)
                        .map(|(r, id)| ChatMessage {
                            tool_call_id: id,
                            ..ChatMessage::new("tool", r)
                        })
                        .collect();
                    ep.step(action, Some(&c), obs, Role::Tool).await?
                }
                None => {
                    turn_steps = 0;
                    if call_unreadable(&c) {
                        ep.call_parse_failures += 1;
                    }
                    match env.next_turn() {
                        None => {
                            let d = ep.builder.push_answer(action)?;
                            ep.push_assistant(&c);
                            d
                        }
                        Some(turn) => {
                            let mut text = turn.message;
                            if !turn.new_tools.is_empty() {
                                // The docs go into the user message in every format: the task
                                // prompt (system message, `tools`) stays what was tokenized.
                                let docs: Vec<String> =
                                    turn.new_tools.iter().map(|d| d.to_string()).collect();
                                text.push_str(&format!("\nNew functions:\n{}", docs.join("\n")));
                            }
                            let user = ChatMessage::new("user", text);
                            let d = ep
                                .step(action, Some(&c), vec![user.clone()], Role::User)
                                .await?;
                            if !ep.builder.manager().last_pair_kept() {
                                pending_user = Some(user);
                            }
                            d
                        }
                    }
                }
            }
        };
        if let Decision::Stop(r) = decision {
            break r;
        }
    };
    let outcome = env.outcome(finish);
    let peak_context = ep.builder.manager().peak();
    let trajectory = ep
        .builder
        .finish(group.to_string(), outcome.reward, Some(finish))?;
    Ok(Rollout {
        trajectory,
        outcome,
        tool_calls: ep.tool_calls,
        call_parse_failures: ep.call_parse_failures,
        peak_context,
        generations: ep.generations,
        has_logprobs: ep.has_logprobs,
        error,
    })
}

/// One episode to run: its group, environment and seed.
pub struct Job<E> {
    /// The task the episode belongs to.
    pub group: String,
    /// The environment.
    pub env: E,
    /// The sampling seed.
    pub seed: u64,
}

/// Runs `jobs` with at most `concurrency` episodes in flight on one thread (the work is waiting
/// on the server; the environments need not be `Send`), calling `on_done(index, result)` as
/// each finishes. Returns the results in job order.
pub fn run_all<P: Policy + 'static, E: Environment + 'static>(
    policy: P,
    config: AgentConfig,
    jobs: Vec<Job<E>>,
    concurrency: usize,
    mut on_done: impl FnMut(usize, &Result<Rollout, AgentError>),
) -> Result<Vec<Result<Rollout, AgentError>>, AgentError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError(format!("cannot start the async runtime: {e}")))?;
    let local = tokio::task::LocalSet::new();
    let policy = Rc::new(policy);
    let config = Rc::new(config);
    let n = jobs.len();
    local.block_on(&runtime, async move {
        let mut results: Vec<Option<Result<Rollout, AgentError>>> = (0..n).map(|_| None).collect();
        let mut set = tokio::task::JoinSet::new();
        let mut queue = jobs.into_iter().enumerate();
        loop {
            while set.len() < concurrency.max(1) {
                let Some((i, mut job)) = queue.next() else {
                    break;
                };
                let (policy, config) = (policy.clone(), config.clone());
                set.spawn_local(async move {
                    let r = rollout(&*policy, &mut job.env, &config, &job.group, job.seed).await;
                    (i, r)
                });
            }
            match set.join_next().await {
                Some(Ok((i, r))) => {
                    on_done(i, &r);
                    results[i] = Some(r);
                }
                Some(Err(e)) => return Err(AgentError(format!("a rollout task failed: {e}"))),
                None => break,
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(AgentError("the rollout did not run".into()))))
            .collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unreadable_calls_are_told_from_answers() {
        let text = |t: &str| Completion {
            text: t.to_string(),
            tool_calls: Vec::new(),
            token_ids: None,
            logprobs: None,
            finish: crate::http::CompletionFinish::Stop,
            usage: None,
        };
        assert!(call_unreadable(&text(
            "<tool_call>\n{\"name\": \"ls\", \"argu"
        )));
        assert!(call_unreadable(&text("<tool_call>not json</tool_call>")));
        assert!(!call_unreadable(&text(
            "<tool_call>{\"name\": \"ls\", \"arguments\": {}}</tool_call>"
        )));
        assert!(!call_unreadable(&text("The directory is empty.")));
    }

    #[test]
    fn bfcl_docs_become_openai_tools() {
        let doc = json!({"name": "cd", "description": "d", "parameters": {"type": "dict",
            "properties": {"x": {"type": "float"}, "y": {"type": "any"}}, "required": ["x"]}});
        let t = openai_tools(&[doc]);
        assert_eq!(t[0]["type"], "function");
        assert_eq!(t[0]["function"]["parameters"]["type"], "object");
        assert_eq!(
            t[0]["function"]["parameters"]["properties"]["x"]["type"],
            "number"
        );
        assert!(t[0]["function"]["parameters"]["properties"]["y"]
            .get("type")
            .is_none());
    }

    #[test]
    fn continuation_spacing() {
        let mut s = String::from("summary");
        continue_text(&mut s, "next");
        assert_eq!(s, "summary next");
        continue_text(&mut s, " bpe");
        assert_eq!(s, "summary next bpe");
    }
}
