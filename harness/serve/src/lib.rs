//! # supo-serve
//!
//! `supo serve` as a library: any `supo_core::model::TokenModel` on the OpenAI-compatible API,
//! for tests and for agents that want a local server over their own model. The command line
//! (`supo serve`) binds [`router`] to a port with [`serve`]; the built-in model is
//! `supo-train`'s.
//!
//! Routes, answered as the OpenAI API and vLLM answer them:
//!
//! - `GET /v1/models`, `GET /v1/models/{id}`: the served names (`--served-model-name`, several
//!   allowed) with `created`, `owned_by` and vLLM's `max_model_len`.
//! - `POST /v1/chat/completions`: `messages` (content as a string or text parts; roles
//!   `system`, `developer`, `user`, `assistant`, `tool`), `tools` and `tool_choice`,
//!   `max_tokens` / `max_completion_tokens`, `temperature`, any 64-bit `seed`, `n`, `stop`,
//!   `logprobs` with `top_logprobs` (0 to 20), `stream` with `stream_options.include_usage`,
//!   and vLLM's `return_tokens_as_token_ids`, `return_token_ids`, `stop_token_ids`,
//!   `include_stop_str_in_output`, `ignore_eos`, `add_generation_prompt`,
//!   `continue_final_message`.
//! - `POST /v1/completions`: vLLM's token-in, token-out form: `prompt` as text, token ids, or
//!   a list of either; `logprobs` (0 to 20 alternatives), `echo`, `return_tokens_as_token_ids`,
//!   `return_token_ids`, the sampling fields above, `stream`.
//! - vLLM's `POST /tokenize` (`prompt` or `messages`) and `POST /detokenize`; `GET /health`.
//!
//! Errors are `{"error": {"message", "type", "param", "code"}}` for every status (see
//! [`error`]); a model name that is not served is vLLM's 404. Log-probs follow vLLM's
//! `--logprobs-mode` ([`LogprobsMode`]). The server has no tool parser and no guided
//! decoding: `tool_choice` `required` or a named function is a 400 that says so. With the
//! built-in chat format calls come back as text (see [`supo_agent::toolcall`]); a model that
//! brings its own [`ChatFormat`] (`supo serve --gguf`: the GGUF file's template) can have its
//! JSON calls (`<tool_call>` blocks, or a message that is a call object) returned as OpenAI
//! `tool_calls` with `finish_reason` `tool_calls` ([`ChatFormat::reads_tool_calls`]).
//!
//! The built-in chat template ([`render_chat`]) is text with role markers, tokenized by the model's
//! tokenizer: each message is `<role>` (`<system>`, `<user>`, `<assistant>`, `<tool>`: the
//! built-in model's role words; `developer` is written as `<system>`) followed by its content,
//! tool docs (`tools`) come first as `<tools>` and their JSON, the generation prompt is
//! `<assistant>`; everything is joined by newlines. An assistant message's calls are written
//! as Hermes `<tool_call>` blocks. With `continue_final_message` the last (assistant) message
//! is left open and no generation prompt is added.
#![warn(missing_docs)]

pub mod error;
mod net;
mod request;
pub mod sampling;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub use error::ApiError;
pub use net::{serve, Limits};
pub use sampling::LogprobsMode;

use request::{choice_seed, Fields};
use sampling::{decode, score, Decoded};
use supo_agent::http::ChatMessage;
use supo_core::model::TokenModel;

/// The roles the template knows (`developer` is written as `system`).
const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];

/// The most alternatives per token (`top_logprobs`, the completions' `logprobs`).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// Renders a conversation with the template described in the module docs.
pub fn render_chat(
    messages: &[ChatMessage],
    tools: &[Value],
    add_generation_prompt: bool,
    continue_final_message: bool,
) -> Result<String, String> {
    render(
        messages,
        tools,
        add_generation_prompt,
        continue_final_message,
    )
    .map_err(|e| e.message)
}

fn render(
    messages: &[ChatMessage],
    tools: &[Value],
    add_generation_prompt: bool,
    continue_final_message: bool,
) -> Result<String, ApiError> {
    let mut parts: Vec<String> = Vec::with_capacity(messages.len() + 2);
    if !tools.is_empty() {
        parts.push(format!("<tools> {}", Value::from(tools.to_vec())));
    }
    for (i, m) in messages.iter().enumerate() {
        if !ROLES.contains(&m.role.as_str()) {
            return Err(ApiError::bad(
                format!("messages[{i}].role"),
                format!(
                    "message {i} has unknown role {:?}: one of system, developer, user, \
                     assistant, tool",
                    m.role
                ),
            ));
        }
        let role = if m.role == "developer" {
            "system"
        } else {
            &m.role
        };
        let mut text = format!("<{role}> {}", m.content);
        for c in &m.tool_calls {
            let call = json!({"name": c.function.name, "arguments": c.function.arguments});
            text.push_str(&format!(" <tool_call> {call} </tool_call>"));
        }
        parts.push(text);
    }
    if continue_final_message {
        if messages.last().is_none_or(|m| m.role != "assistant") {
            return Err(ApiError::bad(
                "continue_final_message",
                "continue_final_message needs a final assistant message",
            ));
        }
    } else if add_generation_prompt {
        parts.push("<assistant>".into());
    }
    Ok(parts.join("\n"))
}

/// How a conversation is written for the model, and whether its replies are read for calls.
pub trait ChatFormat: Send + Sync {
    /// The prompt text of `messages` with the tool docs `tools` (OpenAI's shapes), ending in
    /// the generation prompt when `add_generation_prompt`; with `continue_final_message` the
    /// last (assistant) message is left open instead. `Err` says why the conversation cannot
    /// be written.
    fn render(
        &self,
        messages: &[ChatMessage],
        tools: &[Value],
        add_generation_prompt: bool,
        continue_final_message: bool,
    ) -> Result<String, String>;

    /// Whether a reply to a request with `tools` is read for JSON calls, returned as OpenAI
    /// `tool_calls` (the default: no, calls stay in the text).
    fn reads_tool_calls(&self) -> bool {
        false
    }
}

/// How the server treats prompts, names its model and reports log-probs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServeOptions {
    /// Feed the model only the end of a prompt longer than its context (its last
    /// `max_context − max_new` tokens, with `max_new` at most half the context), as a
    /// sliding-window model would see it; `usage` still counts the whole prompt. Off: such a
    /// prompt is a 400 error, as vLLM answers it.
    pub truncate_prompt: bool,
    /// The names the model answers to (vLLM's `--served-model-name`); the first is the one
    /// reported. Empty: the model's own name. A request naming another model is a 404.
    pub served_model_names: Vec<String>,
    /// Which log-probs are reported (vLLM's `--logprobs-mode`).
    pub logprobs_mode: LogprobsMode,
    /// Requests handled at once, all routes together; one more is answered 429.
    /// 0: [`Limits::default`]'s.
    pub max_in_flight: usize,
    /// The largest request body in bytes; a larger one is answered 413. 0: the default.
    pub max_body_bytes: usize,
    /// The longest wait for a request's whole body; a slower body is answered 408.
    /// Zero: the default.
    pub body_timeout: Duration,
}

/// The server's state: the model, its options and a request counter.
struct ServerState {
    model: Arc<dyn TokenModel>,
    /// The model's own chat format; `None`: the built-in template ([`render_chat`]).
    chat: Option<Arc<dyn ChatFormat>>,
    options: ServeOptions,
    names: Vec<String>,
    created: u64,
    requests: AtomicU64,
    in_flight: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    max_body: usize,
    body_timeout: Duration,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The HTTP application serving `model` with the built-in chat template ([`render_chat`]).
pub fn router(model: Arc<dyn TokenModel>, options: ServeOptions) -> Router {
    app(model, options, None)
}

/// The HTTP application serving `model`, its conversations written by `chat`.
pub fn router_with_chat(
    model: Arc<dyn TokenModel>,
    options: ServeOptions,
    chat: Arc<dyn ChatFormat>,
) -> Router {
    app(model, options, Some(chat))
}

fn app(
    model: Arc<dyn TokenModel>,
    options: ServeOptions,
    chat_format: Option<Arc<dyn ChatFormat>>,
) -> Router {
    let defaults = Limits::default();
    let mut names: Vec<String> = options
        .served_model_names
        .iter()
        .filter(|n| !n.is_empty())
        .cloned()
        .collect();
    if names.is_empty() {
        names.push(model.name().to_string());
    }
    let max_in_flight = if options.max_in_flight == 0 {
        defaults.max_in_flight
    } else {
        options.max_in_flight
    };
    let state = Arc::new(ServerState {
        model,
        chat: chat_format,
        names,
        created: now_secs(),
        requests: AtomicU64::new(0),
        in_flight: Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
        max_in_flight,
        max_body: if options.max_body_bytes == 0 {
            defaults.max_body_bytes
        } else {
            options.max_body_bytes
        },
        body_timeout: if options.body_timeout.is_zero() {
            defaults.body_timeout
        } else {
            options.body_timeout
        },
        options,
    });
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model_info))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/health", get(|| async { StatusCode::OK }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_in_flight,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .with_state(state)
}

/// Middleware: at most `max_in_flight` requests at once; one more is a 429.
async fn limit_in_flight(
    State(s): State<Arc<ServerState>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let Ok(_permit) = s.in_flight.clone().try_acquire_owned() else {
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "the server is busy: {} requests are in flight; retry later",
                s.max_in_flight
            ),
        )
        .into_response();
        resp.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return resp;
    };
    next.run(req).await
}

/// Reads a request body within the size limit and the body timeout. A body over the limit
/// is still read (and dropped), up to 16 times the limit, so that the client, still sending,
/// gets its 413 instead of a broken pipe; a larger one closes the connection.
async fn read_body(s: &ServerState, req: Request) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt as _;
    let too_large = |close: bool| {
        let mut e = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than the server's limit of {} bytes",
                s.max_body
            ),
        );
        e.close = close;
        e
    };
    let cap = s.max_body.saturating_mul(16).max(s.max_body);
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > cap as u64) {
        return Err(too_large(true));
    }
    let mut over = announced.is_some_and(|n| n > s.max_body as u64);
    let deadline = tokio::time::Instant::now() + s.body_timeout;
    let mut body = req.into_body();
    let mut buf = Vec::new();
    let mut total = 0usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                let mut e = ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} s",
                        s.body_timeout.as_secs_f32()
                    ),
                );
                e.close = true;
                return Err(e);
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let mut e = ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("the request body could not be read: {e}"),
                );
                e.close = true;
                return Err(e);
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total > cap {
                return Err(too_large(true));
            }
            over |= total > s.max_body;
            if !over {
                buf.extend_from_slice(&data);
            }
        }
    }
    if over {
        return Err(too_large(false));
    }
    Ok(Bytes::from(buf))
}

fn model_entry(s: &ServerState, name: &str) -> Value {
    json!({"id": name, "object": "model", "created": s.created, "owned_by": "supo",
           "root": s.model.name(), "parent": null, "max_model_len": s.model.max_context()})
}

async fn models(State(s): State<Arc<ServerState>>) -> Response {
    let data: Vec<Value> = s.names.iter().map(|n| model_entry(&s, n)).collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn model_info(State(s): State<Arc<ServerState>>, Path(id): Path<String>) -> Response {
    if s.names.contains(&id) {
        Json(model_entry(&s, &id)).into_response()
    } else {
        ApiError::unknown_model(&id).into_response()
    }
}

/// The served name a request asks for (`model`; absent: the first served name).
fn check_model(s: &ServerState, f: &Fields) -> Result<String, ApiError> {
    match f.string("model")? {
        None => Ok(s.names[0].clone()),
        Some(m) if s.names.iter().any(|n| n == m) => Ok(m.to_string()),
        Some(m) => Err(ApiError::unknown_model(m)),
    }
}

/// The prompt the model sees and the most tokens it may generate, or vLLM's 400 for a prompt
/// that does not fit.
fn fit(s: &ServerState, prompt: &[u32], requested: usize) -> Result<(Vec<u32>, usize), ApiError> {
    let limit = s.model.max_context();
    let prompt_len = prompt.len();
    if prompt.is_empty() {
        return Err(ApiError::bad("prompt", "the prompt is empty"));
    }
    if s.options.truncate_prompt {
        let max_new = requested.min(limit / 2).max(1);
        let keep = limit.saturating_sub(max_new).max(1);
        Ok((prompt[prompt_len.saturating_sub(keep)..].to_vec(), max_new))
    } else if prompt_len >= limit {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "This model's maximum context length is {limit} tokens. However, you requested \
                 {prompt_len} tokens in the messages."
            ),
        ))
    } else {
        Ok((prompt.to_vec(), requested.min(limit - prompt_len)))
    }
}

/// Decodes `n` choices of `window` on the blocking pool.
async fn run_choices(
    s: &Arc<ServerState>,
    window: Vec<u32>,
    base: sampling::DecodeRequest,
    seed: u64,
    n: usize,
) -> Result<Vec<Decoded>, ApiError> {
    let model = s.model.clone();
    let out = tokio::task::spawn_blocking(move || {
        (0..n)
            .map(|i| {
                let mut r = base.clone();
                r.seed = choice_seed(seed, i);
                decode(model.as_ref(), &window, &r)
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await;
    match out {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("generation failed: {e}"),
        )),
    }
}

/// How a token is written in log-probs.
fn token_string(model: &dyn TokenModel, id: u32, as_ids: bool) -> String {
    if as_ids {
        format!("token_id:{id}")
    } else {
        model.tokenizer().token_text(id).unwrap_or("").to_string()
    }
}

/// A chat log-prob entry: `{token, logprob, bytes, top_logprobs}`.
fn chat_logprob(
    model: &dyn TokenModel,
    id: u32,
    lp: f32,
    top: &[(u32, f32)],
    as_ids: bool,
) -> Value {
    let entry = |id: u32, lp: f32| {
        let token = token_string(model, id, as_ids);
        let text = model.tokenizer().token_text(id).unwrap_or("");
        json!({"token": token, "logprob": lp, "bytes": text.as_bytes()})
    };
    let mut e = entry(id, lp);
    e["top_logprobs"] = top
        .iter()
        .map(|&(t, l)| entry(t, l))
        .collect::<Vec<_>>()
        .into();
    e
}

/// A conversation written by the model's chat format, else the built-in template; a
/// conversation it cannot write is a 400.
fn render_with(
    s: &ServerState,
    messages: &[ChatMessage],
    tools: &[Value],
    add_generation_prompt: bool,
    continue_final_message: bool,
) -> Result<String, ApiError> {
    let Some(chat) = &s.chat else {
        return render(
            messages,
            tools,
            add_generation_prompt,
            continue_final_message,
        );
    };
    for (i, m) in messages.iter().enumerate() {
        if !ROLES.contains(&m.role.as_str()) {
            return Err(ApiError::bad(
                format!("messages[{i}].role"),
                format!(
                    "message {i} has unknown role {:?}: one of system, developer, user, \
                     assistant, tool",
                    m.role
                ),
            ));
        }
    }
    chat.render(
        messages,
        tools,
        add_generation_prompt,
        continue_final_message,
    )
    .map_err(|e| ApiError::bad("messages", e))
}

/// The JSON calls of a reply as OpenAI `tool_calls` (ids `call_{prefix}-{i}`), with the text
/// before them; `None` when the reply holds no call (or a call block that does not parse: the
/// reply then stays text).
fn tool_calls(text: &str, prefix: &str) -> Option<(String, Value)> {
    let parsed = supo_agent::toolcall::parse_json_calls(text)?.ok()?;
    if parsed.calls.is_empty() {
        return None;
    }
    let calls: Vec<Value> = parsed
        .calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let arguments = match &c.arguments {
                Value::String(a) => a.clone(),
                Value::Null => "{}".to_string(),
                a => a.to_string(),
            };
            json!({"id": format!("call_{prefix}-{i}"), "type": "function",
                   "function": {"name": c.name, "arguments": arguments}})
        })
        .collect();
    Some((parsed.content, Value::Array(calls)))
}

/// What `tool_choice` asks for.
enum ToolChoice {
    None,
    Auto,
}

fn tool_choice(s: &ServerState, f: &Fields, tools: &[Value]) -> Result<ToolChoice, ApiError> {
    let tool_names: Vec<&str> = tools
        .iter()
        .filter_map(|t| t.pointer("/function/name").and_then(|n| n.as_str()))
        .collect();
    let cannot = |what: String| {
        let tok = s.model.tokenizer();
        let writable = tok.decode(&tok.encode("<tool_call>")) == "<tool_call>";
        let why = if writable {
            "supo serve has no guided decoding to force a call".to_string()
        } else {
            format!(
                "supo serve has no guided decoding, and the model `{}` cannot write a tool \
                 call (its vocabulary has no \"<tool_call>\")",
                s.model.name()
            )
        };
        ApiError::bad(
            "tool_choice",
            format!(
                "tool_choice {what} cannot be satisfied: {why}; use \"auto\" (calls are read \
                 from the text) or \"none\""
            ),
        )
    };
    match f.get("tool_choice") {
        None => Ok(if tools.is_empty() {
            ToolChoice::None
        } else {
            ToolChoice::Auto
        }),
        Some(Value::String(c)) if c == "none" => Ok(ToolChoice::None),
        Some(Value::String(c)) if c == "auto" => Ok(ToolChoice::Auto),
        Some(Value::String(c)) if c == "required" => {
            if tools.is_empty() {
                Err(ApiError::bad(
                    "tool_choice",
                    "tool_choice \"required\" needs `tools`",
                ))
            } else {
                Err(cannot("\"required\"".into()))
            }
        }
        Some(v @ Value::Object(_)) => {
            let name = v
                .pointer("/function/name")
                .and_then(|n| n.as_str())
                .filter(|_| v.get("type").and_then(|t| t.as_str()) == Some("function"))
                .ok_or_else(|| {
                    ApiError::bad(
                        "tool_choice",
                        "a named tool_choice is {\"type\": \"function\", \"function\": {\"name\": …}}",
                    )
                })?;
            if !tool_names.contains(&name) {
                return Err(ApiError::bad(
                    "tool_choice",
                    format!("Tool '{name}' has not been passed in `tools`."),
                ));
            }
            Err(cannot(format!("naming the function {name:?}")))
        }
        Some(v) => Err(ApiError::bad(
            "tool_choice",
            format!(
                "tool_choice must be \"none\", \"auto\", \"required\" or a named function, not {v}"
            ),
        )),
    }
}

/// `stream_options.include_usage`, which needs `stream`.
fn include_usage(f: &Fields, stream: bool) -> Result<bool, ApiError> {
    match f.get("stream_options") {
        None => Ok(false),
        Some(_) if !stream => Err(ApiError::bad(
            "stream_options",
            "Stream options can only be defined when `stream=True`.",
        )),
        Some(o) => match o.get("include_usage") {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(ApiError::bad(
                "stream_options.include_usage",
                format!("'include_usage' must be a boolean, not {v}"),
            )),
        },
    }
}

/// A server-sent events response of `events` (JSON chunks), then `data: [DONE]`.
fn sse(events: Vec<Value>) -> Response {
    let mut text = String::new();
    for e in events {
        text.push_str("data: ");
        text.push_str(&e.to_string());
        text.push_str("\n\n");
    }
    text.push_str("data: [DONE]\n\n");
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache")
        .body(Body::from(text))
        .unwrap_or_else(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        })
}

/// The pieces of `d.text` that each token adds (the text is cut at a stop string).
fn text_pieces(model: &dyn TokenModel, d: &Decoded) -> Vec<String> {
    let tok = model.tokenizer();
    let mut prev = 0;
    (0..d.tokens.len())
        .map(|i| {
            let mut end = tok.decode(&d.tokens[..=i]).len().min(d.text.len());
            if i + 1 == d.tokens.len() {
                end = d.text.len();
            }
            while !d.text.is_char_boundary(end) {
                end -= 1;
            }
            let piece = d.text.get(prev.min(end)..end).unwrap_or("").to_string();
            prev = prev.max(end);
            piece
        })
        .collect()
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion,
           "total_tokens": prompt + completion})
}

async fn chat(State(s): State<Arc<ServerState>>, req: Request) -> Response {
    match chat_inner(&s, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat_inner(s: &Arc<ServerState>, req: Request) -> Result<Response, ApiError> {
    let body = read_body(s, req).await?;
    let f = Fields::parse(&body)?;
    let model_name = check_model(s, &f)?;
    let messages = match f.get("messages") {
        Some(Value::Array(m)) if m.is_empty() => {
            return Err(ApiError::bad(
                "messages",
                "'messages' must have at least one message",
            ))
        }
        Some(Value::Array(m)) => m
            .iter()
            .enumerate()
            .map(|(i, m)| {
                serde_json::from_value::<ChatMessage>(m.clone()).map_err(|e| {
                    ApiError::bad(format!("messages[{i}]"), format!("message {i}: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(v) => {
            return Err(ApiError::bad(
                "messages",
                format!("'messages' must be a list, not {}", request::kind(v)),
            ))
        }
        None => return Err(ApiError::bad("messages", "'messages' is required")),
    };
    let tools: Vec<Value> = match f.get("tools") {
        None => Vec::new(),
        Some(Value::Array(t)) => t.clone(),
        Some(v) => {
            return Err(ApiError::bad(
                "tools",
                format!("'tools' must be a list, not {}", request::kind(v)),
            ))
        }
    };
    let choice = tool_choice(s, &f, &tools)?;
    let logprobs = f.bool("logprobs")?.unwrap_or(false);
    let top = f.int("top_logprobs", 0, MAX_TOP_LOGPROBS as i64)?;
    if top.is_some_and(|k| k > 0) && !logprobs {
        return Err(ApiError::bad(
            "top_logprobs",
            "when using `top_logprobs`, `logprobs` must be set to true.",
        ));
    }
    let vocab = s.model.tokenizer().vocab_size();
    let mut sampling = request::sampling(&f, 256, vocab, s.options.logprobs_mode)?;
    sampling.decode.top_logprobs = top.unwrap_or(0) as usize;
    let stream = f.bool("stream")?.unwrap_or(false);
    let with_usage = include_usage(&f, stream)?;
    let as_ids = f.bool("return_tokens_as_token_ids")?.unwrap_or(false);
    let token_ids = f.bool("return_token_ids")?.unwrap_or(false);
    let text = render_with(
        s,
        &messages,
        &tools,
        f.bool("add_generation_prompt")?.unwrap_or(true),
        f.bool("continue_final_message")?.unwrap_or(false),
    )?;
    let model = s.model.clone();
    let prompt = model.tokenizer().encode(&text);
    let (window, max_new) = fit(s, &prompt, sampling.decode.max_new_tokens)?;
    sampling.decode.max_new_tokens = max_new;
    let n = s.requests.fetch_add(1, Ordering::Relaxed);
    let seed = sampling.seed.unwrap_or(n);
    let decoded = run_choices(s, window, sampling.decode, seed, sampling.n).await?;
    let id = format!("chatcmpl-{n}");
    let created = now_secs();
    let completion_tokens: usize = decoded.iter().map(|d| d.tokens.len()).sum();
    let read_calls = s.chat.as_ref().is_some_and(|c| c.reads_tool_calls())
        && !tools.is_empty()
        && matches!(choice, ToolChoice::Auto);
    let calls: Vec<Option<(String, Value)>> = decoded
        .iter()
        .enumerate()
        .map(|(index, d)| {
            read_calls
                .then(|| tool_calls(&d.text, &format!("chatcmpl-{n}-{index}")))
                .flatten()
        })
        .collect();
    let lp_entries = |d: &Decoded, i: usize| {
        chat_logprob(
            model.as_ref(),
            d.tokens[i],
            d.logprobs[i],
            &d.top[i],
            as_ids,
        )
    };
    if stream {
        let chunk = |choices: Value| {
            let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                               "model": model_name, "choices": choices});
            if with_usage {
                c["usage"] = Value::Null;
            }
            c
        };
        let mut events = Vec::new();
        for (index, d) in decoded.iter().enumerate() {
            events.push(chunk(json!([{"index": index,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": null, "finish_reason": null}])));
            if let Some((content, tool_calls)) = &calls[index] {
                let mut delta = json!({"tool_calls": tool_calls});
                if !content.is_empty() {
                    delta["content"] = content.clone().into();
                }
                for (i, c) in delta["tool_calls"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    c["index"] = i.into();
                }
                events.push(chunk(
                    json!([{"index": index, "delta": delta, "logprobs": null,
                    "finish_reason": null}]),
                ));
                events.push(chunk(
                    json!([{"index": index, "delta": {}, "logprobs": null,
                    "finish_reason": "tool_calls", "stop_reason": d.stop_reason()}]),
                ));
                continue;
            }
            for (i, piece) in text_pieces(model.as_ref(), d).into_iter().enumerate() {
                let lp = if logprobs {
                    json!({"content": [lp_entries(d, i)]})
                } else {
                    Value::Null
                };
                let mut c = json!({"index": index, "delta": {"content": piece},
                                   "logprobs": lp, "finish_reason": null});
                if token_ids {
                    c["token_ids"] = json!([d.tokens[i]]);
                }
                events.push(chunk(json!([c])));
            }
            events.push(chunk(
                json!([{"index": index, "delta": {}, "logprobs": null,
                "finish_reason": d.finish_reason(), "stop_reason": d.stop_reason()}]),
            ));
        }
        if with_usage {
            let mut last = chunk(json!([]));
            last["usage"] = usage(prompt.len(), completion_tokens);
            events.push(last);
        }
        return Ok(sse(events));
    }
    let choices: Vec<Value> = decoded
        .iter()
        .enumerate()
        .map(|(index, d)| {
            let lp = if logprobs {
                json!({"content": (0..d.tokens.len()).map(|i| lp_entries(d, i)).collect::<Vec<_>>()})
            } else {
                Value::Null
            };
            let mut c = json!({"index": index,
                "message": {"role": "assistant", "content": d.text, "refusal": null,
                            "tool_calls": []},
                "logprobs": lp, "finish_reason": d.finish_reason(),
                "stop_reason": d.stop_reason()});
            if let Some((content, tool_calls)) = &calls[index] {
                c["message"]["content"] = if content.is_empty() {
                    Value::Null
                } else {
                    content.clone().into()
                };
                c["message"]["tool_calls"] = tool_calls.clone();
                c["finish_reason"] = "tool_calls".into();
            }
            if token_ids {
                c["token_ids"] = json!(d.tokens);
            }
            c
        })
        .collect();
    let mut out = json!({
        "id": id, "object": "chat.completion", "created": created, "model": model_name,
        "choices": choices, "usage": usage(prompt.len(), completion_tokens),
    });
    if token_ids {
        out["prompt_token_ids"] = json!(prompt);
    }
    Ok(Json(out).into_response())
}

/// The prompts of a completions request: text, token ids, or a list of either.
fn prompts(s: &ServerState, f: &Fields) -> Result<Vec<(String, Vec<u32>)>, ApiError> {
    let tok = s.model.tokenizer();
    let vocab = tok.vocab_size();
    let ids = |a: &[Value], param: &str| -> Result<Vec<u32>, ApiError> {
        a.iter()
            .enumerate()
            .map(|(i, t)| {
                request::token_id(t, vocab).map_err(|m| ApiError::bad(format!("{param}[{i}]"), m))
            })
            .collect()
    };
    let one = |v: &Value, param: &str| -> Result<(String, Vec<u32>), ApiError> {
        match v {
            Value::String(t) => Ok((t.clone(), tok.encode(t))),
            Value::Array(a) if a.iter().all(|x| x.is_number()) && !a.is_empty() => {
                let ids = ids(a, param)?;
                Ok((tok.decode(&ids), ids))
            }
            v => Err(ApiError::bad(
                param,
                format!(
                    "a prompt must be a string or a non-empty list of token ids, not {}",
                    request::kind(v)
                ),
            )),
        }
    };
    let list = match f.get("prompt") {
        None => return Err(ApiError::bad("prompt", "'prompt' is required")),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(ApiError::bad("prompt", "'prompt' must not be empty"))
        }
        Some(v @ Value::String(_)) => vec![one(v, "prompt")?],
        Some(Value::Array(a)) if a.iter().all(|x| x.is_number()) => {
            vec![one(&Value::Array(a.clone()), "prompt")?]
        }
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| one(v, &format!("prompt[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(ApiError::bad(
                "prompt",
                format!(
                    "'prompt' must be a string or token ids, not {}",
                    request::kind(v)
                ),
            ))
        }
    };
    Ok(list)
}

/// The legacy completions log-probs of `ids` (with `lps` and `top`), their text starting at
/// byte `offset`.
#[allow(clippy::too_many_arguments)]
fn completion_logprobs(
    model: &dyn TokenModel,
    ids: &[u32],
    lps: &[f32],
    top: &[Vec<(u32, f32)>],
    as_ids: bool,
    offset: usize,
    text: &str,
) -> (Vec<String>, Vec<f32>, Vec<Value>, Vec<usize>) {
    let tok = model.tokenizer();
    let tokens: Vec<String> = ids
        .iter()
        .map(|&t| token_string(model, t, as_ids))
        .collect();
    let tops = top
        .iter()
        .map(|alts| {
            let mut m = serde_json::Map::new();
            for &(t, l) in alts {
                m.insert(token_string(model, t, as_ids), l.into());
            }
            Value::Object(m)
        })
        .collect();
    let offsets = (0..ids.len())
        .map(|i| {
            let end = tok.decode(&ids[..=i]).len();
            let own = tok.token_text(ids[i]).unwrap_or("").len();
            (offset + end.saturating_sub(own)).min(offset + text.len())
        })
        .collect();
    (tokens, lps.to_vec(), tops, offsets)
}

async fn completions(State(s): State<Arc<ServerState>>, req: Request) -> Response {
    match completions_inner(&s, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn completions_inner(s: &Arc<ServerState>, req: Request) -> Result<Response, ApiError> {
    let body = read_body(s, req).await?;
    let f = Fields::parse(&body)?;
    let model_name = check_model(s, &f)?;
    let prompts = prompts(s, &f)?;
    if f.get("suffix").is_some() {
        return Err(ApiError::bad("suffix", "'suffix' is not supported"));
    }
    let k = f.int("logprobs", 0, MAX_TOP_LOGPROBS as i64)?;
    let echo = f.bool("echo")?.unwrap_or(false);
    let as_ids = f.bool("return_tokens_as_token_ids")?.unwrap_or(false);
    let token_ids = f.bool("return_token_ids")?.unwrap_or(false);
    let stream = f.bool("stream")?.unwrap_or(false);
    let with_usage = include_usage(&f, stream)?;
    let vocab = s.model.tokenizer().vocab_size();
    let mut sampling = request::sampling(&f, 16, vocab, s.options.logprobs_mode)?;
    sampling.decode.top_logprobs = k.unwrap_or(0) as usize;
    let model = s.model.clone();
    let n = s.requests.fetch_add(1, Ordering::Relaxed);
    let seed = sampling.seed.unwrap_or(n);
    let id = format!("cmpl-{n}");
    let created = now_secs();
    let mut choices = Vec::new();
    let (mut prompt_total, mut completion_total) = (0, 0);
    for (p, (ptext, pids)) in prompts.iter().enumerate() {
        let (window, max_new) = fit(s, pids, sampling.decode.max_new_tokens)?;
        let mut base = sampling.decode.clone();
        base.max_new_tokens = max_new;
        // Scored before the choices are sampled: a model with a prefix cache then feeds the
        // choices only the prompt's last token.
        let echo_scores = match (echo, k) {
            (true, Some(k)) => {
                let (m, ids, t, mode) = (
                    model.clone(),
                    pids.clone(),
                    sampling.decode.temperature,
                    s.options.logprobs_mode,
                );
                Some(
                    tokio::task::spawn_blocking(move || {
                        score(m.as_ref(), &ids, k as usize, t, mode)
                    })
                    .await
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
                )
            }
            _ => None,
        };
        let decoded = run_choices(s, window, base, choice_seed(seed, p * 1000), sampling.n).await?;
        prompt_total += pids.len();
        for (i, d) in decoded.iter().enumerate() {
            completion_total += d.tokens.len();
            let sep = if echo && !ptext.is_empty() && !d.text.is_empty() {
                let joined = model
                    .tokenizer()
                    .decode(&[pids.as_slice(), &d.tokens[..1]].concat());
                let pd = model.tokenizer().decode(pids);
                let first = model.tokenizer().decode(&d.tokens[..1]);
                joined
                    .get(pd.len()..joined.len().saturating_sub(first.len()))
                    .unwrap_or("")
                    .to_string()
            } else {
                String::new()
            };
            let text = if echo {
                format!("{ptext}{sep}{}", d.text)
            } else {
                d.text.clone()
            };
            let lp = match k {
                None => Value::Null,
                Some(_) => {
                    let gen_offset = if echo { ptext.len() + sep.len() } else { 0 };
                    let (mut tokens, mut lps, mut tops, mut offs) =
                        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                    if let Some((plps, ptop)) = &echo_scores {
                        let (t, l, tp, o) =
                            completion_logprobs(model.as_ref(), pids, plps, ptop, as_ids, 0, ptext);
                        tokens.extend(t);
                        lps.extend(l);
                        tops.extend(tp);
                        offs.extend(o);
                    }
                    let (t, l, tp, o) = completion_logprobs(
                        model.as_ref(),
                        &d.tokens,
                        &d.logprobs,
                        &d.top,
                        as_ids,
                        gen_offset,
                        &d.text,
                    );
                    tokens.extend(t);
                    lps.extend(l);
                    tops.extend(tp);
                    offs.extend(o);
                    json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops,
                           "text_offset": offs})
                }
            };
            let mut c = json!({"index": p * sampling.n + i, "text": text, "logprobs": lp,
                "finish_reason": d.finish_reason(), "stop_reason": d.stop_reason()});
            if token_ids {
                c["token_ids"] = json!(d.tokens);
                c["prompt_token_ids"] = json!(pids);
            }
            choices.push(c);
        }
    }
    let u = usage(prompt_total, completion_total);
    if stream {
        let mut events: Vec<Value> = choices
            .into_iter()
            .map(|c| {
                let mut e = json!({"id": id, "object": "text_completion", "created": created,
                                   "model": model_name, "choices": [c]});
                if with_usage {
                    e["usage"] = Value::Null;
                }
                e
            })
            .collect();
        if with_usage {
            events.push(
                json!({"id": id, "object": "text_completion", "created": created,
                               "model": model_name, "choices": [], "usage": u}),
            );
        }
        return Ok(sse(events));
    }
    Ok(Json(
        json!({"id": id, "object": "text_completion", "created": created,
                   "model": model_name, "choices": choices, "usage": u}),
    )
    .into_response())
}

async fn tokenize(State(s): State<Arc<ServerState>>, req: Request) -> Response {
    let result = async {
        let body = read_body(&s, req).await?;
        let f = Fields::parse(&body)?;
        check_model(&s, &f)?;
        let text = match (f.get("prompt"), f.get("messages")) {
            (Some(Value::String(p)), None) => p.clone(),
            (None, Some(m)) => {
                let m: Vec<ChatMessage> = serde_json::from_value(m.clone())
                    .map_err(|e| ApiError::bad("messages", format!("bad messages: {e}")))?;
                let tools = match f.get("tools") {
                    Some(Value::Array(t)) => t.clone(),
                    _ => Vec::new(),
                };
                render_with(
                    &s,
                    &m,
                    &tools,
                    f.bool("add_generation_prompt")?.unwrap_or(true),
                    f.bool("continue_final_message")?.unwrap_or(false),
                )?
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "give exactly one of \"prompt\" (a string) and \"messages\"",
                ))
            }
        };
        let tokens = s.model.tokenizer().encode(&text);
        Ok::<_, ApiError>(Json(json!({"count": tokens.len(),
            "max_model_len": s.model.max_context(), "tokens": tokens})))
    }
    .await;
    match result {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn detokenize(State(s): State<Arc<ServerState>>, req: Request) -> Response {
    let result = async {
        let body = read_body(&s, req).await?;
        let f = Fields::parse(&body)?;
        check_model(&s, &f)?;
        if f.get("tokens").is_none() {
            return Err(ApiError::bad("tokens", "'tokens' is required"));
        }
        let ids = f.ids("tokens", s.model.tokenizer().vocab_size())?;
        Ok::<_, ApiError>(Json(json!({"prompt": s.model.tokenizer().decode(&ids)})))
    }
    .await;
    match result {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template() {
        let m = vec![
            ChatMessage::new("system", "be brief"),
            ChatMessage::new("user", "hi"),
        ];
        assert_eq!(
            render_chat(&m, &[], true, false).unwrap(),
            "<system> be brief\n<user> hi\n<assistant>"
        );
        let mut open = m.clone();
        open.push(ChatMessage::new("assistant", "so far"));
        assert_eq!(
            render_chat(&open, &[], true, true).unwrap(),
            "<system> be brief\n<user> hi\n<assistant> so far"
        );
        assert!(render_chat(&m, &[], true, true).is_err());
        assert!(render_chat(&[ChatMessage::new("robot", "x")], &[], true, false).is_err());
        assert_eq!(
            render_chat(&[ChatMessage::new("developer", "x")], &[], false, false).unwrap(),
            "<system> x"
        );
    }
}
