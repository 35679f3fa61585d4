//! `supo serve --port P [--checkpoint FILE | --gguf FILE]`: the built-in policy, or a real
//! GGUF model ([`supo_gguf`]) with its own chat template and tool calls, on the
//! OpenAI-compatible API ([`supo_serve`]). The first line on standard output is
//! `listening on http://ADDR/v1` (with the real port when `--port 0` asks for a free one).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::CliError;
use supo_agent::http::ChatMessage;
use supo_core::model::TokenModel;
use supo_gguf::{GgufModel, GgufOptions};
use supo_serve::{router, router_with_chat, serve, ChatFormat, Limits, LogprobsMode, ServeOptions};
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
    #[arg(long, conflicts_with = "gguf")]
    pub checkpoint: Option<PathBuf>,
    /// Serve a GGUF model file instead of the built-in one (llama or qwen2 architecture), with
    /// the chat template of its metadata; replies to requests with `tools` are read for JSON
    /// calls (`<tool_call>` blocks, or a call object), returned as `tool_calls`.
    #[arg(long, value_name = "FILE")]
    pub gguf: Option<PathBuf>,
    /// Threads of the GGUF model's matrix kernels (default: RAYON_NUM_THREADS, else the
    /// physical cores).
    #[arg(long, requires = "gguf")]
    pub threads: Option<usize>,
    /// The GGUF model's context in tokens (prompt plus generation); default: its trained
    /// context, at most 8192.
    #[arg(long, requires = "gguf")]
    pub ctx: Option<usize>,
    /// Conversations whose key/value caches the GGUF model keeps, so that a prompt extending
    /// one (an agent's next turn) is fed from where it parts (default 4; 0: off, so that a
    /// request's numbers never depend on earlier ones: 8-bit activations round differently
    /// when a prompt is fed in two parts).
    #[arg(long, requires = "gguf", value_name = "N")]
    pub prefix_slots: Option<usize>,
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

/// A GGUF model's chat template as the server's chat format.
struct GgufChat(Arc<GgufModel>);

impl ChatFormat for GgufChat {
    fn render(
        &self,
        messages: &[ChatMessage],
        tools: &[serde_json::Value],
        add_generation_prompt: bool,
        continue_final_message: bool,
    ) -> Result<String, String> {
        let template = self.0.chat_template().ok_or_else(|| {
            format!(
                "the model {} has no chat template (tokenizer.chat_template)",
                self.0.name()
            )
        })?;
        let messages: Vec<serde_json::Value> = messages.iter().map(template_message).collect();
        template
            .render(
                &messages,
                tools,
                add_generation_prompt,
                continue_final_message,
            )
            .map_err(|e| e.to_string())
    }

    fn reads_tool_calls(&self) -> bool {
        true
    }
}

/// A message as chat templates read it (`transformers`' shape): a call's `arguments` as an
/// object when they are a JSON text holding one.
fn template_message(m: &ChatMessage) -> serde_json::Value {
    let mut v = serde_json::json!({"role": m.role, "content": m.content});
    if !m.tool_calls.is_empty() {
        let calls: Vec<serde_json::Value> = m
            .tool_calls
            .iter()
            .map(|c| {
                let arguments = match &c.function.arguments {
                    serde_json::Value::String(s) => {
                        serde_json::from_str(s).unwrap_or_else(|_| s.clone().into())
                    }
                    serde_json::Value::Null => serde_json::json!({}),
                    a => a.clone(),
                };
                serde_json::json!({"id": c.id, "type": "function",
                    "function": {"name": c.function.name, "arguments": arguments}})
            })
            .collect();
        v["tool_calls"] = calls.into();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = id.clone().into();
    }
    v
}

/// Runs `supo serve` until interrupted.
pub fn run(args: &ServeArgs) -> Result<(), CliError> {
    let (model, chat): (Arc<dyn TokenModel>, Option<Arc<dyn ChatFormat>>) = match &args.gguf {
        Some(path) => {
            let options = GgufOptions {
                context: args.ctx,
                threads: args.threads,
                prefix_slots: args.prefix_slots,
                ..Default::default()
            };
            let model = Arc::new(
                GgufModel::open(path, &options).map_err(|e| CliError::Input(e.to_string()))?,
            );
            (model.clone(), Some(Arc::new(GgufChat(model))))
        }
        None => {
            let model = match &args.checkpoint {
                Some(path) => BuiltinModel::from_checkpoint(path)
                    .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?,
                None => BuiltinModel::untrained(args.seed),
            };
            (Arc::new(model), None)
        }
    };
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
    let app = match chat {
        Some(chat) => router_with_chat(model.clone(), options, chat),
        None => router(model.clone(), options),
    };
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
