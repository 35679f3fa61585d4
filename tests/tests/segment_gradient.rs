//! Theorem 3.2 of the SUPO paper as a property: for a differentiable policy, the gradient
//! computed segment by segment — each summary segment an ordinary training row carrying its
//! trajectory's advantage, through the `traj-mean-token-sum` weights and the fused loss of the
//! CPU backend — equals the gradient of the whole trajectories' objective
//! `(1/|T|) Σ_τ A_τ · Σ log π(agent token | the context the agent saw)`, where the contexts are
//! those the rollout actually used (resets after summaries, discarded pairs gone, the summary
//! itself trained) and `T` the trajectories with a trained token.

use proptest::prelude::*;
use supo_core::backend::TokenInputs;
use supo_core::context::{Decision, TrajectoryBuilder};
use supo_core::estimator::{AdvantageConfig, AggMode, EstimatorConfig, TrainingBatch};
use supo_core::{
    strategies, Backend, ContextConfig, CpuBackend, LogitsShape, Role, Trajectory, Turn,
};

const V: usize = 8;
const PHASES: usize = 4;

/// A small policy whose logits depend on the last token and on the context length, so a wrong
/// context (a missing reset, a kept discarded pair) changes its log-probs.
struct Policy {
    last: Vec<f64>,  // [V, V]
    phase: Vec<f64>, // [PHASES, V]
}

impl Policy {
    fn logits(&self, context: &[u32]) -> Vec<f64> {
        let l = *context.last().unwrap_or(&0) as usize;
        let ph = context.len() % PHASES;
        (0..V)
            .map(|j| self.last[l * V + j] + self.phase[ph * V + j])
            .collect()
    }

    /// Adds `scale · (onehot(y) − softmax)` (the gradient of log π(y | context)) to `grad`.
    fn add_logp_grad(&self, context: &[u32], y: u32, scale: f64, grad: &mut Policy) {
        let z = self.logits(context);
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = z.iter().map(|x| (x - m).exp()).sum();
        let g: Vec<f64> = (0..V)
            .map(|j| ((j == y as usize) as u8 as f64 - (z[j] - m).exp() / s) * scale)
            .collect();
        self.add_logits_grad(context, &g, grad);
    }

    /// Chain rule from d/dlogits of one row to the parameters.
    fn add_logits_grad(&self, context: &[u32], g: &[f64], grad: &mut Policy) {
        let l = *context.last().unwrap_or(&0) as usize;
        let ph = context.len() % PHASES;
        for (j, gj) in g.iter().enumerate() {
            grad.last[l * V + j] += gj;
            grad.phase[ph * V + j] += gj;
        }
    }

    fn zeros() -> Policy {
        Policy {
            last: vec![0.0; V * V],
            phase: vec![0.0; PHASES * V],
        }
    }
}

fn toks(max: usize) -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::vec(0..V as u32, 1..=max)
}

/// One rollout's choices: (action, observation, answer now?) moves, the summaries to write, and
/// the trajectory's reward (its advantage: a group of one under Dr. GRPO keeps its reward).
type Episode = (Vec<(Vec<u32>, Vec<u32>, bool)>, Vec<Vec<u32>>, f64);

fn episode() -> impl Strategy<Value = Episode> {
    (
        proptest::collection::vec(
            (
                toks(4),
                proptest::collection::vec(0..V as u32, 0..14),
                proptest::bool::weighted(0.05),
            ),
            1..30,
        ),
        proptest::collection::vec(toks(5), 0..8),
        -2.0f64..2.0,
    )
}

/// Plays one episode through the builder, maintaining the live context independently of it, and
/// returns the trajectory, `A · Σ ∇log π` over the agent tokens the agent generated in the
/// contexts it saw, and how many such tokens there were.
fn rollout(
    policy: &Policy,
    cfg: &ContextConfig,
    (prompt, instruction, prefix): (&[u32], &[u32], &[u32]),
    (moves, summaries, advantage): Episode,
    group: String,
) -> Option<(Trajectory, Policy, usize)> {
    let mut b = TrajectoryBuilder::new(
        cfg.clone(),
        prompt.to_vec(),
        instruction.to_vec(),
        prefix.to_vec(),
    )
    .ok()?;
    let mut whole = Policy::zeros();
    let mut trained = 0;
    let mut live = prompt.to_vec();
    let mut summaries = summaries.into_iter();
    let mut record = |ctx: &[u32], tokens: &[u32], grad: &mut Policy| {
        let mut c = ctx.to_vec();
        for &y in tokens {
            policy.add_logp_grad(&c, y, advantage, grad);
            c.push(y);
            trained += 1;
        }
    };
    for (action, obs, answer) in moves {
        if b.manager().finished().is_some() {
            break;
        }
        let turn = Turn::agent(action.clone(), vec![0.0; action.len()]);
        if answer {
            if b.push_answer(turn).unwrap() == Decision::Stop(supo_core::FinishReason::Answered) {
                record(&live, &action, &mut whole);
            }
            break;
        }
        match b
            .push_step(turn, Turn::other(Role::Tool, obs.clone()))
            .unwrap()
        {
            Decision::Continue | Decision::Stop(_) if b.manager().last_pair_kept() => {
                record(&live, &action, &mut whole);
                live.extend(&action);
                live.extend(&obs);
            }
            Decision::Summarize => {
                let Some(summary) = summaries.next() else {
                    break;
                };
                let mut ctx = live.clone();
                ctx.extend(instruction);
                let before = b.manager().summaries();
                b.push_summary(Turn::agent(summary.clone(), vec![0.0; summary.len()]))
                    .unwrap();
                if b.manager().summaries() > before {
                    record(&ctx, &summary, &mut whole);
                    live = prompt
                        .iter()
                        .chain(prefix)
                        .chain(&summary)
                        .copied()
                        .collect();
                }
            }
            _ => {}
        }
    }
    let traj = b
        .finish(group, advantage, Some(supo_core::FinishReason::Answered))
        .unwrap();
    Some((traj, whole, trained))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn segment_gradients_sum_to_the_trajectory_gradient(
        cfg in strategies::context_config(12, 60),
        prompt in toks(5),
        instruction in toks(3),
        prefix in proptest::collection::vec(0..V as u32, 0..3),
        episodes in proptest::collection::vec(episode(), 1..=3),
        params in proptest::collection::vec(-2.0f64..2.0, V * V + PHASES * V),
    ) {
        let policy = Policy { last: params[..V * V].to_vec(), phase: params[V * V..].to_vec() };
        // Every trajectory in a group of its own: Dr. GRPO then keeps its reward as advantage.
        let mut trajs = Vec::new();
        let mut whole = Policy::zeros();
        let mut with_tokens = 0usize;
        for (i, e) in episodes.into_iter().enumerate() {
            let contexts = (&prompt[..], &instruction[..], &prefix[..]);
            let Some((traj, grad, trained)) = rollout(&policy, &cfg, contexts, e, format!("task-{i}")) else {
                return Ok(());
            };
            for (w, g) in whole.last.iter_mut().chain(&mut whole.phase).zip(grad.last.iter().chain(&grad.phase)) {
                *w += g;
            }
            with_tokens += usize::from(trained > 0);
            trajs.push(traj);
        }
        let per_trajectory = 1.0 / with_tokens.max(1) as f64;

        // Segment by segment through the estimator and the fused loss.
        let config = EstimatorConfig {
            advantage: AdvantageConfig { norm_by_std: false, ..Default::default() },
            agg: AggMode::TrajMeanTokenSum,
            masked_finish: vec![],
            ..Default::default()
        };
        let batch = TrainingBatch::new(&trajs, &config).unwrap();
        for (traj, adv) in trajs.iter().zip(&batch.advantages) {
            prop_assert_eq!(*adv, traj.reward as f32);
        }
        let mut contexts = Vec::new();
        let mut logits = Vec::new();
        for row in &batch.rows {
            for t in 0..row.response.len() {
                let ctx: Vec<u32> = row.prompt.iter().chain(&row.response[..t]).copied().collect();
                logits.extend(policy.logits(&ctx).iter().map(|&x| x as f32));
                contexts.push(ctx);
            }
        }
        let n = contexts.len();
        let cpu = CpuBackend::new();
        let shape = LogitsShape { tokens: n, vocab: V };
        // On-policy: old log-probs are the current ones (ratio 1).
        let old = cpu.token_logprobs(&logits, &batch.targets, shape, 1.0).unwrap().logprobs;
        let inputs = TokenInputs::<CpuBackend> {
            targets: &batch.targets,
            old_logprobs: &old,
            ref_logprobs: None,
            advantages: &batch.token_advantages,
            weights: &batch.weights,
        };
        cpu.policy_loss(&mut logits, shape, &inputs, &config.loss).unwrap();
        let mut segmented = Policy::zeros();
        for (i, ctx) in contexts.iter().enumerate() {
            let g: Vec<f64> = logits[i * V..(i + 1) * V].iter().map(|&x| f64::from(x)).collect();
            policy.add_logits_grad(ctx, &g, &mut segmented);
        }
        // The loss is −(1/|T|) Σ_τ A_τ Σ log π, so its gradient is the negated, averaged
        // trajectory gradient.
        for (s, w) in segmented.last.iter().chain(&segmented.phase).zip(whole.last.iter().chain(&whole.phase)) {
            let w = w * per_trajectory;
            prop_assert!((s + w).abs() <= 1e-4 * (1.0 + w.abs()), "segmented {s} vs whole-trajectory {}", -w);
        }
    }
}
