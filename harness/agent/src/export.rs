//! Training rows for external trainers: one per summary segment, with the trajectory's
//! advantage from `supo_core`'s estimator (group-relative over the rollouts of one task,
//! overlong trajectories masked). The row schema is documented in the README
//! (`supo rollout --export`).

use serde::Serialize;
use supo_core::estimator::{EstimatorConfig, TrainingBatch};
use supo_core::Trajectory;

/// One training row: a summary segment of one trajectory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportRow {
    /// The task the trajectory belongs to (advantages are relative within it).
    pub group: String,
    /// The trajectory's index in the export.
    pub trajectory: usize,
    /// The segment's index in its trajectory.
    pub segment: usize,
    /// `c_k`: the segment's prompt ids.
    pub prompt_ids: Vec<u32>,
    /// `y_k`: the segment's response ids (actions, observations, instruction, summary).
    pub response_ids: Vec<u32>,
    /// 1 for the agent's own tokens of the response, 0 for observations and instructions.
    pub agent_mask: Vec<u8>,
    /// 1 for the tokens to train: the agent mask, all 0 for an overlong (masked) trajectory.
    pub loss_mask: Vec<u8>,
    /// Each response token's coefficient in the loss under the configured aggregation mode:
    /// the batch's loss is `Σ token_weights · ℓ` over all exported rows (0 where `loss_mask` is
    /// 0), computed by `supo_core`'s `aggregation_weights` over the whole export.
    pub token_weights: Vec<f32>,
    /// `log π_old` of each response token (0 for non-agent tokens).
    pub old_logprobs: Vec<f32>,
    /// The trajectory's advantage (every segment of a trajectory carries it).
    pub advantage: f32,
    /// The trajectory's reward.
    pub reward: f64,
    /// Why the trajectory ended (`Answered`, `MaxSummaries`, …).
    pub finish: &'static str,
    /// The summary ids that close the segment (the next segment's prompt ends with them).
    pub summary_ids: Option<Vec<u32>>,
}

/// The rows of `trajectories`, in trajectory and segment order.
pub fn training_rows(
    trajectories: &[Trajectory],
    config: &EstimatorConfig,
) -> Result<Vec<ExportRow>, supo_core::Error> {
    let batch = TrainingBatch::new(trajectories, config)?;
    let mut rows = Vec::with_capacity(batch.rows.len());
    let mut segment = 0;
    let mut last = None;
    let mut weights = batch.weights.iter().copied();
    for row in batch.rows {
        let token_weights: Vec<f32> = weights.by_ref().take(row.response.len()).collect();
        let Some(t) = row.trajectory else { continue };
        segment = if last == Some(t) { segment + 1 } else { 0 };
        last = Some(t);
        let traj = &trajectories[t];
        let seg = &traj.segments[segment];
        rows.push(ExportRow {
            group: traj.group.clone(),
            trajectory: t,
            segment,
            agent_mask: seg.agent_mask(),
            old_logprobs: seg.old_logprobs(),
            summary_ids: seg.summary().map(<[u32]>::to_vec),
            prompt_ids: row.prompt,
            response_ids: row.response,
            loss_mask: row.mask,
            token_weights,
            advantage: row.advantage,
            reward: traj.reward,
            finish: traj.finish.name(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use supo_core::context::{ContextConfig, TrajectoryBuilder};
    use supo_core::{FinishReason, Role, Turn};

    fn trajectory(reward: f64) -> Trajectory {
        let config = ContextConfig::new(12).with_max_summaries(1);
        let mut b = TrajectoryBuilder::new(config, vec![1, 2, 3], vec![4], vec![5]).unwrap();
        let step = || {
            (
                Turn::agent(vec![7, 7], vec![-0.5, -0.5]),
                Turn::other(Role::Tool, vec![9; 3]),
            )
        };
        let (a, o) = step();
        b.push_step(a, o).unwrap();
        let (a, o) = step();
        b.push_step(a, o).unwrap();
        b.push_summary(Turn::agent(vec![8], vec![-0.1])).unwrap();
        b.push_answer(Turn::agent(vec![6], vec![-0.2])).unwrap();
        b.finish("t".into(), reward, None).unwrap()
    }

    #[test]
    fn one_row_per_segment_with_group_advantages() {
        let rows = training_rows(
            &[trajectory(1.0), trajectory(0.0)],
            &EstimatorConfig::default(),
        )
        .unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows.iter()
                .map(|r| (r.trajectory, r.segment))
                .collect::<Vec<_>>(),
            vec![(0, 0), (0, 1), (1, 0), (1, 1)]
        );
        assert_eq!(rows[1].prompt_ids, vec![1, 2, 3, 5, 8]);
        assert_eq!(rows[0].summary_ids, Some(vec![8]));
        assert!(rows[0].advantage > 0.0 && rows[2].advantage < 0.0);
        assert_eq!(rows[0].advantage, rows[1].advantage);
        assert_eq!(rows[0].agent_mask, vec![1, 1, 0, 0, 0, 0, 1]);
        assert_eq!(rows[0].finish, FinishReason::Answered.name());
        // token-mean: every trained token of the export weighs 1 / (their number).
        let trained: usize = rows
            .iter()
            .map(|r| r.loss_mask.iter().filter(|&&m| m == 1).count())
            .sum();
        for r in &rows {
            assert_eq!(r.token_weights.len(), r.response_ids.len());
            for (&w, &m) in r.token_weights.iter().zip(&r.loss_mask) {
                assert_eq!(w, if m == 1 { 1.0 / trained as f32 } else { 0.0 });
            }
        }
    }

    #[test]
    fn token_weights_follow_the_aggregation_mode() {
        use supo_core::estimator::AggMode;
        let trajs = [trajectory(1.0), trajectory(0.0)];
        let config = EstimatorConfig {
            agg: AggMode::TrajMeanTokenSum,
            ..EstimatorConfig::default()
        };
        let rows = training_rows(&trajs, &config).unwrap();
        // Two trajectories with trained tokens: each trained token weighs 1/2.
        for r in &rows {
            for (&w, &m) in r.token_weights.iter().zip(&r.loss_mask) {
                assert_eq!(w, if m == 1 { 0.5 } else { 0.0 });
            }
        }
        // traj-mean-token-mean: each trajectory's weights sum to 1/2 over its segments.
        let config = EstimatorConfig {
            agg: AggMode::TrajMeanTokenMean,
            ..EstimatorConfig::default()
        };
        let rows = training_rows(&trajs, &config).unwrap();
        for t in 0..2 {
            let sum: f32 = rows
                .iter()
                .filter(|r| r.trajectory == t)
                .flat_map(|r| &r.token_weights)
                .sum();
            assert!((sum - 0.5).abs() < 1e-6, "{sum}");
        }
    }
}
