//! # supo-harness
//!
//! Everything around the core that touches the outside world: the `supo` command-line tool and
//! its subcommands ([`cli`]); the BFCL-compatible multi-turn tool environments, their replay and
//! BFCL's multi-turn checker ([`bfcl`]); FunReason-MT data synthesis ([`synth`]); agent rollouts
//! with summarization-based context management over OpenAI-compatible servers, BFCL evaluation
//! and training-row export ([`agent`]); policies — the HTTP client, `supo serve` and the
//! built-in transformer ([`policy`]); the ledger, a long-horizon task beyond the working
//! context ([`ledger`]); and SUPO training against the GRPO baselines on the CPU ([`train`]).

#![warn(missing_docs)]

pub mod agent;
pub mod bfcl;
pub mod cli;
pub mod io;
pub mod ledger;
pub mod policy;
pub mod synth;
pub mod train;
