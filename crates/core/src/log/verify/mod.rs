//! Offline verification, as `auditlog verify` runs it: a JSONL export against
//! a signed checkpoint, two checkpoints against a consistency proof, and a
//! self-contained proof bundle for one event. Pure functions over bytes the
//! caller has read; nothing here opens a file.
//!
//! # How an export is checked
//!
//! Each export line is a record's canonical JSON with
//! `,"leaf_hash":"<hex>"` inserted before the closing brace. The verifier
//! strips that suffix, hashes the remaining bytes plus `}` as the leaf, and
//! reads `seq` from the line's fixed prefix `{"id":"…","seq":N,`: no JSON
//! parsing on the fast path. That is sound because integrity does not come
//! from parsing: if a line's bytes hash to the leaf the signed root commits
//! to at position `seq`, they are exactly the committed bytes. Only a line
//! without that exact shape (re-serialized by another tool) is parsed into a
//! [`Record`](crate::record::Record) and re-canonicalized, and it is
//! accepted only if it is the same JSON value as its canonical form (no
//! extra, missing or duplicated keys).
//!
//! The `leaf_hash` field is checked against the recomputed hash only to name
//! an edited record precisely; the root comparison is the proof.
//!
//! # Layout
//!
//! `line` checks one line, `reader` feeds an export's lines to the
//! checker on threads (the crate's one reader of bytes), `export` folds them
//! into the tree, `bundle` checks proofs on their own, and `strict` is the
//! JSON reader that refuses repeated keys.

mod bundle;
mod export;
mod line;
mod reader;
mod strict;
#[doc(hidden)]
pub mod testkit;
#[cfg(test)]
mod tests;

pub use bundle::{
    ConsistencyReport, Proof, ProofBundle, VerifiedEvent, VerifyBundleError,
    VerifyConsistencyError, verify_consistency_bundle, verify_proof_bundle,
};
pub use export::{VerifyExportError, VerifyReport, verify_export};
