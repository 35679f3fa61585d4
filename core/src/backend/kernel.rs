//! Row kernels of the CPU reference backend: one logits row at a time, f32 arithmetic whatever
//! the element type.
//!
//! A row is read twice. [`row_softmax_stats`] makes one pass with a blockwise online
//! log-sum-exp (stable for logits of ±1e4, entropy accumulated relative to the running max so it
//! does not cancel); given a [`RowExps`] it also keeps each logit's `exp(z'_j − m_b)` (relative
//! to the running max `m_b` after the logit's block) and each block's `m_b`. [`row_gradient`]
//! then writes `dL/dlogits` in place from those, `p_j = exp(z'_j − m_b) · exp(m_b − m − log Σ)`:
//! one exponential per logit in all. The summation order is fixed by the code (lane-wise
//! accumulators reduced in a fixed tree; maxima are exact, so their order does not matter), and
//! Rust never contracts `a·b + c` into an FMA, so the result does not depend on the SIMD width
//! the compiler picks.
//!
//! The loops are plain Rust over fixed-width lane arrays, written so that the compiler
//! vectorises them in every [`Isa`] variant: no `f32::max` (whose NaN rule costs three
//! instructions and a long dependency chain) but selects, no branches inside a block, the next
//! block read while the current one is computed (so memory reads overlap the arithmetic). f16
//! and bf16 rows are widened and narrowed a block at a time through f32 buffers on the stack,
//! with the element types' branch-free conversions (which vectorise) or, for f16 in the x86
//! variants, F16C instructions (`f16c.rs`): the same values either way.

use alloc::vec::Vec;

use super::element::{as_f32, as_f32_mut};
use super::Element;

/// Lanes of the accumulators; fixes the summation order.
const LANES: usize = 16;
/// Lanes of the blockwise maximum: four vectors of [`LANES`], so the loop is not one long
/// dependency chain.
const MAX_LANES: usize = 4 * LANES;
/// Elements per online-max block.
const BLOCK: usize = 512;

/// `exp(x)` for `x ≤ 0`, branch-free so loops over it vectorise (Cephes' `expf` polynomial,
/// within 2 ulp of the exact value; 0 below −87.3, and NaN for NaN).
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    let (v, in_range) = exp_unmasked(x);
    if in_range {
        v
    } else {
        0.0
    }
}

/// `exp(x)` for `−87.3 ≤ x ≤ 0` (and NaN for NaN), with whether `x` is in that range (or
/// NaN); outside it the value is meaningless. [`exp_nonpositive`] without the final select,
/// for callers that reuse the comparison.
#[inline(always)]
fn exp_unmasked(x: f32) -> (f32, bool) {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // n = round(x·log2(e)) by adding 1.5·2²³ (plus the exponent bias 127, so that `k`'s low
    // bits, shifted into the exponent field, are directly 2ⁿ): no float-to-int conversion, so
    // loops over this function vectorise. Below −87.3 the integer arithmetic wraps harmlessly.
    const ROUND: f32 = 12_583_039.0; // 1.5·2²³ + 127
    let k = x * LOG2E + ROUND;
    let n = k - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    let scale = f32::from_bits(k.to_bits() << 23);
    // Not `x >= -87.3`: NaN must count as in range, so that it propagates.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    let in_range = !(x < -87.3);
    (e * scale, in_range)
}

/// The larger of `acc` and `x`, keeping `acc` when `x` is NaN: one `max` instruction once
/// vectorised (`f32::max`'s NaN rule needs three).
#[inline(always)]
fn max_of(acc: f32, x: f32) -> f32 {
    if x > acc {
        x
    } else {
        acc
    }
}

/// The largest non-NaN value of `block` (`−∞` when there is none). Exact, so the lane order
/// does not change it.
#[inline(always)]
fn block_max(block: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; MAX_LANES];
    let mut chunks = block.chunks_exact(MAX_LANES);
    for c in &mut chunks {
        for l in 0..MAX_LANES {
            acc[l] = max_of(acc[l], c[l]);
        }
    }
    for (l, &x) in chunks.remainder().iter().enumerate() {
        acc[l] = max_of(acc[l], x);
    }
    let mut n = MAX_LANES;
    while n > 1 {
        n /= 2;
        for i in 0..n {
            acc[i] = max_of(acc[i], acc[i + n]);
        }
    }
    acc[0]
}

/// How a kernel variant widens and narrows elements: every implementation gives the values of
/// [`Element::to_f32`] and [`Element::from_f32`], so the variants give the same bits.
trait Convert {
    /// Widens exactly [`LANES`] values (a fixed count, so the compiler vectorises the loop).
    #[inline(always)]
    fn widen_lanes<T: Element>(src: &[T], dst: &mut [f32]) {
        for l in 0..LANES {
            dst[l] = src[l].to_f32();
        }
    }
    /// Widens `src` into `dst` (of the same length).
    #[inline(always)]
    fn widen<T: Element>(src: &[T], dst: &mut [f32]) {
        T::widen_slice(src, dst);
    }
    /// Rounds `src` into `dst` (of the same length).
    #[inline(always)]
    fn narrow<T: Element>(src: &[f32], dst: &mut [T]) {
        T::narrow_slice(src, dst);
    }
}

/// The element types' own conversions (branch-free bit arithmetic that vectorises anywhere).
struct Portable;

impl Convert for Portable {}

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

/// What [`row_softmax_stats`] keeps of a row for [`row_gradient`]: each logit's
/// `exp(z'_j − m_b)` and each block's running max `m_b`. One per thread, reused row after row
/// (it grows to the longest row once).
#[derive(Debug, Clone, Default)]
pub struct RowExps {
    exps: Vec<f32>,
    block_max: Vec<f32>,
    // Per block, exp(m_b − m − log Σ): from exponentials to probabilities.
    factors: Vec<f32>,
}

impl RowExps {
    /// An empty scratch.
    pub fn new() -> Self {
        Self::default()
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

/// `exp(z·(1/T) − m)` and its entropy term `e · (z·(1/T) − m)`, both 0 below the range of
/// [`exp_nonpositive`] (so `−∞` logits add nothing rather than `0 · −∞`). A NaN or `+∞` logit
/// makes both NaN (its `d` is NaN), which turns the row's sums NaN.
#[inline(always)]
fn exp_term(z: f32, inv_temp: f32, m: f32) -> (f32, f32) {
    let d = z * inv_temp - m;
    let (e, in_range) = exp_unmasked(d);
    if in_range {
        (e, e * d)
    } else {
        (0.0, 0.0)
    }
}

/// `values` as f32 (themselves for f32, else widened into `buf`) and their [`block_max`].
#[inline(always)]
fn load_block<'a, T: Element, C: Convert>(values: &'a [T], buf: &'a mut [f32]) -> (&'a [f32], f32) {
    let x: &[f32] = match as_f32(values) {
        Some(x) => x,
        None => {
            let x = &mut buf[..values.len()];
            C::widen(values, x);
            x
        }
    };
    (x, block_max(x))
}

/// [`LANES`] values of the next block: widened into `buf` (unless f32) and folded into `max`.
#[inline(always)]
fn load_lanes<T: Element, C: Convert>(values: &[T], buf: &mut [f32], max: &mut [f32; LANES]) {
    let x: &[f32] = match as_f32(values) {
        Some(x) => x,
        None => {
            C::widen_lanes(values, buf);
            buf
        }
    };
    for l in 0..LANES {
        max[l] = max_of(max[l], x[l]);
    }
}

/// [`LANES`] logits `z` of the current block: their exponentials (relative to the running
/// max `m`) go to `exps` and the sums `s`, `sz`.
#[inline(always)]
fn add_lanes(
    z: &[f32],
    exps: &mut [f32],
    inv_temp: f32,
    m: f32,
    s: &mut [f32; LANES],
    sz: &mut [f32; LANES],
) {
    for l in 0..LANES {
        let (v, ed) = exp_term(z[l], inv_temp, m);
        s[l] += v;
        sz[l] += ed;
        exps[l] = v;
    }
}

/// [`add_lanes`] for a block's last, shorter chunk, padded with `−∞` (which adds exactly
/// nothing).
#[inline(always)]
fn add_tail(
    z: &[f32],
    exps: &mut [f32],
    inv_temp: f32,
    m: f32,
    s: &mut [f32; LANES],
    sz: &mut [f32; LANES],
) {
    if z.is_empty() {
        return;
    }
    let (mut zp, mut ep) = ([f32::NEG_INFINITY; LANES], [0.0; LANES]);
    zp[..z.len()].copy_from_slice(z);
    add_lanes(&zp, &mut ep, inv_temp, m, s, sz);
    exps.copy_from_slice(&ep[..z.len()]);
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
    /// Adds one block `z` (at most [`BLOCK`] logits, already f32, whose maximum is
    /// `block_max`), writing each logit's `exp(z'_j − m_b)` into `exps`. Meanwhile loads the
    /// next block, `next` (widened into `next_buf` unless f32), so that its memory reads overlap
    /// this block's arithmetic. Returns `m_b`, the running max the exponentials are relative to
    /// (`−∞` for a block that adds nothing, whose `exps` are 0), and the next block's maximum.
    #[inline(always)]
    fn add_block<T: Element, C: Convert>(
        &mut self,
        z: &[f32],
        block_max: f32,
        inv_temp: f32,
        exps: &mut [f32],
        next: &[T],
        next_buf: &mut [f32],
    ) -> (f32, f32) {
        // max(z)·(1/T) = max(z·(1/T)): rounding is monotone and 1/T > 0.
        let block_max = block_max * inv_temp;
        if block_max == f32::NEG_INFINITY {
            // A fully masked block (all −∞) adds nothing; without this skip its d = −∞ − (−∞)
            // would be NaN. (A NaN-only block also lands here and is caught by the NaN check.)
            self.bad_block |= z.iter().any(|x| x.is_nan());
            exps.fill(0.0);
            return (f32::NEG_INFINITY, load_block::<T, C>(next, next_buf).1);
        }
        if block_max > self.m {
            if self.m > f32::NEG_INFINITY {
                let delta = self.m - block_max;
                let f = exp_nonpositive(delta);
                for l in 0..LANES {
                    self.sz[l] = f * (self.sz[l] + delta * self.s[l]);
                    self.s[l] *= f;
                }
            }
            self.m = block_max;
        }
        // The sums in locals, so that they stay in registers through the loops.
        let (m, mut s, mut sz) = (self.m, self.s, self.sz);
        let (full, next_full) = (z.len() / LANES * LANES, next.len() / LANES * LANES);
        let both = full.min(next_full);
        let mut next_max = [f32::NEG_INFINITY; LANES];
        for j in (0..both).step_by(LANES) {
            let r = j..j + LANES;
            add_lanes(
                &z[r.clone()],
                &mut exps[r.clone()],
                inv_temp,
                m,
                &mut s,
                &mut sz,
            );
            load_lanes::<T, C>(&next[r.clone()], &mut next_buf[r], &mut next_max);
        }
        for j in (both..full).step_by(LANES) {
            let r = j..j + LANES;
            add_lanes(&z[r.clone()], &mut exps[r], inv_temp, m, &mut s, &mut sz);
        }
        add_tail(&z[full..], &mut exps[full..], inv_temp, m, &mut s, &mut sz);
        (self.s, self.sz) = (s, sz);
        for j in (both..next_full).step_by(LANES) {
            let r = j..j + LANES;
            load_lanes::<T, C>(&next[r.clone()], &mut next_buf[r], &mut next_max);
        }
        let tail = load_block::<T, C>(&next[next_full..], &mut next_buf[next_full..]).1;
        let next_max = next_max.iter().fold(tail, |a, &b| max_of(a, b));
        (self.m, next_max)
    }
}

/// One pass over a row: online log-sum-exp, the target's log-prob and the entropy; with
/// `keep`, also what [`row_gradient`] needs of the row. The statistics are the same bits with
/// or without `keep`.
///
/// Rows of f16 or bf16 are widened a block at a time ([`Element::widen_slice`]) into buffers
/// on the stack and the f32 code runs on those: the same values, so the same bits. Each block
/// is read ahead (its maximum taken) while the previous block's exponentials are computed.
#[inline(always)]
pub fn row_softmax_stats<T: Element>(
    row: &[T],
    target: usize,
    inv_temp: f32,
    keep: Option<&mut RowExps>,
) -> RowStats {
    stats_with::<T, Portable>(row, target, inv_temp, keep)
}

/// [`row_softmax_stats`] with the conversions of `C`.
#[inline(always)]
fn stats_with<T: Element, C: Convert>(
    row: &[T],
    target: usize,
    inv_temp: f32,
    mut keep: Option<&mut RowExps>,
) -> RowStats {
    let mut state = OnlineSoftmax {
        m: f32::NEG_INFINITY,
        s: [0.0; LANES],
        sz: [0.0; LANES],
        bad_block: false,
    };
    if let Some(k) = keep.as_deref_mut() {
        k.exps.resize(row.len(), 0.0);
        k.block_max.clear();
    }
    // Without `keep` the exponentials land in a throw-away buffer.
    let mut discard = [0.0f32; BLOCK];
    let (mut buf_a, mut buf_b) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    let (mut cur, mut next) = (&mut buf_a, &mut buf_b);
    let block = |b: usize| &row[b * BLOCK..row.len().min(b * BLOCK + BLOCK)];
    let blocks = row.len().div_ceil(BLOCK);
    let mut max = if blocks > 0 {
        load_block::<T, C>(block(0), &mut cur[..]).1
    } else {
        f32::NEG_INFINITY
    };
    for b in 0..blocks {
        let values = block(b);
        let z = as_f32(values).unwrap_or(&cur[..values.len()]);
        let following = if b + 1 < blocks { block(b + 1) } else { &[] };
        let next_buf = &mut next[..following.len()];
        let (_, next_max) = match keep.as_deref_mut() {
            Some(k) => {
                let exps = &mut k.exps[b * BLOCK..b * BLOCK + values.len()];
                let r = state.add_block::<T, C>(z, max, inv_temp, exps, following, next_buf);
                k.block_max.push(r.0);
                r
            }
            None => {
                let exps = &mut discard[..values.len()];
                state.add_block::<T, C>(z, max, inv_temp, exps, following, next_buf)
            }
        };
        max = next_max;
        core::mem::swap(&mut cur, &mut next);
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

/// One block of [`row_gradient`] on f32 values, in place: `x` holds the block's logits
/// when `entropy` (`(η · weight / T, H)`) is given, and is only written otherwise; `e` its
/// exponentials, `c` their factor to probabilities.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gradient_block(
    x: &mut [f32],
    e: &[f32],
    inv_temp: f32,
    shift: f32,
    c: f32,
    a: f32,
    entropy: Option<(f32, f32)>,
) {
    let ac = a * c;
    match entropy {
        None => {
            for (x, &e) in x.iter_mut().zip(e) {
                *x = ac * e;
            }
        }
        Some((b, h)) => {
            for (x, &e) in x.iter_mut().zip(e) {
                let lp = *x * inv_temp - shift;
                let p = e * c;
                // p = 0 for a −∞ logit, whose entropy term is 0 (not 0 · −∞).
                let entropy_term = if p > 0.0 { b * p * (lp + h) } else { 0.0 };
                *x = ac * e + entropy_term;
            }
        }
    }
}

/// Second pass: overwrites the row with `dL/dlogits = scale · [g · (onehot − p) + η · p ·
/// (log p + H)] / T`, where `g = dL/dlog π` of the row's token, `η` the entropy coefficient and
/// `scale` the token's aggregation weight; `p_j = exp(z'_j − m_b) · exp(m_b − m − log Σ)` from
/// what [`row_softmax_stats`] kept of this row in `exps`.
///
/// Rows of f16 or bf16 go through an f32 buffer a block at a time ([`Element::narrow_slice`],
/// and [`Element::widen_slice`] first when the entropy term needs the logits), each value
/// rounded once, as if computed element by element.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn row_gradient<T: Element>(
    row: &mut [T],
    exps: &mut RowExps,
    target: usize,
    inv_temp: f32,
    stats: &RowStats,
    d_logp: f32,
    entropy_coef: f32,
    weight: f32,
) {
    let args = (inv_temp, d_logp, entropy_coef, weight);
    gradient_with::<T, Portable>(row, exps, target, stats, args);
}

/// [`row_gradient`] with the conversions of `C`; `args` are `(1/T, g, η, scale)`.
#[inline(always)]
fn gradient_with<T: Element, C: Convert>(
    row: &mut [T],
    exps: &mut RowExps,
    target: usize,
    stats: &RowStats,
    (inv_temp, d_logp, entropy_coef, weight): (f32, f32, f32, f32),
) {
    debug_assert_eq!(exps.exps.len(), row.len());
    let shift = stats.max + stats.log_sum;
    let a = -weight * d_logp * inv_temp;
    let entropy =
        (entropy_coef != 0.0).then_some((weight * entropy_coef * inv_temp, stats.entropy));
    // Each block's factor exp(m_b − m − log Σ) ≤ 1 (m_b ≤ m and Σ ≥ 1), 0 for a block that
    // added nothing; all at once, so that the loop vectorises.
    exps.factors.clear();
    let factors = exps
        .block_max
        .iter()
        .map(|&m_b| exp_nonpositive(m_b - shift));
    exps.factors.extend(factors);
    let mut buf = [0.0f32; BLOCK];
    let blocks = row.chunks_mut(BLOCK).zip(exps.exps.chunks(BLOCK));
    for ((block, e), &c) in blocks.zip(&exps.factors) {
        match as_f32_mut(block) {
            Some(x) => gradient_block(x, e, inv_temp, shift, c, a, entropy),
            None => {
                let x = &mut buf[..block.len()];
                if entropy.is_some() {
                    C::widen(block, x);
                }
                gradient_block(x, e, inv_temp, shift, c, a, entropy);
                C::narrow(x, block);
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
    /// x86-64 with AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 with AVX-512 (F, BW, VL) and F16C.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The widest variant this CPU supports (the baseline without `std`).
    pub fn detect() -> Isa {
        #[cfg(all(feature = "std", target_arch = "x86_64"))]
        {
            // The variants convert f16 with F16C (which every AVX2 CPU has, but ask).
            let f16c = std::is_x86_feature_detected!("f16c");
            if f16c
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
            {
                return Isa::Avx512;
            }
            if f16c && std::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }

    /// [`row_softmax_stats`] compiled for this instruction set.
    #[inline]
    pub fn softmax_stats<T: Element>(
        self,
        row: &[T],
        target: usize,
        inv_temp: f32,
        keep: Option<&mut RowExps>,
    ) -> RowStats {
        match self {
            Isa::Baseline => stats_with::<T, Portable>(row, target, inv_temp, keep),
            // SAFETY: `Isa::detect` only returns these variants when the CPU has the features.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::stats_avx2(row, target, inv_temp, keep) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::stats_avx512(row, target, inv_temp, keep) },
        }
    }

    /// [`row_gradient`] compiled for this instruction set.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn gradient<T: Element>(
        self,
        row: &mut [T],
        exps: &mut RowExps,
        target: usize,
        inv_temp: f32,
        stats: &RowStats,
        d_logp: f32,
        entropy_coef: f32,
        weight: f32,
    ) {
        let args = (inv_temp, d_logp, entropy_coef, weight);
        match self {
            Isa::Baseline => gradient_with::<T, Portable>(row, exps, target, stats, args),
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::gradient_avx2(row, exps, target, stats, args) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::gradient_avx512(row, exps, target, stats, args) },
        }
    }
}

/// The row kernels recompiled with wider vector units enabled, f16 converted with F16C.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use half::f16;

    use super::{gradient_with, stats_with, Convert, Element, Portable, RowExps, RowStats};
    use crate::backend::{f16c, DType};

    /// Defines a [`Convert`] with F16C conversions (`$widen`, `$narrow` from `f16c`) for f16
    /// and the portable ones for the other types. Only the variants below use them, and
    /// [`Isa::detect`](super::Isa::detect) picks those only on CPUs with the features.
    macro_rules! f16_convert {
        ($name:ident, $widen:ident, $narrow:ident) => {
            struct $name;

            impl Convert for $name {
                #[inline(always)]
                fn widen_lanes<T: Element>(src: &[T], dst: &mut [f32]) {
                    match as_f16(src) {
                        // SAFETY: see the macro: the CPU has the features.
                        Some(h) => unsafe { f16c::$widen(h, dst) },
                        None => Portable::widen_lanes(src, dst),
                    }
                }
                #[inline(always)]
                fn widen<T: Element>(src: &[T], dst: &mut [f32]) {
                    match as_f16(src) {
                        // SAFETY: as above.
                        Some(h) => unsafe { f16c::$widen(h, dst) },
                        None => Portable::widen(src, dst),
                    }
                }
                #[inline(always)]
                fn narrow<T: Element>(src: &[f32], dst: &mut [T]) {
                    match as_f16_mut(dst) {
                        // SAFETY: as above.
                        Some(h) => unsafe { f16c::$narrow(src, h) },
                        None => Portable::narrow(src, dst),
                    }
                }
            }
        };
    }

    f16_convert!(F16c, widen, narrow);

    fn as_f16<T: Element>(values: &[T]) -> Option<&[f16]> {
        (T::DTYPE == DType::F16)
            .then(|| bytemuck::try_cast_slice(values).ok())
            .flatten()
    }

    fn as_f16_mut<T: Element>(values: &mut [T]) -> Option<&mut [f16]> {
        (T::DTYPE == DType::F16)
            .then(|| bytemuck::try_cast_slice_mut(values).ok())
            .flatten()
    }

    /// Defines `stats_*` and `gradient_*` wrappers compiled with the given target features.
    macro_rules! variant {
        ($stats:ident, $gradient:ident, $convert:ident, $features:literal) => {
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $stats<T: Element>(
                row: &[T],
                target: usize,
                inv_temp: f32,
                keep: Option<&mut RowExps>,
            ) -> RowStats {
                stats_with::<T, $convert>(row, target, inv_temp, keep)
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn $gradient<T: Element>(
                row: &mut [T],
                exps: &mut RowExps,
                target: usize,
                stats: &RowStats,
                args: (f32, f32, f32, f32),
            ) {
                gradient_with::<T, $convert>(row, exps, target, stats, args)
            }
        };
    }

    variant!(stats_avx2, gradient_avx2, F16c, "avx2,f16c");
    variant!(
        stats_avx512,
        gradient_avx512,
        F16c,
        "avx512f,avx512bw,avx512vl,avx2,f16c"
    );
}
