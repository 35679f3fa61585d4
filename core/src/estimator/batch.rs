//! Batches for the estimator.
//!
//! * [`LogProbBatch`] — trajectories given as per-token log-probabilities (the `supo loss`
//!   contract): the whole estimator in f64 on the host, with exact `dL/dlog π`.
//! * [`TrainingBatch`] — trajectories of token ids flattened to one row per summary segment
//!   with per-token advantages and aggregation weights, ready for a [`Backend`](crate::Backend).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::advantage::{dense_group_ids, group_advantages};
use super::aggregate::{aggregation_weights, Sequence};
use super::surrogate::{token_terms, SurrogateParams};
use super::{AdvantageLevel, EstimatorConfig};
use crate::error::{ensure, Error, Result};
use crate::trajectory::{FinishReason, TokenId, Trajectory};

/// One segment as per-token log-probabilities.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LogProbSegment {
    /// `log π_θ` of each response token.
    pub logp: Vec<f64>,
    /// `log π_old` of each response token.
    pub old_logp: Vec<f64>,
    /// `log π_ref` of each response token (needed when `kl_coef != 0`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub ref_logp: Option<Vec<f64>>,
    /// 1 for agent tokens, 0 for the rest.
    pub mask: Vec<u8>,
}

/// One trajectory of a [`LogProbBatch`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LogProbTrajectory {
    /// Group (task) id.
    pub group: String,
    /// Scalar reward.
    pub reward: f64,
    /// Why the episode ended.
    pub finish: FinishReason,
    /// Its segments.
    pub segments: Vec<LogProbSegment>,
}

/// A batch of trajectories as log-probabilities: the input of the `supo loss` contract.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LogProbBatch {
    /// The trajectories.
    pub trajectories: Vec<LogProbTrajectory>,
}

/// The output of [`LogProbBatch::loss`]: the `supo loss` contract's output.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LogProbLoss {
    /// Advantage per trajectory.
    pub advantages: Vec<f64>,
    /// `pg_loss + kl_coef · kl_loss`.
    pub loss: f64,
    /// Aggregated clipped surrogate.
    pub pg_loss: f64,
    /// Aggregated KL estimate.
    pub kl_loss: f64,
    /// Share of trained tokens with the clip active.
    pub clipfrac: f64,
    /// Share of trained tokens with the dual clip active.
    pub clipfrac_lower: f64,
    /// Mean `log π_old − log π` over trained tokens.
    pub approx_kl: f64,
    /// `dL/dlog π` per token, per segment, per trajectory.
    pub grad_logp: Vec<Vec<Vec<f64>>>,
}

impl LogProbBatch {
    /// A small batch of two groups, for examples and documentation.
    pub fn example() -> Self {
        let seg = |logp: &[f64], old: &[f64], mask: &[u8]| LogProbSegment {
            logp: logp.to_vec(),
            old_logp: old.to_vec(),
            ref_logp: None,
            mask: mask.to_vec(),
        };
        let traj = |group: &str, reward, finish, segments| LogProbTrajectory {
            group: group.into(),
            reward,
            finish,
            segments,
        };
        LogProbBatch {
            trajectories: vec![
                traj(
                    "task-0",
                    1.0,
                    FinishReason::Answered,
                    vec![
                        seg(&[-0.5, -1.0, -0.2], &[-0.6, -1.0, -0.1], &[1, 0, 1]),
                        seg(&[-0.3, -0.9], &[-0.35, -1.2], &[1, 1]),
                    ],
                ),
                traj(
                    "task-0",
                    0.0,
                    FinishReason::Answered,
                    vec![seg(&[-1.5, -0.7], &[-1.2, -0.7], &[1, 1])],
                ),
                traj(
                    "task-0",
                    0.0,
                    FinishReason::MaxSummaries,
                    vec![seg(&[-0.4], &[-0.4], &[1])],
                ),
                traj(
                    "task-1",
                    0.5,
                    FinishReason::Answered,
                    vec![seg(&[-2.0], &[-1.0], &[1])],
                ),
            ],
        }
    }

    /// Checks shapes, masks and finiteness; `needs_ref` demands reference log-probs.
    pub fn validate(&self, needs_ref: bool) -> Result<()> {
        for (i, t) in self.trajectories.iter().enumerate() {
            if !t.reward.is_finite() {
                return Err(Error::NonFinite(alloc::format!("reward of trajectory {i}")));
            }
            for (k, s) in t.segments.iter().enumerate() {
                let n = s.logp.len();
                let at = || alloc::format!("trajectory {i} segment {k}");
                ensure!(
                    s.old_logp.len() == n,
                    "{}: old_logp has {} entries, logp {n}",
                    at(),
                    s.old_logp.len()
                );
                ensure!(
                    s.mask.len() == n,
                    "{}: mask has {} entries, logp {n}",
                    at(),
                    s.mask.len()
                );
                ensure!(
                    s.mask.iter().all(|&m| m <= 1),
                    "{}: mask entries must be 0 or 1",
                    at()
                );
                match &s.ref_logp {
                    Some(r) => ensure!(
                        r.len() == n,
                        "{}: ref_logp has {} entries, logp {n}",
                        at(),
                        r.len()
                    ),
                    None => ensure!(!needs_ref, "{}: kl_coef > 0 needs ref_logp", at()),
                }
                let arrays = [Some(&s.logp), Some(&s.old_logp), s.ref_logp.as_ref()];
                for (name, a) in ["logp", "old_logp", "ref_logp"].iter().zip(arrays) {
                    if let Some(j) = a.and_then(|a| a.iter().position(|v| !v.is_finite())) {
                        return Err(Error::NonFinite(alloc::format!("{}: {name}[{j}]", at())));
                    }
                }
            }
        }
        Ok(())
    }

    /// The estimator on this batch, in f64: advantages, aggregated loss, statistics and the
    /// exact gradient with respect to every token's `log π`.
    pub fn loss(&self, config: &EstimatorConfig) -> Result<LogProbLoss> {
        config.validate()?;
        self.validate(config.loss.kl_coef != 0.0)?;
        let trajs = &self.trajectories;
        let masked = self.masked(config);
        let groups: Vec<&str> = trajs.iter().map(|t| t.group.as_str()).collect();
        let rewards: Vec<f64> = trajs.iter().map(|t| t.reward).collect();
        let seg_counts: Vec<usize> = trajs.iter().map(|t| t.segments.len()).collect();
        let advantages =
            trajectory_advantages(&rewards, &groups, &masked, &seg_counts, &config.advantage)?;
        self.aggregate(config, advantages, &masked)
    }

    /// Whether each trajectory is overlong under `config` (its tokens get weight 0).
    pub fn masked(&self, config: &EstimatorConfig) -> Vec<bool> {
        self.trajectories
            .iter()
            .map(|t| config.is_masked(t.finish))
            .collect()
    }

    /// [`LogProbBatch::loss`] with the advantages (one per trajectory) computed elsewhere — by
    /// a [`Backend`](crate::Backend)'s `group_advantages`, say.
    pub fn loss_with_advantages(
        &self,
        config: &EstimatorConfig,
        advantages: Vec<f64>,
    ) -> Result<LogProbLoss> {
        config.validate()?;
        self.validate(config.loss.kl_coef != 0.0)?;
        let trajs = &self.trajectories;
        ensure!(
            advantages.len() == trajs.len(),
            "{} advantages for {} trajectories",
            advantages.len(),
            trajs.len()
        );
        if let Some(i) = advantages.iter().position(|a| !a.is_finite()) {
            return Err(Error::NonFinite(alloc::format!(
                "advantage of trajectory {i}"
            )));
        }
        self.aggregate(config, advantages, &self.masked(config))
    }

    /// Masks, aggregation weights, per-token terms and their sums, on a validated batch.
    fn aggregate(
        &self,
        config: &EstimatorConfig,
        advantages: Vec<f64>,
        masked: &[bool],
    ) -> Result<LogProbLoss> {
        let trajs = &self.trajectories;

        // Flatten tokens segment after segment.
        let seqs: Vec<Sequence> = trajs
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                t.segments.iter().map(move |s| Sequence {
                    len: s.logp.len(),
                    trajectory: Some(i),
                })
            })
            .collect();
        let mut mask = Vec::new();
        for (t, &m) in trajs.iter().zip(masked) {
            for s in &t.segments {
                mask.extend(s.mask.iter().map(|&x| if m { 0.0 } else { f64::from(x) }));
            }
        }
        let weights = aggregation_weights(&seqs, &mask, config.agg, config.norm_length)?;

        let params = SurrogateParams::<f64>::new(&config.loss);
        let mut out = LogProbLoss {
            advantages,
            ..Default::default()
        };
        let (mut trained, mut clipped, mut clipped_lower, mut approx_kl) =
            (0usize, 0usize, 0usize, 0.0);
        let mut flat = 0usize;
        for (t, adv) in trajs.iter().zip(&out.advantages) {
            let mut grads = Vec::with_capacity(t.segments.len());
            for s in &t.segments {
                let mut g = Vec::with_capacity(s.logp.len());
                for j in 0..s.logp.len() {
                    let w = weights[flat];
                    flat += 1;
                    if w == 0.0 {
                        g.push(0.0);
                        continue;
                    }
                    let r = s.ref_logp.as_ref().map_or(0.0, |r| r[j]);
                    let terms = token_terms(s.logp[j], s.old_logp[j], r, *adv, &params);
                    out.pg_loss += w * terms.pg;
                    out.kl_loss += w * terms.kl;
                    g.push(w * terms.d_logp(params.kl_coef));
                    trained += 1;
                    clipped += terms.clipped as usize;
                    clipped_lower += terms.clipped_lower as usize;
                    approx_kl += terms.approx_kl;
                }
                grads.push(g);
            }
            out.grad_logp.push(grads);
        }
        if trained > 0 {
            let n = trained as f64;
            out.clipfrac = clipped as f64 / n;
            out.clipfrac_lower = clipped_lower as f64 / n;
            out.approx_kl = approx_kl / n;
        }
        out.loss = out.pg_loss + config.loss.kl_coef * out.kl_loss;
        Ok(out)
    }
}

/// Advantage per trajectory at the configured level: Eq. 3 over trajectories, or Eq. 4 over
/// segments (each segment a sample carrying its trajectory's reward; all of a trajectory's
/// segments then share that value, so the first is reported).
pub fn trajectory_advantages(
    rewards: &[f64],
    groups: &[&str],
    masked: &[bool],
    segments_per_trajectory: &[usize],
    config: &super::AdvantageConfig,
) -> Result<Vec<f64>> {
    let ids = dense_group_ids(groups);
    match config.level {
        AdvantageLevel::Trajectory => group_advantages(rewards, &ids, masked, config),
        AdvantageLevel::Segment => {
            let mut r = Vec::new();
            let mut g = Vec::new();
            let mut m = Vec::new();
            for i in 0..rewards.len() {
                let k = segments_per_trajectory[i].max(1);
                r.extend(core::iter::repeat_n(rewards[i], k));
                g.extend(core::iter::repeat_n(ids[i], k));
                m.extend(core::iter::repeat_n(masked[i], k));
            }
            let per_segment = group_advantages(&r, &g, &m, config)?;
            let mut first = 0;
            Ok(segments_per_trajectory
                .iter()
                .map(|&k| {
                    let a = per_segment[first];
                    first += k.max(1);
                    a
                })
                .collect())
        }
    }
}

/// Trajectories of token ids flattened for a [`Backend`](crate::Backend): one row per summary
/// segment, per-token arrays over all response tokens of all rows, in row order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingBatch {
    /// One row per segment (padding rows included).
    pub rows: Vec<BatchRow>,
    /// Advantage per trajectory.
    pub advantages: Vec<f32>,
    /// Target token of each response token.
    pub targets: Vec<u32>,
    /// `log π_old` of each response token.
    pub old_logprobs: Vec<f32>,
    /// Advantage of each response token (its trajectory's).
    pub token_advantages: Vec<f32>,
    /// Aggregation weight of each response token (0: not trained), by
    /// [`aggregation_weights`] under the configured mode (the trajectory-balanced modes group
    /// the rows by [`BatchRow::trajectory`]).
    pub weights: Vec<f32>,
}

/// One training sequence: a summary segment with its trajectory's advantage.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchRow {
    /// Index of the trajectory in the source slice (`None` for a padding row); the
    /// trajectory-balanced aggregation modes pool the rows of one trajectory.
    pub trajectory: Option<usize>,
    /// Prompt ids `c_k`.
    pub prompt: Vec<TokenId>,
    /// Response ids `y_k`.
    pub response: Vec<TokenId>,
    /// 1 for trained tokens (agent tokens of a non-masked trajectory).
    pub mask: Vec<u8>,
    /// The trajectory's advantage.
    pub advantage: f32,
}

impl TrainingBatch {
    /// Builds the batch: advantages per trajectory (not per segment, unless the config asks for
    /// Eq. 4), overlong masking, and aggregation weights.
    pub fn new(trajectories: &[Trajectory], config: &EstimatorConfig) -> Result<Self> {
        config.validate()?;
        trajectories.iter().try_for_each(Trajectory::validate)?;
        let rewards: Vec<f64> = trajectories.iter().map(|t| t.reward).collect();
        let groups: Vec<&str> = trajectories.iter().map(|t| t.group.as_str()).collect();
        let masked: Vec<bool> = trajectories
            .iter()
            .map(|t| config.is_masked(t.finish))
            .collect();
        let seg_counts: Vec<usize> = trajectories.iter().map(|t| t.segments.len()).collect();
        let adv =
            trajectory_advantages(&rewards, &groups, &masked, &seg_counts, &config.advantage)?;

        let mut batch = TrainingBatch {
            advantages: adv.iter().map(|&a| a as f32).collect(),
            ..Default::default()
        };
        for (i, t) in trajectories.iter().enumerate() {
            for s in &t.segments {
                let agent = s.agent_mask();
                let mask: Vec<u8> = agent
                    .iter()
                    .map(|&m| if masked[i] { 0 } else { m })
                    .collect();
                let response = s.response();
                batch.targets.extend(&response);
                batch.old_logprobs.extend(s.old_logprobs());
                batch
                    .token_advantages
                    .extend(core::iter::repeat_n(adv[i] as f32, response.len()));
                batch.rows.push(BatchRow {
                    trajectory: Some(i),
                    prompt: s.prompt.clone(),
                    response,
                    mask,
                    advantage: adv[i] as f32,
                });
            }
        }
        batch.recompute_weights(config)?;
        Ok(batch)
    }

    /// Appends zero-weight rows until the number of rows is a multiple of `micro_batch`.
    /// Padding changes no loss, gradient or statistic.
    pub fn pad_to_multiple(&mut self, micro_batch: usize, config: &EstimatorConfig) -> Result<()> {
        ensure!(micro_batch > 0, "micro_batch must be > 0");
        while !self.rows.len().is_multiple_of(micro_batch) {
            self.rows.push(BatchRow::default());
        }
        self.recompute_weights(config)
    }

    /// Number of response tokens over all rows.
    pub fn tokens(&self) -> usize {
        self.targets.len()
    }

    fn recompute_weights(&mut self, config: &EstimatorConfig) -> Result<()> {
        let seqs: Vec<Sequence> = self
            .rows
            .iter()
            .map(|r| Sequence {
                len: r.response.len(),
                trajectory: r.trajectory,
            })
            .collect();
        let mask: Vec<f64> = self
            .rows
            .iter()
            .flat_map(|r| r.mask.iter().map(|&m| f64::from(m)))
            .collect();
        let w = aggregation_weights(&seqs, &mask, config.agg, config.norm_length)?;
        self.weights = w.into_iter().map(|x| x as f32).collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimator::{AdvantageConfig, AggMode};

    /// On-policy (ratio 1), Dr. GRPO advantages ±0.5: every trained token's surrogate is `−A`.
    /// Trajectory 0 (A = +0.5) has segments of masks [1, 1, 0] and [1]; trajectory 1 (A = −0.5)
    /// one segment [1, 1]; trajectory 2 is overlong (masked), so it trains nothing.
    fn batch() -> LogProbBatch {
        let seg = |mask: &[u8]| LogProbSegment {
            logp: vec![-1.0; mask.len()],
            old_logp: vec![-1.0; mask.len()],
            ref_logp: None,
            mask: mask.to_vec(),
        };
        let traj = |reward, finish, segments| LogProbTrajectory {
            group: "g".into(),
            reward,
            finish,
            segments,
        };
        LogProbBatch {
            trajectories: vec![
                traj(
                    1.0,
                    FinishReason::Answered,
                    vec![seg(&[1, 1, 0]), seg(&[1])],
                ),
                traj(0.0, FinishReason::Answered, vec![seg(&[1, 1])]),
                traj(0.0, FinishReason::MaxSteps, vec![seg(&[1, 1, 1, 1])]),
            ],
        }
    }

    fn run(agg: AggMode) -> LogProbLoss {
        let config = EstimatorConfig {
            agg,
            advantage: AdvantageConfig {
                norm_by_std: false,
                masked_in_group_stats: false,
                ..Default::default()
            },
            ..Default::default()
        };
        batch().loss(&config).unwrap()
    }

    #[test]
    fn losses_and_gradients_by_hand() {
        // (mode, loss, gradient of a trained token of trajectory 0's first and second segment,
        // of trajectory 1).
        let cases = [
            (
                AggMode::TokenMean,
                -0.5 / 5.0,
                [-0.5 / 5.0, -0.5 / 5.0],
                0.5 / 5.0,
            ),
            (
                AggMode::SeqMeanTokenSum,
                -1.0 / 6.0,
                [-0.5 / 3.0; 2],
                0.5 / 3.0,
            ),
            // Each segment weighs 1/3, shared by its trained tokens.
            (
                AggMode::SeqMeanTokenMean,
                -1.0 / 6.0,
                [-0.5 / 6.0, -0.5 / 3.0],
                0.5 / 6.0,
            ),
            // The longest segment has 4 tokens (the masked trajectory's).
            (
                AggMode::SeqMeanTokenSumNorm,
                -1.0 / 24.0,
                [-0.5 / 12.0; 2],
                0.5 / 12.0,
            ),
            (AggMode::TrajMeanTokenMean, 0.0, [-0.5 / 6.0; 2], 0.5 / 4.0),
            (AggMode::TrajMeanTokenSum, -0.25, [-0.25; 2], 0.25),
        ];
        let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
        for (mode, loss, [g00, g01], g1) in cases {
            let out = run(mode);
            let g = &out.grad_logp;
            assert_eq!(out.advantages, vec![0.5, -0.5, 0.0]);
            assert!(close(out.loss, loss), "{mode}: loss {} vs {loss}", out.loss);
            assert!(
                close(g[0][0][0], g00) && close(g[0][0][1], g00),
                "{mode}: {g:?}"
            );
            assert!(close(g[0][1][0], g01), "{mode}: {g:?}");
            assert!(
                close(g[1][0][0], g1) && close(g[1][0][1], g1),
                "{mode}: {g:?}"
            );
            assert_eq!(g[0][0][2], 0.0);
            assert!(g[2].iter().flatten().all(|&x| x == 0.0));
        }
    }

    #[test]
    fn training_rows_carry_their_trajectory_into_the_weights() {
        use crate::trajectory::{SummarySegment, Turn};
        let seg = |n: usize| SummarySegment {
            prompt: vec![1],
            turns: vec![Turn::agent(vec![2; n], vec![-1.0; n])],
            summary_turn: None,
        };
        let traj = |group: &str, reward, segments| Trajectory {
            group: group.into(),
            reward,
            finish: FinishReason::Answered,
            segments,
        };
        let trajs = [
            traj("g", 1.0, vec![seg(3), seg(1)]),
            traj("g", 0.0, vec![seg(2)]),
        ];
        let config = EstimatorConfig {
            agg: AggMode::TrajMeanTokenMean,
            ..Default::default()
        };
        let mut batch = TrainingBatch::new(&trajs, &config).unwrap();
        let (a, b) = (1.0 / 8.0, 1.0 / 4.0);
        assert_eq!(batch.weights, vec![a, a, a, a, b, b]);
        batch.pad_to_multiple(4, &config).unwrap();
        assert_eq!(batch.rows.len(), 4);
        assert_eq!(batch.weights, vec![a, a, a, a, b, b]);
    }
}
