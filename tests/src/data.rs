//! Test inputs of the fused losses: the per-token inputs on the host ([`HostInputs`]) and on a
//! backend's device ([`DeviceInputs`]), and random logits.

use supo_core::backend::{GroupAdvantageConfig, TokenInputs};
use supo_core::{Backend, Element};

use crate::rng::{Rng, XorShift};

/// The per-token inputs of a fused loss, on the host.
#[derive(Debug, Clone)]
pub struct HostInputs {
    /// Targets.
    pub targets: Vec<u32>,
    /// `log π_old`.
    pub old: Vec<f32>,
    /// `log π_ref`.
    pub reference: Vec<f32>,
    /// Advantages.
    pub advantages: Vec<f32>,
    /// Aggregation weights.
    pub weights: Vec<f32>,
}

impl HostInputs {
    /// Random inputs for `n` rows around the reference log-probs `logp` (the current policy's,
    /// given a row and its target), so that ratios straddle the clip range; some weights are 0.
    pub fn random(rng: &mut Rng, vocab: usize, logp: impl Fn(usize, u32) -> f32, n: usize) -> Self {
        let targets: Vec<u32> = (0..n).map(|_| rng.below(vocab) as u32).collect();
        let old = (0..n)
            .map(|i| logp(i, targets[i]) + 0.4 * rng.normal())
            .collect();
        let reference = (0..n)
            .map(|i| logp(i, targets[i]) + 0.3 * rng.normal())
            .collect();
        let advantages = (0..n).map(|_| 2.0 * rng.normal()).collect();
        let weights = (0..n)
            .map(|_| {
                if rng.unit() < 0.2 {
                    0.0
                } else {
                    rng.uniform(0.01, 0.1)
                }
            })
            .collect();
        HostInputs {
            targets,
            old,
            reference,
            advantages,
            weights,
        }
    }
}

/// Device copies of [`HostInputs`].
pub struct DeviceInputs<B: Backend> {
    /// Targets.
    pub targets: B::Buffer<u32>,
    old: B::Buffer<f32>,
    reference: B::Buffer<f32>,
    advantages: B::Buffer<f32>,
    weights: B::Buffer<f32>,
}

impl<B: Backend> DeviceInputs<B> {
    /// Uploads host inputs.
    pub fn upload(b: &B, h: &HostInputs) -> Result<Self, String> {
        let e = |e: supo_core::Error| e.to_string();
        Ok(DeviceInputs {
            targets: b.upload(&h.targets).map_err(e)?,
            old: b.upload(&h.old).map_err(e)?,
            reference: b.upload(&h.reference).map_err(e)?,
            advantages: b.upload(&h.advantages).map_err(e)?,
            weights: b.upload(&h.weights).map_err(e)?,
        })
    }

    /// The borrowed view the fused losses take, with or without the reference log-probs.
    pub fn view(&self, with_ref: bool) -> TokenInputs<'_, B> {
        TokenInputs {
            targets: &self.targets,
            old_logprobs: &self.old,
            ref_logprobs: with_ref.then_some(&self.reference),
            advantages: &self.advantages,
            weights: &self.weights,
        }
    }
}

/// `n` aggregation weights: every fifth (index 3 mod 5) zero, the others in `[0.1, 1.1)`.
pub fn weights_every_fifth_zero(rng: &mut XorShift, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            if i % 5 == 3 {
                0.0
            } else {
                0.1 + rng.unit().abs()
            }
        })
        .collect()
}

/// The group-advantage settings the suites cycle through: std-normalisation on and off, masked
/// members in the group statistics or not (ε = 1e-6).
pub fn group_advantage_configs() -> [GroupAdvantageConfig; 4] {
    [(true, true), (true, false), (false, true), (false, false)].map(
        |(norm_by_std, masked_in_group_stats)| GroupAdvantageConfig {
            norm_by_std,
            eps: 1e-6,
            masked_in_group_stats,
        },
    )
}

/// Random logits of a shape; `extreme` puts some at ±1e4.
pub fn random_logits<T: Element>(rng: &mut Rng, n: usize, v: usize, extreme: bool) -> Vec<T> {
    (0..n * v)
        .map(|_| {
            let x = if extreme && rng.unit() < 0.01 {
                if rng.unit() < 0.5 {
                    1e4
                } else {
                    -1e4
                }
            } else {
                3.0 * rng.normal()
            };
            T::from_f32(x)
        })
        .collect()
}
