//! The CPU backend's f32 matrix product, through the `gemm` crate (AVX-512/AVX2/FMA kernels
//! picked at run time, rayon threads on the `parallel` path).
//!
//! Threads split the output into tiles and never the inner dimension, so every element is
//! summed in the same order whatever the thread count: the parallel path gives the same bits
//! as the serial one.

/// A row-major or strided matrix operand: `data[r · row_stride + c · col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct Strides {
    /// Distance between consecutive rows.
    pub row: usize,
    /// Distance between consecutive columns.
    pub col: usize,
}

impl Strides {
    /// A row-major matrix with `cols` columns.
    pub const fn row_major(cols: usize) -> Strides {
        Strides { row: cols, col: 1 }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub const fn transposed(cols: usize) -> Strides {
        Strides { row: 1, col: cols }
    }

    /// Whether a `rows × cols` matrix with these strides fits in `len` elements.
    fn fits(self, rows: usize, cols: usize, len: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.row + (cols - 1) * self.col < len
    }
}

/// `C = A·B` (or `C += A·B` when `accumulate`), with `A` `m × k`, `B` `k × n`, `C` `m × n`.
///
/// # Panics
/// If an operand's strided extent does not fit in its slice (a caller's bug, not bad input).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    parallel: bool,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    sa: Strides,
    b: &[f32],
    sb: Strides,
    accumulate: bool,
    c: &mut [f32],
    sc: Strides,
) {
    assert!(
        sa.fits(m, k, a.len()) && sb.fits(k, n, b.len()) && sc.fits(m, n, c.len()),
        "sgemm operands smaller than their shapes"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    c[i * sc.row + j * sc.col] = 0.0;
                }
            }
        }
        return;
    }
    #[cfg(feature = "parallel")]
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    #[cfg(not(feature = "parallel"))]
    let parallelism = {
        let _ = parallel;
        gemm::Parallelism::None
    };
    // SAFETY: the assert above keeps every strided access inside the slices, and `c` is a
    // unique borrow, so it aliases neither `a` nor `b`. `gemm` computes
    // `dst = alpha·dst + beta·lhs·rhs` and reads `dst` only when `read_dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            sc.col as isize,
            sc.row as isize,
            accumulate,
            a.as_ptr(),
            sa.col as isize,
            sa.row as isize,
            b.as_ptr(),
            sb.col as isize,
            sb.row as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    #[allow(clippy::too_many_arguments)]
    fn naive(
        (m, k, n): (usize, usize, usize),
        a: &[f32],
        sa: Strides,
        b: &[f32],
        sb: Strides,
        c: &mut [f32],
        sc: Strides,
        accumulate: bool,
    ) {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    s += f64::from(a[i * sa.row + p * sa.col])
                        * f64::from(b[p * sb.row + j * sb.col]);
                }
                let dst = &mut c[i * sc.row + j * sc.col];
                *dst = if accumulate {
                    *dst + s as f32
                } else {
                    s as f32
                };
            }
        }
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                let x = i
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(40_503));
                (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Every layout the fused linear loss uses (row-major and transposed operands), on
        /// shapes with ragged edges around the kernels' tile sizes, against an f64 product.
        #[test]
        fn matches_naive_product(
            m in 1usize..70, k in 0usize..90, n in 1usize..70,
            ta: bool, tb: bool, accumulate: bool, parallel: bool, seed in 0u32..1000,
        ) {
            let sa = if ta { Strides::transposed(m) } else { Strides::row_major(k) };
            let sb = if tb { Strides::transposed(k) } else { Strides::row_major(n) };
            let sc = Strides::row_major(n);
            let a = values(m * k, seed);
            let b = values(k * n, seed + 1);
            let start = values(m * n, seed + 2);
            let (mut got, mut want) = (start.clone(), start);
            sgemm(parallel, (m, k, n), &a, sa, &b, sb, accumulate, &mut got, sc);
            naive((m, k, n), &a, sa, &b, sb, &mut want, sc, accumulate);
            for (g, w) in got.iter().zip(&want) {
                // Each term is below 0.25 in magnitude: k · 2⁻²⁴ bounds the f32 rounding.
                prop_assert!((g - w).abs() <= 1e-6 * (k as f32 + 1.0) + 1e-6, "{} vs {}", g, w);
            }
        }
    }

    #[cfg(feature = "parallel")]
    #[test]
    fn threads_give_the_same_bits() {
        let (m, k, n) = (300, 257, 1031);
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let run = |parallel| {
            let mut c = alloc::vec![0.0f32; m * n];
            let (sa, sb) = (Strides::row_major(k), Strides::row_major(n));
            sgemm(parallel, (m, k, n), &a, sa, &b, sb, false, &mut c, sb);
            c
        };
        let (serial, threaded) = (run(false), run(true));
        assert!(serial
            .iter()
            .zip(&threaded)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}
