//! The one error type of `supo-core` and of every backend.

use alloc::string::String;
use core::fmt;

/// Everything that can go wrong in the core or in a [`Backend`](crate::Backend).
///
/// Bad input is always reported as a value, never as a panic.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Input that breaks a documented precondition (ragged arrays, wrong shape, bad index).
    InvalidInput(String),
    /// A NaN or infinity where a finite number is required.
    NonFinite(String),
    /// A configuration value out of its documented range.
    InvalidConfig(String),
    /// The backend cannot start here: no GPU, no driver, no compiler (the message names what).
    Unavailable(String),
    /// The device failed while working (lost device, launch failure, out of memory).
    Device(String),
    /// The backend does not support this operation or element type.
    Unsupported(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::NonFinite(m) => write!(f, "non-finite value: {m}"),
            Error::InvalidConfig(m) => write!(f, "invalid config: {m}"),
            Error::Unavailable(m) => write!(f, "backend unavailable: {m}"),
            Error::Device(m) => write!(f, "device error: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
        }
    }
}

impl core::error::Error for Error {}

/// Returns `Err(Error::InvalidInput)` with the formatted message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::Error::InvalidInput(alloc::format!($($arg)+)));
        }
    };
}
pub(crate) use ensure;
