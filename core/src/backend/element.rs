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
