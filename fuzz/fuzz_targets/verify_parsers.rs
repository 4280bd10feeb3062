//! Fuzzes the offline verifier's parsers (checkpoint body, signed note,
//! consistency proof JSON, proof bundle) and asserts that none ever accepts
//! an input other than its known-good one.
//!
//! Run with `cargo +nightly fuzz run verify_parsers` from the repository
//! root. The first input byte picks the parser; with its high bit set the
//! rest is a list of 4-byte edits applied to the known-good input, so the
//! fuzzer starts next to valid inputs without a seed corpus (`\x81` alone is
//! the valid signed note). The same property runs in CI, over deterministic
//! mutations, as `verify::tests::mutated_inputs_are_never_accepted` and
//! `checkpoint::tests::mutated_notes_never_open`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    auditlog_core::verify::testkit::check(data);
});
