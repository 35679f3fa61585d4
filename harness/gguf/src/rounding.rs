//! The rounding of activations inside quantized matrix products, reproduced for the dense
//! path.
//!
//! A quantized product (llama.cpp's and candle's alike) first rounds the activations to 8-bit
//! blocks: Q8_0 for the 32-weight block formats (a block's `d = max|x| / 127`, stored as f16,
//! quants `round(x / d)`), Q8_K for the K-quants (256 values, `d = −max / 127` of the value
//! largest in magnitude, kept in f32). Its integer dot products times `d_x·d_w` are exactly
//! the f32 products of the dequantized weights with the activations replaced by `q·d`, up to
//! the order of the float sums. So the dense path rounds its activations the same way and
//! then multiplies in f32: a prompt fed in one pass is rounded as llama.cpp rounds it. (The
//! order of the sums still differs, and a last-bit difference can move a later activation
//! across a rounding boundary: the paths agree to about 0.1 nats, not to the bit.)

use candle_core::quantized::GgmlDType;
use half::f16;

use crate::packed::quantize_q8_0;

/// How a format's products round their activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rounding {
    /// Not at all (f32 and f16 weights).
    None,
    /// Q8_0 blocks of 32 (also Q8_1's quants: the same values).
    Q8_0,
    /// Q8_K blocks of 256.
    Q8K,
}

impl Rounding {
    /// The rounding of products with weights of `dtype`.
    pub(crate) fn of(dtype: GgmlDType) -> Rounding {
        use GgmlDType::*;
        match dtype {
            F32 | F16 | BF16 => Rounding::None,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 => Rounding::Q8_0,
            Q2K | Q3K | Q4K | Q5K | Q6K | Q8K => Rounding::Q8K,
        }
    }

    /// Replaces every value of `x` (rows whose length is a multiple of the block) by its
    /// rounded value `q·d`.
    pub(crate) fn apply(self, x: &mut [f32]) {
        match self {
            Rounding::None => {}
            Rounding::Q8_0 => x.chunks_mut(32).for_each(round_q8_0),
            Rounding::Q8K => x.chunks_mut(256).for_each(round_q8_k),
        }
    }
}

/// One Q8_0 block, as candle's `BlockQ8_0::from_float` and ggml's `quantize_row_q8_0`, then
/// dequantized with the f16 scale the dot products use.
fn round_q8_0(block: &mut [f32]) {
    let (d, q) = quantize_q8_0(block);
    let d16 = f16::from_f32(d).to_f32();
    for (v, q) in block.iter_mut().zip(q) {
        *v = q as f32 * d16;
    }
}

/// One Q8_K block, as candle's `BlockQ8K::from_float` and ggml's `quantize_row_q8_K`.
fn round_q8_k(block: &mut [f32]) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in block.iter() {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        block.fill(0.0);
        return;
    }
    let iscale = -127.0 / max;
    let d = 1.0 / iscale;
    for v in block {
        *v = (iscale * *v).round().clamp(-128.0, 127.0) * d;
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use candle_core::quantized::{QStorage, QTensor};
    use candle_core::{Device, Tensor};

    /// The largest |difference| between candle's quantized product of `x` (`[m, k]`) with `w`
    /// (`[n, k]`) in `dtype` and the f64 product of the dequantized weights with `x`, rounded
    /// by [`Rounding::of`] when `round`; and the largest |product|.
    fn gap(
        x: &[f32],
        w: &[f32],
        (m, k, n): (usize, usize, usize),
        dtype: GgmlDType,
        round: bool,
    ) -> (f64, f64) {
        let dev = Device::Cpu;
        let q =
            QTensor::quantize(&Tensor::from_vec(w.to_vec(), (n, k), &dev).unwrap(), dtype).unwrap();
        let wd: Vec<f32> = q
            .dequantize(&dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let QStorage::Cpu(blocks) =
            QStorage::from_data(Cow::Owned(q.data().unwrap().into_owned()), &dev, dtype).unwrap()
        else {
            unreachable!()
        };
        let mut want = vec![0f32; m * n];
        blocks.matmul_t((m, k, n), x, &mut want).unwrap();
        let mut xr = x.to_vec();
        if round {
            Rounding::of(dtype).apply(&mut xr);
        }
        let (mut worst, mut scale) = (0f64, 0f64);
        for i in 0..m {
            for j in 0..n {
                let dense: f64 = (0..k)
                    .map(|l| xr[i * k + l] as f64 * wd[j * k + l] as f64)
                    .sum();
                worst = worst.max((dense - want[i * n + j] as f64).abs());
                scale = scale.max(dense.abs());
            }
        }
        (worst, scale)
    }

    /// A quantized product equals the dense product of the dequantized weights with the
    /// rounded activations, to float-summation error, for block formats and K-quants; without
    /// the rounding it does not.
    #[test]
    fn rounded_dense_products_equal_quantized_ones() {
        let (m, k, n) = (3, 512, 8);
        let wave = |i: usize, f: f32| (i as f32 * f).sin() * 2.0 + (i % 7) as f32 * 0.1;
        let x: Vec<f32> = (0..m * k).map(|i| wave(i, 0.37)).collect();
        let w: Vec<f32> = (0..n * k).map(|i| wave(i, 0.11) * 0.05).collect();
        for dtype in [
            GgmlDType::Q8_0,
            GgmlDType::Q4_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
        ] {
            let (rounded, scale) = gap(&x, &w, (m, k, n), dtype, true);
            let (plain, _) = gap(&x, &w, (m, k, n), dtype, false);
            assert!(rounded < 1e-5 * scale, "{dtype:?}: {rounded} of {scale}");
            assert!(
                plain > 20.0 * rounded,
                "{dtype:?}: rounding changes nothing ({plain})"
            );
        }
    }

    #[test]
    fn zero_blocks_stay_zero() {
        for r in [Rounding::Q8_0, Rounding::Q8K] {
            let mut x = vec![0f32; 256];
            r.apply(&mut x);
            assert!(x.iter().all(|v| *v == 0.0));
        }
    }
}
