//! # supo-cli
//!
//! The `supo` command-line tool over the harness crates, one module per subcommand: `supo
//! train` (`supo-train`), `supo rollout` and `supo bfcl eval` (`supo-agent`), `supo bfcl
//! replay` (`supo-bfcl`), `supo synth` (`supo-synth`), `supo serve` (`supo-serve` over
//! `supo-train`'s built-in model), `supo loss` and `supo bench` (`supo-core` and the GPU
//! backends). It is the only crate with clap, progress bars, plots, mimalloc and the GPU
//! backends; `cargo install --path harness/cli` installs `supo`.
//!
//! Exit codes: 0 on success, 2 on bad input or usage (one-line message on standard error),
//! 1 on any other failure, 141 without a word when standard output or standard error went away
//! (`supo loss … | head -c 10`, a closed socket; see [`console`]).

#![warn(missing_docs)]

#[macro_use]
pub mod console;

pub mod backend;
pub mod bench;
pub mod bfcl;
pub mod journal;
pub mod loss;
pub mod plot;
pub mod rollout;
pub mod serve;
pub mod synth;
pub mod train;

use clap::{Parser, Subcommand};

/// `supo`: SUPO and FunReason-MT in Rust.
#[derive(Debug, Parser)]
#[command(name = "supo", version, about = "SUPO and FunReason-MT in Rust")]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The SUPO estimator on log-probs: reads a batch (JSON), writes loss, statistics and
    /// dL/dlogp (JSON) to standard output.
    Loss(loss::LossArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// BFCL multi-turn tools (`supo bfcl replay`).
    #[command(subcommand)]
    Bfcl(bfcl::BfclCommand),
    /// FunReason-MT data synthesis on the BFCL environments.
    Synth(synth::SynthArgs),
    /// Agent rollouts on BFCL entries against an OpenAI-compatible server, exported as
    /// training rows (one per summary segment).
    Rollout(Box<rollout::RolloutArgs>),
    /// Serves the built-in policy, or a GGUF model (`--gguf`), on the OpenAI-compatible
    /// chat-completions API, with log-probs and token ids.
    Serve(serve::ServeArgs),
    /// SUPO and the GRPO baselines on the built-in model and the ledger task: report, learning
    /// curves and checkpoints.
    Train(train::TrainArgs),
}

/// A failure of a subcommand, with the exit code it maps to.
#[derive(Debug)]
pub enum CliError {
    /// Bad input or usage: exit code 2.
    Input(String),
    /// Anything else: exit code 1.
    Failure(String),
    /// Standard output or standard error went away: exit code
    /// [`console::CLOSED_EXIT`], nothing printed.
    Closed,
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Input(_) => 2,
            CliError::Failure(_) => 1,
            CliError::Closed => console::CLOSED_EXIT,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Input(m) | CliError::Failure(m) => f.write_str(m),
            CliError::Closed => f.write_str("standard output or standard error was closed"),
        }
    }
}

impl From<supo_core::Error> for CliError {
    fn from(e: supo_core::Error) -> Self {
        match e {
            supo_core::Error::InvalidInput(_)
            | supo_core::Error::NonFinite(_)
            | supo_core::Error::InvalidConfig(_) => CliError::Input(e.to_string()),
            _ => CliError::Failure(e.to_string()),
        }
    }
}

/// The text of an input file, or of standard input for `-`; a failure is bad input.
pub(crate) fn read_input(path: &std::path::Path) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::Input(format!("cannot read standard input: {e}")))
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))
    }
}

/// A clap parser for a library type named by one of `names` (parsed by its `FromStr`), so
/// `--help` lists the names and the library needs no clap.
pub(crate) fn named<T>(
    names: &'static [&'static str],
) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(names).try_map(|s| s.parse::<T>())
}

/// Parses the process's command line and runs it; returns the exit code. Help, version and usage
/// errors are written through [`console`] too, so `supo --help | head -c 10` ends quietly.
pub fn main() -> i32 {
    use clap::Parser as _;
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            return match e.print() {
                Ok(()) => e.exit_code(),
                // The help or version text was the output: without a reader, the run failed.
                Err(io) if e.exit_code() == 0 => {
                    if console::is_closed(&io) {
                        console::CLOSED_EXIT
                    } else {
                        1
                    }
                }
                // A usage error that could not be told still exits as one.
                Err(_) => e.exit_code(),
            };
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(CliError::Closed) => console::CLOSED_EXIT,
        Err(e) => {
            // If standard error is gone too, the exit code is all that is left to say.
            let _ = errln!("supo: {e}");
            e.exit_code()
        }
    }
}

/// A clap parser for a loss-aggregation mode (`--help` lists the six names).
pub(crate) fn agg_mode(
) -> impl clap::builder::TypedValueParser<Value = supo_core::estimator::AggMode> {
    use clap::builder::TypedValueParser as _;
    use supo_core::estimator::AggMode;
    clap::builder::PossibleValuesParser::new(AggMode::ALL.map(AggMode::name))
        .try_map(|s| AggMode::parse(&s).map_err(|e| e.to_string()))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Loss(args) => loss::run(&args),
        Command::Bench(cmd) => bench::run(&cmd),
        Command::Bfcl(cmd) => bfcl::run(&cmd),
        Command::Synth(args) => synth::run(&args),
        Command::Rollout(args) => rollout::run_rollout(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Train(args) => train::run(&args),
    }
}
