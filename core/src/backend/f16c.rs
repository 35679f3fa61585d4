//! F16C conversions of f16 blocks for the x86-64 row-kernel variants, 8 values per instruction,
//! behind safe `#[target_feature]` functions.
//!
//! `vcvtph2ps` widens exactly; `vcvtps2ph` with immediate 0 rounds to nearest even whatever
//! MXCSR says, and quiets NaNs keeping their payload's top bits: the same bits as the portable
//! [`Element`] conversions of f16, which the tests check on every f16 pattern and on f32 values
//! around every rounding boundary.

use core::arch::x86_64::{
    __m128i, _mm256_cvtph_ps, _mm256_cvtps_ph, _mm256_loadu_ps, _mm256_storeu_ps, _mm_loadu_si128,
    _mm_storeu_si128,
};

use half::f16;

use super::Element;

/// Values per conversion instruction.
const WIDTH: usize = 8;

/// Widens `src` into `dst` (the shorter length of the two), 8 values per instruction.
#[target_feature(enable = "avx,f16c")]
#[inline]
pub(super) fn widen(src: &[f16], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let (mut s, mut d) = (
        src[..n].chunks_exact(WIDTH),
        dst[..n].chunks_exact_mut(WIDTH),
    );
    for (s, d) in (&mut s).zip(&mut d) {
        // SAFETY: `s` holds 8 f16 (16 bytes) and `d` 8 f32 (32 bytes); both accesses are
        // unaligned loads and stores of exactly that size.
        unsafe {
            let h = _mm_loadu_si128(s.as_ptr().cast::<__m128i>());
            _mm256_storeu_ps(d.as_mut_ptr(), _mm256_cvtph_ps(h));
        }
    }
    for (s, d) in s.remainder().iter().zip(d.into_remainder()) {
        *d = s.to_f32();
    }
}

/// Rounds `src` into `dst` (the shorter length of the two), 8 values per instruction.
#[target_feature(enable = "avx,f16c")]
#[inline]
pub(super) fn narrow(src: &[f32], dst: &mut [f16]) {
    let n = src.len().min(dst.len());
    let (mut s, mut d) = (
        src[..n].chunks_exact(WIDTH),
        dst[..n].chunks_exact_mut(WIDTH),
    );
    for (s, d) in (&mut s).zip(&mut d) {
        // SAFETY: as in `widen`, 32 bytes read and 16 bytes written, unaligned.
        unsafe {
            let h = _mm256_cvtps_ph::<0>(_mm256_loadu_ps(s.as_ptr()));
            _mm_storeu_si128(d.as_mut_ptr().cast::<__m128i>(), h);
        }
    }
    for (s, d) in s.remainder().iter().zip(d.into_remainder()) {
        *d = <f16 as Element>::from_f32(*s);
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Against the portable conversions: every f16 pattern, and f32 values around
    /// every rounding boundary, at an offset so that the scalar tails run too.
    fn check(widen: fn(&[f16], &mut [f32]), narrow: fn(&[f32], &mut [f16])) {
        let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        let mut wide = vec![0.0f32; all.len()];
        widen(&all[3..], &mut wide[3..]);
        for (x, w) in all.iter().zip(&wide).skip(3) {
            assert_eq!(
                w.to_bits(),
                Element::to_f32(*x).to_bits(),
                "{:#06x}",
                x.to_bits()
            );
        }
        let mut probe: Vec<f32> = wide.clone();
        for w in &wide {
            let b = w.to_bits();
            probe.extend(
                [
                    b ^ 0x1000,
                    b | 0x1FFF,
                    b.wrapping_add(0x1000),
                    b.wrapping_add(1),
                ]
                .map(f32::from_bits),
            );
        }
        probe.extend([1e-40f32, -3e-39, 65519.0, 65520.0, 1e6, f32::MAX].iter());
        let mut narrowed = vec![f16::ZERO; probe.len()];
        narrow(&probe[5..], &mut narrowed[5..]);
        for (p, n) in probe.iter().zip(&narrowed).skip(5) {
            let want = <f16 as Element>::from_f32(*p);
            assert_eq!(n.to_bits(), want.to_bits(), "{p:e} ({:#010x})", p.to_bits());
        }
    }

    #[test]
    fn f16c_matches_the_portable_conversions() {
        if !std::is_x86_feature_detected!("f16c") {
            std::eprintln!("skipped: this CPU has no F16C");
            return;
        }
        // SAFETY: F16C (and so AVX) was detected above.
        check(
            |s, d| unsafe { widen(s, d) },
            |s, d| unsafe { narrow(s, d) },
        );
    }
}
