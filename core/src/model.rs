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

/// What [`Decoder::extend`] calls with each position's index and logits.
pub type VisitLogits<'a> = dyn FnMut(usize, &[f32]) -> Result<(), ModelError> + 'a;

/// Step-by-step decoding after a prompt: the next token's logits, extended one token at a time.
///
/// What a server needs beyond [`TokenModel::generate`]: the log-probs of the alternatives
/// (`top_logprobs`), the log-probs of a given text (`echo`), stop strings checked as tokens
/// arrive, constrained outputs and streaming all sample from [`Decoder::logits`] themselves.
pub trait Decoder {
    /// The unnormalised log-probabilities of the next token (`[vocab]`) after the tokens fed
    /// so far.
    fn logits(&self) -> &[f32];
    /// Appends `token` to the sequence and computes the logits after it.
    fn push(&mut self, token: u32) -> Result<(), ModelError>;
    /// Appends `tokens` in order and calls `visit(i, logits)` with the logits after each
    /// `tokens[i]`; after the last, they are also [`Decoder::logits`]. What scoring a sequence
    /// needs (every position's log-probs). The default pushes the tokens one at a time; a
    /// model that feeds many tokens through one pass overrides it. After an error, drop the
    /// decoder.
    fn extend(&mut self, tokens: &[u32], visit: &mut VisitLogits<'_>) -> Result<(), ModelError> {
        for (i, &token) in tokens.iter().enumerate() {
            self.push(token)?;
            visit(i, self.logits())?;
        }
        Ok(())
    }
    /// The tokens fed so far (the prompt, then every pushed token).
    fn len(&self) -> usize;
    /// Whether no token was fed (never, for a decoder started on a prompt).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
    /// Starts step-by-step decoding after `prompt` (non-empty, shorter than
    /// [`TokenModel::max_context`]); `None` for a model that only offers
    /// [`TokenModel::generate`] (the default).
    fn decoder<'a>(
        &'a self,
        prompt: &[u32],
    ) -> Option<Result<alloc::boxed::Box<dyn Decoder + 'a>, ModelError>> {
        let _ = prompt;
        None
    }
    /// The end-of-message token, not part of the text, at which [`TokenModel::generate`]
    /// stops; `None` when the model has none (the default).
    fn end_token(&self) -> Option<u32> {
        None
    }
}

/// The index a sampler draws from `logits`. At `temperature` > 0 it is the first index at which
/// the running sum of `weights` (the tempered softmax numerators, whose total is `sum`) reaches
/// `u · sum`, with `u` in [0, 1) from `uniform` (the last index if rounding leaves a remainder);
/// at temperature 0 it is the first index of the largest logit, and `uniform` is not called.
/// Every sampler of the project draws through it, so a seed gives the same tokens whether the
/// model runs in-process or behind `supo serve`.
pub fn draw_index(
    logits: &[f32],
    weights: &[f32],
    sum: f32,
    temperature: f32,
    uniform: impl FnOnce() -> f32,
) -> usize {
    if temperature > 0.0 {
        let mut u = uniform() * sum;
        for (i, &w) in weights.iter().enumerate() {
            u -= w;
            if u <= 0.0 {
                return i;
            }
        }
        logits.len() - 1
    } else {
        logits
            .iter()
            .enumerate()
            .fold(0, |b, (i, &x)| if x > logits[b] { i } else { b })
    }
}
