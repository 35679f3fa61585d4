//! Element types that live in device buffers.

use half::{bf16, f16};

/// The element type of a buffer, for backends that pick a kernel at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
    /// Unsigned 32-bit integer (token ids, indices, flags).
    U32,
}

impl DType {
    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// Lower-case name (`f32`, `f16`, `bf16`, `u32`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::U32 => "u32",
        }
    }
}

/// Anything a [`Backend`](super::Backend) buffer can hold: plain old data with a [`DType`].
pub trait Scalar: bytemuck::Pod + Default + Send + Sync + core::fmt::Debug + 'static {
    /// The runtime tag of this type.
    const DTYPE: DType;
}

/// A floating-point element of logits or hidden states; arithmetic is always done in f32.
pub trait Element: Scalar + PartialOrd {
    /// Widens to f32 (exact for every supported type).
    fn to_f32(self) -> f32;
    /// Rounds an f32 to this type (round to nearest even).
    fn from_f32(value: f32) -> Self;
    /// Widens `src` into `dst` (of the same length), vectorised where the type allows; the same
    /// values as [`Element::to_f32`] on each element.
    #[inline]
    fn widen_slice(src: &[Self], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.to_f32();
        }
    }
    /// Rounds `src` into `dst` (of the same length), vectorised where the type allows; the same
    /// values as [`Element::from_f32`] on each element.
    #[inline]
    fn narrow_slice(src: &[f32], dst: &mut [Self]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = Self::from_f32(*s);
        }
    }
}

/// The slice itself when `T` is f32.
#[inline(always)]
pub(crate) fn as_f32<T: Element>(values: &[T]) -> Option<&[f32]> {
    if T::DTYPE == DType::F32 {
        bytemuck::try_cast_slice(values).ok()
    } else {
        None
    }
}

/// The slice itself when `T` is f32.
#[inline(always)]
pub(crate) fn as_f32_mut<T: Element>(values: &mut [T]) -> Option<&mut [f32]> {
    if T::DTYPE == DType::F32 {
        bytemuck::try_cast_slice_mut(values).ok()
    } else {
        None
    }
}

impl Scalar for u32 {
    const DTYPE: DType = DType::U32;
}

impl Scalar for f32 {
    const DTYPE: DType = DType::F32;
}

impl Element for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(value: f32) -> Self {
        value
    }
}

impl Scalar for f16 {
    const DTYPE: DType = DType::F16;
}

impl Element for f16 {
    /// Branch-free bit arithmetic (so slice loops over it vectorise), the same bits as F16C's
    /// `vcvtph2ps` and `half::f16::to_f32`, NaN payloads included.
    #[inline(always)]
    fn to_f32(self) -> f32 {
        let h = u32::from(self.to_bits());
        let sign = (h & 0x8000) << 16;
        let magnitude = h & 0x7FFF;
        let shifted = magnitude << 13;
        let bits = if magnitude >= 0x7C00 {
            // ±∞, NaN (made quiet, payload kept).
            let quiet = if magnitude > 0x7C00 { 0x0040_0000 } else { 0 };
            shifted | 0x7F80_0000 | quiet
        } else if magnitude >= 0x0400 {
            // Normal: rebias the exponent from 15 to 127.
            shifted + 0x3800_0000
        } else {
            // Zero and subnormals: magnitude · 2⁻²⁴, exactly.
            (magnitude as f32 * 5.960_464_5e-8).to_bits()
        };
        f32::from_bits(bits | sign)
    }
    /// Round to nearest even by branch-free bit arithmetic (so slice loops over it vectorise),
    /// the same bits as F16C's `vcvtps2ph` and `half::f16::from_f32`, NaN payloads included
    /// (F. Giesen's `float_to_half_fast3_rtne`).
    #[inline(always)]
    fn from_f32(value: f32) -> Self {
        let x = value.to_bits();
        let sign = ((x >> 16) & 0x8000) as u16;
        let a = x & 0x7FFF_FFFF;
        let magnitude = if a >= 0x4780_0000 {
            // |x| ≥ 65536 rounds to ∞; NaN stays NaN (made quiet, payload truncated).
            if a > 0x7F80_0000 {
                0x7E00 | ((a >> 13) & 0x03FF)
            } else {
                0x7C00
            }
        } else if a < 0x3880_0000 {
            // Below 2⁻¹⁴: subnormal or zero. Adding 0.5 puts the 2⁻²⁴ unit in the last place,
            // so the f32 addition rounds to nearest even; the low bits are the result.
            (f32::from_bits(a) + 0.5).to_bits() - 0x3F00_0000
        } else {
            // Normal (or rounding up to ∞): rebias the exponent, add half a unit minus one and
            // the lowest kept bit (ties to even), and drop 13 bits.
            let odd = (a >> 13) & 1;
            (a.wrapping_sub(0x3800_0000) + 0x0FFF + odd) >> 13
        };
        f16::from_bits(magnitude as u16 | sign)
    }
}

impl Scalar for bf16 {
    const DTYPE: DType = DType::BF16;
}

impl Element for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.to_bits()) << 16)
    }
    /// Round to nearest even on the bits, branch-free so kernel loops vectorise; NaN stays NaN.
    /// Bit-identical to `half::bf16::from_f32`.
    #[inline(always)]
    fn from_f32(value: f32) -> Self {
        let bits = value.to_bits();
        let rounded = (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16;
        let nan = ((bits >> 16) as u16) | 0x0040;
        bf16::from_bits(if value.is_nan() { nan } else { rounded })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// The slice conversions agree with the element conversions on every 16-bit pattern
    /// (NaNs by class), and when narrowing f32 values around every rounding boundary.
    fn slice_conversions_match<T: Element>(from_bits: fn(u16) -> T, to_bits: fn(T) -> u16) {
        let all: Vec<T> = (0..=u16::MAX).map(from_bits).collect();
        let mut wide = vec![0.0f32; all.len()];
        T::widen_slice(&all, &mut wide);
        for (x, w) in all.iter().zip(&wide) {
            let want = x.to_f32();
            assert!(w.to_bits() == want.to_bits() || (w.is_nan() && want.is_nan()));
        }
        // Every widened value, and the f32 values halfway between neighbours and just off them.
        let mut probe: Vec<f32> = wide.clone();
        for w in &wide {
            let b = w.to_bits();
            probe.extend(
                [
                    b ^ 0x1000,
                    b | 0x7FFF,
                    b.wrapping_add(0x8000),
                    b.wrapping_add(1),
                ]
                .map(f32::from_bits),
            );
        }
        let mut narrow = vec![T::default(); probe.len()];
        T::narrow_slice(&probe, &mut narrow);
        for (p, n) in probe.iter().zip(&narrow) {
            let want = T::from_f32(*p);
            if p.is_nan() {
                assert!(n.to_f32().is_nan());
            } else {
                assert_eq!(to_bits(*n), to_bits(want), "{p:e}");
            }
        }
    }

    #[test]
    fn f16_slice_conversions_match_elements() {
        slice_conversions_match::<f16>(f16::from_bits, f16::to_bits);
    }

    /// f16's own branch-free conversions give `half`'s bits (F16C's where the CPU has it) on
    /// every 16-bit pattern and on f32 values around every rounding boundary, NaNs included.
    #[test]
    fn f16_conversions_match_half() {
        let mut probe = Vec::new();
        for h in 0..=u16::MAX {
            let x = f16::from_bits(h);
            let ours = <f16 as Element>::to_f32(x);
            assert_eq!(ours.to_bits(), x.to_f32().to_bits(), "{h:#06x}");
            let b = ours.to_bits();
            probe.extend([
                b,
                b ^ 0x1000,
                b | 0x1FFF,
                b.wrapping_add(0x1000),
                b.wrapping_add(1),
            ]);
        }
        probe.extend([
            0x0000_0001,
            0x8000_0001,
            0x0080_0000,
            0x7F80_0001,
            0xFFC0_1234,
        ]);
        for b in probe {
            let x = f32::from_bits(b);
            let ours = <f16 as Element>::from_f32(x);
            assert_eq!(
                ours.to_bits(),
                f16::from_f32(x).to_bits(),
                "{x:e} ({b:#010x})"
            );
        }
    }

    #[test]
    fn bf16_slice_conversions_match_elements() {
        slice_conversions_match::<bf16>(bf16::from_bits, bf16::to_bits);
    }
}
