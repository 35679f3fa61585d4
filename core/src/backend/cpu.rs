//! [`CpuBackend`]: the reference implementation of [`Backend`].
//!
//! Buffers are `Vec`s. Every row is processed by the kernels in [`super::kernel`]; per-row
//! results are reduced in row order on one thread, so the `parallel` path (rows spread over a
//! rayon pool) gives bit-identical results to the serial one.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
#[cfg(all(feature = "std", target_arch = "x86_64"))]
use half::bf16;

#[cfg(all(feature = "std", target_arch = "x86_64"))]
use super::bf16_dot;
use super::element::as_f32;
use super::gemm::{sgemm, Strides};
use super::host::{
    bad_logits_row, check_linear_loss_args, check_logprob_inputs, check_policy_loss_args,
    check_token_values, index_out_of_range, non_finite, reduce_rows, row_chunks,
    target_out_of_range, RowLoss,
};
use super::kernel::{Isa, RowExps, RowStats};
use super::{
    Backend, Element, GroupAdvantageConfig, LinearLossOutput, LinearShape, LogitsShape, LossReport,
    Scalar, TokenInputs, TokenLogProbs,
};
use crate::error::Result;
use crate::estimator::advantage::group_advantages;
use crate::estimator::surrogate::{token_terms, SurrogateParams};
use crate::estimator::{AdvantageConfig, LossConfig};

/// Vocabulary rows of the weight per matrix product of the fused linear loss (a non-f32 weight
/// is widened one such tile at a time).
const VOCAB_TILE: usize = 4096;

/// Rows handed to one task on the parallel path.
#[cfg(feature = "parallel")]
const ROWS_PER_TASK: usize = 8;

/// The CPU reference backend.
///
/// Row kernels run with the widest vector instructions the CPU has ([`Isa::detect`]); every
/// instruction set gives the same bits.
#[derive(Debug, Clone, Copy)]
pub struct CpuBackend {
    parallel: bool,
    isa: Isa,
    bf16_products: bool,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// A single-threaded backend.
    pub fn new() -> Self {
        CpuBackend {
            parallel: false,
            isa: Isa::detect(),
            bf16_products: bf16_products_available(),
        }
    }

    /// A backend that spreads rows over rayon's global pool; bit-identical to [`CpuBackend::new`].
    #[cfg(feature = "parallel")]
    pub fn parallel() -> Self {
        CpuBackend {
            parallel: true,
            isa: Isa::detect(),
            bf16_products: bf16_products_available(),
        }
    }

    /// The same backend with its row kernels restricted to `isa` (for tests and comparisons).
    pub fn with_isa(self, isa: Isa) -> Self {
        CpuBackend { isa, ..self }
    }

    /// The same backend with the fused linear loss's bf16 matrix products on AVX512-BF16 turned
    /// on (the default where the CPU has it; no effect elsewhere) or off.
    ///
    /// On, bf16 operands are multiplied in bf16 pairs (`vdpbf16ps`, f32 sums), and the logits'
    /// gradient is rounded to bf16 for the two backward products, as PyTorch's bf16 autograd
    /// does: about twice as fast, within the bf16 tolerance of the widened path. Off, every
    /// dtype is widened and multiplied in f32: exactly the f32 loss of the widened operands.
    pub fn with_bf16_products(self, on: bool) -> Self {
        CpuBackend {
            bf16_products: on && bf16_products_available(),
            ..self
        }
    }

    /// Whether the fused linear loss multiplies bf16 operands in bf16 (see
    /// [`CpuBackend::with_bf16_products`]).
    pub fn has_bf16_products(&self) -> bool {
        self.bf16_products
    }

    /// Whether rows are processed on several threads.
    pub fn is_parallel(&self) -> bool {
        self.parallel
    }

    /// Applies `f(row_index, row, scratch)` to every row of `data` (rows of `width`), serially
    /// or on the rayon pool, returning the per-row results in row order; `scratch` is reused
    /// from row to row on each thread.
    fn map_rows<T: Send, R: Send>(
        &self,
        data: &mut [T],
        width: usize,
        f: impl Fn(usize, &mut [T], &mut RowExps) -> R + Sync + Send,
    ) -> Vec<R> {
        if width == 0 {
            return Vec::new();
        }
        #[cfg(feature = "parallel")]
        if self.parallel {
            use rayon::prelude::*;
            return data
                .par_chunks_mut(width * ROWS_PER_TASK)
                .enumerate()
                .map_init(RowExps::new, |scratch, (c, rows)| {
                    rows.chunks_mut(width)
                        .enumerate()
                        .map(|(i, r)| f(c * ROWS_PER_TASK + i, r, scratch))
                        .collect::<Vec<_>>()
                })
                .flatten_iter()
                .collect();
        }
        let mut scratch = RowExps::new();
        data.chunks_mut(width)
            .enumerate()
            .map(|(i, r)| f(i, r, &mut scratch))
            .collect()
    }
}

/// The first row whose target is outside the vocabulary, with that target.
fn first_bad_target(targets: &[u32], vocab: usize) -> Option<(usize, u32)> {
    targets
        .iter()
        .position(|&t| t as usize >= vocab)
        .map(|i| (i, targets[i]))
}

fn check_targets(targets: &[u32], vocab: usize) -> Result<()> {
    match first_bad_target(targets, vocab) {
        Some((row, target)) => Err(target_out_of_range(row, target, vocab)),
        None => Ok(()),
    }
}

fn first_nonfinite(values: &[f32]) -> Option<usize> {
    values.iter().position(|v| !v.is_finite())
}

/// Host views of the per-token inputs.
struct HostTokens<'a> {
    targets: &'a [u32],
    old: &'a [f32],
    reference: Option<&'a [f32]>,
    advantages: &'a [f32],
    weights: &'a [f32],
}

impl<'a> HostTokens<'a> {
    fn new(inputs: &'a TokenInputs<'a, CpuBackend>, vocab: usize) -> Result<Self> {
        check_token_values(
            vocab,
            inputs.ref_logprobs.is_some(),
            || Ok(first_bad_target(inputs.targets, vocab)),
            |values| Ok(values.of(inputs).and_then(|v| first_nonfinite(v))),
        )?;
        Ok(HostTokens {
            targets: inputs.targets,
            old: inputs.old_logprobs,
            reference: inputs.ref_logprobs.map(|r| r.as_slice()),
            advantages: inputs.advantages,
            weights: inputs.weights,
        })
    }

    /// Loss terms and the in-place gradient of one row.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn row<T: Element>(
        &self,
        isa: Isa,
        i: usize,
        row: &mut [T],
        scratch: &mut RowExps,
        inv_temp: f32,
        params: &SurrogateParams<f32>,
        entropy_coef: f32,
    ) -> RowLoss {
        let weight = self.weights[i];
        let target = self.targets[i] as usize;
        // An untrained row's gradient is 0: its exponentials need not be kept.
        let keep = (weight != 0.0).then_some(&mut *scratch);
        let stats = isa.softmax_stats(row, target, inv_temp, keep);
        let reference = self.reference.map_or(0.0, |r| r[i]);
        let terms = token_terms(
            stats.logp,
            self.old[i],
            reference,
            self.advantages[i],
            params,
        );
        if weight == 0.0 || !stats.is_finite() {
            row.fill(T::from_f32(0.0));
        } else {
            let g = terms.d_logp(params.kl_coef);
            isa.gradient(
                row,
                scratch,
                target,
                inv_temp,
                &stats,
                g,
                entropy_coef,
                weight,
            );
        }
        RowLoss {
            weight,
            usable: stats.is_finite(),
            pg: terms.pg,
            kl: terms.kl,
            entropy: stats.entropy,
            approx_kl: terms.approx_kl,
            clipped: terms.clipped,
            clipped_lower: terms.clipped_lower,
        }
    }
}

impl Backend for CpuBackend {
    type Buffer<T: Scalar> = Vec<T>;

    fn name(&self) -> String {
        if self.parallel {
            "cpu (parallel)".into()
        } else {
            "cpu".into()
        }
    }

    fn upload<T: Scalar>(&self, data: &[T]) -> Result<Vec<T>> {
        Ok(data.to_vec())
    }

    fn download<T: Scalar>(&self, buffer: &Vec<T>) -> Result<Vec<T>> {
        Ok(buffer.clone())
    }

    fn len<T: Scalar>(&self, buffer: &Vec<T>) -> usize {
        buffer.len()
    }

    fn token_logprobs<T: Element>(
        &self,
        logits: &Vec<T>,
        targets: &Vec<u32>,
        shape: LogitsShape,
        temperature: f32,
    ) -> Result<TokenLogProbs<Self>> {
        check_logprob_inputs(logits.len(), targets.len(), shape, temperature)?;
        check_targets(targets, shape.vocab)?;
        let inv_temp = 1.0 / temperature;
        // Read-only rows: map over a shared slice (same order serially and in parallel).
        let stats: Vec<RowStats> = {
            #[cfg(feature = "parallel")]
            let s = if self.parallel {
                use rayon::prelude::*;
                logits
                    .par_chunks(shape.vocab.max(1))
                    .zip(targets.par_iter())
                    .map(|(row, &t)| self.isa.softmax_stats(row, t as usize, inv_temp, None))
                    .collect()
            } else {
                serial_stats(self.isa, logits, targets, shape, inv_temp)
            };
            #[cfg(not(feature = "parallel"))]
            let s = serial_stats(self.isa, logits, targets, shape, inv_temp);
            s
        };
        if let Some(i) = stats.iter().position(|s| !s.is_finite()) {
            return Err(bad_logits_row(i));
        }
        Ok(TokenLogProbs {
            logprobs: stats.iter().map(|s| s.logp).collect(),
            entropy: stats.iter().map(|s| s.entropy).collect(),
        })
    }

    fn policy_loss<T: Element>(
        &self,
        logits: &mut Vec<T>,
        shape: LogitsShape,
        inputs: &TokenInputs<'_, Self>,
        config: &LossConfig,
    ) -> Result<LossReport> {
        check_policy_loss_args(self, logits.len(), shape, inputs, config)?;
        let host = HostTokens::new(inputs, shape.vocab)?;
        let params = SurrogateParams::<f32>::new(config);
        let inv_temp = (1.0 / config.temperature) as f32;
        let entropy_coef = config.entropy_coef as f32;
        let rows = self.map_rows(logits, shape.vocab, |i, row, scratch| {
            host.row(self.isa, i, row, scratch, inv_temp, &params, entropy_coef)
        });
        reduce_rows(rows, config)
    }

    fn linear_policy_loss<T: Element>(
        &self,
        hidden: &Vec<T>,
        weight: &Vec<T>,
        shape: LinearShape,
        inputs: &TokenInputs<'_, Self>,
        config: &LossConfig,
    ) -> Result<LinearLossOutput<Self>> {
        check_linear_loss_args(self, hidden.len(), weight.len(), shape, inputs, config)?;
        let host = HostTokens::new(inputs, shape.vocab)?;
        let params = SurrogateParams::<f32>::new(config);
        let inv_temp = (1.0 / config.temperature) as f32;
        let entropy_coef = config.entropy_coef as f32;

        if let Some(i) = weight.iter().position(|x| !x.to_f32().is_finite()) {
            return Err(non_finite("weight", i));
        }
        let loss = LinearLoss {
            backend: self,
            host: &host,
            params: &params,
            inv_temp,
            entropy_coef,
            config,
        };
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        if self.bf16_products && T::DTYPE == super::DType::BF16 {
            let (hidden, weight) = (bytemuck::cast_slice(hidden), bytemuck::cast_slice(weight));
            return loss.run(
                shape,
                Bf16Products::new(self.parallel, hidden, weight, shape),
            );
        }
        loss.run(
            shape,
            WidenedProducts::new(self.parallel, hidden, weight, shape),
        )
    }

    fn group_advantages(
        &self,
        rewards: &Vec<f32>,
        groups: &Vec<u32>,
        masked: &Vec<u32>,
        config: &GroupAdvantageConfig,
    ) -> Result<Vec<f32>> {
        let masked: Vec<bool> = masked.iter().map(|&m| m != 0).collect();
        let cfg = AdvantageConfig {
            norm_by_std: config.norm_by_std,
            eps: f64::from(config.eps),
            masked_in_group_stats: config.masked_in_group_stats,
            ..Default::default()
        };
        group_advantages(rewards, groups, &masked, &cfg)
    }

    fn scatter_to_tokens(&self, values: &Vec<f32>, index: &Vec<u32>) -> Result<Vec<f32>> {
        index
            .iter()
            .enumerate()
            .map(|(t, &i)| {
                values
                    .get(i as usize)
                    .copied()
                    .ok_or_else(|| index_out_of_range(t, i, values.len()))
            })
            .collect()
    }
}

fn serial_stats<T: Element>(
    isa: Isa,
    logits: &[T],
    targets: &[u32],
    shape: LogitsShape,
    inv_temp: f32,
) -> Vec<RowStats> {
    logits
        .chunks(shape.vocab.max(1))
        .zip(targets)
        .map(|(row, &t)| isa.softmax_stats(row, t as usize, inv_temp, None))
        .collect()
}

/// The fused linear loss's row work, shared by its matrix-product strategies.
struct LinearLoss<'a> {
    backend: &'a CpuBackend,
    host: &'a HostTokens<'a>,
    params: &'a SurrogateParams<f32>,
    inv_temp: f32,
    entropy_coef: f32,
    config: &'a LossConfig,
}

impl LinearLoss<'_> {
    /// The loss over chunks of `shape.chunk` rows: logits, row losses and their gradient in
    /// place, then the two backward products.
    fn run(
        &self,
        shape: LinearShape,
        mut products: impl ChunkProducts,
    ) -> Result<LinearLossOutput<CpuBackend>> {
        let LinearShape {
            tokens: n,
            hidden: d,
            vocab: v,
            chunk,
        } = shape;
        let mut grad_hidden = vec![0.0f32; n * d];
        let mut grad_weight = vec![0.0f32; v * d];
        let mut logits = vec![0.0f32; chunk.min(n.max(1)) * v];
        let mut rows = Vec::with_capacity(n);
        for (start, c) in row_chunks(n, chunk) {
            products.load_chunk(start, c)?;
            let z = &mut logits[..c * v];
            products.logits(z);
            rows.extend(self.backend.map_rows(z, v, |i, row, scratch| {
                let (p, e) = (self.params, self.entropy_coef);
                self.host.row(
                    self.backend.isa,
                    start + i,
                    row,
                    scratch,
                    self.inv_temp,
                    p,
                    e,
                )
            }));
            let gh = &mut grad_hidden[start * d..(start + c) * d];
            products.backward(z, gh, &mut grad_weight);
        }
        let report = reduce_rows(rows, self.config)?;
        Ok(LinearLossOutput {
            report,
            grad_hidden,
            grad_weight,
        })
    }
}

/// The three matrix products of the fused linear loss, one chunk of hidden rows at a time.
trait ChunkProducts {
    /// Takes rows `start .. start + rows` of the hidden states as the current chunk; an error
    /// names the first non-finite value.
    fn load_chunk(&mut self, start: usize, rows: usize) -> Result<()>;
    /// `z = h · Wᵀ` (`[rows, vocab]`, row-major) for the current chunk.
    fn logits(&mut self, z: &mut [f32]);
    /// `dH = G · W` into `grad_hidden` (the chunk's rows) and `dW += Gᵀ · h`, with `G` the
    /// logits' gradient.
    fn backward(&mut self, g: &[f32], grad_hidden: &mut [f32], grad_weight: &mut [f32]);
}

/// Products in f32 through [`sgemm`]: f32 operands in place, others widened (the hidden states
/// a chunk at a time and the weight a vocabulary tile at a time, so no f32 copy of the whole
/// weight exists).
struct WidenedProducts<'a, T> {
    parallel: bool,
    hidden: &'a [T],
    weight: &'a [T],
    shape: LinearShape,
    start: usize,
    rows: usize,
    h_chunk: Vec<f32>,
    w_tile: Vec<f32>,
}

impl<'a, T: Element> WidenedProducts<'a, T> {
    fn new(parallel: bool, hidden: &'a [T], weight: &'a [T], shape: LinearShape) -> Self {
        WidenedProducts {
            parallel,
            hidden,
            weight,
            shape,
            start: 0,
            rows: 0,
            h_chunk: Vec::new(),
            w_tile: Vec::new(),
        }
    }
}

impl<T: Element> ChunkProducts for WidenedProducts<'_, T> {
    fn load_chunk(&mut self, start: usize, rows: usize) -> Result<()> {
        let d = self.shape.hidden;
        let values = &self.hidden[start * d..(start + rows) * d];
        (self.start, self.rows) = (start, rows);
        self.h_chunk.clear();
        if as_f32(values).is_none() {
            self.h_chunk.resize(values.len(), 0.0);
            T::widen_slice(values, &mut self.h_chunk);
        }
        let h = as_f32(values).unwrap_or(&self.h_chunk);
        match first_nonfinite(h) {
            Some(i) => Err(non_finite("hidden", start * d + i)),
            None => Ok(()),
        }
    }

    fn logits(&mut self, z: &mut [f32]) {
        let (c, d, v) = (self.rows, self.shape.hidden, self.shape.vocab);
        let values = &self.hidden[self.start * d..(self.start + c) * d];
        let h = as_f32(values).unwrap_or(&self.h_chunk);
        for (v0, t) in row_chunks(v, VOCAB_TILE) {
            let w = chunk_f32(&self.weight[v0 * d..(v0 + t) * d], &mut self.w_tile);
            let (rm_d, wt) = (Strides::row_major(d), Strides::transposed(d));
            sgemm(
                self.parallel,
                (c, d, t),
                h,
                rm_d,
                w,
                wt,
                false,
                &mut z[v0..],
                Strides::row_major(v),
            );
        }
    }

    fn backward(&mut self, g: &[f32], grad_hidden: &mut [f32], grad_weight: &mut [f32]) {
        let (c, d, v) = (self.rows, self.shape.hidden, self.shape.vocab);
        let values = &self.hidden[self.start * d..(self.start + c) * d];
        let h = as_f32(values).unwrap_or(&self.h_chunk);
        let (rm_d, rm_v) = (Strides::row_major(d), Strides::row_major(v));
        // Per tile: dH += G · W   ([c, t] × [t, d]);  dW += Gᵀ · h   ([t, c] × [c, d])
        for (v0, t) in row_chunks(v, VOCAB_TILE) {
            let w = chunk_f32(&self.weight[v0 * d..(v0 + t) * d], &mut self.w_tile);
            let g = &g[v0..];
            sgemm(
                self.parallel,
                (c, t, d),
                g,
                rm_v,
                w,
                rm_d,
                v0 > 0,
                grad_hidden,
                rm_d,
            );
            let gw = &mut grad_weight[v0 * d..(v0 + t) * d];
            let gt = Strides::transposed(v);
            sgemm(self.parallel, (t, c, d), g, gt, h, rm_d, true, gw, rm_d);
        }
    }
}

/// Products on AVX512-BF16 for bf16 operands ([`CpuBackend::with_bf16_products`]): pairs of
/// bf16 values multiplied exactly and summed in f32 (`bf16_dot`), the logits' gradient rounded
/// to bf16 a vocabulary tile at a time for the backward products. The weight is packed one
/// tile at a time, so no copy of the whole weight exists.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
struct Bf16Products<'a> {
    parallel: bool,
    hidden: &'a [bf16],
    weight: &'a [bf16],
    shape: LinearShape,
    start: usize,
    rows: usize,
    /// The chunk's rows as pairs along the hidden dimension (when `hidden` is odd).
    h_pairs: Vec<u32>,
    /// The chunk's rows paired across rows, as `dW += Gᵀ·h`'s right operand.
    h_panels: bf16_dot::Panels,
    /// Scratch: a tile of the weight as pairs (when `hidden` is odd), the gradient tile in
    /// bf16 pairs along rows and paired across rows, a packed right operand.
    w_pairs: Vec<u32>,
    g_pairs: Vec<u32>,
    g_rows: Vec<u32>,
    panels: bf16_dot::Panels,
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
impl<'a> Bf16Products<'a> {
    fn new(parallel: bool, hidden: &'a [bf16], weight: &'a [bf16], shape: LinearShape) -> Self {
        Bf16Products {
            parallel,
            hidden,
            weight,
            shape,
            start: 0,
            rows: 0,
            h_pairs: Vec::new(),
            h_panels: Default::default(),
            w_pairs: Vec::new(),
            g_pairs: Vec::new(),
            g_rows: Vec::new(),
            panels: Default::default(),
        }
    }

    fn chunk(&self) -> &'a [bf16] {
        let d = self.shape.hidden;
        &self.hidden[self.start * d..(self.start + self.rows) * d]
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
impl ChunkProducts for Bf16Products<'_> {
    fn load_chunk(&mut self, start: usize, rows: usize) -> Result<()> {
        (self.start, self.rows) = (start, rows);
        let (h, d) = (self.chunk(), self.shape.hidden);
        if let Some(i) = h.iter().position(|x| !x.is_finite()) {
            return Err(non_finite("hidden", start * d + i));
        }
        let bits: &[u16] = bytemuck::cast_slice(h);
        self.h_panels
            .pack_row_pairs(self.parallel, bits, rows, d, d);
        Ok(())
    }

    fn logits(&mut self, z: &mut [f32]) {
        let (c, d, v) = (self.rows, self.shape.hidden, self.shape.vocab);
        let dp = d.div_ceil(2);
        let h = bf16_dot::row_pairs(self.chunk(), d, &mut self.h_pairs);
        let a = bf16_dot::PairMatrix {
            data: h,
            rows: c,
            pairs: dp,
            row: dp,
            col: 1,
        };
        for (v0, t) in row_chunks(v, VOCAB_TILE) {
            let w = bf16_dot::row_pairs(&self.weight[v0 * d..(v0 + t) * d], d, &mut self.w_pairs);
            self.panels.pack_transposed(self.parallel, w, dp, t);
            bf16_dot::product(self.parallel, a, &self.panels, false, &mut z[v0..], v);
        }
    }

    fn backward(&mut self, g: &[f32], grad_hidden: &mut [f32], grad_weight: &mut [f32]) {
        let (c, d, v) = (self.rows, self.shape.hidden, self.shape.vocab);
        for (v0, t) in row_chunks(v, VOCAB_TILE) {
            // The gradient tile in bf16, each row padded to whole pairs.
            let tp = t.div_ceil(2);
            bf16_dot::round_rows(self.parallel, &g[v0..], (c, t, v), &mut self.g_pairs);
            // dH += G · W: pairs along the vocabulary, the weight's rows paired.
            let w: &[u16] = bytemuck::cast_slice(&self.weight[v0 * d..(v0 + t) * d]);
            self.panels.pack_row_pairs(self.parallel, w, t, d, d);
            let a = bf16_dot::PairMatrix {
                data: &self.g_pairs,
                rows: c,
                pairs: tp,
                row: tp,
                col: 1,
            };
            bf16_dot::product(self.parallel, a, &self.panels, v0 > 0, grad_hidden, d);
            // dW += Gᵀ · h: pairs along the chunk's rows.
            let bits: &[u16] = bytemuck::cast_slice(&self.g_pairs);
            bf16_dot::interleave_rows(self.parallel, bits, (c, t, 2 * tp), &mut self.g_rows);
            let a = bf16_dot::PairMatrix {
                data: &self.g_rows,
                rows: t,
                pairs: c.div_ceil(2),
                row: 1,
                col: t,
            };
            let gw = &mut grad_weight[v0 * d..(v0 + t) * d];
            bf16_dot::product(self.parallel, a, &self.h_panels, true, gw, d);
        }
    }
}

/// `values` as f32: themselves when they are f32, else widened into `scratch`.
fn chunk_f32<'a, T: Element>(values: &'a [T], scratch: &'a mut Vec<f32>) -> &'a [f32] {
    match as_f32(values) {
        Some(v) => v,
        None => {
            scratch.resize(values.len(), 0.0);
            T::widen_slice(values, scratch);
            scratch
        }
    }
}

/// Whether this build and CPU run [`CpuBackend::with_bf16_products`]'s products.
fn bf16_products_available() -> bool {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    return bf16_dot::available();
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    false
}
