//! Our own product of a quantized matrix with a few rows of activations (generation feeds one
//! row at a time), for the 32-weight block formats Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0, over our
//! own layout of the matrix.
//!
//! Every weight of such a block is `d·(u − o) + m`: unsigned quants `u` (4, 5 or 8 bits), the
//! block's f16 scale `d`, an offset `o` fixed by the format (8 for Q4_0, 16 for Q5_0, 128 for
//! Q8_0 stored as `q + 128`, else 0) and, for Q4_1 and Q5_1, the block's f16 minimum `m`.
//! llama.cpp multiplies a block with the activations rounded to 8-bit blocks (Q8_0, or Q8_1
//! for the formats with a minimum): the integer dot product `Σ (u − o)·q_x` times `d·d_x`,
//! plus `m·s_x` with `s_x = d_x·Σ q_x` rounded to f16. This module computes the same integers
//! and the same products; only the order of the float sums differs.
//!
//! The layout (`ggml-common.h` is the source's): each row's quants two blocks at a time (a
//! *pair*), 4-bit ones still two to a byte, ordered so that one AVX-512-VNNI `vpdpbusd` over a
//! pair's 64 bytes leaves each 32-bit lane a partial sum of one block, the lanes alternating
//! between the pair's two blocks. The pair's two scales then multiply all the lanes at once as
//! two broadcast floats, and a row is reduced across lanes only at its end. `vpdpbusd`
//! multiplies unsigned by signed bytes, which the `u` and the rounded activations are; each
//! pair's integer sums start at `−o·Σ q_x`. The f16 scales and minimums are kept apart from
//! the quants. A row with an odd number of blocks is padded with a block of zero scale.
//!
//! Machines without AVX-512-VNNI take a scalar loop over the same layout. Products are spread
//! over candle's thread pool (the one its own kernels use), by rows of the matrix.

use candle_core::quantized::GgmlDType;
use candle_core::utils::barrier_pool;
use half::f16;

use crate::error::Error;

/// Weights per block in every format here.
pub(crate) const BLOCK: usize = 32;
/// Weights of a pair of blocks, and bytes of its rounded activations.
const PAIR: usize = 2 * BLOCK;

/// Where weight `e` of block `c` (of a pair) sits in the pair's 64 bytes: 32-bit lane
/// `2·(e / 4) + c`, byte `e % 4` of it.
const POSITION: [u8; PAIR] = {
    let mut p = [0u8; PAIR];
    let mut i = 0;
    while i < PAIR {
        let (c, e) = (i / BLOCK, i % BLOCK);
        p[i] = ((2 * (e / 4) + c) * 4 + e % 4) as u8;
        i += 1;
    }
    p
};

/// A block format this module packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `d·(q − 8)`, `q` 4-bit: 2 + 16 bytes.
    Q4_0,
    /// `d·q + m`, `q` 4-bit: 2 + 2 + 16 bytes.
    Q4_1,
    /// `d·(q − 16)`, `q` 5-bit: 2 + 4 + 16 bytes.
    Q5_0,
    /// `d·q + m`, `q` 5-bit: 2 + 2 + 4 + 16 bytes.
    Q5_1,
    /// `d·q`, `q` a signed byte: 2 + 32 bytes.
    Q8_0,
}

impl Format {
    /// The format of GGML's `dtype`, if this module packs it.
    pub(crate) fn of(dtype: GgmlDType) -> Option<Format> {
        match dtype {
            GgmlDType::Q4_0 => Some(Format::Q4_0),
            GgmlDType::Q4_1 => Some(Format::Q4_1),
            GgmlDType::Q5_0 => Some(Format::Q5_0),
            GgmlDType::Q5_1 => Some(Format::Q5_1),
            GgmlDType::Q8_0 => Some(Format::Q8_0),
            _ => None,
        }
    }

    /// Bytes of one source block.
    fn block_bytes(self) -> usize {
        match self {
            Format::Q4_0 => 18,
            Format::Q4_1 => 20,
            Format::Q5_0 => 22,
            Format::Q5_1 => 24,
            Format::Q8_0 => 34,
        }
    }

    /// The offset `o` of the unsigned quants.
    fn offset(self) -> i32 {
        match self {
            Format::Q4_0 => 8,
            Format::Q5_0 => 16,
            Format::Q8_0 => 128,
            Format::Q4_1 | Format::Q5_1 => 0,
        }
    }

    /// Whether blocks carry a minimum `m`.
    fn has_min(self) -> bool {
        matches!(self, Format::Q4_1 | Format::Q5_1)
    }

    /// Whether the quants fit in 4 bits (two to a packed byte).
    fn nibbles(self) -> bool {
        matches!(self, Format::Q4_0 | Format::Q4_1)
    }

    /// One source block: its scale and minimum (f16 bits; minimum 0 without one) and its 32
    /// unsigned quants in element order.
    fn decode(self, b: &[u8]) -> (u16, u16, [u8; BLOCK]) {
        let bits = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let mut u = [0u8; BLOCK];
        if self == Format::Q8_0 {
            for (u, &q) in u.iter_mut().zip(&b[2..34]) {
                *u = q ^ 0x80; // q + 128 for a signed byte q
            }
            return (bits(0), 0, u);
        }
        let m = if self.has_min() { bits(2) } else { 0 };
        let (qh, qs) = match self {
            Format::Q4_0 => (0, &b[2..18]),
            Format::Q4_1 => (0, &b[4..20]),
            Format::Q5_0 => (u32::from_le_bytes([b[2], b[3], b[4], b[5]]), &b[6..22]),
            _ => (u32::from_le_bytes([b[4], b[5], b[6], b[7]]), &b[8..24]),
        };
        for j in 0..BLOCK / 2 {
            u[j] = (qs[j] & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
            u[j + BLOCK / 2] = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
        }
        (bits(0), m, u)
    }
}

/// A `[n, k]` matrix of one [`Format`] in this module's layout.
pub(crate) struct Packed {
    format: Format,
    n: usize,
    k: usize,
    /// Pairs of blocks per row (the last one padded when `k / 32` is odd).
    pairs: usize,
    /// Every row's pairs: 32 bytes each for 4-bit quants (byte `i`: the quant at position `i`
    /// in its low nibble, the one at `i + 32` in its high nibble), else 64.
    quants: Vec<u8>,
    /// Every row's block scales, f16 bits, `2·pairs` a row.
    scales: Vec<u16>,
    /// Every row's block minimums like `scales`; empty for formats without one.
    mins: Vec<u16>,
    kernel: Kernel,
}

/// The loop that computes a row's dot products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// Portable code.
    Scalar,
    /// AVX-512 (F, BW, VL, DQ) with VNNI and F16C.
    #[cfg(target_arch = "x86_64")]
    Vnni,
}

impl Kernel {
    /// The fastest this machine runs.
    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f")
                && has!("avx512bw")
                && has!("avx512vl")
                && has!("avx512dq")
                && has!("avx512vnni")
                && has!("f16c")
            {
                return Kernel::Vnni;
            }
        }
        Kernel::Scalar
    }
}

impl Packed {
    /// Packs `data`, the GGML blocks of a `[n, k]` matrix of `format`.
    pub(crate) fn new(format: Format, n: usize, k: usize, data: &[u8]) -> Result<Packed, Error> {
        if k == 0 || !k.is_multiple_of(BLOCK) {
            return Err(Error::new(format!(
                "a {format:?} matrix has rows of {k} weights, not a multiple of {BLOCK}"
            )));
        }
        let blocks = k / BLOCK;
        let expected = n * blocks * format.block_bytes();
        if data.len() != expected {
            return Err(Error::new(format!(
                "a [{n}, {k}] {format:?} matrix holds {} bytes, not {expected}",
                data.len()
            )));
        }
        let pairs = blocks.div_ceil(2);
        let pair_bytes = if format.nibbles() { PAIR / 2 } else { PAIR };
        let mut quants = vec![0u8; n * pairs * pair_bytes];
        let mut scales = vec![0u16; n * 2 * pairs];
        let mut mins = vec![0u16; if format.has_min() { n * 2 * pairs } else { 0 }];
        for (b, block) in data.chunks_exact(format.block_bytes()).enumerate() {
            let (row, i) = (b / blocks, b % blocks);
            let (d, m, u) = format.decode(block);
            scales[row * 2 * pairs + i] = d;
            if format.has_min() {
                mins[row * 2 * pairs + i] = m;
            }
            let pair = &mut quants[(row * pairs + i / 2) * pair_bytes..][..pair_bytes];
            for (e, &q) in u.iter().enumerate() {
                let at = POSITION[(i % 2) * BLOCK + e] as usize;
                if !format.nibbles() {
                    pair[at] = q;
                } else if at < PAIR / 2 {
                    pair[at] |= q;
                } else {
                    pair[at - PAIR / 2] |= q << 4;
                }
            }
        }
        Ok(Packed {
            format,
            n,
            k,
            pairs,
            quants,
            scales,
            mins,
            kernel: Kernel::detect(),
        })
    }

    /// The matrix's `[n, k]`.
    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// The unsigned quants of pair `p` of row `j`, by position.
    fn pair_quants(&self, j: usize, p: usize) -> [u8; PAIR] {
        let mut u = [0u8; PAIR];
        if self.format.nibbles() {
            let bytes = &self.quants[(j * self.pairs + p) * PAIR / 2..][..PAIR / 2];
            for (i, &b) in bytes.iter().enumerate() {
                u[i] = b & 0x0f;
                u[i + PAIR / 2] = b >> 4;
            }
        } else {
            u.copy_from_slice(&self.quants[(j * self.pairs + p) * PAIR..][..PAIR]);
        }
        u
    }

    /// The matrix in f32 (`[n, k]`, row-major) without the block minimums: `d·(u − o)`.
    pub(crate) fn dequantize(&self) -> Vec<f32> {
        let (n, k, pairs) = (self.n, self.k, self.pairs);
        let mut out = vec![0f32; n * k];
        let dst = SharedOut(out.as_mut_ptr());
        let o = self.format.offset();
        barrier_pool().execute_chunked(n, |rows| {
            for j in rows {
                // SAFETY: every row `j` is written by one call only, within `out`.
                let row = unsafe { std::slice::from_raw_parts_mut(dst.at(j * k), k) };
                for p in 0..pairs {
                    let u = self.pair_quants(j, p);
                    for c in 0..2 {
                        let block = 2 * p + c;
                        if block * BLOCK >= k {
                            break;
                        }
                        let d = f16::from_bits(self.scales[j * 2 * pairs + block]).to_f32();
                        let values = &mut row[block * BLOCK..][..BLOCK];
                        for (e, v) in values.iter_mut().enumerate() {
                            let q = u[POSITION[c * BLOCK + e] as usize] as i32 - o;
                            *v = d * q as f32;
                        }
                    }
                }
            }
        });
        out
    }

    /// The block minimums (`[n, k / 32]`, row-major), for formats with one.
    pub(crate) fn mins(&self) -> Option<Vec<f32>> {
        if !self.format.has_min() {
            return None;
        }
        let blocks = self.k / BLOCK;
        Some(
            self.mins
                .chunks_exact(2 * self.pairs)
                .flat_map(|row| row[..blocks].iter().map(|&m| f16::from_bits(m).to_f32()))
                .collect(),
        )
    }

    /// `x·Wᵀ` for `x`, rows of `k` activations: `[rows, n]`, row-major.
    pub(crate) fn matmul_t(&self, x: &[f32]) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        let rows: Vec<Activations> = x.chunks_exact(k).map(|r| self.round(r)).collect();
        let mut out = vec![0f32; rows.len() * n];
        let dst = SharedOut(out.as_mut_ptr());
        barrier_pool().execute_chunked(n, |cols| {
            for j in cols {
                for (i, row) in rows.iter().enumerate() {
                    // SAFETY: every `(i, j)` is written by one call only, within `out`.
                    unsafe { *dst.at(i * n + j) = self.dot(j, row) };
                }
            }
        });
        out
    }

    /// One row of activations rounded to 8-bit blocks, laid out like the matrix's pairs.
    fn round(&self, x: &[f32]) -> Activations {
        let pairs = self.pairs;
        let mut a = Activations {
            q: vec![0i8; pairs * PAIR],
            d: vec![[0f32; 16]; pairs],
            start: vec![[0i32; 16]; if self.format.offset() != 0 { pairs } else { 0 }],
            s: vec![0f32; if self.format.has_min() { 2 * pairs } else { 0 }],
        };
        for (b, block) in x.chunks_exact(BLOCK).enumerate() {
            let (p, c) = (b / 2, b % 2);
            let (d, q) = quantize_q8_0(block);
            let sum: i32 = q.iter().sum();
            for (e, &q) in q.iter().enumerate() {
                a.q[p * PAIR + POSITION[c * BLOCK + e] as usize] = q as i8;
            }
            let dx = f16::from_f32(d).to_f32();
            for lane in (c..16).step_by(2) {
                a.d[p][lane] = dx;
            }
            if let Some(start) = a.start.get_mut(p) {
                start[c] = -self.format.offset() * sum;
            }
            if let Some(s) = a.s.get_mut(b) {
                *s = f16::from_f32(d * sum as f32).to_f32();
            }
        }
        a
    }

    /// Row `j` of the matrix times the rounded activations `x`.
    fn dot(&self, j: usize, x: &Activations) -> f32 {
        match self.kernel {
            Kernel::Scalar => self.dot_scalar(j, x),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::Vnni` is chosen only where the CPU has its features.
            Kernel::Vnni => unsafe {
                match (self.format.nibbles(), self.format.offset() != 0) {
                    (true, true) => vnni::dot::<true, true>(self, j, x),
                    (true, false) => vnni::dot::<true, false>(self, j, x),
                    (false, true) => vnni::dot::<false, true>(self, j, x),
                    (false, false) => vnni::dot::<false, false>(self, j, x),
                }
            },
        }
    }

    /// [`Packed::dot`] in portable code.
    fn dot_scalar(&self, j: usize, x: &Activations) -> f32 {
        let pairs = self.pairs;
        let scales = &self.scales[j * 2 * pairs..][..2 * pairs];
        let mut total = 0f32;
        for p in 0..pairs {
            let u = self.pair_quants(j, p);
            let mut sums = x.start.get(p).map_or([0, 0], |s| [s[0], s[1]]);
            for (at, (&u, &q)) in u.iter().zip(&x.q[p * PAIR..][..PAIR]).enumerate() {
                sums[(at / 4) % 2] += u as i32 * q as i32;
            }
            for c in 0..2 {
                let d = f16::from_bits(scales[2 * p + c]).to_f32();
                total += sums[c] as f32 * (d * x.d[p][c]);
            }
        }
        if !x.s.is_empty() {
            let mins = &self.mins[j * 2 * pairs..][..2 * pairs];
            for (&m, &s) in mins.iter().zip(&x.s) {
                total += f16::from_bits(m).to_f32() * s;
            }
        }
        total
    }
}

/// A row of activations rounded to 8-bit blocks for a [`Packed`] matrix.
struct Activations {
    /// The quants, in the matrix's pair layout.
    q: Vec<i8>,
    /// Each pair's two f16-rounded scales `d_x`, alternating over 16 lanes.
    d: Vec<[f32; 16]>,
    /// Each pair's starting lane sums: `−o·Σ q_x` of its blocks in lanes 0 and 1; empty when
    /// `o` is 0.
    start: Vec<[i32; 16]>,
    /// Every block's `s_x = d_x·Σ q_x`, rounded to f16; empty without minimums.
    s: Vec<f32>,
}

/// An output buffer written from several threads at disjoint places.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

// SAFETY: the threads sharing it write disjoint elements, and the buffer outlives them.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The element at `i`.
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// The AVX-512-VNNI kernel.
#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{Activations, Packed, PAIR};

    /// [`Packed::dot`]; `NIBBLES`: the quants are 4-bit, `OFFSET`: the format's `o` is not 0.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW, VL, DQ, VNNI and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c")]
    pub(super) unsafe fn dot<const NIBBLES: bool, const OFFSET: bool>(
        w: &Packed,
        j: usize,
        x: &Activations,
    ) -> f32 {
        let pairs = w.pairs;
        let pair_bytes = if NIBBLES { PAIR / 2 } else { PAIR };
        let quants = w.quants.as_ptr().add(j * pairs * pair_bytes);
        let scales = w.scales.as_ptr().add(j * 2 * pairs);
        let low = _mm256_set1_epi8(0x0f);
        let mut sum = _mm512_setzero_ps();
        for p in 0..pairs {
            let u = if NIBBLES {
                let b = _mm256_loadu_si256(quants.add(p * PAIR / 2) as *const __m256i);
                let lo = _mm256_and_si256(b, low);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(b), low);
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
            } else {
                _mm512_loadu_si512(quants.add(p * PAIR) as *const __m512i)
            };
            let q = _mm512_loadu_si512(x.q.as_ptr().add(p * PAIR) as *const __m512i);
            let start = if OFFSET {
                _mm512_loadu_si512(x.start.as_ptr().add(p) as *const __m512i)
            } else {
                _mm512_setzero_si512()
            };
            let lanes = _mm512_dpbusd_epi32(start, u, q);
            let d = (scales.add(2 * p) as *const i32).read_unaligned();
            let dw = _mm512_broadcast_f32x2(_mm_cvtph_ps(_mm_cvtsi32_si128(d)));
            let scale = _mm512_mul_ps(dw, _mm512_loadu_ps(x.d.as_ptr().add(p) as *const f32));
            sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lanes), scale, sum);
        }
        if !x.s.is_empty() {
            let mins = w.mins.as_ptr().add(j * 2 * pairs);
            let mut b = 0;
            while b < 2 * pairs {
                let mask: __mmask16 = (((1u32 << (2 * pairs - b).min(16)) - 1) & 0xffff) as u16;
                let m = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, mins.add(b) as *const i16));
                let s = _mm512_maskz_loadu_ps(mask, x.s.as_ptr().add(b));
                sum = _mm512_fmadd_ps(m, s, sum);
                b += 16;
            }
        }
        _mm512_reduce_add_ps(sum)
    }
}

/// llama.cpp's Q8_1 block sums of the rows of `x` (`rows × k`, `k` a multiple of [`BLOCK`]):
/// for each block, with `d = max|x| / 127`, `s = d·Σ round(x / d)`, rounded to f16 as
/// `block_q8_1` stores it. `rows × k / BLOCK` values, row-major.
pub(crate) fn block_sums(x: &[f32], k: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() / BLOCK);
    for row in x.chunks_exact(k) {
        for block in row.chunks_exact(BLOCK) {
            let (d, q) = quantize_q8_0(block);
            let sum: i32 = q.iter().sum();
            out.push(f16::from_f32(d * sum as f32).to_f32());
        }
    }
    out
}

/// One block of 32 activations rounded as candle's `BlockQ8_0::from_float` and ggml's
/// `quantize_row_q8_0` round it: `d = max|x| / 127` (in f32; stored as f16 by the dot
/// products) and the quants `round(x / d)`.
pub(crate) fn quantize_q8_0(block: &[f32]) -> (f32, [i32; BLOCK]) {
    let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0i32; BLOCK];
    for (q, &v) in q.iter_mut().zip(block) {
        *q = (v * id).round() as i32;
    }
    (d, q)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use candle_core::quantized::{QStorage, QTensor};
    use candle_core::Device;

    use super::*;

    const FORMATS: [(Format, GgmlDType); 5] = [
        (Format::Q4_0, GgmlDType::Q4_0),
        (Format::Q4_1, GgmlDType::Q4_1),
        (Format::Q5_0, GgmlDType::Q5_0),
        (Format::Q5_1, GgmlDType::Q5_1),
        (Format::Q8_0, GgmlDType::Q8_0),
    ];

    /// A deterministic stream of pseudo-random words.
    fn stream(seed: u64) -> impl FnMut() -> u32 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        }
    }

    /// `blocks` pseudo-random source blocks of `format`, with finite, normal scales.
    fn blocks(format: Format, blocks: usize, seed: u64) -> Vec<u8> {
        let mut next = stream(seed);
        let mut out = Vec::new();
        for _ in 0..blocks {
            let mut b: Vec<u8> = (0..format.block_bytes()).map(|_| next() as u8).collect();
            let scale = f16::from_f32((next() % 1000) as f32 / 1e5 + 1e-4);
            b[..2].copy_from_slice(&scale.to_le_bytes());
            if format.has_min() {
                let min = f16::from_f32((next() % 2000) as f32 / 1e4 - 0.1);
                b[2..4].copy_from_slice(&min.to_le_bytes());
            }
            out.extend_from_slice(&b);
        }
        out
    }

    /// candle's tensor of the same blocks.
    fn candle(dtype: GgmlDType, n: usize, k: usize, data: &[u8]) -> QTensor {
        let storage = QStorage::from_data(Cow::Borrowed(data), &Device::Cpu, dtype).unwrap();
        QTensor::new(storage, (n, k)).unwrap()
    }

    #[test]
    fn positions_cover_a_pair_once() {
        let mut seen = [false; PAIR];
        for &p in &POSITION {
            assert!(!seen[p as usize], "position {p} twice");
            seen[p as usize] = true;
        }
        // The lanes alternate between the two blocks.
        assert!(POSITION[..BLOCK].iter().all(|&p| (p / 4) % 2 == 0));
        assert!(POSITION[BLOCK..].iter().all(|&p| (p / 4) % 2 == 1));
    }

    #[test]
    fn dequantizes_as_candle_does() {
        // 5 blocks a row: the last pair is padded.
        let (n, k) = (3, 160);
        for (format, dtype) in FORMATS {
            let data = blocks(format, n * k / BLOCK, format.block_bytes() as u64);
            let packed = Packed::new(format, n, k, &data).unwrap();
            let want: Vec<f32> = candle(dtype, n, k, &data)
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let mut got = packed.dequantize();
            if let Some(mins) = packed.mins() {
                for (i, v) in got.iter_mut().enumerate() {
                    *v += mins[i / BLOCK];
                }
            }
            assert_eq!(got, want, "{format:?}");
        }
    }

    /// Every kernel this machine has, with the result of each.
    fn products(packed: &mut Packed, x: &[f32]) -> Vec<(Kernel, Vec<f32>)> {
        let mut kernels = vec![Kernel::Scalar];
        if Kernel::detect() != Kernel::Scalar {
            kernels.push(Kernel::detect());
        }
        kernels
            .into_iter()
            .map(|kernel| {
                packed.kernel = kernel;
                (kernel, packed.matmul_t(x))
            })
            .collect()
    }

    /// candle's `x·Wᵀ` with its kernels for `dtype` (which take an even number of blocks a
    /// row: an odd one gets a block more, against zero activations).
    fn candle_product(
        dtype: GgmlDType,
        format: Format,
        n: usize,
        k: usize,
        data: &[u8],
        x: &[f32],
    ) -> Vec<f32> {
        let (mut data, mut x, mut k) = (data.to_vec(), x.to_vec(), k);
        if (k / BLOCK) % 2 == 1 {
            let size = format.block_bytes();
            let extra = blocks(format, 1, 99);
            data = data
                .chunks_exact(k / BLOCK * size)
                .flat_map(|row| [row, &extra].concat())
                .collect();
            x = x
                .chunks_exact(k)
                .flat_map(|row| [row, &[0.0; BLOCK]].concat())
                .collect();
            k += BLOCK;
        }
        let m = x.len() / k;
        let mut out = vec![0f32; m * n];
        match QStorage::from_data(Cow::Borrowed(&data), &Device::Cpu, dtype).unwrap() {
            QStorage::Cpu(blocks) => blocks.matmul_t((m, k, n), &x, &mut out).unwrap(),
            _ => unreachable!("a CPU tensor"),
        }
        out
    }

    #[test]
    fn products_match_candles_kernels() {
        // Odd and even numbers of blocks, one row and several.
        for (n, k, m) in [(7, 160, 1), (33, 576, 3), (5, 64, 2), (4, 32, 1)] {
            for (format, dtype) in FORMATS {
                let data = blocks(format, n * k / BLOCK, (n * k) as u64);
                let mut packed = Packed::new(format, n, k, &data).unwrap();
                let mut next = stream(k as u64 + 7);
                let x: Vec<f32> = (0..m * k)
                    .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
                    .collect();
                let want = candle_product(dtype, format, n, k, &data, &x);
                let bound = x.iter().map(|v| v.abs()).sum::<f32>() * 1e-5;
                for (kernel, got) in products(&mut packed, &x) {
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() <= bound,
                            "{format:?} {kernel:?} [{n}, {k}] × {m}: element {i}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn partial_blocks_and_wrong_sizes_are_refused() {
        let data = blocks(Format::Q4_1, 2, 1);
        assert!(Packed::new(Format::Q4_1, 1, 64, &data).is_ok());
        let e = Packed::new(Format::Q4_1, 1, 64, &data[..39]).err().unwrap();
        assert!(e.message().contains("39 bytes"), "{e}");
        assert!(Packed::new(Format::Q4_1, 2, 48, &data).is_err());
    }

    #[test]
    fn block_sums_follow_q8_1() {
        let x: Vec<f32> = (0..64)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3)
            .collect();
        let s = block_sums(&x, 64);
        assert_eq!(s.len(), 2);
        for (block, &got) in x.chunks_exact(BLOCK).zip(&s) {
            let exact: f32 = block.iter().sum();
            let d = block.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            assert!(
                (got - exact).abs() <= 0.5 * d * BLOCK as f32,
                "{got} vs {exact}"
            );
        }
        assert_eq!(block_sums(&[0.0; 32], 32), vec![0.0]);
    }
}
