//! The event record, its validated building blocks and its canonical form.
//!
//! A record is stored, returned and exported as JSON. Its **canonical form**
//! is what the Merkle log commits to: the leaf of record `r` is
//! `canonical_bytes(r)` and its leaf hash is `SHA-256(0x00 ‖ leaf)`
//! (RFC 9162 §2.1.1). The canonical form is defined byte for byte:
//!
//! - one compact JSON object (no white space anywhere outside strings), UTF-8;
//! - keys in exactly this order: `id`, `seq`, `account_id`, `level`,
//!   `category`, `event`, `occurred_at`, `recorded_at`, `actor`, `ip_address`,
//!   `workflow_id`, `description`, `metadata`;
//! - `actor` is an object with keys in the order `kind`, `id`, `name`,
//!   `email`; absent optional values are written as `null`, never omitted;
//! - `metadata` is an object whose keys are sorted by their UTF-8 bytes;
//!   values are strings, numbers, booleans or `null`;
//! - strings are escaped as `serde_json` does: `"` and `\` get a backslash,
//!   control characters below U+0020 are `\b \f \n \r \t` or `\u00XX`
//!   (lowercase hex), everything else (including non-ASCII) is written as
//!   raw UTF-8;
//! - integers are written in decimal without a sign for non-negative values
//!   or leading zeros; other numbers are written in the shortest form that
//!   round-trips an IEEE-754 double (Ryū), always with a `.` or exponent;
//! - timestamps are RFC 3339 in UTC with exactly three fractional digits and
//!   a `Z` suffix: `2026-11-25T10:00:00.123Z` (the log keeps millisecond
//!   precision; finer input is truncated at ingest).
//!
//! A record as returned by the API and as a JSONL export line is the
//! canonical JSON with `,"leaf_hash":"<64 lowercase hex>"` inserted before the
//! closing brace, so a verifier can hash the line's bytes without parsing.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::ingest::catalog::Level;
pub use crate::log::merkle::Hash;

/// A workflow's id, as clients name it in events and in the URL of the
/// workflow's own view. Any string names a workflow: one that no event
/// carries simply has no events.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkflowId(String);

impl WorkflowId {
    pub fn new(id: impl Into<String>) -> WorkflowId {
        WorkflowId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant id, validated: `^[a-z0-9][a-z0-9_-]{0,62}$`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

/// Why a string is not an account id.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid account id `{0}`: expected 1 to 63 characters of a-z, 0-9, `_` or `-`, starting with a letter or digit"
)]
pub struct ParseAccountIdError(pub String);

impl AccountId {
    /// Validates `s` as an account id.
    pub fn parse(s: &str) -> Result<AccountId, ParseAccountIdError> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok = b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
        if first_ok && rest_ok && b.len() <= 63 {
            Ok(AccountId(s.to_owned()))
        } else {
            Err(ParseAccountIdError(s.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AccountId {
    type Err = ParseAccountIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AccountId::parse(s)
    }
}

/// Who performed the action: the export's "User/App Name" column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    User,
    App,
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::App => "app",
            ActorKind::System => "system",
        }
    }
}

/// The actor of an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl Actor {
    /// The name shown in the dashboard and the export: the name, else the id.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// An instant with millisecond precision, stored as Unix microseconds.
///
/// Microseconds (always a multiple of 1,000) are what the stores keep in an
/// `i64`; milliseconds are what the log shows and commits to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(pub i64);

impl Micros {
    /// Truncates `ts` to whole milliseconds (toward the past).
    pub fn from_timestamp(ts: jiff::Timestamp) -> Micros {
        let us = ts.as_microsecond();
        Micros(us.div_euclid(1000) * 1000)
    }

    pub fn to_timestamp(self) -> jiff::Timestamp {
        // In range by construction: every Micros comes from a jiff Timestamp.
        jiff::Timestamp::from_microsecond(self.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    /// `2026-11-25T10:00:00.123Z`.
    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(24);
        self.write_rfc3339(&mut s);
        s
    }

    /// Appends the canonical rendering to `out` without allocating.
    pub fn write_rfc3339(self, out: &mut String) {
        use std::fmt::Write;
        let ts = self.to_timestamp();
        let dt = jiff::tz::TimeZone::UTC.to_datetime(ts);
        let ms = self.0.rem_euclid(1_000_000) / 1000;
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            ms
        );
    }

    /// Parses any RFC 3339 instant (any offset), truncating to milliseconds.
    pub fn parse_rfc3339(s: &str) -> Result<Micros, jiff::Error> {
        Ok(Micros::from_timestamp(s.parse::<jiff::Timestamp>()?))
    }

    /// Parses exactly the canonical rendering ([`Micros::write_rfc3339`]:
    /// `2026-11-25T10:00:00.123Z`, years 0000–9999) without a general
    /// parser: an export reads one per row, and `jiff`'s parser was a
    /// tenth of the CSV encoder's time (perf). `None` for anything else
    /// (another shape, an impossible date or time), which
    /// [`Micros::parse_rfc3339`] then answers.
    pub fn parse_canonical(s: &str) -> Option<Micros> {
        let b: &[u8; 24] = s.as_bytes().try_into().ok()?;
        let punct = [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
        ];
        if punct.iter().any(|&(i, c)| b[i] != c) {
            return None;
        }
        let num = |from: usize, to: usize| -> Option<i64> {
            b[from..to].iter().try_fold(0i64, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
            })
        };
        let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (hh, mm, ss, ms) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
            return None;
        }
        if hh > 23 || mm > 59 || ss > 59 {
            return None;
        }
        // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
        // `days_from_civil`).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
        Some(Micros(secs * 1_000_000 + ms * 1000))
    }
}

impl Serialize for Micros {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Micros {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Micros::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// A metadata value: string, number, boolean or null (never an array or object).
pub type MetaValue = serde_json::Value;

/// Everything the log commits to: the record without its leaf hash.
///
/// Field order here is the canonical key order; do not reorder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordBody {
    pub id: String,
    pub seq: u64,
    pub account_id: String,
    pub level: Level,
    pub category: String,
    pub event: String,
    pub occurred_at: Micros,
    pub recorded_at: Micros,
    pub actor: Actor,
    pub ip_address: Option<String>,
    pub workflow_id: Option<String>,
    pub description: String,
    pub metadata: BTreeMap<String, MetaValue>,
}

impl RecordBody {
    /// The canonical leaf bytes (see the module docs).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        CanonicalParts::new(
            &CanonicalHead {
                account_id: &self.account_id,
                level: self.level,
                category: &self.category,
                event: &self.event,
                occurred_at: self.occurred_at,
            },
            &CanonicalTail {
                actor: &self.actor,
                ip_address: self.ip_address.as_deref(),
                workflow_id: self.workflow_id.as_deref(),
                description: &self.description,
                metadata: &self.metadata,
            },
        )
        .finish(
            &self.id,
            self.seq,
            &CanonicalParts::time(self.recorded_at),
            &mut out,
        );
        out
    }

    /// `SHA-256(0x00 ‖ canonical_bytes)`.
    pub fn compute_leaf_hash(&self) -> Hash {
        crate::log::merkle::hash_leaf(&self.canonical_bytes())
    }
}

/// A record's canonical form without the three fields the store assigns
/// when it commits (`id`, `seq`, `recorded_at`): everything else is
/// serialized before the event reaches the store's single writer, which then
/// only splices the three in ([`CanonicalParts::finish`]). [`RecordBody::
/// canonical_bytes`] is built the same way, so there is one serialization
/// of the canonical form; a test holds it equal to `RecordBody`'s derived
/// `Serialize` (whose field order the module docs define).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalParts {
    /// `{"account_id":…,"level":…,"category":…,"event":…,"occurred_at":…}`
    head: Vec<u8>,
    /// `{"actor":…,"ip_address":…,"workflow_id":…,"description":…,"metadata":…}`
    tail: Vec<u8>,
}

/// The fields between `seq` and `recorded_at`, in canonical order.
#[derive(Debug, Serialize)]
pub struct CanonicalHead<'a> {
    pub account_id: &'a str,
    pub level: Level,
    pub category: &'a str,
    pub event: &'a str,
    pub occurred_at: Micros,
}

/// The fields after `recorded_at`, in canonical order.
#[derive(Debug, Serialize)]
pub struct CanonicalTail<'a> {
    pub actor: &'a Actor,
    pub ip_address: Option<&'a str>,
    pub workflow_id: Option<&'a str>,
    pub description: &'a str,
    pub metadata: &'a BTreeMap<String, MetaValue>,
}

impl CanonicalParts {
    /// Serializes everything but `id`, `seq` and `recorded_at`.
    pub fn new(head: &CanonicalHead<'_>, tail: &CanonicalTail<'_>) -> CanonicalParts {
        CanonicalParts {
            head: serde_json::to_vec(head).expect("record fields always serialize"),
            tail: serde_json::to_vec(tail).expect("record fields always serialize"),
        }
    }

    /// A timestamp as the canonical form writes it, quotes included; the
    /// writer renders its commit time once per group.
    pub fn time(t: Micros) -> String {
        format!("\"{}\"", t.to_rfc3339())
    }

    /// Appends the whole canonical form to `out`; `recorded_at` comes from
    /// [`CanonicalParts::time`].
    pub fn finish(&self, id: &str, seq: u64, recorded_at: &str, out: &mut Vec<u8>) {
        out.reserve(self.head.len() + self.tail.len() + id.len() + recorded_at.len() + 48);
        out.extend_from_slice(b"{\"id\":");
        serde_json::to_writer(&mut *out, id).expect("a string always serializes");
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        out.push(b',');
        out.extend_from_slice(members(&self.head));
        out.extend_from_slice(b",\"recorded_at\":");
        out.extend_from_slice(recorded_at.as_bytes());
        out.push(b',');
        out.extend_from_slice(members(&self.tail));
        out.push(b'}');
    }
}

/// An object's members: its JSON without the braces.
fn members(object: &[u8]) -> &[u8] {
    &object[1..object.len() - 1]
}

/// A stored record: the committed body and its leaf hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub body: RecordBody,
    #[serde(with = "hex_hash")]
    pub leaf_hash: Hash,
}

impl Record {
    /// Seals a body: computes its leaf hash.
    pub fn seal(body: RecordBody) -> Record {
        let leaf_hash = body.compute_leaf_hash();
        Record { body, leaf_hash }
    }

    /// The record's JSON as the API returns it and as one export line,
    /// built from the canonical bytes without re-serializing.
    pub fn json_from_canonical(canonical: &[u8], leaf_hash: &Hash, out: &mut Vec<u8>) {
        debug_assert_eq!(canonical.last(), Some(&b'}'));
        out.extend_from_slice(&canonical[..canonical.len() - 1]);
        out.extend_from_slice(b",\"leaf_hash\":\"");
        let mut hex_buf = [0u8; 64];
        // Infallible: the buffer is exactly twice the hash length.
        let _ = hex::encode_to_slice(leaf_hash, &mut hex_buf);
        out.extend_from_slice(&hex_buf);
        out.extend_from_slice(b"\"}");
    }

    /// This record as API JSON bytes (canonical body plus leaf hash).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let canonical = self.body.canonical_bytes();
        let mut out = Vec::with_capacity(canonical.len() + 80);
        Record::json_from_canonical(&canonical, &self.leaf_hash, &mut out);
        out
    }
}

/// Serde for a hash as 64 lowercase hex characters.
pub mod hex_hash {
    use super::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.as_bytes(), &mut out)
            .map_err(|_| serde::de::Error::custom("expected 64 hex characters"))?;
        if s.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(serde::de::Error::custom("expected lowercase hex"));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn canonical_times_parse_as_the_general_parser_does() {
        // Times spread over years 0000–9999 (a small LCG), plus edges.
        let lo = Micros::parse_rfc3339("0000-01-01T00:00:00.000Z").unwrap().0;
        // The end of what jiff represents (9999-12-30 and some hours).
        let hi = Micros::parse_rfc3339("9999-12-30T00:00:00.000Z").unwrap().0;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut times = vec![lo, hi, 0, -1000, 951_782_400_000_000, 1_709_164_800_000_000];
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            times.push(lo + ((x >> 11) % (hi - lo) as u64) as i64);
        }
        for t in times {
            let m = Micros(t.div_euclid(1000) * 1000);
            let s = m.to_rfc3339();
            assert_eq!(Micros::parse_canonical(&s), Some(m), "{s}");
            assert_eq!(Micros::parse_rfc3339(&s).unwrap(), m, "{s}");
        }
        // Not canonical, or impossible: left to the general parser.
        for s in [
            "2026-02-29T00:00:00.000Z",
            "2100-02-29T00:00:00.000Z",
            "2026-04-31T00:00:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-00-01T00:00:00.000Z",
            "2026-01-00T00:00:00.000Z",
            "2026-01-01T24:00:00.000Z",
            "2026-01-01T00:60:00.000Z",
            "2026-01-01T00:00:60.000Z",
            "2026-01-01T00:00:00.000+00:00",
            "2026-01-01T00:00:00Z",
            "2026-01-01 00:00:00.000Z",
            "+026-01-01T00:00:00.000Z",
            "2026-01-01T00:00:00.0a0Z",
        ] {
            assert_eq!(Micros::parse_canonical(s), None, "{s}");
        }
        assert_eq!(
            Micros::parse_canonical("2024-02-29T23:59:59.999Z"),
            Micros::parse_rfc3339("2024-02-29T23:59:59.999Z").ok()
        );
    }

    /// 9999-12-30T00:00:00Z, near the end of what jiff represents: far past any `occurred_at` ingest
    /// accepts (now + 5 minutes), so the whole accepted window is inside.
    const YEAR_9999_END_MS: i64 = 253_402_128_000_000;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every instant of the accepted window prints as RFC 3339 and
        /// parses back to itself (a stored year -1 printed as `-001-…` and
        /// broke the account's list for good).
        #[test]
        fn times_print_and_parse_back(ms in 0i64..=YEAR_9999_END_MS) {
            let t = Micros(ms * 1000);
            let text = t.to_rfc3339();
            prop_assert_eq!(text.len(), 24, "{}", text);
            prop_assert_eq!(Micros::parse_rfc3339(&text).unwrap(), t);
        }
    }

    #[test]
    fn window_edges_print_and_parse_back() {
        for ms in [0, 1, 999, 1_000, YEAR_9999_END_MS - 1, YEAR_9999_END_MS] {
            let t = Micros(ms * 1000);
            assert_eq!(Micros::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
        }
        assert_eq!(Micros(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Micros(YEAR_9999_END_MS * 1000).to_rfc3339(),
            "9999-12-30T00:00:00.000Z"
        );
    }

    fn sample() -> RecordBody {
        RecordBody {
            id: "01JDX3Q6Z0M3A5V4S2R1N0P9QK".into(),
            seq: 42,
            account_id: "acme".into(),
            level: Level::Account,
            category: "Roles".into(),
            event: "Role created".into(),
            occurred_at: Micros::parse_rfc3339("2026-11-25T10:00:00.123456Z").unwrap(),
            recorded_at: Micros::parse_rfc3339("2026-11-25T11:00:00.130+01:00").unwrap(),
            actor: Actor {
                kind: ActorKind::User,
                id: "u_17".into(),
                name: Some("Jane \"JD\" Doe".into()),
                email: None,
            },
            ip_address: Some("203.0.113.7".into()),
            workflow_id: None,
            description: "Jane created the role Auditor\n".into(),
            metadata: BTreeMap::from([
                ("role_type".into(), serde_json::json!("custom")),
                ("role_id".into(), serde_json::json!("r_9")),
                ("n".into(), serde_json::json!(1.5)),
            ]),
        }
    }

    #[test]
    fn canonical_form_is_byte_exact() {
        let got = String::from_utf8(sample().canonical_bytes()).unwrap();
        let want = concat!(
            r#"{"id":"01JDX3Q6Z0M3A5V4S2R1N0P9QK","seq":42,"account_id":"acme","level":"account","#,
            r#""category":"Roles","event":"Role created","occurred_at":"2026-11-25T10:00:00.123Z","#,
            r#""recorded_at":"2026-11-25T10:00:00.130Z","actor":{"kind":"user","id":"u_17","#,
            r#""name":"Jane \"JD\" Doe","email":null},"ip_address":"203.0.113.7","workflow_id":null,"#,
            r#""description":"Jane created the role Auditor\n","metadata":{"n":1.5,"role_id":"r_9","role_type":"custom"}}"#
        );
        assert_eq!(got, want);
    }

    mod spliced {
        use super::*;

        proptest! {
            /// The spliced canonical form (what the store writes) is exactly
            /// what `RecordBody`'s derived `Serialize` gives in declaration
            /// order, whatever the strings, optional fields and metadata hold.
            #[test]
            fn spliced_canonical_form_equals_the_derived_serialization(
                id in "\\PC{0,30}",
                seq in any::<u64>(),
                text in prop::collection::vec("\\PC{0,20}|[\"\\\\\u{0}-\u{1f}\u{7f}é€😀]{0,8}", 6),
                optional in prop::collection::vec(any::<bool>(), 4),
                times in prop::collection::vec(-62_000_000_000_000_000i64..250_000_000_000_000_000, 2),
                meta in prop::collection::btree_map(
                    "\\PC{1,10}",
                    prop_oneof![
                        any::<i64>().prop_map(serde_json::Value::from),
                        any::<f64>()
                            .prop_filter("finite", |f| f.is_finite())
                            .prop_map(serde_json::Value::from),
                        any::<bool>().prop_map(serde_json::Value::from),
                        "\\PC{0,12}".prop_map(serde_json::Value::from),
                        Just(serde_json::Value::Null),
                    ],
                    0..6,
                ),
            ) {
                let opt = |i: usize, s: &str| optional[i].then(|| s.to_owned());
                let body = RecordBody {
                    id,
                    seq,
                    account_id: "acme".into(),
                    level: if optional[0] { Level::Account } else { Level::Workflow },
                    category: text[0].clone(),
                    event: text[1].clone(),
                    occurred_at: Micros(times[0] / 1000 * 1000),
                    recorded_at: Micros(times[1] / 1000 * 1000),
                    actor: Actor {
                        kind: ActorKind::App,
                        id: text[2].clone(),
                        name: opt(1, &text[3]),
                        email: opt(2, &text[4]),
                    },
                    ip_address: opt(3, "2001:db8::1"),
                    workflow_id: opt(0, &text[5]),
                    description: text[5].clone(),
                    metadata: meta,
                };
                prop_assert_eq!(body.canonical_bytes(), serde_json::to_vec(&body).unwrap());
            }
        }
    }

    #[test]
    fn api_json_round_trips_and_keeps_the_leaf_hash() {
        let rec = Record::seal(sample());
        let bytes = rec.to_json_bytes();
        let back: Record = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.body.compute_leaf_hash(), rec.leaf_hash);
        // Re-serializing the parsed body gives the very same canonical bytes.
        assert_eq!(back.body.canonical_bytes(), rec.body.canonical_bytes());
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.ends_with(&format!(
            ",\"leaf_hash\":\"{}\"}}",
            hex::encode(rec.leaf_hash)
        )));
    }

    #[test]
    fn leaf_hash_uses_the_rfc9162_prefix() {
        // SHA-256(0x00) — the leaf hash of an empty leaf.
        assert_eq!(
            hex::encode(crate::log::merkle::hash_leaf(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn micros_truncate_to_milliseconds_before_the_epoch_too() {
        let m = Micros::parse_rfc3339("1969-12-31T23:59:59.9999Z").unwrap();
        assert_eq!(m.to_rfc3339(), "1969-12-31T23:59:59.999Z");
        assert_eq!(m.0 % 1000, 0);
    }

    #[test]
    fn account_ids() {
        for ok in ["acme", "a", "0-a_b", &"a".repeat(63)] {
            assert!(AccountId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "_a", "Acme", "a.b", "a b", &"a".repeat(64), "é"] {
            assert!(AccountId::parse(bad).is_err(), "{bad}");
        }
    }
}
