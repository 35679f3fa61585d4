//! Properties of the estimator on log-prob batches: advantages are invariant to a shift of the
//! rewards (and to a positive scale when std-normalised), zero-mean within each group, masked
//! trajectories get no gradient, the reported `grad_logp` is the derivative of `loss` under every
//! aggregation mode, and the trajectory-balanced modes are the sequence modes when every
//! trajectory is one segment and do not depend on where a trajectory was cut.

use proptest::prelude::*;
use supo_core::estimator::advantage::group_advantages;
use supo_core::estimator::{
    AdvantageConfig, AdvantageLevel, AggMode, EstimatorConfig, LogProbBatch, LogProbLoss,
    LogProbSegment,
};
use supo_core::strategies;

fn rewards_and_groups() -> impl Strategy<Value = (Vec<f64>, Vec<u32>, Vec<bool>)> {
    (1usize..24)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec(-3.0f64..3.0, n),
                proptest::collection::vec(0u32..4, n),
                proptest::collection::vec(proptest::bool::weighted(0.25), n),
            )
        })
        .prop_map(|(r, g, m)| {
            // Dense group ids in order of appearance.
            let ids = supo_core::estimator::advantage::dense_group_ids(&g);
            (r, ids, m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn advantages_shift_invariant((r, g, m) in rewards_and_groups(), shift in -5.0f64..5.0, norm in any::<bool>(), in_stats in any::<bool>()) {
        let cfg = AdvantageConfig { norm_by_std: norm, masked_in_group_stats: in_stats, ..Default::default() };
        let a = group_advantages(&r, &g, &m, &cfg).unwrap();
        let shifted: Vec<f64> = r.iter().map(|x| x + shift).collect();
        let b = group_advantages(&shifted, &g, &m, &cfg).unwrap();
        // verl's rule: a group of one has mean 0 and std 1, so only larger groups are invariant.
        for i in in_groups_of_two_or_more(&g, &m, in_stats) {
            prop_assert!((a[i] - b[i]).abs() <= 1e-6 * (1.0 + a[i].abs()), "{} vs {}", a[i], b[i]);
        }
    }

    #[test]
    fn advantages_scale_invariant_when_normalised((r, g, m) in rewards_and_groups(), scale in 0.5f64..20.0) {
        // eps = 0 makes the invariance exact (groups with zero std give 0/0 → skip them).
        let cfg = AdvantageConfig { norm_by_std: true, eps: 0.0, ..Default::default() };
        let a = group_advantages(&r, &g, &m, &cfg).unwrap();
        let scaled: Vec<f64> = r.iter().map(|x| x * scale).collect();
        let b = group_advantages(&scaled, &g, &m, &cfg).unwrap();
        for i in in_groups_of_two_or_more(&g, &m, true) {
            if a[i].is_finite() {
                prop_assert!((a[i] - b[i]).abs() <= 1e-9 * (1.0 + a[i].abs()), "{} vs {}", a[i], b[i]);
            }
        }
    }

    #[test]
    fn advantages_zero_mean_per_group((r, g, m) in rewards_and_groups(), norm in any::<bool>(), in_stats in any::<bool>()) {
        let cfg = AdvantageConfig { norm_by_std: norm, masked_in_group_stats: in_stats, ..Default::default() };
        let a = group_advantages(&r, &g, &m, &cfg).unwrap();
        let groups = g.iter().copied().max().map_or(0, |x| x + 1);
        for grp in 0..groups {
            let members: Vec<usize> = (0..r.len()).filter(|&i| g[i] == grp && (in_stats || !m[i])).collect();
            if members.len() > 1 {
                let sum: f64 = members.iter().map(|&i| a[i]).sum();
                prop_assert!(sum.abs() < 1e-6 * members.len() as f64, "group {grp} sums to {sum}");
            }
            if !in_stats {
                for i in (0..r.len()).filter(|&i| g[i] == grp && m[i]) {
                    prop_assert_eq!(a[i], 0.0);
                }
            }
        }
    }

    #[test]
    fn masked_trajectories_get_no_gradient(batch in strategies::log_prob_batch(6, 3, 10), cfg in strategies::estimator_config()) {
        let out = batch.loss(&cfg).unwrap();
        for (t, grads) in batch.trajectories.iter().zip(&out.grad_logp) {
            if cfg.is_masked(t.finish) {
                prop_assert!(grads.iter().flatten().all(|&g| g == 0.0));
            }
            for (s, g) in t.segments.iter().zip(grads) {
                for (&m, &gv) in s.mask.iter().zip(g) {
                    if m == 0 { prop_assert_eq!(gv, 0.0); }
                }
            }
        }
    }

    #[test]
    fn grad_logp_is_the_derivative_of_loss(batch in strategies::log_prob_batch(5, 2, 8), cfg in strategies::estimator_config()) {
        for agg in AggMode::ALL {
            let cfg = EstimatorConfig { agg, ..cfg.clone() };
            let out = batch.loss(&cfg).unwrap();
            let h = 1e-6;
            for (ti, t) in batch.trajectories.iter().enumerate() {
                for (si, s) in t.segments.iter().enumerate() {
                    for j in 0..s.logp.len() {
                        if near_kink(&batch, &cfg, ti, si, j) { continue; }
                        let mut plus = batch.clone();
                        plus.trajectories[ti].segments[si].logp[j] += h;
                        let mut minus = batch.clone();
                        minus.trajectories[ti].segments[si].logp[j] -= h;
                        let fd = (plus.loss(&cfg).unwrap().loss - minus.loss(&cfg).unwrap().loss) / (2.0 * h);
                        let g = out.grad_logp[ti][si][j];
                        prop_assert!((fd - g).abs() <= 1e-6 + 1e-5 * g.abs(), "{agg}, token ({ti},{si},{j}): fd {fd} vs {g}");
                    }
                }
            }
        }
    }

    #[test]
    fn trajectory_modes_of_one_segment_trajectories_are_the_sequence_modes(batch in strategies::log_prob_batch(6, 1, 8), cfg in strategies::estimator_config()) {
        for (traj, seq) in [
            (AggMode::TrajMeanTokenMean, AggMode::SeqMeanTokenMean),
            (AggMode::TrajMeanTokenSum, AggMode::SeqMeanTokenSum),
        ] {
            let a = batch.loss(&EstimatorConfig { agg: traj, ..cfg.clone() }).unwrap();
            let b = batch.loss(&EstimatorConfig { agg: seq, ..cfg.clone() }).unwrap();
            prop_assert_eq!(a, b, "{} vs {}", traj, seq);
        }
    }

    #[test]
    fn trajectory_modes_do_not_depend_on_the_cuts(batch in strategies::log_prob_batch(6, 4, 6), cfg in strategies::estimator_config()) {
        // Each trajectory's segments joined into one: the same tokens, one cut fewer per summary.
        let joined = LogProbBatch {
            trajectories: batch.trajectories.iter().map(|t| {
                let mut one = LogProbSegment { ref_logp: Some(Vec::new()), ..Default::default() };
                for s in &t.segments {
                    one.logp.extend(&s.logp);
                    one.old_logp.extend(&s.old_logp);
                    one.ref_logp.as_mut().unwrap().extend(s.ref_logp.as_ref().unwrap());
                    one.mask.extend(&s.mask);
                }
                let mut t = t.clone();
                t.segments = vec![one];
                t
            }).collect(),
        };
        // Eq. 4 counts segments in the group statistics: only Eq. 3 is cut-free.
        let cfg = EstimatorConfig {
            advantage: AdvantageConfig { level: AdvantageLevel::Trajectory, ..cfg.advantage },
            ..cfg
        };
        for agg in [AggMode::TrajMeanTokenMean, AggMode::TrajMeanTokenSum] {
            let cfg = EstimatorConfig { agg, ..cfg.clone() };
            let cut = batch.loss(&cfg).unwrap();
            let whole = joined.loss(&cfg).unwrap();
            prop_assert_eq!(&cut.advantages, &whole.advantages);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + a.abs());
            for (name, a, b) in scalars(&cut).into_iter().zip(scalars(&whole)).map(|((n, a), (_, b))| (n, a, b)) {
                prop_assert!(close(a, b), "{agg} {name}: cut {a} vs whole {b}");
            }
            for (t, w) in cut.grad_logp.iter().zip(&whole.grad_logp) {
                let c: Vec<f64> = t.iter().flatten().copied().collect();
                prop_assert_eq!(c.len(), w[0].len());
                for (a, b) in c.iter().zip(&w[0]) {
                    prop_assert!(close(*a, *b), "{agg} gradient: cut {a} vs whole {b}");
                }
            }
        }
    }

    #[test]
    fn segment_level_advantages_repeat_rewards(batch in strategies::log_prob_batch(6, 3, 4)) {
        // Eq. 4 with one segment per trajectory is Eq. 3.
        let single = LogProbBatch {
            trajectories: batch.trajectories.iter().map(|t| {
                let mut t = t.clone();
                t.segments.truncate(1);
                t
            }).collect(),
        };
        let mut cfg = EstimatorConfig::default();
        let a = single.loss(&cfg).unwrap().advantages;
        cfg.advantage.level = AdvantageLevel::Segment;
        let b = single.loss(&cfg).unwrap().advantages;
        prop_assert_eq!(a, b);
    }
}

/// The scalar outputs of a loss, by name.
fn scalars(out: &LogProbLoss) -> [(&'static str, f64); 6] {
    [
        ("loss", out.loss),
        ("pg_loss", out.pg_loss),
        ("kl_loss", out.kl_loss),
        ("clipfrac", out.clipfrac),
        ("clipfrac_lower", out.clipfrac_lower),
        ("approx_kl", out.approx_kl),
    ]
}

/// Samples whose group has at least two members counted in its statistics.
fn in_groups_of_two_or_more(g: &[u32], m: &[bool], in_stats: bool) -> Vec<usize> {
    let counted = |i: usize| in_stats || !m[i];
    (0..g.len())
        .filter(|&i| counted(i) && (0..g.len()).filter(|&j| g[j] == g[i] && counted(j)).count() > 1)
        .collect()
}

/// Whether a token's ratio (or its k3 clamp) sits within the finite-difference step of a kink.
fn near_kink(batch: &LogProbBatch, cfg: &EstimatorConfig, ti: usize, si: usize, j: usize) -> bool {
    let s = &batch.trajectories[ti].segments[si];
    let d = s.logp[j] - s.old_logp[j];
    let r = d.exp();
    let near = |a: f64, b: f64| (a - b).abs() < 1e-4;
    near(r, 1.0 - cfg.loss.clip_low)
        || near(r, 1.0 + cfg.loss.clip_high)
        || cfg.loss.dual_clip.is_some_and(|c| near(r, c))
        || near(d.abs(), 20.0)
}
