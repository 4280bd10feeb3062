//! Integration tests of the HTTP API: the real router on a real socket
//! against a real SQLite store in a temporary directory (one binary, one
//! module per area, as STYLE.md rule 8 asks).

mod access;
mod export;
mod helpers;
mod idempotency;
mod ingest;
mod ops;
mod query;
mod reads;
mod tlog;
mod tokens;
