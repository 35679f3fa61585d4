//! BFCL multi-turn compatibility: Python values and literals, BFCL's call strings, CPython's
//! random numbers, the eight stateful tool environments, the replay of call sequences
//! (`supo bfcl replay`) and BFCL's multi-turn checker. BFCL's data and Python reference are a
//! run-time dependency (the `bfcl-eval` package, see [`locate`]), never copied here.

pub mod apis;
pub mod checker;
pub mod env;
pub mod locate;
pub mod parse;
pub mod pyrandom;
pub mod replay;
pub mod value;
