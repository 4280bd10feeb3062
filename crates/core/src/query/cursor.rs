//! The keyset cursor: a position in the newest-first order, authenticated
//! with an HMAC over the query's fingerprint so that it cannot be forged,
//! edited or used with another account, scope or query.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::civil::Date;
use sha2::{Digest, Sha256};

use super::error::ParseQueryError;
use super::filter::{Column, Join, Op};
use super::parse::Query;

/// Where an event sorts and which record it is: a position in the
/// newest-first order, `(occurred_at, seq)` descending (the derived `Ord`
/// compares the fields in that order). The index answers pages as row keys
/// ([`crate::index::RowKey`] is this type), and a list cursor is the last
/// key of a page: the next page holds the events strictly before it, i.e.
/// `(occurred_at_us, seq) < (cursor.occurred_at_us, cursor.seq)`. Because
/// the key is unique and an event's key never changes, paging visits every
/// matching event exactly once even while new (newer) events arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey {
    /// `occurred_at` in microseconds since the Unix epoch.
    pub occurred_at_us: i64,
    pub seq: u64,
}

/// The key cursors are authenticated with (derived from the server's
/// secret, [`crate::secret::ServerSecret`]).
#[derive(Clone)]
pub struct CursorKey(pub(super) [u8; 32]);

impl CursorKey {
    pub fn new(key: [u8; 32]) -> CursorKey {
        CursorKey(key)
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(<secret>)")
    }
}

/// Bytes of an encoded cursor: occurred_at and seq, 8 each, then 16 bytes
/// of the tag.
const CURSOR_BYTES: usize = 32;
/// Length of [`CURSOR_BYTES`] in unpadded base64.
const CURSOR_CHARS: usize = 43;
/// Cursor format version, bound into the tag: a cursor of another version
/// fails the check instead of being read wrongly.
const CURSOR_VERSION: &[u8] = b"auditlog cursor v2\0";

fn cursor_mac(key: &CursorKey, fingerprint: &[u8; 32], position: &[u8]) -> hmac::Hmac<Sha256> {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key.0)
        .expect("HMAC takes a key of any length");
    mac.update(CURSOR_VERSION);
    mac.update(fingerprint);
    mac.update(position);
    mac
}

impl RowKey {
    /// URL-safe base64 (no padding) of `occurred_at_us`, `seq` (both
    /// big-endian) and a tag: HMAC-SHA-256 under the server's cursor key of
    /// the query's fingerprint and the position, truncated to 16 bytes. A
    /// cursor is therefore bound to the account, scope and query, and
    /// cannot be forged or edited to point elsewhere.
    pub fn to_cursor(&self, key: &CursorKey, fingerprint: &[u8; 32]) -> String {
        use hmac::Mac;
        let mut bytes = [0u8; CURSOR_BYTES];
        bytes[..8].copy_from_slice(&self.occurred_at_us.to_be_bytes());
        bytes[8..16].copy_from_slice(&self.seq.to_be_bytes());
        let tag = cursor_mac(key, fingerprint, &bytes[..16])
            .finalize()
            .into_bytes();
        bytes[16..].copy_from_slice(&tag[..16]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a cursor back, refusing one whose tag does not check out: it
    /// was issued for another account, scope or query, by another server,
    /// or edited (constant-time comparison).
    pub fn from_cursor(
        s: &str,
        key: &CursorKey,
        fingerprint: &[u8; 32],
    ) -> Result<RowKey, ParseQueryError> {
        use hmac::Mac;
        let not_ours =
            || ParseQueryError::new("cursor", "cursor was not issued for this account and query");
        if s.len() != CURSOR_CHARS {
            return Err(not_ours());
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| not_ours())?;
        let bytes: [u8; CURSOR_BYTES] = bytes.try_into().map_err(|_| not_ours())?;
        cursor_mac(key, fingerprint, &bytes[..16])
            .verify_truncated_left(&bytes[16..])
            .map_err(|_| not_ours())?;
        let mut occurred_at_us = [0u8; 8];
        occurred_at_us.copy_from_slice(&bytes[..8]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[8..16]);
        Ok(RowKey {
            occurred_at_us: i64::from_be_bytes(occurred_at_us),
            seq: u64::from_be_bytes(seq),
        })
    }
}

/// Feeds one length-prefixed field to the hash, so that field boundaries
/// are unambiguous (`"ab" + "c"` and `"a" + "bc"` differ).
fn hash_field(hasher: &mut Sha256, field: &[u8]) {
    hasher.update((field.len() as u64).to_be_bytes());
    hasher.update(field);
}

impl Query {
    /// The first 8 bytes of a SHA-256 over the account, the scope (a
    /// workflow id, or "" for the account view) and a normal form of what
    /// selects events: range, from, to, tz, week_start, filters and join.
    /// `limit`, `cursor`, `bucket` and `format` are left out because they do
    /// not change which events match, so a client may change its page size
    /// mid-way.
    ///
    /// The normal form makes equivalent queries share cursors: filters are
    /// compared by normalized value and sorted (with one join for the set,
    /// order cannot matter), duplicates dropped, and the join ignored when
    /// there is at most one filter.
    pub fn fingerprint(&self, account: &str, scope: &str) -> [u8; 32] {
        let mut filters: Vec<(Column, Op, String)> = self
            .filters
            .iter()
            .map(|f| (f.column, f.op, f.needle()))
            .collect();
        filters.sort();
        filters.dedup();
        let join = if filters.len() <= 1 {
            Join::And
        } else {
            self.join
        };
        let date = |d: Option<Date>| d.map(|d| d.to_string()).unwrap_or_default();

        let mut hasher = Sha256::new();
        hash_field(&mut hasher, b"auditlog cursor v1");
        hash_field(&mut hasher, account.as_bytes());
        hash_field(&mut hasher, scope.as_bytes());
        hash_field(&mut hasher, self.range.preset.as_str().as_bytes());
        hash_field(&mut hasher, date(self.range.from).as_bytes());
        hash_field(&mut hasher, date(self.range.to).as_bytes());
        hash_field(&mut hasher, self.range.tz_name.as_bytes());
        hash_field(&mut hasher, self.range.week_start.as_str().as_bytes());
        hash_field(&mut hasher, join.as_str().as_bytes());
        hash_field(&mut hasher, &(filters.len() as u64).to_be_bytes());
        for (column, op, needle) in &filters {
            hash_field(&mut hasher, column.as_str().as_bytes());
            hash_field(&mut hasher, op.as_str().as_bytes());
            hash_field(&mut hasher, needle.as_bytes());
        }
        hasher.finalize().into()
    }

    /// The cursor of this query, checked against its fingerprint; `None`
    /// for the first page.
    pub fn decode_cursor(
        &self,
        key: &CursorKey,
        account: &str,
        scope: &str,
    ) -> Result<Option<RowKey>, ParseQueryError> {
        match &self.cursor {
            None => Ok(None),
            Some(s) => RowKey::from_cursor(s, key, &self.fingerprint(account, scope)).map(Some),
        }
    }

    /// The `next_cursor` to return after a page ending at `last`.
    pub fn encode_cursor(
        &self,
        key: &CursorKey,
        last: RowKey,
        account: &str,
        scope: &str,
    ) -> String {
        last.to_cursor(key, &self.fingerprint(account, scope))
    }
}
