//! The fused policy loss of the CPU backend against the unfused composition computed
//! independently in f64 (log_softmax → gather → clipped surrogate + KL − entropy bonus →
//! weighted sum), and its `dL/dlogits` against central finite differences of that composition,
//! for f32, f16 and bf16 logits.

use half::{bf16, f16};
use supo_core::backend::TokenInputs;
use supo_core::estimator::surrogate::{token_terms, SurrogateParams};
use supo_core::estimator::LossConfig;
use supo_core::{Backend, CpuBackend, Element, LogitsShape};
use supo_tests::rng::Rng;

struct Case {
    n: usize,
    v: usize,
    logits: Vec<f64>,
    targets: Vec<u32>,
    old: Vec<f32>,
    reference: Vec<f32>,
    adv: Vec<f32>,
    weights: Vec<f32>,
}

/// The unfused loss in f64.
fn unfused(c: &Case, logits: &[f64], config: &LossConfig) -> f64 {
    let params = SurrogateParams::<f64>::new(config);
    let inv_t = 1.0 / config.temperature;
    let mut loss = 0.0;
    for i in 0..c.n {
        let row: Vec<f64> = logits[i * c.v..(i + 1) * c.v]
            .iter()
            .map(|z| z * inv_t)
            .collect();
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|z| (z - m).exp()).sum::<f64>().ln();
        let logp = row[c.targets[i] as usize] - lse;
        let entropy: f64 = -row.iter().map(|z| (z - lse).exp() * (z - lse)).sum::<f64>();
        let t = token_terms(
            logp,
            f64::from(c.old[i]),
            f64::from(c.reference[i]),
            f64::from(c.adv[i]),
            &params,
        );
        loss += f64::from(c.weights[i])
            * (t.pg + config.kl_coef * t.kl - config.entropy_coef * entropy);
    }
    loss
}

fn make_case(rng: &mut Rng, n: usize, v: usize) -> Case {
    let logits: Vec<f64> = (0..n * v).map(|_| f64::from(2.0 * rng.normal())).collect();
    let targets: Vec<u32> = (0..n).map(|_| rng.below(v) as u32).collect();
    // Old and reference log-probs near the current ones, away from the clip boundaries.
    let logp = |i: usize| {
        let row = &logits[i * v..(i + 1) * v];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        row[targets[i] as usize] - m - row.iter().map(|z| (z - m).exp()).sum::<f64>().ln()
    };
    let old = (0..n)
        .map(|i| {
            let shift = [0.05, -0.1, 0.6, -0.7][rng.below(4)] * (0.5 + rng.unit());
            (logp(i) - f64::from(shift)) as f32
        })
        .collect();
    let reference = (0..n)
        .map(|i| (logp(i) + f64::from(0.3 * rng.normal())) as f32)
        .collect();
    let adv = (0..n).map(|_| rng.normal()).collect();
    let weights = (0..n)
        .map(|i| if i % 5 == 4 { 0.0 } else { 1.0 / n as f32 })
        .collect();
    Case {
        n,
        v,
        logits,
        targets,
        old,
        reference,
        adv,
        weights,
    }
}

fn check<T: Element>(config: &LossConfig, grad_tol: f64, loss_tol: f64) {
    let cpu = CpuBackend::new();
    let mut rng = Rng::new(11);
    for &(n, v) in &[(1usize, 2usize), (4, 9), (10, 37), (6, 130)] {
        let mut case = make_case(&mut rng, n, v);
        // The reference sees exactly the element-type logits the kernel sees.
        let typed: Vec<T> = case.logits.iter().map(|&z| T::from_f32(z as f32)).collect();
        case.logits = typed.iter().map(|z| f64::from(z.to_f32())).collect();
        let mut grad = typed.clone();
        let inputs = TokenInputs::<CpuBackend> {
            targets: &case.targets,
            old_logprobs: &case.old,
            ref_logprobs: Some(&case.reference),
            advantages: &case.adv,
            weights: &case.weights,
        };
        let report = cpu
            .policy_loss(
                &mut grad,
                LogitsShape {
                    tokens: n,
                    vocab: v,
                },
                &inputs,
                config,
            )
            .unwrap();
        let want = unfused(&case, &case.logits, config);
        assert!(
            (report.loss - want).abs() <= loss_tol * (1.0 + want.abs()),
            "{:?} {n}x{v}: fused loss {} vs unfused {want}",
            T::DTYPE,
            report.loss
        );
        let scale = grad
            .iter()
            .fold(0.0f64, |a, g| a.max(f64::from(g.to_f32()).abs()))
            .max(1e-8);
        let h = 1e-5;
        for j in 0..n * v {
            let mut plus = case.logits.clone();
            plus[j] += h;
            let mut minus = case.logits.clone();
            minus[j] -= h;
            let fd = (unfused(&case, &plus, config) - unfused(&case, &minus, config)) / (2.0 * h);
            let g = f64::from(grad[j].to_f32());
            assert!(
                (fd - g).abs() <= grad_tol * scale + 1e-7,
                "{:?} {n}x{v} logit {j}: fused {g} vs finite difference {fd} (scale {scale})",
                T::DTYPE
            );
        }
    }
}

/// Every loss variant: the parity suite's list (dual clip on/off, k1/k2/low_var_kl, entropy
/// bonus, temperature).
fn configs() -> Vec<LossConfig> {
    supo_tests::parity::loss_configs()
}

#[test]
fn f32_matches_finite_differences_and_unfused() {
    for c in configs() {
        check::<f32>(&c, 2e-4, 1e-5);
    }
}

#[test]
fn f16_matches_finite_differences_and_unfused() {
    for c in configs() {
        check::<f16>(&c, 2e-3, 1e-4);
    }
}

#[test]
fn bf16_matches_finite_differences_and_unfused() {
    for c in configs() {
        check::<bf16>(&c, 1.6e-2, 1e-4);
    }
}

#[test]
fn extreme_logits_stay_finite() {
    let cpu = CpuBackend::new();
    let v = 1000;
    let mut logits: Vec<f32> = (0..v)
        .map(|i| if i % 7 == 0 { 1e4 } else { -1e4 })
        .collect();
    logits[3] = 9_999.5;
    let targets = vec![3u32];
    let out = cpu
        .token_logprobs(
            &logits,
            &targets,
            LogitsShape {
                tokens: 1,
                vocab: v,
            },
            1.0,
        )
        .unwrap();
    assert!(out.logprobs[0].is_finite() && out.entropy[0].is_finite());
    // 143 logits at 1e4 and one at 1e4 − 0.5: log p = −0.5 − ln(143 + e^−0.5).
    let want = -0.5 - (143.0f64 + (-0.5f64).exp()).ln();
    assert!(
        (f64::from(out.logprobs[0]) - want).abs() < 1e-4,
        "{} vs {want}",
        out.logprobs[0]
    );
}

#[test]
fn masked_vocabulary_is_excluded_not_an_error() {
    let cpu = CpuBackend::new();
    let v = 1000;
    // The first 600 logits (more than one online-max block) are masked.
    let logits: Vec<f32> = (0..v)
        .map(|j| {
            if j < 600 {
                f32::NEG_INFINITY
            } else {
                (j % 7) as f32 * 0.1
            }
        })
        .collect();
    let targets = vec![700u32];
    let shape = LogitsShape {
        tokens: 1,
        vocab: v,
    };
    let out = cpu.token_logprobs(&logits, &targets, shape, 1.0).unwrap();
    let z: Vec<f64> = logits[600..].iter().map(|&x| f64::from(x)).collect();
    let lse = z.iter().map(|x| x.exp()).sum::<f64>().ln();
    let want = f64::from(logits[700]) - lse;
    assert!(
        (f64::from(out.logprobs[0]) - want).abs() < 1e-5,
        "{} vs {want}",
        out.logprobs[0]
    );
    // With an entropy bonus the masked entries get a zero gradient, not NaN.
    let mut grad = logits.clone();
    let config = LossConfig {
        entropy_coef: 0.1,
        ..LossConfig::default()
    };
    let (old, adv, weights) = (vec![want as f32 - 0.05], vec![1.0f32], vec![1.0f32]);
    let inputs = TokenInputs::<CpuBackend> {
        targets: &targets,
        old_logprobs: &old,
        ref_logprobs: None,
        advantages: &adv,
        weights: &weights,
    };
    cpu.policy_loss(&mut grad, shape, &inputs, &config).unwrap();
    assert!(grad.iter().all(|g| g.is_finite()));
    assert!(grad[..600].iter().all(|&g| g == 0.0));
}
