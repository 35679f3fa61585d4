//! The loss-aggregation modes — verl's four (with verl ≥ 0.7.1's meanings) and two
//! trajectory-balanced ones — expressed as per-token weights.
//!
//! Every mode is linear in the per-token losses, so `loss = Σ_t w_t · ℓ_t` with weights that
//! depend only on the masks, the sequence lengths and which trajectory each sequence belongs to.
//! This module is the one place the weights are computed; every backend consumes them. A
//! "sequence" is a summary segment. Tokens of mask 0 (observations, overlong trajectories,
//! padding rows) have weight 0 and leave numerators and denominators; a sequence (a trajectory)
//! without any trained token does not count as a sequence (a trajectory).
//!
//! With `m_t` the mask, `n_s = Σ_{t∈s} m_t`, `S` the sequences and `T` the trajectories with a
//! trained token, and `H` the horizon (`norm_length`, by default the longest sequence):
//!
//! | mode | `w_t` for a token `t` of sequence `s` of trajectory `τ` |
//! |---|---|
//! | `token-mean` | `m_t / Σ_s n_s` |
//! | `seq-mean-token-sum` | `m_t / |S|` |
//! | `seq-mean-token-mean` | `m_t / (|S| · n_s)` |
//! | `seq-mean-token-sum-norm` | `m_t / (|S| · H)` |
//! | `traj-mean-token-mean` | `m_t / (|T| · Σ_{s∈τ} n_s)` |
//! | `traj-mean-token-sum` | `m_t / |T|` |

use num_traits::Float;

use crate::error::{ensure, Error, Result};
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

/// How per-token losses are aggregated into one loss (verl's `loss_agg_mode`, plus two
/// trajectory-balanced modes of ours).
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
    /// Dr. GRPO: mean over sequences of each sequence's token sum divided by the horizon
    /// (`norm_length`, by default the longest sequence) — verl ≥ 0.7.1 (PR #5417; before it,
    /// verl summed over sequences instead of averaging).
    #[cfg_attr(feature = "serde", serde(rename = "seq-mean-token-sum-norm"))]
    SeqMeanTokenSumNorm,
    /// Mean over trajectories of each trajectory's token mean, all its segments pooled: every
    /// trajectory weighs the same however many segments it was cut into.
    #[cfg_attr(feature = "serde", serde(rename = "traj-mean-token-mean"))]
    TrajMeanTokenMean,
    /// Mean over trajectories of each trajectory's token sum (all its segments): Theorem 3.2's
    /// objective averaged over trajectories.
    #[cfg_attr(feature = "serde", serde(rename = "traj-mean-token-sum"))]
    TrajMeanTokenSum,
}

impl AggMode {
    /// Every mode, verl's four first.
    pub const ALL: [AggMode; 6] = [
        AggMode::TokenMean,
        AggMode::SeqMeanTokenSum,
        AggMode::SeqMeanTokenMean,
        AggMode::SeqMeanTokenSumNorm,
        AggMode::TrajMeanTokenMean,
        AggMode::TrajMeanTokenSum,
    ];

    /// Parses a mode's name (verl's four, `traj-mean-token-mean`, `traj-mean-token-sum`).
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                Error::InvalidConfig(alloc::format!(
                    "unknown agg mode {name:?} (expected token-mean, seq-mean-token-sum, \
                     seq-mean-token-mean, seq-mean-token-sum-norm, traj-mean-token-mean or \
                     traj-mean-token-sum)"
                ))
            })
    }

    /// The mode's name (verl's for verl's modes).
    pub fn name(self) -> &'static str {
        match self {
            AggMode::TokenMean => "token-mean",
            AggMode::SeqMeanTokenSum => "seq-mean-token-sum",
            AggMode::SeqMeanTokenMean => "seq-mean-token-mean",
            AggMode::SeqMeanTokenSumNorm => "seq-mean-token-sum-norm",
            AggMode::TrajMeanTokenMean => "traj-mean-token-mean",
            AggMode::TrajMeanTokenSum => "traj-mean-token-sum",
        }
    }

    /// Whether the mode weighs trajectories (and so needs each sequence's trajectory).
    pub fn is_trajectory_balanced(self) -> bool {
        matches!(self, AggMode::TrajMeanTokenMean | AggMode::TrajMeanTokenSum)
    }
}

impl core::fmt::Display for AggMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// One sequence of a batch: how many tokens it holds and which trajectory it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sequence {
    /// Number of tokens (trained or not).
    pub len: usize,
    /// The trajectory (any id; sequences with equal ids belong to one trajectory), `None` for a
    /// padding row. A sequence without a trajectory must have no trained token when the mode is
    /// trajectory-balanced.
    pub trajectory: Option<usize>,
}

/// Per-token aggregation weights for tokens laid out sequence after sequence.
///
/// `seqs[s]` is the length and trajectory of sequence `s`; `mask` (0 or 1, length
/// `Σ seqs[s].len`) marks the trained tokens; `norm_length` is the horizon of
/// [`AggMode::SeqMeanTokenSumNorm`] (default: the longest sequence, trained or not — verl's
/// padded response length). A batch without trained tokens gets all-zero weights. See the
/// module documentation for each mode's weights.
pub fn aggregation_weights<F: Float>(
    seqs: &[Sequence],
    mask: &[F],
    mode: AggMode,
    norm_length: Option<F>,
) -> Result<Vec<F>> {
    let total: usize = seqs.iter().map(|s| s.len).sum();
    ensure!(
        mask.len() == total,
        "mask has {} entries, sequences hold {total} tokens",
        mask.len()
    );
    let zero = F::zero();
    let count = |n: usize| F::from(n).unwrap_or_else(F::nan);
    let mut weights = vec![zero; total];
    let ranges: Vec<_> = seq_ranges(seqs.iter().map(|s| s.len)).collect();
    let seq_sums: Vec<F> = ranges
        .iter()
        .map(|r| mask[r.clone()].iter().fold(zero, |a, &m| a + m))
        .collect();
    let all_tokens = seq_sums.iter().fold(zero, |a, &s| a + s);
    if all_tokens == zero {
        return Ok(weights);
    }
    let trained_seqs = count(seq_sums.iter().filter(|&&s| s > zero).count());

    // Trained tokens per trajectory, for the trajectory-balanced modes.
    let mut traj_sums: BTreeMap<usize, F> = BTreeMap::new();
    if mode.is_trajectory_balanced() {
        for (s, (seq, &n)) in seqs.iter().zip(&seq_sums).enumerate() {
            if n == zero {
                continue;
            }
            let Some(t) = seq.trajectory else {
                return Err(Error::InvalidInput(alloc::format!(
                    "sequence {s} has trained tokens but no trajectory ({mode} needs one)"
                )));
            };
            let sum = traj_sums.entry(t).or_insert(zero);
            *sum = *sum + n;
        }
    }
    let trained_trajs = count(traj_sums.len());
    let horizon =
        || norm_length.unwrap_or_else(|| count(seqs.iter().map(|s| s.len).max().unwrap_or(1)));

    for ((r, &seq_sum), seq) in ranges.into_iter().zip(&seq_sums).zip(seqs) {
        if seq_sum == zero {
            continue;
        }
        let scale = match mode {
            AggMode::TokenMean => F::one() / all_tokens,
            AggMode::SeqMeanTokenSum => F::one() / trained_seqs,
            AggMode::SeqMeanTokenMean => F::one() / (seq_sum * trained_seqs),
            AggMode::SeqMeanTokenSumNorm => F::one() / (trained_seqs * horizon()),
            AggMode::TrajMeanTokenMean => {
                let pooled = seq.trajectory.and_then(|t| traj_sums.get(&t)).copied();
                F::one() / (pooled.unwrap_or_else(F::nan) * trained_trajs)
            }
            AggMode::TrajMeanTokenSum => F::one() / trained_trajs,
        };
        for t in r {
            weights[t] = mask[t] * scale;
        }
    }
    Ok(weights)
}

/// The token ranges of consecutive sequences of the given lengths.
pub fn seq_ranges(
    seq_lens: impl IntoIterator<Item = usize>,
) -> impl Iterator<Item = core::ops::Range<usize>> {
    seq_lens.into_iter().scan(0usize, |start, len| {
        let r = *start..*start + len;
        *start += len;
        Some(r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three sequences: trajectory 0 is cut into the first two, trajectory 1 is the third.
    /// Lengths 4, 2, 3; trained tokens 3, 1, 2; the longest sequence has 4 tokens.
    fn layout() -> (Vec<Sequence>, Vec<f64>) {
        let seq = |len, t| Sequence {
            len,
            trajectory: Some(t),
        };
        let seqs = vec![seq(4, 0), seq(2, 0), seq(3, 1)];
        let mask = vec![1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0];
        (seqs, mask)
    }

    fn weights(mode: AggMode, norm_length: Option<f64>) -> Vec<f64> {
        let (seqs, mask) = layout();
        aggregation_weights(&seqs, &mask, mode, norm_length).unwrap()
    }

    fn assert_close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-15, "token {i}: {g} vs {w}\n{got:?}");
        }
    }

    #[test]
    fn token_mean() {
        let w = 1.0 / 6.0;
        assert_close(
            &weights(AggMode::TokenMean, None),
            &[w, w, 0.0, w, 0.0, w, w, w, 0.0],
        );
    }

    #[test]
    fn seq_mean_token_sum() {
        let w = 1.0 / 3.0;
        assert_close(
            &weights(AggMode::SeqMeanTokenSum, None),
            &[w, w, 0.0, w, 0.0, w, w, w, 0.0],
        );
    }

    #[test]
    fn seq_mean_token_mean() {
        // 1/3 per sequence, spread over its 3, 1, 2 trained tokens.
        let (a, b, c) = (1.0 / 9.0, 1.0 / 3.0, 1.0 / 6.0);
        assert_close(
            &weights(AggMode::SeqMeanTokenMean, None),
            &[a, a, 0.0, a, 0.0, b, c, c, 0.0],
        );
    }

    #[test]
    fn seq_mean_token_sum_norm_is_a_mean_over_sequences() {
        // verl >= 0.7.1: (1/|S|) Σ_s Σ_t ℓ_t / H with |S| = 3 and H = 4 (the longest sequence).
        let w = 1.0 / 12.0;
        assert_close(
            &weights(AggMode::SeqMeanTokenSumNorm, None),
            &[w, w, 0.0, w, 0.0, w, w, w, 0.0],
        );
        // An explicit horizon: H = 10.
        let w = 1.0 / 30.0;
        assert_close(
            &weights(AggMode::SeqMeanTokenSumNorm, Some(10.0)),
            &[w, w, 0.0, w, 0.0, w, w, w, 0.0],
        );
    }

    #[test]
    fn the_horizon_counts_untrained_sequences() {
        // A fourth sequence of 8 untrained tokens: not in |S|, but it is the longest.
        let (mut seqs, mut mask) = layout();
        seqs.push(Sequence {
            len: 8,
            trajectory: Some(2),
        });
        mask.extend([0.0; 8]);
        let w = aggregation_weights(&seqs, &mask, AggMode::SeqMeanTokenSumNorm, None).unwrap();
        assert!((w[0] - 1.0 / 24.0).abs() < 1e-15, "{w:?}");
    }

    #[test]
    fn traj_mean_token_mean_pools_segments() {
        // Trajectory 0 has 4 trained tokens over two segments, trajectory 1 has 2; |T| = 2.
        let (a, b) = (1.0 / 8.0, 1.0 / 4.0);
        assert_close(
            &weights(AggMode::TrajMeanTokenMean, None),
            &[a, a, 0.0, a, 0.0, a, b, b, 0.0],
        );
    }

    #[test]
    fn traj_mean_token_sum() {
        let w = 1.0 / 2.0;
        assert_close(
            &weights(AggMode::TrajMeanTokenSum, None),
            &[w, w, 0.0, w, 0.0, w, w, w, 0.0],
        );
    }

    #[test]
    fn a_loss_by_hand() {
        // ℓ = 1..=9 per token; trained: 1, 2, 4 | 6 | 7, 8.
        let losses: Vec<f64> = (1..=9).map(f64::from).collect();
        let loss = |mode| -> f64 {
            weights(mode, None)
                .iter()
                .zip(&losses)
                .map(|(w, l)| w * l)
                .sum()
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-13;
        assert!(close(loss(AggMode::TokenMean), 28.0 / 6.0));
        assert!(close(
            loss(AggMode::SeqMeanTokenSum),
            (7.0 + 6.0 + 15.0) / 3.0
        ));
        assert!(close(
            loss(AggMode::SeqMeanTokenMean),
            (7.0 / 3.0 + 6.0 + 7.5) / 3.0
        ));
        assert!(close(loss(AggMode::SeqMeanTokenSumNorm), 28.0 / 3.0 / 4.0));
        assert!(close(
            loss(AggMode::TrajMeanTokenMean),
            (13.0 / 4.0 + 7.5) / 2.0
        ));
        assert!(close(loss(AggMode::TrajMeanTokenSum), (13.0 + 15.0) / 2.0));
    }

    #[test]
    fn untrained_trajectories_and_padding_do_not_count() {
        let (mut seqs, mut mask) = layout();
        // A masked trajectory and an empty padding row.
        seqs.push(Sequence {
            len: 2,
            trajectory: Some(7),
        });
        mask.extend([0.0, 0.0]);
        seqs.push(Sequence {
            len: 0,
            trajectory: None,
        });
        for mode in AggMode::ALL {
            let w = aggregation_weights(&seqs, &mask, mode, Some(3.0)).unwrap();
            let base = aggregation_weights(&layout().0, &layout().1, mode, Some(3.0)).unwrap();
            assert_eq!(w[..9], base[..], "{mode}");
            assert_eq!(w[9..], [0.0, 0.0], "{mode}");
        }
    }

    #[test]
    fn nothing_trained_gives_zero_weights() {
        let (seqs, _) = layout();
        for mode in AggMode::ALL {
            let w = aggregation_weights(&seqs, &[0.0; 9], mode, None).unwrap();
            assert!(w.iter().all(|&x| x == 0.0), "{mode}");
        }
        assert!(
            aggregation_weights::<f64>(&[], &[], AggMode::TrajMeanTokenSum, None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn trained_tokens_need_a_trajectory_in_trajectory_modes() {
        let seqs = [Sequence {
            len: 1,
            trajectory: None,
        }];
        assert!(aggregation_weights(&seqs, &[1.0], AggMode::TrajMeanTokenSum, None).is_err());
        assert!(aggregation_weights(&seqs, &[1.0], AggMode::TokenMean, None).is_ok());
    }

    #[test]
    fn names_round_trip() {
        for mode in AggMode::ALL {
            assert_eq!(AggMode::parse(mode.name()).unwrap(), mode);
        }
        assert!(AggMode::parse("token-sum").is_err());
        assert_eq!(
            AggMode::parse("traj-mean-token-sum").unwrap(),
            AggMode::TrajMeanTokenSum
        );
    }

    #[test]
    fn a_ragged_mask_is_an_error() {
        let (seqs, _) = layout();
        assert!(aggregation_weights(&seqs, &[1.0; 8], AggMode::TokenMean, None).is_err());
    }
}
