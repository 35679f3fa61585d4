//! supo harness
