//! BFCL multi-turn compatibility: Python values and literals, BFCL's call strings, CPython's
//! random numbers, the eight stateful tool environments and the replay of call sequences.

pub mod apis;
pub mod env;
pub mod locate;
pub mod parse;
pub mod pyrandom;
pub mod replay;
pub mod value;
