//! Synthesises FunReason-MT samples offline with the labelled template roles into a folder
//! (OpenAI chat, BFCL question and answer files, statistics); run again, it resumes.
//!
//! ```sh
//! export BFCL_EVAL_DIR=$(scripts/install-bfcl.sh target/pydeps/bfcl)
//! cargo run -p supo-synth --example template_samples [-- OUT_DIR SAMPLES]
//! ```

use std::path::PathBuf;

use supo_synth::output::OutputDir;
use supo_synth::roles::TemplateModel;
use supo_synth::{SynthOptions, Synthesizer};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(args.first().map_or("runs/synth-example", String::as_str));
    let samples: usize = args
        .get(1)
        .map_or(Ok(10), |s| s.parse())
        .map_err(|e| format!("SAMPLES: {e}"))?;
    let options = SynthOptions {
        seed: 7,
        rounds: 3,
        max_calls: 6,
        noise: 0.3,
        k_max: 3,
        miss_func: 0.1,
        miss_param: 0.1,
        attempts: 12,
        round_tries: 8,
    };
    // The scenarios are BFCL's multi_turn_base entries, read from the installed bfcl-eval.
    let synth = Synthesizer::from_bfcl(options)?;
    let mut dir = OutputDir::open(&out)?;
    synth.fill(&mut dir, samples, &mut TemplateModel, |n| {
        eprintln!("{n}/{samples} samples")
    })?;
    dir.write_reports(synth.graph())?;
    println!("{} samples in {}", dir.finished().len(), out.display());
    Ok(())
}
