//! Comparisons of a backend's results with the reference's, shared by the parity suite and the
//! backends' own test suites, with the tolerance rule every suite states: relative to the
//! largest magnitude of the compared vector, plus an absolute floor of 1e-7.

use supo_core::{DType, Element};

/// Compares two vectors; the error names the first offending index (a NaN always fails).
pub fn close(what: &str, got: &[f32], want: &[f32], rel: f32) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: {} values, expected {}",
            got.len(),
            want.len()
        ));
    }
    let scale = want.iter().fold(0.0f32, |a, b| a.max(b.abs())).max(1e-6);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // Written so that a NaN fails the comparison.
        let within = (g - w).abs() <= rel * scale + 1e-7;
        if !within {
            return Err(format!(
                "{what}[{i}]: got {g}, expected {w} (tolerance {rel} × {scale})"
            ));
        }
    }
    Ok(())
}

/// [`close`], panicking with its message (for `#[test]` functions).
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    if let Err(e) = close(what, got, want, rel) {
        panic!("{e}");
    }
}

/// The tolerance for element type `T`, out of one per element type.
pub fn tol<T: Element>(f32_tol: f32, f16_tol: f32, bf16_tol: f32) -> f32 {
    match T::DTYPE {
        DType::F16 => f16_tol,
        DType::BF16 => bf16_tol,
        _ => f32_tol,
    }
}

/// Widens elements to f32 (exact for every element type).
pub fn to_f32<T: Element>(v: &[T]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}
