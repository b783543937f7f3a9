#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

pub mod cpd;
mod error;

pub use error::EvalError;
pub mod nab;
