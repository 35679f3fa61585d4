//! Checks of `WgpuBackend` beyond the shared parity suite (`tests/tests/parity_wgpu.rs`):
//! identical errors to the CPU reference, masked vocabularies, chunked bindings, dispatches
//! wider than one grid dimension, half-precision gradients within one ulp, empty inputs and
//! bit-identical repeated runs.
//!
//! Skipped (with a message) when no adapter is found, unless `SUPO_REQUIRE_WGPU=1`.
//! Tolerances: f32 log-probs, losses and gradients 1e-4 relative to the largest magnitude of the
//! compared vector (plus 1e-7 absolute); f16/bf16 gradients within one unit in the last place
//! of the element type.

use std::sync::OnceLock;

use half::{bf16, f16};
use supo_core::backend::GroupAdvantageConfig;
use supo_core::estimator::{KlType, LossConfig};
use supo_core::{Backend, CpuBackend, Element, Error, LinearShape, LogitsShape, LossReport};
use supo_tests::backend_or_skip;
use supo_tests::compare::{assert_close, to_f32};
use supo_tests::data::{DeviceInputs, HostInputs};
use supo_tests::rng::Rng;
use supo_wgpu::WgpuBackend;

/// The shared backend, or `None` when the machine has no adapter (and it is not required).
fn gpu() -> Option<&'static WgpuBackend> {
    static GPU: OnceLock<Option<WgpuBackend>> = OnceLock::new();
    GPU.get_or_init(|| backend_or_skip("wgpu tests", WgpuBackend::new(), "SUPO_REQUIRE_WGPU"))
        .as_ref()
}

/// Random per-token inputs for `n` rows of a vocabulary of `v`: log-probs around uniform's.
fn random_host(rng: &mut Rng, n: usize, v: usize) -> HostInputs {
    let base = -(v as f32).ln();
    HostInputs {
        targets: (0..n).map(|_| rng.below(v) as u32).collect(),
        old: (0..n).map(|_| base + 0.5 * rng.gaussian()).collect(),
        reference: (0..n).map(|_| base + 0.3 * rng.gaussian()).collect(),
        advantages: (0..n).map(|_| 2.0 * rng.gaussian()).collect(),
        weights: (0..n)
            .map(|_| if rng.unit() < 0.2 { 0.0 } else { rng.unit() })
            .collect(),
    }
}

/// Uploads per-token inputs to `b`.
fn upload<B: Backend>(b: &B, host: &HostInputs) -> DeviceInputs<B> {
    DeviceInputs::upload(b, host).unwrap()
}

fn random_logits<T: Element>(rng: &mut Rng, len: usize) -> Vec<T> {
    (0..len)
        .map(|_| T::from_f32(3.0 * rng.gaussian()))
        .collect()
}

/// Random logits `[n, v]` and per-token inputs, from the generator of state `seed`.
fn random_case<T: Element>(seed: u64, n: usize, v: usize) -> (Vec<T>, HostInputs, LogitsShape) {
    let mut rng = Rng::from_state(seed);
    let logits = random_logits(&mut rng, n * v);
    let host = random_host(&mut rng, n, v);
    (
        logits,
        host,
        LogitsShape {
            tokens: n,
            vocab: v,
        },
    )
}

/// Runs the fused loss on `b`, returning the report (or error) and the gradient.
fn run_loss<B: Backend, T: Element>(
    b: &B,
    logits: &[T],
    shape: LogitsShape,
    host: &HostInputs,
    config: &LossConfig,
    with_ref: bool,
) -> (Result<LossReport, Error>, Vec<T>) {
    let mut buffer = b.upload(logits).unwrap();
    let dev = upload(b, host);
    let report = b.policy_loss(&mut buffer, shape, &dev.view(with_ref), config);
    (report, b.download(&buffer).unwrap())
}

/// Runs the fused linear loss on `b` (no reference log-probs), returning the report and both
/// gradients, or the error.
fn run_linear<B: Backend>(
    b: &B,
    hidden: &[f32],
    weight: &[f32],
    shape: LinearShape,
    host: &HostInputs,
    config: &LossConfig,
) -> Result<(LossReport, Vec<f32>, Vec<f32>), Error> {
    let dev = upload(b, host);
    b.linear_policy_loss(
        &b.upload(hidden).unwrap(),
        &b.upload(weight).unwrap(),
        shape,
        &dev.view(false),
        config,
    )
    .map(|o| {
        (
            o.report,
            b.download(&o.grad_hidden).unwrap(),
            b.download(&o.grad_weight).unwrap(),
        )
    })
}

fn assert_report(what: &str, got: &LossReport, want: &LossReport) {
    assert_eq!(
        got.trained_tokens, want.trained_tokens,
        "{what}: trained tokens"
    );
    for (name, g, w) in [
        ("loss", got.loss, want.loss),
        ("pg_loss", got.pg_loss, want.pg_loss),
        ("kl_loss", got.kl_loss, want.kl_loss),
        ("entropy_loss", got.entropy_loss, want.entropy_loss),
        ("approx_kl", got.approx_kl, want.approx_kl),
        ("entropy", got.entropy, want.entropy),
    ] {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs().max(1e-3),
            "{what}: {name} {g}, expected {w}"
        );
    }
}

#[test]
fn name_and_adapter() {
    let Some(b) = gpu() else { return };
    assert!(b.name().starts_with("wgpu ("), "{}", b.name());
    assert!(b.name().contains(&b.adapter_info().name));
    assert!(b.limits().max_storage_buffers_per_shader_stage >= 8);
}

#[test]
fn upload_download_round_trips_every_type() {
    let Some(b) = gpu() else { return };
    let h: Vec<f16> = (0..7u16).map(|i| f16::from_bits(i * 9001)).collect();
    assert_eq!(b.download(&b.upload(&h).unwrap()).unwrap(), h);
    let g: Vec<bf16> = (0..5u16).map(|i| bf16::from_bits(i * 7919)).collect();
    assert_eq!(b.download(&b.upload(&g).unwrap()).unwrap(), g);
    let e: Vec<u32> = Vec::new();
    let eb = b.upload(&e).unwrap();
    assert_eq!(b.len(&eb), 0);
    assert!(b.download(&eb).unwrap().is_empty());
}

#[test]
fn empty_inputs() {
    let Some(b) = gpu() else { return };
    let cpu = CpuBackend::new();
    let host = random_host(&mut Rng::from_state(1), 0, 5);
    let shape = LogitsShape {
        tokens: 0,
        vocab: 5,
    };
    let (got, grad) = run_loss::<_, f32>(b, &[], shape, &host, &LossConfig::default(), false);
    let (want, _) = run_loss::<_, f32>(&cpu, &[], shape, &host, &LossConfig::default(), false);
    assert_eq!(got.unwrap(), want.unwrap());
    assert!(grad.is_empty());
    let out = b
        .token_logprobs::<f32>(&b.upload(&[]).unwrap(), &b.upload(&[]).unwrap(), shape, 1.0)
        .unwrap();
    assert!(b.download(&out.logprobs).unwrap().is_empty());
    let none = b.upload::<f32>(&[]).unwrap();
    let ids = b.upload::<u32>(&[]).unwrap();
    let config = GroupAdvantageConfig {
        norm_by_std: true,
        eps: 1e-6,
        masked_in_group_stats: true,
    };
    let adv = b.group_advantages(&none, &ids, &ids, &config).unwrap();
    assert_eq!(b.len(&adv), 0);
    assert_eq!(b.len(&b.scatter_to_tokens(&none, &ids).unwrap()), 0);
    // The linear loss with no token still checks the weight and returns a zero dL/dW.
    let weight = b.upload(&[0.5f32; 15]).unwrap();
    let hidden = b.upload::<f32>(&[]).unwrap();
    let dev = upload(b, &host);
    let lin = b
        .linear_policy_loss(
            &hidden,
            &weight,
            LinearShape {
                tokens: 0,
                hidden: 3,
                vocab: 5,
                chunk: 4,
            },
            &dev.view(false),
            &LossConfig::default(),
        )
        .unwrap();
    assert_eq!(lin.report, LossReport::default());
    assert_eq!(b.download(&lin.grad_weight).unwrap(), vec![0.0; 15]);
}

/// Every bad input gives exactly the CPU reference's error.
#[test]
fn errors_match_the_cpu() {
    let Some(b) = gpu() else { return };
    let cpu = CpuBackend::new();
    let (n, v) = (6, 37);
    let (logits, host, shape) = random_case::<f32>(5, n, v);
    let config = LossConfig::default();
    let kl = LossConfig {
        kl_coef: 0.1,
        ..config
    };
    let weighted = host.weights.iter().position(|&w| w != 0.0).unwrap();

    let mut cases: Vec<(&str, Vec<f32>, HostInputs, LossConfig, bool)> = Vec::new();
    let mut h = host.clone();
    h.targets[3] = v as u32 + 2;
    cases.push(("target", logits.clone(), h, config, false));
    for field in 0..4 {
        let mut h = host.clone();
        let slot = match field {
            0 => &mut h.old,
            1 => &mut h.advantages,
            2 => &mut h.weights,
            _ => &mut h.reference,
        };
        slot[4] = if field % 2 == 0 {
            f32::NAN
        } else {
            f32::INFINITY
        };
        cases.push(("per-token", logits.clone(), h, kl, true));
    }
    for bad in [f32::NAN, f32::INFINITY] {
        let mut l = logits.clone();
        l[weighted * v + 7] = bad;
        cases.push(("logit", l, host.clone(), config, false));
    }
    let mut l = logits.clone();
    l[weighted * v..(weighted + 1) * v].fill(f32::NEG_INFINITY);
    cases.push(("all -inf", l, host.clone(), config, false));
    let mut l = logits.clone();
    l[weighted * v + host.targets[weighted] as usize] = f32::NEG_INFINITY;
    cases.push(("-inf target", l, host.clone(), config, false));
    cases.push(("kl without ref", logits.clone(), host.clone(), kl, false));
    let bad_config = LossConfig {
        clip_low: 1.5,
        ..config
    };
    cases.push(("config", logits.clone(), host.clone(), bad_config, false));

    for (what, l, h, c, with_ref) in &cases {
        let (got, _) = run_loss(b, l, shape, h, c, *with_ref);
        let (want, _) = run_loss(&cpu, l, shape, h, c, *with_ref);
        let want = want.expect_err(what);
        assert_eq!(got.expect_err(what), want, "{what}");
        // The same for the half-precision path of the logits.
        let l16: Vec<f16> = l.iter().map(|&x| f16::from_f32(x)).collect();
        let (got, _) = run_loss(b, &l16, shape, h, c, *with_ref);
        assert_eq!(got.expect_err(what), want, "{what} (f16)");
    }

    // Shapes and lengths.
    let dev = upload(b, &host);
    let mut buf = b.upload(&logits).unwrap();
    let wrong = LogitsShape {
        tokens: n,
        vocab: v + 1,
    };
    assert!(matches!(
        b.policy_loss(&mut buf, wrong, &dev.view(false), &config),
        Err(Error::InvalidInput(_))
    ));

    // token_logprobs.
    let targets = b.upload(&host.targets).unwrap();
    let mut l = logits.clone();
    l[2 * v + 1] = f32::NAN;
    let want = cpu
        .token_logprobs(&l, &host.targets, shape, 1.0)
        .err()
        .unwrap();
    let got = b
        .token_logprobs(&b.upload(&l).unwrap(), &targets, shape, 1.0)
        .err()
        .unwrap();
    assert_eq!(got, want);
    let mut t = host.targets.clone();
    t[1] = 1000;
    let want = cpu.token_logprobs(&logits, &t, shape, 1.0).err().unwrap();
    let got = b
        .token_logprobs(
            &b.upload(&logits).unwrap(),
            &b.upload(&t).unwrap(),
            shape,
            1.0,
        )
        .err()
        .unwrap();
    assert_eq!(got, want);
    let lb = b.upload(&logits).unwrap();
    assert!(b.token_logprobs(&lb, &targets, shape, 0.0).is_err());
    assert!(b.token_logprobs(&lb, &targets, shape, f32::NAN).is_err());

    // group_advantages and scatter_to_tokens.
    let config = GroupAdvantageConfig {
        norm_by_std: true,
        eps: 1e-6,
        masked_in_group_stats: true,
    };
    let cases: [(Vec<f32>, Vec<u32>, Vec<u32>); 3] = [
        (vec![1.0, f32::NAN, 0.0], vec![0, 0, 1], vec![0; 3]),
        (vec![1.0, 0.0, 0.0], vec![0, 0, 3], vec![0; 3]),
        (vec![1.0, 0.0, 0.0], vec![0, 0], vec![0; 3]),
    ];
    for (r, g, m) in cases {
        let want = cpu.group_advantages(&r, &g, &m, &config).err().unwrap();
        let got = b
            .group_advantages(
                &b.upload(&r).unwrap(),
                &b.upload(&g).unwrap(),
                &b.upload(&m).unwrap(),
                &config,
            )
            .err()
            .unwrap();
        assert_eq!(got, want);
    }
    let values = [0.5f32, 1.5];
    let index = [0u32, 1, 5, 1];
    let want = cpu
        .scatter_to_tokens(&values.to_vec(), &index.to_vec())
        .err();
    let got = b
        .scatter_to_tokens(&b.upload(&values).unwrap(), &b.upload(&index).unwrap())
        .err();
    assert_eq!(got, want);
}

/// A poisoned row is an error even when its weight is zero, as on the CPU; the logits are left
/// untouched.
#[test]
fn bad_row_of_weight_zero_is_an_error() {
    let Some(b) = gpu() else { return };
    let cpu = CpuBackend::new();
    let (n, v) = (5, 50);
    let (mut logits, mut host, shape) = random_case::<f32>(8, n, v);
    host.weights[2] = 0.0;
    logits[2 * v + 3] = f32::NAN;
    let config = LossConfig::default();
    let (got, grad) = run_loss(b, &logits, shape, &host, &config, false);
    let (want, _) = run_loss(&cpu, &logits, shape, &host, &config, false);
    assert_eq!(got.unwrap_err(), want.unwrap_err());
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    assert!(same(&grad, &logits));
}

/// Masked vocabulary entries (−∞ logits) get probability and gradient zero.
#[test]
fn masked_vocabulary() {
    let Some(b) = gpu() else { return };
    check_masked::<f32>(b);
    check_masked::<f16>(b);
    check_masked::<bf16>(b);
}

fn check_masked<T: Element>(b: &WgpuBackend) {
    let cpu = CpuBackend::new();
    let (n, v) = (9, 301);
    let (mut logits, host, shape) = random_case::<T>(11, n, v);
    for (i, x) in logits.iter_mut().enumerate() {
        if i % 3 == 0 && (i % v) as u32 != host.targets[i / v] {
            *x = T::from_f32(f32::NEG_INFINITY);
        }
    }
    let config = LossConfig {
        entropy_coef: 0.01,
        ..LossConfig::default()
    };
    let (got, grad) = run_loss(b, &logits, shape, &host, &config, false);
    let (want, want_grad) = run_loss(&cpu, &logits, shape, &host, &config, false);
    assert_report("masked", &got.unwrap(), &want.unwrap());
    assert_close("masked gradient", &to_f32(&grad), &to_f32(&want_grad), 2e-2);
    for (i, g) in grad.iter().enumerate() {
        if logits[i].to_f32() == f32::NEG_INFINITY {
            assert_eq!(g.to_f32(), 0.0, "masked entry {i}");
        }
    }
}

/// Chunked bindings (forced by a small binding limit) give the same bits as one binding, for
/// odd row lengths whose packed half-precision words straddle rows and chunks.
#[test]
fn chunked_bindings_are_bit_identical() {
    let Some(b) = gpu() else { return };
    let Ok(small) = WgpuBackend::new() else {
        return;
    };
    let small = small.with_binding_limit(4096);
    check_chunked::<f32>(b, &small);
    check_chunked::<f16>(b, &small);
    check_chunked::<bf16>(b, &small);
}

fn check_chunked<T: Element>(b: &WgpuBackend, small: &WgpuBackend) {
    let (n, v) = (41, 333);
    let (logits, host, shape) = random_case::<T>(13, n, v);
    let config = LossConfig {
        kl_coef: 0.1,
        kl_type: KlType::K2,
        entropy_coef: 0.01,
        temperature: 0.8,
        ..LossConfig::default()
    };
    let (whole, whole_grad) = run_loss(b, &logits, shape, &host, &config, true);
    let (chunked, chunked_grad) = run_loss(small, &logits, shape, &host, &config, true);
    assert_eq!(whole.unwrap(), chunked.unwrap());
    let bits = |g: &[T]| -> Vec<u32> { g.iter().map(|x| x.to_f32().to_bits()).collect() };
    assert_eq!(bits(&whole_grad), bits(&chunked_grad));

    let targets = b.upload(&host.targets).unwrap();
    let lp_whole = b
        .token_logprobs(&b.upload(&logits).unwrap(), &targets, shape, 1.3)
        .unwrap();
    let targets_small = small.upload(&host.targets).unwrap();
    let lp_small = small
        .token_logprobs(&small.upload(&logits).unwrap(), &targets_small, shape, 1.3)
        .unwrap();
    assert_eq!(
        b.download(&lp_whole.logprobs).unwrap(),
        small.download(&lp_small.logprobs).unwrap()
    );
    assert_eq!(
        b.download(&lp_whole.entropy).unwrap(),
        small.download(&lp_small.entropy).unwrap()
    );
}

/// More rows than one dispatch dimension holds.
#[test]
fn rows_beyond_one_grid_dimension() {
    let Some(b) = gpu() else { return };
    let cpu = CpuBackend::new();
    let (n, v) = (70_000, 3);
    let (logits, host, shape) = random_case::<f32>(17, n, v);
    let got = b
        .token_logprobs(
            &b.upload(&logits).unwrap(),
            &b.upload(&host.targets).unwrap(),
            shape,
            1.0,
        )
        .unwrap();
    let want = cpu
        .token_logprobs(&logits, &host.targets, shape, 1.0)
        .unwrap();
    assert_close(
        "logprobs",
        &b.download(&got.logprobs).unwrap(),
        &want.logprobs,
        1e-4,
    );
    assert_close(
        "entropy",
        &b.download(&got.entropy).unwrap(),
        &want.entropy,
        1e-4,
    );
    let config = LossConfig::default();
    let (got, grad) = run_loss(b, &logits, shape, &host, &config, false);
    let (want, want_grad) = run_loss(&cpu, &logits, shape, &host, &config, false);
    assert_report("many rows", &got.unwrap(), &want.unwrap());
    assert_close("gradient", &grad, &want_grad, 1e-4);
}

/// Half-precision gradients are the CPU's to within one unit in the last place (the f32 values
/// agree to a few ulp, so rounding may only differ at a tie boundary), subnormals included.
#[test]
fn half_gradients_within_one_ulp() {
    let Some(b) = gpu() else { return };
    check_ulps::<f16>(b, |x| x.to_bits());
    check_ulps::<bf16>(b, |x| x.to_bits());
}

fn check_ulps<T: Element>(b: &WgpuBackend, bits: impl Fn(T) -> u16) {
    let cpu = CpuBackend::new();
    let (n, v) = (23, 2049);
    let (logits, host, shape) = random_case::<T>(19, n, v);
    let config = LossConfig::default();
    let (_, grad) = run_loss(b, &logits, shape, &host, &config, false);
    let (_, want) = run_loss(&cpu, &logits, shape, &host, &config, false);
    // Sign-magnitude to a monotonic integer line (+0 and −0 one apart).
    let line = |x: T| {
        let h = i32::from(bits(x));
        if h & 0x8000 != 0 {
            -(h & 0x7fff) - 1
        } else {
            h
        }
    };
    let mut subnormal = 0;
    for (i, (&g, &w)) in grad.iter().zip(&want).enumerate() {
        let d = (line(g) - line(w)).abs();
        assert!(d <= 1, "element {i}: {} vs {}", g.to_f32(), w.to_f32());
        subnormal += usize::from(bits(w) & 0x7fff != 0 && bits(w) & 0x7fff < 0x0400);
    }
    if T::DTYPE == supo_core::DType::F16 {
        assert!(
            subnormal > 0,
            "the f16 case should exercise subnormal gradients"
        );
    }
}

/// Extreme logits (±1e4) stay finite and agree with the CPU.
#[test]
fn extreme_logits() {
    let Some(b) = gpu() else { return };
    let cpu = CpuBackend::new();
    let (n, v) = (12, 517);
    let mut rng = Rng::from_state(23);
    let logits: Vec<f32> = (0..n * v)
        .map(|_| match rng.below(4) {
            0 => 1e4,
            1 => -1e4,
            _ => 1e4 * (2.0 * rng.unit() - 1.0),
        })
        .collect();
    let host = random_host(&mut rng, n, v);
    let shape = LogitsShape {
        tokens: n,
        vocab: v,
    };
    let config = LossConfig {
        entropy_coef: 0.01,
        ..LossConfig::default()
    };
    let (got, grad) = run_loss(b, &logits, shape, &host, &config, false);
    let (want, want_grad) = run_loss(&cpu, &logits, shape, &host, &config, false);
    let got = got.unwrap();
    assert!(got.loss.is_finite() && got.entropy.is_finite());
    assert_report("extreme", &got, &want.unwrap());
    assert!(grad.iter().all(|g| g.is_finite()));
    assert_close("gradient", &grad, &want_grad, 1e-4);
}

/// The linear loss: errors as on the CPU, and identical bits on a second run.
#[test]
fn linear_loss_errors_and_determinism() {
    let Some(b) = gpu() else { return };
    let cpu = CpuBackend::new();
    let (n, d, v) = (21, 17, 130);
    let mut rng = Rng::from_state(29);
    let hidden: Vec<f32> = (0..n * d).map(|_| rng.gaussian()).collect();
    let weight: Vec<f32> = (0..v * d).map(|_| 0.3 * rng.gaussian()).collect();
    let host = random_host(&mut rng, n, v);
    let shape = LinearShape {
        tokens: n,
        hidden: d,
        vocab: v,
        chunk: 8,
    };
    let config = LossConfig {
        entropy_coef: 0.01,
        ..LossConfig::default()
    };
    let run = |h: &[f32], w: &[f32]| run_linear(b, h, w, shape, &host, &config);
    let first = run(&hidden, &weight).unwrap();
    let second = run(&hidden, &weight).unwrap();
    assert_eq!(first.0, second.0);
    let bits = |x: &[f32]| -> Vec<u32> { x.iter().map(|v| v.to_bits()).collect() };
    assert_eq!(bits(&first.1), bits(&second.1));
    assert_eq!(bits(&first.2), bits(&second.2));
    let want = run_linear(&cpu, &hidden, &weight, shape, &host, &config).unwrap();
    assert_report("linear", &first.0, &want.0);
    assert_close("dL/dhidden", &first.1, &want.1, 1e-4);
    assert_close("dL/dweight", &first.2, &want.2, 1e-4);

    let mut bad = weight.clone();
    bad[40] = f32::NAN;
    assert!(matches!(run(&hidden, &bad), Err(Error::NonFinite(_))));
    let mut bad = hidden.clone();
    bad[100] = f32::NEG_INFINITY;
    assert!(matches!(run(&bad, &weight), Err(Error::NonFinite(_))));
    assert!(matches!(
        run(&hidden[1..], &weight),
        Err(Error::InvalidInput(_))
    ));
    let mut bad_host = host.clone();
    bad_host.targets[0] = v as u32;
    let got = run_linear(b, &hidden, &weight, shape, &bad_host, &config).err();
    let want = run_linear(&cpu, &hidden, &weight, shape, &bad_host, &config).err();
    assert_eq!(got, want);
}

/// Under a small binding limit the linear loss splits its chunks further (same results as the
/// CPU), and an operand too large for one binding is an error, not a panic.
#[test]
fn linear_loss_under_a_small_binding_limit() {
    let Some(_) = gpu() else { return };
    let Ok(small) = WgpuBackend::new() else {
        return;
    };
    let small = small.with_binding_limit(4096);
    let cpu = CpuBackend::new();
    let (n, d, v) = (45, 4, 50);
    let mut rng = Rng::from_state(31);
    let hidden: Vec<f32> = (0..n * d).map(|_| rng.gaussian()).collect();
    let weight: Vec<f32> = (0..v * d).map(|_| 0.3 * rng.gaussian()).collect();
    let host = random_host(&mut rng, n, v);
    let shape = LinearShape {
        tokens: n,
        hidden: d,
        vocab: v,
        chunk: 64,
    };
    let config = LossConfig::default();
    let (report, gh, gw) = run_linear(&small, &hidden, &weight, shape, &host, &config).unwrap();
    let want = run_linear(&cpu, &hidden, &weight, shape, &host, &config).unwrap();
    assert_report("small binding", &report, &want.0);
    assert_close("dL/dhidden", &gh, &want.1, 1e-4);
    assert_close("dL/dweight", &gw, &want.2, 1e-4);

    let big = LinearShape {
        hidden: 64,
        ..shape
    };
    let result = run_linear(
        &small,
        &vec![0.0f32; n * 64],
        &vec![0.0f32; v * 64],
        big,
        &host,
        &config,
    );
    assert!(matches!(result, Err(Error::Unsupported(_))));
}
