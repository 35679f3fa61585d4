//! Cross-crate test suites of supo-rs.
//!
//! * [`parity`] — the one backend-parity suite: every [`supo_core::Backend`] is compared with
//!   [`supo_core::CpuBackend`] on the same random inputs, through the [`parity_suite!`] macro.
//! * `tests/` — property suites of the SUPO math (segment factorisation, advantages, finite
//!   differences, the context manager) and the golden tests of `supo loss`.

#![warn(missing_docs)]

pub mod parity;
pub mod rng;
