//! Serves your own model on the OpenAI-compatible API: a toy [`TokenModel`] over a byte
//! tokenizer that answers with the last message's text reversed, with log-probs of 0.
//!
//! ```sh
//! cargo run -p supo-serve --example echo_model &
//! curl -s http://127.0.0.1:8011/v1/chat/completions \
//!   -d '{"model": "echo", "messages": [{"role": "user", "content": "hello"}], "logprobs": true}'
//! ```

use std::sync::Arc;

use supo_core::model::{
    Generation, GenerationFinish, ModelError, SamplingParams, TokenModel, Tokenizer,
};
use supo_serve::{router, ServeOptions};

/// One token per byte.
struct Bytes(Vec<String>);

impl Tokenizer for Bytes {
    fn encode(&self, text: &str) -> Vec<u32> {
        text.bytes().map(u32::from).collect()
    }
    fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().filter_map(|&i| u8::try_from(i).ok()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
    fn token_text(&self, id: u32) -> Option<&str> {
        self.0.get(id as usize).map(String::as_str)
    }
    fn vocab_size(&self) -> usize {
        256
    }
}

/// Answers with the prompt's last line reversed.
struct Echo(Bytes);

impl TokenModel for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    fn tokenizer(&self) -> &dyn Tokenizer {
        &self.0
    }
    fn max_context(&self) -> usize {
        4096
    }
    fn generate(&self, prompt: &[u32], params: &SamplingParams) -> Result<Generation, ModelError> {
        let text = self.0.decode(prompt);
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let mut tokens: Vec<u32> = last.bytes().rev().map(u32::from).collect();
        tokens.truncate(params.max_new_tokens);
        Ok(Generation {
            logprobs: vec![0.0; tokens.len()],
            tokens,
            finish: GenerationFinish::Stop,
        })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let words = (0..=255u8).map(|b| (b as char).to_string()).collect();
    let app = router(Arc::new(Echo(Bytes(words))), ServeOptions::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:8011").await?;
        println!("listening on http://{}/v1", listener.local_addr()?);
        axum::serve(listener, app).await
    })?;
    Ok(())
}
