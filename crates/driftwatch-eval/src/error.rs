//! The crate's one error type: everything a scorer or parser can refuse, by name.

/// Why a scorer or a parser refused its input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// A line of a text input (CSV, `desc.txt`) could not be read. `line` counts from 1.
    #[error("line {line}: {message}")]
    Parse {
        /// 1-based line number in the text given to the parser.
        line: usize,
        /// What was wrong with it.
        message: String,
    },
    /// A timestamp that is not `YYYY-MM-DD HH:MM:SS` (optionally with a fraction of a second of
    /// whole milliseconds), or not a valid calendar time.
    #[error("timestamp {text:?}: {reason}")]
    Timestamp {
        /// The text as given.
        text: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A JSON input that is not valid JSON or not of the expected shape.
    #[error("JSON: {0}")]
    Json(String),
    /// A NAB file whose rows, scores or windows do not fit together. `file` is the file's
    /// `category/name` key.
    #[error("{file}: {message}")]
    NabFile {
        /// `category/name` of the file.
        file: String,
        /// What does not fit.
        message: String,
    },
    /// Any other argument outside a function's documented domain (empty input, ragged table,
    /// out-of-range index, ...).
    #[error("{0}")]
    InvalidInput(String),
}
