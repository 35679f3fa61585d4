//! An OpenAI-compatible chat-completions client (vLLM, SGLang, the llama.cpp server, Ollama,
//! `supo serve`): messages with `tools` and `tool_calls`, token log-probs with token ids
//! (vLLM's `return_tokens_as_token_ids`), vLLM's `/tokenize`, timeouts, and retries with
//! exponential back-off on transport failures, 429 and 5xx. Malformed or truncated responses
//! are errors, never panics.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::local::LocalTokenizer;

/// One chat message, as the OpenAI API writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text (`null` reads as empty).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub content: String,
    /// The calls of an assistant message, when the server parsed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message of `role` with `content`.
    pub fn new(role: &str, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.to_string(),
            content: content.into(),
            ..Default::default()
        }
    }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// A structured tool call (`{"id", "type": "function", "function": {"name", "arguments"}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call id the tool message refers to.
    #[serde(default)]
    pub id: String,
    /// Always `function`.
    #[serde(default = "function_type", rename = "type")]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".to_string()
}

/// The function of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function name.
    pub name: String,
    /// The arguments: a JSON string in the OpenAI API, an object in Ollama's.
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// One chat-completion request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Tool docs in the OpenAI format (`{"type": "function", "function": {…}}`); none sent
    /// when empty.
    pub tools: Vec<serde_json::Value>,
    /// The most tokens to generate.
    pub max_tokens: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// The sampler's seed, when set.
    pub seed: Option<u64>,
    /// Continue the last (assistant) message instead of starting a new one (vLLM's
    /// `continue_final_message`).
    pub continue_final_message: bool,
}

/// Why a completion stopped, as the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionFinish {
    /// `stop`: the model ended its message.
    Stop,
    /// `length`: `max_tokens` or the model's context was reached.
    Length,
    /// `tool_calls`: the model called tools.
    ToolCalls,
    /// Any other reason the server gave.
    Other(String),
}

/// Token counts the server reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct Usage {
    /// Tokens of the prompt the server built.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
}

/// A chat completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The message text.
    pub text: String,
    /// Calls the server's tool parser found.
    pub tool_calls: Vec<ToolCall>,
    /// The generated token ids, when the server returned them with the log-probs.
    pub token_ids: Option<Vec<u32>>,
    /// `log π` of each generated token, when the server returned log-probs.
    pub logprobs: Option<Vec<f32>>,
    /// Why it stopped.
    pub finish: CompletionFinish,
    /// The server's token counts, when given.
    pub usage: Option<Usage>,
}

/// A failure of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The server could not be reached or the connection broke (after the retries).
    Transport(String),
    /// The server answered with an error status (after the retries, for 429 and 5xx).
    Status {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The response was not the expected JSON (after the retries).
    Malformed(String),
}

impl PolicyError {
    /// Whether the server rejected the prompt as longer than its context.
    pub fn is_context_length(&self) -> bool {
        matches!(self, PolicyError::Status { status: 400, message }
            if message.contains("context length") || message.contains("maximum context"))
    }

    fn retryable(&self) -> bool {
        match self {
            PolicyError::Transport(_) | PolicyError::Malformed(_) => true,
            PolicyError::Status { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::Transport(m) => write!(f, "transport error: {m}"),
            PolicyError::Status { status, message } => write!(f, "HTTP {status}: {message}"),
            PolicyError::Malformed(m) => write!(f, "malformed response: {m}"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// Retries with exponential back-off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first wait; each later wait doubles, up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// How to reach a server.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// The API root, e.g. `http://127.0.0.1:8000/v1` (`/chat/completions` is appended;
    /// `/tokenize` goes to the root without `/v1`, as vLLM serves it).
    pub base_url: String,
    /// The model name sent with each request.
    pub model: String,
    /// A bearer token, when the server wants one.
    pub api_key: Option<String>,
    /// The limit on one request, body included.
    pub timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Ask for log-probs with token ids (`logprobs`, `return_tokens_as_token_ids`); turn off
    /// for servers that reject unknown fields.
    pub logprobs: bool,
}

impl HttpConfig {
    /// A config with the defaults: 300 s timeout, 3 retries, log-probs on.
    pub fn new(base_url: &str, model: &str) -> HttpConfig {
        HttpConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key: None,
            timeout: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            logprobs: true,
        }
    }
}

/// The client.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    client: reqwest::Client,
    config: HttpConfig,
    local: Option<std::sync::Arc<LocalTokenizer>>,
}

impl HttpPolicy {
    /// A client for `config`.
    pub fn new(config: HttpConfig) -> Result<HttpPolicy, PolicyError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| PolicyError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpPolicy {
            client,
            config,
            local: None,
        })
    }

    /// Tokenizes with `tokenizer` and the ChatML template instead of the server's `/tokenize`.
    pub fn with_local_tokenizer(mut self, tokenizer: std::sync::Arc<LocalTokenizer>) -> Self {
        self.local = Some(tokenizer);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    fn root_url(&self) -> &str {
        self.config
            .base_url
            .strip_suffix("/v1")
            .unwrap_or(&self.config.base_url)
    }

    /// One chat completion.
    pub async fn complete(&self, req: &ChatRequest) -> Result<Completion, PolicyError> {
        let mut body = serde_json::json!({
            "model": self.config.model,
            "messages": req.messages,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "stream": false,
        });
        let obj = body.as_object_mut().expect("a JSON object literal");
        if let Some(seed) = req.seed {
            obj.insert("seed".into(), seed.into());
        }
        if !req.tools.is_empty() {
            obj.insert("tools".into(), req.tools.clone().into());
        }
        if self.config.logprobs {
            obj.insert("logprobs".into(), true.into());
            obj.insert("return_tokens_as_token_ids".into(), true.into());
        }
        if req.continue_final_message {
            obj.insert("continue_final_message".into(), true.into());
            obj.insert("add_generation_prompt".into(), false.into());
        }
        let url = format!("{}/chat/completions", self.config.base_url);
        let v = self.post_json(&url, &body).await?;
        parse_completion(&v).map_err(PolicyError::Malformed)
    }

    /// The server's token ids of a conversation rendered by its chat template (vLLM's
    /// `/tokenize`), with the generation prompt when `add_generation_prompt`; with a local
    /// tokenizer, its ids of the ChatML rendering.
    pub async fn tokenize_chat(
        &self,
        messages: &[ChatMessage],
        tools: &[serde_json::Value],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, PolicyError> {
        if let Some(local) = &self.local {
            return local
                .encode_chat(messages, tools, add_generation_prompt)
                .map_err(PolicyError::Malformed);
        }
        let mut body = serde_json::json!({
            "model": self.config.model,
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "add_special_tokens": false,
        });
        if !tools.is_empty() {
            body["tools"] = tools.to_vec().into();
        }
        self.tokenize(&body).await
    }

    /// The server's token ids of a plain text (vLLM's `/tokenize` with a `prompt`), or the
    /// local tokenizer's.
    pub async fn tokenize_text(&self, text: &str) -> Result<Vec<u32>, PolicyError> {
        if let Some(local) = &self.local {
            return local.encode(text).map_err(PolicyError::Malformed);
        }
        let body = serde_json::json!({
            "model": self.config.model,
            "prompt": text,
            "add_special_tokens": false,
        });
        self.tokenize(&body).await
    }

    /// vLLM's `/tokenize` at the server root, else `/tokenize` under the API root (SGLang's
    /// `/v1/tokenize`).
    async fn tokenize(&self, body: &serde_json::Value) -> Result<Vec<u32>, PolicyError> {
        let root = format!("{}/tokenize", self.root_url());
        let v = match self.post_json(&root, body).await {
            Err(PolicyError::Status { status: 404, .. })
                if self.root_url() != self.config.base_url =>
            {
                let api = format!("{}/tokenize", self.config.base_url);
                self.post_json(&api, body).await
            }
            other => other,
        }
        .map_err(|e| match e {
            PolicyError::Status { status: 404, .. } => PolicyError::Status {
                status: 404,
                message: format!(
                    "{root} does not exist: token ids need a server with vLLM's /tokenize \
                     endpoint (vLLM, supo serve)"
                ),
            },
            e => e,
        })?;
        v.get("tokens")
            .and_then(|t| t.as_array())
            .ok_or_else(|| PolicyError::Malformed("/tokenize gave no \"tokens\" array".into()))?
            .iter()
            .map(|t| {
                t.as_u64()
                    .and_then(|t| u32::try_from(t).ok())
                    .ok_or_else(|| PolicyError::Malformed(format!("bad token id {t}")))
            })
            .collect()
    }

    /// POSTs `body`, retrying transport failures, malformed bodies, 429 and 5xx with back-off.
    async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, PolicyError> {
        let retry = self.config.retry;
        let mut wait = retry.initial_backoff;
        let mut attempt = 0;
        loop {
            match self.post_once(url, body).await {
                Ok(v) => return Ok(v),
                Err(e) if e.retryable() && attempt < retry.max_retries => {
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(retry.max_backoff);
                }
                Err(e) => {
                    return Err(if attempt > 0 {
                        with_attempts(e, attempt + 1)
                    } else {
                        e
                    })
                }
            }
        }
    }

    async fn post_once(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, PolicyError> {
        let mut req = self.client.post(url).json(body);
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| transport(url, &e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| transport(url, &e))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .or_else(|| v.get("message"))
                        .or_else(|| v.get("detail"))
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(PolicyError::Status {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            PolicyError::Malformed(format!("{url} answered with a body that is not JSON: {e}"))
        })
    }
}

fn transport(url: &str, e: &reqwest::Error) -> PolicyError {
    use std::error::Error as _;
    let mut msg = format!("{url}: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    if e.is_timeout() {
        msg.push_str(" (timed out)");
    }
    PolicyError::Transport(msg)
}

fn with_attempts(e: PolicyError, attempts: u32) -> PolicyError {
    let note = |m: String| format!("{m} (after {attempts} attempts)");
    match e {
        PolicyError::Transport(m) => PolicyError::Transport(note(m)),
        PolicyError::Malformed(m) => PolicyError::Malformed(note(m)),
        PolicyError::Status { status, message } => PolicyError::Status {
            status,
            message: note(message),
        },
    }
}

/// Reads a chat-completion response body.
pub fn parse_completion(v: &serde_json::Value) -> Result<Completion, String> {
    let choice = v
        .get("choices")
        .and_then(|c| c.as_array())
        .and_then(|c| c.first())
        .ok_or("the response has no choices")?;
    let message: ChatMessage = serde_json::from_value(
        choice
            .get("message")
            .cloned()
            .ok_or("the choice has no message")?,
    )
    .map_err(|e| format!("bad message: {e}"))?;
    let finish = match choice.get("finish_reason").and_then(|f| f.as_str()) {
        Some("stop") | Some("eos") => CompletionFinish::Stop,
        Some("length") => CompletionFinish::Length,
        Some("tool_calls") => CompletionFinish::ToolCalls,
        Some(other) => CompletionFinish::Other(other.to_string()),
        None => return Err("the choice has no finish_reason".into()),
    };
    let (token_ids, logprobs) = match choice.pointer("/logprobs/content") {
        Some(serde_json::Value::Array(items)) => {
            let mut ids = Some(Vec::with_capacity(items.len()));
            let mut lps = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let lp = item
                    .get("logprob")
                    .and_then(|l| l.as_f64())
                    .ok_or_else(|| format!("log-prob {i} is missing"))?;
                lps.push(lp as f32);
                let id = item
                    .get("token")
                    .and_then(|t| t.as_str())
                    .and_then(|t| t.strip_prefix("token_id:"))
                    .and_then(|t| t.parse::<u32>().ok());
                match (id, ids.as_mut()) {
                    (Some(id), Some(ids)) => ids.push(id),
                    _ => ids = None,
                }
            }
            (ids, Some(lps))
        }
        _ => (None, None),
    };
    let usage = v
        .get("usage")
        .and_then(|u| serde_json::from_value::<Usage>(u.clone()).ok());
    Ok(Completion {
        text: message.content,
        tool_calls: message.tool_calls,
        token_ids,
        logprobs,
        finish,
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_vllm_logprobs_and_tool_calls() {
        let v = json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "ls", "arguments": "{}"}}]},
            "finish_reason": "tool_calls",
            "logprobs": {"content": [{"token": "token_id:17", "logprob": -0.5},
                                     {"token": "token_id:3", "logprob": -1.5}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}});
        let c = parse_completion(&v).unwrap();
        assert_eq!(c.text, "");
        assert_eq!(c.tool_calls[0].function.name, "ls");
        assert_eq!(c.token_ids, Some(vec![17, 3]));
        assert_eq!(c.logprobs, Some(vec![-0.5, -1.5]));
        assert_eq!(c.finish, CompletionFinish::ToolCalls);
        assert_eq!(c.usage.unwrap().prompt_tokens, 10);
        let text_tokens = json!({"choices": [{"message": {"role": "assistant", "content": "hi"},
            "finish_reason": "length", "logprobs": {"content": [{"token": "hi", "logprob": -0.1}]}}]});
        let c = parse_completion(&text_tokens).unwrap();
        assert_eq!((c.token_ids, c.logprobs), (None, Some(vec![-0.1])));
        assert!(parse_completion(&json!({"choices": []})).is_err());
        assert!(
            parse_completion(&json!({"choices": [{"message": {"role": "assistant"}}]})).is_err()
        );
        assert!(
            parse_completion(&json!({"choices": [{"message": {"role": "assistant",
            "content": "x"}, "finish_reason": "stop",
            "logprobs": {"content": [{"token": "x"}]}}]}))
            .is_err()
        );
    }
}
