//! The fused linear loss on bf16 and f16 operands: exactly the f32 loss of the widened operands
//! where the CPU backend widens and computes in f32, and within a stated tolerance of the f32
//! loss of the unrounded operands. On a CPU with AVX512-BF16 the backend multiplies bf16
//! operands in bf16 by default ([`CpuBackend::with_bf16_products`]); that path is checked
//! against the widened one and the same tolerance.
//!
//! Tolerance against unrounded f32, relative to each vector's largest magnitude (the suite's
//! rule, `supo_tests::compare`): 5 % for bf16 (8-bit significands, 2⁻⁹ relative rounding of
//! every operand) and 1 % for f16 (11 bits). The margin over the rounding itself covers
//! gradient elements where `g · (onehot − p)` and the entropy term nearly cancel.

use half::{bf16, f16};
use supo_core::backend::LinearLossOutput;
use supo_core::estimator::LossConfig;
use supo_core::{Backend, CpuBackend, Element, LinearShape};
use supo_tests::compare::{assert_close, to_f32};
use supo_tests::data::{DeviceInputs, HostInputs};
use supo_tests::rng::Rng;

fn linear<T: Element>(
    b: &CpuBackend,
    hidden: &[T],
    weight: &[T],
    shape: LinearShape,
    host: &HostInputs,
    config: &LossConfig,
) -> LinearLossOutput<CpuBackend> {
    let inputs = DeviceInputs::upload(b, host).unwrap();
    b.linear_policy_loss(
        &hidden.to_vec(),
        &weight.to_vec(),
        shape,
        &inputs.view(true),
        config,
    )
    .unwrap()
}

/// `b`'s loss on `T` operands against the widened operands' (bit for bit when `widened_rel` is
/// `None`, else within that tolerance) and against unrounded f32 within `rel`.
/// A report's values, as one vector for [`assert_close`].
fn r(x: &supo_core::LossReport) -> Vec<f32> {
    vec![
        x.loss as f32,
        x.pg_loss as f32,
        x.kl_loss as f32,
        x.entropy_loss as f32,
        x.entropy as f32,
    ]
}

fn check<T: Element>(b: &CpuBackend, rel: f32, widened_rel: Option<f32>) {
    let exact_f32 = b.with_bf16_products(false);
    let mut rng = Rng::new(31);
    let config = LossConfig {
        kl_coef: 0.02,
        entropy_coef: 0.01,
        ..LossConfig::default()
    };
    // Ragged shapes: chunks that do not divide N, sizes off the GEMM tile multiples.
    for &(n, d, v, chunk) in &[
        (1usize, 5usize, 3usize, 1usize),
        (37, 64, 1001, 16),
        (130, 97, 3001, 64),
    ] {
        let h32: Vec<f32> = (0..n * d).map(|_| rng.normal()).collect();
        let scale = 1.0 / (d as f32).sqrt();
        let w32: Vec<f32> = (0..v * d).map(|_| scale * rng.normal()).collect();
        let host = HostInputs::random(&mut rng, v, |_, _| -(v as f32).ln(), n);
        let shape = LinearShape {
            tokens: n,
            hidden: d,
            vocab: v,
            chunk,
        };
        let h: Vec<T> = h32.iter().map(|&x| T::from_f32(x)).collect();
        let w: Vec<T> = w32.iter().map(|&x| T::from_f32(x)).collect();
        let low = linear(b, &h, &w, shape, &host, &config);
        let widened = linear(&exact_f32, &to_f32(&h), &to_f32(&w), shape, &host, &config);
        let at = format!("{:?} {n}x{d}x{v}/{chunk}", T::DTYPE);
        match widened_rel {
            None => {
                assert_eq!(low.report, widened.report);
                assert_eq!(low.grad_hidden, widened.grad_hidden);
                assert_eq!(low.grad_weight, widened.grad_weight);
            }
            Some(tol) => {
                let wide = format!("{at} against widened");
                assert_close(&wide, &r(&low.report), &r(&widened.report), tol);
                assert_close(&wide, &low.grad_hidden, &widened.grad_hidden, tol);
                assert_close(&wide, &low.grad_weight, &widened.grad_weight, tol);
            }
        }

        let exact = linear(&exact_f32, &h32, &w32, shape, &host, &config);
        assert_close(
            &format!("{at} report"),
            &r(&low.report),
            &r(&exact.report),
            rel,
        );
        assert_close(
            &format!("{at} dL/dhidden"),
            &low.grad_hidden,
            &exact.grad_hidden,
            rel,
        );
        assert_close(
            &format!("{at} dL/dweight"),
            &low.grad_weight,
            &exact.grad_weight,
            rel,
        );
    }
}

#[test]
fn bf16_linear_loss_is_the_f32_loss_of_its_values_and_near_unrounded_f32() {
    let b = CpuBackend::parallel().with_bf16_products(false);
    check::<bf16>(&b, 5e-2, None);
}

#[test]
fn f16_linear_loss_is_the_f32_loss_of_its_values_and_near_unrounded_f32() {
    check::<f16>(&CpuBackend::parallel(), 1e-2, None);
}

/// bf16 products (AVX512-BF16): the same within rounding the gradient of the logits to bf16
/// (2⁻⁹ relative) on top of the operands' own rounding.
#[test]
fn bf16_products_stay_near_the_widened_loss_and_unrounded_f32() {
    let b = CpuBackend::parallel().with_bf16_products(true);
    if !b.has_bf16_products() {
        eprintln!("bf16 products: skipped: this CPU has no AVX512-BF16 (the widened path runs)");
        check::<bf16>(&b, 5e-2, None);
        return;
    }
    check::<bf16>(&b, 5e-2, Some(1e-2));
}
