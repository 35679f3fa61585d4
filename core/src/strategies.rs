//! Public [`proptest`](mod@proptest) strategies (feature `proptest`) that generate *valid* values of the data
//! model: segments, trajectories, log-prob batches and configurations, for our own property
//! suites and for downstream ones.
//!
//! ```
//! use proptest::prelude::*;
//! use proptest::test_runner::TestRunner;
//! use supo_core::strategies;
//!
//! let mut runner = TestRunner::default();
//! runner
//!     .run(&strategies::log_prob_batch(4, 3, 12), |batch| {
//!         prop_assert!(batch.validate(true).is_ok());
//!         Ok(())
//!     })
//!     .unwrap();
//! ```

use alloc::string::String;
use alloc::vec::Vec;

use proptest::collection::vec;
use proptest::prelude::*;

use crate::context::ContextConfig;
use crate::estimator::{
    AdvantageConfig, AdvantageLevel, AggMode, EstimatorConfig, KlType, LogProbBatch,
    LogProbSegment, LogProbTrajectory, LossConfig,
};
use crate::trajectory::{FinishReason, Role, SummarySegment, TokenId, Trajectory, Turn};

/// Any finish reason.
pub fn finish_reason() -> impl Strategy<Value = FinishReason> {
    prop::sample::select(FinishReason::ALL.to_vec())
}

/// A log-probability in `[-8, 0]`.
pub fn logprob() -> impl Strategy<Value = f32> {
    -8.0f32..=0.0
}

/// A turn of `1..=max_len` tokens below `vocab`; agent turns carry log-probs.
pub fn turn(vocab: TokenId, max_len: usize) -> impl Strategy<Value = Turn> {
    let roles = prop::sample::select(vec![Role::Assistant, Role::Tool, Role::User]);
    (roles, vec(0..vocab, 1..=max_len)).prop_flat_map(|(role, tokens)| {
        let n = tokens.len();
        let lps = if role.is_agent() {
            vec(logprob(), n).boxed()
        } else {
            Just(Vec::new()).boxed()
        };
        lps.prop_map(move |logprobs| Turn {
            role,
            tokens: tokens.clone(),
            logprobs,
        })
    })
}

/// A segment with a prompt, `1..=max_turns` turns and possibly a closing summary.
pub fn summary_segment(vocab: TokenId, max_turns: usize) -> impl Strategy<Value = SummarySegment> {
    (
        vec(0..vocab, 1..8),
        vec(turn(vocab, 6), 1..=max_turns),
        any::<bool>(),
        turn(vocab, 6),
    )
        .prop_map(|(prompt, mut turns, summarised, summary)| {
            let summary_turn = summarised.then(|| {
                turns.push(Turn {
                    role: Role::Assistant,
                    ..summary.clone()
                });
                let last = turns.len() - 1;
                if turns[last].logprobs.len() != turns[last].tokens.len() {
                    turns[last].logprobs = turns[last].tokens.iter().map(|_| -1.0).collect();
                }
                last
            });
            SummarySegment {
                prompt,
                turns,
                summary_turn,
            }
        })
}

/// A trajectory of `1..=max_segments` segments in one of `groups` groups.
pub fn trajectory(groups: usize, max_segments: usize) -> impl Strategy<Value = Trajectory> {
    (
        0..groups.max(1),
        -1.0f64..=1.0,
        finish_reason(),
        vec(summary_segment(50, 4), 1..=max_segments),
    )
        .prop_map(|(g, reward, finish, segments)| Trajectory {
            group: alloc::format!("task-{g}"),
            reward,
            finish,
            segments,
        })
}

/// A batch of `1..=max_trajectories` trajectories.
pub fn trajectories(
    max_trajectories: usize,
    groups: usize,
) -> impl Strategy<Value = Vec<Trajectory>> {
    vec(trajectory(groups, 3), 1..=max_trajectories)
}

/// A log-prob segment of `0..=max_len` tokens, with reference log-probs.
pub fn log_prob_segment(max_len: usize) -> impl Strategy<Value = LogProbSegment> {
    (0..=max_len).prop_flat_map(|n| {
        (
            vec(-6.0f64..0.0, n),
            vec(-0.6f64..0.6, n),
            vec(-0.5f64..0.5, n),
            vec(0u8..=1, n),
        )
            .prop_map(|(logp, shift, ref_shift, mask)| LogProbSegment {
                old_logp: logp.iter().zip(&shift).map(|(a, b)| a + b).collect(),
                ref_logp: Some(logp.iter().zip(&ref_shift).map(|(a, b)| a + b).collect()),
                logp,
                mask,
            })
    })
}

/// A log-prob batch: `1..=max_trajectories` trajectories over `groups` groups, up to
/// `max_segments` segments of up to `max_len` tokens each.
pub fn log_prob_batch(
    max_trajectories: usize,
    max_segments: usize,
    max_len: usize,
) -> impl Strategy<Value = LogProbBatch> {
    let traj = (
        0..3usize,
        prop::sample::select(vec![0.0, 0.5, 1.0]),
        finish_reason(),
        vec(log_prob_segment(max_len), 1..=max_segments.max(1)),
    )
        .prop_map(|(g, reward, finish, segments)| LogProbTrajectory {
            group: String::from(["a", "b", "c"][g]),
            reward,
            finish,
            segments,
        });
    vec(traj, 1..=max_trajectories.max(1)).prop_map(|trajectories| LogProbBatch { trajectories })
}

/// Any aggregation mode (verl's four and the two trajectory-balanced ones).
pub fn agg_mode() -> impl Strategy<Value = AggMode> {
    prop::sample::select(AggMode::ALL.to_vec())
}

/// A valid estimator configuration covering every mode and switch.
pub fn estimator_config() -> impl Strategy<Value = EstimatorConfig> {
    (
        (0.05f64..0.3, 0.05f64..0.4, prop::option::of(1.5f64..5.0)),
        (
            prop::sample::select(vec![0.0, 0.01, 0.1]),
            prop::sample::select(vec![KlType::K1, KlType::K2, KlType::LowVarKl]),
        ),
        (
            any::<bool>(),
            any::<bool>(),
            prop::sample::select(vec![AdvantageLevel::Trajectory, AdvantageLevel::Segment]),
        ),
        agg_mode(),
        prop::option::of(1.0f64..64.0),
        vec(finish_reason(), 0..3),
    )
        .prop_map(
            |(
                (clip_low, clip_high, dual_clip),
                (kl_coef, kl_type),
                (norm, in_stats, level),
                agg,
                norm_length,
                masked_finish,
            )| {
                EstimatorConfig {
                    loss: LossConfig {
                        clip_low,
                        clip_high,
                        dual_clip,
                        kl_coef,
                        kl_type,
                        ..LossConfig::default()
                    },
                    advantage: AdvantageConfig {
                        norm_by_std: norm,
                        eps: 1e-6,
                        masked_in_group_stats: in_stats,
                        level,
                    },
                    agg,
                    norm_length,
                    masked_finish,
                }
            },
        )
}

/// A context configuration with `W` in `[min_w, max_w]`, `S ≤ 4`, `H ≤ 40`.
pub fn context_config(min_w: usize, max_w: usize) -> impl Strategy<Value = ContextConfig> {
    (min_w..=max_w, 0usize..=4, 1usize..=40, 70usize..=100).prop_map(|(w, s, h, pct)| {
        let c = ContextConfig::new(w)
            .with_max_summaries(s)
            .with_max_steps(h);
        let l = (w * pct / 100).max(1);
        c.with_threshold(l)
    })
}
