//! Proofs checked on their own: two checkpoints against a consistency
//! proof, and a self-contained proof bundle for one event.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::line::{lower_hex_hash, slow_line};
use super::strict::de_strict_value;
use crate::log::checkpoint::{Checkpoint, NoteVerifier, OpenNoteError, open_note};
use crate::log::merkle::{Hash, VerifyProofError, verify_consistency, verify_inclusion};
use crate::record::Record;

/// A proof as the API returns it: `{"hashes": ["<64 lowercase hex>", …]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    /// The proof's hashes, in RFC 9162 order.
    #[serde(serialize_with = "ser_hashes", deserialize_with = "de_hashes")]
    pub hashes: Vec<Hash>,
}

fn ser_hashes<S: Serializer>(hashes: &[Hash], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(hashes.iter().map(hex::encode))
}

fn de_hashes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
    let strings = Vec::<String>::deserialize(d)?;
    strings
        .iter()
        .map(|s| {
            lower_hex_hash(s.as_bytes())
                .ok_or_else(|| de::Error::custom("expected 64 lowercase hex characters"))
        })
        .collect()
}

/// Two checkpoints proven consistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyReport {
    /// The older checkpoint.
    pub old: Checkpoint,
    /// The newer checkpoint, which extends the older one.
    pub new: Checkpoint,
}

/// A consistency check failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyConsistencyError {
    /// The old checkpoint did not open.
    #[error("old checkpoint")]
    OldCheckpoint(#[source] OpenNoteError),
    /// The new checkpoint did not open.
    #[error("new checkpoint")]
    NewCheckpoint(#[source] OpenNoteError),
    /// The checkpoints are of different logs.
    #[error("checkpoints are of different logs: {old:?} and {new:?}")]
    OriginMismatch {
        /// Origin of the old checkpoint.
        old: String,
        /// Origin of the new checkpoint.
        new: String,
    },
    /// The proof file is not a proof.
    #[error("invalid proof JSON")]
    BadProof(#[source] serde_json::Error),
    /// The proof does not show the old tree is a prefix of the new one.
    #[error("the log was rewritten between the checkpoints, or the proof is wrong")]
    Inconsistent(#[source] VerifyProofError),
}

/// Checks that the log of `new_note` extends the log of `old_note` (both
/// signed by `verifier`, same origin) with a consistency proof
/// (`{"hashes": […]}`).
pub fn verify_consistency_bundle(
    old_note: &str,
    new_note: &str,
    proof_json: &[u8],
    verifier: &NoteVerifier,
) -> Result<ConsistencyReport, VerifyConsistencyError> {
    let old = open_note(old_note, verifier).map_err(VerifyConsistencyError::OldCheckpoint)?;
    let new = open_note(new_note, verifier).map_err(VerifyConsistencyError::NewCheckpoint)?;
    if old.origin != new.origin {
        return Err(VerifyConsistencyError::OriginMismatch {
            old: old.origin,
            new: new.origin,
        });
    }
    let proof: Proof =
        serde_json::from_slice(proof_json).map_err(VerifyConsistencyError::BadProof)?;
    verify_consistency(old.size, new.size, &old.root, &new.root, &proof.hashes)
        .map_err(VerifyConsistencyError::Inconsistent)?;
    Ok(ConsistencyReport { old, new })
}

/// Everything needed to check one event offline, like C2SP tlog-proof: the
/// record, its inclusion path, and the signed checkpoint the path leads to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofBundle {
    /// The record as the API returns it (with `leaf_hash`).
    #[serde(deserialize_with = "de_strict_value")]
    pub record: Value,
    /// The record's position in the log.
    pub seq: u64,
    /// The tree size of the checkpoint.
    pub size: u64,
    /// The inclusion path, RFC 9162 order, 64 lowercase hex each.
    #[serde(serialize_with = "ser_hashes", deserialize_with = "de_hashes")]
    pub hashes: Vec<Hash>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

impl ProofBundle {
    /// A bundle for `record`, proven into the tree of `size` leaves by
    /// `hashes`, under the signed checkpoint `checkpoint_note`.
    pub fn new(record: &Record, size: u64, hashes: Vec<Hash>, checkpoint_note: String) -> Self {
        Self {
            // A record's JSON always parses back; Null would fail verification.
            record: serde_json::from_slice(&record.to_json_bytes()).unwrap_or(Value::Null),
            seq: record.body.seq,
            size,
            hashes,
            checkpoint: checkpoint_note,
        }
    }
}

/// A proof bundle that verified.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedEvent {
    /// The record, proven part of the log.
    pub record: Record,
    /// The checkpoint it is proven under.
    pub checkpoint: Checkpoint,
}

/// A proof bundle failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyBundleError {
    /// Not a proof bundle.
    #[error("invalid proof bundle JSON")]
    Json(#[source] serde_json::Error),
    /// The record is not a record in canonical shape.
    #[error("the bundle's record is invalid: {0}")]
    BadRecord(String),
    /// The record's content does not hash to its leaf_hash.
    #[error(
        "record seq {seq} was edited: its content hashes to {computed}, its leaf_hash says {claimed}"
    )]
    Edited {
        /// The record's seq.
        seq: u64,
        /// Hex hash of the content.
        computed: String,
        /// Hex leaf_hash stated.
        claimed: String,
    },
    /// The record's seq is not the bundle's.
    #[error("the record has seq {record}, the bundle proves seq {bundle}")]
    SeqMismatch {
        /// Seq in the record.
        record: u64,
        /// Seq in the bundle.
        bundle: u64,
    },
    /// The checkpoint did not open.
    #[error("checkpoint")]
    Checkpoint(#[source] OpenNoteError),
    /// The bundle's size is not the checkpoint's.
    #[error("the bundle proves tree size {bundle}, the checkpoint is of size {checkpoint}")]
    SizeMismatch {
        /// Size in the bundle.
        bundle: u64,
        /// Size in the checkpoint.
        checkpoint: u64,
    },
    /// The checkpoint is of another account's log.
    #[error("the record is of account {account:?}, the checkpoint of log {origin:?}")]
    AccountMismatch {
        /// The record's account.
        account: String,
        /// The checkpoint's origin.
        origin: String,
    },
    /// The inclusion path does not lead to the checkpoint's root.
    #[error("the record is not in the log at seq {seq}")]
    NotIncluded {
        /// The seq proven.
        seq: u64,
        /// Why the path failed.
        #[source]
        source: VerifyProofError,
    },
}

/// Verifies a proof bundle on its own: the record hashes to its leaf, the
/// path leads from it to the root of the checkpoint, the checkpoint is
/// signed by `verifier`, and the checkpoint is of the record's account.
pub fn verify_proof_bundle(
    bundle_json: &[u8],
    verifier: &NoteVerifier,
) -> Result<VerifiedEvent, VerifyBundleError> {
    let bundle: ProofBundle =
        serde_json::from_slice(bundle_json).map_err(VerifyBundleError::Json)?;
    let json = serde_json::to_vec(&bundle.record).map_err(VerifyBundleError::Json)?;
    let line = slow_line(&json).map_err(VerifyBundleError::BadRecord)?;
    if line.leaf != line.claimed {
        return Err(VerifyBundleError::Edited {
            seq: line.seq,
            computed: hex::encode(line.leaf),
            claimed: hex::encode(line.claimed),
        });
    }
    if line.seq != bundle.seq {
        return Err(VerifyBundleError::SeqMismatch {
            record: line.seq,
            bundle: bundle.seq,
        });
    }
    let checkpoint =
        open_note(&bundle.checkpoint, verifier).map_err(VerifyBundleError::Checkpoint)?;
    if checkpoint.size != bundle.size {
        return Err(VerifyBundleError::SizeMismatch {
            bundle: bundle.size,
            checkpoint: checkpoint.size,
        });
    }
    let record: Record = serde_json::from_value(bundle.record)
        .map_err(|e| VerifyBundleError::BadRecord(e.to_string()))?;
    if checkpoint.account() != Some(record.body.account_id.as_str()) {
        return Err(VerifyBundleError::AccountMismatch {
            account: record.body.account_id,
            origin: checkpoint.origin,
        });
    }
    verify_inclusion(
        &line.leaf,
        bundle.seq,
        bundle.size,
        &bundle.hashes,
        &checkpoint.root,
    )
    .map_err(|source| VerifyBundleError::NotIncluded {
        seq: bundle.seq,
        source,
    })?;
    Ok(VerifiedEvent { record, checkpoint })
}
