//! The server's sampler over a model's [`Decoder`]: temperature and seed, log-probs in vLLM's
//! two modes, the top alternatives of every token, stop strings and stop tokens.
//!
//! The draw is the built-in model's (`supo_train::builtin::sample`): ChaCha8 seeded with the
//! request's seed, one uniform `f32` per token against the tempered softmax, the most likely
//! token (lowest id on ties) at temperature 0. So a request gives the same tokens whether the
//! model is served or run in-process.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use supo_core::model::{
    draw_index, Decoder, GenerationFinish, ModelError, SamplingParams, TokenModel,
};

/// Which log-probabilities the server reports (vLLM's `--logprobs-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogprobsMode {
    /// `raw_logprobs` (vLLM's default): `log softmax(logits)`, before the temperature.
    #[default]
    Raw,
    /// `processed_logprobs`: `log softmax(logits / T)` at the request's temperature `T`, the
    /// distribution the token was drawn from (`T = 0`, greedy, counts as 1).
    Processed,
}

impl LogprobsMode {
    /// The names, as vLLM spells them.
    pub const NAMES: [&'static str; 2] = ["raw_logprobs", "processed_logprobs"];

    /// The mode named `name`.
    pub fn parse(name: &str) -> Result<LogprobsMode, String> {
        match name {
            "raw_logprobs" => Ok(LogprobsMode::Raw),
            "processed_logprobs" => Ok(LogprobsMode::Processed),
            other => Err(format!(
                "unknown log-probs mode {other:?}: one of raw_logprobs, processed_logprobs"
            )),
        }
    }

    /// vLLM's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            LogprobsMode::Raw => "raw_logprobs",
            LogprobsMode::Processed => "processed_logprobs",
        }
    }
}

impl std::str::FromStr for LogprobsMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        LogprobsMode::parse(s)
    }
}

/// The most likely tokens at one position with their log-probs, most likely first.
pub type Alternatives = Vec<(u32, f32)>;

/// One decoding request.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeRequest {
    /// The most tokens to generate.
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 is greedy.
    pub temperature: f32,
    /// The sampler's seed.
    pub seed: u64,
    /// How many alternatives (the most likely tokens) to report per token.
    pub top_logprobs: usize,
    /// Strings that end the generation; the text is cut before the first one.
    pub stop: Vec<String>,
    /// Keep the stop string in the text (vLLM's `include_stop_str_in_output`).
    pub include_stop: bool,
    /// Tokens that end the generation (vLLM's `stop_token_ids`), not part of the output.
    pub stop_token_ids: Vec<u32>,
    /// Go on past the model's end-of-message token (vLLM's `ignore_eos`).
    pub ignore_eos: bool,
    /// Which log-probs to report.
    pub mode: LogprobsMode,
}

/// Why a decoded continuation stopped, with what stopped it.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// The model's end-of-message token.
    EndToken,
    /// A stop string of the request.
    String(String),
    /// A stop token of the request.
    Token(u32),
    /// `max_tokens`, or the model's context is full.
    Length,
}

/// A decoded continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The generated token ids (up to and including the one that completed a stop string, as
    /// vLLM returns them).
    pub tokens: Vec<u32>,
    /// The log-prob of each token, in the request's mode.
    pub logprobs: Vec<f32>,
    /// The most likely tokens at each position with their log-probs, most likely first.
    pub top: Vec<Alternatives>,
    /// The text, cut before a stop string.
    pub text: String,
    /// Why it stopped.
    pub reason: StopReason,
}

impl Decoded {
    /// `"stop"` or `"length"`.
    pub fn finish_reason(&self) -> &'static str {
        match self.reason {
            StopReason::Length => "length",
            _ => "stop",
        }
    }

    /// vLLM's `stop_reason`: the stop string or token that ended it, `null` otherwise.
    pub fn stop_reason(&self) -> serde_json::Value {
        match &self.reason {
            StopReason::String(s) => s.clone().into(),
            StopReason::Token(t) => (*t).into(),
            _ => serde_json::Value::Null,
        }
    }
}

/// `log softmax(logits / t)` of every token.
fn log_softmax(logits: &[f32], t: f32) -> (Vec<f32>, Vec<f32>, f32) {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let weights: Vec<f32> = logits.iter().map(|&x| ((x - max) / t).exp()).collect();
    let sum: f32 = weights.iter().sum();
    let log_z = sum.ln();
    let lp = logits.iter().map(|&x| (x - max) / t - log_z).collect();
    (lp, weights, sum)
}

/// Draws the next token: returns it with the log-probs of every token in `mode`.
fn draw(
    logits: &[f32],
    temperature: f32,
    mode: LogprobsMode,
    rng: &mut ChaCha8Rng,
) -> (u32, Vec<f32>) {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let (processed, weights, sum) = log_softmax(logits, t);
    let pick = draw_index(logits, &weights, sum, temperature, || rng.random::<f32>());
    let lps = match mode {
        LogprobsMode::Processed => processed,
        LogprobsMode::Raw if t == 1.0 => processed,
        LogprobsMode::Raw => log_softmax(logits, 1.0).0,
    };
    (pick as u32, lps)
}

/// The `k` most likely tokens, most likely first (lower id first on ties).
pub fn top_k(lps: &[f32], k: usize) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut idx: Vec<u32> = (0..lps.len() as u32).collect();
    idx.sort_by(|&a, &b| {
        lps[b as usize]
            .partial_cmp(&lps[a as usize])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    idx.truncate(k);
    idx.into_iter().map(|i| (i, lps[i as usize])).collect()
}

/// The earliest stop string in `text`: its byte position and the string.
fn find_stop<'s>(text: &str, stop: &'s [String]) -> Option<(usize, &'s str)> {
    stop.iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|p| (p, s.as_str())))
        .min_by_key(|&(p, _)| p)
}

/// Cuts `text` at the first stop string.
fn cut(text: &str, stop: &[String], include: bool) -> Option<(String, String)> {
    find_stop(text, stop).map(|(p, s)| {
        let end = if include { p + s.len() } else { p };
        (text[..end].to_string(), s.to_string())
    })
}

/// Decodes a continuation of `prompt` with `model` (its [`Decoder`] when it has one; otherwise
/// [`TokenModel::generate`], which offers no alternatives and only its own log-probs).
pub fn decode(
    model: &dyn TokenModel,
    prompt: &[u32],
    req: &DecodeRequest,
) -> Result<Decoded, ModelError> {
    let tok = model.tokenizer();
    let Some(decoder) = model.decoder(prompt) else {
        return decode_with_generate(model, prompt, req);
    };
    let mut d: Box<dyn Decoder + '_> = decoder?;
    let max = model.max_context();
    let end = model.end_token().filter(|_| !req.ignore_eos);
    let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
    let mut out = Decoded {
        tokens: Vec::new(),
        logprobs: Vec::new(),
        top: Vec::new(),
        text: String::new(),
        reason: StopReason::Length,
    };
    while out.tokens.len() < req.max_new_tokens {
        let (t, lps) = draw(d.logits(), req.temperature, req.mode, &mut rng);
        if Some(t) == end {
            out.reason = StopReason::EndToken;
            break;
        }
        if req.stop_token_ids.contains(&t) {
            out.reason = StopReason::Token(t);
            break;
        }
        out.tokens.push(t);
        out.logprobs.push(lps[t as usize]);
        out.top.push(top_k(&lps, req.top_logprobs));
        if !req.stop.is_empty() {
            let text = tok.decode(&out.tokens);
            if let Some((text, s)) = cut(&text, &req.stop, req.include_stop) {
                out.text = text;
                out.reason = StopReason::String(s);
                return Ok(out);
            }
        }
        if d.len() >= max {
            break;
        }
        d.push(t)?;
    }
    out.text = tok.decode(&out.tokens);
    Ok(out)
}

/// [`decode`] for a model without a [`Decoder`]: stop strings are applied to the generated
/// text, stop tokens and alternatives are not available.
fn decode_with_generate(
    model: &dyn TokenModel,
    prompt: &[u32],
    req: &DecodeRequest,
) -> Result<Decoded, ModelError> {
    if req.top_logprobs > 0 || !req.stop_token_ids.is_empty() {
        return Err(ModelError(format!(
            "the model {} cannot be decoded step by step: top_logprobs and stop_token_ids are \
             not available",
            model.name()
        )));
    }
    let g = model.generate(
        prompt,
        &SamplingParams {
            max_new_tokens: req.max_new_tokens,
            temperature: req.temperature,
            seed: req.seed,
        },
    )?;
    let tok = model.tokenizer();
    let mut out = Decoded {
        top: vec![Vec::new(); g.tokens.len()],
        text: tok.decode(&g.tokens),
        reason: match g.finish {
            GenerationFinish::Stop => StopReason::EndToken,
            GenerationFinish::Length => StopReason::Length,
        },
        tokens: g.tokens,
        logprobs: g.logprobs,
    };
    for n in 1..=out.tokens.len() {
        if let Some((text, s)) = cut(&tok.decode(&out.tokens[..n]), &req.stop, req.include_stop) {
            out.tokens.truncate(n);
            out.logprobs.truncate(n);
            out.top.truncate(n);
            out.text = text;
            out.reason = StopReason::String(s);
            break;
        }
    }
    Ok(out)
}

/// The log-prob of every token of `ids` after the tokens before it (the first has none: 0),
/// with the `k` most likely alternatives at each position (none at the first), in `mode` at
/// `temperature`: what `echo` reports for a prompt.
pub fn score(
    model: &dyn TokenModel,
    ids: &[u32],
    k: usize,
    temperature: f32,
    mode: LogprobsMode,
) -> Result<(Vec<f32>, Vec<Alternatives>), ModelError> {
    let mut lps = vec![0.0];
    let mut top = vec![Vec::new()];
    if ids.len() < 2 {
        return Ok((lps[..ids.len()].to_vec(), top[..ids.len()].to_vec()));
    }
    let mut d = model.decoder(&ids[..1]).ok_or_else(|| {
        ModelError(format!(
            "the model {} cannot score a prompt (echo with logprobs)",
            model.name()
        ))
    })??;
    let t = match mode {
        LogprobsMode::Processed if temperature > 0.0 => temperature,
        _ => 1.0,
    };
    // The logits after `ids[..=i]` give the log-prob of `ids[i + 1]`.
    let mut record = |logits: &[f32], id: u32| -> Result<(), ModelError> {
        let all = log_softmax(logits, t).0;
        let lp = *all
            .get(id as usize)
            .ok_or_else(|| ModelError(format!("token id {id} is outside the vocabulary")))?;
        lps.push(lp);
        top.push(top_k(&all, k));
        Ok(())
    };
    record(d.logits(), ids[1])?;
    d.extend(&ids[1..ids.len() - 1], &mut |i, logits| {
        record(logits, ids[i + 2])
    })?;
    Ok((lps, top))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_agree_at_temperature_one_and_differ_elsewhere() {
        let logits = [1.0f32, 2.0, -1.0, 0.5];
        let mut r = ChaCha8Rng::seed_from_u64(1);
        let (_, raw) = draw(&logits, 1.0, LogprobsMode::Raw, &mut r);
        let mut r = ChaCha8Rng::seed_from_u64(1);
        let (_, processed) = draw(&logits, 1.0, LogprobsMode::Processed, &mut r);
        assert_eq!(raw, processed);
        let mut r = ChaCha8Rng::seed_from_u64(1);
        let (_, hot) = draw(&logits, 2.0, LogprobsMode::Processed, &mut r);
        let mut r = ChaCha8Rng::seed_from_u64(1);
        let (_, hot_raw) = draw(&logits, 2.0, LogprobsMode::Raw, &mut r);
        assert_eq!(hot_raw, raw);
        assert_ne!(hot, raw);
        let z: f32 = hot.iter().map(|l| l.exp()).sum();
        assert!((z - 1.0).abs() < 1e-5);
        assert_eq!(
            top_k(&raw, 2).iter().map(|p| p.0).collect::<Vec<_>>(),
            [1, 0]
        );
        assert_eq!(
            cut("a b STOP c", &["STOP".into()], false),
            Some(("a b ".into(), "STOP".into()))
        );
        assert_eq!(LogprobsMode::parse("raw_logprobs"), Ok(LogprobsMode::Raw));
        assert!(LogprobsMode::parse("logits").is_err());
    }
}
