//! Fixtures and the parser-fuzzing harness, shared by the unit tests, the
//! `fuzz/` target and benchmarks. Not part of the stable API.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::bundle::{Proof, ProofBundle, verify_consistency_bundle, verify_proof_bundle};
use crate::log::checkpoint::{Checkpoint, NoteSigner, NoteVerifier, open_note};
use crate::log::merkle::{MemoryTiles, TreeState, consistency_proof, inclusion_proof};
use crate::record::{Actor, ActorKind, Level, Micros, Record, RecordBody};

/// The origin prefix and account of the fixtures.
pub const ORIGIN: &str = "audit.example.com/acme";

/// A deterministic record body for `seq`, with escapes, non-ASCII text,
/// nulls and numbers in it.
pub fn sample_body(seq: u64) -> RecordBody {
    RecordBody {
        id: format!("01JDX3Q6Z0M3A5V4S2R{seq:07}"),
        seq,
        account_id: "acme".into(),
        level: if seq.is_multiple_of(3) {
            Level::Workflow
        } else {
            Level::Account
        },
        category: "Roles".into(),
        event: "Role created".into(),
        occurred_at: Micros(1_764_064_800_000_000 + seq as i64 * 1000),
        recorded_at: Micros(1_764_064_800_130_000 + seq as i64 * 1000),
        actor: Actor {
            kind: ActorKind::User,
            id: format!("u_{}", seq % 17),
            name: Some("Jane \"JD\" Doe — ops".into()),
            email: seq.is_multiple_of(2).then(|| "jane@example.com".into()),
        },
        ip_address: Some("203.0.113.7".into()),
        workflow_id: seq.is_multiple_of(3).then(|| format!("wf_{}", seq % 5)),
        description: format!("Jane created the role Auditor #{seq}\n"),
        metadata: BTreeMap::from([
            ("role_id".into(), Value::from(format!("r_{seq}"))),
            ("role_type".into(), Value::from("custom")),
            ("weight".into(), Value::from(seq as f64 / 4.0)),
        ]),
    }
}

/// `n` sealed sample records.
pub fn sample_records(n: u64) -> Vec<Record> {
    (0..n).map(|seq| Record::seal(sample_body(seq))).collect()
}

/// A JSONL export of `records`, one line each, in the given order.
pub fn export_lines(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&r.to_json_bytes());
        out.push(b'\n');
    }
    out
}

/// The checkpoint of the first `size` of `records`.
pub fn checkpoint_of(records: &[Record], size: u64) -> Checkpoint {
    let root = crate::log::merkle::root_from_leaves(
        records.iter().take(size as usize).map(|r| r.leaf_hash),
    );
    Checkpoint {
        origin: ORIGIN.into(),
        size,
        root,
    }
}

/// An export of `n` sample records and the checkpoint covering all of
/// them: what a throughput measurement of [`verify_export`](super::verify_export) needs.
pub fn export_fixture(n: u64) -> (Vec<u8>, Checkpoint) {
    let records = sample_records(n);
    (export_lines(&records), checkpoint_of(&records, n))
}

/// The signer of the fixtures (a fixed, public seed).
pub fn signer() -> NoteSigner {
    match NoteSigner::from_seed("audit.example.com", &[7u8; 32]) {
        Ok(s) => s,
        Err(e) => unreachable!("fixed key name is valid: {e}"),
    }
}

/// Known-good inputs of every parser the fuzz target exercises.
pub struct Fixture {
    /// The verifier of every note here.
    pub verifier: NoteVerifier,
    /// A checkpoint body.
    pub body: String,
    /// A signed checkpoint of size 37.
    pub note: String,
    /// A signed checkpoint of size 20 of the same log.
    pub old_note: String,
    /// The consistency proof 20 → 37, as JSON.
    pub consistency_json: Vec<u8>,
    /// A proof bundle for seq 11 under `note`, as JSON.
    pub bundle_json: Vec<u8>,
}

/// The fixture, built once.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let signer = signer();
        let records = sample_records(37);
        let mut tree = TreeState::new();
        let mut tiles = MemoryTiles::new();
        for r in &records {
            tree.append(r.leaf_hash);
        }
        if let Err(e) = tiles.upsert_all(tree.take_dirty_tiles()) {
            unreachable!("fresh tiles extend nothing: {e}");
        }
        let sign = |cp: &Checkpoint| match signer.sign_checkpoint(cp) {
            Ok(n) => n,
            Err(e) => unreachable!("fixture checkpoint signs: {e}"),
        };
        let new = checkpoint_of(&records, 37);
        let old = checkpoint_of(&records, 20);
        let consistency = match consistency_proof(20, 37, &tiles) {
            Ok(h) => h,
            Err(e) => unreachable!("fixture proof: {e}"),
        };
        let inclusion = match inclusion_proof(11, 37, &tiles) {
            Ok(h) => h,
            Err(e) => unreachable!("fixture proof: {e}"),
        };
        let note = sign(&new);
        let bundle = ProofBundle::new(&records[11], 37, inclusion, note.clone());
        Fixture {
            verifier: signer.verifier(),
            body: new.to_body(),
            old_note: sign(&old),
            note,
            consistency_json: serde_json::to_vec(&Proof {
                hashes: consistency,
            })
            .unwrap_or_default(),
            bundle_json: serde_json::to_vec(&bundle).unwrap_or_default(),
        }
    })
}

/// Whether `input` opens as a signed checkpoint under `verifier`.
pub fn note_accepts(input: &[u8], verifier: &NoteVerifier) -> bool {
    std::str::from_utf8(input).is_ok_and(|s| open_note(s, verifier).is_ok())
}

/// The parsers the harness drives, selected by an input's first byte.
pub const TARGETS: u8 = 4;

/// The known-good input of `target` (0 body, 1 note, 2 consistency
/// proof, 3 proof bundle).
pub fn original(target: u8) -> &'static [u8] {
    let f = fixture();
    match target % TARGETS {
        0 => f.body.as_bytes(),
        1 => f.note.as_bytes(),
        2 => &f.consistency_json,
        _ => &f.bundle_json,
    }
}

/// Runs parser `target` on `input` and panics if it accepts something
/// that is not the known-good input (or, for JSON, not the same value):
/// the property the fuzz target checks.
pub fn check_target(target: u8, input: &[u8]) {
    let f = fixture();
    let target = target % TARGETS;
    let original = original(target);
    match target {
        0 => {
            if let Some(cp) = std::str::from_utf8(input)
                .ok()
                .and_then(|s| Checkpoint::parse_body(s).ok())
            {
                // Strictness: a body has exactly one accepted spelling.
                assert_eq!(
                    cp.to_body().as_bytes(),
                    input,
                    "non-canonical checkpoint body accepted"
                );
            }
        }
        1 => {
            if note_accepts(input, &f.verifier) {
                assert_eq!(input, original, "mutated signed note accepted");
            }
        }
        2 => {
            if verify_consistency_bundle(&f.old_note, &f.note, input, &f.verifier).is_ok() {
                let got: Result<Proof, _> = serde_json::from_slice(input);
                let want: Result<Proof, _> = serde_json::from_slice(original);
                assert_eq!(got.ok(), want.ok(), "different consistency proof accepted");
            }
        }
        _ => {
            if verify_proof_bundle(input, &f.verifier).is_ok() {
                let got: Option<Value> = serde_json::from_slice(input).ok();
                let want: Option<Value> = serde_json::from_slice(original).ok();
                assert_eq!(got, want, "different proof bundle accepted");
            }
        }
    }
}

/// The fuzz target's body. The first byte picks the parser; with its
/// high bit clear the rest is the parser's input as is, with it set the
/// rest is a list of edits (4 bytes each: op, position high, position
/// low, byte) applied to the known-good input, so that the fuzzer
/// explores near-valid inputs without a corpus.
pub fn check(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let target = selector & 0x7f;
    if selector & 0x80 == 0 {
        check_target(target, rest);
        return;
    }
    let mut input = original(target).to_vec();
    for edit in rest.chunks_exact(4) {
        apply_edit(
            &mut input,
            edit[0],
            usize::from(u16::from_be_bytes([edit[1], edit[2]])),
            edit[3],
        );
    }
    check_target(target, &input);
}

fn apply_edit(input: &mut Vec<u8>, op: u8, pos: usize, byte: u8) {
    let len = input.len();
    match op % 5 {
        0 if len > 0 => input[pos % len] ^= 1 << (byte % 8),
        1 if len > 0 => input[pos % len] = byte,
        2 => input.insert(pos % (len + 1), byte),
        3 if len > 0 => {
            input.remove(pos % len);
        }
        4 => input.truncate(pos % (len + 1)),
        _ => {}
    }
}

/// Deterministic mutations of `original`, none equal to it: every bit
/// flip, every truncation, a deletion at every position, and insertions
/// of a few interesting bytes at every position.
pub fn mutations(original: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let len = original.len();
    let flips = (0..len * 8).map(move |i| {
        let mut m = original.to_vec();
        m[i / 8] ^= 1 << (i % 8);
        m
    });
    let truncations = (0..len).map(move |n| original[..n].to_vec());
    let deletions = (0..len).map(move |i| {
        let mut m = original.to_vec();
        m.remove(i);
        m
    });
    let inserted: &[u8] = b"\n \t0{\"+/=\\";
    let insertions = (0..=len).flat_map(move |i| {
        inserted.iter().map(move |&b| {
            let mut m = original.to_vec();
            m.insert(i, b);
            m
        })
    });
    flips
        .chain(truncations)
        .chain(deletions)
        .chain(insertions)
        .filter(move |m| m != original)
}
