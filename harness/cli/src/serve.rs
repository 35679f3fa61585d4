//! `supo serve --port P [--checkpoint FILE]`: the built-in policy on the OpenAI-compatible API
//! ([`supo_serve`]). The first line on standard output is `listening on http://ADDR/v1` (with
//! the real port when `--port 0` asks for a free one).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::CliError;
use supo_core::model::TokenModel;
use supo_serve::{router, serve, Limits, LogprobsMode, ServeOptions};
use supo_train::builtin::BuiltinModel;

/// Arguments of `supo serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The port (0: any free port, printed on the first line).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// A checkpoint of the built-in model (`supo train`); without it, random weights.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// The seed of the random weights when no checkpoint is given.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Feed the model only the end of a prompt longer than its context instead of rejecting
    /// the request (the built-in model attends to few positions).
    #[arg(long)]
    pub truncate_prompt: bool,
    /// The names the model answers to (several allowed, the first is reported, as vLLM's
    /// `--served-model-name`); a request for any other is a 404. Default: the model's name.
    #[arg(long, num_args = 1..)]
    pub served_model_name: Vec<String>,
    /// Which log-probs are returned: `raw_logprobs` (vLLM's default: before the temperature)
    /// or `processed_logprobs` (at the request's temperature, what was sampled from).
    #[arg(long, default_value = "raw_logprobs", value_parser = crate::named::<LogprobsMode>(&LogprobsMode::NAMES))]
    pub logprobs_mode: LogprobsMode,
    /// Seconds a client may take to send a request's header (also while a connection waits
    /// for its next request).
    #[arg(long, default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Seconds a client may take to send a request's body (then 408).
    #[arg(long, default_value_t = 30.0)]
    pub body_timeout: f64,
    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, default_value_t = 5.0)]
    pub keep_alive_timeout: f64,
    /// Requests handled at once; one more is answered 429.
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
    /// The largest request body in bytes (then 413).
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Connections open at once; further clients wait to be accepted.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
}

/// Seconds as a duration, refusing what is not a positive finite number.
fn seconds(flag: &str, s: f64) -> Result<std::time::Duration, CliError> {
    if s.is_finite() && s > 0.0 && s < 1e9 {
        Ok(std::time::Duration::from_secs_f64(s))
    } else {
        Err(CliError::Input(format!(
            "--{flag} must be a positive number of seconds, not {s}"
        )))
    }
}

/// Runs `supo serve` until interrupted.
pub fn run(args: &ServeArgs) -> Result<(), CliError> {
    let model = match &args.checkpoint {
        Some(path) => BuiltinModel::from_checkpoint(path)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?,
        None => BuiltinModel::untrained(args.seed),
    };
    let model: Arc<dyn TokenModel> = Arc::new(model);
    if args.max_in_flight == 0 || args.max_body_bytes == 0 || args.max_connections == 0 {
        return Err(CliError::Input(
            "--max-in-flight, --max-body-bytes and --max-connections must be > 0".into(),
        ));
    }
    let limits = Limits {
        header_timeout: seconds("header-timeout", args.header_timeout)?,
        body_timeout: seconds("body-timeout", args.body_timeout)?,
        idle_timeout: seconds("keep-alive-timeout", args.keep_alive_timeout)?,
        max_in_flight: args.max_in_flight,
        max_body_bytes: args.max_body_bytes,
        max_connections: args.max_connections,
    };
    let options = ServeOptions {
        truncate_prompt: args.truncate_prompt,
        served_model_names: args.served_model_name.clone(),
        logprobs_mode: args.logprobs_mode,
        max_in_flight: limits.max_in_flight,
        max_body_bytes: limits.max_body_bytes,
        body_timeout: limits.body_timeout,
    };
    let name = options
        .served_model_names
        .first()
        .cloned()
        .unwrap_or_else(|| model.name().to_string());
    let app = router(model.clone(), options);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failure(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .map_err(|e| {
                CliError::Failure(format!("cannot listen on {}:{}: {e}", args.host, args.port))
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::Failure(format!("cannot read the bound address: {e}")))?;
        // The caller reads the address from this line: without a reader, there is no server.
        outln!(
            "listening on http://{addr}/v1 (model {name}, context {} tokens, {})",
            model.max_context(),
            args.logprobs_mode.name()
        )?;
        serve(listener, app, limits, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CliError::Failure(format!("the server failed: {e}")))
    })
}
