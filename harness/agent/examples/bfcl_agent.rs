//! A small Rust agent: BFCL multi-turn entries against any OpenAI-compatible server, its working
//! context managed by SUPO's summarization rule, scored by BFCL's checker.
//!
//! ```sh
//! supo serve --port 8000 &          # or vLLM, SGLang, llama.cpp's server, …
//! cargo run -p supo-agent --example bfcl_agent -- http://127.0.0.1:8000/v1 MODEL [ENTRIES] [W]
//! ```
//!
//! `ENTRIES` (default 3) entries of `multi_turn_base` are run with a working context of `W`
//! tokens (default 4096, summary threshold 0.95·W, at most 3 summaries). BFCL's data comes from
//! the `bfcl-eval` Python package (`scripts/install-bfcl.sh DIR`, then `BFCL_EVAL_DIR`).

use supo_agent::bfcl::{load_category, BfclEnv};
use supo_agent::http::{HttpConfig, HttpPolicy};
use supo_agent::{run_all, AgentConfig, Job, ToolFormat};
use supo_bfcl::checker::MAXIMUM_STEP_LIMIT;
use supo_core::ContextConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(base_url), Some(model)) = (args.first(), args.get(1)) else {
        return Err("usage: bfcl_agent BASE_URL MODEL [ENTRIES] [WORKING_CONTEXT]".into());
    };
    let entries: usize = args.get(2).map_or(Ok(3), |s| s.parse())?;
    let working_context: usize = args.get(3).map_or(Ok(4096), |s| s.parse())?;

    // SUPO's rule: summarize when the context reaches L = 0.95·W, at most S = 3 times.
    let context = ContextConfig::new(working_context).with_max_summaries(3);
    let config = AgentConfig {
        context,
        max_tokens: 512,
        temperature: 0.0,
        tool_format: ToolFormat::Python,
        max_steps_per_turn: MAXIMUM_STEP_LIMIT,
    };
    let policy = HttpPolicy::new(HttpConfig::new(base_url, model))?;

    let mut jobs = Vec::new();
    for (i, entry) in load_category("multi_turn_base")?
        .into_iter()
        .take(entries)
        .enumerate()
    {
        jobs.push(Job {
            group: entry.id.clone(),
            env: BfclEnv::new(entry)?,
            seed: i as u64,
        });
    }
    let groups: Vec<String> = jobs.iter().map(|j| j.group.clone()).collect();
    let results = run_all(policy, config, jobs, 4, |_, _| {})?;

    for (id, result) in groups.iter().zip(results) {
        match result {
            Ok(r) => println!(
                "{id}: reward {:.0}, {} segments ({} summaries), {} tool calls, peak context {}, {:?}",
                r.outcome.reward,
                r.trajectory.segments.len(),
                r.trajectory.segments.len() - 1,
                r.tool_calls,
                r.peak_context,
                r.trajectory.finish,
            ),
            Err(e) => println!("{id}: failed: {e}"),
        }
    }
    Ok(())
}
