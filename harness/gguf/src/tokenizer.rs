//! The tokenizer of a GGUF file, built from its `tokenizer.ggml.*` metadata: the byte-level
//! BPE of GPT-2 (`tokenizer.ggml.model` = `gpt2`) with the file's tokens and merges, the
//! pre-tokenizer that `tokenizer.ggml.pre` names (the one of the model's Hugging Face
//! `tokenizer.json`), and its control and user-defined tokens (`<|im_start|>`, `<tool_call>`)
//! matched in the text as Hugging Face matches added tokens.
//!
//! Encoding runs the `tokenizers` crate on a `tokenizer.json` assembled from the metadata;
//! decoding maps each token back to its bytes.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use serde_json::{json, Map};
use supo_core::model::Tokenizer;

use crate::error::Error;
use crate::model::md_str;

/// `tokenizer.ggml.token_type` of a control token (`<|im_end|>`).
const CONTROL: i64 = 3;
/// `tokenizer.ggml.token_type` of a user-defined token (Qwen's `<tool_call>`).
const USER_DEFINED: i64 = 4;

/// Qwen2's pre-tokenizer regex (its `tokenizer.json`, and llama.cpp's `qwen2`).
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's (`llama-bpe`): as Qwen2's, with numbers in groups of up to three digits.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The pre-tokenizers supported, by their `tokenizer.ggml.pre` names.
pub const PRE_TOKENIZERS: &[&str] = &["qwen2", "smollm", "gpt2", "llama-bpe", "llama3"];

/// A GGUF model's tokenizer.
pub struct GgufTokenizer {
    inner: tokenizers::Tokenizer,
    /// Each token's bytes.
    bytes: Vec<Vec<u8>>,
    /// Each token's text (invalid UTF-8 replaced).
    texts: Vec<String>,
    special: Vec<bool>,
    ids: HashMap<String, u32>,
    bos: Option<u32>,
    eos: Option<u32>,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("vocab", &self.bytes.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

/// GPT-2's map from bytes to the printable characters its BPE vocabulary is written in.
fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        let printable = (b'!' as u32..=b'~' as u32).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b);
        let c = if printable {
            b
        } else {
            extra += 1;
            255 + extra
        };
        table[b as usize] = char::from_u32(c).unwrap_or('\0');
    }
    table
}

fn strings(md: &HashMap<String, Value>, key: &str) -> Result<Vec<String>, Error> {
    match md.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                v => Err(Error::new(format!("`{key}` holds a non-string: {v:?}"))),
            })
            .collect(),
        Some(v) => Err(Error::new(format!("`{key}` is not a list: {v:?}"))),
        None => Err(Error::new(format!("the metadata has no `{key}`"))),
    }
}

fn integer(v: &Value) -> Option<i64> {
    match *v {
        Value::U8(x) => Some(x.into()),
        Value::I8(x) => Some(x.into()),
        Value::U16(x) => Some(x.into()),
        Value::I16(x) => Some(x.into()),
        Value::U32(x) => Some(x.into()),
        Value::I32(x) => Some(x.into()),
        Value::U64(x) => i64::try_from(x).ok(),
        Value::I64(x) => Some(x),
        _ => None,
    }
}

/// A token id of the metadata (`tokenizer.ggml.eos_token_id`), checked against the vocabulary.
pub(crate) fn token_id(
    md: &HashMap<String, Value>,
    key: &str,
    vocab: usize,
) -> Result<Option<u32>, Error> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => match integer(v) {
            Some(id) if id >= 0 && (id as usize) < vocab => Ok(Some(id as u32)),
            _ => Err(Error::new(format!(
                "`{key}` is {v:?}, not a token id below {vocab}"
            ))),
        },
    }
}

impl GgufTokenizer {
    /// The tokenizer described by the metadata `md`.
    pub(crate) fn from_metadata(md: &HashMap<String, Value>) -> Result<GgufTokenizer, Error> {
        match md_str(md, "tokenizer.ggml.model") {
            Some("gpt2") => {}
            Some(other) => {
                return Err(Error::new(format!(
                    "unsupported tokenizer model {other:?}: supo-gguf reads byte-level BPE \
                     (gpt2) tokenizers"
                )))
            }
            None => return Err(Error::new("the metadata has no `tokenizer.ggml.model`")),
        }
        let pre = md_str(md, "tokenizer.ggml.pre").unwrap_or("gpt2");
        let tokens = strings(md, "tokenizer.ggml.tokens")?;
        let merges = strings(md, "tokenizer.ggml.merges")?;
        let types: Vec<i64> = match md.get("tokenizer.ggml.token_type") {
            Some(Value::Array(a)) => a.iter().map(|v| integer(v).unwrap_or(1)).collect(),
            _ => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(Error::new(format!(
                "`tokenizer.ggml.token_type` has {} entries for {} tokens",
                types.len(),
                tokens.len()
            )));
        }
        if tokens.is_empty() || tokens.len() > u32::MAX as usize {
            return Err(Error::new("`tokenizer.ggml.tokens` is empty"));
        }
        let added = |t: i64| t == CONTROL || t == USER_DEFINED;
        let (pre_tokenizer, normalizer, ignore_merges) = match pre {
            "qwen2" => (
                json!({"type": "Sequence", "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": QWEN2_REGEX},
                     "behavior": "Isolated", "invert": false},
                    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false,
                     "use_regex": false}]}),
                json!({"type": "NFC"}),
                false,
            ),
            "llama-bpe" | "llama3" => (
                json!({"type": "Sequence", "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX},
                     "behavior": "Isolated", "invert": false},
                    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                     "use_regex": false}]}),
                serde_json::Value::Null,
                true,
            ),
            "smollm" => (
                json!({"type": "Sequence", "pretokenizers": [
                    {"type": "Digits", "individual_digits": true},
                    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                     "use_regex": true}]}),
                serde_json::Value::Null,
                false,
            ),
            "gpt2" | "default" => (
                json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                       "use_regex": true}),
                serde_json::Value::Null,
                false,
            ),
            other => {
                return Err(Error::new(format!(
                    "unsupported pre-tokenizer {other:?} (`tokenizer.ggml.pre`): one of {}",
                    PRE_TOKENIZERS.join(", ")
                )))
            }
        };
        let mut vocab = Map::new();
        let mut ids = HashMap::with_capacity(tokens.len());
        for (id, t) in tokens.iter().enumerate() {
            ids.entry(t.clone()).or_insert(id as u32);
            // Added tokens are in the vocabulary too: `tokenizers` gives an added token the id
            // it has there (else the next free one).
            if !vocab.contains_key(t) {
                vocab.insert(t.clone(), id.into());
            }
        }
        let added_tokens: Vec<serde_json::Value> = tokens
            .iter()
            .zip(&types)
            .enumerate()
            .filter(|(_, (_, &t))| added(t))
            .map(|(id, (content, &t))| {
                json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": t == CONTROL})
            })
            .collect();
        let spec = json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": added_tokens,
            "normalizer": normalizer,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false,
                        "use_regex": false},
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": ignore_merges,
                      "vocab": vocab, "merges": merges},
        });
        let inner: tokenizers::Tokenizer = spec
            .to_string()
            .parse()
            .map_err(|e| Error::new(format!("the tokenizer metadata is not usable: {e}")))?;
        let mut to_byte = HashMap::with_capacity(256);
        for (b, c) in byte_chars().into_iter().enumerate() {
            to_byte.insert(c, b as u8);
        }
        let bytes: Vec<Vec<u8>> = tokens
            .iter()
            .zip(&types)
            .map(|(t, &ty)| {
                if added(ty) {
                    t.as_bytes().to_vec()
                } else {
                    // A byte-level token: each character stands for one byte.
                    t.chars()
                        .map(|c| to_byte.get(&c).copied())
                        .collect::<Option<Vec<u8>>>()
                        .unwrap_or_else(|| t.as_bytes().to_vec())
                }
            })
            .collect();
        let texts = bytes
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        let n = tokens.len();
        Ok(GgufTokenizer {
            inner,
            bytes,
            texts,
            special: types.iter().map(|&t| t == CONTROL).collect(),
            ids,
            bos: token_id(md, "tokenizer.ggml.bos_token_id", n)?,
            eos: token_id(md, "tokenizer.ggml.eos_token_id", n)?,
        })
    }

    /// The id of the token written `text` (`<|im_end|>`), if the vocabulary has it.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The bytes of a token (a byte-level token may hold part of a UTF-8 character).
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.bytes.get(id as usize).map(|b| b.as_slice())
    }

    /// Whether `id` is a control token (`<|im_start|>`, `<|endoftext|>`).
    pub fn is_control(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// The beginning-of-sequence token (`tokenizer.ggml.bos_token_id`).
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token (`tokenizer.ggml.eos_token_id`).
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
}

impl Tokenizer for GgufTokenizer {
    /// The ids of `text`, control tokens written in it included; no BOS is added (chat
    /// templates write theirs).
    fn encode(&self, text: &str) -> Vec<u32> {
        match self.inner.encode_fast(text, false) {
            Ok(e) => e.get_ids().to_vec(),
            // The BPE cannot fail on text (every byte is a token); keep the trait total.
            Err(_) => Vec::new(),
        }
    }

    fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .filter_map(|&id| self.bytes.get(id as usize))
            .flatten()
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn token_text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(|s| s.as_str())
    }

    fn vocab_size(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_gpt2s() {
        let t = byte_chars();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
        let mut all: Vec<char> = t.to_vec();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 256);
    }
}
