//! `supo train`: SUPO and the GRPO baselines on the built-in model (see [`crate::train`]).

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::train::{self, Preset, Report, RunPaths, TrainConfig};

/// Arguments of `supo train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Named configuration.
    #[arg(long, value_enum, default_value = "default")]
    pub preset: Preset,
    /// Seed of weights, tasks and sampling (overrides the preset's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// RL steps per arm (overrides the preset's).
    #[arg(long)]
    pub rl_steps: Option<usize>,
    /// Warm-start steps (overrides the preset's).
    #[arg(long)]
    pub warm_steps: Option<usize>,
    /// Warm-start learning rate (overrides the preset's).
    #[arg(long)]
    pub warm_lr: Option<f32>,
    /// RL learning rate (overrides the preset's).
    #[arg(long)]
    pub rl_lr: Option<f32>,
    /// Folder for checkpoints and learning curves.
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
    /// Where to write the JSON report (default: OUT/report.json).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Continue from the checkpoints in OUT.
    #[arg(long)]
    pub resume: bool,
}

/// Runs `supo train`.
pub fn run(args: &TrainArgs) -> Result<(), CliError> {
    let mut config = TrainConfig::preset(args.preset);
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if let Some(steps) = args.rl_steps {
        config.rl_steps = steps;
    }
    if let Some(lr) = args.warm_lr {
        config.warm_lr = lr;
    }
    if let Some(lr) = args.rl_lr {
        config.rl_lr = lr;
    }
    if let Some(steps) = args.warm_steps {
        config.warm_steps = steps;
    }
    config.validate().map_err(CliError::Input)?;
    let paths = RunPaths {
        report: args
            .report
            .clone()
            .unwrap_or_else(|| args.out.join("report.json")),
        out: args.out.clone(),
    };
    let report = train::run(&config, &paths, args.resume).map_err(CliError::Failure)?;
    print!("{}", table(&report));
    println!(
        "report: {}   curves: {}",
        paths.report.display(),
        paths.out.join("curves.png").display()
    );
    Ok(())
}

/// The report as a text table.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(
        "arm        W    S  success before -> after  mean ctx  peak ctx  summaries  tool calls\n",
    );
    for a in &r.arms {
        s.push_str(&format!(
            "{:<9} {:>3} {:>3}  {:>14.3} -> {:<5.3}  {:>8.1}  {:>8}  {:>9.2}  {:>10.2}\n",
            a.name,
            a.working_context,
            a.max_summaries,
            a.success_before,
            a.success_after,
            a.mean_working_context,
            a.peak_working_context,
            a.summaries_per_episode,
            a.tool_calls_per_episode
        ));
    }
    s.push_str(&format!("bound L + |v_sum| + L_A = {}\n", r.bound));
    let scaling: Vec<String> = r
        .test_time_scaling
        .iter()
        .map(|p| format!("S={}: {:.3}", p.max_summaries, p.success))
        .collect();
    s.push_str(&format!(
        "test-time scaling (harder split): {}\n",
        scaling.join(", ")
    ));
    s.push_str(&format!(
        "queried facts kept in summaries: {:.3} -> {:.3}\n",
        r.facts_kept_in_summaries.start, r.facts_kept_in_summaries.end
    ));
    s.push_str(&format!(
        "time: warm start {:.0} s, total {:.0} s\n",
        r.warm_seconds, r.total_seconds
    ));
    s
}
