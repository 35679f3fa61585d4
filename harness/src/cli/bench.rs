//! `supo bench …`: benchmarks of the backends.

use clap::Subcommand;

use super::CliError;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {}

/// Runs a benchmark.
pub fn run(cmd: &BenchCommand) -> Result<(), CliError> {
    match *cmd {}
}
