//! `supo bfcl …`: BFCL multi-turn tools. `supo bfcl replay --input FILE.jsonl --output
//! OUT.jsonl` replays call strings on the Rust environments (the command-line contract in the
//! design card).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::CliError;
use supo_bfcl::replay::{replay, ReplayInput};

/// The `supo bfcl` subcommands.
#[derive(Debug, Subcommand)]
pub enum BfclCommand {
    /// Replays entries `{id, involved_classes, initial_config, long_context, turns}` (JSONL)
    /// and writes `{id, results, states}` per entry (JSONL).
    Replay(ReplayArgs),
    /// Evaluates a served model on a BFCL multi-turn category, with or without SUPO's context
    /// management: per-entry verdicts (JSONL) and a summary table.
    Eval(Box<super::rollout::EvalArgs>),
}

/// Arguments of `supo bfcl replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The entries (JSONL); `-` reads standard input.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the replays (JSONL), atomically.
    #[arg(long)]
    pub output: PathBuf,
    /// Go on past lines that are not valid entries (or do not replay), leaving them out of the
    /// output and counting them on standard error; without it the first such line is the error.
    #[arg(long)]
    pub skip_bad_lines: bool,
}

/// Runs a `supo bfcl` subcommand.
pub fn run(cmd: &BfclCommand) -> Result<(), CliError> {
    match cmd {
        BfclCommand::Replay(args) => run_replay(args),
        BfclCommand::Eval(args) => super::rollout::run_eval(args),
    }
}

fn run_replay(args: &ReplayArgs) -> Result<(), CliError> {
    let text = crate::read_input(&args.input)?;
    let file = if args.input.as_os_str() == "-" {
        "standard input".to_string()
    } else {
        args.input.display().to_string()
    };
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect();
    let replayed = replay_all(&file, &lines);
    let mut out = Vec::with_capacity(replayed.len());
    let mut bad = Vec::new();
    for r in replayed {
        match r {
            Ok(line) => out.push(line),
            Err(e) if args.skip_bad_lines => bad.push(e),
            Err(e) => return Err(e),
        }
    }
    if let Some(first) = bad.first() {
        errln!(
            "supo bfcl replay: skipped {} bad line{} (the first: {first})",
            bad.len(),
            if bad.len() == 1 { "" } else { "s" }
        )?;
    }
    supo_core::fs::write_atomic(&args.output, out.concat().as_bytes())
        .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", args.output.display())))
}

/// Parses and replays one input line into one output line.
fn replay_line(file: &str, line: usize, text: &str) -> Result<String, CliError> {
    let entry: ReplayInput = serde_json::from_str(text)
        .map_err(|e| CliError::Input(format!("{file} line {line}: bad entry: {e}")))?;
    let result = replay(&entry).map_err(|e| CliError::Input(format!("{file} line {line}: {e}")))?;
    let mut json = serde_json::to_string(&result)
        .map_err(|e| CliError::Failure(format!("cannot write line {line}: {e}")))?;
    json.push('\n');
    Ok(json)
}

/// Replays the lines on all cores (entries are independent), keeping their order.
fn replay_all(file: &str, lines: &[(usize, &str)]) -> Vec<Result<String, CliError>> {
    use rayon::prelude::*;
    lines
        .par_iter()
        .map(|(n, l)| replay_line(file, *n, l))
        .collect()
}
