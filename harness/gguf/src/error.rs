//! The crate's error: why a GGUF file cannot be opened or run, in one sentence.

use std::fmt;

use supo_core::model::ModelError;

/// A failure to open, tokenize for or run a GGUF model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<Error> for ModelError {
    fn from(e: Error) -> ModelError {
        ModelError(e.0)
    }
}

/// A candle error as ours.
pub(crate) fn model_error(e: candle_core::Error) -> Error {
    Error(format!("the model failed: {e}"))
}
