//! The HTTP body decoder, `driftwatch::decode::decode_body` (one JSON message or NDJSON).
//! Input: the body. Checks: see `invariants.rs`.
#![no_main]

#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_decode_body(data));
