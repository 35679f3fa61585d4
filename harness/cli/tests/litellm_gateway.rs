//! A real third-party gateway in front of `supo serve`: LiteLLM's proxy (pinned by
//! `scripts/install-gateway.sh`, `hosted_vllm/` provider, `/tokenize` forwarded by
//! `general_settings.pass_through_endpoints`). `supo bfcl eval --export` and `supo rollout
//! --export` through it write byte-identical files to the direct runs; a `--tokenize-url` to
//! another pass-through route works the same; a run whose every rollout fails exits non-zero
//! with the first error. Skips, by name, without python3, LiteLLM or BFCL's data;
//! `SUPO_REQUIRE_GATEWAY=1` makes a missing LiteLLM a failure.

mod agent_common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agent_common::{bfcl_available, python_deps, Server};

const KEY: &str = "sk-supo-test";

/// A running LiteLLM proxy, killed when dropped.
struct Gateway {
    child: Child,
    base_url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One GET on loopback: the status, or `None` when nothing answers.
fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn start_gateway(deps: &Path, server: &Server, dir: &Path) -> Gateway {
    let backend = server.base_url.trim_end_matches("/v1");
    let config = format!(
        "model_list:\n  - model_name: supo-builtin\n    litellm_params:\n      model: hosted_vllm/supo-builtin\n      api_base: {backend}/v1\n      api_key: none\ngeneral_settings:\n  pass_through_endpoints:\n    - path: /tokenize\n      target: {backend}/tokenize\n    - path: /elsewhere/tokenize\n      target: {backend}/tokenize\n"
    );
    std::fs::write(dir.join("litellm.yaml"), config).unwrap();
    let port = free_port();
    let log = dir.join("litellm.log");
    let child = Command::new("python3")
        .arg(deps.join("bin/litellm"))
        .args(["--config", "litellm.yaml", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .current_dir(dir)
        .env("PYTHONPATH", deps)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("LITELLM_MASTER_KEY", KEY)
        .env("LITELLM_TELEMETRY", "False")
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("litellm.err")).unwrap(),
        ))
        .spawn()
        .expect("the LiteLLM proxy starts");
    let mut gw = Gateway {
        child,
        base_url: format!("http://127.0.0.1:{port}/v1"),
    };
    // Bounded: at most 240 polls of 0.5 s.
    for _ in 0..240 {
        if get_status(port, "/health/liveliness") == Some(200) {
            return gw;
        }
        if let Ok(Some(status)) = gw.child.try_wait() {
            panic!(
                "the LiteLLM proxy exited ({status}):\n{}",
                std::fs::read_to_string(dir.join("litellm.err")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let err = std::fs::read_to_string(dir.join("litellm.err")).unwrap_or_default();
    let _ = gw.child.kill();
    panic!("the LiteLLM proxy did not become ready:\n{err}");
}

/// Runs `supo ARGS` (bounded) and returns its standard error; fails the test unless it exits
/// as `ok` says.
fn supo(args: &[&str], ok: bool) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_supo"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = agent_common::wait_bounded(child, 300);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.success(),
        ok,
        "supo {args:?}:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

#[test]
fn runs_through_litellm_are_byte_identical_to_direct_runs() {
    const NAME: &str = "runs_through_litellm_are_byte_identical_to_direct_runs";
    let Some(deps) = python_deps(NAME, "litellm") else {
        return;
    };
    if !bfcl_available(NAME) {
        return;
    }
    let server = Server::start(&["--truncate-prompt"]);
    let dir = std::env::temp_dir().join(format!("supo-litellm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gw = start_gateway(&deps, &server, &dir);
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let ids = "multi_turn_base_0,multi_turn_base_1,multi_turn_base_2";
    let eval = |base: &str, tag: &str, extra: &[&str]| {
        let (verdicts, rows) = (
            p(&format!("{tag}-verdicts.jsonl")),
            p(&format!("{tag}-rows.jsonl")),
        );
        let mut args = vec![
            "bfcl",
            "eval",
            "--base-url",
            base,
            "--model",
            "supo-builtin",
            "--ids",
            ids,
            "--working-context",
            "200",
            "--threshold",
            "150",
            "--max-summaries",
            "2",
            "--max-tokens",
            "16",
            "--tool-format",
            "python",
            "--temperature",
            "1.0",
            "--api-key",
            KEY,
            "--retries",
            "0",
            "--output",
            &verdicts,
            "--export",
            &rows,
        ];
        args.extend_from_slice(extra);
        supo(&args, true);
        (
            std::fs::read(&verdicts).unwrap(),
            std::fs::read(&rows).unwrap(),
        )
    };
    let direct = eval(&server.base_url, "direct", &[]);
    let through = eval(&gw.base_url, "litellm", &[]);
    assert!(!direct.1.is_empty(), "the run exported no rows");
    assert!(direct.0 == through.0, "the verdicts differ through LiteLLM");
    assert!(
        direct.1 == through.1,
        "the training rows differ through LiteLLM"
    );
    // /tokenize at another pass-through route, named with --tokenize-url.
    let elsewhere = format!("{}/elsewhere/tokenize", gw.base_url.trim_end_matches("/v1"));
    let moved = eval(&gw.base_url, "moved", &["--tokenize-url", &elsewhere]);
    assert!(moved == direct, "the run with --tokenize-url differs");

    let rollout = |base: &str, tag: &str| {
        let rows = p(&format!("{tag}-rollout.jsonl"));
        supo(
            &[
                "rollout",
                "--base-url",
                base,
                "--model",
                "supo-builtin",
                "--ids",
                "multi_turn_base_0,multi_turn_base_1",
                "--samples",
                "2",
                "--max-tokens",
                "8",
                "--tool-format",
                "hermes",
                "--temperature",
                "1.0",
                "--api-key",
                KEY,
                "--export",
                &rows,
            ],
            true,
        );
        std::fs::read(&rows).unwrap()
    };
    let direct = rollout(&server.base_url, "direct");
    assert!(!direct.is_empty());
    assert!(
        direct == rollout(&gw.base_url, "litellm"),
        "supo rollout --export differs through LiteLLM"
    );

    // A missing route: every rollout fails, the run exits non-zero with the first error.
    let missing = format!("{}/nothing/tokenize", gw.base_url.trim_end_matches("/v1"));
    let err = supo(
        &[
            "bfcl",
            "eval",
            "--base-url",
            &gw.base_url,
            "--model",
            "supo-builtin",
            "--ids",
            "multi_turn_base_0",
            "--api-key",
            KEY,
            "--retries",
            "0",
            "--tokenize-url",
            &missing,
            "--output",
            &p("missing.jsonl"),
        ],
        false,
    );
    assert!(
        err.contains("every rollout failed") && err.contains("does not exist"),
        "{err}"
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}
