//! The pure heart of auditlog: the event catalog, the record and its canonical
//! form, query semantics (filters, time ranges, cursors), the in-memory column
//! index, the Merkle log with its checkpoints and proofs, and the export
//! encodings.
//!
//! Nothing in this crate performs I/O or reads the clock: callers pass `now`
//! in, so every time-dependent rule is testable at a fixed instant.

pub mod catalog;
pub mod checkpoint;
pub mod datagen;
pub mod describe;
pub mod export;
pub mod index;
pub mod merkle;
pub mod query;
pub mod record;
pub mod redact;
pub mod secret;
pub mod validate;
pub mod verify;
pub mod wire;
