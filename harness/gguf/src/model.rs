//! The transformer of a GGUF file: llama and qwen2 decoder blocks on candle's quantized
//! matrix kernels, with the key/value cache kept outside the weights so that any number of
//! decoders share one copy of the weights.
//!
//! The computation is candle-transformers' `quantized_llama` / `quantized_qwen2` (pre-norm
//! blocks, RMSNorm, rotary embeddings, grouped-query attention, SwiGLU), restated here because
//! those models keep their cache inside the weights (one conversation per copy of the weights)
//! and `quantized_llama` caps rotary positions at 4096.

use std::borrow::Cow;
use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use candle_core::quantized::{QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::error::{model_error, Error};
use crate::packed::{block_sums, Format, Packed, BLOCK};
use crate::rounding::Rounding;

/// The architectures this crate runs (`general.architecture`).
pub const ARCHITECTURES: &[&str] = &["llama", "qwen2"];

/// Prompt tokens fed through one forward pass at most (longer prompts go in chunks, so the
/// attention scores of a chunk stay `heads × CHUNK × context` floats).
pub(crate) const PREFILL_CHUNK: usize = 512;

/// Rows whose logits are computed at once when every position's are wanted.
pub(crate) const HEAD_ROWS: usize = 64;

/// The hyper-parameters read from the metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyper {
    /// `general.architecture`.
    pub arch: String,
    /// Decoder blocks.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Size of one head.
    pub head_dim: usize,
    /// The context the model was trained for.
    pub trained_context: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// Rotary base frequency.
    pub rope_base: f32,
    /// Rotary dimensions (at most `head_dim`).
    pub rope_dim: usize,
    /// Rows of the embedding (the vocabulary of the weights).
    pub vocab: usize,
}

/// A weight matrix `W` (`[n, k]`), applied as `x·Wᵀ`.
enum Linear {
    /// candle's product, quantized (the K-quants) or dense.
    Candle(QMatMul),
    /// A matrix of one of the 32-weight block formats in our own layout, multiplied by our
    /// own kernel ([`crate::packed`]) with the activations rounded per 32-value block, as
    /// llama.cpp does. (Through [`QMatMul`], a Q8_0 or Q4_0 matrix whose `k` is a multiple of
    /// 256 would take candle's repacked AVX-512-VNNI path, which rounds activations per 256
    /// values and moves the log-probs measurably away from llama.cpp's.)
    Packed(Packed),
}

/// Rows of activations from which a product dequantizes its matrix to f32 and multiplies
/// densely (candle's f32 GEMM) instead of taking quantized dot products row by row: prompt
/// chunks. ggml's BLAS path switches at the same 32 rows. Dequantizing costs one pass over
/// the matrix, which the GEMM repays from a few rows on. The activations are first rounded as
/// the quantized kernels round them ([`crate::rounding`]), so both paths give the same numbers.
pub(crate) const DENSE_ROWS: usize = 32;

impl Linear {
    /// The matrix in f32 (`[n, k]`), without the block minimums of [`Linear::Packed`].
    fn dequantize(&self, device: &Device) -> candle_core::Result<Tensor> {
        match self {
            Linear::Candle(QMatMul::QTensor(q)) => q.dequantize(device),
            Linear::Candle(QMatMul::Tensor(w) | QMatMul::TensorF16(w)) => w.to_dtype(DType::F32),
            Linear::Packed(p) => Tensor::from_vec(p.dequantize(), p.shape(), device),
        }
    }

    /// How the quantized product rounds its activations.
    fn rounding(&self) -> Rounding {
        match self {
            Linear::Candle(QMatMul::QTensor(q)) => Rounding::of(q.dtype()),
            Linear::Candle(_) => Rounding::None,
            Linear::Packed(_) => Rounding::Q8_0,
        }
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let rows = x.elem_count() / x.dims().last().copied().unwrap_or(1).max(1);
        let packed = match self {
            Linear::Candle(QMatMul::QTensor(_)) | Linear::Packed(_) if rows >= DENSE_ROWS => {
                return self.forward_dense(x, &self.dequantize(x.device())?);
            }
            Linear::Candle(m) => return m.forward(x),
            Linear::Packed(p) => p,
        };
        let (n, k) = packed.shape();
        let (lhs, mut dims) = rows_of(x, k, n)?;
        let y = Tensor::from_vec(packed.matmul_t(&lhs), (lhs.len() / k, n), x.device())?;
        dims.push(n);
        y.reshape(dims)
    }

    /// The product through candle's f32 GEMM with `w`, this matrix from
    /// [`Linear::dequantize`], the activations rounded as the quantized product rounds them.
    fn forward_dense(&self, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
        let (n, k) = w.dims2()?;
        let (lhs, mut dims) = rows_of(x, k, n)?;
        let m = lhs.len() / k;
        let mut rounded = lhs.clone();
        self.rounding().apply(&mut rounded);
        let y = Tensor::from_vec(rounded, (m, k), x.device())?.matmul(&w.t()?)?;
        let y = self.add_offsets(y, &lhs, k)?;
        dims.push(n);
        y.reshape(dims)
    }

    /// `y` plus the block minimums' share of the product (`lhs`: the activations, rows of
    /// `k`), for the formats with a minimum.
    fn add_offsets(&self, y: Tensor, lhs: &[f32], k: usize) -> candle_core::Result<Tensor> {
        let Linear::Packed(p) = self else {
            return Ok(y);
        };
        let Some(mins) = p.mins() else {
            return Ok(y);
        };
        let (m, n) = (lhs.len() / k, p.shape().0);
        let mins = Tensor::from_vec(mins, (n, k / BLOCK), y.device())?;
        let sums = Tensor::from_vec(block_sums(lhs, k), (m, k / BLOCK), y.device())?;
        y + sums.matmul(&mins.t()?)?
    }
}

/// The activations `x` (`[.., k]`) as rows of `k` values, and the dimensions before the last.
fn rows_of(x: &Tensor, k: usize, n: usize) -> candle_core::Result<(Vec<f32>, Vec<usize>)> {
    let mut dims = x.dims().to_vec();
    if dims.pop() != Some(k) {
        candle_core::bail!("input of shape {:?} for a [{n}, {k}] matrix", x.dims());
    }
    Ok((x.flatten_all()?.to_vec1()?, dims))
}

/// Matrices applied to the same input: one product over their rows stacked, where their
/// formats match (one pass of the kernels, one rendezvous of the threads), else one each.
enum Group {
    /// The stacked matrix and how many of its output columns belong to each part.
    Stacked(Linear, Vec<usize>),
    /// One product per part.
    Apart(Vec<Linear>),
}

impl Group {
    /// Stacks the parts (each `[n_i, k]`, the same `k`) when they share a format; `f32`: as
    /// [`matmul`].
    fn new(parts: Vec<QTensor>, f32: bool) -> Result<Group, Error> {
        let dtype = parts[0].dtype();
        if parts.len() == 1 || parts.iter().any(|p| p.dtype() != dtype) {
            let parts = parts
                .into_iter()
                .map(|p| matmul(p, f32))
                .collect::<Result<_, _>>()?;
            return Ok(Group::Apart(parts));
        }
        let mut sizes = Vec::with_capacity(parts.len());
        let mut bytes = Vec::new();
        let k = parts[0].shape().dims2().map_err(model_error)?.1;
        for p in &parts {
            let (n, pk) = p.shape().dims2().map_err(model_error)?;
            if pk != k {
                return Err(Error::new(format!(
                    "matrices of widths {k} and {pk} share an input"
                )));
            }
            sizes.push(n);
            bytes.extend_from_slice(&p.data().map_err(model_error)?);
        }
        let device = parts[0].device();
        drop(parts);
        let storage =
            QStorage::from_data(Cow::Owned(bytes), &device, dtype).map_err(model_error)?;
        let stacked =
            QTensor::new(storage, (sizes.iter().sum::<usize>(), k)).map_err(model_error)?;
        Ok(Group::Stacked(matmul(stacked, f32)?, sizes))
    }

    /// Each part's product with `x`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        match self {
            Group::Apart(parts) => parts.iter().map(|p| p.forward(x)).collect(),
            Group::Stacked(linear, sizes) => {
                let y = linear.forward(x)?;
                let last = y.rank() - 1;
                let mut at = 0;
                sizes
                    .iter()
                    .map(|&n| {
                        at += n;
                        y.narrow(last, at - n, n)
                    })
                    .collect()
            }
        }
    }
}

struct Layer {
    attn_norm: Tensor,
    /// The query, key and value matrices.
    qkv: Group,
    bias: Option<(Tensor, Tensor, Tensor)>,
    wo: Linear,
    ffn_norm: Tensor,
    /// The gate and up matrices.
    gate_up: Group,
    down: Linear,
}

/// The weights of a model, shared by every decoder.
pub(crate) struct Weights {
    pub(crate) hyper: Hyper,
    embed: QMatMul,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Linear,
    /// llama.cpp's NEOX rotation (pairs `i`, `i + d/2`) for qwen2; the interleaved one
    /// (pairs `2i`, `2i + 1`) for llama, whose GGUF weights are permuted for it.
    neox: bool,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// The key/value cache of one sequence. Clones share their tensors (which are never written
/// in place: feeding tokens makes new ones).
#[derive(Clone)]
pub(crate) struct Cache {
    kv: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl Cache {
    /// Tokens in the cache.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The cache of the first `n` tokens (`n` at most [`Cache::len`]).
    pub(crate) fn prefix(&self, n: usize) -> Result<Cache, Error> {
        let n = n.min(self.len);
        let kv = self
            .kv
            .iter()
            .map(|kv| match kv {
                Some((k, v)) if n > 0 => Ok(Some((k.narrow(2, 0, n)?, v.narrow(2, 0, n)?))),
                _ => Ok(None),
            })
            .collect::<candle_core::Result<_>>()
            .map_err(model_error)?;
        Ok(Cache { kv, len: n })
    }
}

/// A metadata value as an unsigned integer.
fn as_usize(v: &Value) -> Option<usize> {
    match *v {
        Value::U8(x) => Some(x as usize),
        Value::U16(x) => Some(x as usize),
        Value::U32(x) => Some(x as usize),
        Value::U64(x) => usize::try_from(x).ok(),
        Value::I8(x) => usize::try_from(x).ok(),
        Value::I16(x) => usize::try_from(x).ok(),
        Value::I32(x) => usize::try_from(x).ok(),
        Value::I64(x) => usize::try_from(x).ok(),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match *v {
        Value::F32(x) => Some(x as f64),
        Value::F64(x) => Some(x),
        _ => as_usize(v).map(|x| x as f64),
    }
}

/// A required positive integer of the metadata.
pub(crate) fn md_usize(md: &HashMap<String, Value>, key: &str) -> Result<usize, Error> {
    let v = md
        .get(key)
        .ok_or_else(|| Error::new(format!("the metadata has no `{key}`")))?;
    match as_usize(v) {
        Some(x) if x > 0 => Ok(x),
        _ => Err(Error::new(format!(
            "the metadata's `{key}` is not a positive integer: {v:?}"
        ))),
    }
}

/// A metadata string.
pub(crate) fn md_str<'a>(md: &'a HashMap<String, Value>, key: &str) -> Option<&'a str> {
    match md.get(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// The bytes a tensor occupies in the file, or why its description is impossible.
fn tensor_bytes(name: &str, info: &TensorInfo) -> Result<u64, Error> {
    let elems = info
        .shape
        .dims()
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .ok_or_else(|| Error::new(format!("tensor {name}: its shape overflows")))?;
    let block = info.ggml_dtype.block_size() as u64;
    if elems % block != 0 {
        return Err(Error::new(format!(
            "tensor {name}: {elems} elements are not a whole number of {:?} blocks",
            info.ggml_dtype
        )));
    }
    (elems / block)
        .checked_mul(info.ggml_dtype.type_size() as u64)
        .ok_or_else(|| Error::new(format!("tensor {name}: its size overflows")))
}

/// Checks that every tensor the header describes lies inside the file.
pub(crate) fn check_tensors(ct: &Content, file_len: u64) -> Result<(), Error> {
    for (name, info) in &ct.tensor_infos {
        let size = tensor_bytes(name, info)?;
        let end = ct
            .tensor_data_offset
            .checked_add(info.offset)
            .and_then(|s| s.checked_add(size));
        if end.is_none_or(|e| e > file_len) {
            return Err(Error::new(format!(
                "tensor {name} ({size} bytes at offset {}) lies past the end of the file \
                 ({file_len} bytes): the file is truncated or its header is damaged",
                info.offset
            )));
        }
    }
    Ok(())
}

impl Hyper {
    /// The hyper-parameters of a llama or qwen2 file.
    pub(crate) fn read(ct: &Content) -> Result<Hyper, Error> {
        let md = &ct.metadata;
        let arch = md_str(md, "general.architecture")
            .ok_or_else(|| Error::new("the metadata has no `general.architecture`"))?
            .to_string();
        if !ARCHITECTURES.contains(&arch.as_str()) {
            return Err(Error::new(format!(
                "unsupported architecture {arch:?}: supo-gguf runs {}",
                ARCHITECTURES.join(" and ")
            )));
        }
        let key = |k: &str| format!("{arch}.{k}");
        if let Some(s) = md_str(md, &key("rope.scaling.type")) {
            if s != "none" && s != "linear" {
                return Err(Error::new(format!(
                    "unsupported rope scaling {s:?} (only none and linear are implemented)"
                )));
            }
        }
        if ct.tensor_infos.contains_key("rope_freqs.weight") {
            return Err(Error::new(
                "unsupported rope frequency factors (rope_freqs.weight)",
            ));
        }
        if md
            .get(&key("expert_count"))
            .and_then(as_usize)
            .is_some_and(|e| e > 1)
        {
            return Err(Error::new("mixture-of-experts models are not supported"));
        }
        let hidden = md_usize(md, &key("embedding_length"))?;
        let heads = md_usize(md, &key("attention.head_count"))?;
        let kv_heads = md
            .get(&key("attention.head_count_kv"))
            .and_then(as_usize)
            .unwrap_or(heads);
        if hidden % heads != 0 || kv_heads == 0 || heads % kv_heads != 0 {
            return Err(Error::new(format!(
                "inconsistent attention shape: hidden {hidden}, {heads} heads, {kv_heads} \
                 key/value heads"
            )));
        }
        let head_dim = hidden / heads;
        let rope_dim = md
            .get(&key("rope.dimension_count"))
            .and_then(as_usize)
            .unwrap_or(head_dim);
        if rope_dim != head_dim {
            return Err(Error::new(format!(
                "partial rotary embeddings ({rope_dim} of {head_dim} dimensions) are not \
                 supported"
            )));
        }
        let eps = md
            .get(&key("attention.layer_norm_rms_epsilon"))
            .and_then(as_f64)
            .ok_or_else(|| {
                Error::new(format!(
                    "the metadata has no `{}`",
                    key("attention.layer_norm_rms_epsilon")
                ))
            })?;
        let rope_base = md
            .get(&key("rope.freq_base"))
            .and_then(as_f64)
            .unwrap_or(10_000.0) as f32;
        let vocab = ct
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| Error::new("the file has no tensor token_embd.weight"))?
            .shape
            .dims()
            .first()
            .copied()
            .unwrap_or(0);
        Ok(Hyper {
            layers: md_usize(md, &key("block_count"))?,
            trained_context: md_usize(md, &key("context_length"))?,
            arch,
            hidden,
            heads,
            kv_heads,
            head_dim,
            eps,
            rope_base,
            rope_dim,
            vocab,
        })
    }
}

/// Reads one tensor, checking its shape (`dims` as candle writes them: rows first).
fn tensor(
    ct: &Content,
    file: &[u8],
    name: &str,
    dims: &[usize],
    device: &Device,
) -> Result<candle_core::quantized::QTensor, Error> {
    let info = ct
        .tensor_infos
        .get(name)
        .ok_or_else(|| Error::new(format!("the file has no tensor {name}")))?;
    if info.shape.dims() != dims {
        return Err(Error::new(format!(
            "tensor {name} has shape {:?}, the metadata implies {dims:?}",
            info.shape.dims()
        )));
    }
    let mut reader = std::io::Cursor::new(file);
    ct.tensor(&mut reader, name, device)
        .map_err(|e| Error::new(format!("tensor {name}: {e}")))
}

/// A norm weight as an f32 tensor.
fn vector(
    ct: &Content,
    file: &[u8],
    name: &str,
    n: usize,
    device: &Device,
) -> Result<Tensor, Error> {
    tensor(ct, file, name, &[n], device)?
        .dequantize(device)
        .map_err(|e| Error::new(format!("tensor {name}: {e}")))
}

/// A weight matrix: our own product for the 32-weight block formats ([`Packed`]), candle's
/// for the others, or with `f32` its dequantized matrix.
fn matmul(q: QTensor, f32: bool) -> Result<Linear, Error> {
    let device = q.device();
    if f32 {
        let w = q.dequantize(&device).map_err(model_error)?;
        return Ok(Linear::Candle(QMatMul::Tensor(w)));
    }
    let Some(format) = Format::of(q.dtype()) else {
        return Ok(Linear::Candle(
            QMatMul::from_qtensor(q).map_err(model_error)?,
        ));
    };
    let (n, k) = q.shape().dims2().map_err(model_error)?;
    let data = q.data().map_err(model_error)?;
    Ok(Linear::Packed(Packed::new(format, n, k, &data)?))
}

impl Weights {
    /// Loads the weights of `ct` from `file` (the whole GGUF file), with rotary tables for
    /// `context` positions; `f32`: every matrix dequantized.
    pub(crate) fn load(
        ct: &Content,
        file: &[u8],
        hyper: Hyper,
        context: usize,
        device: &Device,
        f32: bool,
    ) -> Result<Weights, Error> {
        let h = &hyper;
        let (d, kv) = (h.hidden, h.kv_heads * h.head_dim);
        let embed = std::sync::Arc::new(tensor(
            ct,
            file,
            "token_embd.weight",
            &[h.vocab, d],
            device,
        )?);
        // A model without `output.weight` ties its output to the embedding: it shares the
        // embedding's blocks unless they are converted.
        let output = if ct.tensor_infos.contains_key("output.weight") {
            let w = tensor(ct, file, "output.weight", &[h.vocab, d], device)?;
            matmul(w, f32)?
        } else if f32 || Format::of(embed.dtype()).is_some() {
            let w = tensor(ct, file, "token_embd.weight", &[h.vocab, d], device)?;
            matmul(w, f32)?
        } else {
            Linear::Candle(QMatMul::from_arc(embed.clone()).map_err(model_error)?)
        };
        let embed = QMatMul::from_arc(embed).map_err(model_error)?;
        let mut layers = Vec::with_capacity(h.layers);
        for i in 0..h.layers {
            let p = |n: &str| format!("blk.{i}.{n}");
            let ffn = ct
                .tensor_infos
                .get(&p("ffn_up.weight"))
                .and_then(|t| t.shape.dims().first().copied())
                .ok_or_else(|| {
                    Error::new(format!("the file has no tensor {}", p("ffn_up.weight")))
                })?;
            let bias = if h.arch == "qwen2" {
                Some((
                    vector(ct, file, &p("attn_q.bias"), d, device)?,
                    vector(ct, file, &p("attn_k.bias"), kv, device)?,
                    vector(ct, file, &p("attn_v.bias"), kv, device)?,
                ))
            } else {
                None
            };
            let q = |name: &str, rows: usize, cols: usize| {
                tensor(ct, file, &p(name), &[rows, cols], device)
            };
            layers.push(Layer {
                attn_norm: vector(ct, file, &p("attn_norm.weight"), d, device)?,
                qkv: Group::new(
                    vec![
                        q("attn_q.weight", d, d)?,
                        q("attn_k.weight", kv, d)?,
                        q("attn_v.weight", kv, d)?,
                    ],
                    f32,
                )?,
                bias,
                wo: matmul(q("attn_output.weight", d, d)?, f32)?,
                ffn_norm: vector(ct, file, &p("ffn_norm.weight"), d, device)?,
                gate_up: Group::new(
                    vec![q("ffn_gate.weight", ffn, d)?, q("ffn_up.weight", ffn, d)?],
                    f32,
                )?,
                down: matmul(q("ffn_down.weight", d, ffn)?, f32)?,
            });
        }
        let norm = vector(ct, file, "output_norm.weight", d, device)?;
        let (cos, sin) = rope_tables(h, context, device).map_err(model_error)?;
        Ok(Weights {
            neox: h.arch == "qwen2",
            hyper,
            embed,
            layers,
            norm,
            output,
            cos,
            sin,
            device: device.clone(),
        })
    }

    /// An empty cache.
    pub(crate) fn cache(&self) -> Cache {
        Cache {
            kv: vec![None; self.layers.len()],
            len: 0,
        }
    }

    /// Positions the rotary tables cover.
    pub(crate) fn positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// Checks that `tokens` can follow the cached ones.
    pub(crate) fn check(&self, tokens: &[u32], cache: &Cache) -> Result<(), Error> {
        if tokens.is_empty() {
            return Err(Error::new("no tokens to feed"));
        }
        if cache.len + tokens.len() > self.positions() {
            return Err(Error::new(format!(
                "{} tokens do not fit the context of {} tokens",
                cache.len + tokens.len(),
                self.positions()
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.hyper.vocab) {
            return Err(Error::new(format!(
                "token id {bad} is outside the vocabulary of {} tokens",
                self.hyper.vocab
            )));
        }
        Ok(())
    }

    /// Feeds `tokens` after the cached ones (in chunks of [`PREFILL_CHUNK`]) and returns the
    /// logits after the last one.
    pub(crate) fn forward(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>, Error> {
        self.check(tokens, cache)?;
        let mut last = None;
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            let x = self.blocks(chunk, cache).map_err(model_error)?;
            last = Some(x.narrow(0, chunk.len() - 1, 1).map_err(model_error)?);
        }
        let last = last.expect("at least one chunk");
        let logits = self.head(&last, None)?;
        Ok(logits.into_iter().next().expect("one row"))
    }

    /// The output matrix in f32 ([`Linear::dequantize`]), for [`Weights::head`] over many rows
    /// (vocabulary × hidden floats).
    pub(crate) fn output_f32(&self) -> Result<Tensor, Error> {
        self.output.dequantize(&self.device).map_err(model_error)
    }

    /// The logits of residual-stream rows `x` (`[rows, d]`): the final norm and the output
    /// matrix (`output`: that matrix dequantized, else the quantized one).
    pub(crate) fn head(&self, x: &Tensor, output: Option<&Tensor>) -> Result<Vec<Vec<f32>>, Error> {
        // candle's norms and softmax turn NaN into zeros downstream: check the residual stream.
        let damaged =
            || Error::new("the model computed non-finite activations: its weights are damaged");
        let flat: Vec<f32> = x
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(model_error)?;
        if flat.iter().any(|v| !v.is_finite()) {
            return Err(damaged());
        }
        let xn =
            candle_nn::ops::rms_norm(x, &self.norm, self.hyper.eps as f32).map_err(model_error)?;
        let logits = match output {
            Some(w) => self.output.forward_dense(&xn, w),
            None => self.output.forward(&xn),
        };
        let logits: Vec<Vec<f32>> = logits
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec2())
            .map_err(model_error)?;
        if logits.iter().flatten().any(|x| !x.is_finite()) {
            return Err(Error::new(
                "the model computed non-finite logits: its weights are damaged",
            ));
        }
        Ok(logits)
    }

    /// Feeds one chunk through the decoder blocks: the residual stream after the last block,
    /// `[t, d]`. The tokens must pass [`Weights::check`].
    pub(crate) fn blocks(&self, tokens: &[u32], cache: &mut Cache) -> candle_core::Result<Tensor> {
        let h = &self.hyper;
        let (t, start) = (tokens.len(), cache.len);
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embed.embedding(&ids)?.unsqueeze(0)?; // [1, t, d]
        let cos = self.cos.narrow(0, start, t)?;
        let sin = self.sin.narrow(0, start, t)?;
        let mask = if t > 1 {
            Some(causal_mask(t, start, &self.device)?)
        } else {
            None
        };
        for (layer, kv) in self.layers.iter().zip(cache.kv.iter_mut()) {
            let residual = x.clone();
            let xn = candle_nn::ops::rms_norm(&x, &layer.attn_norm, h.eps as f32)?;
            let [mut q, mut k, mut v]: [Tensor; 3] = layer
                .qkv
                .forward(&xn)?
                .try_into()
                .map_err(|_| candle_core::Error::Msg("three projections".into()))?;
            if let Some((bq, bk, bv)) = &layer.bias {
                q = q.broadcast_add(bq)?;
                k = k.broadcast_add(bk)?;
                v = v.broadcast_add(bv)?;
            }
            let heads = |x: Tensor, n: usize| {
                x.reshape((1, t, n, h.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (q, k, v) = (
                heads(q, h.heads)?,
                heads(k, h.kv_heads)?,
                heads(v, h.kv_heads)?,
            );
            let rope = |x: &Tensor| {
                if self.neox {
                    candle_nn::rotary_emb::rope(x, &cos, &sin)
                } else {
                    candle_nn::rotary_emb::rope_i(x, &cos, &sin)
                }
            };
            let (q, k) = (rope(&q)?, rope(&k)?);
            let (k, v) = match kv.take() {
                None => (k, v),
                Some((k0, v0)) => (Tensor::cat(&[&k0, &k], 2)?, Tensor::cat(&[&v0, &v], 2)?),
            };
            *kv = Some((k.clone(), v.clone()));
            let total = start + t;
            // Grouped-query attention without copying the keys: the query heads that share a
            // key/value head are stacked along the rows.
            let rep = h.heads / h.kv_heads;
            let q = q.reshape((1, h.kv_heads, rep * t, h.head_dim))?;
            let att = (q.matmul(&k.t()?)? / (h.head_dim as f64).sqrt())?;
            let att = match &mask {
                None => att,
                Some(m) => att
                    .reshape((1, h.kv_heads, rep, t, total))?
                    .broadcast_add(m)?
                    .reshape((1, h.kv_heads, rep * t, total))?,
            };
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let y = att.matmul(&v)?; // [1, kv_heads, rep * t, head_dim]
            let y = y
                .reshape((1, h.heads, t, h.head_dim))?
                .transpose(1, 2)?
                .reshape((1, t, h.hidden))?;
            let x1 = (layer.wo.forward(&y)? + residual)?;
            let xn = candle_nn::ops::rms_norm(&x1, &layer.ffn_norm, h.eps as f32)?;
            let [g, u]: [Tensor; 2] = layer
                .gate_up
                .forward(&xn)?
                .try_into()
                .map_err(|_| candle_core::Error::Msg("two projections".into()))?;
            let g = candle_nn::ops::silu(&g)?;
            x = (layer.down.forward(&(g * u)?)? + x1)?;
        }
        cache.len += t;
        x.squeeze(0)
    }
}

/// `0` where query row `i` (position `start + i`) may attend key `j`, `-inf` after it:
/// `[t, start + t]`.
fn causal_mask(t: usize, start: usize, device: &Device) -> candle_core::Result<Tensor> {
    let total = start + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j <= start + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, total), device)
}

/// The rotary tables `cos`, `sin`: `[context, rope_dim / 2]`.
fn rope_tables(
    h: &Hyper,
    context: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let inv: Vec<f32> = (0..h.rope_dim)
        .step_by(2)
        .map(|i| 1.0 / h.rope_base.powf(i as f32 / h.rope_dim as f32))
        .collect();
    let half = inv.len();
    let inv = Tensor::from_vec(inv, (1, half), device)?;
    let pos = Tensor::arange(0u32, context as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((context, 1))?;
    let angles = pos.broadcast_mul(&inv)?;
    Ok((angles.cos()?, angles.sin()?))
}
