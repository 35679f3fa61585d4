//! # supo-bfcl
//!
//! The Berkeley Function-Calling Leaderboard's multi-turn world in Rust, for agents and data
//! pipelines that run BFCL's tools in-process. Used by `supo-agent` (call strings, the BFCL
//! environment adapter), `supo-synth` (synthesis on live instances) and `supo bfcl replay`.
//! It has no features and depends on neither `supo-core` nor any HTTP, async or GPU crate.
//!
//! What it holds — Python values and literals, BFCL's call strings, CPython's
//! random numbers, the eight stateful tool environments, the replay of call sequences
//! (`supo bfcl replay`) and BFCL's multi-turn checker. BFCL's data and Python reference are a
//! run-time dependency (the `bfcl-eval` package, see [`locate`]), never copied here.
//!
//! Replay an entry's calls and check them against its ground truth:
//!
//! ```
//! use supo_bfcl::replay::{replay, ReplayInput};
//!
//! let input: ReplayInput = serde_json::from_str(r#"{
//!     "id": "demo", "involved_classes": ["MathAPI"], "initial_config": {},
//!     "turns": [["add(a=2, b=3)", "square_root(number=16, precision=2)"]]}"#).unwrap();
//! let out = replay(&input).unwrap();
//! assert_eq!(out.results[0][0], r#"{"result": 5}"#);
//! ```
//!
//! `examples/replay_and_check.rs` replays a real BFCL entry and runs the multi-turn checker on
//! it (`cargo run -p supo-bfcl --example replay_and_check`, with `bfcl-eval` installed).
#![warn(missing_docs)]

pub mod apis;
pub mod checker;
pub mod env;
pub mod locate;
pub mod parse;
pub mod pyrandom;
pub mod replay;
pub mod value;
