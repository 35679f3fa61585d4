//! Gradient steps on the built-in model: the supervised warm start (cross-entropy on the
//! demonstrator's tokens) and the SUPO/GRPO policy-gradient step, whose loss and gradient come
//! from `supo-core`'s fused linear policy loss on the CPU backend.

use serde::{Deserialize, Serialize};
use supo_core::backend::{Backend, LinearShape, TokenInputs};
use supo_core::estimator::{EstimatorConfig, TrainingBatch};
use supo_core::{CpuBackend, SummarySegment, Trajectory};

use crate::builtin::transformer::gemm;
use crate::builtin::{Packed, Transformer};

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

/// Segments as training rows: each row is `prompt ⊕ response`, and `positions[i]` is the
/// packed index of the hidden state that predicts response token `i` (rows in order).
struct Rows {
    packed: Packed,
    positions: Vec<usize>,
}

impl Rows {
    fn new<'a>(rows: impl IntoIterator<Item = (&'a [u32], &'a [u32])>) -> Rows {
        let mut seqs: Vec<Vec<u32>> = Vec::new();
        let mut positions = Vec::new();
        let mut at = 0;
        for (prompt, response) in rows {
            let mut s = prompt.to_vec();
            s.extend_from_slice(response);
            positions.extend((0..response.len()).map(|j| at + prompt.len() + j - 1));
            at += s.len();
            seqs.push(s);
        }
        Rows {
            packed: Packed::new(seqs.iter().map(Vec::as_slice)),
            positions,
        }
    }
}

fn gather(hidden: &[f32], positions: &[usize], d: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(positions.len() * d);
    for &p in positions {
        out.extend_from_slice(&hidden[p * d..][..d]);
    }
    out
}

fn scatter(grad: &[f32], positions: &[usize], d: usize, tokens: usize) -> Vec<f32> {
    let mut out = vec![0.0; tokens * d];
    for (i, &p) in positions.iter().enumerate() {
        for (o, g) in out[p * d..][..d].iter_mut().zip(&grad[i * d..][..d]) {
            *o += g;
        }
    }
    out
}

/// One supervised step: mean cross-entropy of the agent tokens of `segments` (each trained as
/// one row, prompt ⊕ response). Returns the loss before the step.
pub fn supervised_step(
    model: &mut Transformer,
    opt: &mut AdamW,
    segments: &[&SummarySegment],
) -> Result<f64, String> {
    let responses: Vec<Vec<u32>> = segments.iter().map(|s| s.response()).collect();
    let masks: Vec<Vec<u8>> = segments.iter().map(|s| s.agent_mask()).collect();
    let rows = Rows::new(
        segments
            .iter()
            .zip(&responses)
            .map(|(s, r)| (s.prompt.as_slice(), r.as_slice())),
    );
    let targets: Vec<u32> = responses.concat();
    let mask: Vec<u8> = masks.concat();
    let trained = mask.iter().filter(|&&m| m == 1).count();
    if trained == 0 {
        return Err("no agent tokens to train on".into());
    }
    let tape = model.forward(&rows.packed).map_err(|e| e.0)?;
    let c = model.config().clone();
    let (d, v, n) = (c.d_model, c.vocab, rows.positions.len());
    let hidden = gather(&tape.hidden, &rows.positions, d);
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
    let inv = 1.0 / trained as f32;
    for ((row, &t), &m) in logits.chunks_exact_mut(v).zip(&targets).zip(&mask) {
        if m == 0 {
            row.fill(0.0);
            continue;
        }
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let z: f32 = row.iter().map(|&x| (x - max).exp()).sum();
        loss -= ((row[t as usize] - max) - z.ln()) as f64;
        for x in row.iter_mut() {
            *x = (*x - max).exp() / z * inv;
        }
        row[t as usize] -= inv;
    }
    let mut grads = vec![0.0; model.params.len()];
    let head = model.layout().head.clone();
    gemm(
        v,
        n,
        d,
        &logits,
        true,
        &hidden,
        false,
        &mut grads[head],
        true,
    );
    let mut d_hidden_r = vec![0.0; n * d];
    gemm(
        n,
        v,
        d,
        &logits,
        false,
        model.head(),
        false,
        &mut d_hidden_r,
        false,
    );
    let d_hidden = scatter(&d_hidden_r, &rows.positions, d, rows.packed.tokens.len());
    model.backward(&tape, &d_hidden, &mut grads);
    opt.update(&mut model.params, &grads)?;
    Ok(loss / trained as f64)
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
        return Ok(PolicyStepReport::default());
    }
    let rows = Rows::new(
        keep.iter()
            .map(|r| (r.prompt.as_slice(), r.response.as_slice())),
    );
    let tape = model.forward(&rows.packed).map_err(|e| e.0)?;
    let c = model.config().clone();
    let d = c.d_model;
    let hidden = gather(&tape.hidden, &rows.positions, d);
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
        hidden: d,
        vocab: c.vocab,
        chunk: 1024,
    };
    let out = cpu
        .linear_policy_loss(&hidden_b, &head_b, shape, &inputs, &config.loss)
        .map_err(|e| e.to_string())?;
    let mut grads = vec![0.0; model.params.len()];
    let head = model.layout().head.clone();
    grads[head].copy_from_slice(&out.grad_weight);
    let d_hidden = scatter(
        &out.grad_hidden,
        &rows.positions,
        d,
        rows.packed.tokens.len(),
    );
    model.backward(&tape, &d_hidden, &mut grads);
    let grad_norm = opt.update(&mut model.params, &grads)?;
    Ok(PolicyStepReport {
        loss: out.report.loss,
        clipfrac: out.report.clipfrac,
        approx_kl: out.report.approx_kl,
        tokens: out.report.trained_tokens,
        grad_norm,
    })
}
