//! `supo synth`: FunReason-MT data synthesis on the BFCL environments (see
//! [`crate::synth`]). `--mode template` runs offline with the labelled template roles.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::CliError;
use supo_synth::llm::LlmModel;
use supo_synth::output::OutputDir;
use supo_synth::roles::{RoleModel, TemplateModel};
use supo_synth::{SynthOptions, Synthesizer};

/// Where the four roles come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Offline templates built from the sampled traces (labelled `"mode": "template"`).
    Template,
    /// An LLM behind an OpenAI-compatible chat-completions server (`--base-url`).
    Llm,
}

/// Arguments of `supo synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// The output folder; finished samples already there are kept and new ones appended.
    #[arg(long)]
    pub out: PathBuf,
    /// The number of samples the folder should hold.
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// The run's seed (same seed and options: byte-identical output).
    #[arg(long, default_value_t = 7)]
    pub seed: i64,
    /// Where the four roles come from.
    #[arg(long, value_enum, default_value_t = Mode::Template)]
    pub mode: Mode,
    /// The OpenAI-compatible server of `--mode llm` (`http://127.0.0.1:8000/v1`).
    #[arg(long)]
    pub base_url: Option<String>,
    /// The model name sent to the server (`--mode llm`).
    #[arg(long, default_value = "default")]
    pub model: String,
    /// The most tokens of one role reply (`--mode llm`).
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: usize,
    /// The sampling temperature of the roles (`--mode llm`).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Rounds (target tools, user turns) per sample.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The most calls the sampler makes in one round.
    #[arg(long, default_value_t = 6)]
    pub max_calls: usize,
    /// Query noise in [0, 1]: distracting details in the queries.
    #[arg(long, default_value_t = 0.3)]
    pub noise: f64,
    /// K_max: reasoning attempts per round before it is rejected.
    #[arg(long, default_value_t = 3)]
    pub k_max: usize,
    /// Probability that a later round withholds its target tool (BFCL's missing function).
    #[arg(long, default_value_t = 0.1)]
    pub miss_func: f64,
    /// Probability that a later round's query lacks a parameter (BFCL's missing parameter).
    #[arg(long, default_value_t = 0.1)]
    pub miss_param: f64,
    /// Attempts (a new scenario each) at one sample before the run fails.
    #[arg(long, default_value_t = 12)]
    pub attempts: usize,
    /// Target tools tried for one round before a sample attempt is given up.
    #[arg(long, default_value_t = 8)]
    pub round_tries: usize,
}

/// Runs `supo synth`.
pub fn run(args: &SynthArgs) -> Result<(), CliError> {
    let options = SynthOptions {
        seed: args.seed,
        rounds: args.rounds,
        max_calls: args.max_calls,
        noise: args.noise,
        k_max: args.k_max,
        miss_func: args.miss_func,
        miss_param: args.miss_param,
        attempts: args.attempts,
        round_tries: args.round_tries,
    };
    options.validate().map_err(CliError::Input)?;
    let mut model: Box<dyn RoleModel> = match args.mode {
        Mode::Template => Box::new(TemplateModel),
        Mode::Llm => {
            let url = args
                .base_url
                .as_deref()
                .ok_or_else(|| CliError::Input("--mode llm needs --base-url".to_string()))?;
            if args.max_tokens == 0 {
                return Err(CliError::Input("--max-tokens must be at least 1".into()));
            }
            Box::new(
                LlmModel::new(
                    url,
                    &args.model,
                    args.seed,
                    args.max_tokens,
                    args.temperature,
                )
                .map_err(CliError::Input)?,
            )
        }
    };
    let synth = Synthesizer::from_bfcl(options.clone()).map_err(CliError::Input)?;
    let mut out = OutputDir::open(&args.out).map_err(CliError::Input)?;
    if let Some(first) = out.finished().first() {
        let m = &first["metadata"];
        let same_options = serde_json::from_value::<SynthOptions>(m["options"].clone())
            .is_ok_and(|o| o == options);
        if !same_options || m["mode"] != model.mode() {
            return Err(CliError::Input(format!(
                "{} holds samples made with other options ({} mode, {}); rerun with those or \
                 use another --out",
                args.out.display(),
                m["mode"],
                m["options"]
            )));
        }
    }
    let start = Instant::now();
    let done = out.finished().len();
    let bar = indicatif::ProgressBar::new(args.samples as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("synth {bar:40} {pos}/{len} samples {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(done.min(args.samples) as u64);
    synth
        .fill(&mut out, args.samples, model.as_mut(), |n| {
            bar.set_position(n as u64)
        })
        .map_err(CliError::Failure)?;
    bar.finish_and_clear();
    out.write_reports(synth.graph())
        .map_err(CliError::Failure)?;
    errln!(
        "supo synth: {} samples in {} ({} new, {:.1} s, {} mode)",
        out.finished().len(),
        args.out.display(),
        out.finished().len() - done.min(out.finished().len()),
        start.elapsed().as_secs_f64(),
        model.mode()
    )
}
