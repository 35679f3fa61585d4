//! `supo bench generate`: prompt and generation speed of `supo serve --gguf FILE` against
//! llama.cpp's `llama-server` on the same GGUF file, the same threads and the same prompt, in
//! the same run.
//!
//! Both servers are started by the command (this `supo` binary, and the `--llama-server`
//! binary), on free local ports, with `--threads` threads each; they are idle while the other
//! one is measured, and the measurements alternate between them so that a change of the
//! machine's load falls on both. The prompt is a fixed text, tokenized by `supo serve`, cut to
//! `--prompt-tokens` ids, and sent to both as token ids to `/v1/completions`, greedy, ignoring
//! the end token, with both servers' prompt caches off:
//!
//! - prompt tokens/s: the prompt's length over the time of a request for one token;
//! - generated tokens/s: the tokens beyond the first over the extra time of a request for
//!   `--generate` tokens.
//!
//! Each side prints one JSON line (the medians over `--repeats` rounds, and every round), then
//! one line with the ratios supo / llama.cpp.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};

use super::median;
use crate::CliError;

/// Arguments of `supo bench generate`.
#[derive(Debug, Args)]
pub struct GenerateBenchArgs {
    /// The GGUF model both servers load.
    #[arg(long)]
    pub gguf: PathBuf,
    /// llama.cpp's `llama-server` binary (`scripts/install-llama-cpp.sh` builds one).
    #[arg(long)]
    pub llama_server: PathBuf,
    /// Threads of each server.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// The context size of each server, in tokens.
    #[arg(long, default_value_t = 4096)]
    pub ctx: usize,
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 512)]
    pub prompt_tokens: usize,
    /// Tokens generated per timed generation.
    #[arg(long, default_value_t = 64)]
    pub generate: usize,
    /// Timed rounds per side (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
}

/// The JSON line of one side.
#[derive(Debug, Serialize)]
pub struct GenerateBenchSide {
    /// `supo` or `llama.cpp`.
    pub server: &'static str,
    /// The model file.
    pub gguf: String,
    /// Threads.
    pub threads: usize,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Tokens of each timed generation (as the server counted them).
    pub generated_tokens: usize,
    /// Median prompt tokens per second.
    pub prompt_tokens_per_s: f64,
    /// Median generated tokens per second (the first token left out).
    pub generated_tokens_per_s: f64,
    /// Prompt tokens per second of every round.
    pub prompt_runs: Vec<f64>,
    /// Generated tokens per second of every round.
    pub generate_runs: Vec<f64>,
}

/// The JSON line of the ratios.
#[derive(Debug, Serialize)]
pub struct GenerateBenchRatio {
    /// Always `supo/llama.cpp`.
    pub ratio: &'static str,
    /// Prompt tokens/s of supo over llama.cpp's.
    pub prompt: f64,
    /// Generated tokens/s of supo over llama.cpp's.
    pub generate: f64,
}

/// The model name both servers are asked for (llama-server answers to any).
const SERVED: &str = "bench";

/// A server process, killed when dropped.
struct Spawned {
    child: Child,
    base_url: String,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free local port (bound and released).
fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| CliError::Failure(format!("no free local port: {e}")))
}

/// `supo serve --gguf` from this very binary; its first line names the address.
fn spawn_supo(args: &GenerateBenchArgs) -> Result<Spawned, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Failure(format!("cannot find the supo binary: {e}")))?;
    let mut child = Command::new(exe)
        .args(["serve", "--port", "0", "--gguf"])
        .arg(&args.gguf)
        .args(["--threads", &args.threads.to_string()])
        .args(["--ctx", &args.ctx.to_string()])
        .args(["--served-model-name", SERVED])
        // Each request feeds the whole prompt, as llama-server's with `cache_prompt` off.
        .args(["--prefix-slots", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CliError::Failure(format!("cannot start supo serve: {e}")))?;
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(str::to_string);
    match (read, url) {
        (Ok(_), Some(base_url)) => Ok(Spawned { child, base_url }),
        _ => {
            let _ = child.kill();
            let status = child.wait().ok();
            Err(CliError::Failure(format!(
                "supo serve --gguf {} did not start ({status:?}; its error is above)",
                args.gguf.display()
            )))
        }
    }
}

/// `llama-server` on a free port, once `/health` says it is ready.
async fn spawn_llama(
    args: &GenerateBenchArgs,
    client: &reqwest::Client,
) -> Result<Spawned, CliError> {
    let port = free_port()?;
    let child = Command::new(&args.llama_server)
        .arg("--model")
        .arg(&args.gguf)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--threads", &args.threads.to_string()])
        .args(["--threads-batch", &args.threads.to_string()])
        .args(["--ctx-size", &args.ctx.to_string(), "--parallel", "1"])
        .arg("--no-ui")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            CliError::Input(format!("cannot start {}: {e}", args.llama_server.display()))
        })?;
    let mut server = Spawned {
        child,
        base_url: format!("http://127.0.0.1:{port}/v1"),
    };
    let health = format!("http://127.0.0.1:{port}/health");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(CliError::Failure(format!(
                "{} exited ({status}) before it was ready",
                args.llama_server.display()
            )));
        }
        if let Ok(r) = client.get(&health).send().await {
            if r.status().is_success() {
                return Ok(server);
            }
        }
        if Instant::now() > deadline {
            return Err(CliError::Failure(format!(
                "{} was not ready within 300 s",
                args.llama_server.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// POSTs JSON and reads a JSON answer; anything else is a failure naming the URL.
async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<Value, CliError> {
    let answer = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| CliError::Failure(format!("{url}: {e}")))?;
    let status = answer.status();
    let text = answer
        .text()
        .await
        .map_err(|e| CliError::Failure(format!("{url}: {e}")))?;
    if !status.is_success() {
        return Err(CliError::Failure(format!("{url}: {status}: {text}")));
    }
    serde_json::from_str(&text)
        .map_err(|e| CliError::Failure(format!("{url} answered with no JSON ({e}): {text}")))
}

/// The benchmark's prompt: varied English and code, long enough for any `--prompt-tokens` a
/// context allows (it is repeated as needed before being cut).
fn prompt_text() -> String {
    let paragraph = "The agent keeps a working context of a few thousand tokens. When a tool \
        result would push it past the threshold, it writes a summary of what it has done so \
        far, and the next segment starts from the task and that summary.\n\
        def move(fs, source, destination):\n    if source not in fs.cwd:\n        \
        return {\"error\": f\"mv: cannot move '{source}': No such file\"}\n    \
        fs.cwd[destination] = fs.cwd.pop(source)\n    return {\"result\": destination}\n";
    paragraph.repeat(200)
}

/// The prompt's first `n` token ids under `supo serve`'s tokenizer.
async fn prompt_ids(
    client: &reqwest::Client,
    supo: &Spawned,
    n: usize,
) -> Result<Vec<u32>, CliError> {
    let root = supo.base_url.trim_end_matches("/v1");
    let v = post(
        client,
        &format!("{root}/tokenize"),
        &json!({"prompt": prompt_text(), "add_special_tokens": false}),
    )
    .await?;
    let ids: Vec<u32> = v["tokens"]
        .as_array()
        .ok_or_else(|| CliError::Failure(format!("/tokenize gave no tokens: {v}")))?
        .iter()
        .filter_map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
        .collect();
    if ids.len() < n {
        return Err(CliError::Input(format!(
            "--prompt-tokens {n} is longer than the benchmark's prompt ({} tokens)",
            ids.len()
        )));
    }
    Ok(ids[..n].to_vec())
}

/// Seconds of one greedy completion of `max_tokens` tokens, and the tokens it generated.
async fn timed_completion(
    client: &reqwest::Client,
    server: &Spawned,
    prompt: &[u32],
    max_tokens: usize,
) -> Result<(f64, usize), CliError> {
    let body = json!({"model": SERVED, "prompt": prompt, "max_tokens": max_tokens,
                      "temperature": 0.0, "ignore_eos": true, "cache_prompt": false});
    let url = format!("{}/completions", server.base_url);
    let t0 = Instant::now();
    let v = post(client, &url, &body).await?;
    let dt = t0.elapsed().as_secs_f64();
    let generated = v["usage"]["completion_tokens"]
        .as_u64()
        .ok_or_else(|| CliError::Failure(format!("{url} gave no usage: {v}")))?;
    Ok((dt, generated as usize))
}

/// One side's rounds.
#[derive(Default)]
struct Rounds {
    prompt: Vec<f64>,
    generate: Vec<f64>,
    generated: usize,
}

/// One round on `server`: a one-token request (the prompt's time), then a `generate`-token one.
async fn round(
    client: &reqwest::Client,
    server: &Spawned,
    prompt: &[u32],
    generate: usize,
    rounds: &mut Rounds,
) -> Result<(), CliError> {
    let (t1, _) = timed_completion(client, server, prompt, 1).await?;
    let (t2, n) = timed_completion(client, server, prompt, generate).await?;
    if n < 2 || t2 <= t1 {
        return Err(CliError::Failure(format!(
            "{} generated {n} tokens in {t2:.3} s after a prompt of {t1:.3} s: nothing to time",
            server.base_url
        )));
    }
    rounds.prompt.push(prompt.len() as f64 / t1);
    rounds.generate.push((n - 1) as f64 / (t2 - t1));
    rounds.generated = n;
    Ok(())
}

/// Runs `supo bench generate`.
pub fn run(args: &GenerateBenchArgs) -> Result<(), CliError> {
    if args.threads == 0 || args.repeats == 0 || args.prompt_tokens == 0 || args.generate < 2 {
        return Err(CliError::Input(
            "--threads, --repeats and --prompt-tokens must be > 0, --generate at least 2".into(),
        ));
    }
    if args.prompt_tokens + args.generate > args.ctx {
        return Err(CliError::Input(format!(
            "--prompt-tokens {} + --generate {} do not fit in --ctx {}",
            args.prompt_tokens, args.generate, args.ctx
        )));
    }
    if !args.gguf.is_file() {
        return Err(CliError::Input(format!(
            "{} is not a file",
            args.gguf.display()
        )));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failure(format!("cannot start the async runtime: {e}")))?;
    let (supo, llama) = runtime.block_on(measure(args))?;
    let side = |server, r: Rounds| GenerateBenchSide {
        server,
        gguf: args.gguf.display().to_string(),
        threads: args.threads,
        prompt_tokens: args.prompt_tokens,
        generated_tokens: r.generated,
        prompt_tokens_per_s: median(&r.prompt),
        generated_tokens_per_s: median(&r.generate),
        prompt_runs: r.prompt,
        generate_runs: r.generate,
    };
    let (supo, llama) = (side("supo", supo), side("llama.cpp", llama));
    let ratio = GenerateBenchRatio {
        ratio: "supo/llama.cpp",
        prompt: supo.prompt_tokens_per_s / llama.prompt_tokens_per_s,
        generate: supo.generated_tokens_per_s / llama.generated_tokens_per_s,
    };
    for s in [&supo, &llama] {
        errln!(
            "{}: prompt {:.1} tokens/s, generation {:.2} tokens/s ({} threads)",
            s.server,
            s.prompt_tokens_per_s,
            s.generated_tokens_per_s,
            s.threads
        )?;
    }
    errln!(
        "supo / llama.cpp: prompt {:.2}x, generation {:.2}x",
        ratio.prompt,
        ratio.generate
    )?;
    outln!("{}", json_line(&supo)?)?;
    outln!("{}", json_line(&llama)?)?;
    outln!("{}", json_line(&ratio)?)?;
    Ok(())
}

fn json_line<T: Serialize>(v: &T) -> Result<String, CliError> {
    serde_json::to_string(v).map_err(|e| CliError::Failure(e.to_string()))
}

/// Starts both servers, warms each up once, then alternates rounds between them.
async fn measure(args: &GenerateBenchArgs) -> Result<(Rounds, Rounds), CliError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1800))
        .build()
        .map_err(|e| CliError::Failure(format!("cannot make an HTTP client: {e}")))?;
    let supo = spawn_supo(args)?;
    let llama = spawn_llama(args, &client).await?;
    let prompt = prompt_ids(&client, &supo, args.prompt_tokens).await?;
    // Warm-up (page in the weights, first allocations), untimed.
    for server in [&supo, &llama] {
        timed_completion(&client, server, &prompt[..prompt.len().min(16)], 2).await?;
    }
    let (mut a, mut b) = (Rounds::default(), Rounds::default());
    for _ in 0..args.repeats {
        round(&client, &supo, &prompt, args.generate, &mut a).await?;
        round(&client, &llama, &prompt, args.generate, &mut b).await?;
    }
    Ok((a, b))
}
