//! Cross-crate test suites of supo-rs, and the test helpers every suite of the workspace shares
//! (the backends' own suites take this crate as a dev-dependency).
//!
//! * [`parity`] — the one backend-parity suite: every [`supo_core::Backend`] is compared with
//!   [`supo_core::CpuBackend`] on the same random inputs, through the [`parity_suite!`] macro.
//! * [`compare`], [`data`], [`rng`] — comparisons with the reference, test inputs, generators;
//!   [`backend_or_skip`] — a backend, or a visible skip.
//! * `tests/` — property suites of the SUPO math (segment factorisation, advantages, finite
//!   differences, the context manager) and the golden tests of `supo loss`.

#![warn(missing_docs)]

// Skip notices go straight to stderr: the test harness captures `eprintln!`, and a skip
// must be visible in CI logs.
use std::io::Write as _;

pub mod compare;
pub mod data;
pub mod parity;
pub mod rng;

/// Returns the backend, or `None` after printing that `what` is skipped and why; panics (fails
/// the test) instead of skipping when the environment variable `require_env` is `1`.
pub fn backend_or_skip<B>(what: &str, made: supo_core::Result<B>, require_env: &str) -> Option<B> {
    match made {
        Ok(b) => Some(b),
        Err(e) if std::env::var(require_env).as_deref() == Ok("1") => {
            panic!("{what}: backend required ({require_env}=1) but unavailable: {e}")
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{what} skipped: {e}");
            None
        }
    }
}
