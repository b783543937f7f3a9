//! The CSV reader, `driftwatch::input::parse_csv` (what `detect` and `replay` read files with).
//! Input: the file, optionally after a first line `@cols:a,b,..` giving `--columns`. Checks: see
//! `invariants.rs`.
#![no_main]

#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_csv(data));
