//! The CPU backend's parallel path is bit-identical to the serial one, and padding a training
//! batch with zero-weight rows changes no loss, gradient or statistic.

use proptest::prelude::*;
use supo_core::backend::TokenInputs;
use supo_core::estimator::{EstimatorConfig, LossConfig, TrainingBatch};
use supo_core::{strategies, Backend, CpuBackend, LinearShape, LogitsShape};
use supo_tests::data::{random_logits, HostInputs};
use supo_tests::rng::Rng;

fn inputs<'a>(h: &'a HostInputs) -> TokenInputs<'a, CpuBackend> {
    TokenInputs {
        targets: &h.targets,
        old_logprobs: &h.old,
        ref_logprobs: Some(&h.reference),
        advantages: &h.advantages,
        weights: &h.weights,
    }
}

#[test]
fn parallel_is_bit_identical_to_serial() {
    let mut rng = Rng::new(5);
    let config = LossConfig {
        kl_coef: 0.1,
        entropy_coef: 0.01,
        ..LossConfig::default()
    };
    for &(n, v) in &[(1usize, 3usize), (9, 1001), (100, 4099)] {
        let logits = random_logits::<half::bf16>(&mut rng, n, v, true);
        let host = HostInputs::random(&mut rng, v, |_, _| -7.0, n);
        let shape = LogitsShape {
            tokens: n,
            vocab: v,
        };
        let (mut a, mut b) = (logits.clone(), logits.clone());
        let ra = CpuBackend::new()
            .policy_loss(&mut a, shape, &inputs(&host), &config)
            .unwrap();
        let rb = CpuBackend::parallel()
            .policy_loss(&mut b, shape, &inputs(&host), &config)
            .unwrap();
        assert_eq!(ra.loss.to_bits(), rb.loss.to_bits());
        assert_eq!(ra, rb);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));

        let d = 24;
        let hidden = random_logits::<f32>(&mut rng, n, d, false);
        let weight = random_logits::<f32>(&mut rng, v, d, false);
        let ls = LinearShape {
            tokens: n,
            hidden: d,
            vocab: v,
            chunk: 7,
        };
        let la = CpuBackend::new()
            .linear_policy_loss(&hidden, &weight, ls, &inputs(&host), &config)
            .unwrap();
        let lb = CpuBackend::parallel()
            .linear_policy_loss(&hidden, &weight, ls, &inputs(&host), &config)
            .unwrap();
        assert_eq!(la.report, lb.report);
        assert_eq!(la.grad_hidden, lb.grad_hidden);
        assert_eq!(la.grad_weight, lb.grad_weight);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn padding_rows_change_nothing(trajs in strategies::trajectories(6, 3), cfg in strategies::estimator_config(), micro in 1usize..8) {
        let batch = TrainingBatch::new(&trajs, &cfg).unwrap();
        let mut padded = batch.clone();
        padded.pad_to_multiple(micro, &cfg).unwrap();
        prop_assert_eq!(padded.rows.len() % micro, 0);
        prop_assert_eq!(&padded.weights, &batch.weights);
        prop_assert_eq!(&padded.targets, &batch.targets);
    }

    #[test]
    fn training_batch_tokens_follow_segments(trajs in strategies::trajectories(6, 3)) {
        let cfg = EstimatorConfig::default();
        let batch = TrainingBatch::new(&trajs, &cfg).unwrap();
        let segments: usize = trajs.iter().map(|t| t.segments.len()).sum();
        prop_assert_eq!(batch.rows.len(), segments);
        prop_assert_eq!(batch.tokens(), batch.weights.len());
        for row in &batch.rows {
            let t = &trajs[row.trajectory.unwrap()];
            prop_assert_eq!(row.advantage, batch.advantages[row.trajectory.unwrap()]);
            if cfg.is_masked(t.finish) {
                prop_assert!(row.mask.iter().all(|&m| m == 0));
            }
        }
    }
}

#[test]
fn every_instruction_set_gives_the_same_bits() {
    use supo_core::backend::kernel::Isa;
    let mut rng = Rng::new(8);
    let config = LossConfig {
        kl_coef: 0.1,
        entropy_coef: 0.01,
        temperature: 0.9,
        ..LossConfig::default()
    };
    let (n, v) = (33, 3001);
    let logits = random_logits::<f32>(&mut rng, n, v, true);
    let host = HostInputs::random(&mut rng, v, |_, _| -8.0, n);
    let shape = LogitsShape {
        tokens: n,
        vocab: v,
    };
    let (mut a, mut b) = (logits.clone(), logits);
    let base = CpuBackend::new().with_isa(Isa::Baseline);
    let best = CpuBackend::new().with_isa(Isa::detect());
    let ra = base
        .policy_loss(&mut a, shape, &inputs(&host), &config)
        .unwrap();
    let rb = best
        .policy_loss(&mut b, shape, &inputs(&host), &config)
        .unwrap();
    assert_eq!(ra, rb, "{:?} vs baseline", Isa::detect());
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn bf16_rounding_matches_half() {
    use supo_core::Element;
    let mut rng = Rng::new(1);
    let specials = [
        0.0f32,
        -0.0,
        1.0,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-40,
        f32::INFINITY,
        f32::NEG_INFINITY,
        3.389_531_4e38,
    ];
    let randoms = (0..200_000).map(|_| f32::from_bits(rng.next_u64() as u32));
    for x in specials.into_iter().chain(randoms) {
        let ours = <half::bf16 as Element>::from_f32(x);
        let theirs = half::bf16::from_f32(x);
        if x.is_nan() {
            assert!(ours.is_nan());
        } else {
            assert_eq!(ours.to_bits(), theirs.to_bits(), "{x:e}");
        }
        assert_eq!(Element::to_f32(theirs).to_bits(), theirs.to_f32().to_bits());
    }
}
