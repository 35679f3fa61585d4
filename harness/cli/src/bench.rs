//! `supo bench …`: benchmarks of the backends, one JSON line per run on standard output.
//!
//! `supo bench loss` times the fused policy loss, forward and backward, over an `[N, V]` logits
//! matrix: the median of `--repeats` runs after `--warmup` runs, and the peak growth of the
//! process's resident memory during a run (Linux: `VmHWM` after resetting it through
//! `/proc/self/clear_refs`). `scripts/bench_torch.py` runs PyTorch's equivalent on the same shapes.
//! `supo bench bfcl` times BFCL's executor against BFCL's Python ([`bfcl`]).

use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use half::{bf16, f16};
use serde::Serialize;
use supo_core::backend::TokenInputs;
use supo_core::estimator::LossConfig;
use supo_core::{Backend, Element, LogitsShape};

use super::backend::BackendKind;
use super::CliError;

pub mod bfcl;
pub mod generate;
mod linear;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The fused policy loss (forward + backward over logits).
    Loss(LossBenchArgs),
    /// The fused linear policy loss (hidden states → logits → loss, forward + backward).
    Linear(linear::LinearBenchArgs),
    /// BFCL's executor: calls per second over replay entries, against BFCL's Python.
    Bfcl(bfcl::BfclBenchArgs),
    /// Prompt and generation tokens/s of `supo serve --gguf` against llama.cpp's server on the
    /// same model, threads and prompt.
    Generate(generate::GenerateBenchArgs),
}

/// Element type of the logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DTypeArg {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
}

/// Arguments of `supo bench loss`.
#[derive(Debug, Args)]
pub struct LossBenchArgs {
    /// `N`, token rows.
    #[arg(long, default_value_t = 4096)]
    pub tokens: usize,
    /// `V`, vocabulary size.
    #[arg(long, default_value_t = 32768)]
    pub vocab: usize,
    /// Element type of the logits.
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    pub dtype: DTypeArg,
    /// Backend to run on.
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The JSON line `supo bench loss` prints.
#[derive(Debug, Serialize)]
pub struct LossBenchResult {
    /// Median seconds of one forward + backward.
    pub median_s: f64,
    /// Peak growth of resident memory during a run, in bytes (0 where unmeasurable).
    pub peak_rss_delta_bytes: u64,
    /// Every timed run, in seconds.
    pub runs_s: Vec<f64>,
    /// The backend's name.
    pub backend: String,
    /// Element type.
    pub dtype: &'static str,
    /// `N`.
    pub tokens: usize,
    /// `V`.
    pub vocab: usize,
    /// Logits bytes read and written per run (three passes) divided by the median time.
    pub effective_gb_per_s: f64,
    /// The loss of the last run (a checksum of the work done).
    pub loss: f64,
}

/// Runs a benchmark.
pub fn run(cmd: &BenchCommand) -> Result<(), CliError> {
    match cmd {
        BenchCommand::Bfcl(args) => bfcl::run(args),
        BenchCommand::Generate(args) => generate::run(args),
        BenchCommand::Loss(args) => {
            if args.tokens == 0 || args.vocab == 0 || args.repeats == 0 {
                return Err(CliError::Input(
                    "--tokens, --vocab and --repeats must be > 0".into(),
                ));
            }
            let result = crate::with_backend!(args.backend, |b| match args.dtype {
                DTypeArg::F32 => bench_loss::<_, f32>(&b, args),
                DTypeArg::F16 => bench_loss::<_, f16>(&b, args),
                DTypeArg::Bf16 => bench_loss::<_, bf16>(&b, args),
            })?;
            errln!(
                "{}: {} x {} {}: median {:.4} s ({:.1} GB/s effective), peak RSS +{:.1} MiB",
                result.backend,
                result.tokens,
                result.vocab,
                result.dtype,
                result.median_s,
                result.effective_gb_per_s,
                result.peak_rss_delta_bytes as f64 / (1 << 20) as f64
            )?;
            outln!(
                "{}",
                serde_json::to_string(&result).map_err(|e| CliError::Failure(e.to_string()))?
            )?;
            Ok(())
        }
        BenchCommand::Linear(args) => linear::run(args),
    }
}

/// SplitMix64 for reproducible inputs.
fn splitmix(state: &mut u64) -> f32 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
}

fn bench_loss<B: Backend, T: Element>(
    b: &B,
    args: &LossBenchArgs,
) -> Result<LossBenchResult, CliError> {
    let (n, v) = (args.tokens, args.vocab);
    let mut s = args.seed;
    let logits: Vec<T> = (0..n * v)
        .map(|_| T::from_f32(4.0 * splitmix(&mut s) - 2.0))
        .collect();
    let targets: Vec<u32> = (0..n)
        .map(|_| (splitmix(&mut s) * v as f32) as u32 % v as u32)
        .collect();
    let base = -(v as f32).ln();
    let old: Vec<f32> = (0..n)
        .map(|_| base + 0.3 * (splitmix(&mut s) - 0.5))
        .collect();
    let adv: Vec<f32> = (0..n).map(|_| 2.0 * splitmix(&mut s) - 1.0).collect();
    let weights = vec![1.0 / n as f32; n];
    let dev = (
        b.upload(&targets)?,
        b.upload(&old)?,
        b.upload(&adv)?,
        b.upload(&weights)?,
    );
    let inputs = TokenInputs {
        targets: &dev.0,
        old_logprobs: &dev.1,
        ref_logprobs: None,
        advantages: &dev.2,
        weights: &dev.3,
    };
    let config = LossConfig::default();
    let shape = LogitsShape {
        tokens: n,
        vocab: v,
    };

    let mut runs = Vec::with_capacity(args.repeats);
    let mut peak = 0u64;
    let mut loss = 0.0;
    for i in 0..args.warmup + args.repeats {
        // The gradient overwrites the logits: every run starts from a fresh copy (untimed).
        let mut buf = b.upload(&logits)?;
        let (report, dt, grew) = measure(|| b.policy_loss(&mut buf, shape, &inputs, &config));
        let report = report?;
        peak = peak.max(grew);
        loss = report.loss;
        if i >= args.warmup {
            runs.push(dt);
        }
    }
    let median = median(&runs);
    let bytes = 3.0 * (n * v * std::mem::size_of::<T>()) as f64;
    Ok(LossBenchResult {
        median_s: median,
        peak_rss_delta_bytes: peak,
        runs_s: runs,
        backend: b.name(),
        dtype: T::DTYPE.name(),
        tokens: n,
        vocab: v,
        effective_gb_per_s: bytes / median / 1e9,
        loss,
    })
}

/// The median of non-empty `runs`.
fn median(runs: &[f64]) -> f64 {
    let mut sorted = runs.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Runs `f` once: its value, its wall-clock seconds and the growth of peak resident memory
/// while it ran, in bytes (0 where unmeasurable).
fn measure<R>(f: impl FnOnce() -> R) -> (R, f64, u64) {
    let before = rss::reset_peak();
    let t0 = Instant::now();
    let out = f();
    let dt = t0.elapsed().as_secs_f64();
    let grew = match (before, rss::peak()) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => 0,
    };
    (out, dt, grew)
}

/// Resident-set measurements from `/proc/self` (Linux); `None` elsewhere.
mod rss {
    fn status_kib(field: &str) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Resets the peak-RSS counter and returns the current RSS in bytes.
    pub fn reset_peak() -> Option<u64> {
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
        status_kib("VmRSS:").map(|k| k * 1024)
    }

    /// Peak RSS since the last reset, in bytes.
    pub fn peak() -> Option<u64> {
        status_kib("VmHWM:").map(|k| k * 1024)
    }
}
