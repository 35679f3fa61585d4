//! # supo-core
//!
//! The vocabulary of SUPO (summarization-augmented policy optimisation): trajectories cut into
//! summary segments, the context manager that decides when an agent must summarise, the SUPO
//! estimator (group advantages, overlong masking, clipped surrogate, KL, verl's aggregation
//! modes and two trajectory-balanced ones), the [`Backend`] trait of tensor operations that compute the loss on a device, and
//! [`CpuBackend`], the reference implementation every other backend is checked against.
//!
//! The crate is `#![no_std]` + `alloc` with default features off. Features:
//! `std` (default), `serde`, `proptest` (public strategies in the `strategies` module),
//! `parallel` (a rayon path in [`CpuBackend`] that is bit-identical to the serial one).
//!
//! ```
//! use supo_core::estimator::{EstimatorConfig, LogProbBatch};
//! # fn main() -> Result<(), supo_core::Error> {
//! let batch = LogProbBatch::example();
//! let out = batch.loss(&EstimatorConfig::default())?;
//! assert!(out.loss.is_finite());
//! # Ok(()) }
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod backend;
pub mod context;
mod error;
pub mod estimator;
#[cfg(feature = "std")]
pub mod fs;
pub mod model;
pub mod trajectory;

#[cfg(feature = "proptest")]
pub mod strategies;

pub use backend::cpu::CpuBackend;
pub use backend::{Backend, DType, Element, LinearShape, LogitsShape, LossReport, Scalar};
pub use context::{ContextConfig, ContextManager, Decision, TokenCounter};
pub use error::{Error, Result};
pub use trajectory::{FinishReason, Role, SummarySegment, TokenId, Trajectory, Turn};
