//! A small decoder-only transformer on the CPU, forward and backward written out by hand.
//!
//! Pre-norm blocks (RMSNorm → causal multi-head attention with rotary position embeddings →
//! residual, RMSNorm → GELU MLP → residual), a final RMSNorm. A token's input is the sum of
//! learned embeddings of the token, of the token before it (a "token shift", which lets one
//! attention layer look things up by the token that precedes them: `k3 v5` is found from
//! `k3`) and of its position. The output head
//! (`[vocab, d_model]`) is applied by the caller — for RL through `supo-core`'s fused linear
//! policy loss — so [`Transformer::forward`] stops at the final hidden states and
//! [`Transformer::backward`] starts from their gradient.
//!
//! All parameters live in one flat `Vec<f32>` ([`Layout`] names the ranges), so optimisers and
//! checkpoints see a single tensor. Matrices are row-major `[in, out]` (`y = x·W`); the output
//! head is `[vocab, d_model]`.

use std::ops::Range;

use rand::Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use supo_core::model::ModelError;

/// RMSNorm's epsilon.
const NORM_EPS: f32 = 1e-5;

/// The base of the rotary embedding's frequencies.
const ROPE_BASE: f32 = 10_000.0;

/// The shape of a [`Transformer`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformerConfig {
    /// Vocabulary size.
    pub vocab: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of blocks.
    pub layers: usize,
    /// Attention heads per block (`d_model` must be a multiple).
    pub heads: usize,
    /// Width of the MLP.
    pub d_ff: usize,
    /// The longest sequence (learned positions).
    pub max_positions: usize,
}

impl TransformerConfig {
    /// Checks that the shape is usable.
    pub fn validate(&self) -> Result<(), ModelError> {
        let c = self;
        if c.vocab == 0 || c.d_model == 0 || c.layers == 0 || c.heads == 0 || c.d_ff == 0 {
            return Err(ModelError(format!(
                "transformer sizes must be positive: {c:?}"
            )));
        }
        if !c.d_model.is_multiple_of(c.heads) || !(c.d_model / c.heads).is_multiple_of(2) {
            return Err(ModelError(format!(
                "d_model {} is not an even multiple of heads {}",
                c.d_model, c.heads
            )));
        }
        if c.max_positions == 0 {
            return Err(ModelError("max_positions must be positive".into()));
        }
        Ok(())
    }

    fn head_dim(&self) -> usize {
        self.d_model / self.heads
    }
}

/// Where one block's parameters are in the flat vector.
#[derive(Clone, Debug)]
struct BlockLayout {
    norm1: Range<usize>,
    wqkv: Range<usize>,
    wo: Range<usize>,
    norm2: Range<usize>,
    w1: Range<usize>,
    w2: Range<usize>,
}

/// Where each parameter tensor is in the flat vector.
#[derive(Clone, Debug)]
pub struct Layout {
    tok_emb: Range<usize>,
    prev_emb: Range<usize>,
    pos_emb: Range<usize>,
    blocks: Vec<BlockLayout>,
    norm_f: Range<usize>,
    /// The output head `[vocab, d_model]`.
    pub head: Range<usize>,
    /// Total number of parameters.
    pub len: usize,
}

impl Layout {
    fn new(c: &TransformerConfig) -> Layout {
        let mut at = 0;
        let mut take = |n: usize| {
            let r = at..at + n;
            at += n;
            r
        };
        let (d, f) = (c.d_model, c.d_ff);
        let tok_emb = take(c.vocab * d);
        let prev_emb = take(c.vocab * d);
        let pos_emb = take(c.max_positions * d);
        let blocks = (0..c.layers)
            .map(|_| BlockLayout {
                norm1: take(d),
                wqkv: take(d * 3 * d),
                wo: take(d * d),
                norm2: take(d),
                w1: take(d * f),
                w2: take(f * d),
            })
            .collect();
        let norm_f = take(d);
        let head = take(c.vocab * d);
        Layout {
            tok_emb,
            prev_emb,
            pos_emb,
            blocks,
            norm_f,
            head,
            len: at,
        }
    }
}

/// A transformer: its shape and its parameters.
#[derive(Clone, Debug)]
pub struct Transformer {
    config: TransformerConfig,
    layout: Layout,
    rope: Rope,
    /// All parameters, in [`Layout`] order.
    pub params: Vec<f32>,
}

/// Token sequences packed end to end: row `r` is `tokens[offsets[r]..offsets[r + 1]]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Packed {
    /// All tokens.
    pub tokens: Vec<u32>,
    /// Row boundaries (`rows + 1` entries, starting at 0).
    pub offsets: Vec<usize>,
}

impl Packed {
    /// Packs `rows`.
    pub fn new<'a>(rows: impl IntoIterator<Item = &'a [u32]>) -> Packed {
        let mut p = Packed {
            tokens: Vec::new(),
            offsets: vec![0],
        };
        for r in rows {
            p.tokens.extend_from_slice(r);
            p.offsets.push(p.tokens.len());
        }
        p
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    fn row(&self, r: usize) -> Range<usize> {
        self.offsets[r]..self.offsets[r + 1]
    }
}

/// What one block's forward pass keeps for the backward pass.
#[derive(Clone, Debug, Default)]
struct BlockTape {
    x: Vec<f32>,
    h1: Vec<f32>,
    r1: Vec<f32>,
    qkv: Vec<f32>,
    probs: Vec<f32>,
    ctx: Vec<f32>,
    x_mid: Vec<f32>,
    h2: Vec<f32>,
    r2: Vec<f32>,
    u: Vec<f32>,
    a: Vec<f32>,
}

/// The activations of a training forward pass; [`Tape::hidden`] is its output.
#[derive(Clone, Debug, Default)]
pub struct Tape {
    packed: Packed,
    prob_offsets: Vec<usize>,
    blocks: Vec<BlockTape>,
    x_final: Vec<f32>,
    r_final: Vec<f32>,
    /// The final normed hidden state of every token, `[tokens, d_model]`.
    pub hidden: Vec<f32>,
}

/// Keys and values of the tokens seen so far, for generation one token at a time.
#[derive(Clone, Debug)]
pub struct KvCache {
    tokens: Vec<u32>,
    /// Per layer, `[d_model, max_positions]`: the keys transposed.
    keys_t: Vec<Vec<f32>>,
    /// Per layer, `[max_positions, d_model]`.
    values: Vec<Vec<f32>>,
}

impl KvCache {
    /// The tokens in the cache.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Forgets every token after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
    }
}

impl Transformer {
    /// A transformer with freshly initialised parameters (seeded).
    pub fn new(config: TransformerConfig, rng: &mut impl Rng) -> Result<Transformer, ModelError> {
        config.validate()?;
        let layout = Layout::new(&config);
        let mut params = vec![0.0f32; layout.len];
        let d = config.d_model;
        let mut fill = |r: &Range<usize>, std: f32, rng: &mut dyn rand::RngCore| {
            let normal = Normal::new(0.0f32, std).expect("positive std");
            for p in &mut params[r.clone()] {
                *p = normal.sample(rng);
            }
        };
        let resid = 1.0 / ((d as f32) * 2.0 * config.layers as f32).sqrt();
        fill(&layout.tok_emb, 0.5, rng);
        fill(&layout.prev_emb, 0.5, rng);
        fill(&layout.pos_emb, 0.1, rng);
        for b in &layout.blocks {
            fill(&b.wqkv, 1.0 / (d as f32).sqrt(), rng);
            fill(&b.wo, resid, rng);
            fill(&b.w1, 1.0 / (d as f32).sqrt(), rng);
            fill(&b.w2, resid * (d as f32 / config.d_ff as f32).sqrt(), rng);
        }
        fill(&layout.head, 1.0 / (d as f32).sqrt(), rng);
        for b in &layout.blocks {
            params[b.norm1.clone()].fill(1.0);
            params[b.norm2.clone()].fill(1.0);
        }
        params[layout.norm_f.clone()].fill(1.0);
        Ok(Transformer {
            rope: Rope::new(&config),
            config,
            layout,
            params,
        })
    }

    /// A transformer with the given parameters (e.g. from a checkpoint).
    pub fn from_params(config: TransformerConfig, params: Vec<f32>) -> Result<Self, ModelError> {
        config.validate()?;
        let layout = Layout::new(&config);
        if params.len() != layout.len {
            return Err(ModelError(format!(
                "the checkpoint has {} parameters, the configuration needs {}",
                params.len(),
                layout.len
            )));
        }
        if let Some(i) = params.iter().position(|p| !p.is_finite()) {
            return Err(ModelError(format!("parameter {i} is not finite")));
        }
        Ok(Transformer {
            rope: Rope::new(&config),
            config,
            layout,
            params,
        })
    }

    /// The shape.
    pub fn config(&self) -> &TransformerConfig {
        &self.config
    }

    /// Where each tensor is in [`Transformer::params`].
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The output head `[vocab, d_model]`.
    pub fn head(&self) -> &[f32] {
        &self.params[self.layout.head.clone()]
    }

    fn check_tokens(&self, packed: &Packed) -> Result<(), ModelError> {
        if let Some(t) = packed
            .tokens
            .iter()
            .find(|&&t| t as usize >= self.config.vocab)
        {
            return Err(ModelError(format!(
                "token id {t} is outside the vocabulary of {}",
                self.config.vocab
            )));
        }
        for r in 0..packed.rows() {
            let n = packed.row(r).len();
            if n > self.config.max_positions {
                return Err(ModelError(format!(
                    "a sequence of {n} tokens is longer than the model's {} positions",
                    self.config.max_positions
                )));
            }
        }
        Ok(())
    }

    /// The training forward pass over packed sequences (each attends only to itself).
    pub fn forward(&self, packed: &Packed) -> Result<Tape, ModelError> {
        self.check_tokens(packed)?;
        let c = &self.config;
        let (d, n) = (c.d_model, packed.tokens.len());
        let p = &self.params;
        let mut x = vec![0.0f32; n * d];
        for r in 0..packed.rows() {
            let row = &packed.tokens[packed.row(r)];
            let start = packed.offsets[r];
            for (pos, &tok) in row.iter().enumerate() {
                let prev = pos.checked_sub(1).map(|q| row[q]);
                self.embed(&mut x[(start + pos) * d..][..d], tok, prev, pos);
            }
        }
        let mut prob_offsets = vec![0usize];
        for r in 0..packed.rows() {
            let t = packed.row(r).len();
            prob_offsets.push(prob_offsets[r] + c.heads * t * t);
        }
        let mut blocks = Vec::with_capacity(c.layers);
        for b in &self.layout.blocks {
            let (h1, r1) = rms_norm(&x, &p[b.norm1.clone()], d);
            let mut qkv = vec![0.0; n * 3 * d];
            gemm(
                n,
                d,
                3 * d,
                &h1,
                false,
                &p[b.wqkv.clone()],
                false,
                &mut qkv,
                false,
            );
            for r in 0..packed.rows() {
                let rows = packed.row(r);
                self.rope
                    .rotate(&mut qkv[rows.start * 3 * d..rows.end * 3 * d], 0, false);
            }
            let mut probs = vec![0.0; *prob_offsets.last().unwrap_or(&0)];
            let mut ctx = vec![0.0; n * d];
            {
                let ctx_rows = split_rows(&mut ctx, &packed.offsets, d);
                let prob_rows = split_rows(&mut probs, &prob_offsets, 1);
                ctx_rows
                    .into_par_iter()
                    .zip(prob_rows)
                    .enumerate()
                    .for_each(|(r, (ctx_r, probs_r))| {
                        let rows = packed.row(r);
                        let qkv_r = &qkv[rows.start * 3 * d..rows.end * 3 * d];
                        let values = Strided {
                            data: qkv_r,
                            stride: 3 * d,
                        };
                        let keys_t = transposed_keys(qkv_r, d);
                        let n = rows.len();
                        attend(
                            c,
                            qkv_r,
                            &keys_t,
                            n,
                            &values,
                            2 * d,
                            0,
                            ctx_r,
                            Some(probs_r),
                        );
                    });
            }
            let mut x_mid = x.clone();
            gemm(
                n,
                d,
                d,
                &ctx,
                false,
                &p[b.wo.clone()],
                false,
                &mut x_mid,
                true,
            );
            let (h2, r2) = rms_norm(&x_mid, &p[b.norm2.clone()], d);
            let mut u = vec![0.0; n * c.d_ff];
            gemm(
                n,
                d,
                c.d_ff,
                &h2,
                false,
                &p[b.w1.clone()],
                false,
                &mut u,
                false,
            );
            let a: Vec<f32> = u.iter().map(|&v| gelu(v)).collect();
            let mut x_out = x_mid.clone();
            gemm(
                n,
                c.d_ff,
                d,
                &a,
                false,
                &p[b.w2.clone()],
                false,
                &mut x_out,
                true,
            );
            blocks.push(BlockTape {
                x: std::mem::replace(&mut x, x_out),
                h1,
                r1,
                qkv,
                probs,
                ctx,
                x_mid,
                h2,
                r2,
                u,
                a,
            });
        }
        let (hidden, r_final) = rms_norm(&x, &p[self.layout.norm_f.clone()], d);
        Ok(Tape {
            packed: packed.clone(),
            prob_offsets,
            blocks,
            x_final: x,
            r_final,
            hidden,
        })
    }

    /// The backward pass: adds `dL/dparams` to `grads` (same layout as the parameters) given
    /// `d_hidden = dL/d(tape.hidden)`. The head's gradient is the caller's (it owns the head).
    pub fn backward(&self, tape: &Tape, d_hidden: &[f32], grads: &mut [f32]) {
        let c = &self.config;
        let (d, n, f) = (c.d_model, tape.packed.tokens.len(), c.d_ff);
        assert_eq!(
            d_hidden.len(),
            n * d,
            "d_hidden has the shape of tape.hidden"
        );
        assert_eq!(
            grads.len(),
            self.layout.len,
            "grads has the shape of params"
        );
        let p = &self.params;
        let mut dx = rms_norm_backward(
            &tape.x_final,
            &tape.r_final,
            &p[self.layout.norm_f.clone()],
            d_hidden,
            &mut grads[self.layout.norm_f.clone()],
            d,
        );
        for (b, t) in self.layout.blocks.iter().zip(&tape.blocks).rev() {
            // MLP: x_out = x_mid + gelu(h2·W1)·W2.
            let mut d_a = vec![0.0; n * f];
            gemm(n, d, f, &dx, false, &p[b.w2.clone()], true, &mut d_a, false);
            gemm(
                f,
                n,
                d,
                &t.a,
                true,
                &dx,
                false,
                &mut grads[b.w2.clone()],
                true,
            );
            for (g, &u) in d_a.iter_mut().zip(&t.u) {
                *g *= gelu_derivative(u);
            }
            gemm(
                d,
                n,
                f,
                &t.h2,
                true,
                &d_a,
                false,
                &mut grads[b.w1.clone()],
                true,
            );
            let norm2 = Norm {
                x: &t.x_mid,
                r: &t.r2,
                g: &p[b.norm2.clone()],
            };
            norm2.linear_backward(&d_a, &p[b.w1.clone()], &mut grads[b.norm2.clone()], &mut dx);
            // Attention: x_mid = x + attention(h1)·Wo.
            let mut d_ctx = vec![0.0; n * d];
            gemm(
                n,
                d,
                d,
                &dx,
                false,
                &p[b.wo.clone()],
                true,
                &mut d_ctx,
                false,
            );
            gemm(
                d,
                n,
                d,
                &t.ctx,
                true,
                &dx,
                false,
                &mut grads[b.wo.clone()],
                true,
            );
            let mut d_qkv = vec![0.0; n * 3 * d];
            {
                let rows = split_rows(&mut d_qkv, &tape.packed.offsets, 3 * d);
                rows.into_par_iter().enumerate().for_each(|(r, d_qkv_r)| {
                    let range = tape.packed.row(r);
                    attend_backward(
                        c,
                        &t.qkv[range.start * 3 * d..range.end * 3 * d],
                        &t.probs[tape.prob_offsets[r]..tape.prob_offsets[r + 1]],
                        &d_ctx[range.start * d..range.end * d],
                        d_qkv_r,
                    );
                    self.rope.rotate(d_qkv_r, 0, true);
                });
            }
            gemm(
                d,
                n,
                3 * d,
                &t.h1,
                true,
                &d_qkv,
                false,
                &mut grads[b.wqkv.clone()],
                true,
            );
            let norm1 = Norm {
                x: &t.x,
                r: &t.r1,
                g: &p[b.norm1.clone()],
            };
            norm1.linear_backward(
                &d_qkv,
                &p[b.wqkv.clone()],
                &mut grads[b.norm1.clone()],
                &mut dx,
            );
        }
        for r in 0..tape.packed.rows() {
            let row = &tape.packed.tokens[tape.packed.row(r)];
            let start = tape.packed.offsets[r];
            for (pos, &tok) in row.iter().enumerate() {
                let g = &dx[(start + pos) * d..][..d];
                let mut add = |at: usize| {
                    for (o, v) in grads[at..at + d].iter_mut().zip(g) {
                        *o += v;
                    }
                };
                add(self.layout.tok_emb.start + tok as usize * d);
                if let Some(prev) = pos.checked_sub(1).map(|q| row[q]) {
                    add(self.layout.prev_emb.start + prev as usize * d);
                }
                add(self.layout.pos_emb.start + pos * d);
            }
        }
    }

    /// Writes the input of token `tok` at position `pos` after token `prev`.
    fn embed(&self, out: &mut [f32], tok: u32, prev: Option<u32>, pos: usize) {
        let (p, d) = (&self.params, self.config.d_model);
        let e = &p[self.layout.tok_emb.start + tok as usize * d..][..d];
        let q = &p[self.layout.pos_emb.start + pos * d..][..d];
        for ((o, a), b) in out.iter_mut().zip(e).zip(q) {
            *o = a + b;
        }
        if let Some(prev) = prev {
            let s = &p[self.layout.prev_emb.start + prev as usize * d..][..d];
            for (o, a) in out.iter_mut().zip(s) {
                *o += a;
            }
        }
    }

    /// An empty cache for [`Transformer::extend`].
    pub fn new_cache(&self) -> KvCache {
        let size = self.config.max_positions * self.config.d_model;
        KvCache {
            tokens: Vec::with_capacity(self.config.max_positions),
            keys_t: vec![vec![0.0; size]; self.config.layers],
            values: vec![vec![0.0; size]; self.config.layers],
        }
    }

    /// Appends `tokens` to the sequence in `cache` and writes the logits of the last one
    /// (`[vocab]`) to `logits`: the forward pass of generation.
    pub fn extend(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        logits: &mut [f32],
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let (d, n) = (c.d_model, tokens.len());
        if n == 0 {
            return Err(ModelError("no tokens to extend the sequence with".into()));
        }
        if cache.tokens.len() + n > c.max_positions {
            return Err(ModelError(format!(
                "the sequence would be {} tokens, longer than the model's {} positions",
                cache.tokens.len() + n,
                c.max_positions
            )));
        }
        if let Some(t) = tokens.iter().find(|&&t| t as usize >= c.vocab) {
            return Err(ModelError(format!(
                "token id {t} is outside the vocabulary of {}",
                c.vocab
            )));
        }
        let p = &self.params;
        let start = cache.tokens.len();
        let mut x = vec![0.0f32; n * d];
        let mut prev = cache.tokens.last().copied();
        for (i, &tok) in tokens.iter().enumerate() {
            self.embed(&mut x[i * d..][..d], tok, prev, start + i);
            prev = Some(tok);
        }
        for (l, b) in self.layout.blocks.iter().enumerate() {
            let (h1, _) = rms_norm(&x, &p[b.norm1.clone()], d);
            let mut qkv = vec![0.0; n * 3 * d];
            gemm(
                n,
                d,
                3 * d,
                &h1,
                false,
                &p[b.wqkv.clone()],
                false,
                &mut qkv,
                false,
            );
            self.rope.rotate(&mut qkv, start, false);
            let cap = c.max_positions;
            for (i, row) in qkv.chunks_exact(3 * d).enumerate() {
                for (e, &k) in row[d..2 * d].iter().enumerate() {
                    cache.keys_t[l][e * cap + start + i] = k;
                }
                cache.values[l][(start + i) * d..][..d].copy_from_slice(&row[2 * d..]);
            }
            let mut ctx = vec![0.0; n * d];
            let values = Strided {
                data: &cache.values[l],
                stride: d,
            };
            let keys_t = &cache.keys_t[l];
            attend(c, &qkv, keys_t, cap, &values, 0, start, &mut ctx, None);
            gemm(n, d, d, &ctx, false, &p[b.wo.clone()], false, &mut x, true);
            let (h2, _) = rms_norm(&x, &p[b.norm2.clone()], d);
            let mut u = vec![0.0; n * c.d_ff];
            gemm(
                n,
                d,
                c.d_ff,
                &h2,
                false,
                &p[b.w1.clone()],
                false,
                &mut u,
                false,
            );
            u.iter_mut().for_each(|v| *v = gelu(*v));
            gemm(
                n,
                c.d_ff,
                d,
                &u,
                false,
                &p[b.w2.clone()],
                false,
                &mut x,
                true,
            );
        }
        cache.tokens.extend_from_slice(tokens);
        let last = &x[(n - 1) * d..];
        let (h, _) = rms_norm(last, &p[self.layout.norm_f.clone()], d);
        if logits.len() != c.vocab {
            return Err(ModelError(format!(
                "the logits buffer has {} entries, the vocabulary {}",
                logits.len(),
                c.vocab
            )));
        }
        gemm(1, d, c.vocab, &h, false, self.head(), true, logits, false);
        Ok(())
    }
}

/// Rotary position embeddings: the query and key of each head are rotated, pair of
/// dimensions `(2j, 2j+1)` by `position · base^(−2j/head_dim)`.
#[derive(Clone, Debug)]
struct Rope {
    d_model: usize,
    head_dim: usize,
    /// `[max_positions, head_dim / 2]` cosines and sines.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    fn new(c: &TransformerConfig) -> Rope {
        let half = c.head_dim() / 2;
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for pos in 0..c.max_positions {
            for j in 0..half {
                let freq = ROPE_BASE.powf(-2.0 * j as f32 / c.head_dim() as f32);
                let (s, co) = (pos as f32 * freq).sin_cos();
                cos.push(co);
                sin.push(s);
            }
        }
        Rope {
            d_model: c.d_model,
            head_dim: c.head_dim(),
            cos,
            sin,
        }
    }

    /// Rotates the query and key parts of packed `[q|k|v]` rows (the first at position
    /// `first`); `inverse` applies the transpose (for gradients).
    fn rotate(&self, qkv: &mut [f32], first: usize, inverse: bool) {
        let (d, half) = (self.d_model, self.head_dim / 2);
        for (i, row) in qkv.chunks_exact_mut(3 * d).enumerate() {
            let cos = &self.cos[(first + i) * half..][..half];
            let sin = &self.sin[(first + i) * half..][..half];
            for head in row[..2 * d].chunks_exact_mut(self.head_dim) {
                for j in 0..half {
                    let (a, b) = (head[2 * j], head[2 * j + 1]);
                    let s = if inverse { -sin[j] } else { sin[j] };
                    head[2 * j] = a * cos[j] - b * s;
                    head[2 * j + 1] = a * s + b * cos[j];
                }
            }
        }
    }
}

/// A matrix whose rows are `stride` apart (e.g. the key part of a packed `[q|k|v]` row).
struct Strided<'a> {
    data: &'a [f32],
    stride: usize,
}

/// Causal attention of `n` queries (rows of `qkv`, `[n, 3·d_model]`; query `i` at position
/// `first + i`) over the keys and values of positions `0..first + n`: keys transposed in
/// `keys_t` (`[d_model, cap]`, so each score accumulates along positions and vectorizes),
/// values the rows of `values` from column `v_col`. Writes the concatenated heads to `ctx`
/// (`[n, d_model]`) and, when asked, the probabilities (`[heads, n, n]`; only for `first = 0`).
#[allow(clippy::too_many_arguments)]
fn attend(
    c: &TransformerConfig,
    qkv: &[f32],
    keys_t: &[f32],
    cap: usize,
    values: &Strided<'_>,
    v_col: usize,
    first: usize,
    ctx: &mut [f32],
    mut probs: Option<&mut [f32]>,
) {
    let (d, dh) = (c.d_model, c.head_dim());
    let n = ctx.len() / d;
    let scale = 1.0 / (dh as f32).sqrt();
    let mut s = vec![0.0f32; first + n];
    for h in 0..c.heads {
        for i in 0..n {
            let visible = first + i + 1;
            let s = &mut s[..visible];
            s.fill(0.0);
            for (t, &qt) in qkv[i * 3 * d + h * dh..][..dh].iter().enumerate() {
                let kt = &keys_t[(h * dh + t) * cap..][..visible];
                for (sj, &k) in s.iter_mut().zip(kt) {
                    *sj += qt * k;
                }
            }
            s.iter_mut().for_each(|sj| *sj *= scale);
            mix_values(s, values, v_col + h * dh, &mut ctx[i * d + h * dh..][..dh]);
            if let Some(pr) = probs.as_deref_mut() {
                let row = &mut pr[(h * n + i) * n..][..n];
                row[..visible].copy_from_slice(s);
                row[visible..].fill(0.0);
            }
        }
    }
}

/// The keys of packed `[q|k|v]` rows, transposed: `[d_model, rows]`.
fn transposed_keys(qkv: &[f32], d: usize) -> Vec<f32> {
    let n = qkv.len() / (3 * d);
    let mut keys_t = vec![0.0; d * n];
    for (j, row) in qkv.chunks_exact(3 * d).enumerate() {
        for (e, &k) in row[d..2 * d].iter().enumerate() {
            keys_t[e * n + j] = k;
        }
    }
    keys_t
}

/// Turns `scores` into softmax probabilities in place and writes `out = Σ_j p_j·v_j`, `v_j`
/// the `out.len()` values of row `j` of `values` from column `col`.
fn mix_values(scores: &mut [f32], values: &Strided<'_>, col: usize, out: &mut [f32]) {
    let max = scores.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sum = 0.0;
    for sj in scores.iter_mut() {
        *sj = (*sj - max).exp();
        sum += *sj;
    }
    let inv = 1.0 / sum;
    out.fill(0.0);
    for (j, sj) in scores.iter_mut().enumerate() {
        *sj *= inv;
        let vj = &values.data[j * values.stride + col..][..out.len()];
        for (o, v) in out.iter_mut().zip(vj) {
            *o += *sj * v;
        }
    }
}

/// The backward pass of [`attend`] for one sequence (`first = 0`): `d_qkv` (`[n, 3·d_model]`)
/// from `d_ctx`.
fn attend_backward(
    c: &TransformerConfig,
    qkv: &[f32],
    probs: &[f32],
    d_ctx: &[f32],
    d_qkv: &mut [f32],
) {
    let (d, dh) = (c.d_model, c.head_dim());
    let n = d_ctx.len() / d;
    let w = 3 * d;
    let scale = 1.0 / (dh as f32).sqrt();
    let (mut dp, mut dq) = (vec![0.0f32; n], vec![0.0f32; dh]);
    for h in 0..c.heads {
        let (qc, kc, vc) = (h * dh, d + h * dh, 2 * d + h * dh);
        for i in 0..n {
            let p = &probs[(h * n + i) * n..][..i + 1];
            let doi = &d_ctx[i * d + h * dh..][..dh];
            // dP_ij = dO_i · V_j; dV_j += P_ij dO_i.
            let mut dot_pdp = 0.0;
            for j in 0..=i {
                dp[j] = dot(doi, &qkv[j * w + vc..][..dh]);
                dot_pdp += p[j] * dp[j];
                let dv = &mut d_qkv[j * w + vc..][..dh];
                for (g, o) in dv.iter_mut().zip(doi) {
                    *g += p[j] * o;
                }
            }
            // dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik); dQ_i += dS_ij K_j s; dK_j += dS_ij Q_i s.
            let qi = &qkv[i * w + qc..][..dh];
            dq.fill(0.0);
            for j in 0..=i {
                let ds = p[j] * (dp[j] - dot_pdp) * scale;
                if ds == 0.0 {
                    continue;
                }
                for (g, k) in dq.iter_mut().zip(&qkv[j * w + kc..][..dh]) {
                    *g += ds * k;
                }
                for (g, q) in d_qkv[j * w + kc..][..dh].iter_mut().zip(qi) {
                    *g += ds * q;
                }
            }
            for (g, q) in d_qkv[i * w + qc..][..dh].iter_mut().zip(&dq) {
                *g += q;
            }
        }
    }
}

/// √(2/π), for the tanh form of GELU.
const GELU_C: f32 = 0.797_884_6;

/// GELU, tanh approximation (smooth, so finite differences check the backward pass).
#[inline]
fn gelu(u: f32) -> f32 {
    0.5 * u * (1.0 + tanh(GELU_C * (u + 0.044715 * u * u * u)))
}

/// The derivative of [`gelu`].
#[inline]
fn gelu_derivative(u: f32) -> f32 {
    let t = tanh(GELU_C * (u + 0.044715 * u * u * u));
    0.5 * (1.0 + t) + 0.5 * u * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * 0.044715 * u * u)
}

/// `tanh(z)` as `±(1 − 2/(e^{2|z|} + 1))`, within 1.5e-7 of the exact value (absolute; GELU
/// adds 1 to it). Branch-free and without calls, so loops over slices vectorize: libm's `tanhf`
/// was a third of the trainer's time.
#[inline]
fn tanh(z: f32) -> f32 {
    // tanh(9) rounds to 1 in f32; the clamp also keeps e^{2|z|} finite.
    let y = 2.0 * z.abs().min(9.0);
    let t = 1.0 - 2.0 / (exp_small(y) + 1.0);
    f32::from_bits(t.to_bits() | (z.to_bits() & 0x8000_0000))
}

/// `e^y` for `0 ≤ y ≤ 18`, within 2 ulp: `2^n · p(r)` with `r = y − n·ln 2` and Cephes'
/// degree-6 polynomial for `e^r` on `|r| ≤ ln 2 / 2`.
#[inline]
fn exp_small(y: f32) -> f32 {
    // Adding 1.5·2²³ rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let shifted = y * core::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (y - n * 0.693_359_4) + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let k = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    e_r * f32::from_bits(k.wrapping_add(127) << 23)
}

/// `a · b` over eight running sums (a single sum in order cannot vectorize).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f32; 8];
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// RMSNorm of each `d`-wide row: `(x·r·g, r)` with `r = 1/√(mean(x²) + ε)`.
fn rms_norm(x: &[f32], g: &[f32], d: usize) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![0.0; x.len()];
    let mut rs = Vec::with_capacity(x.len() / d);
    for (xr, yr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)) {
        let r = 1.0 / (dot(xr, xr) / d as f32 + NORM_EPS).sqrt();
        for ((o, v), gi) in yr.iter_mut().zip(xr).zip(g) {
            *o = v * r * gi;
        }
        rs.push(r);
    }
    (y, rs)
}

/// A normalized input as the forward pass kept it: `x`, its `r` and the gain `g`.
struct Norm<'a> {
    x: &'a [f32],
    r: &'a [f32],
    g: &'a [f32],
}

impl Norm<'_> {
    /// The backward pass of `rms_norm(x)·W` (`W` is `[d, width]`) into the residual stream:
    /// given `d_out = dL/d(rms_norm(x)·W)`, adds `dL/dx` to `dx` and `dL/dg` to `dg`.
    fn linear_backward(&self, d_out: &[f32], w: &[f32], dg: &mut [f32], dx: &mut [f32]) {
        let d = self.g.len();
        let (n, width) = (self.r.len(), d_out.len() / self.r.len().max(1));
        let mut d_h = vec![0.0; n * d];
        gemm(n, width, d, d_out, false, w, true, &mut d_h, false);
        let d_x = rms_norm_backward(self.x, self.r, self.g, &d_h, dg, d);
        for (a, b) in dx.iter_mut().zip(&d_x) {
            *a += b;
        }
    }
}

/// The backward pass of [`rms_norm`]: returns `dL/dx`, adds `dL/dg` to `dg`.
fn rms_norm_backward(
    x: &[f32],
    r: &[f32],
    g: &[f32],
    dy: &[f32],
    dg: &mut [f32],
    d: usize,
) -> Vec<f32> {
    let mut dx = vec![0.0; x.len()];
    for (((xr, &ri), dyr), dxr) in x
        .chunks_exact(d)
        .zip(r)
        .zip(dy.chunks_exact(d))
        .zip(dx.chunks_exact_mut(d))
    {
        let mut zx = 0.0;
        for k in 0..d {
            dg[k] += dyr[k] * xr[k] * ri;
            zx += g[k] * dyr[k] * xr[k];
        }
        let c = ri * ri * ri * zx / d as f32;
        for k in 0..d {
            dxr[k] = ri * g[k] * dyr[k] - c * xr[k];
        }
    }
    dx
}

/// `c = op(a)·op(b)` (`+ c` when `accumulate`), `op(a)` `[m, k]`, `op(b)` `[k, n]`; a matrix
/// flagged transposed is stored as its transpose (row-major).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm shapes"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    if m == 1 && k <= ROW_PRODUCT_MAX_K && row_product(k, n, a, b, b_t, c, accumulate) {
        return;
    }
    let (rsa, csa) = if a_t { (1, m) } else { (k, 1) };
    let (rsb, csb) = if b_t { (1, k) } else { (n, 1) };
    let beta = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: the asserts above keep every index matrixmultiply touches inside the slices.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// The longest inner dimension [`row_product`] takes: `matrixmultiply`'s `kc` block for f32,
/// within which each of its outputs is one unbroken chain of fused multiply-adds.
const ROW_PRODUCT_MAX_K: usize = 256;

/// `c[..n] = a[..k]·op(b)` (`+ c` when `accumulate`) for a single row, bit for bit what
/// `matrixmultiply`'s FMA kernel computes for `k ≤ 256`: per output, fused multiply-adds over
/// `k` in order from 0, the sum then added to `c`. Generation multiplies one row at a time,
/// where packing the operands costs `matrixmultiply` more than the product. Returns `false`
/// (nothing done) where the CPU has no FMA, so the caller's `matrixmultiply` keeps the result
/// identical on every machine.
fn row_product(
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    b_t: bool,
    c: &mut [f32],
    accumulate: bool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has the features the function is compiled for.
        unsafe { row_product_fma(k, n, &a[..k], b, b_t, &mut c[..n], accumulate) };
        return true;
    }
    let _ = (k, n, a, b, b_t, c, accumulate);
    false
}

/// [`row_product`] on FMA instructions (`mul_add` compiles to `vfmadd`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_product_fma(
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    b_t: bool,
    c: &mut [f32],
    accumulate: bool,
) {
    const BLOCK: usize = 16;
    let mut acc = [0.0f32; BLOCK];
    for j0 in (0..n).step_by(BLOCK) {
        let w = BLOCK.min(n - j0);
        let acc = &mut acc[..w];
        acc.fill(0.0);
        if b_t {
            // `b` is `[n, k]`: output j is row j of `b`.
            let rows = &b[j0 * k..(j0 + w) * k];
            for (p, &ap) in a.iter().enumerate() {
                for (x, row) in acc.iter_mut().zip(rows.chunks_exact(k)) {
                    *x = ap.mul_add(row[p], *x);
                }
            }
        } else {
            for (p, &ap) in a.iter().enumerate() {
                let bp = &b[p * n + j0..][..w];
                for (x, &bv) in acc.iter_mut().zip(bp) {
                    *x = ap.mul_add(bv, *x);
                }
            }
        }
        // The kernel's epilogue: `1·ab + 0` into its buffer, then `β·c + ab`.
        for (o, &x) in c[j0..j0 + w].iter_mut().zip(acc.iter()) {
            let ab = 1.0f32.mul_add(x, 0.0);
            *o = if accumulate { *o + ab } else { ab };
        }
    }
}

/// Splits `buf` into the mutable row ranges `offsets[r]..offsets[r + 1]` (scaled by `width`).
fn split_rows<'a>(buf: &'a mut [f32], offsets: &[usize], width: usize) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(offsets.len().saturating_sub(1));
    let mut rest = buf;
    for w in offsets.windows(2) {
        let (head, tail) = rest.split_at_mut((w[1] - w[0]) * width);
        out.push(head);
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn tiny() -> Transformer {
        let config = TransformerConfig {
            vocab: 7,
            d_model: 8,
            layers: 2,
            heads: 2,
            d_ff: 12,
            max_positions: 10,
        };
        Transformer::new(config, &mut ChaCha8Rng::seed_from_u64(5)).unwrap()
    }

    fn batch() -> Packed {
        Packed::new([&[1u32, 4, 2, 6, 0][..], &[3, 3, 5][..]])
    }

    /// `L = Σ hidden ⊙ R` for a fixed `R`, in f64.
    fn loss(t: &Transformer, packed: &Packed, r: &[f32]) -> f64 {
        let tape = t.forward(packed).unwrap();
        tape.hidden
            .iter()
            .zip(r)
            .map(|(&h, &w)| h as f64 * w as f64)
            .sum()
    }

    #[test]
    fn row_products_are_bit_identical_to_matrixmultiply() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for k in [1, 3, 8, 64, 128, 200, 256] {
            for n in [1, 5, 16, 17, 110, 192] {
                for b_t in [false, true] {
                    for accumulate in [false, true] {
                        let mut draw = |len: usize| -> Vec<f32> {
                            (0..len).map(|_| rng.random_range(-2.0..2.0)).collect()
                        };
                        let (a, b, c0) = (draw(k), draw(k * n), draw(n));
                        let mut ours = c0.clone();
                        if !row_product(k, n, &a, &b, b_t, &mut ours, accumulate) {
                            eprintln!("row_products: skipped: this CPU has no FMA");
                            return;
                        }
                        let mut theirs = c0.clone();
                        let (rsb, csb) = if b_t { (1, k) } else { (n, 1) };
                        // SAFETY: the slices hold the shapes passed.
                        unsafe {
                            matrixmultiply::sgemm(
                                1,
                                k,
                                n,
                                1.0,
                                a.as_ptr(),
                                k as isize,
                                1,
                                b.as_ptr(),
                                rsb as isize,
                                csb as isize,
                                if accumulate { 1.0 } else { 0.0 },
                                theirs.as_mut_ptr(),
                                n as isize,
                                1,
                            );
                        }
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&ours), bits(&theirs), "k {k} n {n} b_t {b_t}");
                    }
                }
            }
        }
    }

    #[test]
    fn tanh_is_within_its_bound_everywhere() {
        let mut worst = 0.0f64;
        // Every 2^-12 over [-12, 12], then the far tails.
        let grid = (-49_152..=49_152).map(|i| i as f32 / 4096.0);
        for z in grid.chain([-1e30, -100.0, 1e-30, 100.0, 1e30]) {
            let err = (tanh(z) as f64 - (z as f64).tanh()).abs();
            worst = worst.max(err);
            assert_eq!(tanh(-z), -tanh(z), "odd at {z}");
        }
        assert!(worst < 1.5e-7, "largest error {worst}");
        assert_eq!(tanh(0.0), 0.0);
        assert!(gelu(f32::NAN).is_nan() && gelu_derivative(f32::NAN).is_nan());
        // e^y itself, on the range tanh uses.
        for i in 0..=18_000 {
            let y = i as f32 / 1000.0;
            let rel = (exp_small(y) as f64 / (y as f64).exp() - 1.0).abs();
            assert!(rel < 2.5e-7, "e^{y}: relative error {rel}");
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut t = tiny();
        let packed = batch();
        let n = packed.tokens.len() * t.config.d_model;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let r: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let tape = t.forward(&packed).unwrap();
        let mut grads = vec![0.0; t.layout.len];
        t.backward(&tape, &r, &mut grads);
        let eps = 3e-2f32;
        let (mut checked, mut worst) = (0, 0.0f64);
        for (i, &g) in grads[..t.layout.head.start].iter().enumerate() {
            // Central differences at h and h/2, Richardson-extrapolated: error O(h⁴).
            let mut central = |h: f32| {
                let p0 = t.params[i];
                t.params[i] = p0 + h;
                let up = loss(&t, &packed, &r);
                t.params[i] = p0 - h;
                let down = loss(&t, &packed, &r);
                t.params[i] = p0;
                (up - down) / (2.0 * h as f64)
            };
            let fd = (4.0 * central(eps / 2.0) - central(eps)) / 3.0;
            let err = (fd - g as f64).abs() / (1e-2 + fd.abs().max(g.abs() as f64));
            worst = worst.max(err);
            checked += 1;
            assert!(
                err < 1e-2,
                "parameter {i}: finite difference {fd}, backward {g}"
            );
        }
        assert!(
            checked > 1000,
            "checked {checked} parameters (worst {worst})"
        );
        // Embeddings of unused tokens and positions get no gradient.
        assert!(grads[t.layout.tok_emb.clone()][..8]
            .iter()
            .any(|&g| g != 0.0));
        let unused_pos = &grads[t.layout.pos_emb.clone()][5 * 8..];
        assert!(unused_pos.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn cached_generation_matches_the_training_forward() {
        let t = tiny();
        let row = [1u32, 4, 2, 6, 0, 3];
        let tape = t.forward(&Packed::new([&row[..]])).unwrap();
        let d = t.config.d_model;
        let mut cache = t.new_cache();
        let mut logits = vec![0.0; t.config.vocab];
        // Prefill of two tokens, then one at a time.
        t.extend(&mut cache, &row[..2], &mut logits).unwrap();
        for (i, &tok) in row.iter().enumerate().skip(1) {
            if i > 1 {
                t.extend(&mut cache, &[tok], &mut logits).unwrap();
            }
            let mut want = vec![0.0; t.config.vocab];
            gemm(
                1,
                d,
                t.config.vocab,
                &tape.hidden[i * d..][..d],
                false,
                t.head(),
                true,
                &mut want,
                false,
            );
            for (a, b) in logits.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "position {i}: {a} vs {b}");
            }
        }
        assert_eq!(cache.tokens(), row);
        let mut full = t.new_cache();
        assert!(t.extend(&mut full, &[0; 11], &mut logits).is_err());
        assert!(t.extend(&mut full, &[7], &mut logits).is_err());
        assert!(t.forward(&Packed::new([&[0u32; 11][..]])).is_err());
    }
}
