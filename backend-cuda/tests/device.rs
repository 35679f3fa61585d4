//! `CudaBackend` against the CPU reference on a real device. Each test prints that it skipped
//! (by name) when no CUDA device can be started, unless `SUPO_REQUIRE_CUDA=1`, which makes a
//! missing device a failure. The full cross-backend suite is `supo-tests`' `parity_cuda`.

use half::{bf16, f16};
use supo_core::backend::GroupAdvantageConfig;
use supo_core::estimator::{KlType, LossConfig};
use supo_core::{Backend, CpuBackend, Element, LinearShape, LogitsShape};
use supo_cuda::CudaBackend;
use supo_tests::compare::{assert_close, to_f32};
use supo_tests::data::{weights_every_fifth_zero, DeviceInputs, HostInputs};
use supo_tests::rng::XorShift;

fn backend_or_skip(test: &str) -> Option<CudaBackend> {
    supo_tests::backend_or_skip(test, CudaBackend::new(0), "SUPO_REQUIRE_CUDA")
}

/// Random per-token inputs for `n` rows of a vocabulary of `v`; every fifth weight is 0.
fn random_host(rng: &mut XorShift, n: usize, v: usize) -> HostInputs {
    HostInputs {
        targets: (0..n).map(|_| rng.below(v) as u32).collect(),
        old: (0..n).map(|_| -3.0 + 2.0 * rng.unit()).collect(),
        reference: (0..n).map(|_| -3.0 + 2.0 * rng.unit()).collect(),
        advantages: (0..n).map(|_| 1.5 * rng.unit()).collect(),
        weights: weights_every_fifth_zero(rng, n),
    }
}

/// The inputs uploaded to `b`.
fn upload<B: Backend>(b: &B, host: &HostInputs) -> DeviceInputs<B> {
    DeviceInputs::upload(b, host).unwrap()
}

fn logits<T: Element>(rng: &mut XorShift, n: usize, v: usize, extreme: bool) -> Vec<T> {
    (0..n * v)
        .map(|i| {
            let x = if extreme && i % 7 == 0 {
                1e4 * rng.unit()
            } else {
                4.0 * rng.unit()
            };
            T::from_f32(x)
        })
        .collect()
}

fn config() -> LossConfig {
    LossConfig {
        kl_coef: 0.02,
        kl_type: KlType::LowVarKl,
        entropy_coef: 0.01,
        temperature: 0.8,
        ..LossConfig::default()
    }
}

fn policy_loss_matches<T: Element>(cuda: &CudaBackend, rel: f32) {
    let cpu = CpuBackend::new();
    let mut rng = XorShift::new(0x5eed_0001);
    let (n, v) = (37, 3001);
    let host = random_host(&mut rng, n, v);
    let x = logits::<T>(&mut rng, n, v, false);
    let shape = LogitsShape {
        tokens: n,
        vocab: v,
    };
    let cfg = config();
    let mut want_grad = x.clone();
    let want = cpu
        .policy_loss(&mut want_grad, shape, &upload(&cpu, &host).view(true), &cfg)
        .unwrap();
    let mut dev = cuda.upload(&x).unwrap();
    let inputs = upload(cuda, &host);
    let got = cuda
        .policy_loss(&mut dev, shape, &inputs.view(true), &cfg)
        .unwrap();
    let got_grad = cuda.download(&dev).unwrap();
    assert_eq!(got.trained_tokens, want.trained_tokens);
    assert_close(
        "loss",
        &[
            got.loss as f32,
            got.pg_loss as f32,
            got.kl_loss as f32,
            got.entropy as f32,
        ],
        &[
            want.loss as f32,
            want.pg_loss as f32,
            want.kl_loss as f32,
            want.entropy as f32,
        ],
        rel,
    );
    assert_close("dL/dlogits", &to_f32(&got_grad), &to_f32(&want_grad), rel);
}

#[test]
fn token_logprobs_match_cpu() {
    let Some(cuda) = backend_or_skip("token_logprobs_match_cpu") else {
        return;
    };
    let cpu = CpuBackend::new();
    let mut rng = XorShift::new(0x5eed_0002);
    let (n, v) = (19, 1031);
    let x = logits::<f32>(&mut rng, n, v, true);
    let targets: Vec<u32> = (0..n).map(|_| rng.below(v) as u32).collect();
    let shape = LogitsShape {
        tokens: n,
        vocab: v,
    };
    let want = cpu.token_logprobs(&x, &targets, shape, 0.7).unwrap();
    let got = cuda
        .token_logprobs(
            &cuda.upload(&x).unwrap(),
            &cuda.upload(&targets).unwrap(),
            shape,
            0.7,
        )
        .unwrap();
    assert_close(
        "logp",
        &cuda.download(&got.logprobs).unwrap(),
        &want.logprobs,
        1e-4,
    );
    assert_close(
        "entropy",
        &cuda.download(&got.entropy).unwrap(),
        &want.entropy,
        1e-4,
    );
}

#[test]
fn policy_loss_matches_cpu_f32() {
    if let Some(cuda) = backend_or_skip("policy_loss_matches_cpu_f32") {
        policy_loss_matches::<f32>(&cuda, 1e-4);
    }
}

#[test]
fn policy_loss_matches_cpu_f16() {
    if let Some(cuda) = backend_or_skip("policy_loss_matches_cpu_f16") {
        policy_loss_matches::<f16>(&cuda, 2e-3);
    }
}

#[test]
fn policy_loss_matches_cpu_bf16() {
    if let Some(cuda) = backend_or_skip("policy_loss_matches_cpu_bf16") {
        policy_loss_matches::<bf16>(&cuda, 1.6e-2);
    }
}

#[test]
fn linear_policy_loss_matches_cpu() {
    let Some(cuda) = backend_or_skip("linear_policy_loss_matches_cpu") else {
        return;
    };
    let cpu = CpuBackend::new();
    let mut rng = XorShift::new(0x5eed_0003);
    let (n, d, v) = (23, 70, 131);
    let host = random_host(&mut rng, n, v);
    let hidden: Vec<f32> = (0..n * d).map(|_| rng.unit()).collect();
    let weight: Vec<f32> = (0..v * d).map(|_| 0.3 * rng.unit()).collect();
    let shape = LinearShape {
        tokens: n,
        hidden: d,
        vocab: v,
        chunk: 8,
    };
    let cfg = config();
    let want = cpu
        .linear_policy_loss(
            &hidden,
            &weight,
            shape,
            &upload(&cpu, &host).view(true),
            &cfg,
        )
        .unwrap();
    let (h, w) = (cuda.upload(&hidden).unwrap(), cuda.upload(&weight).unwrap());
    let inputs = upload(&cuda, &host);
    let got = cuda
        .linear_policy_loss(&h, &w, shape, &inputs.view(true), &cfg)
        .unwrap();
    assert_close(
        "loss",
        &[got.report.loss as f32],
        &[want.report.loss as f32],
        1e-4,
    );
    assert_close(
        "dH",
        &cuda.download(&got.grad_hidden).unwrap(),
        &want.grad_hidden,
        1e-3,
    );
    assert_close(
        "dW",
        &cuda.download(&got.grad_weight).unwrap(),
        &want.grad_weight,
        1e-3,
    );
}

#[test]
fn advantages_are_bit_identical_to_cpu() {
    let Some(cuda) = backend_or_skip("advantages_are_bit_identical_to_cpu") else {
        return;
    };
    let cpu = CpuBackend::new();
    let mut rng = XorShift::new(0x5eed_0004);
    let b = 61;
    let rewards: Vec<f32> = (0..b).map(|_| rng.unit()).collect();
    let groups: Vec<u32> = (0..b).map(|i| (i % 9) as u32).collect();
    let masked: Vec<u32> = (0..b).map(|i| u32::from(i % 4 == 1)).collect();
    for (norm_by_std, masked_in_group_stats) in [(true, true), (true, false), (false, false)] {
        let cfg = GroupAdvantageConfig {
            norm_by_std,
            eps: 1e-6,
            masked_in_group_stats,
        };
        let want = cpu
            .group_advantages(&rewards, &groups, &masked, &cfg)
            .unwrap();
        let got = cuda
            .group_advantages(
                &cuda.upload(&rewards).unwrap(),
                &cuda.upload(&groups).unwrap(),
                &cuda.upload(&masked).unwrap(),
                &cfg,
            )
            .unwrap();
        let got = cuda.download(&got).unwrap();
        assert_eq!(
            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        let index: Vec<u32> = (0..200).map(|_| rng.below(b) as u32).collect();
        let tokens = cuda
            .scatter_to_tokens(&cuda.upload(&got).unwrap(), &cuda.upload(&index).unwrap())
            .unwrap();
        let want_tokens: Vec<f32> = index.iter().map(|&i| got[i as usize]).collect();
        assert_eq!(cuda.download(&tokens).unwrap(), want_tokens);
    }
}

#[test]
fn repeated_runs_are_bit_identical() {
    let Some(cuda) = backend_or_skip("repeated_runs_are_bit_identical") else {
        return;
    };
    let mut rng = XorShift::new(0x5eed_0005);
    let (n, v) = (9, 20_011);
    let host = random_host(&mut rng, n, v);
    let x = logits::<f32>(&mut rng, n, v, true);
    let shape = LogitsShape {
        tokens: n,
        vocab: v,
    };
    let cfg = config();
    let inputs = upload(&cuda, &host);
    let run = || {
        let mut dev = cuda.upload(&x).unwrap();
        let r = cuda
            .policy_loss(&mut dev, shape, &inputs.view(true), &cfg)
            .unwrap();
        (r, cuda.download(&dev).unwrap())
    };
    let (r1, g1) = run();
    let (r2, g2) = run();
    assert_eq!(r1, r2);
    assert!(g1.iter().zip(&g2).all(|(a, b)| a.to_bits() == b.to_bits()));
}
