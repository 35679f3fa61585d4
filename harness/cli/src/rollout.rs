//! `supo rollout` and `supo bfcl eval`: agent rollouts on BFCL multi-turn entries against an
//! OpenAI-compatible server, with or without SUPO's context management; per-entry verdicts
//! (JSONL), a summary table, and training rows (`--export`, JSONL). Output files are written
//! whole and atomically once every rollout is done (a temporary file renamed over the target);
//! meanwhile each finished rollout goes to a journal beside the first output
//! (`OUTPUT.journal`, see [`crate::journal`]), from which `--resume` continues a killed run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use supo_core::context::ContextConfig;
use supo_core::estimator::{AggMode, EstimatorConfig};

use super::CliError;
use crate::journal::Journal;
use supo_agent::bfcl::{load_category, BfclEnv};
use supo_agent::export::training_rows;
use supo_agent::http::{HttpConfig, HttpPolicy};
use supo_agent::local::LocalTokenizer;
use supo_agent::{run_all, AgentConfig, AgentError, Job, Rollout, ToolFormat};
use supo_bfcl::checker::MAXIMUM_STEP_LIMIT;

/// What a run talks to and how the agent acts: shared by `supo rollout` and `supo bfcl eval`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The server's API root, e.g. `http://127.0.0.1:8000/v1`.
    #[arg(long)]
    pub base_url: String,
    /// The model name the server knows.
    #[arg(long)]
    pub model: String,
    /// A bearer token for the server (default: `$OPENAI_API_KEY` when set).
    #[arg(long)]
    pub api_key: Option<String>,
    /// The BFCL multi-turn category.
    #[arg(long, default_value = "multi_turn_base")]
    pub category: String,
    /// Only these entries (comma-separated ids), in the category's order.
    #[arg(long, value_delimiter = ',')]
    pub ids: Vec<String>,
    /// Only the first K entries (after `--ids`).
    #[arg(long)]
    pub limit: Option<usize>,
    /// `W`: the working context in tokens; without it there is no context management (no
    /// summaries; the episode ends when the server's context is full).
    #[arg(long)]
    pub working_context: Option<usize>,
    /// `L`: the summarization threshold (default ⌊0.95·W⌋).
    #[arg(long, requires = "working_context")]
    pub threshold: Option<usize>,
    /// `S`: the most summaries per episode.
    #[arg(long, default_value_t = 7)]
    pub max_summaries: usize,
    /// `H`: the most agent steps per episode.
    #[arg(long, default_value_t = 100)]
    pub max_steps: usize,
    /// The most tokens of one generation.
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: usize,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// The first sampling seed: rollout `r` samples its generation `i` with `seed + 1000·r + i`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How tools are offered to the model and calls read back.
    #[arg(long, default_value_t = ToolFormat::Openai, value_parser = crate::named::<ToolFormat>(&ToolFormat::NAMES))]
    pub tool_format: ToolFormat,
    /// Rollouts in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Seconds one request may take.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Retries of a failed request (transport errors, 429, 5xx, malformed bodies).
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Do not ask for log-probs (`logprobs`, `return_tokens_as_token_ids`): for servers that
    /// reject unknown fields. Rows cannot be exported then.
    #[arg(long)]
    pub no_logprobs: bool,
    /// A `tokenizer.json` for token ids, with the ChatML template, instead of the server's
    /// `/tokenize` (for servers without it, e.g. Ollama, serving a ChatML model).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// The full URL of vLLM's `/tokenize` when the server has it elsewhere than at its root
    /// or under the API root (a gateway's pass-through route, e.g.
    /// `http://gateway:4000/tokenize`).
    #[arg(long, conflicts_with = "tokenizer")]
    pub tokenize_url: Option<String>,
    /// Where to write training rows (JSONL, one per summary segment).
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Continue an interrupted run from its journal (`OUTPUT.journal`): finished rollouts are
    /// not run again, and the outputs are what an uninterrupted run writes.
    #[arg(long)]
    pub resume: bool,
    /// The loss-aggregation mode of the exported rows' `token_weights`.
    #[arg(long, default_value = "token-mean", value_parser = crate::agg_mode())]
    pub agg: AggMode,
}

/// Arguments of `supo bfcl eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunArgs,
    /// Where to write the per-entry verdicts (JSONL).
    #[arg(long)]
    pub output: PathBuf,
    /// Also run every entry without context management first: one table row (and a
    /// `"context"` value in the verdicts) per mode; rows are exported from the managed run.
    #[arg(long, requires = "working_context")]
    pub compare: bool,
}

/// Arguments of `supo rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// The run.
    #[command(flatten)]
    pub run: RunArgs,
    /// Rollouts per entry (a group: advantages are relative within it).
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// Where to write the per-rollout verdicts (JSONL).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs `supo bfcl eval`.
pub fn run_eval(args: &EvalArgs) -> Result<(), CliError> {
    run(&args.run, 1, Some(&args.output), args.compare)
}

/// Runs `supo rollout`.
pub fn run_rollout(args: &RolloutArgs) -> Result<(), CliError> {
    if args.run.export.is_none() && args.output.is_none() {
        return Err(CliError::Input(
            "nothing to write: give --export FILE and/or --output FILE".into(),
        ));
    }
    if args.samples > 1 && args.run.temperature == 0.0 {
        errln!(
            "supo rollout: warning: --temperature 0 makes the {} samples of an entry alike, so \
             their advantages are 0; pass --temperature 1.0 to sample",
            args.samples
        )?;
    }
    run(&args.run, args.samples, args.output.as_deref(), false)
}

/// The run's agent settings; `managed: false` drops the working context (no summaries).
fn agent_config(a: &RunArgs, managed: bool) -> Result<AgentConfig, CliError> {
    let context = match a.working_context.filter(|_| managed) {
        Some(w) => {
            let mut c = ContextConfig::new(w)
                .with_max_summaries(a.max_summaries)
                .with_max_steps(a.max_steps);
            if let Some(l) = a.threshold {
                c = c.with_threshold(l);
            }
            c
        }
        None => {
            let w = 1 << 40;
            ContextConfig::new(w)
                .with_threshold(w)
                .with_max_summaries(0)
                .with_max_steps(a.max_steps)
        }
    };
    context.validate()?;
    if a.max_tokens == 0 || a.concurrency == 0 {
        return Err(CliError::Input(
            "--max-tokens and --concurrency must be > 0".into(),
        ));
    }
    Ok(AgentConfig {
        context,
        max_tokens: a.max_tokens,
        temperature: a.temperature,
        tool_format: a.tool_format,
        max_steps_per_turn: MAXIMUM_STEP_LIMIT,
    })
}

/// The verdict line of one rollout.
fn verdict_line(
    id: &str,
    sample: usize,
    context: &str,
    r: &Result<Rollout, AgentError>,
) -> serde_json::Value {
    match r {
        Err(e) => {
            json!({"id": id, "sample": sample, "context": context, "valid": false, "reward": 0.0,
            "error_type": "rollout_error", "error_message": e.0, "error": e.0})
        }
        Ok(r) => {
            let t = &r.trajectory;
            let mean_context = if r.generations.is_empty() {
                0.0
            } else {
                r.generations
                    .iter()
                    .map(|g| g.context_tokens as f64)
                    .sum::<f64>()
                    / r.generations.len() as f64
            };
            json!({
                "id": id, "sample": sample, "context": context,
                "valid": r.outcome.verdict.get("valid").cloned().unwrap_or(json!(false)),
                "reward": r.outcome.reward,
                "error_type": r.outcome.verdict.get("error_type"),
                "error_message": r.outcome.verdict.get("error_message"),
                "finish": t.finish.name(),
                "summaries": t.summaries(),
                "segments": t.segments.len(),
                "segment_prompt_tokens": t.segments.iter().map(|s| s.prompt.len()).collect::<Vec<_>>(),
                "segment_response_tokens": t.segments.iter().map(|s| s.response_len()).collect::<Vec<_>>(),
                "tool_calls": r.tool_calls,
                "call_parse_failures": r.call_parse_failures,
                "peak_context": r.peak_context,
                "mean_context": mean_context,
                "generations": r.generations,
                "has_logprobs": r.has_logprobs,
                "error": r.error,
            })
        }
    }
}

fn write_jsonl(path: &Path, lines: &[serde_json::Value]) -> Result<(), CliError> {
    let mut text = String::new();
    for l in lines {
        text.push_str(&l.to_string());
        text.push('\n');
    }
    supo_core::fs::write_atomic(path, text.as_bytes())
        .map_err(|e| CliError::Failure(format!("cannot write {}: {e}", path.display())))
}

fn run(a: &RunArgs, samples: usize, output: Option<&Path>, compare: bool) -> Result<(), CliError> {
    if samples == 0 {
        return Err(CliError::Input("--samples must be > 0".into()));
    }
    let managed_label = match a.working_context {
        Some(w) => format!("W={w} S={}", a.max_summaries),
        None => "none".to_string(),
    };
    let mut modes = Vec::new();
    if compare {
        modes.push(("none".to_string(), agent_config(a, false)?));
    }
    modes.push((managed_label, agent_config(a, true)?));
    let mut http = HttpConfig::new(&a.base_url, &a.model);
    http.api_key = a.api_key.clone().or_else(|| {
        std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.is_empty())
    });
    http.timeout = Duration::from_secs(a.timeout.max(1));
    http.retry.max_retries = a.retries;
    http.logprobs = !a.no_logprobs;
    http.tokenize_url = a.tokenize_url.clone();
    if a.export.is_some() && a.no_logprobs {
        return Err(CliError::Input(
            "--export needs log-probs: drop --no-logprobs".into(),
        ));
    }
    let mut policy = HttpPolicy::new(http).map_err(|e| CliError::Failure(e.to_string()))?;
    if let Some(path) = &a.tokenizer {
        let local = LocalTokenizer::from_file(path).map_err(CliError::Input)?;
        policy = policy.with_local_tokenizer(std::sync::Arc::new(local));
    }
    let mut entries = load_category(&a.category).map_err(CliError::Input)?;
    if !a.ids.is_empty() {
        if let Some(missing) = a
            .ids
            .iter()
            .find(|id| !entries.iter().any(|e| &e.id == *id))
        {
            return Err(CliError::Input(format!(
                "no entry {missing:?} in {}",
                a.category
            )));
        }
        entries.retain(|e| a.ids.contains(&e.id));
    }
    if let Some(k) = a.limit {
        entries.truncate(k);
    }
    let journal_path = output
        .or(a.export.as_deref())
        .map(|p| {
            let mut name = p.as_os_str().to_owned();
            name.push(".journal");
            PathBuf::from(name)
        })
        .ok_or_else(|| CliError::Input("nothing to write".into()))?;
    let header = json!({
        "supo": "rollout journal", "model": a.model, "category": a.category, "ids": a.ids,
        "limit": a.limit, "working_context": a.working_context, "threshold": a.threshold,
        "max_summaries": a.max_summaries, "max_steps": a.max_steps, "max_tokens": a.max_tokens,
        "temperature": a.temperature, "seed": a.seed, "tool_format": a.tool_format.name(),
        "samples": samples, "compare": compare, "export": a.export.is_some(),
        "tokenizer": a.tokenizer.is_some(), "logprobs": !a.no_logprobs,
    });
    let (mut journal, journaled) = Journal::open(&journal_path, &header, a.resume)?;
    if a.resume {
        errln!(
            "resuming from {}: {} rollouts already finished",
            journal_path.display(),
            journaled.len()
        )?;
    }
    let mut lines = Vec::new();
    let mut rows = Vec::new();
    let mut table = Vec::new();
    for (mode, config) in modes {
        let mut results: Vec<Option<Result<Rollout, AgentError>>> = Vec::new();
        for entry in journaled.iter().filter(|e| e["mode"] == mode.as_str()) {
            let job = entry["job"].as_u64().unwrap_or(u64::MAX) as usize;
            let result =
                serde_json::from_value::<Rollout>(entry["rollout"].clone()).map_err(|e| {
                    CliError::Input(format!("{}: bad entry: {e}", journal_path.display()))
                })?;
            if results.len() <= job {
                results.resize_with(job + 1, || None);
            }
            results[job] = Some(Ok(result));
        }
        let mut jobs = Vec::with_capacity(entries.len() * samples);
        let mut ids = Vec::with_capacity(entries.len() * samples);
        let mut indices = Vec::with_capacity(entries.len() * samples);
        for entry in &entries {
            for s in 0..samples {
                let index = ids.len();
                ids.push((entry.id.clone(), s));
                if results.get(index).is_some_and(Option::is_some) {
                    continue;
                }
                let env = BfclEnv::new(entry.clone())
                    .map_err(|e| CliError::Input(format!("{}: {e}", entry.id)))?;
                jobs.push(Job {
                    group: entry.id.clone(),
                    env,
                    seed: a.seed + 1000 * index as u64,
                });
                indices.push(index);
            }
        }
        if results.len() > ids.len() {
            return Err(CliError::Input(format!(
                "{} holds more rollouts than this run has",
                journal_path.display()
            )));
        }
        results.resize_with(ids.len(), || None);
        let bar = indicatif::ProgressBar::new(jobs.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {prefix} [{elapsed_precise}] {bar:40} {pos}/{len} rollouts ({per_sec}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_prefix(mode.clone());
        let start = Instant::now();
        let mut passed = results
            .iter()
            .flatten()
            .filter(|r| r.as_ref().is_ok_and(|r| r.outcome.reward > 0.0))
            .count();
        bar.set_position((ids.len() - jobs.len()) as u64);
        let mut journal_error = None;
        let fresh = run_all(policy.clone(), config, jobs, a.concurrency, |i, r| {
            if r.as_ref().is_ok_and(|r| r.outcome.reward > 0.0) {
                passed += 1;
            }
            // Only clean episodes are journaled: a resumed run tries the failed ones again.
            if let Some(rollout) = r.as_ref().ok().filter(|r| r.error.is_none()) {
                let entry = json!({"mode": mode, "job": indices[i], "rollout": rollout});
                if let Err(e) = journal.append(&entry) {
                    journal_error.get_or_insert(e);
                }
            }
            bar.set_message(format!("{passed} passed"));
            bar.inc(1);
        })
        .map_err(|e| CliError::Failure(e.to_string()))?;
        bar.finish_and_clear();
        if let Some(e) = journal_error {
            return Err(CliError::Failure(format!(
                "cannot write the journal {}: {e}",
                journal_path.display()
            )));
        }
        for (i, r) in indices.into_iter().zip(fresh) {
            results[i] = Some(r);
        }
        let results: Vec<Result<Rollout, AgentError>> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(AgentError("the rollout did not run".into()))))
            .collect();
        // A run in which every rollout ended in an error (could not start, or ended with
        // EnvError) fails with the first error.
        let failure = |r: &Result<Rollout, AgentError>| match r {
            Err(e) => Some(e.0.clone()),
            Ok(r) => r.error.clone(),
        };
        if !results.is_empty() && results.iter().all(|r| failure(r).is_some()) {
            let first = results.iter().find_map(failure).unwrap_or_default();
            return Err(CliError::Failure(format!(
                "every rollout failed; the first: {first}"
            )));
        }
        let elapsed = start.elapsed().as_secs_f64();
        lines.extend(
            ids.iter()
                .zip(&results)
                .map(|((id, s), r)| verdict_line(id, *s, &mode, r)),
        );
        table.push(table_row(&mode, &a.category, &results, elapsed));
        rows = export_rows(a, &results)?;
    }
    if let Some(path) = output {
        write_jsonl(path, &lines)?;
    }
    if let Some(path) = &a.export {
        write_jsonl(path, &rows)?;
    }
    journal.finish()?;
    outln!(
        "{:<28} {:<16} {:>8} {:>9} {:>12} {:>10} {:>10} {:>11} {:>7} {:>11}",
        "category",
        "context",
        "rollouts",
        "accuracy",
        "mean ctx",
        "peak ctx",
        "summaries",
        "tool calls",
        "errors",
        "rollouts/s"
    )?;
    for row in table {
        outln!("{row}")?;
    }
    Ok(())
}

/// The training rows of a run's successful rollouts (none unless `--export`).
fn export_rows(
    a: &RunArgs,
    results: &[Result<Rollout, AgentError>],
) -> Result<Vec<serde_json::Value>, CliError> {
    if a.export.is_none() {
        return Ok(Vec::new());
    }
    let ok: Vec<&Rollout> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|r| r.error.is_none())
        .collect();
    if let Some(r) = ok.iter().find(|r| !r.has_logprobs) {
        return Err(CliError::Failure(format!(
            "the server returned no token log-probs with token ids for {} (vLLM needs \
             --return-tokens-as-token-ids or the request field); training rows need them",
            r.trajectory.group
        )));
    }
    let trajectories: Vec<_> = ok.iter().map(|r| r.trajectory.clone()).collect();
    let config = EstimatorConfig {
        agg: a.agg,
        ..EstimatorConfig::default()
    };
    let rows = training_rows(&trajectories, &config)?;
    let skipped = results.len() - ok.len();
    if skipped > 0 {
        errln!("{skipped} rollouts failed and were left out of the export")?;
    }
    Ok(rows
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or(serde_json::Value::Null))
        .collect())
}

/// One row of the summary table.
fn table_row(
    mode: &str,
    category: &str,
    results: &[Result<Rollout, AgentError>],
    elapsed: f64,
) -> String {
    let ok: Vec<&Rollout> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let n = results.len();
    let correct = ok.iter().filter(|r| r.outcome.reward > 0.0).count();
    let errors = n - ok.len() + ok.iter().filter(|r| r.error.is_some()).count();
    let (sum, count) = ok
        .iter()
        .flat_map(|r| r.generations.iter().map(|g| g.context_tokens as f64))
        .fold((0.0, 0usize), |(s, k), x| (s + x, k + 1));
    let mean_ctx = if count == 0 { 0.0 } else { sum / count as f64 };
    let peak = ok.iter().map(|r| r.peak_context).max().unwrap_or(0);
    let summaries: usize = ok.iter().map(|r| r.trajectory.summaries()).sum();
    let calls: usize = ok.iter().map(|r| r.tool_calls).sum();
    let accuracy = if n == 0 {
        0.0
    } else {
        correct as f64 / n as f64
    };
    let rate = n as f64 / elapsed.max(1e-9);
    format!(
        "{category:<28} {mode:<16} {n:>8} {accuracy:>9.3} {mean_ctx:>12.1} {peak:>10} \
         {summaries:>10} {calls:>11} {errors:>7} {rate:>11.2}"
    )
}
