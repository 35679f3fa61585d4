//! bf16 matrix products on AVX512-BF16, for the fused linear loss on bf16 operands.
//!
//! `vdpbf16ps` multiplies 32 pairs of bf16 values exactly and adds each pair's two products to
//! one f32 lane: twice the multiply-adds per instruction of an f32 FMA. Both operands are
//! therefore matrices of *pairs*: element `(i, p)` of `A` and `(p, j)` of `B` is a `u32` holding
//! two bf16 values that are consecutive along the inner dimension (the first in the low half),
//! and `C[i][j] += Σ_p a(i,p)·b(p,j)` sums both halves. `A` is read in place through strides
//! ([`PairMatrix`]); `B` is packed into panels of [`NR`] columns ([`Panels`]) that the kernel
//! streams. Threads split `C` into blocks of rows and each element is summed over `p` in order
//! by one thread, so the thread count never changes a bit.
//!
//! The instruction treats denormal inputs as zero and flushes denormal results, rounds each
//! addition to nearest even and sums a pair's two products in an order of its own: results
//! differ from f32 products of the widened values in the last bits, as any other summation
//! order would.

use alloc::vec::Vec;
use core::arch::x86_64::{
    __m512, __m512bh, __m512i, _mm512_dpbf16_ps, _mm512_loadu_si512, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_set1_epi32, _mm512_setzero_ps,
};

use half::bf16;

use super::Element;

/// Columns of `B` per panel: two 16-lane vectors of accumulators per row.
pub(super) const NR: usize = 32;

/// Rows of `C` per kernel call (16 accumulator registers of AVX-512's 32).
const MR: usize = 8;

/// Rows of `C` per task: a panel of `B` is reused by this many rows while it is in cache.
const MC: usize = 64;

/// Whether this CPU has the instructions the products need (AVX-512F and AVX512-BF16).
pub(super) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16")
}

/// The pair of `lo` and `hi` as the instruction reads it.
#[inline(always)]
fn pair(lo: u16, hi: u16) -> u32 {
    u32::from(lo) | (u32::from(hi) << 16)
}

/// A `rows × pairs` matrix of bf16 pairs read in place: `(i, p)` at `data[i·row + p·col]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct PairMatrix<'a> {
    /// The pairs.
    pub data: &'a [u32],
    /// Rows of the matrix.
    pub rows: usize,
    /// Pairs per row (the inner dimension, halved and rounded up).
    pub pairs: usize,
    /// Distance between consecutive rows.
    pub row: usize,
    /// Distance between consecutive pairs of a row.
    pub col: usize,
}

impl PairMatrix<'_> {
    /// Whether every element lies inside `data`.
    fn fits(&self) -> bool {
        self.rows == 0
            || self.pairs == 0
            || (self.rows - 1) * self.row + (self.pairs - 1) * self.col < self.data.len()
    }
}

/// The bf16 bits of `values` (row-major, `k` per row) as rows of pairs along the row: `values`
/// itself when `k` is even, else a copy with each row padded by a zero.
pub(super) fn row_pairs<'a>(values: &'a [bf16], k: usize, scratch: &'a mut Vec<u32>) -> &'a [u32] {
    if k.is_multiple_of(2) {
        if let Ok(pairs) = bytemuck::try_cast_slice(values) {
            return pairs;
        }
    }
    let kp = k.div_ceil(2);
    scratch.clear();
    for row in values.chunks(k.max(1)) {
        let mut it = row.chunks_exact(2);
        scratch.extend((&mut it).map(|p| pair(p[0].to_bits(), p[1].to_bits())));
        scratch.extend(it.remainder().iter().map(|x| u32::from(x.to_bits())));
    }
    debug_assert_eq!(scratch.len(), kp * (values.len() / k.max(1)));
    scratch
}

/// `rows` rows of `cols` values (row stride `stride`, bf16 bits) as pairs of consecutive rows:
/// a `⌈rows/2⌉ × cols` row-major matrix whose `(q, j)` is `(src[2q][j], src[2q+1][j])`, the
/// last row's partner zero when `rows` is odd; rows spread over rayon's pool when `parallel`.
pub(super) fn interleave_rows(
    parallel: bool,
    src: &[u16],
    (rows, cols, stride): (usize, usize, usize),
    out: &mut Vec<u32>,
) {
    out.clear();
    out.resize(rows.div_ceil(2) * cols, 0);
    let fill = |q: usize, dst: &mut [u32]| {
        let lo = &src[2 * q * stride..][..cols];
        if 2 * q + 1 < rows {
            let hi = &src[(2 * q + 1) * stride..][..cols];
            for ((d, &l), &h) in dst.iter_mut().zip(lo).zip(hi) {
                *d = pair(l, h);
            }
        } else {
            for (d, &l) in dst.iter_mut().zip(lo) {
                *d = u32::from(l);
            }
        }
    };
    rows_of(parallel, out, cols, fill);
}

/// Rounds `rows` rows of `cols` f32 values (row stride `stride`) to bf16 (to nearest even, as
/// [`Element::from_f32`]) into rows of `⌈cols/2⌉` pairs, an odd row's last pair padded by zero.
pub(super) fn round_rows(
    parallel: bool,
    src: &[f32],
    (rows, cols, stride): (usize, usize, usize),
    out: &mut Vec<u32>,
) {
    let pairs = cols.div_ceil(2);
    out.clear();
    out.resize(rows * pairs, 0);
    rows_of(parallel, out, pairs, |i, dst| {
        let dst: &mut [bf16] = bytemuck::cast_slice_mut(dst);
        bf16::narrow_slice(&src[i * stride..][..cols], &mut dst[..cols]);
    });
}

/// Runs `fill(i, row)` on every row of `width` elements of `out`, on rayon's pool when
/// `parallel`.
fn rows_of(parallel: bool, out: &mut [u32], width: usize, fill: impl Fn(usize, &mut [u32]) + Sync) {
    if width == 0 {
        return;
    }
    #[cfg(feature = "parallel")]
    if parallel {
        use rayon::prelude::*;
        out.par_chunks_exact_mut(width)
            .enumerate()
            .for_each(|(i, row)| fill(i, row));
        return;
    }
    let _ = parallel;
    for (i, row) in out.chunks_exact_mut(width).enumerate() {
        fill(i, row);
    }
}

/// The `B` operand of [`product`], packed: panel `q` holds columns `q·NR ..` as `pairs` rows of
/// [`NR`] pairs, zero past the last column.
#[derive(Debug, Default)]
pub(super) struct Panels {
    data: Vec<u32>,
    pairs: usize,
    cols: usize,
}

impl Panels {
    /// Sizes the panels for a `pairs × cols` matrix and runs `fill(first_column, panel)` on
    /// each (zeroed) panel, on rayon's pool when `parallel`.
    fn pack(
        &mut self,
        parallel: bool,
        pairs: usize,
        cols: usize,
        fill: impl Fn(usize, &mut [u32]) + Sync,
    ) {
        self.pairs = pairs;
        self.cols = cols;
        self.data.clear();
        self.data.resize(cols.div_ceil(NR) * pairs * NR, 0);
        if pairs == 0 {
            return;
        }
        #[cfg(feature = "parallel")]
        if parallel {
            use rayon::prelude::*;
            self.data
                .par_chunks_exact_mut(pairs * NR)
                .enumerate()
                .for_each(|(q, panel)| fill(q * NR, panel));
            return;
        }
        let _ = parallel;
        for (q, panel) in self.data.chunks_exact_mut(pairs * NR).enumerate() {
            fill(q * NR, panel);
        }
    }

    /// Packs `Bᵀ` given as a row-major `cols × pairs` matrix of pairs (`(p, j)` of `B` is
    /// `src[j·pairs + p]`): `z = h·Wᵀ` takes the weight's rows as they are.
    pub(super) fn pack_transposed(
        &mut self,
        parallel: bool,
        src: &[u32],
        pairs: usize,
        cols: usize,
    ) {
        self.pack(parallel, pairs, cols, |j0, panel| {
            let width = NR.min(cols - j0);
            for jj in 0..width {
                let row = &src[(j0 + jj) * pairs..][..pairs];
                for (dst, &x) in panel.chunks_exact_mut(NR).zip(row) {
                    dst[jj] = x;
                }
            }
        });
    }

    /// Packs `rows` rows of `cols` bf16 values (bits, row stride `stride`) paired across rows:
    /// `(p, j)` is `(src[2p][j], src[2p+1][j])`, the last row's partner zero when `rows` is odd.
    pub(super) fn pack_row_pairs(
        &mut self,
        parallel: bool,
        src: &[u16],
        rows: usize,
        cols: usize,
        stride: usize,
    ) {
        self.pack(parallel, rows.div_ceil(2), cols, |j0, panel| {
            let width = NR.min(cols - j0);
            for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
                let lo = &src[2 * p * stride + j0..][..width];
                if 2 * p + 1 < rows {
                    let hi = &src[(2 * p + 1) * stride + j0..][..width];
                    for ((d, &l), &h) in dst.iter_mut().zip(lo).zip(hi) {
                        *d = pair(l, h);
                    }
                } else {
                    for (d, &l) in dst.iter_mut().zip(lo) {
                        *d = u32::from(l);
                    }
                }
            }
        });
    }
}

/// `C = A·B` (or `C += A·B` when `accumulate`): `C` is `a.rows × b.cols`, row-major with row
/// stride `ldc`, summed in f32.
///
/// # Panics
/// If the operands disagree on the inner dimension or do not fit their slices (a caller's bug).
pub(super) fn product(
    parallel: bool,
    a: PairMatrix<'_>,
    b: &Panels,
    accumulate: bool,
    c: &mut [f32],
    ldc: usize,
) {
    let (m, n) = (a.rows, b.cols);
    assert!(
        a.pairs == b.pairs && a.fits() && ldc >= n && (m == 0 || (m - 1) * ldc + n <= c.len()),
        "bf16 product operands smaller than their shapes"
    );
    if m == 0 || n == 0 {
        return;
    }
    let c = &mut c[..(m - 1) * ldc + n];
    if a.pairs == 0 {
        if !accumulate {
            c.chunks_mut(ldc).for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    let task = |t: usize, rows: &mut [f32]| {
        let r0 = t * MC;
        let mc = MC.min(m - r0);
        for (q, panel) in b.data.chunks_exact(b.pairs * NR).enumerate() {
            let j0 = q * NR;
            let width = NR.min(n - j0);
            for i0 in (0..mc).step_by(MR) {
                let rows_here = MR.min(mc - i0);
                let a_rows = &a.data[(r0 + i0) * a.row..];
                let out = &mut rows[i0 * ldc + j0..];
                // SAFETY: the CPU has AVX-512F and AVX512-BF16 (`available`, checked by the
                // caller before any packing); `block`'s reads and writes stay inside `a_rows`,
                // `panel` and `out` by the bounds asserted above.
                unsafe {
                    block(rows_here, a_rows, a, panel, width, out, ldc, accumulate);
                }
            }
        }
    };
    #[cfg(feature = "parallel")]
    if parallel {
        use rayon::prelude::*;
        c.par_chunks_mut(MC * ldc)
            .enumerate()
            .for_each(|(t, rows)| task(t, rows));
        return;
    }
    let _ = parallel;
    for (t, rows) in c.chunks_mut(MC * ldc).enumerate() {
        task(t, rows);
    }
}

/// One block of up to [`MR`] rows and [`NR`] columns, by its row count.
///
/// # Safety
/// The CPU must have AVX-512F and AVX512-BF16; `a_rows` must hold `rows` rows of `a.pairs`
/// pairs at `a`'s strides, `panel` `a.pairs × NR` pairs, and `out` `rows` rows of `width`
/// values at stride `ldc`.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn block(
    rows: usize,
    a_rows: &[u32],
    a: PairMatrix<'_>,
    panel: &[u32],
    width: usize,
    out: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let args = (
        a_rows, a.pairs, a.row, a.col, panel, width, out, ldc, accumulate,
    );
    // SAFETY: forwarded from the caller.
    unsafe {
        match rows {
            1 => kernel::<1>(args),
            2 => kernel::<2>(args),
            3 => kernel::<3>(args),
            4 => kernel::<4>(args),
            5 => kernel::<5>(args),
            6 => kernel::<6>(args),
            7 => kernel::<7>(args),
            _ => kernel::<MR>(args),
        }
    }
}

/// [`kernel`]'s operands: `A`'s rows, pairs, row and pair strides, the panel, the columns in
/// it, `C`'s rows, their stride, and whether to add to them.
type KernelArgs<'a> = (
    &'a [u32],
    usize,
    usize,
    usize,
    &'a [u32],
    usize,
    &'a mut [f32],
    usize,
    bool,
);

/// `R` rows × [`NR`] columns of `C`, 2·`R` accumulators over the whole inner dimension.
///
/// # Safety
/// As [`block`], with `R` rows.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel<const R: usize>(
    (a, pairs, a_row, a_col, panel, width, out, ldc, accumulate): KernelArgs<'_>,
) {
    let (lo_mask, hi_mask) = (lane_mask(width), lane_mask(width.saturating_sub(16)));
    let (a, b, c) = (a.as_ptr(), panel.as_ptr(), out.as_mut_ptr());
    let mut acc: [[__m512; 2]; R] = [[_mm512_setzero_ps(); 2]; R];
    // SAFETY (every block below): the caller guarantees the extents named in `block`.
    if accumulate {
        for (i, acc) in acc.iter_mut().enumerate() {
            unsafe {
                acc[0] = _mm512_maskz_loadu_ps(lo_mask, c.add(i * ldc));
                acc[1] = _mm512_maskz_loadu_ps(hi_mask, c.add(i * ldc + 16));
            }
        }
    }
    for p in 0..pairs {
        let (b0, b1) = unsafe {
            let row = b.add(p * NR);
            (
                as_pairs(_mm512_loadu_si512(row.cast())),
                as_pairs(_mm512_loadu_si512(row.add(16).cast())),
            )
        };
        for (i, acc) in acc.iter_mut().enumerate() {
            let x = as_pairs(_mm512_set1_epi32(
                unsafe { *a.add(i * a_row + p * a_col) } as i32
            ));
            acc[0] = _mm512_dpbf16_ps(acc[0], x, b0);
            acc[1] = _mm512_dpbf16_ps(acc[1], x, b1);
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        unsafe {
            _mm512_mask_storeu_ps(c.add(i * ldc), lo_mask, acc[0]);
            _mm512_mask_storeu_ps(c.add(i * ldc + 16), hi_mask, acc[1]);
        }
    }
}

/// 32 bf16 lanes of the same 64 bytes.
#[inline(always)]
fn as_pairs(x: __m512i) -> __m512bh {
    // SAFETY: both types are 64 bytes of plain lanes, valid for every bit pattern.
    unsafe { core::mem::transmute::<__m512i, __m512bh>(x) }
}

/// The first `lanes` (at most 16) of 16 lanes.
#[inline(always)]
fn lane_mask(lanes: usize) -> u16 {
    if lanes >= 16 {
        u16::MAX
    } else {
        (1u16 << lanes) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    /// Pseudo-random bf16 values in [-2, 2) with all 8 significand bits in use.
    fn values(len: usize, seed: u32) -> Vec<bf16> {
        (0..len as u32)
            .map(|i| {
                let x = i
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(40_503));
                bf16::from_f32((x >> 8) as f32 / (1u32 << 22) as f32 - 2.0)
            })
            .collect()
    }

    fn bits(v: &[bf16]) -> Vec<u16> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The three layouts of the fused linear loss (`h·Wᵀ`, `G·W`, `Gᵀ·h`) on ragged
        /// shapes, against f64 sums of the same bf16 products: each product is exact, so the
        /// only error is f32 rounding of the sums.
        #[test]
        fn products_match_f64_sums(
            m in 1usize..80, k in 1usize..70, n in 1usize..90,
            layout in 0usize..3, accumulate: bool, parallel: bool, seed in 0u32..1000,
        ) {
            if !available() {
                return Ok(());
            }
            let start: Vec<f32> = values(m * n, seed + 2).iter().map(|x| x.to_f32()).collect();
            let (mut got, mut scratch, mut panels) = (start.clone(), Vec::new(), Panels::default());
            // The logical operands: `A` m × k and `B` k × n, as f32.
            let (a_f, b_f): (Vec<f32>, Vec<f32>);
            match layout {
                0 => {
                    // A row-major along k; B given as its transpose (n rows of k).
                    let (a, bt) = (values(m * k, seed), values(n * k, seed + 1));
                    a_f = a.iter().map(|x| x.to_f32()).collect();
                    b_f = (0..k * n).map(|i| bt[(i % n) * k + i / n].to_f32()).collect();
                    let mut s2 = Vec::new();
                    let bt_pairs = row_pairs(&bt, k, &mut s2).to_vec();
                    panels.pack_transposed(parallel, &bt_pairs, k.div_ceil(2), n);
                    let pa = row_pairs(&a, k, &mut scratch);
                    let kp = k.div_ceil(2);
                    let pm = PairMatrix { data: pa, rows: m, pairs: kp, row: kp, col: 1 };
                    product(parallel, pm, &panels, accumulate, &mut got, n);
                }
                1 => {
                    // A rounded from f32 with a padded row stride; B row-major k × n.
                    let (a, b) = (values(m * k, seed), values(k * n, seed + 1));
                    a_f = a.iter().map(|x| x.to_f32()).collect();
                    b_f = b.iter().map(|x| x.to_f32()).collect();
                    round_rows(parallel, &a_f, (m, k, k), &mut scratch);
                    panels.pack_row_pairs(parallel, &bits(&b), k, n, n);
                    let kp = k.div_ceil(2);
                    let pm = PairMatrix { data: &scratch, rows: m, pairs: kp, row: kp, col: 1 };
                    product(parallel, pm, &panels, accumulate, &mut got, n);
                }
                _ => {
                    // A given as its transpose (k rows of m), paired across rows.
                    let (at, b) = (values(k * m, seed), values(k * n, seed + 1));
                    a_f = (0..m * k).map(|i| at[(i % k) * m + i / k].to_f32()).collect();
                    b_f = b.iter().map(|x| x.to_f32()).collect();
                    interleave_rows(parallel, &bits(&at), (k, m, m), &mut scratch);
                    panels.pack_row_pairs(parallel, &bits(&b), k, n, n);
                    let pm = PairMatrix {
                        data: &scratch, rows: m, pairs: k.div_ceil(2), row: 1, col: m,
                    };
                    product(parallel, pm, &panels, accumulate, &mut got, n);
                }
            }
            for i in 0..m {
                for j in 0..n {
                    let mut s = if accumulate { f64::from(start[i * n + j]) } else { 0.0 };
                    let mut bound = s.abs();
                    for p in 0..k {
                        let t = f64::from(a_f[i * k + p]) * f64::from(b_f[p * n + j]);
                        s += t;
                        bound += t.abs();
                    }
                    let g = f64::from(got[i * n + j]);
                    // f32 rounding of at most k + 1 additions, relative to Σ|terms|.
                    prop_assert!(
                        (g - s).abs() <= 1.2e-7 * (k as f64 + 2.0) * bound + 1e-30,
                        "layout {} ({}, {}): {} vs {}", layout, i, j, g, s
                    );
                }
            }
        }
    }

    #[cfg(feature = "parallel")]
    #[test]
    fn threads_give_the_same_bits() {
        if !available() {
            return;
        }
        let (m, k, n) = (300, 257, 1031);
        let (a, bt) = (values(m * k, 1), values(n * k, 2));
        let (mut sa, mut sb, mut panels) = (Vec::new(), Vec::new(), Panels::default());
        let kp = k.div_ceil(2);
        panels.pack_transposed(true, row_pairs(&bt, k, &mut sb), kp, n);
        let pa = row_pairs(&a, k, &mut sa);
        let run = |parallel| {
            let mut c = vec![0.0f32; m * n];
            let pm = PairMatrix {
                data: pa,
                rows: m,
                pairs: kp,
                row: kp,
                col: 1,
            };
            product(parallel, pm, &panels, false, &mut c, n);
            c
        };
        let (serial, threaded) = (run(false), run(true));
        assert!(serial
            .iter()
            .zip(&threaded)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}
