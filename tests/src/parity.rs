//! The backend parity suite: one generic set of checks, run for every backend present.
//!
//! Each check builds random inputs, runs the operation on the backend under test and on
//! [`CpuBackend`] (the reference), and compares with the tolerances below. Shapes include
//! `N = 0` and `1`, vocabularies that are not multiples of any workgroup size, extreme logits
//! (±1e4), all three element types, every KL estimator, dual clip on and off, temperature ≠ 1 and
//! an entropy bonus. Bad inputs must give errors on every backend.
//!
//! Tolerances (relative to the largest magnitude of the compared vector, plus an absolute floor):
//!
//! | quantity | f32 | f16 | bf16 |
//! |---|---|---|---|
//! | loss and statistics | 1e-4 | 1e-3 | 1e-2 |
//! | log-probs, entropy | 1e-4 | 1e-3 | 1e-2 |
//! | `dL/dlogits` (stored in the element type) | 1e-4 | 2e-3 | 1.6e-2 |
//! | linear loss gradients (f32) | 1e-3 | 2e-3 | 1.6e-2 |
//!
//! Clip and dual-clip fractions may differ by one token where a ratio sits on a clip boundary
//! within rounding; they are compared to `1.5 / trained tokens`.

use half::{bf16, f16};
use supo_core::estimator::{KlType, LossConfig};
use supo_core::{Backend, CpuBackend, Element, LinearShape, LogitsShape, LossReport};

use crate::compare::{close, to_f32, tol};
use crate::data::{group_advantage_configs, random_logits, DeviceInputs, HostInputs};
use crate::rng::Rng;

/// Shapes `(N, V)` the logits checks run on.
pub const LOGIT_SHAPES: &[(usize, usize)] = &[
    (0, 7),
    (1, 1),
    (1, 33),
    (3, 257),
    (17, 1000),
    (40, 4099),
    (5, 32_001),
];

/// Loss configurations the checks cycle through.
pub fn loss_configs() -> Vec<LossConfig> {
    let base = LossConfig::default();
    vec![
        base,
        LossConfig {
            dual_clip: None,
            ..base
        },
        LossConfig {
            kl_coef: 0.1,
            kl_type: KlType::K1,
            ..base
        },
        LossConfig {
            kl_coef: 0.05,
            kl_type: KlType::K2,
            clip_high: 0.2,
            ..base
        },
        LossConfig {
            kl_coef: 0.01,
            kl_type: KlType::LowVarKl,
            entropy_coef: 0.01,
            ..base
        },
        LossConfig {
            temperature: 0.7,
            entropy_coef: 0.001,
            ..base
        },
    ]
}

fn assert_report(what: &str, got: &LossReport, want: &LossReport, rel: f32) -> Result<(), String> {
    if got.trained_tokens != want.trained_tokens {
        return Err(format!(
            "{what}: {} trained tokens, expected {}",
            got.trained_tokens, want.trained_tokens
        ));
    }
    let scalars = |r: &LossReport| {
        [
            r.loss,
            r.pg_loss,
            r.kl_loss,
            r.entropy_loss,
            r.approx_kl,
            r.entropy,
        ]
        .map(|x| x as f32)
    };
    for (name, (g, w)) in [
        "loss",
        "pg_loss",
        "kl_loss",
        "entropy_loss",
        "approx_kl",
        "entropy",
    ]
    .iter()
    .zip(scalars(got).iter().zip(scalars(want).iter()))
    {
        close(&format!("{what}: {name}"), &[*g], &[*w], rel)?;
    }
    let one_token = 1.5 / want.trained_tokens.max(1) as f64;
    for (name, g, w) in [
        ("clipfrac", got.clipfrac, want.clipfrac),
        ("clipfrac_lower", got.clipfrac_lower, want.clipfrac_lower),
    ] {
        if (g - w).abs() > one_token {
            return Err(format!("{what}: {name} {g}, expected {w}"));
        }
    }
    Ok(())
}

/// `log softmax(row)[target]` in f64, for building old/ref log-probs near the current policy.
fn row_logp<T: Element>(row: &[T], target: usize) -> f32 {
    let m = row
        .iter()
        .fold(f64::NEG_INFINITY, |a, x| a.max(f64::from(x.to_f32())));
    let s: f64 = row.iter().map(|x| (f64::from(x.to_f32()) - m).exp()).sum();
    (f64::from(row[target].to_f32()) - m - s.ln()) as f32
}

fn err(e: supo_core::Error) -> String {
    e.to_string()
}

/// Runs `check` for every element type.
fn for_each_dtype<B: Backend>(
    b: &B,
    check: impl Fn(&B, &mut Rng, Dt) -> Result<(), String>,
) -> Result<(), String> {
    for (seed, dt) in [Dt::F32, Dt::F16, Dt::Bf16].into_iter().enumerate() {
        check(b, &mut Rng::new(seed as u64 + 1), dt).map_err(|e| format!("{dt:?}: {e}"))?;
    }
    Ok(())
}

/// An element type, for dispatching generic checks.
#[derive(Debug, Clone, Copy)]
pub enum Dt {
    /// f32.
    F32,
    /// f16.
    F16,
    /// bf16.
    Bf16,
}

macro_rules! dispatch {
    ($dt:expr, $f:ident($($arg:expr),*)) => {
        match $dt {
            Dt::F32 => $f::<_, f32>($($arg),*),
            Dt::F16 => $f::<_, f16>($($arg),*),
            Dt::Bf16 => $f::<_, bf16>($($arg),*),
        }
    };
}

/// `token_logprobs` against the CPU.
pub fn check_token_logprobs<B: Backend>(b: &B) -> Result<(), String> {
    for_each_dtype(b, |b, rng, dt| dispatch!(dt, token_logprobs_typed(b, rng)))
}

fn token_logprobs_typed<B: Backend, T: Element>(b: &B, rng: &mut Rng) -> Result<(), String> {
    let cpu = CpuBackend::new();
    for (k, &(n, v)) in LOGIT_SHAPES.iter().enumerate() {
        let logits = random_logits::<T>(rng, n, v, k % 2 == 1);
        let targets: Vec<u32> = (0..n).map(|_| rng.below(v) as u32).collect();
        let shape = LogitsShape {
            tokens: n,
            vocab: v,
        };
        let temperature = if k % 3 == 2 { 0.7 } else { 1.0 };
        let want = cpu
            .token_logprobs(&logits, &targets, shape, temperature)
            .map_err(err)?;
        let got = b
            .token_logprobs(
                &b.upload(&logits).map_err(err)?,
                &b.upload(&targets).map_err(err)?,
                shape,
                temperature,
            )
            .map_err(err)?;
        let rel = tol::<T>(1e-4, 1e-3, 1e-2);
        let at = format!("shape {n}x{v}");
        close(
            &format!("{at} logprobs"),
            &b.download(&got.logprobs).map_err(err)?,
            &want.logprobs,
            rel,
        )?;
        close(
            &format!("{at} entropy"),
            &b.download(&got.entropy).map_err(err)?,
            &want.entropy,
            rel,
        )?;
    }
    Ok(())
}

/// The fused policy loss (loss, statistics, `dL/dlogits`) against the CPU.
pub fn check_policy_loss<B: Backend>(b: &B) -> Result<(), String> {
    for_each_dtype(b, |b, rng, dt| dispatch!(dt, policy_loss_typed(b, rng)))
}

fn policy_loss_typed<B: Backend, T: Element>(b: &B, rng: &mut Rng) -> Result<(), String> {
    let cpu = CpuBackend::new();
    for (k, &(n, v)) in LOGIT_SHAPES.iter().enumerate() {
        for (c, config) in loss_configs().iter().enumerate() {
            let logits = random_logits::<T>(rng, n, v, (k + c) % 2 == 1);
            let scale =
                |i: usize, t: u32| row_logp(&logits[i * v..(i + 1) * v], t as usize).max(-30.0);
            let host = HostInputs::random(rng, v, scale, n);
            let shape = LogitsShape {
                tokens: n,
                vocab: v,
            };
            let with_ref = config.kl_coef != 0.0;

            let mut want_grad = logits.clone();
            let cpu_inputs = DeviceInputs::upload(&cpu, &host)?;
            let want = cpu
                .policy_loss(&mut want_grad, shape, &cpu_inputs.view(with_ref), config)
                .map_err(err)?;

            let mut dev_logits = b.upload(&logits).map_err(err)?;
            let dev_inputs = DeviceInputs::upload(b, &host)?;
            let got = b
                .policy_loss(&mut dev_logits, shape, &dev_inputs.view(with_ref), config)
                .map_err(err)?;
            let at = format!("shape {n}x{v} config {c}");
            assert_report(&at, &got, &want, tol::<T>(1e-4, 1e-3, 1e-2))?;
            let got_grad = to_f32(&b.download(&dev_logits).map_err(err)?);
            close(
                &format!("{at} dL/dlogits"),
                &got_grad,
                &to_f32(&want_grad),
                tol::<T>(1e-4, 2e-3, 1.6e-2),
            )?;
        }
    }
    Ok(())
}

/// The chunked fused linear loss against the CPU.
pub fn check_linear_policy_loss<B: Backend>(b: &B) -> Result<(), String> {
    for_each_dtype(b, |b, rng, dt| dispatch!(dt, linear_typed(b, rng)))
}

fn linear_typed<B: Backend, T: Element>(b: &B, rng: &mut Rng) -> Result<(), String> {
    // The reference widens every dtype and multiplies in f32 (never bf16 products).
    let cpu = CpuBackend::new().with_bf16_products(false);
    for &(n, d, v, chunk) in &[
        (0usize, 8usize, 5usize, 4usize),
        (1, 3, 7, 1),
        (13, 19, 67, 4),
        (33, 64, 500, 16),
    ] {
        let config = LossConfig {
            kl_coef: 0.02,
            entropy_coef: 0.01,
            ..LossConfig::default()
        };
        let hidden: Vec<T> = (0..n * d).map(|_| T::from_f32(rng.normal())).collect();
        let weight: Vec<T> = (0..v * d)
            .map(|_| T::from_f32(0.3 * rng.normal()))
            .collect();
        let host = HostInputs::random(rng, v, |_, _| -(v as f32).ln(), n);
        let shape = LinearShape {
            tokens: n,
            hidden: d,
            vocab: v,
            chunk,
        };
        let want = cpu
            .linear_policy_loss(
                &hidden,
                &weight,
                shape,
                &DeviceInputs::upload(&cpu, &host)?.view(true),
                &config,
            )
            .map_err(err)?;
        let inputs = DeviceInputs::upload(b, &host)?;
        let got = b
            .linear_policy_loss(
                &b.upload(&hidden).map_err(err)?,
                &b.upload(&weight).map_err(err)?,
                shape,
                &inputs.view(true),
                &config,
            )
            .map_err(err)?;
        let at = format!("linear {n}x{d}x{v}/{chunk}");
        let rel = tol::<T>(1e-3, 2e-3, 1.6e-2);
        assert_report(&at, &got.report, &want.report, rel)?;
        close(
            &format!("{at} dL/dhidden"),
            &b.download(&got.grad_hidden).map_err(err)?,
            &want.grad_hidden,
            rel,
        )?;
        close(
            &format!("{at} dL/dweight"),
            &b.download(&got.grad_weight).map_err(err)?,
            &want.grad_weight,
            rel,
        )?;
    }
    Ok(())
}

/// Group advantages and the scatter to tokens against the CPU.
pub fn check_advantages_and_scatter<B: Backend>(b: &B) -> Result<(), String> {
    let cpu = CpuBackend::new();
    let mut rng = Rng::new(99);
    for &n in &[0usize, 1, 2, 7, 64, 1000] {
        let groups: Vec<u32> = (0..n).map(|i| (i / 4) as u32).collect();
        let rewards: Vec<f32> = (0..n)
            .map(|_| if rng.unit() < 0.5 { 1.0 } else { rng.unit() })
            .collect();
        let masked: Vec<u32> = (0..n).map(|_| (rng.unit() < 0.2) as u32).collect();
        for config in group_advantage_configs() {
            let want = cpu
                .group_advantages(&rewards, &groups, &masked, &config)
                .map_err(err)?;
            let got = b
                .group_advantages(
                    &b.upload(&rewards).map_err(err)?,
                    &b.upload(&groups).map_err(err)?,
                    &b.upload(&masked).map_err(err)?,
                    &config,
                )
                .map_err(err)?;
            let got = b.download(&got).map_err(err)?;
            close(&format!("advantages n={n} {config:?}"), &got, &want, 1e-5)?;
            let index: Vec<u32> = (0..3 * n).map(|_| rng.below(n.max(1)) as u32).collect();
            if n > 0 {
                let want = cpu.scatter_to_tokens(&want, &index).map_err(err)?;
                let got = b
                    .scatter_to_tokens(
                        &b.upload(&got).map_err(err)?,
                        &b.upload(&index).map_err(err)?,
                    )
                    .map_err(err)?;
                close("scatter", &b.download(&got).map_err(err)?, &want, 0.0)?;
            }
        }
    }
    Ok(())
}

/// Masked vocabularies: `−∞` logits (whole leading blocks of them, and scattered ones) with an
/// entropy bonus, against the CPU.
pub fn check_masked_vocab<B: Backend>(b: &B) -> Result<(), String> {
    let cpu = CpuBackend::new();
    let mut rng = Rng::new(21);
    for &(n, v, masked_prefix) in &[(3usize, 1000usize, 600usize), (9, 4099, 1500), (2, 37, 20)] {
        let mut logits = random_logits::<f32>(&mut rng, n, v, false);
        for i in 0..n {
            for j in 0..v {
                if j < masked_prefix || rng.unit() < 0.1 {
                    logits[i * v + j] = f32::NEG_INFINITY;
                }
            }
        }
        let mut host = HostInputs::random(&mut rng, v, |_, _| -6.0, n);
        for i in 0..n {
            // Targets among the unmasked entries.
            let j = (masked_prefix..v)
                .find(|&j| logits[i * v + j].is_finite())
                .unwrap_or(v - 1);
            logits[i * v + j] = 1.0;
            host.targets[i] = j as u32;
        }
        let shape = LogitsShape {
            tokens: n,
            vocab: v,
        };
        let config = LossConfig {
            entropy_coef: 0.01,
            kl_coef: 0.05,
            ..LossConfig::default()
        };
        let mut want_grad = logits.clone();
        let want = cpu
            .policy_loss(
                &mut want_grad,
                shape,
                &DeviceInputs::upload(&cpu, &host)?.view(true),
                &config,
            )
            .map_err(err)?;
        let inputs = DeviceInputs::upload(b, &host)?;
        let mut dev = b.upload(&logits).map_err(err)?;
        let got = b
            .policy_loss(&mut dev, shape, &inputs.view(true), &config)
            .map_err(err)?;
        let at = format!("masked {n}x{v}");
        assert_report(&at, &got, &want, 1e-4)?;
        close(
            &format!("{at} dL/dlogits"),
            &b.download(&dev).map_err(err)?,
            &want_grad,
            1e-4,
        )?;
        let lp = b
            .token_logprobs(
                &b.upload(&logits).map_err(err)?,
                &inputs.targets,
                shape,
                1.0,
            )
            .map_err(err)?;
        let want_lp = cpu
            .token_logprobs(&logits, &host.targets, shape, 1.0)
            .map_err(err)?;
        close(
            &format!("{at} logprobs"),
            &b.download(&lp.logprobs).map_err(err)?,
            &want_lp.logprobs,
            1e-4,
        )?;
    }
    Ok(())
}

/// The same inputs give the same bits twice.
pub fn check_deterministic<B: Backend>(b: &B) -> Result<(), String> {
    let mut rng = Rng::new(7);
    let (n, v) = (37, 5003);
    let logits = random_logits::<f32>(&mut rng, n, v, true);
    let host = HostInputs::random(&mut rng, v, |_, _| -8.5, n);
    let config = LossConfig {
        kl_coef: 0.1,
        entropy_coef: 0.01,
        ..LossConfig::default()
    };
    let shape = LogitsShape {
        tokens: n,
        vocab: v,
    };
    let inputs = DeviceInputs::upload(b, &host)?;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut dev = b.upload(&logits).map_err(err)?;
        let report = b
            .policy_loss(&mut dev, shape, &inputs.view(true), &config)
            .map_err(err)?;
        let grad: Vec<u32> = b
            .download(&dev)
            .map_err(err)?
            .iter()
            .map(|x| x.to_bits())
            .collect();
        runs.push((report.loss.to_bits(), report.entropy.to_bits(), grad));
    }
    if runs[0] != runs[1] {
        return Err("two runs on the same inputs differ in their bits".into());
    }
    Ok(())
}

/// Bad inputs are errors, never panics.
pub fn check_errors<B: Backend>(b: &B) -> Result<(), String> {
    let mut rng = Rng::new(3);
    let (n, v) = (4, 11);
    let logits = random_logits::<f32>(&mut rng, n, v, false);
    let host = HostInputs::random(&mut rng, v, |_, _| -2.0, n);
    let inputs = DeviceInputs::upload(b, &host)?;
    let config = LossConfig::default();
    let expect_err = |what: &str, r: Result<LossReport, supo_core::Error>| match r {
        Ok(_) => Err(format!("{what}: accepted")),
        Err(_) => Ok(()),
    };
    // Wrong shape.
    let mut dev = b.upload(&logits).map_err(err)?;
    expect_err(
        "wrong shape",
        b.policy_loss(
            &mut dev,
            LogitsShape {
                tokens: n,
                vocab: v + 1,
            },
            &inputs.view(false),
            &config,
        ),
    )?;
    // NaN logits.
    let mut bad = logits.clone();
    bad[5] = f32::NAN;
    let mut dev = b.upload(&bad).map_err(err)?;
    expect_err(
        "NaN logits",
        b.policy_loss(
            &mut dev,
            LogitsShape {
                tokens: n,
                vocab: v,
            },
            &inputs.view(false),
            &config,
        ),
    )?;
    // Target outside the vocabulary.
    let mut host_bad = HostInputs::random(&mut rng, v, |_, _| -2.0, n);
    host_bad.targets[2] = v as u32;
    let inputs_bad = DeviceInputs::upload(b, &host_bad)?;
    let mut dev = b.upload(&logits).map_err(err)?;
    expect_err(
        "target out of range",
        b.policy_loss(
            &mut dev,
            LogitsShape {
                tokens: n,
                vocab: v,
            },
            &inputs_bad.view(false),
            &config,
        ),
    )?;
    // KL without reference log-probs.
    let kl = LossConfig {
        kl_coef: 0.1,
        ..config
    };
    let mut dev = b.upload(&logits).map_err(err)?;
    expect_err(
        "kl without ref",
        b.policy_loss(
            &mut dev,
            LogitsShape {
                tokens: n,
                vocab: v,
            },
            &inputs.view(false),
            &kl,
        ),
    )?;
    // Scatter index out of range.
    let values = b.upload(&[1.0f32, 2.0]).map_err(err)?;
    if b.scatter_to_tokens(&values, &b.upload(&[0u32, 2]).map_err(err)?)
        .is_ok()
    {
        return Err("scatter with an index out of range: accepted".into());
    }
    Ok(())
}

/// Generates the parity suite's tests for one backend:
/// `parity_suite!(module_name, constructor_expression, "REQUIRE_ENV_VAR");`
#[macro_export]
macro_rules! parity_suite {
    ($name:ident, $make:expr, $require_env:literal) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn backend() -> Option<impl supo_core::Backend> {
                $crate::backend_or_skip(
                    concat!("parity suite for ", stringify!($name)),
                    $make,
                    $require_env,
                )
            }
            $crate::parity_suite!(@test token_logprobs, check_token_logprobs);
            $crate::parity_suite!(@test policy_loss, check_policy_loss);
            $crate::parity_suite!(@test linear_policy_loss, check_linear_policy_loss);
            $crate::parity_suite!(@test advantages_and_scatter, check_advantages_and_scatter);
            $crate::parity_suite!(@test masked_vocab, check_masked_vocab);
            $crate::parity_suite!(@test deterministic, check_deterministic);
            $crate::parity_suite!(@test errors, check_errors);
        }
    };
    (@test $test:ident, $check:ident) => {
        #[test]
        fn $test() {
            if let Some(b) = backend() {
                if let Err(e) = $crate::parity::$check(&b) {
                    panic!("{}: {}", stringify!($test), e);
                }
            }
        }
    };
}
