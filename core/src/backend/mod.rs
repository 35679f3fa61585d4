//! The [`Backend`] trait: the handful of tensor operations the SUPO loss needs, over device
//! buffers, so the same estimator runs on a CPU, through wgpu or through CUDA.
//!
//! Shapes: `N` tokens, `V` vocabulary, `D` hidden size, `B` trajectories. Every backend must
//! accumulate in f32 whatever the input element type, keep log-sum-exp stable for logits of
//! ±1e4, give bit-identical outputs for identical inputs on the same device (no float atomics in
//! reductions), pass the parity suite in `supo-tests` against [`CpuBackend`](cpu::CpuBackend),
//! and return an [`Error`](crate::Error) (never panic) when it cannot start or run.
//!
//! The per-token math every backend implements is spelled out, once, in
//! [`crate::estimator::surrogate`]; [`cpu`] is its reference realisation.

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod bf16_dot;
pub mod cpu;
mod element;
#[cfg(target_arch = "x86_64")]
mod f16c;
mod gemm;
pub mod host;
pub mod kernel;

pub use element::{DType, Element, Scalar};
pub use host::{
    check_linear_shapes, check_logits_shape, check_logprob_inputs, check_token_inputs, reduce_rows,
    RowLoss,
};

use crate::error::Result;
use crate::estimator::LossConfig;
use alloc::string::String;
use alloc::vec::Vec;

/// Shape of a logits matrix `[tokens, vocab]`, row-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogitsShape {
    /// `N`, the number of token rows.
    pub tokens: usize,
    /// `V`, the vocabulary size (row length).
    pub vocab: usize,
}

/// Shapes of the fused linear loss: hidden `[tokens, hidden]`, weight `[vocab, hidden]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearShape {
    /// `N`, the number of token rows.
    pub tokens: usize,
    /// `D`, the hidden size.
    pub hidden: usize,
    /// `V`, the vocabulary size.
    pub vocab: usize,
    /// Rows per chunk: at most `chunk × V` logits exist at any time.
    pub chunk: usize,
}

/// Per-token inputs of the fused policy losses, all of length `N`, on the backend's device.
pub struct TokenInputs<'a, B: Backend + ?Sized> {
    /// The sampled token of each row (index into the vocabulary).
    pub targets: &'a B::Buffer<u32>,
    /// `log π_old` of each target token (from the behaviour policy).
    pub old_logprobs: &'a B::Buffer<f32>,
    /// `log π_ref` of each target token; required when `kl_coef != 0`.
    pub ref_logprobs: Option<&'a B::Buffer<f32>>,
    /// The advantage of each token (its trajectory's advantage, see [`Backend::scatter_to_tokens`]).
    pub advantages: &'a B::Buffer<f32>,
    /// Aggregation coefficient of each token: the loss is `Σ_t weight_t · ℓ_t`, so a weight of
    /// zero means "not trained". Built by [`crate::estimator::aggregation_weights`] from the
    /// agent mask, overlong masking and the aggregation mode. Statistics are plain means over the
    /// tokens with non-zero weight.
    pub weights: &'a B::Buffer<f32>,
}

/// Scalars reported by a fused policy loss (all already aggregated).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossReport {
    /// `pg_loss + kl_coef · kl_loss − entropy_coef · entropy_loss`.
    pub loss: f64,
    /// Aggregated clipped surrogate.
    pub pg_loss: f64,
    /// Aggregated KL penalty (0 when `kl_coef == 0`).
    pub kl_loss: f64,
    /// Aggregated entropy (the quantity the entropy bonus rewards).
    pub entropy_loss: f64,
    /// Share of trained tokens whose upper/lower clip was active (verl's `pg_clipfrac`).
    pub clipfrac: f64,
    /// Share of trained tokens where the dual clip was active (verl's `pg_clipfrac_lower`).
    pub clipfrac_lower: f64,
    /// Mean of `log π_old − log π` (clamped to ±20) over trained tokens (verl's `ppo_kl`).
    pub approx_kl: f64,
    /// Mean entropy of the policy over trained tokens.
    pub entropy: f64,
    /// Number of tokens with non-zero weight.
    pub trained_tokens: usize,
}

/// Output of [`Backend::token_logprobs`].
pub struct TokenLogProbs<B: Backend + ?Sized> {
    /// `log softmax(logits / T)[target]`, `[N]`.
    pub logprobs: B::Buffer<f32>,
    /// Entropy of `softmax(logits / T)`, `[N]`.
    pub entropy: B::Buffer<f32>,
}

/// Output of [`Backend::linear_policy_loss`].
pub struct LinearLossOutput<B: Backend + ?Sized> {
    /// Loss and statistics.
    pub report: LossReport,
    /// `dL/dhidden`, `[N, D]`.
    pub grad_hidden: B::Buffer<f32>,
    /// `dL/dweight`, `[V, D]`.
    pub grad_weight: B::Buffer<f32>,
}

/// How [`Backend::group_advantages`] normalises rewards within a group (Eq. 3 of the paper).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupAdvantageConfig {
    /// Divide by the group's standard deviation (`false` is Dr. GRPO).
    pub norm_by_std: bool,
    /// `ε` added to the standard deviation.
    pub eps: f32,
    /// Whether masked (overlong) members count in their group's mean and std. When they do not,
    /// their advantage is 0.
    pub masked_in_group_stats: bool,
}

/// A compute backend for the SUPO loss.
///
/// Implementors provide device buffers ([`Backend::Buffer`]) and the operations of the design
/// card's backend contract. All methods validate shapes and return [`Error`](crate::Error) instead of
/// panicking. See the module documentation for the numerics rules.
pub trait Backend {
    /// A device buffer of `T`s.
    type Buffer<T: Scalar>;

    /// A short human-readable name, e.g. `"cpu"` or `"wgpu (llvmpipe, Vulkan)"`.
    fn name(&self) -> String;

    /// Copies `data` to a new device buffer.
    fn upload<T: Scalar>(&self, data: &[T]) -> Result<Self::Buffer<T>>;

    /// Copies a device buffer back to the host.
    fn download<T: Scalar>(&self, buffer: &Self::Buffer<T>) -> Result<Vec<T>>;

    /// Number of elements in a buffer.
    fn len<T: Scalar>(&self, buffer: &Self::Buffer<T>) -> usize;

    /// `log softmax(logits / temperature)[target]` and the entropy of each row.
    fn token_logprobs<T: Element>(
        &self,
        logits: &Self::Buffer<T>,
        targets: &Self::Buffer<u32>,
        shape: LogitsShape,
        temperature: f32,
    ) -> Result<TokenLogProbs<Self>>;

    /// The fused policy loss, forward and backward, over logits `[N, V]`.
    ///
    /// On success `logits` holds `dL/dlogits` (same element type), computed in f32.
    fn policy_loss<T: Element>(
        &self,
        logits: &mut Self::Buffer<T>,
        shape: LogitsShape,
        inputs: &TokenInputs<'_, Self>,
        config: &LossConfig,
    ) -> Result<LossReport>;

    /// The fused *linear* policy loss: logits are `hidden · weightᵀ`, computed `shape.chunk`
    /// rows at a time so the whole `[N, V]` matrix never exists.
    fn linear_policy_loss<T: Element>(
        &self,
        hidden: &Self::Buffer<T>,
        weight: &Self::Buffer<T>,
        shape: LinearShape,
        inputs: &TokenInputs<'_, Self>,
        config: &LossConfig,
    ) -> Result<LinearLossOutput<Self>>;

    /// Group-relative advantages (Eq. 3): `rewards [B]`, `groups [B]` (dense group ids),
    /// `masked [B]` (1 for an overlong trajectory).
    fn group_advantages(
        &self,
        rewards: &Self::Buffer<f32>,
        groups: &Self::Buffer<u32>,
        masked: &Self::Buffer<u32>,
        config: &GroupAdvantageConfig,
    ) -> Result<Self::Buffer<f32>>;

    /// `out[t] = values[index[t]]`: broadcasts per-trajectory advantages to tokens.
    fn scatter_to_tokens(
        &self,
        values: &Self::Buffer<f32>,
        index: &Self::Buffer<u32>,
    ) -> Result<Self::Buffer<f32>>;
}
