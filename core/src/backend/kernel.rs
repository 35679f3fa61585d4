//! Row kernels of the CPU reference backend: one logits row at a time, f32 arithmetic whatever
//! the element type.
//!
//! A row is read twice: [`row_softmax_stats`] makes one pass with a blockwise online
//! log-sum-exp (stable for logits of ±1e4, entropy accumulated relative to the running max so it
//! does not cancel), [`row_gradient`] a second pass that writes `dL/dlogits` in place. The
//! summation order is fixed by the code (lane-wise accumulators reduced in a fixed tree), so the
//! result does not depend on the SIMD width the compiler picks.

use super::element::{as_f32, as_f32_mut};
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
    // n = round(x·log2(e)) by the 1.5·2²³ trick: no float-to-int conversion, so loops over
    // this function vectorise.
    const ROUND: f32 = 12_582_912.0;
    let k = xc * LOG2E + ROUND;
    let n = k - ROUND;
    let ni = k.to_bits() as i32 - 0x4B40_0000;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
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

/// The running state of [`row_softmax_stats`]'s online log-sum-exp.
struct OnlineSoftmax {
    m: f32,
    s: [f32; LANES],
    // Σ e_j · (z'_j − m): relative to the running max, rescaled when it moves.
    sz: [f32; LANES],
    bad_block: bool,
}

impl OnlineSoftmax {
    /// Adds one block (at most [`BLOCK`] logits, already f32).
    #[inline(always)]
    fn add_block(&mut self, block: &[f32], inv_temp: f32) {
        let (s, sz) = (&mut self.s, &mut self.sz);
        let mut bm = [f32::NEG_INFINITY; LANES];
        let mut lanes = block.chunks_exact(LANES);
        for c in &mut lanes {
            for l in 0..LANES {
                bm[l] = bm[l].max(c[l] * inv_temp);
            }
        }
        for (l, x) in lanes.remainder().iter().enumerate() {
            bm[l] = bm[l].max(x * inv_temp);
        }
        let block_max = bm.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        if block_max == f32::NEG_INFINITY {
            // A fully masked block (all −∞) adds nothing; without this skip its d = −∞ − (−∞)
            // would be NaN. (A NaN-only block also lands here and is caught by the NaN check.)
            self.bad_block |= block.iter().any(|x| x.is_nan());
            return;
        }
        if block_max > self.m {
            if self.m > f32::NEG_INFINITY {
                let delta = self.m - block_max;
                let f = exp_nonpositive(delta);
                for l in 0..LANES {
                    sz[l] = f * (sz[l] + delta * s[l]);
                    s[l] *= f;
                }
            }
            self.m = block_max;
        }
        let m = self.m;
        let mut lanes = block.chunks_exact(LANES);
        for c in &mut lanes {
            for l in 0..LANES {
                let d = c[l] * inv_temp - m;
                let e = exp_nonpositive(d);
                s[l] += e;
                // −∞ logits (masked vocabulary) have e = 0 and add nothing; a NaN or +∞ logit
                // makes d NaN with e > 0, so the entropy (and `is_finite`) turns NaN.
                sz[l] += if e > 0.0 { e * d } else { 0.0 };
            }
        }
        for (l, x) in lanes.remainder().iter().enumerate() {
            let d = x * inv_temp - m;
            let e = exp_nonpositive(d);
            s[l] += e;
            sz[l] += if e > 0.0 { e * d } else { 0.0 };
        }
    }
}

/// One pass over a row: online log-sum-exp, the target's log-prob and the entropy.
///
/// Rows of f16 or bf16 are widened a block at a time ([`Element::widen_slice`]) into a buffer
/// on the stack and the f32 code runs on that: the same values, so the same bits.
#[inline(always)]
pub fn row_softmax_stats<T: Element>(row: &[T], target: usize, inv_temp: f32) -> RowStats {
    let mut state = OnlineSoftmax {
        m: f32::NEG_INFINITY,
        s: [0.0; LANES],
        sz: [0.0; LANES],
        bad_block: false,
    };
    let mut buf = [0.0f32; BLOCK];
    for block in row.chunks(BLOCK) {
        match as_f32(block) {
            Some(x) => state.add_block(x, inv_temp),
            None => {
                let x = &mut buf[..block.len()];
                T::widen_slice(block, x);
                state.add_block(x, inv_temp);
            }
        }
    }
    let m = state.m;
    let sum = if state.bad_block {
        f32::NAN
    } else {
        tree_sum(&state.s)
    };
    let log_sum = libm::logf(sum);
    let picked = row[target].to_f32() * inv_temp;
    RowStats {
        max: m,
        log_sum,
        logp: picked - m - log_sum,
        entropy: log_sum - tree_sum(&state.sz) / sum,
    }
}

/// [`row_gradient`] on f32 values, in place; `entropy` is `(η · weight / T, H)` when the
/// entropy coefficient is non-zero.
#[inline(always)]
fn gradient_block(x: &mut [f32], inv_temp: f32, shift: f32, a: f32, entropy: Option<(f32, f32)>) {
    match entropy {
        None => {
            for x in x.iter_mut() {
                *x = a * exp_nonpositive(*x * inv_temp - shift);
            }
        }
        Some((b, h)) => {
            for x in x.iter_mut() {
                let lp = *x * inv_temp - shift;
                let p = exp_nonpositive(lp);
                // p = 0 for a −∞ logit, whose entropy term is 0 (not 0 · −∞).
                let entropy_term = if p > 0.0 { b * p * (lp + h) } else { 0.0 };
                *x = a * p + entropy_term;
            }
        }
    }
}

/// Second pass: overwrites the row with `dL/dlogits = scale · [g · (onehot − p) + η · p ·
/// (log p + H)] / T`, where `g = dL/dlog π` of the row's token, `η` the entropy coefficient and
/// `scale` the token's aggregation weight.
///
/// Rows of f16 or bf16 go through an f32 buffer a block at a time ([`Element::widen_slice`],
/// [`Element::narrow_slice`]), each value rounded once, as if computed element by element.
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
    let entropy =
        (entropy_coef != 0.0).then_some((weight * entropy_coef * inv_temp, stats.entropy));
    let mut buf = [0.0f32; BLOCK];
    for block in row.chunks_mut(BLOCK) {
        match as_f32_mut(block) {
            Some(x) => gradient_block(x, inv_temp, shift, a, entropy),
            None => {
                let x = &mut buf[..block.len()];
                T::widen_slice(block, x);
                gradient_block(x, inv_temp, shift, a, entropy);
                T::narrow_slice(x, block);
            }
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

/// The instruction set the row kernels run with, picked once at run time.
///
/// The kernels fix their summation order and Rust never contracts `a·b + c` into an FMA, so
/// every variant gives bit-identical results; wider vectors only make them faster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// The compilation target's baseline (SSE2 on x86-64).
    Baseline,
    /// x86-64 with AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 with AVX-512 (F, BW, VL).
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The widest variant this CPU supports (the baseline without `std`).
    pub fn detect() -> Isa {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
            {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }

    /// [`row_softmax_stats`] compiled for this instruction set.
    #[inline]
    pub fn softmax_stats<T: Element>(self, row: &[T], target: usize, inv_temp: f32) -> RowStats {
        match self {
            Isa::Baseline => row_softmax_stats(row, target, inv_temp),
            // SAFETY: `Isa::detect` only returns these variants when the CPU has the features.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::stats_avx2(row, target, inv_temp) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::stats_avx512(row, target, inv_temp) },
        }
    }

    /// [`row_gradient`] compiled for this instruction set.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn gradient<T: Element>(
        self,
        row: &mut [T],
        target: usize,
        inv_temp: f32,
        stats: &RowStats,
        d_logp: f32,
        entropy_coef: f32,
        weight: f32,
    ) {
        match self {
            Isa::Baseline => {
                row_gradient(row, target, inv_temp, stats, d_logp, entropy_coef, weight)
            }
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe {
                x86::gradient_avx2(row, target, inv_temp, stats, d_logp, entropy_coef, weight)
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe {
                x86::gradient_avx512(row, target, inv_temp, stats, d_logp, entropy_coef, weight)
            },
        }
    }
}

/// The row kernels recompiled with wider vector units enabled.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{row_gradient, row_softmax_stats, Element, RowStats};

    /// Defines `stats_*` and `gradient_*` wrappers compiled with the given target features.
    macro_rules! variant {
        ($stats:ident, $gradient:ident, $features:literal) => {
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $stats<T: Element>(
                row: &[T],
                target: usize,
                inv_temp: f32,
            ) -> RowStats {
                row_softmax_stats(row, target, inv_temp)
            }

            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn $gradient<T: Element>(
                row: &mut [T],
                target: usize,
                inv_temp: f32,
                stats: &RowStats,
                d_logp: f32,
                entropy_coef: f32,
                weight: f32,
            ) {
                row_gradient(row, target, inv_temp, stats, d_logp, entropy_coef, weight)
            }
        };
    }

    variant!(stats_avx2, gradient_avx2, "avx2");
    variant!(
        stats_avx512,
        gradient_avx512,
        "avx512f,avx512bw,avx512vl,avx2"
    );
}
