//! The limits of an ingested event (spec §3) and of what a validation
//! answer quotes back. They live apart from `validate` so that `wire`, which
//! stops reading a body at these limits, does not depend on the validator
//! that depends on it.

use std::borrow::Cow;

use crate::record::Micros;

/// Limits of spec §3.
pub const MAX_DESCRIPTION_CHARS: usize = 4096;
pub const MAX_METADATA_KEYS: usize = 64;
pub const MAX_METADATA_KEY_CHARS: usize = 64;
pub const MAX_STRING_CHARS: usize = 1024;
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// How far in the future `occurred_at` may be (clock skew allowance).
pub const MAX_FUTURE_MICROS: i64 = 5 * 60 * 1_000_000;
/// The earliest accepted `occurred_at`: 1970-01-01T00:00:00Z. Nothing an
/// audit log records happened before the Unix epoch, and every instant from
/// here to the future allowance prints as a four-digit-year RFC 3339 time
/// that parses back (a negative year did not: one such event made an
/// account's list answer 500 for good).
pub const MIN_OCCURRED_AT: Micros = Micros(0);
/// Problems listed in one answer; past it, one more line says how many
/// were left out. A 10 MiB batch of junk must not get a larger answer.
pub const MAX_REPORTED_PROBLEMS: usize = 100;
/// Characters of a client's value quoted back in a message.
pub const MAX_QUOTED_CHARS: usize = 128;
/// Names longer than this get no "did you mean": the edit distance costs
/// the product of the lengths, and no catalog name is nearly this long.
pub const MAX_HINT_INPUT_CHARS: usize = 64;
/// The category clients may not write to: the product's own audit of reads.
pub const RESERVED_CATEGORY: &str = "Audit Logs";

/// `s` as quoted back in a message: at most [`MAX_QUOTED_CHARS`]
/// characters, the rest elided.
pub fn quote(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        None => Cow::Borrowed(s),
        Some((at, _)) => Cow::Owned(format!("{}…", &s[..at])),
    }
}
