//! # supo-gguf
//!
//! Real language models in-process: a [`GgufModel`] opens a GGUF file (llama.cpp's format)
//! of the `llama` or `qwen2` architecture and implements [`supo_core::model::TokenModel`] with
//! a [`Decoder`] (key/value cache, next-token logits), so an agent can run it without a server
//! and `supo serve --gguf` can serve it.
//!
//! - The matrices of the 32-weight block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) are laid out
//!   anew when loaded (at their file size; 5-bit quants take a byte) and multiplied by our own
//!   kernel (AVX-512-VNNI where the CPU has it, else a scalar loop; see `packed.rs`) with
//!   activations rounded per 32 values, as llama.cpp does. The K-quants (Q4_K, Q6_K…) and f16/f32 matrices run on candle's kernels
//!   (`candle-core`).
//!   Products over 32 rows or more (prompts) dequantize the matrix and use candle's f32 GEMM,
//!   with the activations rounded as the quantized kernels round them, so both paths give
//!   the same numbers. The query, key and value matrices, and the gate and up matrices, are
//!   stacked into one product each when their formats match.
//!   The file is memory-mapped while it is read; candle copies each tensor into its own block
//!   storage or ours, so the model takes about its file size in memory (a tied output matrix
//!   twice).
//!   The model runs on the CPU (candle's CUDA backend is not wired: its `cudarc` links the
//!   driver, while `supo-cuda`'s loads it, and one build cannot have both).
//! - The transformer ([`model`]) keeps its cache outside the weights: every decoder has its
//!   own, so concurrent requests share one copy of the weights. A prompt goes through the
//!   model in one forward pass (in chunks of 512 tokens), and so does a sequence being scored
//!   ([`Decoder::extend`] gives every position's logits from the same passes). The model keeps
//!   the caches of its
//!   last sequences ([`GgufOptions::prefix_slots`]): a prompt that extends one is fed from where
//!   they part ([`GgufDecoder::cached_tokens`] says how much was reused).
//! - The tokenizer ([`tokenizer::GgufTokenizer`]) is built from the `tokenizer.ggml.*`
//!   metadata: byte-level BPE with the pre-tokenizer `tokenizer.ggml.pre` names, control and
//!   user-defined tokens matched in the text.
//! - The chat template ([`template::ChatTemplate`]) is `tokenizer.chat_template`, rendered by
//!   `minijinja` as Hugging Face's `transformers` renders it.
//! - The end of a turn ([`TokenModel::end_token`]) is the template's end-of-turn token
//!   (`<|im_end|>` for ChatML templates, `<|eot_id|>`, `<|end|>`), else the file's EOS.
//!
//! A file that is truncated, whose header or metadata is damaged, whose tensors do not match
//! its metadata, or whose architecture is not supported is an [`Error`] that says so, never a
//! panic; weights so damaged that the model computes non-finite logits are an error of the
//! decoder.
//!
//! ```no_run
//! use supo_core::model::{SamplingParams, TokenModel};
//! use supo_gguf::{GgufModel, GgufOptions};
//!
//! let model = GgufModel::open("smollm2-135m-instruct-q4_1.gguf", &GgufOptions::default())?;
//! let prompt = model.chat_prompt("Say hi.")?;
//! let params = SamplingParams { max_new_tokens: 16, temperature: 0.0, seed: 0 };
//! let out = model.generate(&prompt, &params)?;
//! println!("{}", model.tokenizer().decode(&out.tokens));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! (`examples/generate.rs` does this from the command line.)
#![warn(missing_docs)]

mod error;
pub mod model;
mod packed;
mod rounding;
pub mod template;
pub mod tokenizer;

use std::path::Path;
use std::sync::OnceLock;

use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use supo_core::model::{
    draw_index, Decoder, Generation, GenerationFinish, ModelError, SamplingParams, TokenModel,
    Tokenizer, VisitLogits,
};

pub use error::Error;
pub use model::Hyper;
pub use template::ChatTemplate;
pub use tokenizer::GgufTokenizer;

use error::model_error;
use model::{check_tensors, md_str, Cache, Weights};

/// The context a model gets when [`GgufOptions::context`] is not set: its trained context,
/// capped to this.
pub const DEFAULT_CONTEXT_CAP: usize = 8192;

/// How to open a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GgufOptions {
    /// The context in tokens (prompt and generation); `None`: the trained context capped to
    /// [`DEFAULT_CONTEXT_CAP`]. More than the trained context is allowed (the model may then
    /// degrade), zero is an error.
    pub context: Option<usize>,
    /// Threads of the matrix kernels; `None`: candle's default (`RAYON_NUM_THREADS`, else
    /// the physical cores). candle's kernel thread pool is process-wide: the first model
    /// opened sets it (through `CANDLE_NUM_THREADS`, and `RAYON_NUM_THREADS` when that is
    /// unset), and a later model asking for another count is an error.
    pub threads: Option<usize>,
    /// The model's name as served; `None`: `general.name` of the metadata, else the file
    /// name.
    pub name: Option<String>,
    /// Dequantize every weight matrix to f32 when loading: exact f32 arithmetic instead of
    /// candle's quantized kernels (which round the activations to 8 bits), at about 8 times
    /// the memory of a 4-bit file and lower speed. For checks against full-precision
    /// references.
    pub f32_weights: bool,
    /// Sequences whose key/value caches are kept for reuse, as llama.cpp's and vLLM's prefix
    /// caches do: a prompt that starts with the tokens of a kept sequence (an agent's next
    /// turn: the last prompt, its reply, a tool result) is fed from where they part. `None`:
    /// [`DEFAULT_PREFIX_SLOTS`]; `Some(0)`: off. Each slot holds up to a context's cache
    /// (`2 · layers · kv_heads · head_dim · 4` bytes a token).
    pub prefix_slots: Option<usize>,
}

/// The kept sequences when [`GgufOptions::prefix_slots`] is not set.
pub const DEFAULT_PREFIX_SLOTS: usize = 4;

/// Kept key/value caches and the tokens they hold, the most recently used last.
struct PrefixCache {
    slots: std::sync::Mutex<Vec<(Vec<u32>, Cache)>>,
    capacity: usize,
}

impl PrefixCache {
    /// The kept cache sharing the longest prefix with `prompt`, cut to at most
    /// `prompt.len() - 1` tokens (the last prompt token is always fed, for its logits).
    fn lookup(&self, prompt: &[u32]) -> Result<Option<Cache>, Error> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let best = slots
            .iter()
            .map(|(tokens, cache)| {
                let common = tokens
                    .iter()
                    .zip(prompt)
                    .take_while(|(a, b)| a == b)
                    .count();
                (common.min(prompt.len() - 1).min(cache.len()), cache)
            })
            .max_by_key(|(n, _)| *n);
        match best {
            Some((n, cache)) if n > 0 => cache.prefix(n).map(Some),
            _ => Ok(None),
        }
    }

    /// Keeps `cache` of `tokens`, in place of a kept sequence that is a prefix of it, else of
    /// the least recently used one.
    fn keep(&self, tokens: Vec<u32>, cache: Cache) {
        if self.capacity == 0 || tokens.len() != cache.len() {
            return;
        }
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|(t, _)| !tokens.starts_with(t));
        if slots.len() >= self.capacity {
            slots.remove(0);
        }
        slots.push((tokens, cache));
    }
}

/// A GGUF model: weights, tokenizer, chat template.
pub struct GgufModel {
    name: String,
    weights: Weights,
    tokenizer: GgufTokenizer,
    template: Option<ChatTemplate>,
    end: Option<u32>,
    context: usize,
    pool: Option<rayon::ThreadPool>,
    prefixes: PrefixCache,
}

impl std::fmt::Debug for GgufModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufModel")
            .field("name", &self.name)
            .field("hyper", &self.weights.hyper)
            .field("context", &self.context)
            .finish()
    }
}

/// The thread count of candle's kernels, once set.
static THREADS: OnceLock<usize> = OnceLock::new();

fn set_threads(n: Option<usize>) -> Result<(), Error> {
    let Some(n) = n else { return Ok(()) };
    if n == 0 {
        return Err(Error::new("the thread count must be at least 1"));
    }
    let set = *THREADS.get_or_init(|| {
        // candle sizes its kernel pool from this variable when the pool first starts, which
        // is the first matrix product of the process: now, before any.
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
        // Its f32 products look up their thread count on every call, from this variable or
        // else by parsing /proc/cpuinfo (about 5% of SmolLM2's generation time): give it one.
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        }
        n
    });
    if set != n {
        return Err(Error::new(format!(
            "candle's kernel threads are process-wide and already {set}; cannot use {n}"
        )));
    }
    Ok(())
}

/// The end-of-turn token a template writes, among those known, else `eos`.
fn end_of_turn(tok: &GgufTokenizer, template: Option<&str>) -> Option<u32> {
    const TURN_ENDS: [&str; 4] = ["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"];
    template
        .and_then(|t| {
            TURN_ENDS
                .iter()
                .filter(|e| t.contains(*e))
                .find_map(|e| tok.token_id(e))
        })
        .or(tok.eos())
}

impl GgufModel {
    /// Opens the GGUF file at `path`.
    pub fn open(path: impl AsRef<Path>, options: &GgufOptions) -> Result<GgufModel, Error> {
        let path = path.as_ref();
        let shown = path.display();
        let file = std::fs::File::open(path)
            .map_err(|e| Error::new(format!("cannot open {shown}: {e}")))?;
        // SAFETY: the map is read while the model loads and dropped before `open` returns;
        // a file truncated by another process meanwhile would fault, as with any mapped file.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| Error::new(format!("cannot map {shown}: {e}")))?;
        Self::from_bytes(&map, options, path)
            .map_err(|e| Error::new(format!("{shown}: {}", e.message())))
    }

    fn from_bytes(bytes: &[u8], options: &GgufOptions, path: &Path) -> Result<GgufModel, Error> {
        let ct = candle_core::quantized::gguf_file::Content::read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| Error::new(format!("not a readable GGUF file: {e}")))?;
        check_tensors(&ct, bytes.len() as u64)?;
        let hyper = Hyper::read(&ct)?;
        let context = options
            .context
            .unwrap_or(hyper.trained_context.min(DEFAULT_CONTEXT_CAP));
        if context == 0 {
            return Err(Error::new("the context must be at least 1 token"));
        }
        let tokenizer = GgufTokenizer::from_metadata(&ct.metadata)?;
        if tokenizer.vocab_size() != hyper.vocab {
            return Err(Error::new(format!(
                "the tokenizer has {} tokens, the embedding {} rows",
                tokenizer.vocab_size(),
                hyper.vocab
            )));
        }
        let source = md_str(&ct.metadata, "tokenizer.chat_template");
        let text = |id: Option<u32>| {
            id.and_then(|i| tokenizer.token_text(i))
                .unwrap_or("")
                .to_string()
        };
        let template = source
            .map(|s| ChatTemplate::new(s, &text(tokenizer.bos()), &text(tokenizer.eos())))
            .transpose()?;
        let end = end_of_turn(&tokenizer, source);
        set_threads(options.threads)?;
        let pool = options
            .threads
            .map(|n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("supo-gguf-{i}"))
                    .build()
                    .map_err(|e| Error::new(format!("cannot start {n} threads: {e}")))
            })
            .transpose()?;
        let device = Device::Cpu;
        let weights = Weights::load(&ct, bytes, hyper, context, &device, options.f32_weights)?;
        let name = options
            .name
            .clone()
            .or_else(|| md_str(&ct.metadata, "general.name").map(str::to_string))
            .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "gguf".into());
        Ok(GgufModel {
            name,
            weights,
            tokenizer,
            template,
            end,
            context,
            pool,
            prefixes: PrefixCache {
                slots: Default::default(),
                capacity: options.prefix_slots.unwrap_or(DEFAULT_PREFIX_SLOTS),
            },
        })
    }

    /// The tokenizer with its GGUF-specific queries.
    pub fn gguf_tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// The chat template of the file, if it has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    /// The hyper-parameters.
    pub fn hyper(&self) -> &Hyper {
        &self.weights.hyper
    }

    /// The tokens of a one-message chat (`user` says `text`) in the model's template, with
    /// its generation prompt.
    pub fn chat_prompt(&self, text: &str) -> Result<Vec<u32>, Error> {
        let template = self
            .chat_template()
            .ok_or_else(|| Error::new("the model has no chat template"))?;
        let messages = [serde_json::json!({"role": "user", "content": text})];
        Ok(self
            .tokenizer
            .encode(&template.render(&messages, &[], true, false)?))
    }

    /// Runs `f` on the model's threads.
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    /// A decoder after `prompt`, as [`TokenModel::decoder`] but with the concrete type.
    pub fn start(&self, prompt: &[u32]) -> Result<GgufDecoder<'_>, Error> {
        if prompt.is_empty() {
            return Err(Error::new("the prompt is empty"));
        }
        if prompt.len() >= self.context {
            return Err(Error::new(format!(
                "the prompt has {} tokens; the context is {}",
                prompt.len(),
                self.context
            )));
        }
        let mut cache = match self.prefixes.lookup(prompt)? {
            Some(kept) => kept,
            None => self.weights.cache(),
        };
        let cached = cache.len();
        let logits = self.run(|| self.weights.forward(&prompt[cached..], &mut cache))?;
        Ok(GgufDecoder {
            model: self,
            cache,
            logits,
            tokens: Some(prompt.to_vec()),
            cached,
        })
    }
}

/// Step-by-step decoding with one sequence's own cache.
pub struct GgufDecoder<'a> {
    model: &'a GgufModel,
    cache: Cache,
    logits: Vec<f32>,
    /// The tokens in the cache; `None` after a failed step, whose cache is not kept.
    tokens: Option<Vec<u32>>,
    /// Prompt tokens taken from the prefix cache.
    cached: usize,
}

impl GgufDecoder<'_> {
    /// How many of the prompt's tokens came from the model's prefix cache (not fed again).
    pub fn cached_tokens(&self) -> usize {
        self.cached
    }
}

impl Drop for GgufDecoder<'_> {
    /// Hands the cache to the model's prefix cache.
    fn drop(&mut self) {
        if let Some(tokens) = self.tokens.take() {
            self.model.prefixes.keep(tokens, self.cache.clone());
        }
    }
}

impl std::fmt::Debug for GgufDecoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufDecoder")
            .field("model", &self.model.name)
            .field("len", &self.cache.len())
            .finish()
    }
}

impl Decoder for GgufDecoder<'_> {
    fn logits(&self) -> &[f32] {
        &self.logits
    }

    fn push(&mut self, token: u32) -> Result<(), ModelError> {
        if self.cache.len() >= self.model.context {
            return Err(ModelError(format!(
                "the context of {} tokens is full",
                self.model.context
            )));
        }
        let (weights, cache) = (&self.model.weights, &mut self.cache);
        match self.model.run(|| weights.forward(&[token], cache)) {
            Ok(logits) => {
                self.logits = logits;
                if let Some(t) = &mut self.tokens {
                    t.push(token);
                }
                Ok(())
            }
            Err(e) => {
                // Some layers may hold the token's keys: the cache is not reused.
                self.tokens = None;
                Err(e.into())
            }
        }
    }

    /// Feeds the tokens through the model in passes of up to 512 tokens, as a prompt, and takes
    /// every position's logits from them, 64 rows at a time: a sequence is scored at the speed
    /// of a prompt, not of generation. From 32 tokens on, the output matrix is dequantized to
    /// f32 for the call (vocabulary × hidden floats), as every product over that many rows is.
    fn extend(&mut self, tokens: &[u32], visit: &mut VisitLogits<'_>) -> Result<(), ModelError> {
        if tokens.is_empty() {
            return Ok(());
        }
        if self.cache.len() + tokens.len() > self.model.context {
            return Err(ModelError(format!(
                "{} more tokens do not fit the context of {} tokens ({} fed)",
                tokens.len(),
                self.model.context,
                self.cache.len()
            )));
        }
        let weights = &self.model.weights;
        weights.check(tokens, &self.cache)?;
        // Whatever fails below, some layers may hold keys of tokens fed: the cache is not
        // reused unless every token goes through.
        let kept = self.tokens.take();
        let output = if tokens.len() >= model::DENSE_ROWS {
            Some(self.model.run(|| weights.output_f32())?)
        } else {
            None
        };
        let mut last = Vec::new();
        for (c, chunk) in tokens.chunks(model::PREFILL_CHUNK).enumerate() {
            let cache = &mut self.cache;
            let x = self
                .model
                .run(|| weights.blocks(chunk, cache))
                .map_err(model_error)?;
            for start in (0..chunk.len()).step_by(model::HEAD_ROWS) {
                let rows = model::HEAD_ROWS.min(chunk.len() - start);
                let logits = self.model.run(|| {
                    let x = x.narrow(0, start, rows).map_err(model_error)?;
                    weights.head(&x, output.as_ref())
                })?;
                for (j, row) in logits.iter().enumerate() {
                    visit(c * model::PREFILL_CHUNK + start + j, row)?;
                }
                if let Some(row) = logits.into_iter().last() {
                    last = row;
                }
            }
        }
        self.logits = last;
        self.tokens = kept.map(|mut t| {
            t.extend_from_slice(tokens);
            t
        });
        Ok(())
    }

    fn len(&self) -> usize {
        self.cache.len()
    }
}

impl TokenModel for GgufModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn tokenizer(&self) -> &dyn Tokenizer {
        &self.tokenizer
    }

    fn max_context(&self) -> usize {
        self.context
    }

    /// Samples as `supo serve` does (ChaCha8 seeded with `seed`, one uniform draw per token
    /// through [`draw_index`]), stopping at [`TokenModel::end_token`].
    fn generate(&self, prompt: &[u32], params: &SamplingParams) -> Result<Generation, ModelError> {
        let mut d = self.start(prompt)?;
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let mut out = Generation {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finish: GenerationFinish::Length,
        };
        let t = if params.temperature > 0.0 {
            params.temperature
        } else {
            1.0
        };
        while out.tokens.len() < params.max_new_tokens {
            let logits = d.logits();
            let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let weights: Vec<f32> = logits.iter().map(|&x| ((x - max) / t).exp()).collect();
            let sum: f32 = weights.iter().sum();
            let pick = draw_index(logits, &weights, sum, params.temperature, || {
                rng.random::<f32>()
            });
            if Some(pick as u32) == self.end {
                out.finish = GenerationFinish::Stop;
                break;
            }
            out.tokens.push(pick as u32);
            out.logprobs.push((logits[pick] - max) / t - sum.ln());
            if d.len() >= self.context {
                break;
            }
            d.push(pick as u32)?;
        }
        Ok(out)
    }

    fn decoder<'a>(&'a self, prompt: &[u32]) -> Option<Result<Box<dyn Decoder + 'a>, ModelError>> {
        Some(
            self.start(prompt)
                .map(|d| Box::new(d) as Box<dyn Decoder + 'a>)
                .map_err(ModelError::from),
        )
    }

    fn end_token(&self) -> Option<u32> {
        self.end
    }
}
