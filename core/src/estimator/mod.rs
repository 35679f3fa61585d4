//! The SUPO estimator: trajectory-level group advantages, overlong masking, the clipped
//! surrogate with optional dual clip, KL penalties, entropy bonus, verl's aggregation modes and
//! two trajectory-balanced ones.
//!
//! * [`advantage`] — Eq. 3 (and the per-segment Eq. 4 ablation) over a batch of rewards.
//! * [`surrogate`] — the per-token loss terms and their exact derivatives w.r.t. `log π`,
//!   generic over the float type: f64 for the [`LogProbBatch`] contract, f32 in the kernels.
//! * [`aggregate`] — turns agent masks, the segments' trajectories and the aggregation mode into
//!   per-token weights, so that every aggregation mode is a weighted sum `Σ_t w_t ℓ_t` a backend
//!   can compute in one pass.
//! * [`batch`] — [`LogProbBatch`] (the `supo loss` contract) and [`TrainingBatch`] (one row
//!   per summary segment, ready for a [`Backend`](crate::Backend)).
//! * `contract` (feature `json`) — the `supo loss` contract's input document.

pub mod advantage;
pub mod aggregate;
pub mod batch;
#[cfg(feature = "json")]
pub mod contract;
pub mod surrogate;

pub use aggregate::{aggregation_weights, AggMode, Sequence};
pub use batch::{LogProbBatch, LogProbLoss, LogProbSegment, LogProbTrajectory, TrainingBatch};

use crate::error::{Error, Result};
use crate::trajectory::FinishReason;
use alloc::vec;
use alloc::vec::Vec;

/// The KL estimator between the policy and a reference policy (verl's `kl_penalty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum KlType {
    /// `log π − log π_ref`.
    #[cfg_attr(feature = "serde", serde(rename = "k1"))]
    K1,
    /// `½ (log π − log π_ref)²`.
    #[cfg_attr(feature = "serde", serde(rename = "k2"))]
    K2,
    /// k3: `exp(x) − x − 1` with `x = log π_ref − log π` clamped to ±20, the result to ±10.
    #[cfg_attr(feature = "serde", serde(rename = "low_var_kl"))]
    LowVarKl,
}

impl KlType {
    /// Parses verl's names: `k1`/`kl`, `k2`/`mse`, `low_var_kl`/`k3`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "k1" | "kl" => Ok(KlType::K1),
            "k2" | "mse" => Ok(KlType::K2),
            "low_var_kl" | "k3" => Ok(KlType::LowVarKl),
            other => Err(Error::InvalidConfig(alloc::format!(
                "unknown kl_type {other:?} (expected k1, k2 or low_var_kl)"
            ))),
        }
    }
}

/// Per-token loss settings shared by every backend.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LossConfig {
    /// `ε_low`: the ratio is clipped below at `1 − ε_low` (paper: 0.20).
    pub clip_low: f64,
    /// `ε_high`: the ratio is clipped above at `1 + ε_high` (clip-higher, paper: 0.28).
    pub clip_high: f64,
    /// Dual clip constant `c > 1` for negative advantages (verl's `clip_ratio_c`), or `None`.
    pub dual_clip: Option<f64>,
    /// Weight of the KL penalty (paper: 0).
    pub kl_coef: f64,
    /// Which KL estimator.
    pub kl_type: KlType,
    /// Weight of the entropy bonus (paper: 0); only the logits-level losses can apply it.
    pub entropy_coef: f64,
    /// Sampling temperature the logits are divided by.
    pub temperature: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            clip_low: 0.2,
            clip_high: 0.28,
            dual_clip: Some(3.0),
            kl_coef: 0.0,
            kl_type: KlType::LowVarKl,
            entropy_coef: 0.0,
            temperature: 1.0,
        }
    }
}

impl LossConfig {
    /// Rejects values outside their documented ranges.
    pub fn validate(&self) -> Result<()> {
        let finite = |name: &str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(Error::InvalidConfig(alloc::format!(
                    "{name} must be finite, got {v}"
                )))
            }
        };
        finite("clip_low", self.clip_low)?;
        finite("clip_high", self.clip_high)?;
        finite("kl_coef", self.kl_coef)?;
        finite("entropy_coef", self.entropy_coef)?;
        if !(0.0..1.0).contains(&self.clip_low) {
            return Err(Error::InvalidConfig(alloc::format!(
                "clip_low must be in [0, 1), got {}",
                self.clip_low
            )));
        }
        if self.clip_high < 0.0 {
            return Err(Error::InvalidConfig(alloc::format!(
                "clip_high must be >= 0, got {}",
                self.clip_high
            )));
        }
        if let Some(c) = self.dual_clip {
            if !(c.is_finite() && c > 1.0) {
                return Err(Error::InvalidConfig(alloc::format!(
                    "dual_clip must be > 1, got {c}"
                )));
            }
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::InvalidConfig(alloc::format!(
                "temperature must be > 0, got {}",
                self.temperature
            )));
        }
        Ok(())
    }
}

/// Whether advantages are computed per trajectory (Eq. 3, SUPO) or per segment (Eq. 4, the
/// paper's ablation: the reward repeated once per segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AdvantageLevel {
    /// One sample per trajectory (the default).
    #[default]
    Trajectory,
    /// One sample per summary segment.
    Segment,
}

/// Group-advantage settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AdvantageConfig {
    /// Divide by the group std (`false`: Dr. GRPO).
    pub norm_by_std: bool,
    /// `ε` added to the std (1e-6).
    pub eps: f64,
    /// Whether masked (overlong) trajectories count in their group's mean and std.
    pub masked_in_group_stats: bool,
    /// Trajectory-level (Eq. 3) or segment-level (Eq. 4).
    pub level: AdvantageLevel,
}

impl Default for AdvantageConfig {
    fn default() -> Self {
        AdvantageConfig {
            norm_by_std: true,
            eps: 1e-6,
            masked_in_group_stats: true,
            level: AdvantageLevel::Trajectory,
        }
    }
}

/// Everything the estimator needs: advantages, masking, the surrogate and the aggregation.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EstimatorConfig {
    /// Per-token loss settings.
    pub loss: LossConfig,
    /// Group advantage settings.
    pub advantage: AdvantageConfig,
    /// How per-token losses are aggregated.
    pub agg: AggMode,
    /// Horizon of [`AggMode::SeqMeanTokenSumNorm`] (verl's `loss_scale_factor`); `None` uses
    /// the longest segment's length (verl's padded response length).
    pub norm_length: Option<f64>,
    /// Finish reasons that make a trajectory overlong: its tokens get weight 0.
    pub masked_finish: Vec<FinishReason>,
}

impl Default for EstimatorConfig {
    fn default() -> Self {
        EstimatorConfig {
            loss: LossConfig::default(),
            advantage: AdvantageConfig::default(),
            agg: AggMode::TokenMean,
            norm_length: None,
            masked_finish: vec![
                FinishReason::MaxSteps,
                FinishReason::MaxSummaries,
                FinishReason::ContextOverflow,
            ],
        }
    }
}

impl EstimatorConfig {
    /// Whether a trajectory that ended with `finish` is masked out of the loss.
    pub fn is_masked(&self, finish: FinishReason) -> bool {
        self.masked_finish.contains(&finish)
    }

    /// Rejects values outside their documented ranges.
    pub fn validate(&self) -> Result<()> {
        self.loss.validate()?;
        if !(self.advantage.eps.is_finite() && self.advantage.eps >= 0.0) {
            return Err(Error::InvalidConfig(alloc::format!(
                "eps must be >= 0, got {}",
                self.advantage.eps
            )));
        }
        if let Some(n) = self.norm_length {
            if !(n.is_finite() && n > 0.0) {
                return Err(Error::InvalidConfig(alloc::format!(
                    "norm_length must be > 0, got {n}"
                )));
            }
        }
        Ok(())
    }
}
