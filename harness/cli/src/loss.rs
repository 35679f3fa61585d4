//! `supo loss --input BATCH.json`: the SUPO estimator on log-probs, as JSON (the command-line
//! contract in the design card), so any language can cross-check it.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use supo_core::backend::GroupAdvantageConfig;
use supo_core::estimator::advantage::dense_group_ids;
use supo_core::estimator::contract::ContractInput;
use supo_core::estimator::{EstimatorConfig, LogProbBatch, LogProbLoss};
use supo_core::Backend;

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

/// Parses a `supo loss` input document into a batch and its configuration (the parser is
/// the core's [`ContractInput`]; unknown config fields get a warning on standard error).
pub fn parse_input(text: &str) -> Result<(LogProbBatch, EstimatorConfig), CliError> {
    let input: ContractInput =
        serde_json::from_str(text).map_err(|e| CliError::Input(format!("bad batch JSON: {e}")))?;
    for name in input.ignored_fields() {
        errln!("supo: ignoring unknown config field {name:?}")?;
    }
    Ok(input.into_batch()?)
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
