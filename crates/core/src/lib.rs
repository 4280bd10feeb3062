//! The pure heart of auditlog: the rules every other crate applies, written
//! once and testable without a database, a socket or a clock.
//!
//! - [`ingest`]: the event catalog, the ingest body as sent, its validation
//!   against the catalog and the limits, redaction of sensitive fields, and
//!   the description sentence.
//! - [`record`]: the stored record and its canonical form (the Merkle leaf).
//! - [`query`]: query semantics (time ranges, filters, the keyset cursor,
//!   histogram buckets) parsed from URL query pairs.
//! - [`index`]: the in-memory column index and its query plans.
//! - [`log`]: the Merkle log kept as tiles, signed checkpoints, proofs, and
//!   the offline verifier of exports and proof bundles.
//! - [`export`]: the CSV and JSONL export encodings.
//! - [`secret`]: the server's secret and the keys derived from it.
//! - [`datagen`]: the seeded generator of realistic events (the demo's data
//!   and the benchmark's dataset); seeded, so pure.
//!
//! # What this crate must never do
//!
//! - **No clock reads.** Callers pass `now` in, so every time-dependent rule
//!   (presets, buckets, checkpoints) is tested at fixed instants.
//! - **No I/O**: no files, no network, no environment. Functions take and
//!   return bytes and values; the binary and the server do the reading and
//!   writing.
//! - **No SQL and no HTTP.** Only `auditlog-store` knows SQL and only
//!   `auditlog-server` knows HTTP; this crate knows neither, so a rule cannot
//!   drift between the two.
//!
//! **The one exception** is `log::verify::reader`, the block reader behind
//! [`verify::verify_export`]. It pulls bytes from a `BufRead` the caller
//! hands in (it never opens anything itself) and spreads the SHA-256 work
//! over scoped threads while the next block is read. It lives here, not in
//! the binary, because the reading and the checking are interleaved for
//! speed (an export of millions of records is hashed while it is read, in
//! O(log n) memory), and because `verify_export` is what the fuzz target,
//! the benches and `auditlog verify` all call: splitting it would give each
//! of them a copy of the loop. Everything it calls per line is pure and lives
//! beside it in `log::verify`.
//!
//! # Paths
//!
//! Modules are grouped by concept (`ingest`, `log`, `query`); the paths other
//! crates used before that grouping (`auditlog_core::catalog`,
//! `auditlog_core::merkle`, …) are kept as re-exports below.

pub mod datagen;
pub mod export;
pub mod index;
pub mod ingest;
pub mod log;
pub mod query;
pub mod record;
pub mod secret;

pub use ingest::{catalog, describe, redact, validate, wire};
pub use log::{checkpoint, merkle, verify};
