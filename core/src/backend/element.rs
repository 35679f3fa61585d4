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
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(value: f32) -> Self {
        f16::from_f32(value)
    }
    /// Through `half`'s slice conversion: F16C instructions, detected once per call.
    #[inline]
    fn widen_slice(src: &[Self], dst: &mut [f32]) {
        use half::slice::HalfFloatSliceExt;
        let n = src.len().min(dst.len());
        src[..n].convert_to_f32_slice(&mut dst[..n]);
    }
    /// Through `half`'s slice conversion: F16C instructions, detected once per call.
    #[inline]
    fn narrow_slice(src: &[f32], dst: &mut [Self]) {
        use half::slice::HalfFloatSliceExt;
        let n = src.len().min(dst.len());
        dst[..n].convert_from_f32_slice(&src[..n]);
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

    #[test]
    fn bf16_slice_conversions_match_elements() {
        slice_conversions_match::<bf16>(bf16::from_bits, bf16::to_bits);
    }
}
