//! [`CpuBackend`]: the reference implementation of [`Backend`].
//!
//! Buffers are `Vec`s. Every row is processed by the kernels in [`super::kernel`]; per-row
//! results are reduced in row order on one thread, so the `parallel` path (rows spread over a
//! rayon pool) gives bit-identical results to the serial one.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

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
        }
    }

    /// A backend that spreads rows over rayon's global pool; bit-identical to [`CpuBackend::new`].
    #[cfg(feature = "parallel")]
    pub fn parallel() -> Self {
        CpuBackend {
            parallel: true,
            isa: Isa::detect(),
        }
    }

    /// The same backend with its row kernels restricted to `isa` (for tests and comparisons).
    pub fn with_isa(self, isa: Isa) -> Self {
        CpuBackend { isa, ..self }
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
        let LinearShape {
            tokens: n,
            hidden: d,
            vocab: v,
            chunk,
        } = shape;
        check_linear_loss_args(self, hidden.len(), weight.len(), shape, inputs, config)?;
        let host = HostTokens::new(inputs, v)?;
        let params = SurrogateParams::<f32>::new(config);
        let inv_temp = (1.0 / config.temperature) as f32;
        let entropy_coef = config.entropy_coef as f32;

        if let Some(i) = weight.iter().position(|x| !x.to_f32().is_finite()) {
            return Err(non_finite("weight", i));
        }
        let mut grad_hidden = vec![0.0f32; n * d];
        let mut grad_weight = vec![0.0f32; v * d];
        let mut logits = vec![0.0f32; chunk.min(n.max(1)) * v];
        // f32 operands are used in place; others are widened into these, the hidden states a
        // chunk at a time and the weight a vocabulary tile at a time, so no f32 copy of the whole
        // weight exists.
        let (mut h_chunk, mut w_tile) = (Vec::new(), Vec::new());
        let mut rows = Vec::with_capacity(n);
        let (rm_d, rm_v) = (Strides::row_major(d), Strides::row_major(v));
        for (start, c) in row_chunks(n, chunk) {
            let h = chunk_f32(&hidden[start * d..(start + c) * d], &mut h_chunk);
            if let Some(i) = first_nonfinite(h) {
                return Err(non_finite("hidden", start * d + i));
            }
            let z = &mut logits[..c * v];
            // z = h · Wᵀ   ([c, d] × [d, v])
            for (v0, t) in row_chunks(v, VOCAB_TILE) {
                let w = chunk_f32(&weight[v0 * d..(v0 + t) * d], &mut w_tile);
                let wt = Strides::transposed(d);
                sgemm(
                    self.parallel,
                    (c, d, t),
                    h,
                    rm_d,
                    w,
                    wt,
                    false,
                    &mut z[v0..],
                    rm_v,
                );
            }
            rows.extend(self.map_rows(z, v, |i, row, scratch| {
                let i = start + i;
                host.row(self.isa, i, row, scratch, inv_temp, &params, entropy_coef)
            }));
            // Per tile: dH += G · W   ([c, t] × [t, d]);  dW += Gᵀ · h   ([t, c] × [c, d])
            let gh = &mut grad_hidden[start * d..(start + c) * d];
            for (v0, t) in row_chunks(v, VOCAB_TILE) {
                let w = chunk_f32(&weight[v0 * d..(v0 + t) * d], &mut w_tile);
                let g = &z[v0..];
                sgemm(self.parallel, (c, t, d), g, rm_v, w, rm_d, v0 > 0, gh, rm_d);
                let gw = &mut grad_weight[v0 * d..(v0 + t) * d];
                let gt = Strides::transposed(v);
                sgemm(self.parallel, (t, c, d), g, gt, h, rm_d, true, gw, rm_d);
            }
        }
        let report = reduce_rows(rows, config)?;
        Ok(LinearLossOutput {
            report,
            grad_hidden,
            grad_weight,
        })
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
