//! Row kernels of the CPU reference backend: one logits row at a time, f32 arithmetic whatever
//! the element type.
//!
//! A row is read twice: [`row_softmax_stats`] makes one pass with a blockwise online
//! log-sum-exp (stable for logits of ±1e4, entropy accumulated relative to the running max so it
//! does not cancel), [`row_gradient`] a second pass that writes `dL/dlogits` in place. The
//! summation order is fixed by the code (lane-wise accumulators reduced in a fixed tree), so the
//! result does not depend on the SIMD width the compiler picks.

use super::Element;

/// Lanes of the accumulators; fixes the summation order.
const LANES: usize = 16;
/// Elements per online-max block.
const BLOCK: usize = 512;

/// `exp(x)` for `x ≤ 0`, branch-free so loops over it vectorise (Cephes' `expf` polynomial,
/// within 2 ulp of the exact value; 0 below −87.3).
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.max(-87.3);
    // n = floor(x·log2(e) + ½) without libm, so the loop vectorises.
    let t = xc * LOG2E + 0.5;
    let ti = t as i32;
    let ni = ti - (t < ti as f32) as i32;
    let n = ni as f32;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_0e-1;
    let e = p * r * r + r + 1.0;
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    let v = e * scale;
    if x < -87.3 {
        0.0
    } else {
        v
    }
}

/// Softmax statistics of one row of `logits / T`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowStats {
    /// Running maximum `m` of the scaled logits.
    pub max: f32,
    /// `log Σ_j exp(z'_j − m)`.
    pub log_sum: f32,
    /// `log softmax(z')[target]`.
    pub logp: f32,
    /// Entropy `−Σ p log p`.
    pub entropy: f32,
}

impl RowStats {
    /// Whether the row was usable: no NaN or `+∞` logit, not all `−∞`.
    pub fn is_finite(&self) -> bool {
        self.max.is_finite()
            && self.log_sum.is_finite()
            && self.logp.is_finite()
            && self.entropy.is_finite()
    }
}

#[inline(always)]
fn tree_sum(v: &[f32; LANES]) -> f32 {
    let mut w = *v;
    let mut n = LANES;
    while n > 1 {
        n /= 2;
        for i in 0..n {
            w[i] += w[i + n];
        }
    }
    w[0]
}

/// One pass over a row: online log-sum-exp, the target's log-prob and the entropy.
#[inline(always)]
pub fn row_softmax_stats<T: Element>(row: &[T], target: usize, inv_temp: f32) -> RowStats {
    let mut m = f32::NEG_INFINITY;
    let mut s = [0.0f32; LANES];
    // Σ e_j · (z'_j − m): relative to the running max, rescaled when it moves.
    let mut sz = [0.0f32; LANES];
    for block in row.chunks(BLOCK) {
        let mut bm = [f32::NEG_INFINITY; LANES];
        // NaN and +∞ logits poison the max so the caller sees a non-finite row (f32::max
        // would silently skip a NaN).
        let mut bad = [0.0f32; LANES];
        let mut lanes = block.chunks_exact(LANES);
        for c in &mut lanes {
            for l in 0..LANES {
                let z = c[l].to_f32() * inv_temp;
                bm[l] = bm[l].max(z);
                bad[l] += if z < f32::INFINITY { 0.0 } else { 1.0 };
            }
        }
        for (l, x) in lanes.remainder().iter().enumerate() {
            let z = x.to_f32() * inv_temp;
            bm[l] = bm[l].max(z);
            bad[l] += if z < f32::INFINITY { 0.0 } else { 1.0 };
        }
        if tree_sum(&bad) > 0.0 {
            return RowStats {
                max: f32::NAN,
                log_sum: f32::NAN,
                logp: f32::NAN,
                entropy: f32::NAN,
            };
        }
        let block_max = bm.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        if block_max > m {
            if m > f32::NEG_INFINITY {
                let delta = m - block_max;
                let f = exp_nonpositive(delta);
                for l in 0..LANES {
                    sz[l] = f * (sz[l] + delta * s[l]);
                    s[l] *= f;
                }
            }
            m = block_max;
        }
        let mut lanes = block.chunks_exact(LANES);
        for c in &mut lanes {
            for l in 0..LANES {
                let d = c[l].to_f32() * inv_temp - m;
                let e = exp_nonpositive(d);
                s[l] += e;
                // −∞ logits (masked vocabulary) have e = 0 and add nothing.
                sz[l] += if e > 0.0 { e * d } else { 0.0 };
            }
        }
        for (l, x) in lanes.remainder().iter().enumerate() {
            let d = x.to_f32() * inv_temp - m;
            let e = exp_nonpositive(d);
            s[l] += e;
            sz[l] += if e > 0.0 { e * d } else { 0.0 };
        }
    }
    let sum = tree_sum(&s);
    let log_sum = libm::logf(sum);
    let picked = row[target].to_f32() * inv_temp;
    RowStats {
        max: m,
        log_sum,
        logp: picked - m - log_sum,
        entropy: log_sum - tree_sum(&sz) / sum,
    }
}

/// Second pass: overwrites the row with `dL/dlogits = scale · [g · (onehot − p) + η · p ·
/// (log p + H)] / T`, where `g = dL/dlog π` of the row's token, `η` the entropy coefficient and
/// `scale` the token's aggregation weight.
#[inline(always)]
pub fn row_gradient<T: Element>(
    row: &mut [T],
    target: usize,
    inv_temp: f32,
    stats: &RowStats,
    d_logp: f32,
    entropy_coef: f32,
    weight: f32,
) {
    let shift = stats.max + stats.log_sum;
    let a = -weight * d_logp * inv_temp;
    if entropy_coef == 0.0 {
        for x in row.iter_mut() {
            let p = exp_nonpositive(x.to_f32() * inv_temp - shift);
            *x = T::from_f32(a * p);
        }
    } else {
        let b = weight * entropy_coef * inv_temp;
        let h = stats.entropy;
        for x in row.iter_mut() {
            let lp = x.to_f32() * inv_temp - shift;
            let p = exp_nonpositive(lp);
            *x = T::from_f32(a * p + b * p * (lp + h));
        }
    }
    // The target's entry from the statistics, rounded once: `a · (p_y − 1) + entropy term`.
    let lp_y = stats.logp;
    let p_y = exp_nonpositive(lp_y);
    let entropy_term = if entropy_coef == 0.0 {
        0.0
    } else {
        weight * entropy_coef * inv_temp * p_y * (lp_y + stats.entropy)
    };
    row[target] = T::from_f32(a * (p_y - 1.0) + entropy_term);
}
