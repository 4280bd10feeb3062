//! The per-account tamper-evident log: the Merkle tree kept as tiles, the
//! signed checkpoints of its root, and the offline verification of exports,
//! consistency proofs and proof bundles against them.

pub mod checkpoint;
pub mod merkle;
pub mod verify;
