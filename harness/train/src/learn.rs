//! Gradient steps on the built-in model: the supervised warm start (cross-entropy on the
//! demonstrator's tokens) and the SUPO/GRPO policy-gradient step, whose loss and gradient come
//! from `supo-core`'s fused linear policy loss on the CPU backend.

use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use supo_core::backend::{Backend, LinearShape, TokenInputs};
use supo_core::estimator::{EstimatorConfig, TrainingBatch};
use supo_core::{CpuBackend, SummarySegment, Trajectory};

use crate::builtin::transformer::gemm;
use crate::builtin::{Packed, Tape, Transformer};

/// AdamW with global-norm gradient clipping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// Gradients are scaled down to this global norm.
    pub clip_norm: f32,
    /// Steps taken.
    pub step: u64,
    /// First moments.
    #[serde(skip)]
    pub m: Vec<f32>,
    /// Second moments.
    #[serde(skip)]
    pub v: Vec<f32>,
}

impl AdamW {
    /// A fresh optimiser for `n` parameters.
    pub fn new(n: usize, lr: f32) -> AdamW {
        AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.0,
            clip_norm: 1.0,
            step: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// Applies `grads` to `params`; returns the gradient norm before clipping. A non-finite
    /// gradient is an error and leaves everything unchanged.
    pub fn update(&mut self, params: &mut [f32], grads: &[f32]) -> Result<f32, String> {
        let norm = grads
            .iter()
            .map(|g| (*g as f64).powi(2))
            .sum::<f64>()
            .sqrt() as f32;
        if !norm.is_finite() {
            return Err("the gradient is not finite; the step was skipped".into());
        }
        let scale = if norm > self.clip_norm {
            self.clip_norm / norm
        } else {
            1.0
        };
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.step as i32);
        let c2 = 1.0 - b2.powi(self.step as i32);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            let g = g * scale;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= self.lr * ((*m / c1) / ((*v / c2).sqrt() + 1e-8) + self.weight_decay * *p);
        }
        Ok(norm)
    }
}

/// Tokens per shard of a gradient step (a row longer than this is a shard of its own).
const SHARD_TOKENS: usize = 1024;

/// Parameters per task when shard gradients are summed.
const SUM_CHUNK: usize = 8192;

/// Segments as training rows (`prompt ⊕ response`), cut into shards of whole rows. The shards
/// run forward and backward in parallel and their gradients are summed in shard order, so a
/// step computes the same numbers on any number of threads.
struct Rows {
    shards: Vec<Shard>,
}

/// Consecutive rows, packed.
struct Shard {
    packed: Packed,
    /// `positions[i]`: the packed index of the hidden state that predicts the shard's
    /// response token `i` (rows in order).
    positions: Vec<usize>,
    /// The shard's response tokens among all rows' (concatenated in row order).
    responses: Range<usize>,
}

impl Rows {
    fn new<'a>(
        rows: impl IntoIterator<Item = (&'a [u32], &'a [u32])>,
        shard_tokens: usize,
    ) -> Rows {
        let mut shards: Vec<Shard> = Vec::new();
        let (mut seqs, mut positions): (Vec<Vec<u32>>, Vec<usize>) = (Vec::new(), Vec::new());
        let (mut at, mut first) = (0, 0);
        let mut close =
            |seqs: &mut Vec<Vec<u32>>, positions: &mut Vec<usize>, first: &mut usize| {
                let n = positions.len();
                shards.push(Shard {
                    packed: Packed::new(seqs.iter().map(Vec::as_slice)),
                    positions: std::mem::take(positions),
                    responses: *first..*first + n,
                });
                *first += n;
                seqs.clear();
            };
        for (prompt, response) in rows {
            let len = prompt.len() + response.len();
            if at > 0 && at + len > shard_tokens {
                close(&mut seqs, &mut positions, &mut first);
                at = 0;
            }
            let mut s = prompt.to_vec();
            s.extend_from_slice(response);
            positions.extend((0..response.len()).map(|j| at + prompt.len() + j - 1));
            at += len;
            seqs.push(s);
        }
        if !seqs.is_empty() {
            close(&mut seqs, &mut positions, &mut first);
        }
        Rows { shards }
    }

    /// The forward pass of every shard, and the hidden states at the response positions
    /// (`[responses, d_model]`, rows in order).
    fn forward(&self, model: &Transformer) -> Result<(Vec<Tape>, Vec<f32>), String> {
        let tapes: Vec<Tape> = self
            .shards
            .par_iter()
            .map(|s| model.forward(&s.packed).map_err(|e| e.0))
            .collect::<Result<_, _>>()?;
        let d = model.config().d_model;
        let mut hidden = Vec::new();
        for (shard, tape) in self.shards.iter().zip(&tapes) {
            hidden.extend(shard.gather(&tape.hidden, d));
        }
        Ok((tapes, hidden))
    }

    /// The parameter gradients given `d_hidden = dL/d(hidden)` (as [`Rows::forward`]
    /// returned it), without the head's.
    fn backward(&self, model: &Transformer, tapes: &[Tape], d_hidden: &[f32]) -> Vec<f32> {
        let d = model.config().d_model;
        let parts: Vec<Vec<f32>> = self
            .shards
            .par_iter()
            .zip(tapes)
            .map(|(shard, tape)| {
                let rows = &d_hidden[shard.responses.start * d..shard.responses.end * d];
                let mut grads = vec![0.0; model.params.len()];
                model.backward(tape, &shard.scatter(rows, d), &mut grads);
                grads
            })
            .collect();
        sum_in_order(&parts)
    }
}

impl Shard {
    /// The rows of `hidden` at the response positions.
    fn gather(&self, hidden: &[f32], d: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.positions.len() * d);
        for &p in &self.positions {
            out.extend_from_slice(&hidden[p * d..][..d]);
        }
        out
    }

    /// The gradient of the whole packed hidden state from that of the gathered rows.
    fn scatter(&self, grad: &[f32], d: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.packed.tokens.len() * d];
        for (&p, g) in self.positions.iter().zip(grad.chunks_exact(d)) {
            for (o, g) in out[p * d..][..d].iter_mut().zip(g) {
                *o += g;
            }
        }
        out
    }
}

/// `Σ parts`, element-wise and in order (parallel over elements, so the same on any number of
/// threads).
fn sum_in_order(parts: &[Vec<f32>]) -> Vec<f32> {
    let mut sum = parts.first().cloned().unwrap_or_default();
    sum.par_chunks_mut(SUM_CHUNK)
        .enumerate()
        .for_each(|(i, out)| {
            for part in parts.iter().skip(1) {
                for (o, x) in out.iter_mut().zip(&part[i * SUM_CHUNK..]) {
                    *o += x;
                }
            }
        });
    sum
}

/// One supervised step: mean cross-entropy of the agent tokens of `segments` (each trained as
/// one row, prompt ⊕ response). Returns the loss before the step.
pub fn supervised_step(
    model: &mut Transformer,
    opt: &mut AdamW,
    segments: &[&SummarySegment],
) -> Result<f64, String> {
    let (loss, grads) = supervised_gradient(model, segments, SHARD_TOKENS)?;
    opt.update(&mut model.params, &grads)?;
    Ok(loss)
}

/// The loss and gradient of [`supervised_step`], with shards of `shard_tokens`.
fn supervised_gradient(
    model: &Transformer,
    segments: &[&SummarySegment],
    shard_tokens: usize,
) -> Result<(f64, Vec<f32>), String> {
    let responses: Vec<Vec<u32>> = segments.iter().map(|s| s.response()).collect();
    let masks: Vec<Vec<u8>> = segments.iter().map(|s| s.agent_mask()).collect();
    let rows = Rows::new(
        segments
            .iter()
            .zip(&responses)
            .map(|(s, r)| (s.prompt.as_slice(), r.as_slice())),
        shard_tokens,
    );
    let targets: Vec<u32> = responses.concat();
    let mask: Vec<u8> = masks.concat();
    let trained = mask.iter().filter(|&&m| m == 1).count();
    if trained == 0 {
        return Err("no agent tokens to train on".into());
    }
    let inv = 1.0 / trained as f32;
    // Each shard: its loss sum and its gradient (the head's included).
    let parts: Vec<(f64, Vec<f32>)> = rows
        .shards
        .par_iter()
        .map(|shard| {
            let r = shard.responses.clone();
            cross_entropy_step(model, shard, &targets[r.clone()], &mask[r], inv)
        })
        .collect::<Result<_, _>>()?;
    let loss: f64 = parts.iter().map(|p| p.0).sum();
    let grads = sum_in_order(&parts.into_iter().map(|p| p.1).collect::<Vec<_>>());
    Ok((loss / trained as f64, grads))
}

/// The forward and backward pass of one shard under the cross-entropy of its `targets` where
/// `mask` is 1, each token weighing `inv`: the shard's summed loss and its gradient.
fn cross_entropy_step(
    model: &Transformer,
    shard: &Shard,
    targets: &[u32],
    mask: &[u8],
    inv: f32,
) -> Result<(f64, Vec<f32>), String> {
    let tape = model.forward(&shard.packed).map_err(|e| e.0)?;
    let c = model.config();
    let (d, v, n) = (c.d_model, c.vocab, targets.len());
    let hidden = shard.gather(&tape.hidden, d);
    let mut logits = vec![0.0; n * v];
    gemm(
        n,
        d,
        v,
        &hidden,
        false,
        model.head(),
        true,
        &mut logits,
        false,
    );
    let mut loss = 0.0f64;
    for ((row, &t), &m) in logits.chunks_exact_mut(v).zip(targets).zip(mask) {
        if m == 0 {
            row.fill(0.0);
            continue;
        }
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let target = row[t as usize] - max;
        let mut z = 0.0f32;
        for x in row.iter_mut() {
            *x = (*x - max).exp();
            z += *x;
        }
        loss -= (target - z.ln()) as f64;
        for x in row.iter_mut() {
            *x = *x / z * inv;
        }
        row[t as usize] -= inv;
    }
    let mut grads = vec![0.0; model.params.len()];
    gemm(
        v,
        n,
        d,
        &logits,
        true,
        &hidden,
        false,
        &mut grads[model.layout().head.clone()],
        false,
    );
    let mut d_hidden = vec![0.0; n * d];
    gemm(
        n,
        v,
        d,
        &logits,
        false,
        model.head(),
        false,
        &mut d_hidden,
        false,
    );
    model.backward(&tape, &shard.scatter(&d_hidden, d), &mut grads);
    Ok((loss, grads))
}

/// What a policy-gradient step reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyStepReport {
    /// The loss.
    pub loss: f64,
    /// Share of trained tokens whose ratio was clipped.
    pub clipfrac: f64,
    /// Approximate KL between the behaviour and current policy.
    pub approx_kl: f64,
    /// Tokens trained.
    pub tokens: usize,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
}

/// One SUPO/GRPO step on `trajectories` (groups of rollouts of the same tasks): group
/// advantages and masks from [`TrainingBatch`], one row per summary segment, loss and
/// gradient from the fused linear policy loss. A batch with nothing to train (every group
/// tied, or every trajectory masked) changes nothing.
pub fn policy_step(
    model: &mut Transformer,
    opt: &mut AdamW,
    trajectories: &[Trajectory],
    config: &EstimatorConfig,
) -> Result<PolicyStepReport, String> {
    let Some((report, grads)) = policy_gradient(model, trajectories, config, SHARD_TOKENS)? else {
        return Ok(PolicyStepReport::default());
    };
    let grad_norm = opt.update(&mut model.params, &grads)?;
    Ok(PolicyStepReport {
        grad_norm,
        ..report
    })
}

/// The report (without the gradient norm) and gradient of [`policy_step`], with shards of
/// `shard_tokens`; `None` when nothing is trained.
fn policy_gradient(
    model: &Transformer,
    trajectories: &[Trajectory],
    config: &EstimatorConfig,
    shard_tokens: usize,
) -> Result<Option<(PolicyStepReport, Vec<f32>)>, String> {
    let batch = TrainingBatch::new(trajectories, config).map_err(|e| e.to_string())?;
    // Keep the rows with a trained token; per-token arrays follow rows in order.
    let mut keep = Vec::new();
    let (mut targets, mut old, mut adv, mut weights) = (vec![], vec![], vec![], vec![]);
    let mut at = 0;
    for row in &batch.rows {
        let n = row.response.len();
        let w = &batch.weights[at..at + n];
        if w.iter().any(|&x| x != 0.0) {
            keep.push(row);
            targets.extend_from_slice(&batch.targets[at..at + n]);
            old.extend_from_slice(&batch.old_logprobs[at..at + n]);
            adv.extend_from_slice(&batch.token_advantages[at..at + n]);
            weights.extend_from_slice(w);
        }
        at += n;
    }
    if keep.is_empty() {
        return Ok(None);
    }
    let rows = Rows::new(
        keep.iter()
            .map(|r| (r.prompt.as_slice(), r.response.as_slice())),
        shard_tokens,
    );
    let (tapes, hidden) = rows.forward(model)?;
    let c = model.config();
    let cpu = CpuBackend::new();
    let up = |x: &[f32]| cpu.upload(x).map_err(|e| e.to_string());
    let (hidden_b, head_b) = (up(&hidden)?, up(model.head())?);
    let targets_b = cpu.upload(&targets).map_err(|e| e.to_string())?;
    let (old_b, adv_b, weights_b) = (up(&old)?, up(&adv)?, up(&weights)?);
    let inputs = TokenInputs {
        targets: &targets_b,
        old_logprobs: &old_b,
        ref_logprobs: None,
        advantages: &adv_b,
        weights: &weights_b,
    };
    let shape = LinearShape {
        tokens: targets.len(),
        hidden: c.d_model,
        vocab: c.vocab,
        chunk: 1024,
    };
    let out = cpu
        .linear_policy_loss(&hidden_b, &head_b, shape, &inputs, &config.loss)
        .map_err(|e| e.to_string())?;
    let mut grads = rows.backward(model, &tapes, &out.grad_hidden);
    grads[model.layout().head.clone()].copy_from_slice(&out.grad_weight);
    let report = PolicyStepReport {
        loss: out.report.loss,
        clipfrac: out.report.clipfrac,
        approx_kl: out.report.approx_kl,
        tokens: out.report.trained_tokens,
        grad_norm: 0.0,
    };
    Ok(Some((report, grads)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::BuiltinModel;
    use crate::ledger::{split, LedgerConfig};
    use crate::rollout::{run_episodes, Actor, EpisodeRules};

    /// The demonstrator's episodes of 6 ledger tasks, 4 each (it guesses what it cannot
    /// see, so rewards differ within a group): its segments and trajectories.
    fn episodes(model: &BuiltinModel) -> (Vec<SummarySegment>, Vec<Trajectory>) {
        let tasks = split(&LedgerConfig::default(), "t", 5..=9, 6, 3).unwrap();
        let jobs: Vec<_> = tasks.iter().flat_map(|t| [t; 4]).zip(0..).collect();
        let rules = EpisodeRules::supo(64, 52, 2, 40);
        let demo = run_episodes(model.vocab(), &jobs, &rules, Actor::Demonstrator).unwrap();
        let trajectories: Vec<Trajectory> = demo.into_iter().map(|e| e.trajectory).collect();
        let segments = trajectories
            .iter()
            .flat_map(|t| t.segments.clone())
            .collect();
        (segments, trajectories)
    }

    fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
        pool.unwrap().install(f)
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        let scale = a.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
        a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5 * scale)
    }

    #[test]
    fn sharded_steps_match_one_shard_and_ignore_the_thread_count() {
        let model = BuiltinModel::untrained(1);
        let (segments, trajectories) = episodes(&model);
        let segments: Vec<&SummarySegment> = segments.iter().collect();
        let t = &model.transformer;
        let tokens: usize = segments
            .iter()
            .map(|s| s.prompt.len() + s.response().len())
            .sum();
        assert!(tokens > 4 * 100, "{tokens} tokens make too few shards");

        let (loss, whole) = supervised_gradient(t, &segments, usize::MAX).unwrap();
        let sharded = |threads| in_pool(threads, || supervised_gradient(t, &segments, 100));
        let (loss1, one) = sharded(1).unwrap();
        let (loss3, three) = sharded(3).unwrap();
        assert_eq!(loss1.to_bits(), loss3.to_bits());
        assert!(one
            .iter()
            .zip(&three)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!((loss - loss1).abs() < 1e-6 * loss.abs() && close(&whole, &one));

        let config = EstimatorConfig::default();
        let gradient = |shard| policy_gradient(t, &trajectories, &config, shard).unwrap();
        let (report, whole) = gradient(usize::MAX).expect("something to train");
        let (sharded_report, sharded) = in_pool(3, || gradient(100)).unwrap();
        assert!(report.tokens > 0 && report.tokens == sharded_report.tokens);
        assert!(close(&whole, &sharded) && whole.iter().any(|&g| g != 0.0));
    }
}
