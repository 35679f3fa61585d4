//! verl's four loss-aggregation modes, expressed as per-token weights.
//!
//! Every mode is linear in the per-token losses, so `loss = Σ_t w_t · ℓ_t` with weights that
//! depend only on the masks. A "sequence" is a summary segment. Tokens of mask 0 (observations,
//! overlong trajectories, padding rows) have weight 0 and leave numerators and denominators;
//! a sequence without any trained token does not count as a sequence.

use num_traits::Float;

use crate::error::{Error, Result};
use alloc::vec;
use alloc::vec::Vec;

/// verl's `loss_agg_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AggMode {
    /// Sum over all trained tokens of the batch divided by their count (the paper's choice).
    #[default]
    #[cfg_attr(feature = "serde", serde(rename = "token-mean"))]
    TokenMean,
    /// Mean over sequences of each sequence's token sum.
    #[cfg_attr(feature = "serde", serde(rename = "seq-mean-token-sum"))]
    SeqMeanTokenSum,
    /// Mean over sequences of each sequence's token mean.
    #[cfg_attr(feature = "serde", serde(rename = "seq-mean-token-mean"))]
    SeqMeanTokenMean,
    /// Sum over sequences of each sequence's token sum, divided by a constant length.
    #[cfg_attr(feature = "serde", serde(rename = "seq-mean-token-sum-norm"))]
    SeqMeanTokenSumNorm,
}

impl AggMode {
    /// Parses verl's mode names.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "token-mean" => Ok(AggMode::TokenMean),
            "seq-mean-token-sum" => Ok(AggMode::SeqMeanTokenSum),
            "seq-mean-token-mean" => Ok(AggMode::SeqMeanTokenMean),
            "seq-mean-token-sum-norm" => Ok(AggMode::SeqMeanTokenSumNorm),
            other => Err(Error::InvalidConfig(alloc::format!(
                "unknown agg mode {other:?} (expected token-mean, seq-mean-token-sum, \
                 seq-mean-token-mean or seq-mean-token-sum-norm)"
            ))),
        }
    }

    /// verl's name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            AggMode::TokenMean => "token-mean",
            AggMode::SeqMeanTokenSum => "seq-mean-token-sum",
            AggMode::SeqMeanTokenMean => "seq-mean-token-mean",
            AggMode::SeqMeanTokenSumNorm => "seq-mean-token-sum-norm",
        }
    }
}

/// Per-token aggregation weights for tokens laid out sequence after sequence.
///
/// `seq_lens[s]` is the length of sequence `s`; `mask` (0 or 1, length `Σ seq_lens`) marks the
/// trained tokens; `norm_length` is the divisor of [`AggMode::SeqMeanTokenSumNorm`] (default:
/// the longest sequence). A batch without trained tokens gets all-zero weights.
pub fn aggregation_weights<F: Float>(
    seq_lens: &[usize],
    mask: &[F],
    mode: AggMode,
    norm_length: Option<F>,
) -> Result<Vec<F>> {
    let total: usize = seq_lens.iter().sum();
    crate::error::ensure!(
        mask.len() == total,
        "mask has {} entries, sequences hold {total} tokens",
        mask.len()
    );
    let zero = F::zero();
    let mut weights = vec![zero; total];
    let seq_sums: Vec<F> = seq_ranges(seq_lens)
        .map(|r| mask[r].iter().fold(zero, |a, &m| a + m))
        .collect();
    let trained_seqs = F::from(seq_sums.iter().filter(|&&s| s > zero).count()).unwrap_or(zero);
    let all_tokens = seq_sums.iter().fold(zero, |a, &s| a + s);
    if all_tokens == zero {
        return Ok(weights);
    }
    for (r, &seq_sum) in seq_ranges(seq_lens).zip(&seq_sums) {
        if seq_sum == zero {
            continue;
        }
        let scale = match mode {
            AggMode::TokenMean => F::one() / all_tokens,
            AggMode::SeqMeanTokenSum => F::one() / trained_seqs,
            AggMode::SeqMeanTokenMean => F::one() / (seq_sum * trained_seqs),
            AggMode::SeqMeanTokenSumNorm => {
                let longest = seq_lens.iter().copied().max().unwrap_or(1);
                F::one() / norm_length.unwrap_or_else(|| F::from(longest).unwrap_or(F::one()))
            }
        };
        for t in r {
            weights[t] = mask[t] * scale;
        }
    }
    Ok(weights)
}

/// The token ranges of consecutive sequences.
pub fn seq_ranges(seq_lens: &[usize]) -> impl Iterator<Item = core::ops::Range<usize>> + '_ {
    seq_lens.iter().scan(0usize, |start, &len| {
        let r = *start..*start + len;
        *start += len;
        Some(r)
    })
}
