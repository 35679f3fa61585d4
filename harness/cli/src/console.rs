//! Standard output and standard error, where a reader that went away is the end of the run, not
//! a crash.
//!
//! `println!` and `eprintln!` panic when the write fails, and Rust ignores `SIGPIPE`, so
//! `supo loss … | head -c 10` used to die with "failed printing to stdout: Broken pipe" and a
//! panic trace. Every line `supo` writes goes through [`out`] or [`err`] instead (the
//! [`outln!`](crate::outln) and [`errln!`](crate::errln) macros): a closed pipe or socket becomes
//! [`CliError::Closed`], which `main` turns into exit code [`CLOSED_EXIT`] without a word (there
//! is no one left to read it); any other write failure (a full disk) is an ordinary failure with
//! its message.

use std::fmt;
use std::io::{self, Write};

use crate::CliError;

/// The exit code when standard output or standard error went away: 128 + `SIGPIPE`, what a
/// shell reports for a process the signal ended.
pub const CLOSED_EXIT: i32 = 141;

/// Whether a write error means that the reader is gone.
pub fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

fn write_to(mut w: impl Write, what: &str, args: fmt::Arguments<'_>) -> Result<(), CliError> {
    w.write_fmt(args).and_then(|()| w.flush()).map_err(|e| {
        if is_closed(&e) {
            CliError::Closed
        } else {
            CliError::Failure(format!("cannot write to standard {what}: {e}"))
        }
    })
}

/// Writes to standard output (and flushes).
pub fn out(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    write_to(io::stdout().lock(), "output", args)
}

/// Writes to standard error.
pub fn err(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    write_to(io::stderr().lock(), "error", args)
}

/// Writes a line to standard error where no error can be returned (a progress callback): a
/// closed standard error ends the process quietly with [`CLOSED_EXIT`], as `SIGPIPE` would.
pub fn err_or_exit(args: fmt::Arguments<'_>) {
    match err(args) {
        Ok(()) => {}
        Err(CliError::Closed) => std::process::exit(CLOSED_EXIT),
        // Standard error itself failed: there is nowhere to say so.
        Err(_) => std::process::exit(1),
    }
}

/// `println!` through [`out`]: evaluates to `Result<(), CliError>`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::console::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`err`]: evaluates to `Result<(), CliError>`.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::console::err(format_args!("{}\n", format_args!($($arg)*)))
    };
}
