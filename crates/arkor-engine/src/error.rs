//! The engine's error type.
//!
//! Every variant names what failed and where (file, field, expected vs got) so that the
//! CLI and the backend can show it to a user without extra context.

use std::path::PathBuf;

/// Result alias for engine operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing, e.g. "failed to read".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A JSON or TOML file could not be parsed or has a wrong field.
    #[error("invalid {path}: {message}")]
    InvalidFile {
        /// The file that was rejected.
        path: PathBuf,
        /// What was wrong, naming the field.
        message: String,
    },

    /// A model directory is missing a file or holds an architecture we do not support.
    #[error("model {path}: {message}")]
    Model {
        /// The model directory.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },

    /// A GGUF file is unreadable, truncated, or holds something arkor cannot import.
    #[error("gguf {path}: {message}")]
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// What was wrong, naming the metadata key or tensor.
        message: String,
    },

    /// A tensor in a weights or adapter file has the wrong name or shape.
    #[error("{path}: tensor {name}: {message}")]
    Tensor {
        /// The safetensors file.
        path: PathBuf,
        /// The tensor name inside it.
        name: String,
        /// What was wrong, e.g. expected vs got shape.
        message: String,
    },

    /// A configuration value is out of range or inconsistent.
    #[error("invalid config field `{field}`: {message}")]
    Config {
        /// The snake_case field name as the user wrote it.
        field: String,
        /// What was expected and what was given.
        message: String,
    },

    /// A response format, regex, choice list or grammar is invalid, or a constrained
    /// reply could not go on.
    #[error("constrained decoding: {0}")]
    Constraint(String),

    /// The dataset could not be read or turned into training examples.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),

    /// The tokenizer or chat template failed.
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),

    /// Training produced a non-finite loss.
    #[error("training diverged at step {step}: loss is {loss}; lower the learning rate")]
    Diverged {
        /// The optimiser step at which it happened.
        step: usize,
        /// The offending loss value.
        loss: f32,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io { action, path: path.into(), source }
    }

    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config { field: field.into(), message: message.into() }
    }
}
