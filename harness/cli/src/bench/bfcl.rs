//! `supo bench bfcl`: BFCL's executor in Rust against BFCL's own Python, in the same run.
//!
//! Both sides do the same work on the same entries: every entry's calls executed turn by turn on
//! fresh instances (instances created and scenarios loaded included; reading the input and
//! showing states left out), on one thread, `--warmup` untimed runs then `--repeats` timed
//! runs over all entries, the median reported. Time is the executing thread's CPU time on
//! Linux, on both sides the same clock (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`, which
//! Python's `time.thread_time` reads), so other processes on a loaded machine do not count;
//! elsewhere both sides use the wall clock. BFCL's side is `execute_multi_turn_func_call`
//! from the installed `bfcl-eval` package, driven by `harness/bfcl/tests/bfcl_reference.py`
//! (its `time` mode, embedded in the binary).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::Args;
use serde::{Deserialize, Serialize};
use supo_bfcl::replay::{Executor, ReplayInput};

use super::median;
use crate::CliError;

/// BFCL's Python reference behind a JSONL interface; `time` mode times its executor.
const REFERENCE_SCRIPT: &str = include_str!("../../../bfcl/tests/bfcl_reference.py");

/// Arguments of `supo bench bfcl`.
#[derive(Debug, Args)]
pub struct BfclBenchArgs {
    /// Replay entries `{id, involved_classes, initial_config, long_context, turns}` (JSONL),
    /// e.g. `harness/bfcl/tests/data/bfcl_replay_multi_turn_base.jsonl`.
    #[arg(long)]
    pub input: PathBuf,
    /// Timed runs over all entries, on each side (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    /// Untimed warm-up runs, on each side.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Time only the Rust executor (BFCL's Python reference is not run).
    #[arg(long)]
    pub no_python: bool,
}

/// The JSON line `supo bench bfcl` prints.
#[derive(Debug, Serialize)]
pub struct BfclBenchResult {
    /// Entries replayed per run.
    pub entries: usize,
    /// Calls executed per run.
    pub calls: usize,
    /// Calls per second of the Rust executor (median run).
    pub calls_per_s: f64,
    /// Calls per second of BFCL's Python executor (median run); `None` with `--no-python`.
    pub python_calls_per_s: Option<f64>,
    /// `calls_per_s / python_calls_per_s`.
    pub speedup_vs_python: Option<f64>,
    /// Seconds of each timed Rust run.
    pub runs_s: Vec<f64>,
    /// Seconds of each timed Python run.
    pub python_runs_s: Vec<f64>,
    /// Bytes of all rendered results of a run (a checksum of the work done).
    pub result_bytes: usize,
    /// The clock of the runs: `thread-cpu` or `wall`.
    pub clock: &'static str,
}

/// What the reference script's `time` mode prints.
#[derive(Debug, Deserialize)]
struct PythonTimes {
    calls: usize,
    runs_s: Vec<f64>,
}

/// Runs `supo bench bfcl`.
pub fn run(args: &BfclBenchArgs) -> Result<(), CliError> {
    if args.repeats == 0 {
        return Err(CliError::Input("--repeats must be > 0".into()));
    }
    let text = crate::read_input(&args.input)?;
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry: ReplayInput = serde_json::from_str(line).map_err(|e| {
            CliError::Input(format!(
                "{} line {}: bad entry: {e}",
                args.input.display(),
                i + 1
            ))
        })?;
        entries.push(entry);
    }
    if entries.is_empty() {
        return Err(CliError::Input(format!(
            "{} has no entries",
            args.input.display()
        )));
    }
    let calls: usize = entries
        .iter()
        .map(|e| e.turns.iter().map(Vec::len).sum::<usize>())
        .sum();
    let cpu = thread_cpu_seconds().is_some();
    let now = || {
        if cpu {
            thread_cpu_seconds().unwrap_or(0.0)
        } else {
            EPOCH.get_or_init(Instant::now).elapsed().as_secs_f64()
        }
    };
    let mut runs_s = Vec::with_capacity(args.repeats);
    let mut result_bytes = 0;
    for i in 0..args.warmup + args.repeats {
        let start = now();
        let bytes = execute_all(&entries)?;
        let secs = now() - start;
        if i >= args.warmup {
            runs_s.push(secs);
        }
        result_bytes = bytes;
    }
    let calls_per_s = calls as f64 / median(&runs_s);
    let python_runs_s = if args.no_python {
        Vec::new()
    } else {
        let times = python_times(args, cpu)?;
        if times.calls != calls || times.runs_s.len() != args.warmup + args.repeats {
            return Err(CliError::Failure(format!(
                "BFCL's Python timed {} calls in {} runs, expected {calls} in {}",
                times.calls,
                times.runs_s.len(),
                args.warmup + args.repeats
            )));
        }
        times.runs_s[args.warmup..].to_vec()
    };
    let python_calls_per_s =
        (!python_runs_s.is_empty()).then(|| calls as f64 / median(&python_runs_s));
    let result = BfclBenchResult {
        entries: entries.len(),
        calls,
        calls_per_s,
        python_calls_per_s,
        speedup_vs_python: python_calls_per_s.map(|p| calls_per_s / p),
        runs_s,
        python_runs_s,
        result_bytes,
        clock: if cpu { "thread-cpu" } else { "wall" },
    };
    match (result.python_calls_per_s, result.speedup_vs_python) {
        (Some(p), Some(x)) => errln!(
            "BFCL executor, {} entries, {calls} calls: Rust {calls_per_s:.0} calls/s, \
             BFCL's Python {p:.0} calls/s: {x:.1}x",
            result.entries
        )?,
        _ => errln!(
            "BFCL executor, {} entries, {calls} calls: Rust {calls_per_s:.0} calls/s",
            result.entries
        )?,
    }
    outln!(
        "{}",
        serde_json::to_string(&result).map_err(|e| CliError::Failure(e.to_string()))?
    )?;
    Ok(())
}

/// Executes every entry's calls on fresh instances; returns the bytes of all results.
fn execute_all(entries: &[ReplayInput]) -> Result<usize, CliError> {
    let mut bytes = 0;
    for e in entries {
        let mut ex = Executor::new(&e.involved_classes, &e.initial_config, e.long_context)
            .map_err(|err| CliError::Input(format!("entry {}: {err}", e.id)))?;
        for turn in &e.turns {
            for call in turn {
                bytes += ex.execute(call).len();
            }
        }
    }
    Ok(bytes)
}

/// Runs the reference script's `time` mode on the input with the installed `bfcl-eval`.
fn python_times(args: &BfclBenchArgs, cpu: bool) -> Result<PythonTimes, CliError> {
    let dir = supo_bfcl::locate::bfcl_eval_dir().map_err(|e| {
        CliError::Failure(format!(
            "BFCL's Python reference is needed for the comparison: {e} (or pass --no-python)"
        ))
    })?;
    let site = dir.parent().unwrap_or(&dir);
    let mut child = Command::new("python3")
        .arg("-")
        .arg("time")
        .arg(&args.input)
        .arg((args.warmup + args.repeats).to_string())
        .arg(if cpu { "cpu" } else { "wall" })
        .env("PYTHONPATH", site)
        .env("PYTHONHASHSEED", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            CliError::Failure(format!(
                "cannot run python3 for BFCL's reference: {e} (or pass --no-python)"
            ))
        })?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(REFERENCE_SCRIPT.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| CliError::Failure(format!("python3 failed: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Failure(format!(
            "BFCL's Python reference failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if let Some(Err(e)) = written {
        return Err(CliError::Failure(format!(
            "cannot pass the reference script to python3: {e}"
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).map_err(|e| {
        CliError::Failure(format!(
            "BFCL's Python reference printed no timings ({e}): {stdout}"
        ))
    })
}

/// The start of the wall clock of the runs.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// The calling thread's CPU time in seconds on Linux: `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`,
/// the clock Python's `time.thread_time` reads, to the nanosecond (`/proc/thread-self/schedstat`
/// counts only whole scheduler ticks on some kernels, 4 ms, coarser than a run); `None` where
/// it cannot be read.
#[cfg(target_os = "linux")]
fn thread_cpu_seconds() -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec` for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

/// No thread CPU clock is read outside Linux: both sides use the wall clock.
#[cfg(not(target_os = "linux"))]
fn thread_cpu_seconds() -> Option<f64> {
    None
}
