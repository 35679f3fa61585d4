//! # supo-train
//!
//! SUPO training end to end on the CPU, as a library: the built-in transformer policy
//! ([`builtin`]: model, word tokenizer, checkpoints), the [`ledger`] — a
//! long-horizon task whose facts do not fit in the working context — and the trainer below that
//! runs SUPO against the GRPO baselines and writes the report. `supo train` is its command line
//! (it adds progress bars and the learning-curve plot); researchers who change the task, the
//! model or the estimator configuration call [`run`] from code. No features; the RL gradient
//! comes from `supo-core`.
//!
//! ```no_run
//! use supo_train::{run, Preset, Quiet, RunPaths, TrainConfig};
//! # fn main() -> Result<(), String> {
//! let config = TrainConfig::preset(Preset::Quick); // under 2 minutes on 2 cores
//! let paths = RunPaths::in_folder("runs/quick".into());
//! let report = run(&config, &paths, false, &mut Quiet)?;
//! println!("SUPO success after RL: {:.3}", report.arms[1].success_after);
//! # Ok(()) }
//! ```
//!
//! `examples/quick.rs` runs the quick preset with a line of progress per phase
//! (`cargo run --release -p supo-train --example quick`).
//!
//! ## The experiment
//!
//! 1. **Warm start.** The model learns the *format* of the task from the demonstrator
//!    ([`rollout::Actor::Demonstrator`]): read pages in order, answer from what it sees, write
//!    a summary as `progress + facts` — with the facts chosen at random, so which facts to keep
//!    is left to RL.
//! 2. **RL, three arms from the same warm start, same seeds, same budget:**
//!    `grpo_w` (working context `W`, no summaries: a full context ends the episode), `supo_w`
//!    (`W`, up to `S` summaries) and `grpo_big` (`(S+1)·W`, no summaries). Each step samples
//!    `rl_tasks` tasks and `group_size` rollouts of each; advantages, masks and the loss are
//!    `supo-core`'s ([`learn::policy_step`]).
//! 3. **Evaluation** on held-out test tasks (greedy), test-time scaling of `supo_w` with
//!    `S, 2S, 4S` summaries on the harder split, and the share of queried facts kept in
//!    summaries at the start and end of RL.
//!
//! Checkpoints are written atomically after the warm start and every `checkpoint_every` RL
//! steps; `resume` continues from them and gives the same result as an uninterrupted run.

#![warn(missing_docs)]

pub mod builtin;
pub mod learn;
pub mod ledger;
pub mod rollout;

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use supo_core::estimator::{AggMode, EstimatorConfig};

use crate::builtin::{BuiltinModel, Checkpoint, TransformerConfig};
use crate::ledger::{split, LedgerConfig, LedgerTask, LedgerVocab};
use learn::{AdamW, PolicyStepReport};
use rollout::{run_episodes, Actor, Episode, EpisodeRules, EpisodeStats};
use supo_core::fs::write_atomic;

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Seeds everything: weights, tasks, sampling.
    pub seed: u64,
    /// The task family.
    pub ledger: LedgerConfig,
    /// The network (its `vocab` is set from the ledger).
    pub model: TransformerConfig,
    /// `W`.
    pub working_context: usize,
    /// `L` of the SUPO arm.
    pub threshold: usize,
    /// `S` of the SUPO arm (the big baseline gets `(S+1)·W`).
    pub max_summaries: usize,
    /// `H`, the most agent steps of an episode.
    pub max_steps: usize,
    /// Page counts of training and test tasks.
    pub pages: [usize; 2],
    /// Page counts of the harder split (test-time scaling).
    pub hard_pages: [usize; 2],
    /// Page counts the warm start's demonstrations cover.
    pub demo_pages: [usize; 2],
    /// Training tasks (RL samples from them).
    pub train_tasks: usize,
    /// Held-out test tasks.
    pub test_tasks: usize,
    /// Held-out harder tasks.
    pub hard_tasks: usize,
    /// Warm-start steps.
    pub warm_steps: usize,
    /// Demonstrations per warm-start step.
    pub warm_batch: usize,
    /// Warm-start learning rate.
    pub warm_lr: f32,
    /// RL steps per arm.
    pub rl_steps: usize,
    /// Tasks per RL step.
    pub rl_tasks: usize,
    /// Rollouts per task (the GRPO group).
    pub group_size: usize,
    /// RL learning rate.
    pub rl_lr: f32,
    /// Sampling temperature of RL rollouts (evaluation is greedy).
    pub temperature: f32,
    /// RL steps between checkpoints.
    pub checkpoint_every: usize,
    /// How the RL loss aggregates per-token losses (the paper's `token-mean` by default;
    /// `traj-mean-token-sum` and `traj-mean-token-mean` weigh every episode alike however many
    /// segments it was cut into).
    #[serde(default)]
    pub agg: AggMode,
}

/// Named configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// The full run behind the README's figures (5 to 9 minutes on 2 cores).
    Default,
    /// A small run for the test suite (under 2 minutes on 2 cores): the warm start learns the
    /// task; 40 RL steps exercise every arm, but SUPO's gains need the default's 500.
    Quick,
}

impl Preset {
    /// The presets' names, as `supo train --preset` takes them.
    pub const NAMES: [&'static str; 2] = ["default", "quick"];
}

impl std::str::FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> Result<Preset, String> {
        match s {
            "default" => Ok(Preset::Default),
            "quick" => Ok(Preset::Quick),
            _ => Err(format!("unknown preset {s:?} (one of: default, quick)")),
        }
    }
}

impl TrainConfig {
    /// The configuration of a preset.
    pub fn preset(preset: Preset) -> TrainConfig {
        let ledger = LedgerConfig::default();
        let vocab = LedgerVocab::new(ledger.clone()).words().len();
        let base = TrainConfig {
            seed: 0,
            ledger,
            model: BuiltinModel::default_config(vocab),
            working_context: 64,
            threshold: 52,
            max_summaries: 2,
            max_steps: 40,
            pages: [5, 9],
            hard_pages: [10, 18],
            demo_pages: [3, 18],
            train_tasks: 4096,
            test_tasks: 256,
            hard_tasks: 256,
            warm_steps: 1000,
            warm_batch: 32,
            warm_lr: 6e-3,
            rl_steps: 500,
            rl_tasks: 16,
            group_size: 8,
            rl_lr: 1e-3,
            temperature: 1.0,
            checkpoint_every: 10,
            agg: AggMode::TokenMean,
        };
        match preset {
            Preset::Default => base,
            Preset::Quick => TrainConfig {
                test_tasks: 128,
                hard_tasks: 128,
                warm_steps: 700,
                rl_steps: 40,
                ..base
            },
        }
    }

    /// Checks that the configuration can run.
    pub fn validate(&self) -> Result<(), String> {
        self.ledger.validate()?;
        for [a, b] in [self.pages, self.hard_pages, self.demo_pages] {
            if a > b {
                return Err(format!("page range {a}..={b} is empty"));
            }
            self.ledger.check_pages(b)?;
        }
        let arms = self.arms();
        let need = arms
            .iter()
            .map(|a| a.rules.context.working_context + a.rules.max_generation())
            .max()
            .unwrap_or(0);
        if self.model.max_positions < need {
            return Err(format!(
                "the model attends to {} positions; the arms need {need}",
                self.model.max_positions
            ));
        }
        for a in &arms {
            a.rules.context.validate().map_err(|e| e.to_string())?;
        }
        if self.group_size < 2 || self.rl_tasks == 0 || self.warm_batch == 0 {
            return Err("group_size must be at least 2, rl_tasks and warm_batch positive".into());
        }
        if self.test_tasks == 0 || self.hard_tasks == 0 || self.train_tasks == 0 {
            return Err("every split needs tasks".into());
        }
        Ok(())
    }

    /// The three arms.
    pub fn arms(&self) -> Vec<Arm> {
        let (w, s, h) = (self.working_context, self.max_summaries, self.max_steps);
        vec![
            Arm {
                name: "grpo_w".into(),
                rules: EpisodeRules::no_summaries(w, h),
            },
            Arm {
                name: "supo_w".into(),
                rules: EpisodeRules::supo(w, self.threshold, s, h),
            },
            Arm {
                name: "grpo_big".into(),
                rules: EpisodeRules::no_summaries((s + 1) * w, h),
            },
        ]
    }
}

/// One arm of the comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Arm {
    /// `grpo_w`, `supo_w` or `grpo_big`.
    pub name: String,
    /// Its working-context rule.
    pub rules: EpisodeRules,
}

/// One RL step of an arm, for the learning curves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The RL step (1-based).
    pub step: usize,
    /// Mean reward of the step's rollouts.
    pub reward: f64,
    /// Success rate of the step's rollouts.
    pub success: f64,
    /// Share of queried facts kept by the step's summaries (SUPO only).
    pub facts_kept: Option<f64>,
    /// The update.
    pub update: PolicyStepReport,
}

/// One arm in the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    /// `grpo_w`, `supo_w` or `grpo_big`.
    pub name: String,
    /// `W` of the arm.
    pub working_context: usize,
    /// `L` of the arm.
    pub threshold: usize,
    /// `S` of the arm.
    pub max_summaries: usize,
    /// Test success after the warm start, before RL.
    pub success_before: f64,
    /// Test success after RL.
    pub success_after: f64,
    /// Test mean reward before RL.
    pub reward_before: f64,
    /// Test mean reward after RL.
    pub reward_after: f64,
    /// Mean working context over the test generations after RL.
    pub mean_working_context: f64,
    /// The largest working context of any test episode after RL.
    pub peak_working_context: usize,
    /// Summaries per test episode after RL.
    pub summaries_per_episode: f64,
    /// `read` calls per test episode after RL.
    pub tool_calls_per_episode: f64,
    /// Seconds of RL.
    pub rl_seconds: f64,
    /// Per-step training curve.
    pub curve: Vec<CurvePoint>,
}

/// Test-time scaling: the SUPO policy on the harder split with more summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScalingPoint {
    /// `S` at test time.
    pub max_summaries: usize,
    /// Success on the harder split.
    pub success: f64,
}

/// The share of queried facts (visible when summarizing) that SUPO's summaries kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FactsKept {
    /// After the warm start.
    pub start: f64,
    /// After RL.
    pub end: f64,
}

/// The report of `supo train`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The arms.
    pub arms: Vec<ArmReport>,
    /// `L + |v_sum| + L_A` of the SUPO arm.
    pub bound: usize,
    /// SUPO on the harder split with `S`, `2S`, `4S` summaries.
    pub test_time_scaling: Vec<ScalingPoint>,
    /// Facts kept in SUPO's summaries, on the test split.
    pub facts_kept_in_summaries: FactsKept,
    /// Warm-start cross-entropy, first and last step.
    pub warm_start_loss: [f64; 2],
    /// Seconds of the warm start.
    pub warm_seconds: f64,
    /// Seconds of the whole run.
    pub total_seconds: f64,
    /// The configuration.
    pub config: Option<TrainConfig>,
}

/// Where a run writes.
#[derive(Clone, Debug)]
pub struct RunPaths {
    /// Checkpoints and curves.
    pub out: PathBuf,
    /// The JSON report.
    pub report: PathBuf,
}

impl RunPaths {
    /// Checkpoints, curves and `report.json` in one folder.
    pub fn in_folder(out: PathBuf) -> RunPaths {
        RunPaths {
            report: out.join("report.json"),
            out,
        }
    }
}

/// Where a run tells how far it is: the command line draws progress bars, [`Quiet`] ignores it.
pub trait Progress {
    /// A phase of `len` steps starts (`"warm start"`, an arm's name), `done` of them already
    /// done (a resumed run).
    fn phase(&mut self, name: &str, len: usize, done: usize);
    /// One step of the phase is done; `status` is its latest figure (`"loss 0.412"`).
    fn step(&mut self, status: &str);
    /// A line worth keeping: a phase's result, a resumption.
    fn note(&mut self, line: &str);
}

/// A [`Progress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn phase(&mut self, _: &str, _: usize, _: usize) {}
    fn step(&mut self, _: &str) {}
    fn note(&mut self, _: &str) {}
}

/// A seed for `(stream, a, b)` derived from the run's seed (SplitMix64 finalizer).
fn derive_seed(seed: u64, stream: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ a.wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ b.wrapping_mul(0x94D0_49BB_1331_11EB);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The splits of a run.
struct Splits {
    train: Vec<LedgerTask>,
    demo: Vec<LedgerTask>,
    test: Vec<LedgerTask>,
    hard: Vec<LedgerTask>,
}

impl Splits {
    fn new(c: &TrainConfig) -> Result<Splits, String> {
        let s = |name: &str, [a, b]: [usize; 2], n: usize, stream: u64| {
            split(&c.ledger, name, a..=b, n, derive_seed(c.seed, stream, 0, 0))
        };
        Ok(Splits {
            train: s("train", c.pages, c.train_tasks, 1)?,
            demo: s("demo", c.demo_pages, c.train_tasks, 2)?,
            test: s("test", c.pages, c.test_tasks, 3)?,
            hard: s("hard", c.hard_pages, c.hard_tasks, 4)?,
        })
    }
}

/// Greedy episodes of `model` on `tasks` under `rules`.
fn evaluate(
    model: &BuiltinModel,
    tasks: &[LedgerTask],
    rules: &EpisodeRules,
) -> Result<Vec<Episode>, String> {
    let jobs: Vec<(&LedgerTask, u64)> = tasks.iter().map(|t| (t, 0)).collect();
    let actor = Actor::Model {
        model: &model.transformer,
        temperature: 0.0,
    };
    run_episodes(model.vocab(), &jobs, rules, actor)
}

/// Training state of one arm as stored in its checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ArmState {
    arm: String,
    step: usize,
    curve: Vec<CurvePoint>,
    rl_seconds: f64,
    optimizer: AdamW,
}

fn save_state(
    path: &Path,
    config: &TrainConfig,
    model: &BuiltinModel,
    state: &serde_json::Value,
    opt: Option<&AdamW>,
) -> Result<(), String> {
    let mut ckpt = model.to_checkpoint();
    ckpt.meta["train_config"] = serde_json::to_value(config).map_err(|e| e.to_string())?;
    ckpt.meta["state"] = state.clone();
    if let Some(opt) = opt {
        ckpt.tensors.push(("adam_m".into(), opt.m.clone()));
        ckpt.tensors.push(("adam_v".into(), opt.v.clone()));
    }
    ckpt.save(path)
}

/// Loads a checkpoint of this run, or `None` when there is none; one of a different
/// configuration (other than the number of RL steps) is an error, not silently resumed.
fn load_state(path: &Path, config: &TrainConfig) -> Result<Option<Checkpoint>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let ckpt = Checkpoint::load(path)?;
    let theirs: TrainConfig = serde_json::from_value(ckpt.meta["train_config"].clone())
        .map_err(|e| format!("{}: no training configuration: {e}", path.display()))?;
    // More RL steps may be asked for when resuming; everything else must match.
    let same = TrainConfig {
        rl_steps: config.rl_steps,
        rl_lr: config.rl_lr,
        ..theirs
    };
    if &same != config {
        return Err(format!(
            "{} was written by a run with a different configuration; use another --out or drop --resume",
            path.display()
        ));
    }
    Ok(Some(ckpt))
}

/// The warm start: supervised steps on demonstrations under the SUPO and the big rules.
fn warm_start(
    c: &TrainConfig,
    splits: &Splits,
    paths: &RunPaths,
    resume: bool,
    progress: &mut dyn Progress,
) -> Result<(BuiltinModel, [f64; 2], f64), String> {
    let path = paths.out.join("warm_start.ckpt");
    if resume {
        if let Some(ckpt) = load_state(&path, c)? {
            let model = BuiltinModel::from_checkpoint_data(&ckpt).map_err(|e| e.0)?;
            let loss = serde_json::from_value(ckpt.meta["state"]["loss"].clone())
                .map_err(|e| e.to_string())?;
            let secs = ckpt.meta["state"]["seconds"].as_f64().unwrap_or(0.0);
            progress.note(&format!("warm start: resumed from {}", path.display()));
            return Ok((model, loss, secs));
        }
    }
    let start = Instant::now();
    let mut model =
        BuiltinModel::new(c.ledger.clone(), c.model.clone(), c.seed).map_err(|e| e.0)?;
    let mut opt = AdamW::new(model.transformer.params.len(), c.warm_lr);
    let demo_rules = [
        EpisodeRules::supo(
            c.working_context,
            c.threshold,
            4 * c.max_summaries + 8,
            c.max_steps,
        ),
        EpisodeRules::no_summaries((c.max_summaries + 1) * c.working_context, c.max_steps),
    ];
    progress.phase("warm start", c.warm_steps, 0);
    let mut losses = [0.0; 2];
    for step in 0..c.warm_steps {
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(c.seed, 10, step as u64, 0));
        let tasks: Vec<&LedgerTask> = splits
            .demo
            .choose_multiple(&mut rng, c.warm_batch)
            .collect();
        let mut episodes = Vec::with_capacity(tasks.len());
        for (i, rules) in demo_rules.iter().enumerate() {
            let half: Vec<(&LedgerTask, u64)> = tasks
                .iter()
                .skip(i)
                .step_by(2)
                .map(|&t| (t, derive_seed(c.seed, 11, step as u64, i as u64)))
                .collect();
            episodes.extend(run_episodes(
                model.vocab(),
                &half,
                rules,
                Actor::Demonstrator,
            )?);
        }
        let segments: Vec<_> = episodes
            .iter()
            .flat_map(|e| e.trajectory.segments.iter().chain(&e.counts.discarded))
            .collect();
        // Cosine decay to a tenth of the rate.
        let done = step as f32 / c.warm_steps.max(1) as f32;
        opt.lr = c.warm_lr * (0.55 + 0.45 * (std::f32::consts::PI * done).cos());
        let loss = learn::supervised_step(&mut model.transformer, &mut opt, &segments)?;
        if step == 0 {
            losses[0] = loss;
        }
        losses[1] = loss;
        progress.step(&format!("loss {loss:.3}"));
    }
    let secs = start.elapsed().as_secs_f64();
    let state = serde_json::json!({"loss": losses, "seconds": secs});
    save_state(&path, c, &model, &state, None)?;
    progress.note(&format!(
        "warm start: {} steps in {secs:.0} s, loss {:.3} -> {:.3}",
        c.warm_steps, losses[0], losses[1]
    ));
    Ok((model, losses, secs))
}

/// RL of one arm from the warm start.
fn train_arm(
    c: &TrainConfig,
    arm: &Arm,
    warm: &BuiltinModel,
    splits: &Splits,
    paths: &RunPaths,
    resume: bool,
    progress: &mut dyn Progress,
) -> Result<(BuiltinModel, ArmState), String> {
    let path = paths.out.join(format!("{}.ckpt", arm.name));
    let mut model = warm.clone();
    let mut state = ArmState {
        arm: arm.name.clone(),
        step: 0,
        curve: Vec::new(),
        rl_seconds: 0.0,
        optimizer: AdamW::new(model.transformer.params.len(), c.rl_lr),
    };
    if resume {
        if let Some(mut ckpt) = load_state(&path, c)? {
            model = BuiltinModel::from_checkpoint_data(&ckpt).map_err(|e| e.0)?;
            state = serde_json::from_value(ckpt.meta["state"].clone())
                .map_err(|e| format!("{}: bad training state: {e}", path.display()))?;
            let n = model.transformer.params.len();
            state.optimizer.m = ckpt.take("adam_m").unwrap_or_else(|| vec![0.0; n]);
            state.optimizer.v = ckpt.take("adam_v").unwrap_or_else(|| vec![0.0; n]);
            if state.optimizer.m.len() != n || state.optimizer.v.len() != n {
                return Err(format!(
                    "{}: optimizer state of the wrong size",
                    path.display()
                ));
            }
            progress.note(&format!("{}: resumed at step {}", arm.name, state.step));
        }
    }
    let estimator = EstimatorConfig {
        agg: c.agg,
        ..EstimatorConfig::default()
    };
    progress.phase(&arm.name, c.rl_steps, state.step);
    while state.step < c.rl_steps {
        let start = Instant::now();
        let step = state.step as u64;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(c.seed, 20, step, 0));
        let tasks: Vec<&LedgerTask> = splits.train.choose_multiple(&mut rng, c.rl_tasks).collect();
        let jobs: Vec<(&LedgerTask, u64)> = tasks
            .iter()
            .flat_map(|&t| (0..c.group_size).map(move |g| (t, g)))
            .enumerate()
            .map(|(i, (t, _))| (t, derive_seed(c.seed, 21, step, i as u64)))
            .collect();
        let actor = Actor::Model {
            model: &model.transformer,
            temperature: c.temperature,
        };
        let episodes = run_episodes(model.vocab(), &jobs, &arm.rules, actor)?;
        let stats = EpisodeStats::of(&episodes);
        let trajectories: Vec<_> = episodes.into_iter().map(|e| e.trajectory).collect();
        let update = learn::policy_step(
            &mut model.transformer,
            &mut state.optimizer,
            &trajectories,
            &estimator,
        )?;
        state.step += 1;
        state.rl_seconds += start.elapsed().as_secs_f64();
        state.curve.push(CurvePoint {
            step: state.step,
            reward: stats.reward,
            success: stats.success,
            facts_kept: stats.facts_kept,
            update,
        });
        progress.step(&format!("reward {:.2}", stats.reward));
        if state.step.is_multiple_of(c.checkpoint_every.max(1)) || state.step == c.rl_steps {
            let json = serde_json::to_value(&state).map_err(|e| e.to_string())?;
            save_state(&path, c, &model, &json, Some(&state.optimizer))?;
        }
    }
    Ok((model, state))
}

/// Runs the whole experiment and writes the report and checkpoints; `resume` continues from
/// the checkpoints in `paths.out` (the same report as an uninterrupted run).
pub fn run(
    c: &TrainConfig,
    paths: &RunPaths,
    resume: bool,
    progress: &mut dyn Progress,
) -> Result<Report, String> {
    c.validate()?;
    let start = Instant::now();
    std::fs::create_dir_all(&paths.out)
        .map_err(|e| format!("cannot create {}: {e}", paths.out.display()))?;
    let splits = Splits::new(c)?;
    let (warm, warm_loss, warm_seconds) = warm_start(c, &splits, paths, resume, progress)?;
    let arms = c.arms();
    let mut report = Report {
        bound: arms[1].rules.context_bound(),
        warm_start_loss: warm_loss,
        warm_seconds,
        config: Some(c.clone()),
        ..Default::default()
    };
    for arm in &arms {
        let before = EpisodeStats::of(&evaluate(&warm, &splits.test, &arm.rules)?);
        if arm.name == "supo_w" {
            report.facts_kept_in_summaries.start = before.facts_kept.unwrap_or(0.0);
        }
        let (model, state) = train_arm(c, arm, &warm, &splits, paths, resume, progress)?;
        let after = EpisodeStats::of(&evaluate(&model, &splits.test, &arm.rules)?);
        progress.note(&format!(
            "{}: test success {:.3} -> {:.3}, peak context {}",
            arm.name, before.success, after.success, after.peak_working_context
        ));
        if arm.name == "supo_w" {
            report.facts_kept_in_summaries.end = after.facts_kept.unwrap_or(0.0);
            for k in [1, 2, 4] {
                let s = k * c.max_summaries;
                let rules = EpisodeRules::supo(c.working_context, c.threshold, s, c.max_steps);
                let hard = EpisodeStats::of(&evaluate(&model, &splits.hard, &rules)?);
                report.test_time_scaling.push(ScalingPoint {
                    max_summaries: s,
                    success: hard.success,
                });
            }
        }
        report.arms.push(ArmReport {
            name: arm.name.clone(),
            working_context: arm.rules.context.working_context,
            threshold: arm.rules.context.threshold,
            max_summaries: arm.rules.context.max_summaries,
            success_before: before.success,
            success_after: after.success,
            reward_before: before.reward,
            reward_after: after.reward,
            mean_working_context: after.mean_working_context,
            peak_working_context: after.peak_working_context,
            summaries_per_episode: after.summaries_per_episode,
            tool_calls_per_episode: after.tool_calls_per_episode,
            rl_seconds: state.rl_seconds,
            curve: state.curve,
        });
    }
    report.total_seconds = start.elapsed().as_secs_f64();
    let json = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
    write_atomic(&paths.report, &json)
        .map_err(|e| format!("cannot write {}: {e}", paths.report.display()))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration small enough for a unit test.
    fn tiny() -> TrainConfig {
        let mut c = TrainConfig::preset(Preset::Quick);
        c.model.d_model = 16;
        c.model.heads = 2;
        c.model.d_ff = 32;
        c.train_tasks = 64;
        c.test_tasks = 8;
        c.hard_tasks = 8;
        c.warm_steps = 3;
        c.warm_batch = 4;
        c.rl_steps = 3;
        c.rl_tasks = 2;
        c.group_size = 3;
        c.checkpoint_every = 1;
        c
    }

    fn run_in(c: &TrainConfig, dir: &Path, resume: bool) -> Report {
        let paths = RunPaths {
            out: dir.to_path_buf(),
            report: dir.join("report.json"),
        };
        let mut r = run(c, &paths, resume, &mut Quiet).unwrap();
        r.total_seconds = 0.0;
        r.warm_seconds = 0.0;
        r.arms.iter_mut().for_each(|a| a.rl_seconds = 0.0);
        r
    }

    #[test]
    fn runs_are_deterministic_and_resume_exactly() {
        let root = std::env::temp_dir().join(format!("supo-train-unit-{}", std::process::id()));
        let c = tiny();
        let a = run_in(&c, &root.join("a"), false);
        let b = run_in(&c, &root.join("b"), false);
        assert_eq!(a, b, "same seed, same report");
        assert_eq!(a.arms.len(), 3);
        assert!(a.arms.iter().all(|arm| arm.curve.len() == 3));
        // Two steps, then resumed to three: the same as three in one go.
        let short = TrainConfig {
            rl_steps: 2,
            ..c.clone()
        };
        run_in(&short, &root.join("c"), false);
        let resumed = run_in(&c, &root.join("c"), true);
        assert_eq!(resumed.arms, a.arms);
        // A different configuration is not resumed silently.
        let other = TrainConfig {
            seed: 1,
            ..c.clone()
        };
        let paths = RunPaths {
            out: root.join("c"),
            report: root.join("c/report.json"),
        };
        assert!(run(&other, &paths, true, &mut Quiet)
            .unwrap_err()
            .contains("different configuration"));
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn bad_configurations_are_errors() {
        let mut c = tiny();
        c.model.max_positions = 50;
        assert!(c.validate().unwrap_err().contains("positions"));
        let mut c = tiny();
        c.pages = [9, 5];
        assert!(c.validate().is_err());
        let mut c = tiny();
        c.group_size = 1;
        assert!(c.validate().is_err());
    }
}
