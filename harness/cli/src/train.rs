//! `supo train`: SUPO and the GRPO baselines on the built-in model (see [`supo_train`]).

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::CliError;
use supo_train::{self as train, Preset, Report, RunPaths, TrainConfig};

/// Arguments of `supo train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Named configuration.
    #[arg(long, default_value = "default", value_parser = crate::named::<Preset>(&Preset::NAMES))]
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
    /// Loss aggregation of the RL arms (overrides the preset's, `token-mean`).
    #[arg(long, value_parser = crate::agg_mode())]
    pub agg: Option<supo_core::estimator::AggMode>,
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
    if let Some(agg) = args.agg {
        config.agg = agg;
    }
    config.validate().map_err(CliError::Input)?;
    let paths = RunPaths {
        report: args
            .report
            .clone()
            .unwrap_or_else(|| args.out.join("report.json")),
        out: args.out.clone(),
    };
    let report = train::run(&config, &paths, args.resume, &mut Bars::default())
        .map_err(CliError::Failure)?;
    crate::plot::learning_curves(&report, &paths.out.join("curves.png"))
        .map_err(CliError::Failure)?;
    crate::console::out(format_args!("{}", table(&report)))?;
    outln!(
        "report: {}   curves: {}",
        paths.report.display(),
        paths.out.join("curves.png").display()
    )
}

/// Progress bars on standard error: one per phase, left on screen when it ends.
#[derive(Default)]
struct Bars(Option<ProgressBar>);

impl train::Progress for Bars {
    fn phase(&mut self, name: &str, len: usize, done: usize) {
        if let Some(previous) = self.0.take() {
            previous.finish();
        }
        let bar = ProgressBar::new(len as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg} ({elapsed})")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        bar.set_position(done as u64);
        self.0 = Some(bar);
    }

    fn step(&mut self, status: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(status.to_string());
            bar.inc(1);
        }
    }

    fn note(&mut self, line: &str) {
        if let Some(bar) = self.0.take() {
            bar.finish();
        }
        crate::console::err_or_exit(format_args!("{line}\n"));
    }
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
