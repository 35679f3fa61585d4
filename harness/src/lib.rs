//! # supo-harness
//!
//! Everything around the core that touches the outside world: the `supo` command-line tool and
//! its subcommands ([`cli`]), the BFCL-compatible multi-turn tool environments, their replay and
//! BFCL's multi-turn checker ([`bfcl`]), FunReason-MT data synthesis ([`synth`]), and — as
//! their issues land — agent rollouts over OpenAI-compatible LLM servers, the built-in
//! trainable policy, SUPO training and BFCL evaluation.

#![warn(missing_docs)]

pub mod agent;
pub mod bfcl;
pub mod cli;
pub mod io;
pub mod ledger;
pub mod policy;
pub mod synth;
pub mod train;
