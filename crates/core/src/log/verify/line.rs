//! One export line: the fast path that reads `seq` and hashes the bytes
//! without parsing JSON, the slow path that parses a re-serialized record
//! strictly, and what a line turned out to be. Pure: bytes in, outcome out.

// For `skip_until` on a byte slice: a memchr over memory, not I/O.
use std::io::BufRead as _;

use serde_json::Value;

use super::strict::StrictValue;
use crate::log::merkle::{Hash, hash_leaf, hash_leaf_parts};
use crate::record::Record;

/// A record line's seq, leaf hash (recomputed) and stated leaf_hash.
pub(super) struct LineLeaf {
    pub(super) seq: u64,
    pub(super) leaf: Hash,
    pub(super) claimed: Hash,
}

const ID_PREFIX: &[u8] = b"{\"id\":\"";
const SEQ_PREFIX: &[u8] = b"\",\"seq\":";
const HASH_PREFIX: &[u8] = b",\"leaf_hash\":\"";
/// `,"leaf_hash":"` + 64 hex + `"}`.
const SUFFIX_LEN: usize = HASH_PREFIX.len() + 64 + 2;

pub(super) fn lower_hex_hash(hex: &[u8]) -> Option<Hash> {
    if hex.len() != 64
        || !hex
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// The fast path: a line exactly as the server writes it. `None` when the
/// line has any other shape.
fn fast_line(line: &[u8]) -> Option<LineLeaf> {
    let body_len = line.len().checked_sub(SUFFIX_LEN)?;
    let (body, suffix) = line.split_at(body_len);
    let hex = suffix.strip_prefix(HASH_PREFIX)?.strip_suffix(b"\"}")?;

    let rest = body.strip_prefix(ID_PREFIX)?;
    let id_end = rest.iter().position(|&b| b == b'"')?;
    // With a backslash in the id, the first quote might be an escaped one,
    // and the seq read below would not be the record's.
    if rest[..id_end].contains(&b'\\') {
        return None;
    }
    let rest = rest[id_end..].strip_prefix(SEQ_PREFIX)?;
    let digits_len = rest.iter().position(|b| !b.is_ascii_digit())?;
    let (digits, rest) = rest.split_at(digits_len);
    if rest.first() != Some(&b',') || digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let seq = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let leaf = hash_leaf_parts(&[body, b"}"]);
    // The recomputed hash is encoded and compared with the line's hex; only
    // a mismatch decodes it (perf: decoding every line's was a fifth of
    // verification, encoding and comparing is a twentieth).
    let mut leaf_hex = [0u8; 64];
    hex::encode_to_slice(leaf, &mut leaf_hex).ok()?;
    let claimed = if leaf_hex.as_slice() == hex {
        leaf
    } else {
        lower_hex_hash(hex)?
    };
    Some(LineLeaf { seq, leaf, claimed })
}

/// The slow path: parse the line, re-canonicalize the record, and accept it
/// only if the line is the same JSON value as that canonical form plus its
/// leaf_hash.
pub(super) fn slow_line(line: &[u8]) -> Result<LineLeaf, String> {
    let StrictValue(mut value) =
        serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let record: Record =
        serde_json::from_value(value.clone()).map_err(|e| format!("not a record: {e}"))?;
    let canonical = record.body.canonical_bytes();
    let same = match value.as_object_mut() {
        Some(obj) => {
            obj.remove("leaf_hash");
            serde_json::from_slice::<Value>(&canonical).is_ok_and(|c| c == value)
        }
        None => false,
    };
    if !same {
        return Err("it has fields or values that are not in the record's canonical form".into());
    }
    Ok(LineLeaf {
        seq: record.body.seq,
        leaf: hash_leaf(&canonical),
        claimed: record.leaf_hash,
    })
}

pub(super) enum LineOutcome {
    Blank,
    Record {
        parsed: LineLeaf,
        reserialized: bool,
    },
    Malformed(String),
}

/// Checks one line (its `\n` and an optional `\r` before it included).
pub(super) fn check_line(raw: &[u8]) -> LineOutcome {
    let mut line = raw;
    if let Some(l) = line.strip_suffix(b"\n") {
        line = l.strip_suffix(b"\r").unwrap_or(l);
    }
    if line.is_empty() {
        return LineOutcome::Blank;
    }
    if line.first() != Some(&b'{') || line.last() != Some(&b'}') {
        return LineOutcome::Malformed(
            "a line must be one JSON object with nothing around it".into(),
        );
    }
    match fast_line(line) {
        Some(parsed) => LineOutcome::Record {
            parsed,
            reserialized: false,
        },
        None => match slow_line(line) {
            Ok(parsed) => LineOutcome::Record {
                parsed,
                reserialized: true,
            },
            Err(reason) => LineOutcome::Malformed(reason),
        },
    }
}
/// Checks the whole lines of `data` (the last may lack its `\n`), in order,
/// into `out` (cleared first).
pub(super) fn check_lines(data: &[u8], out: &mut Vec<LineOutcome>) {
    out.clear();
    let mut at = 0;
    while at < data.len() {
        // `skip_until` finds the newline with the standard library's
        // word-at-a-time memchr, several times faster than a byte loop.
        // Reading from a slice cannot fail.
        let mut rest = &data[at..];
        let len = rest.skip_until(b'\n').unwrap_or(data.len() - at).max(1);
        out.push(check_line(&data[at..at + len]));
        at += len;
    }
}
