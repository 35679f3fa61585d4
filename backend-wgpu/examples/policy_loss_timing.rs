//! Times the fused policy loss (and the fused linear loss) on the wgpu backend against the CPU
//! reference.
//!
//! `cargo run --release -p supo-wgpu --example policy_loss_timing -- [N] [V] [D]`
//! (defaults: N = 4096, V = 32768 for the logits loss; the linear loss runs N/4 tokens, hidden
//! size D = 256, V/4 vocabulary, chunks of 256 rows; f32 throughout).

use std::time::Instant;

use supo_core::backend::TokenInputs;
use supo_core::estimator::LossConfig;
use supo_core::{Backend, CpuBackend, LinearShape, LogitsShape};
use supo_wgpu::WgpuBackend;

/// A small deterministic generator (SplitMix64), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Runs `policy_loss` `reps` times on `backend` and returns the best time in seconds.
fn time<B: Backend>(
    backend: &B,
    logits: &[f32],
    host: &[Vec<f32>; 3],
    targets: &[u32],
    shape: LogitsShape,
    reps: usize,
) -> supo_core::Result<f64> {
    let config = LossConfig::default();
    let targets = backend.upload(targets)?;
    let old = backend.upload(&host[0])?;
    let advantages = backend.upload(&host[1])?;
    let weights = backend.upload(&host[2])?;
    let inputs = TokenInputs {
        targets: &targets,
        old_logprobs: &old,
        ref_logprobs: None,
        advantages: &advantages,
        weights: &weights,
    };
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let mut buffer = backend.upload(logits)?;
        let start = Instant::now();
        let report = backend.policy_loss(&mut buffer, shape, &inputs, &config)?;
        best = best.min(start.elapsed().as_secs_f64());
        std::hint::black_box(report);
    }
    Ok(best)
}

/// Runs `linear_policy_loss` `reps` times on `backend` and returns the best time in seconds.
fn time_linear<B: Backend>(
    backend: &B,
    hidden: &[f32],
    weight: &[f32],
    targets: &[u32],
    shape: LinearShape,
    reps: usize,
) -> supo_core::Result<f64> {
    let n = shape.tokens;
    let config = LossConfig::default();
    let targets = backend.upload(targets)?;
    let old = backend.upload(&vec![-(shape.vocab as f32).ln(); n])?;
    let advantages = backend.upload(&vec![1.0f32; n])?;
    let weights = backend.upload(&vec![1.0 / n as f32; n])?;
    let inputs = TokenInputs {
        targets: &targets,
        old_logprobs: &old,
        ref_logprobs: None,
        advantages: &advantages,
        weights: &weights,
    };
    let hidden = backend.upload(hidden)?;
    let weight = backend.upload(weight)?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let start = Instant::now();
        let out = backend.linear_policy_loss(&hidden, &weight, shape, &inputs, &config)?;
        best = best.min(start.elapsed().as_secs_f64());
        std::hint::black_box(out);
    }
    Ok(best)
}

fn main() -> supo_core::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let n = args.next().and_then(Result::ok).unwrap_or(4096);
    let v = args.next().and_then(Result::ok).unwrap_or(32768);
    let d = args.next().and_then(Result::ok).unwrap_or(256);
    let mut rng = Rng(42);
    let logits: Vec<f32> = (0..n * v).map(|_| 6.0 * rng.unit() - 3.0).collect();
    let targets: Vec<u32> = (0..n).map(|_| (rng.next() % v as u64) as u32).collect();
    let host = [
        (0..n)
            .map(|_| -(v as f32).ln() + rng.unit() - 0.5)
            .collect(),
        (0..n).map(|_| 2.0 * rng.unit() - 1.0).collect(),
        vec![1.0 / n as f32; n],
    ];
    let shape = LogitsShape {
        tokens: n,
        vocab: v,
    };
    let gpu = WgpuBackend::new()?;
    let g = time(&gpu, &logits, &host, &targets, shape, 3)?;
    println!("{}: policy_loss f32 N={n} V={v}: {:.3} s", gpu.name(), g);
    for cpu in [CpuBackend::new(), CpuBackend::parallel()] {
        let c = time(&cpu, &logits, &host, &targets, shape, 3)?;
        println!("{}: policy_loss f32 N={n} V={v}: {:.3} s", cpu.name(), c);
    }

    let shape = LinearShape {
        tokens: n / 4,
        hidden: d,
        vocab: v / 4,
        chunk: 256,
    };
    let hidden: Vec<f32> = (0..shape.tokens * d).map(|_| rng.unit() - 0.5).collect();
    let weight: Vec<f32> = (0..shape.vocab * d)
        .map(|_| 0.2 * rng.unit() - 0.1)
        .collect();
    let targets: Vec<u32> = (0..shape.tokens)
        .map(|_| (rng.next() % shape.vocab as u64) as u32)
        .collect();
    let what = format!(
        "linear_policy_loss f32 N={} D={d} V={} chunk={}",
        shape.tokens, shape.vocab, shape.chunk
    );
    let g = time_linear(&gpu, &hidden, &weight, &targets, shape, 3)?;
    println!("{}: {what}: {:.3} s", gpu.name(), g);
    let cpu = CpuBackend::parallel();
    let c = time_linear(&cpu, &hidden, &weight, &targets, shape, 3)?;
    println!("{}: {what}: {:.3} s", cpu.name(), c);
    Ok(())
}
