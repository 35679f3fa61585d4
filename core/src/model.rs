//! Language models at the token level: a [`Tokenizer`] between text and token ids, and a
//! [`TokenModel`] that samples a continuation of a token prompt with the log-prob of every
//! sampled token.
//!
//! These are the interfaces a model implements to be served (`supo serve`), run in-process by
//! an agent, or trained: the built-in transformer of `supo-train` is one. Nothing here knows
//! about HTTP, files or threads.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Text ⇄ token ids.
pub trait Tokenizer: Send + Sync {
    /// The token ids of `text`.
    fn encode(&self, text: &str) -> Vec<u32>;
    /// The text of `ids` (unknown ids are skipped).
    fn decode(&self, ids: &[u32]) -> String;
    /// The text of one token, `None` for an id outside the vocabulary.
    fn token_text(&self, id: u32) -> Option<&str>;
    /// The number of token ids.
    fn vocab_size(&self) -> usize;
}

/// How to sample a continuation.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// The most tokens to generate.
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 means greedy.
    pub temperature: f32,
    /// The seed of the sampler: the same seed, prompt and model give the same tokens.
    pub seed: u64,
}

/// Why a generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenerationFinish {
    /// The model wrote its end-of-message token (not included in the tokens).
    Stop,
    /// `max_new_tokens` were written, or the model's context is full.
    Length,
}

/// A sampled continuation.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The sampled token ids.
    pub tokens: Vec<u32>,
    /// `log π(token | prefix)` of each sampled token under the sampling temperature.
    pub logprobs: Vec<f32>,
    /// Why it stopped.
    pub finish: GenerationFinish,
}

/// A failure of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelError(pub String);

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for ModelError {}

/// A model that samples tokens after a prompt of tokens: what `supo serve` serves.
pub trait TokenModel: Send + Sync {
    /// The model's name, as the server reports it.
    fn name(&self) -> &str;
    /// Its tokenizer.
    fn tokenizer(&self) -> &dyn Tokenizer;
    /// The longest prompt plus generation it can attend to, in tokens.
    fn max_context(&self) -> usize;
    /// Samples a continuation of `prompt`.
    fn generate(&self, prompt: &[u32], params: &SamplingParams) -> Result<Generation, ModelError>;
}
