//! Times the fused policy loss (and the fused linear loss) on the wgpu backend against the CPU
//! reference.
//!
//! `cargo run --release -p supo-wgpu --example policy_loss_timing -- [N] [V] [D]`
//! (defaults: N = 4096, V = 32768 for the logits loss; the linear loss runs N/4 tokens, hidden
//! size D = 256, V/4 vocabulary, chunks of 256 rows; f32 throughout).

use std::time::Instant;

use supo_core::estimator::LossConfig;
use supo_core::{Backend, CpuBackend, Error, LinearShape, LogitsShape};
use supo_tests::data::{DeviceInputs, HostInputs};
use supo_tests::rng::Rng;
use supo_wgpu::WgpuBackend;

/// Per-token inputs without reference log-probs (no KL term is timed).
fn host_inputs(targets: Vec<u32>, old: Vec<f32>, advantages: Vec<f32>) -> HostInputs {
    let n = targets.len();
    HostInputs {
        targets,
        old,
        reference: Vec::new(),
        advantages,
        weights: vec![1.0 / n as f32; n],
    }
}

/// Runs `policy_loss` `reps` times on `backend` and returns the best time in seconds.
fn time<B: Backend>(
    backend: &B,
    logits: &[f32],
    host: &HostInputs,
    shape: LogitsShape,
    reps: usize,
) -> supo_core::Result<f64> {
    let config = LossConfig::default();
    let device = DeviceInputs::upload(backend, host).map_err(Error::Device)?;
    let inputs = device.view(false);
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
    let host = host_inputs(
        targets.to_vec(),
        vec![-(shape.vocab as f32).ln(); n],
        vec![1.0f32; n],
    );
    let device = DeviceInputs::upload(backend, &host).map_err(Error::Device)?;
    let inputs = device.view(false);
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
    // SplitMix64 from a fixed state, so runs are comparable.
    let mut rng = Rng::from_state(42);
    let logits: Vec<f32> = (0..n * v).map(|_| 6.0 * rng.unit() - 3.0).collect();
    let targets: Vec<u32> = (0..n).map(|_| rng.below(v) as u32).collect();
    let old = (0..n)
        .map(|_| -(v as f32).ln() + rng.unit() - 0.5)
        .collect();
    let advantages = (0..n).map(|_| 2.0 * rng.unit() - 1.0).collect();
    let host = host_inputs(targets, old, advantages);
    let shape = LogitsShape {
        tokens: n,
        vocab: v,
    };
    let gpu = WgpuBackend::new()?;
    let g = time(&gpu, &logits, &host, shape, 3)?;
    println!("{}: policy_loss f32 N={n} V={v}: {:.3} s", gpu.name(), g);
    for cpu in [CpuBackend::new(), CpuBackend::parallel()] {
        let c = time(&cpu, &logits, &host, shape, 3)?;
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
        .map(|_| rng.below(shape.vocab) as u32)
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
