//! Reading request bodies field by field, so every rejection names its field (`param`).

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::sampling::{DecodeRequest, LogprobsMode};

/// A JSON object body.
pub(crate) struct Fields(pub Map<String, Value>);

impl Fields {
    /// Parses `body` as a JSON object.
    pub fn parse(body: &Bytes) -> Result<Fields, ApiError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Fields(m)),
            Ok(other) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "the request body must be a JSON object, not {}",
                    kind(&other)
                ),
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the request body is not valid JSON: {e}"),
            )),
        }
    }

    /// A field, `null` counting as absent.
    pub fn get(&self, k: &str) -> Option<&Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    pub fn bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(ApiError::bad(
                k,
                format!("'{k}' must be a boolean, not {}", kind(v)),
            )),
        }
    }

    pub fn string(&self, k: &str) -> Result<Option<&str>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(ApiError::bad(
                k,
                format!("'{k}' must be a string, not {}", kind(v)),
            )),
        }
    }

    /// An integer in `min..=max`.
    pub fn int(&self, k: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        let n = v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| ApiError::bad(k, format!("'{k}' must be an integer, not {v}")))?;
        if n < min {
            return Err(ApiError::bad(
                k,
                format!("'{k}' must be at least {min}, got {n}."),
            ));
        }
        if n > max {
            return Err(ApiError::bad(
                k,
                format!("'{k}' must be at most {max}, got {n}."),
            ));
        }
        Ok(Some(n))
    }

    pub fn float(&self, k: &str) -> Result<Option<f64>, ApiError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| ApiError::bad(k, format!("'{k}' must be a number, not {v}"))),
        }
    }

    /// A seed: any 64-bit integer, signed or not (a negative one is taken as its bits).
    pub fn seed(&self) -> Result<Option<u64>, ApiError> {
        match self.get("seed") {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_i64().map(|i| i as u64))
                .map(Some)
                .ok_or_else(|| {
                    ApiError::bad("seed", format!("'seed' must be a 64-bit integer, not {v}"))
                }),
        }
    }

    /// A string or a list of strings.
    pub fn strings(&self, k: &str) -> Result<Vec<String>, ApiError> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.as_str().map(str::to_string).ok_or_else(|| {
                        ApiError::bad(format!("{k}[{i}]"), format!("'{k}[{i}]' must be a string"))
                    })
                })
                .collect(),
            Some(v) => Err(ApiError::bad(
                k,
                format!(
                    "'{k}' must be a string or a list of strings, not {}",
                    kind(v)
                ),
            )),
        }
    }

    /// A list of token ids.
    pub fn ids(&self, k: &str, vocab: usize) -> Result<Vec<u32>, ApiError> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, t)| token_id(t, vocab).map_err(|m| ApiError::bad(format!("{k}[{i}]"), m)))
                .collect(),
            Some(v) => Err(ApiError::bad(
                k,
                format!("'{k}' must be a list of token ids, not {}", kind(v)),
            )),
        }
    }
}

/// A token id below `vocab`.
pub(crate) fn token_id(v: &Value, vocab: usize) -> Result<u32, String> {
    v.as_u64()
        .filter(|&t| (t as usize) < vocab)
        .map(|t| t as u32)
        .ok_or_else(|| format!("{v} is not a token id of this model (0..{vocab})"))
}

/// The JSON type of `v`, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The sampling fields both generation endpoints share.
pub(crate) struct Sampling {
    /// The decoding request, `max_new_tokens` as asked (before the context cuts it).
    pub decode: DecodeRequest,
    /// Choices per prompt.
    pub n: usize,
    /// The seed, when given.
    pub seed: Option<u64>,
}

/// Reads the sampling fields; `default_max` when neither `max_tokens` nor
/// `max_completion_tokens` is given.
pub(crate) fn sampling(
    f: &Fields,
    default_max: usize,
    vocab: usize,
    mode: LogprobsMode,
) -> Result<Sampling, ApiError> {
    let max_tokens = f.int("max_tokens", 1, i64::MAX)?;
    let max_completion = f.int("max_completion_tokens", 1, i64::MAX)?;
    let requested = max_completion
        .or(max_tokens)
        .map_or(default_max, |m| m as usize);
    let temperature = f.float("temperature")?.unwrap_or(1.0);
    if temperature < 0.0 {
        return Err(ApiError::bad(
            "temperature",
            format!("'temperature' must be at least 0, got {temperature}."),
        ));
    }
    if let Some(p) = f.float("top_p")? {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::bad(
                "top_p",
                format!("'top_p' must be in (0, 1], got {p}."),
            ));
        }
        if p < 1.0 {
            return Err(ApiError::bad(
                "top_p",
                "supo serve samples from the whole distribution: only top_p = 1 is supported",
            ));
        }
    }
    if let Some(k) = f.int("top_k", -1, i64::MAX)? {
        if k > 0 {
            return Err(ApiError::bad(
                "top_k",
                "supo serve samples from the whole distribution: only top_k = -1 or 0 is supported",
            ));
        }
    }
    for k in ["presence_penalty", "frequency_penalty"] {
        if f.float(k)?.is_some_and(|p| p != 0.0) {
            return Err(ApiError::bad(
                k,
                format!("'{k}' is not supported by supo serve (only 0)"),
            ));
        }
    }
    let n = f.int("n", 1, 128)?.unwrap_or(1) as usize;
    let stop = f.strings("stop")?;
    let stop_token_ids = f.ids("stop_token_ids", vocab)?;
    Ok(Sampling {
        decode: DecodeRequest {
            max_new_tokens: requested,
            temperature: temperature as f32,
            seed: 0,
            top_logprobs: 0,
            stop,
            include_stop: f.bool("include_stop_str_in_output")?.unwrap_or(false),
            stop_token_ids,
            ignore_eos: f.bool("ignore_eos")?.unwrap_or(false),
            mode,
        },
        n,
        seed: f.seed()?,
    })
}

/// The seed of choice `i` of a request with seed `seed`: `seed` itself for the first.
pub(crate) fn choice_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
