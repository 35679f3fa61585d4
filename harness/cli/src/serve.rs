//! `supo serve --port P [--checkpoint FILE]`: the built-in policy on the OpenAI-compatible
//! chat-completions API ([`supo_serve`]). The first line on standard output is
//! `listening on http://ADDR/v1` (with the real port when `--port 0` asks for a free one).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::CliError;
use supo_core::model::TokenModel;
use supo_serve::{router, ServeOptions};
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
}

/// Runs `supo serve` until interrupted.
pub fn run(args: &ServeArgs) -> Result<(), CliError> {
    let model = match &args.checkpoint {
        Some(path) => BuiltinModel::from_checkpoint(path)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?,
        None => BuiltinModel::untrained(args.seed),
    };
    let model: Arc<dyn TokenModel> = Arc::new(model);
    let app = router(
        model.clone(),
        ServeOptions {
            truncate_prompt: args.truncate_prompt,
        },
    );
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
            "listening on http://{addr}/v1 (model {}, context {} tokens)",
            model.name(),
            model.max_context()
        )?;
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| CliError::Failure(format!("the server failed: {e}")))
    })
}
