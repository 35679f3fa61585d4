//! Cross-crate test suites of supo-rs, and the test helpers every suite of the workspace shares
//! (the backends' own suites take this crate as a dev-dependency).
//!
//! * [`parity`] — the one backend-parity suite: every [`supo_core::Backend`] is compared with
//!   [`supo_core::CpuBackend`] on the same random inputs, through the [`parity_suite!`] macro.
//! * [`compare`], [`data`], [`rng`] — comparisons with the reference, test inputs, generators;
//!   [`backend_or_skip`] — a backend, or a visible skip.
//! * `tests/` — property suites of the SUPO math (segment factorisation, advantages, finite
//!   differences, the context manager) and the golden tests of `supo loss`.

#![warn(missing_docs)]

// Skip notices go straight to stderr: the test harness captures `eprintln!`, and a skip
// must be visible in CI logs.
use std::io::Write as _;

pub mod compare;
pub mod data;
pub mod parity;
pub mod rng;

/// Returns the backend, or `None` after printing that `what` is skipped and why; panics (fails
/// the test) instead of skipping when the environment variable `require_env` is `1`.
pub fn backend_or_skip<B>(what: &str, made: supo_core::Result<B>, require_env: &str) -> Option<B> {
    match made {
        Ok(b) => Some(b),
        Err(e) if std::env::var(require_env).as_deref() == Ok("1") => {
            panic!("{what}: backend required ({require_env}=1) but unavailable: {e}")
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{what} skipped: {e}");
            None
        }
    }
}

/// The real language models of the test suites: the files scripts/test.sh puts in the folder
/// named by `SUPO_LLM_DIR`.
pub mod llm {
    use std::io::Write as _;
    use std::path::PathBuf;

    /// SmolLM2-135M-Instruct, Q4_1 (llama architecture, ChatML template).
    pub const SMOLLM2: &str = "smollm2-135m-instruct-q4_1.gguf";
    /// Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (qwen2 architecture, tools in its template).
    pub const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

    /// The path of model `file` in `SUPO_LLM_DIR`, or `None` after printing that `what` is
    /// skipped and why; panics (fails the test) instead when `SUPO_REQUIRE_LLM` is `1`.
    pub fn model_or_skip(what: &str, file: &str) -> Option<PathBuf> {
        let why = match std::env::var_os("SUPO_LLM_DIR") {
            None => "SUPO_LLM_DIR is not set".to_string(),
            Some(dir) => {
                let path = PathBuf::from(dir).join(file);
                if path.is_file() {
                    return Some(path);
                }
                format!("{} is missing", path.display())
            }
        };
        if std::env::var("SUPO_REQUIRE_LLM").as_deref() == Ok("1") {
            panic!("{what}: model {file} required (SUPO_REQUIRE_LLM=1) but {why}");
        }
        let _ = writeln!(std::io::stderr(), "{what} skipped: {why}");
        None
    }
}
