#![doc = include_str!("../README.md")]
#![warn(missing_docs, unreachable_pub)]

pub mod cpd;
pub mod cv;
mod error;
pub mod nab;
pub mod tssb;

pub use error::EvalError;
