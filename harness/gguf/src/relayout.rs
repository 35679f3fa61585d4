//! Exact re-layouts of the GGML block formats for which candle has no vectorised kernels
//! (Q4_0, Q8_0 and the K-quants have them; Q4_1, Q5_0 and Q5_1 fall back to scalar loops),
//! into Q8_0, which has AVX2 and AVX-512-VNNI kernels.
//!
//! Every format stores blocks of 32 weights with small integer quants and f16 scales. A block
//! of Q5_0 is `d·(q − 16)` with `q` in 0..32: the same numbers as a Q8_0 block with the same `d`
//! and the quants `q − 16`, so the conversion loses nothing, and the product of a block with a
//! Q8_0-quantized activation block is the same integer dot product times `d_x·d_y` as
//! llama.cpp's Q5_0 × Q8_0 kernel. Q4_1 and Q5_1 are `d·q + m`: the `d·q` part is again an
//! exact Q8_0 block, and the offsets `m` become a matrix of per-block minimums that multiplies
//! the activation's per-block sums (llama.cpp's Q8_1 `s = d_y·Σ q_y`), as in llama.cpp's
//! Q4_1 × Q8_1 kernel.
//!
//! The layouts are GGML's (`ggml-common.h`): little-endian f16 scales first, then the 4-bit
//! quants of elements `j` (low nibble) and `j + 16` (high nibble), and for the 5-bit formats
//! the fifth bits of all 32 elements in one little-endian `u32`.

use half::f16;

/// Weights per block in every format here.
pub(crate) const BLOCK: usize = 32;
/// Bytes of a Q8_0 block: an f16 scale and 32 signed quants.
const Q8_0_BYTES: usize = 2 + BLOCK;

/// A source format this module re-lays out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `d·(q − 16)`, `q` 5-bit: 2 + 4 + 16 bytes.
    Q5_0,
    /// `d·q + m`, `q` 4-bit: 2 + 2 + 16 bytes.
    Q4_1,
    /// `d·q + m`, `q` 5-bit: 2 + 2 + 4 + 16 bytes.
    Q5_1,
}

impl Source {
    /// Bytes of one block.
    pub(crate) fn block_bytes(self) -> usize {
        match self {
            Source::Q5_0 => 22,
            Source::Q4_1 => 20,
            Source::Q5_1 => 24,
        }
    }

    /// Whether blocks carry an offset `m` (and so need [`Relayout::mins`]).
    pub(crate) fn has_min(self) -> bool {
        self != Source::Q5_0
    }
}

/// The Q8_0 bytes of a re-laid-out matrix and, for the formats with an offset, the offset of
/// every block (row-major: `rows × blocks per row`).
pub(crate) struct Relayout {
    /// GGML Q8_0 blocks, in the source's order.
    pub(crate) q8_0: Vec<u8>,
    /// The offset `m` of every block, as f32; empty for Q5_0.
    pub(crate) mins: Vec<f32>,
}

fn f16_at(b: &[u8], at: usize) -> f16 {
    f16::from_le_bytes([b[at], b[at + 1]])
}

/// Re-lays out `data` (whole blocks of `source`) as Q8_0 plus offsets; `None` if `data` is not
/// a whole number of blocks.
pub(crate) fn relayout(source: Source, data: &[u8]) -> Option<Relayout> {
    let size = source.block_bytes();
    if !data.len().is_multiple_of(size) {
        return None;
    }
    let blocks = data.len() / size;
    let mut q8_0 = Vec::with_capacity(blocks * Q8_0_BYTES);
    let mut mins = Vec::with_capacity(if source.has_min() { blocks } else { 0 });
    for b in data.chunks_exact(size) {
        // Every format starts with its f16 scale, the one of the Q8_0 block; Q4_1 and Q5_1
        // then hold their offset.
        q8_0.extend_from_slice(&b[..2]);
        if source.has_min() {
            mins.push(f16_at(b, 2).to_f32());
        }
        // The fifth bits, and the 16 bytes of nibbles.
        let (qh, qs) = match source {
            Source::Q5_0 => (Some(&b[2..6]), &b[6..22]),
            Source::Q4_1 => (None, &b[4..20]),
            Source::Q5_1 => (Some(&b[4..8]), &b[8..24]),
        };
        let high = qh.map_or(0, |h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]));
        let shift = if source == Source::Q5_0 { 16 } else { 0 };
        let mut quants = [0u8; BLOCK];
        for j in 0..BLOCK / 2 {
            let lo = (qs[j] & 0x0f) as i32 | (((high >> j) & 1) << 4) as i32;
            let hi = (qs[j] >> 4) as i32 | (((high >> (j + 16)) & 1) << 4) as i32;
            quants[j] = (lo - shift) as i8 as u8;
            quants[j + BLOCK / 2] = (hi - shift) as i8 as u8;
        }
        q8_0.extend_from_slice(&quants);
    }
    Some(Relayout { q8_0, mins })
}

/// llama.cpp's Q8_1 block sums of the rows of `x` (`rows × k`, `k` a multiple of [`BLOCK`]):
/// for each block, with `d = max|x| / 127`, `s = d·Σ round(x / d)`, rounded to f16 as
/// `block_q8_1` stores it. `rows × k / BLOCK` values, row-major.
pub(crate) fn block_sums(x: &[f32], k: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() / BLOCK);
    for row in x.chunks_exact(k) {
        for block in row.chunks_exact(BLOCK) {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let sum: i32 = block.iter().map(|&v| (v * id).round() as i32).sum();
            out.push(f16::from_f32(d * sum as f32).to_f32());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weights of one source block, decoded the way GGML's `dequantize_row_*` does.
    fn decode(source: Source, b: &[u8]) -> Vec<f32> {
        let d = f16_at(b, 0).to_f32();
        let (m, qh, qs) = match source {
            Source::Q5_0 => (
                0.0,
                u32::from_le_bytes(b[2..6].try_into().unwrap()),
                &b[6..],
            ),
            Source::Q4_1 => (f16_at(b, 2).to_f32(), 0, &b[4..]),
            Source::Q5_1 => (
                f16_at(b, 2).to_f32(),
                u32::from_le_bytes(b[4..8].try_into().unwrap()),
                &b[8..],
            ),
        };
        let mut y = vec![0f32; BLOCK];
        for j in 0..16 {
            let x0 = ((qs[j] & 0x0f) as u32 | (((qh >> j) << 4) & 0x10)) as i32;
            let x1 = ((qs[j] >> 4) as u32 | ((qh >> (j + 12)) & 0x10)) as i32;
            match source {
                Source::Q5_0 => {
                    y[j] = (x0 - 16) as f32 * d;
                    y[j + 16] = (x1 - 16) as f32 * d;
                }
                _ => {
                    y[j] = x0 as f32 * d + m;
                    y[j + 16] = x1 as f32 * d + m;
                }
            }
        }
        y
    }

    /// Pseudo-random blocks with finite, normal scales.
    fn blocks(source: Source, n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        let mut out = Vec::new();
        for _ in 0..n {
            let mut b = vec![0u8; source.block_bytes()];
            for byte in b.iter_mut() {
                *byte = next() as u8;
            }
            let scale = f16::from_f32((next() % 1000) as f32 / 1e5 + 1e-4).to_le_bytes();
            b[..2].copy_from_slice(&scale);
            if source.has_min() {
                let min = f16::from_f32((next() % 2000) as f32 / 1e4 - 0.1).to_le_bytes();
                b[2..4].copy_from_slice(&min);
            }
            out.extend_from_slice(&b);
        }
        out
    }

    #[test]
    fn relayout_is_exact_for_every_format() {
        for source in [Source::Q5_0, Source::Q4_1, Source::Q5_1] {
            let data = blocks(source, 64, source.block_bytes() as u64);
            let r = relayout(source, &data).expect("whole blocks");
            assert_eq!(r.q8_0.len(), 64 * Q8_0_BYTES);
            assert_eq!(r.mins.len(), if source.has_min() { 64 } else { 0 });
            for (i, b) in data.chunks_exact(source.block_bytes()).enumerate() {
                let q = &r.q8_0[i * Q8_0_BYTES..(i + 1) * Q8_0_BYTES];
                let d = f16_at(q, 0).to_f32();
                let m = r.mins.get(i).copied().unwrap_or(0.0);
                let got: Vec<f32> = q[2..].iter().map(|&v| v as i8 as f32 * d + m).collect();
                assert_eq!(got, decode(source, b), "{source:?} block {i}");
            }
        }
    }

    #[test]
    fn partial_blocks_are_refused() {
        assert!(relayout(Source::Q4_1, &[0u8; 21]).is_none());
        assert!(relayout(Source::Q5_0, &[]).is_some_and(|r| r.q8_0.is_empty()));
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
