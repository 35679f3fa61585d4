//! `supo loss --input BATCH.json`: the SUPO estimator on log-probs, as JSON (the command-line
//! contract in the design card), so any language can cross-check it.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};
use supo_core::backend::GroupAdvantageConfig;
use supo_core::estimator::advantage::dense_group_ids;
use supo_core::estimator::{
    AdvantageConfig, AggMode, EstimatorConfig, KlType, LogProbBatch, LogProbLoss, LogProbSegment,
    LossConfig,
};
use supo_core::Backend;
use supo_core::FinishReason;

use super::backend::BackendKind;
use super::CliError;

/// Arguments of `supo loss`.
#[derive(Debug, Args)]
pub struct LossArgs {
    /// The batch (JSON); `-` reads standard input.
    #[arg(long)]
    pub input: PathBuf,
    /// Compute the group advantages on this backend (in f32) instead of the host's float64
    /// reference; the surrogate, KL and aggregation stay on the host in f64.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
}

/// The `config` object of the contract; a missing field takes the paper's default.
#[derive(Debug, Deserialize)]
struct ConfigJson {
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
    /// Fields the contract does not define: ignored, with a warning.
    #[serde(flatten)]
    unknown: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Tells a present `null` (`Some(None)`) from a missing field (`None`).
fn explicit_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
struct InputJson {
    #[serde(default)]
    config: Option<ConfigJson>,
    trajectories: Vec<TrajectoryJson>,
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

#[derive(Debug, Serialize)]
struct OutputJson<'a> {
    advantages: &'a [f64],
    loss: f64,
    pg_loss: f64,
    kl_loss: f64,
    clipfrac: f64,
    clipfrac_lower: f64,
    approx_kl: f64,
    grad_logp: &'a [Vec<Vec<f64>>],
}

impl ConfigJson {
    fn into_config(self) -> Result<EstimatorConfig, CliError> {
        for name in self.unknown.keys() {
            errln!("supo: ignoring unknown config field {name:?}")?;
        }
        let d = EstimatorConfig::default();
        let masked_finish = match self.masked_finish {
            Some(names) => names
                .iter()
                .map(|n| FinishReason::parse(n))
                .collect::<Result<Vec<_>, _>>()?,
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

/// Parses a `supo loss` input document into a batch and its configuration.
pub fn parse_input(text: &str) -> Result<(LogProbBatch, EstimatorConfig), CliError> {
    let input: InputJson =
        serde_json::from_str(text).map_err(|e| CliError::Input(format!("bad batch JSON: {e}")))?;
    let config = match input.config {
        Some(c) => c.into_config()?,
        None => EstimatorConfig::default(),
    };
    let trajectories = input
        .trajectories
        .into_iter()
        .map(|t| {
            Ok(supo_core::estimator::LogProbTrajectory {
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
        .collect::<Result<Vec<_>, CliError>>()?;
    Ok((LogProbBatch { trajectories }, config))
}

/// Renders the contract's output document.
pub fn render_output(out: &LogProbLoss) -> Result<String, CliError> {
    serde_json::to_string(&OutputJson {
        advantages: &out.advantages,
        loss: out.loss,
        pg_loss: out.pg_loss,
        kl_loss: out.kl_loss,
        clipfrac: out.clipfrac,
        clipfrac_lower: out.clipfrac_lower,
        approx_kl: out.approx_kl,
        grad_logp: &out.grad_logp,
    })
    .map_err(|e| CliError::Failure(format!("cannot render the output: {e}")))
}

/// Runs `supo loss`.
pub fn run(args: &LossArgs) -> Result<(), CliError> {
    let text = crate::read_input(&args.input)?;
    let (batch, config) = parse_input(&text)?;
    let out = match args.backend {
        None => batch.loss(&config)?,
        Some(kind) => {
            let advantages =
                crate::with_backend!(kind, |b| device_advantages(&b, &batch, &config))?;
            batch.loss_with_advantages(&config, advantages)?
        }
    };
    outln!("{}", render_output(&out)?)?;
    Ok(())
}

/// Eq. 3 on a backend: `group_advantages` over the trajectories' rewards, groups and masks.
fn device_advantages<B: Backend>(
    b: &B,
    batch: &LogProbBatch,
    config: &EstimatorConfig,
) -> Result<Vec<f64>, CliError> {
    let groups: Vec<&str> = batch
        .trajectories
        .iter()
        .map(|t| t.group.as_str())
        .collect();
    let rewards: Vec<f32> = batch.trajectories.iter().map(|t| t.reward as f32).collect();
    let masked: Vec<u32> = batch.masked(config).into_iter().map(u32::from).collect();
    let settings = GroupAdvantageConfig {
        norm_by_std: config.advantage.norm_by_std,
        eps: config.advantage.eps as f32,
        masked_in_group_stats: config.advantage.masked_in_group_stats,
    };
    let advantages = b.group_advantages(
        &b.upload(&rewards)?,
        &b.upload(&dense_group_ids(&groups))?,
        &b.upload(&masked)?,
        &settings,
    )?;
    Ok(b.download(&advantages)?
        .into_iter()
        .map(f64::from)
        .collect())
}
