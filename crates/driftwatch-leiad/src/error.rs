//! The crate's one error type. It covers caller mistakes only: bad series, labels that do not
//! fit the pool, unknown ids, parameters out of range. Numeric trouble inside a fit (a degenerate
//! label model, an end model with one class) is handled by fallbacks, not reported as an error.

/// What a LEIAD call can refuse.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum LeiadError {
    /// A series cannot be used (empty, non-finite value, too short).
    #[error("series {series:?}: {reason}")]
    Series {
        /// Name of the series.
        series: String,
        /// What is wrong.
        reason: String,
    },
    /// A labeled window does not fit the pool.
    #[error("window: {0}")]
    Window(String),
    /// A label or labeling-function id that does not exist (or was already undone).
    #[error("unknown {kind} id {id}")]
    UnknownId {
        /// "label" or "labeling function".
        kind: &'static str,
        /// The id given.
        id: u64,
    },
    /// A parameter out of its range.
    #[error("parameter {name}: {reason}")]
    Param {
        /// The parameter.
        name: &'static str,
        /// Its allowed range.
        reason: String,
    },
    /// The end-model library refused to fit.
    #[error("end model: {0}")]
    EndModel(String),
}

impl LeiadError {
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Param { name, reason: reason.into() }
    }
}
