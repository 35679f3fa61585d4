//! The built-in policy: a small transformer over the [ledger](crate::ledger)'s words, trained
//! on the CPU by `supo train` and served by `supo serve`.

pub mod checkpoint;
pub mod transformer;

use std::collections::HashMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use checkpoint::Checkpoint;
pub use transformer::{KvCache, Packed, Tape, Transformer, TransformerConfig};

use crate::ledger::{token, LedgerConfig, LedgerVocab};
use supo_core::model::{
    draw_index, Decoder, Generation, GenerationFinish, ModelError, SamplingParams, TokenModel,
    Tokenizer,
};

/// A word-level tokenizer: text split on whitespace, one token per known word.
#[derive(Clone, Debug)]
pub struct WordTokenizer {
    words: Vec<String>,
    ids: HashMap<String, u32>,
    unknown: u32,
}

impl WordTokenizer {
    /// A tokenizer over `words` (ids in order); unknown words map to `unknown`.
    pub fn new(words: Vec<String>, unknown: u32) -> WordTokenizer {
        let ids = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        WordTokenizer {
            words,
            ids,
            unknown,
        }
    }
}

impl Tokenizer for WordTokenizer {
    fn encode(&self, text: &str) -> Vec<u32> {
        text.split_whitespace()
            .map(|w| self.ids.get(w).copied().unwrap_or(self.unknown))
            .collect()
    }

    fn decode(&self, ids: &[u32]) -> String {
        let words: Vec<&str> = ids.iter().filter_map(|&i| self.token_text(i)).collect();
        words.join(" ")
    }

    fn token_text(&self, id: u32) -> Option<&str> {
        self.words.get(id as usize).map(String::as_str)
    }

    fn vocab_size(&self) -> usize {
        self.words.len()
    }
}

/// The built-in model: the ledger's vocabulary and a [`Transformer`] over it.
#[derive(Clone, Debug)]
pub struct BuiltinModel {
    vocab: LedgerVocab,
    tokenizer: WordTokenizer,
    /// The network.
    pub transformer: Transformer,
}

impl BuiltinModel {
    /// The default network shape for a vocabulary of `vocab` words.
    pub fn default_config(vocab: usize) -> TransformerConfig {
        TransformerConfig {
            vocab,
            d_model: 64,
            layers: 2,
            heads: 4,
            d_ff: 128,
            max_positions: 224,
        }
    }

    /// A model of the given shapes with random weights drawn from `seed`.
    pub fn new(
        ledger: LedgerConfig,
        mut config: TransformerConfig,
        seed: u64,
    ) -> Result<Self, ModelError> {
        ledger.validate().map_err(ModelError)?;
        let vocab = LedgerVocab::new(ledger);
        config.vocab = vocab.words().len();
        let transformer = Transformer::new(config, &mut ChaCha8Rng::seed_from_u64(seed))?;
        Ok(Self::assemble(vocab, transformer))
    }

    /// The default ledger and network with random weights drawn from `seed`.
    pub fn untrained(seed: u64) -> BuiltinModel {
        let ledger = LedgerConfig::default();
        let config = Self::default_config(LedgerVocab::new(ledger.clone()).words().len());
        Self::new(ledger, config, seed).expect("the default configuration is valid")
    }

    fn assemble(vocab: LedgerVocab, transformer: Transformer) -> BuiltinModel {
        let tokenizer = WordTokenizer::new(vocab.words().to_vec(), token::UNK);
        BuiltinModel {
            vocab,
            tokenizer,
            transformer,
        }
    }

    /// The ledger vocabulary.
    pub fn vocab(&self) -> &LedgerVocab {
        &self.vocab
    }

    /// The model as a checkpoint (`meta.model` holds both configurations; tensor `params`).
    pub fn to_checkpoint(&self) -> Checkpoint {
        Checkpoint {
            meta: serde_json::json!({
                "model": {
                    "ledger": self.vocab.config(),
                    "transformer": self.transformer.config(),
                }
            }),
            tensors: vec![("params".into(), self.transformer.params.clone())],
        }
    }

    /// The model stored in a checkpoint (as written by [`BuiltinModel::to_checkpoint`], possibly
    /// with more metadata and tensors).
    pub fn from_checkpoint_data(ckpt: &Checkpoint) -> Result<BuiltinModel, ModelError> {
        let model = ckpt
            .meta
            .get("model")
            .ok_or_else(|| ModelError("the checkpoint has no model description".into()))?;
        let ledger: LedgerConfig = serde_json::from_value(model["ledger"].clone())
            .map_err(|e| ModelError(format!("bad ledger configuration in checkpoint: {e}")))?;
        let config: TransformerConfig = serde_json::from_value(model["transformer"].clone())
            .map_err(|e| ModelError(format!("bad network configuration in checkpoint: {e}")))?;
        ledger.validate().map_err(ModelError)?;
        let vocab = LedgerVocab::new(ledger);
        if config.vocab != vocab.words().len() {
            return Err(ModelError(format!(
                "the network's vocabulary ({}) does not match the ledger's ({})",
                config.vocab,
                vocab.words().len()
            )));
        }
        let params = ckpt
            .tensor("params")
            .ok_or_else(|| ModelError("the checkpoint has no `params` tensor".into()))?;
        let transformer = Transformer::from_params(config, params.to_vec())?;
        Ok(Self::assemble(vocab, transformer))
    }

    /// Loads a checkpoint file.
    pub fn from_checkpoint(path: &Path) -> Result<BuiltinModel, ModelError> {
        let ckpt = Checkpoint::load(path).map_err(ModelError)?;
        Self::from_checkpoint_data(&ckpt)
    }
}

/// Draws a token from `logits` at `temperature` (0: the most likely, lowest id on ties) and
/// returns it with its log-probability under that temperature (1 when greedy).
pub fn sample(logits: &[f32], temperature: f32, rng: &mut impl Rng) -> (u32, f32) {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let weights: Vec<f32> = logits.iter().map(|&x| ((x - max) / t).exp()).collect();
    let sum: f32 = weights.iter().sum();
    let log_z = sum.ln();
    let logp = |i: usize| (logits[i] - max) / t - log_z;
    let pick = draw_index(logits, &weights, sum, temperature, || rng.random::<f32>());
    (pick as u32, logp(pick))
}

/// Step-by-step decoding on the built-in transformer's KV cache.
struct BuiltinDecoder<'a> {
    transformer: &'a Transformer,
    cache: KvCache,
    logits: Vec<f32>,
}

impl Decoder for BuiltinDecoder<'_> {
    fn logits(&self) -> &[f32] {
        &self.logits
    }

    fn push(&mut self, token: u32) -> Result<(), ModelError> {
        self.transformer
            .extend(&mut self.cache, &[token], &mut self.logits)
    }

    fn len(&self) -> usize {
        self.cache.tokens().len()
    }
}

impl TokenModel for BuiltinModel {
    fn decoder<'a>(&'a self, prompt: &[u32]) -> Option<Result<Box<dyn Decoder + 'a>, ModelError>> {
        Some((|| {
            if prompt.is_empty() {
                return Err(ModelError("the prompt is empty".into()));
            }
            let mut cache = self.transformer.new_cache();
            let mut logits = vec![0.0; self.transformer.config().vocab];
            self.transformer.extend(&mut cache, prompt, &mut logits)?;
            Ok(Box::new(BuiltinDecoder {
                transformer: &self.transformer,
                cache,
                logits,
            }) as Box<dyn Decoder + 'a>)
        })())
    }

    fn end_token(&self) -> Option<u32> {
        Some(token::EOM)
    }

    fn name(&self) -> &str {
        "supo-builtin"
    }

    fn tokenizer(&self) -> &dyn Tokenizer {
        &self.tokenizer
    }

    fn max_context(&self) -> usize {
        self.transformer.config().max_positions
    }

    fn generate(&self, prompt: &[u32], params: &SamplingParams) -> Result<Generation, ModelError> {
        if prompt.is_empty() {
            return Err(ModelError("the prompt is empty".into()));
        }
        if !(params.temperature >= 0.0 && params.temperature.is_finite()) {
            return Err(ModelError(format!(
                "temperature must be finite and >= 0, not {}",
                params.temperature
            )));
        }
        let max = self.max_context();
        if prompt.len() >= max {
            return Err(ModelError(format!(
                "the prompt has {} tokens; this model attends to at most {max}",
                prompt.len()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let mut cache = self.transformer.new_cache();
        let mut logits = vec![0.0; self.transformer.config().vocab];
        self.transformer.extend(&mut cache, prompt, &mut logits)?;
        let mut out = Generation {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finish: GenerationFinish::Length,
        };
        while out.tokens.len() < params.max_new_tokens {
            let (tok, lp) = sample(&logits, params.temperature, &mut rng);
            if tok == token::EOM {
                out.finish = GenerationFinish::Stop;
                break;
            }
            out.tokens.push(tok);
            out.logprobs.push(lp);
            if cache.tokens().len() >= max {
                break;
            }
            self.transformer.extend(&mut cache, &[tok], &mut logits)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_deterministically_and_round_trips_checkpoints() {
        let m = BuiltinModel::untrained(3);
        let prompt = m.tokenizer().encode("find k3 k4 p5 <eom>");
        assert!(!prompt.contains(&token::UNK));
        let params = SamplingParams {
            max_new_tokens: 12,
            temperature: 1.0,
            seed: 9,
        };
        let a = m.generate(&prompt, &params).unwrap();
        assert_eq!(a, m.generate(&prompt, &params).unwrap());
        assert_eq!(a.tokens.len(), a.logprobs.len());
        assert!(a.logprobs.iter().all(|&l| l <= 0.0 && l.is_finite()));
        let back = BuiltinModel::from_checkpoint_data(&m.to_checkpoint()).unwrap();
        assert_eq!(back.generate(&prompt, &params).unwrap(), a);
        // Step decoding sees the logits generate samples from.
        let mut d = m.decoder(&prompt).unwrap().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        for (&t, &lp) in a.tokens.iter().zip(&a.logprobs) {
            assert_eq!(sample(d.logits(), params.temperature, &mut rng), (t, lp));
            d.push(t).unwrap();
        }
        assert_eq!(d.len(), prompt.len() + a.tokens.len());
        assert!(m.decoder(&[]).unwrap().is_err());
        assert!(m.generate(&[], &params).is_err());
        assert!(m.generate(&[100_000], &params).is_err());
    }

    #[test]
    fn samples_follow_the_tempered_softmax() {
        let logits = [1.0f32, 2.0, -1.0, 0.5];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for t in [0.5f64, 1.0, 2.0] {
            let z: f64 = logits.iter().map(|&x| (x as f64 / t).exp()).sum();
            let p: Vec<f64> = logits.iter().map(|&x| (x as f64 / t).exp() / z).collect();
            let mut counts = [0usize; 4];
            for _ in 0..20_000 {
                let (tok, lp) = sample(&logits, t as f32, &mut rng);
                counts[tok as usize] += 1;
                assert!((lp as f64 - p[tok as usize].ln()).abs() < 1e-5);
            }
            for (c, q) in counts.iter().zip(&p) {
                assert!(
                    (*c as f64 / 20_000.0 - q).abs() < 0.015,
                    "{counts:?} vs {p:?}"
                );
            }
        }
        assert_eq!(sample(&logits, 0.0, &mut rng).0, 1);
    }
}
