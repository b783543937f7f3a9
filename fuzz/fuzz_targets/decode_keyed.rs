//! The Kafka message decoder, `driftwatch::decode::decode_keyed`. Input: a leading 0x00
//! for a record without a key, otherwise `KEY\nBODY`. Checks: see `invariants.rs`.
#![no_main]

#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check_decode_keyed(data));
