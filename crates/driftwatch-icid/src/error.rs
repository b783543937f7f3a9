//! The engine's error type. Only *caller* mistakes are errors here (bad parameters, a shape that
//! does not fit, non-finite input, too little data for two windows); the engine never fails for
//! I/O reasons because it does no I/O.

use thiserror::Error;

/// What went wrong when calling the engine.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum IcidError {
    /// The row-major data slice is not `n * d` long, or `d` is zero.
    #[error("data has {len} values, which is not a whole number of rows of {d} columns")]
    Shape {
        /// Length of the data slice.
        len: usize,
        /// Number of columns given.
        d: usize,
    },
    /// A value is NaN or infinite.
    #[error("value at row {row}, column {column} is not finite")]
    NonFinite {
        /// 0-based row.
        row: usize,
        /// 0-based column.
        column: usize,
    },
    /// The series is too short for the window: iCID needs at least two windows.
    #[error("{n} rows give {windows} window(s) of {window} rows; iCID needs at least two windows")]
    TooFewWindows {
        /// Rows in the series.
        n: usize,
        /// Window length asked for.
        window: usize,
        /// Windows that length gives.
        windows: usize,
    },
    /// A parameter is out of its range.
    #[error("invalid parameter {name}: {reason}")]
    Param {
        /// Parameter name as the user knows it.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
}

impl IcidError {
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Param { name, reason: reason.into() }
    }
}
