//! The `supo loss` contract's input document (the design card's "Command-line contracts"):
//! parsed once here for the command-line tool and the Python binding alike.
//!
//! ```
//! use supo_core::estimator::contract::ContractInput;
//! # fn main() -> Result<(), supo_core::Error> {
//! let doc: ContractInput = serde_json::from_str(
//!     r#"{"config": {"agg": "traj-mean-token-mean"},
//!         "trajectories": [{"group": 7, "reward": 1.0, "finish": "Answered",
//!                           "segments": [{"logp": [-0.5], "old_logp": [-0.6], "mask": [1]}]}]}"#,
//! ).unwrap();
//! let (batch, config) = doc.into_batch()?;
//! assert_eq!(batch.trajectories[0].group, "7");
//! assert!(batch.loss(&config)?.loss.is_finite());
//! # Ok(()) }
//! ```

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde::Deserialize;

use super::{
    AdvantageConfig, AggMode, EstimatorConfig, KlType, LogProbBatch, LogProbSegment,
    LogProbTrajectory, LossConfig,
};
use crate::error::Result;
use crate::trajectory::FinishReason;

/// The whole input document: an optional `config` and the `trajectories`.
#[derive(Debug, Deserialize)]
pub struct ContractInput {
    #[serde(default)]
    config: Option<ContractConfig>,
    trajectories: Vec<TrajectoryJson>,
}

/// The `config` object; a missing field takes the paper's default.
#[derive(Debug, Deserialize)]
pub struct ContractConfig {
    clip_low: Option<f64>,
    clip_high: Option<f64>,
    #[serde(default, deserialize_with = "explicit_null")]
    dual_clip: Option<Option<f64>>,
    agg: Option<String>,
    norm_adv_by_std: Option<bool>,
    eps: Option<f64>,
    masked_finish: Option<Vec<String>>,
    masked_in_group_stats: Option<bool>,
    kl_coef: Option<f64>,
    kl_type: Option<String>,
    norm_length: Option<f64>,
    /// Fields the contract does not define (ignored; see [`ContractInput::ignored_fields`]).
    #[serde(flatten)]
    unknown: BTreeMap<String, serde_json::Value>,
}

/// Tells a present `null` (`Some(None)`) from a missing field (`None`).
fn explicit_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
struct TrajectoryJson {
    group: GroupId,
    reward: f64,
    finish: String,
    segments: Vec<SegmentJson>,
}

/// One segment; `mask` entries may be 0/1 numbers or booleans.
#[derive(Debug, Deserialize)]
struct SegmentJson {
    logp: Vec<f64>,
    old_logp: Vec<f64>,
    #[serde(default)]
    ref_logp: Option<Vec<f64>>,
    mask: Vec<MaskJson>,
}

/// A mask entry: `1`, `0`, `1.0`, `true`, … (anything else is rejected by validation).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MaskJson {
    Flag(bool),
    Number(f64),
}

impl MaskJson {
    /// 0 or 1, or an out-of-range value validation rejects with the segment's position.
    fn value(&self) -> u8 {
        match *self {
            MaskJson::Flag(b) => u8::from(b),
            MaskJson::Number(x) => {
                if x == 0.0 {
                    0
                } else if x == 1.0 {
                    1
                } else {
                    u8::MAX
                }
            }
        }
    }
}

/// Group ids may be strings or numbers.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GroupId {
    Text(String),
    Number(serde_json::Number),
}

impl ContractConfig {
    /// Names of the fields the contract does not define (they are ignored).
    pub fn ignored_fields(&self) -> Vec<&str> {
        self.unknown.keys().map(String::as_str).collect()
    }

    /// The estimator configuration (unknown finish reasons, modes and KL types are errors).
    pub fn into_config(self) -> Result<EstimatorConfig> {
        let d = EstimatorConfig::default();
        let masked_finish = match self.masked_finish {
            Some(names) => names
                .iter()
                .map(|n| FinishReason::parse(n))
                .collect::<Result<Vec<_>>>()?,
            None => d.masked_finish,
        };
        Ok(EstimatorConfig {
            loss: LossConfig {
                clip_low: self.clip_low.unwrap_or(d.loss.clip_low),
                clip_high: self.clip_high.unwrap_or(d.loss.clip_high),
                dual_clip: self.dual_clip.unwrap_or(d.loss.dual_clip),
                kl_coef: self.kl_coef.unwrap_or(d.loss.kl_coef),
                kl_type: match self.kl_type {
                    Some(k) => KlType::parse(&k)?,
                    None => d.loss.kl_type,
                },
                ..d.loss
            },
            advantage: AdvantageConfig {
                norm_by_std: self.norm_adv_by_std.unwrap_or(d.advantage.norm_by_std),
                eps: self.eps.unwrap_or(d.advantage.eps),
                masked_in_group_stats: self
                    .masked_in_group_stats
                    .unwrap_or(d.advantage.masked_in_group_stats),
                ..d.advantage
            },
            agg: match self.agg {
                Some(a) => AggMode::parse(&a)?,
                None => d.agg,
            },
            norm_length: self.norm_length,
            masked_finish,
        })
    }
}

impl ContractInput {
    /// Names of the `config` fields the contract does not define (they are ignored).
    pub fn ignored_fields(&self) -> Vec<&str> {
        self.config
            .as_ref()
            .map(ContractConfig::ignored_fields)
            .unwrap_or_default()
    }

    /// The batch and its configuration (unknown finish reasons, modes and KL types are
    /// errors; shapes and values are checked later, by [`LogProbBatch::loss`]).
    pub fn into_batch(self) -> Result<(LogProbBatch, EstimatorConfig)> {
        let config = match self.config {
            Some(c) => c.into_config()?,
            None => EstimatorConfig::default(),
        };
        let trajectories = self
            .trajectories
            .into_iter()
            .map(|t| {
                Ok(LogProbTrajectory {
                    group: match t.group {
                        GroupId::Text(s) => s,
                        GroupId::Number(n) => n.to_string(),
                    },
                    reward: t.reward,
                    finish: FinishReason::parse(&t.finish)?,
                    segments: t
                        .segments
                        .into_iter()
                        .map(|s| LogProbSegment {
                            logp: s.logp,
                            old_logp: s.old_logp,
                            ref_logp: s.ref_logp,
                            mask: s.mask.iter().map(MaskJson::value).collect(),
                        })
                        .collect(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((LogProbBatch { trajectories }, config))
    }
}
