//! The LLM implementation of the four roles: each role's messages go to an OpenAI-compatible
//! chat-completions server (vLLM, SGLang, llama.cpp, Ollama, `supo serve`) through
//! [`supo_agent::http::HttpPolicy`], and the reply's text comes back. Each request carries a
//! seed derived from the run's seed and the messages, so a deterministic server gives the same
//! samples again, resumed runs included.

use std::time::Duration;

use super::roles::{RoleModel, RoleRequest};
use supo_agent::http::{ChatMessage, ChatRequest, HttpConfig, HttpPolicy};

/// The roles played by an LLM behind an OpenAI-compatible server.
#[derive(Debug)]
pub struct LlmModel {
    policy: HttpPolicy,
    runtime: tokio::runtime::Runtime,
    seed: u64,
    max_tokens: usize,
    temperature: f32,
}

impl LlmModel {
    /// A client of the server at `base_url` (`http://HOST:PORT/v1`) asking for `model`, with
    /// at most `max_tokens` per reply, at `temperature`.
    pub fn new(
        base_url: &str,
        model: &str,
        seed: i64,
        max_tokens: usize,
        temperature: f32,
    ) -> Result<LlmModel, String> {
        let mut config = HttpConfig::new(base_url, model);
        config.logprobs = false;
        config.timeout = Duration::from_secs(600);
        let policy = HttpPolicy::new(config).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        Ok(LlmModel {
            policy,
            runtime,
            seed: seed.unsigned_abs(),
            max_tokens,
            temperature,
        })
    }
}

/// FNV-1a over the messages: the request's seed depends on what is asked, not on how many
/// requests came before.
fn fingerprint(req: &RoleRequest<'_>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for m in &req.messages {
        for b in m
            .role
            .bytes()
            .chain([0])
            .chain(m.content.bytes())
            .chain([0])
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

impl RoleModel for LlmModel {
    fn mode(&self) -> &'static str {
        "llm"
    }

    fn complete(&mut self, request: &RoleRequest<'_>) -> Result<String, String> {
        let chat = ChatRequest {
            messages: request
                .messages
                .iter()
                .map(|m| ChatMessage::new(&m.role, m.content.clone()))
                .collect(),
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            seed: Some(self.seed ^ fingerprint(request)),
            ..ChatRequest::default()
        };
        let reply = self
            .runtime
            .block_on(self.policy.complete(&chat))
            .map_err(|e| {
                format!(
                    "{} at {}: {e}",
                    request.role.paper_name(),
                    self.policy.config().base_url
                )
            })?;
        Ok(reply.text)
    }
}
