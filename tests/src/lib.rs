//! Cross-crate test suites of supo-rs.
