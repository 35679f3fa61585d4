//! The official `openai` Python SDK (pinned by `scripts/install-gateway.sh`), with strict
//! response validation, against a real `supo serve`: every case of `openai_sdk_cases.py`
//! (models, errors and their `param`, `max_tokens` checks, empty messages, `top_logprobs`,
//! `stop`, `tool_choice`, content parts, the `developer` role, unknown models, served names,
//! a 10 MB body, 404 and 405 bodies, 64-bit seeds, `n`, streaming with usage, and vLLM's
//! `/v1/completions` with text or token-id prompts, log-probs and `echo`). Skips, by name,
//! without python3 or the SDK; `SUPO_REQUIRE_GATEWAY=1` makes that a failure.

mod agent_common;

use std::process::{Command, Stdio};

use agent_common::{python_deps, wait_bounded, Server};

#[test]
fn the_official_sdk_passes_every_case() {
    let Some(sdk) = python_deps("the_official_sdk_passes_every_case", "openai") else {
        return;
    };
    let server = Server::start(&["--served-model-name", "supo-builtin", "alias-b"]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_sdk_cases.py");
    let child = Command::new("python3")
        .arg(&script)
        .arg(&server.base_url)
        .env("PYTHONPATH", &sdk)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let out = wait_bounded(child, 300);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "the SDK cases failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
