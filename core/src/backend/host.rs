//! Host-side logic every [`Backend`] shares, written once so that all backends agree on it:
//!
//! * the checks of each operation's arguments, in the CPU reference's order and with its
//!   messages, so every backend rejects the same inputs with the same [`Error`]
//!   ([`check_policy_loss_args`], [`check_token_values`], [`check_group_lengths`], …); a device
//!   backend finds the first offending element of a buffer however it likes (a validation
//!   kernel, a status word) and reports it through the same function or error constructor
//!   ([`target_out_of_range`], [`non_finite`], …);
//! * the loss settings as the row kernels take them ([`LossKernelParams`]);
//! * the split of the fused linear loss into row chunks ([`row_chunks`]);
//! * the reduction of per-row results into a [`LossReport`] ([`reduce_rows`]).
//!
//! Nothing here touches a device; it is `no_std` like the rest of the core.

use alloc::format;

use super::{Backend, LinearShape, LogitsShape, LossReport, TokenInputs};
use crate::error::{ensure, Error, Result};
use crate::estimator::surrogate::SurrogateParams;
use crate::estimator::{KlType, LossConfig};

/// Checks a [`Backend::policy_loss`] call: the logits against their shape, then the per-token
/// inputs and the configuration ([`check_token_inputs`]).
pub fn check_policy_loss_args<B: Backend + ?Sized>(
    backend: &B,
    logits_len: usize,
    shape: LogitsShape,
    inputs: &TokenInputs<'_, B>,
    config: &LossConfig,
) -> Result<()> {
    check_logits_shape(logits_len, shape)?;
    check_token_inputs(backend, shape.tokens, inputs, config)
}

/// Checks a [`Backend::linear_policy_loss`] call: the operands against their shapes
/// ([`check_linear_shapes`]), then the per-token inputs and the configuration
/// ([`check_token_inputs`]).
pub fn check_linear_loss_args<B: Backend + ?Sized>(
    backend: &B,
    hidden_len: usize,
    weight_len: usize,
    shape: LinearShape,
    inputs: &TokenInputs<'_, B>,
    config: &LossConfig,
) -> Result<()> {
    check_linear_shapes(hidden_len, weight_len, shape)?;
    check_token_inputs(backend, shape.tokens, inputs, config)
}

/// A per-token input of the fused losses whose values must be finite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenValues {
    /// [`TokenInputs::old_logprobs`].
    OldLogprobs,
    /// [`TokenInputs::advantages`].
    Advantages,
    /// [`TokenInputs::weights`].
    Weights,
    /// [`TokenInputs::ref_logprobs`] (checked only when given).
    RefLogprobs,
}

impl TokenValues {
    /// Every such input, in the order [`check_token_values`] reports them.
    pub const ORDER: [TokenValues; 4] = [
        TokenValues::OldLogprobs,
        TokenValues::Advantages,
        TokenValues::Weights,
        TokenValues::RefLogprobs,
    ];

    /// The name errors give it (its field in [`TokenInputs`]).
    pub const fn name(self) -> &'static str {
        match self {
            TokenValues::OldLogprobs => "old_logprobs",
            TokenValues::Advantages => "advantages",
            TokenValues::Weights => "weights",
            TokenValues::RefLogprobs => "ref_logprobs",
        }
    }

    /// Its buffer in `inputs` (`None` for reference log-probs that were not given).
    pub fn of<'a, B: Backend + ?Sized>(
        self,
        inputs: &TokenInputs<'a, B>,
    ) -> Option<&'a B::Buffer<f32>> {
        match self {
            TokenValues::OldLogprobs => Some(inputs.old_logprobs),
            TokenValues::Advantages => Some(inputs.advantages),
            TokenValues::Weights => Some(inputs.weights),
            TokenValues::RefLogprobs => inputs.ref_logprobs,
        }
    }
}

/// Checks the values of the per-token inputs of a fused loss, in the reference order: every
/// target inside the vocabulary, then [`TokenValues::ORDER`] finite (the reference log-probs
/// only when `has_ref`). The first failure is the error.
///
/// `first_bad_target` gives the first row whose target is `>= vocab`, with that target;
/// `first_nonfinite` the index of the first non-finite value of one input. They are called
/// lazily, in that order, until one finds something.
pub fn check_token_values(
    vocab: usize,
    has_ref: bool,
    first_bad_target: impl FnOnce() -> Result<Option<(usize, u32)>>,
    mut first_nonfinite: impl FnMut(TokenValues) -> Result<Option<usize>>,
) -> Result<()> {
    if let Some((row, target)) = first_bad_target()? {
        return Err(target_out_of_range(row, target, vocab));
    }
    for values in TokenValues::ORDER {
        if values == TokenValues::RefLogprobs && !has_ref {
            continue;
        }
        if let Some(i) = first_nonfinite(values)? {
            return Err(non_finite(values.name(), i));
        }
    }
    Ok(())
}

/// The error for a token whose target is outside the vocabulary.
pub fn target_out_of_range(row: usize, target: u32, vocab: usize) -> Error {
    Error::InvalidInput(format!(
        "target {target} of row {row} is outside the vocabulary of {vocab}"
    ))
}

/// The error for a non-finite value: element `index` of the input called `what`.
pub fn non_finite(what: &str, index: usize) -> Error {
    Error::NonFinite(format!("{what}[{index}]"))
}

/// The error for a logits row whose softmax is not usable (a NaN or `+∞` logit, or all `−∞`).
pub fn bad_logits_row(row: usize) -> Error {
    Error::NonFinite(format!("logits row {row} (NaN, +inf or all -inf)"))
}

/// The error of [`Backend::scatter_to_tokens`] for a token whose trajectory index is `>= len`.
pub fn index_out_of_range(token: usize, index: u32, len: usize) -> Error {
    Error::InvalidInput(format!(
        "token {token} points at trajectory {index}, but there are {len}"
    ))
}

/// Checks the lengths of a [`Backend::group_advantages`] call: one group id and one mask flag
/// per reward.
pub fn check_group_lengths(rewards: usize, groups: usize, masked: usize) -> Result<()> {
    let n = rewards;
    ensure!(groups == n, "{groups} group ids for {n} rewards");
    ensure!(masked == n, "{masked} mask flags for {n} rewards");
    Ok(())
}

/// The error of [`Backend::group_advantages`] for a non-finite reward.
pub fn non_finite_reward(sample: usize) -> Error {
    Error::NonFinite(format!("reward of sample {sample}"))
}

/// Checks that group ids are dense: the largest is below the number of samples.
pub fn check_group_ids(largest: usize, samples: usize) -> Result<()> {
    ensure!(
        largest < samples,
        "group ids must be dense indices below the number of samples"
    );
    Ok(())
}

/// `(first row, rows)` of each chunk of `chunk` rows (`> 0`) of `tokens` rows, in order; the
/// last chunk may be shorter.
pub fn row_chunks(tokens: usize, chunk: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..tokens)
        .step_by(chunk)
        .map(move |start| (start, chunk.min(tokens - start)))
}

/// The code of a KL estimator in [`LossKernelParams::kl_type`].
pub const fn kl_type_code(kl_type: KlType) -> u32 {
    match kl_type {
        KlType::K1 => 0,
        KlType::K2 => 1,
        KlType::LowVarKl => 2,
    }
}

/// The loss settings of a [`LossConfig`] as the row kernels of the device backends take them:
/// nine 4-byte values in this order (`LossParams` in supo-cuda's `rows.cu`, the tail of
/// `Params` in supo-wgpu's `rows.wgsl`), converted to f32 exactly as the CPU reference converts
/// them ([`SurrogateParams`]), so every backend computes with the same bits.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LossKernelParams {
    /// `1 / temperature`.
    pub inv_temp: f32,
    /// `1 − ε_low`.
    pub ratio_min: f32,
    /// `1 + ε_high`.
    pub ratio_max: f32,
    /// The dual-clip constant (0 without dual clip).
    pub dual_clip: f32,
    /// 1 with dual clip, else 0.
    pub has_dual: u32,
    /// KL weight.
    pub kl_coef: f32,
    /// KL estimator ([`kl_type_code`]).
    pub kl_type: u32,
    /// Entropy-bonus weight.
    pub entropy_coef: f32,
    /// 1 when reference log-probs are given, else 0.
    pub has_ref: u32,
}

const _: () = assert!(core::mem::size_of::<LossKernelParams>() == 36);

impl LossKernelParams {
    /// The settings of `config`; `has_ref` says whether reference log-probs are given.
    pub fn new(config: &LossConfig, has_ref: bool) -> Self {
        let p = SurrogateParams::<f32>::new(config);
        LossKernelParams {
            inv_temp: (1.0 / config.temperature) as f32,
            ratio_min: p.ratio_min,
            ratio_max: p.ratio_max,
            dual_clip: p.dual_clip.unwrap_or(0.0),
            has_dual: u32::from(p.dual_clip.is_some()),
            kl_coef: p.kl_coef,
            kl_type: kl_type_code(p.kl_type),
            entropy_coef: config.entropy_coef as f32,
            has_ref: u32::from(has_ref),
        }
    }
}

/// What one logits row contributes to a fused policy loss. Backends compute these on their
/// device and hand them, in row order, to [`reduce_rows`] — the one reduction they all share.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RowLoss {
    /// The token's aggregation weight (0: not trained).
    pub weight: f32,
    /// Whether the row's softmax was usable (no NaN or `+∞` logit, not all `−∞`).
    pub usable: bool,
    /// Clipped surrogate `ℓ_t`.
    pub pg: f32,
    /// KL estimate.
    pub kl: f32,
    /// Entropy of the row's softmax.
    pub entropy: f32,
    /// `−clamp(log π − log π_old, ±20)`.
    pub approx_kl: f32,
    /// The clip was active.
    pub clipped: bool,
    /// The dual clip was active.
    pub clipped_lower: bool,
}

/// Reduces per-row losses, in row order and in f64, into the report: weighted sums for the
/// losses, plain means over trained tokens for the statistics. Any unusable logits row, trained
/// or not, is an error; so is a non-finite loss.
pub fn reduce_rows(
    rows: impl IntoIterator<Item = RowLoss>,
    config: &LossConfig,
) -> Result<LossReport> {
    let mut r = LossReport::default();
    let (mut clipped, mut lower) = (0usize, 0usize);
    for (i, row) in rows.into_iter().enumerate() {
        if !row.usable {
            return Err(bad_logits_row(i));
        }
        if row.weight == 0.0 {
            continue;
        }
        let w = f64::from(row.weight);
        r.pg_loss += w * f64::from(row.pg);
        r.kl_loss += w * f64::from(row.kl);
        r.entropy_loss += w * f64::from(row.entropy);
        r.approx_kl += f64::from(row.approx_kl);
        r.entropy += f64::from(row.entropy);
        clipped += usize::from(row.clipped);
        lower += usize::from(row.clipped_lower);
        r.trained_tokens += 1;
    }
    if r.trained_tokens > 0 {
        let n = r.trained_tokens as f64;
        r.clipfrac = clipped as f64 / n;
        r.clipfrac_lower = lower as f64 / n;
        r.approx_kl /= n;
        r.entropy /= n;
    }
    r.loss = r.pg_loss + config.kl_coef * r.kl_loss - config.entropy_coef * r.entropy_loss;
    if !r.loss.is_finite() {
        return Err(Error::NonFinite("loss".into()));
    }
    Ok(r)
}

/// Checks the lengths of a fused-loss call against its shape; shared by every backend so they
/// all reject the same inputs with the same messages.
pub fn check_token_inputs<B: Backend + ?Sized>(
    backend: &B,
    tokens: usize,
    inputs: &TokenInputs<'_, B>,
    config: &LossConfig,
) -> Result<()> {
    config.validate()?;
    let lens = [
        ("targets", backend.len(inputs.targets)),
        ("old_logprobs", backend.len(inputs.old_logprobs)),
        ("advantages", backend.len(inputs.advantages)),
        ("weights", backend.len(inputs.weights)),
    ];
    for (what, len) in lens {
        ensure!(len == tokens, "{what} has {len} entries, expected {tokens}");
    }
    match inputs.ref_logprobs {
        Some(r) => {
            let len = backend.len(r);
            ensure!(
                len == tokens,
                "ref_logprobs has {len} entries, expected {tokens}"
            );
        }
        None if config.kl_coef != 0.0 => {
            return Err(Error::InvalidInput(
                "kl_coef is non-zero but no ref_logprobs were given".into(),
            ))
        }
        None => {}
    }
    Ok(())
}

/// Checks a [`Backend::token_logprobs`] call: the logits against their shape, one target per
/// row, a positive finite temperature.
pub fn check_logprob_inputs(
    logits_len: usize,
    targets_len: usize,
    shape: LogitsShape,
    temperature: f32,
) -> Result<()> {
    check_logits_shape(logits_len, shape)?;
    ensure!(
        targets_len == shape.tokens,
        "{targets_len} targets for {} rows",
        shape.tokens
    );
    ensure!(
        temperature.is_finite() && temperature > 0.0,
        "temperature must be > 0"
    );
    Ok(())
}

/// Checks the operands of a [`Backend::linear_policy_loss`] call against their shapes.
pub fn check_linear_shapes(hidden_len: usize, weight_len: usize, shape: LinearShape) -> Result<()> {
    let LinearShape {
        tokens: n,
        hidden: d,
        vocab: v,
        chunk,
    } = shape;
    ensure!(chunk > 0, "chunk must be > 0");
    ensure!(v > 0 && d > 0, "hidden and vocab sizes must be > 0");
    let overflow = || Error::InvalidInput(format!("shape {shape:?} overflows usize"));
    let nd = n.checked_mul(d).ok_or_else(overflow)?;
    let vd = v.checked_mul(d).ok_or_else(overflow)?;
    ensure!(
        hidden_len == nd,
        "hidden has {hidden_len} elements, shape needs {nd}"
    );
    ensure!(
        weight_len == vd,
        "weight has {weight_len} elements, shape needs {vd}"
    );
    Ok(())
}

/// Checks a logits buffer against its shape.
pub fn check_logits_shape(len: usize, shape: LogitsShape) -> Result<()> {
    let want = shape
        .tokens
        .checked_mul(shape.vocab)
        .ok_or_else(|| Error::InvalidInput(format!("shape {shape:?} overflows usize")))?;
    ensure!(
        len == want,
        "logits have {len} elements, shape {shape:?} needs {want}"
    );
    ensure!(shape.vocab > 0 || shape.tokens == 0, "vocab must be > 0");
    Ok(())
}
