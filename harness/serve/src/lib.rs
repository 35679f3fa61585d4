//! # supo-serve
//!
//! `supo serve` as a library: any `supo_core::model::TokenModel` on the OpenAI-compatible API,
//! for tests and for agents that want a local server over their own model. The command line
//! (`supo serve`) binds [`router`] to a port; the built-in model is `supo-train`'s.
//!
#![warn(missing_docs)]
//! Any [`TokenModel`] on the OpenAI-compatible chat-completions API, with token
//! log-probs and token ids as vLLM returns them, and vLLM's `/tokenize`.
//!
//! Routes: `GET /v1/models`, `POST /v1/chat/completions` (no streaming, `n = 1`; `logprobs`,
//! `return_tokens_as_token_ids`, `seed`, `temperature`, `max_tokens` or
//! `max_completion_tokens`, `add_generation_prompt`, `continue_final_message`), `POST
//! /tokenize` (`prompt` or `messages`). Errors are OpenAI-style `{"error": {"message", …}}`
//! with status 400 (bad request, prompt too long) or 500 (model failure). The server has no
//! tool parser: calls come back as text (see [`supo_agent::toolcall`]).
//!
//! The chat template ([`render_chat`]) is text with role markers, tokenized by the model's
//! tokenizer: each message is `<role>` (`<system>`, `<user>`, `<assistant>`, `<tool>`: the built-in model's role words) followed by its content, tool docs (`tools`) come first
//! as `<tools>` and their JSON, the generation prompt is `<assistant>`; everything is joined
//! by newlines. An assistant message's calls are written as Hermes `<tool_call>` blocks. With
//! `continue_final_message` the last (assistant) message is left open and no generation prompt
//! is added.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use supo_agent::http::ChatMessage;
use supo_core::model::{GenerationFinish, SamplingParams, TokenModel};

/// The roles the template knows.
const ROLES: &[&str] = &["system", "user", "assistant", "tool"];

/// Renders a conversation with the template described in the module docs.
pub fn render_chat(
    messages: &[ChatMessage],
    tools: &[Value],
    add_generation_prompt: bool,
    continue_final_message: bool,
) -> Result<String, String> {
    let mut parts: Vec<String> = Vec::with_capacity(messages.len() + 2);
    if !tools.is_empty() {
        parts.push(format!("<tools> {}", Value::from(tools.to_vec())));
    }
    for (i, m) in messages.iter().enumerate() {
        if !ROLES.contains(&m.role.as_str()) {
            return Err(format!("message {i} has unknown role {:?}", m.role));
        }
        let mut text = format!("<{}> {}", m.role, m.content);
        for c in &m.tool_calls {
            let call = json!({"name": c.function.name, "arguments": c.function.arguments});
            text.push_str(&format!(" <tool_call> {call} </tool_call>"));
        }
        parts.push(text);
    }
    if continue_final_message {
        if messages.last().is_none_or(|m| m.role != "assistant") {
            return Err("continue_final_message needs a final assistant message".into());
        }
    } else if add_generation_prompt {
        parts.push("<assistant>".into());
    }
    Ok(parts.join("\n"))
}

/// How the server treats prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServeOptions {
    /// Feed the model only the end of a prompt longer than its context (its last
    /// `max_context − max_new` tokens, with `max_new` at most half the context), as a
    /// sliding-window model would see it; `usage` still counts the whole prompt. Off: such a
    /// prompt is a 400 error, as vLLM answers it.
    pub truncate_prompt: bool,
}

/// The server's state: the model, its options and a request counter.
struct ServerState {
    model: Arc<dyn TokenModel>,
    options: ServeOptions,
    requests: AtomicU64,
}

/// The HTTP application serving `model`.
pub fn router(model: Arc<dyn TokenModel>, options: ServeOptions) -> Router {
    let state = Arc::new(ServerState {
        model,
        options,
        requests: AtomicU64::new(0),
    });
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/tokenize", post(tokenize))
        .with_state(state)
}

/// An OpenAI-style error response.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let kind = if status.is_client_error() {
        "BadRequestError"
    } else {
        "InternalServerError"
    };
    let body = json!({"error": {"message": message.into(), "type": kind, "code": status.as_u16()}});
    (status, Json(body)).into_response()
}

async fn models(State(s): State<Arc<ServerState>>) -> Response {
    Json(
        json!({"object": "list", "data": [{"id": s.model.name(), "object": "model",
        "owned_by": "supo", "max_model_len": s.model.max_context()}]}),
    )
    .into_response()
}

/// The fields of a chat-completion request the server reads.
#[derive(Debug, Deserialize)]
struct ChatBody {
    messages: Vec<ChatMessage>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_completion_tokens: Option<usize>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    return_tokens_as_token_ids: Option<bool>,
    #[serde(default)]
    add_generation_prompt: Option<bool>,
    #[serde(default)]
    continue_final_message: Option<bool>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    n: Option<usize>,
}

/// Parses a JSON body, turning serde's rejection into an OpenAI-style 400.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("bad request body: {e}"),
        ))
    })
}

async fn chat(State(s): State<Arc<ServerState>>, body: axum::body::Bytes) -> Response {
    let req: ChatBody = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    if req.stream == Some(true) {
        return error(StatusCode::BAD_REQUEST, "streaming is not supported");
    }
    if req.n.is_some_and(|n| n != 1) {
        return error(StatusCode::BAD_REQUEST, "only n = 1 is supported");
    }
    let temperature = req.temperature.unwrap_or(1.0);
    if !(temperature.is_finite() && temperature >= 0.0) {
        return error(StatusCode::BAD_REQUEST, "temperature must be >= 0");
    }
    let tools = req.tools.unwrap_or_default();
    let text = match render_chat(
        &req.messages,
        &tools,
        req.add_generation_prompt.unwrap_or(true),
        req.continue_final_message.unwrap_or(false),
    ) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let model = s.model.clone();
    let prompt = model.tokenizer().encode(&text);
    let limit = model.max_context();
    let requested = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(256)
        .max(1);
    let prompt_len = prompt.len();
    let (window, max_new_tokens) = if s.options.truncate_prompt {
        let max_new = requested.min(limit / 2).max(1);
        let keep = limit.saturating_sub(max_new).max(1);
        (prompt[prompt_len.saturating_sub(keep)..].to_vec(), max_new)
    } else if prompt_len >= limit {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "This model's maximum context length is {limit} tokens. However, you requested \
                 {prompt_len} tokens in the messages."
            ),
        );
    } else {
        (prompt, requested.min(limit - prompt_len))
    };
    if window.is_empty() {
        return error(StatusCode::BAD_REQUEST, "the prompt is empty");
    }
    let n = s.requests.fetch_add(1, Ordering::Relaxed);
    let params = SamplingParams {
        max_new_tokens,
        temperature,
        seed: req.seed.unwrap_or(n),
    };
    let gen_model = model.clone();
    let generated = tokio::task::spawn_blocking(move || gen_model.generate(&window, &params)).await;
    let g = match generated {
        Ok(Ok(g)) => g,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("generation failed: {e}"),
            )
        }
    };
    let tok = model.tokenizer();
    let content = tok.decode(&g.tokens);
    let finish = match g.finish {
        GenerationFinish::Stop => "stop",
        GenerationFinish::Length => "length",
    };
    let mut choice = json!({"index": 0, "message": {"role": "assistant", "content": content},
        "finish_reason": finish});
    if req.logprobs == Some(true) {
        let as_ids = req.return_tokens_as_token_ids == Some(true);
        let content: Vec<Value> = g
            .tokens
            .iter()
            .zip(&g.logprobs)
            .map(|(&id, &lp)| {
                let token = if as_ids {
                    format!("token_id:{id}")
                } else {
                    tok.token_text(id).unwrap_or("").to_string()
                };
                json!({"token": token, "logprob": lp, "bytes": null, "top_logprobs": []})
            })
            .collect();
        choice["logprobs"] = json!({"content": content});
    }
    Json(json!({
        "id": format!("chatcmpl-{n}"),
        "object": "chat.completion",
        "created": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "model": model.name(),
        "choices": [choice],
        "usage": {"prompt_tokens": prompt_len, "completion_tokens": g.tokens.len(),
                  "total_tokens": prompt_len + g.tokens.len()},
    }))
    .into_response()
}

/// The fields of a `/tokenize` request.
#[derive(Debug, Deserialize)]
struct TokenizeBody {
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    messages: Option<Vec<ChatMessage>>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    add_generation_prompt: Option<bool>,
    #[serde(default)]
    continue_final_message: Option<bool>,
}

async fn tokenize(State(s): State<Arc<ServerState>>, body: axum::body::Bytes) -> Response {
    let req: TokenizeBody = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let text = match (req.prompt, req.messages) {
        (Some(p), None) => p,
        (None, Some(m)) => match render_chat(
            &m,
            &req.tools.unwrap_or_default(),
            req.add_generation_prompt.unwrap_or(true),
            req.continue_final_message.unwrap_or(false),
        ) {
            Ok(t) => t,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give exactly one of \"prompt\" and \"messages\"",
            )
        }
    };
    let tokens = s.model.tokenizer().encode(&text);
    Json(
        json!({"count": tokens.len(), "max_model_len": s.model.max_context(),
        "tokens": tokens}),
    )
    .into_response()
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
    }
}
