//! `supo bench linear`: the fused *linear* policy loss (hidden states → logits → clipped loss,
//! token-mean, forward and backward to the hidden states and the weight), `--chunk` rows at a
//! time. `scripts/bench_torch_linear.py` runs PyTorch's and verl's equivalents on the same shapes.

use clap::Args;
use half::{bf16, f16};
use serde::Serialize;
use supo_core::backend::TokenInputs;
use supo_core::estimator::LossConfig;
use supo_core::{Backend, Element, LinearShape};

use super::{measure, median, splitmix, DTypeArg};
use crate::backend::BackendKind;
use crate::CliError;

/// Arguments of `supo bench linear`.
#[derive(Debug, Args)]
pub struct LinearBenchArgs {
    /// `N`, token rows.
    #[arg(long, default_value_t = 4096)]
    pub tokens: usize,
    /// `D`, hidden size.
    #[arg(long, default_value_t = 1024)]
    pub hidden: usize,
    /// `V`, vocabulary size.
    #[arg(long, default_value_t = 32768)]
    pub vocab: usize,
    /// Rows of logits computed at a time.
    #[arg(long, default_value_t = 512)]
    pub chunk: usize,
    /// Element type of the hidden states and the weight.
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    pub dtype: DTypeArg,
    /// Backend to run on.
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Untimed warm-up runs.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The JSON line `supo bench linear` prints.
#[derive(Debug, Serialize)]
pub struct LinearBenchResult {
    /// Median seconds of one forward + backward.
    pub median_s: f64,
    /// Peak growth of resident memory during a run, gradients included, in bytes (0 where
    /// unmeasurable).
    pub peak_rss_delta_bytes: u64,
    /// Every timed run, in seconds.
    pub runs_s: Vec<f64>,
    /// The backend's name.
    pub backend: String,
    /// Element type of the operands.
    pub dtype: &'static str,
    /// `N`.
    pub tokens: usize,
    /// `D`.
    pub hidden: usize,
    /// `V`.
    pub vocab: usize,
    /// Rows per chunk.
    pub chunk: usize,
    /// The three matrix products' `6·N·D·V` floating-point operations over the median time.
    pub gflop_per_s: f64,
    /// The loss of the last run (a checksum of the work done).
    pub loss: f64,
}

/// Runs `supo bench linear` and prints its JSON line.
pub fn run(args: &LinearBenchArgs) -> Result<(), CliError> {
    if [
        args.tokens,
        args.hidden,
        args.vocab,
        args.chunk,
        args.repeats,
    ]
    .contains(&0)
    {
        return Err(CliError::Input(
            "--tokens, --hidden, --vocab, --chunk and --repeats must be > 0".into(),
        ));
    }
    let result = crate::with_backend!(args.backend, |b| match args.dtype {
        DTypeArg::F32 => bench::<_, f32>(&b, args),
        DTypeArg::F16 => bench::<_, f16>(&b, args),
        DTypeArg::Bf16 => bench::<_, bf16>(&b, args),
    })?;
    errln!(
        "{}: linear {} x {} x {} (chunk {}) {}: median {:.3} s ({:.1} GFLOP/s), peak RSS +{:.1} MiB",
        result.backend,
        result.tokens,
        result.hidden,
        result.vocab,
        result.chunk,
        result.dtype,
        result.median_s,
        result.gflop_per_s,
        result.peak_rss_delta_bytes as f64 / (1 << 20) as f64
    )?;
    outln!(
        "{}",
        serde_json::to_string(&result).map_err(|e| CliError::Failure(e.to_string()))?
    )?;
    Ok(())
}

fn bench<B: Backend, T: Element>(
    b: &B,
    args: &LinearBenchArgs,
) -> Result<LinearBenchResult, CliError> {
    let (n, d, v) = (args.tokens, args.hidden, args.vocab);
    let too_big = || CliError::Input(format!("{n} x {d} x {v} overflows usize"));
    let (nd, vd) = (
        n.checked_mul(d).ok_or_else(too_big)?,
        v.checked_mul(d).ok_or_else(too_big)?,
    );
    let mut s = args.seed;
    // Hidden states in [-1, 1), weights scaled by 1/√D: logits of order one, as in a model.
    let hidden: Vec<T> = (0..nd)
        .map(|_| T::from_f32(2.0 * splitmix(&mut s) - 1.0))
        .collect();
    let scale = 2.0 / (d as f32).sqrt();
    let weight: Vec<T> = (0..vd)
        .map(|_| T::from_f32(scale * (splitmix(&mut s) - 0.5)))
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
        b.upload(&hidden)?,
        b.upload(&weight)?,
    );
    drop((hidden, weight));
    let inputs = TokenInputs {
        targets: &dev.0,
        old_logprobs: &dev.1,
        ref_logprobs: None,
        advantages: &dev.2,
        weights: &dev.3,
    };
    let config = LossConfig::default();
    let shape = LinearShape {
        tokens: n,
        hidden: d,
        vocab: v,
        chunk: args.chunk,
    };
    let mut runs = Vec::with_capacity(args.repeats);
    let mut peak = 0u64;
    let mut loss = 0.0;
    for i in 0..args.warmup + args.repeats {
        let (out, dt, grew) =
            measure(|| b.linear_policy_loss(&dev.4, &dev.5, shape, &inputs, &config));
        let out = out?;
        peak = peak.max(grew);
        loss = out.report.loss;
        drop(out);
        if i >= args.warmup {
            runs.push(dt);
        }
    }
    let median = median(&runs);
    Ok(LinearBenchResult {
        median_s: median,
        peak_rss_delta_bytes: peak,
        runs_s: runs,
        backend: b.name(),
        dtype: T::DTYPE.name(),
        tokens: n,
        hidden: d,
        vocab: v,
        chunk: args.chunk,
        gflop_per_s: 6.0 * (n as f64) * (d as f64) * (v as f64) / median / 1e9,
        loss,
    })
}
