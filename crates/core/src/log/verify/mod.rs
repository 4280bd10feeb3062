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
//! [`Record`] and re-canonicalized, and it is accepted only if it is the same
//! JSON value as its canonical form (no extra, missing or duplicated keys).
//!
//! The `leaf_hash` field is checked against the recomputed hash only to name
//! an edited record precisely; the root comparison is the proof.

use std::io::BufRead;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::log::checkpoint::{Checkpoint, NoteVerifier, OpenNoteError, open_note};
use crate::log::merkle::{CompactRange, Hash, Span, VerifyProofError, hash_leaf, hash_leaf_parts};
use crate::log::merkle::{verify_consistency, verify_inclusion};
use crate::record::Record;

/// What a verified export held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records covered by the checkpoint (its size): every one present once,
    /// unaltered, in its place.
    pub covered: u64,
    /// Seqs at or past the checkpoint's size, ascending: records newer than
    /// the checkpoint, which it cannot vouch for yet.
    pub not_yet_covered: Vec<u64>,
    /// Record lines read.
    pub records: u64,
    /// Lines that were not byte-canonical and were re-canonicalized.
    pub reserialized: u64,
}

/// An export failed verification; names the first wrong record.
///
/// Problems are reported in this order: a line that is not a record at all
/// (by line number), then the record problem with the lowest `seq`, then a
/// root mismatch.
#[derive(Debug, thiserror::Error)]
pub enum VerifyExportError {
    /// The export could not be read.
    #[error("could not read the export")]
    Read(#[source] std::io::Error),
    /// A line is not a record.
    #[error("line {line}: not a record: {reason}")]
    Malformed {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A record's content no longer hashes to its `leaf_hash`.
    #[error(
        "line {line}: record seq {seq} was edited: its content hashes to {computed}, its leaf_hash says {claimed}"
    )]
    Edited {
        /// 1-based line number.
        line: u64,
        /// The seq the line claims.
        seq: u64,
        /// Hex leaf hash of the line's content.
        computed: String,
        /// Hex `leaf_hash` in the line.
        claimed: String,
    },
    /// Two lines hold the same seq.
    #[error("seq {seq} appears twice, at lines {first_line} and {second_line}")]
    Duplicate {
        /// The repeated seq.
        seq: u64,
        /// Line of its first appearance.
        first_line: u64,
        /// Line of its second appearance.
        second_line: u64,
    },
    /// A seq below the checkpoint's size is absent, and later ones are present.
    #[error("record seq {seq} is missing (the checkpoint covers seqs 0 to {last})", last = .size - 1)]
    Missing {
        /// The first absent seq.
        seq: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The export stops before the checkpoint's end: the newest records were cut off.
    #[error(
        "records from seq {first_missing} on are missing: the export stops before the checkpoint's {size} records (the newest were cut off)"
    )]
    CutOff {
        /// The first absent seq; every later one below `size` is absent too.
        first_missing: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// Every seq is present once and self-consistent, yet the tree differs:
    /// a record was altered and its leaf_hash recomputed, or records were
    /// given each other's seq.
    #[error(
        "the records do not hash to the checkpoint's root (computed {computed}): a record was altered and re-sealed, or records were moved to other positions"
    )]
    RootMismatch {
        /// Hex root of the records as exported.
        computed: String,
    },
}

/// One record line, reduced to what the tree needs.
struct Entry {
    seq: u64,
    line: u64,
    leaf: Hash,
}

/// A record line's seq, leaf hash (recomputed) and stated leaf_hash.
struct LineLeaf {
    seq: u64,
    leaf: Hash,
    claimed: Hash,
}

const ID_PREFIX: &[u8] = b"{\"id\":\"";
const SEQ_PREFIX: &[u8] = b"\",\"seq\":";
const HASH_PREFIX: &[u8] = b",\"leaf_hash\":\"";
/// `,"leaf_hash":"` + 64 hex + `"}`.
const SUFFIX_LEN: usize = HASH_PREFIX.len() + 64 + 2;

fn lower_hex_hash(hex: &[u8]) -> Option<Hash> {
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
fn slow_line(line: &[u8]) -> Result<LineLeaf, String> {
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

/// What one export line turned out to be.
enum LineOutcome {
    Blank,
    Record {
        parsed: LineLeaf,
        reserialized: bool,
    },
    Malformed(String),
}

/// Checks one line (its `\n` and an optional `\r` before it included).
fn check_line(raw: &[u8]) -> LineOutcome {
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

/// Bytes of export read and hashed per round; bounds the memory held for
/// line text whatever the export's size.
const BLOCK_BYTES: usize = 8 << 20;

/// Checks the whole lines of `data` (the last may lack its `\n`), in order,
/// into `out` (cleared first).
fn check_lines(data: &[u8], out: &mut Vec<LineOutcome>) {
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

/// Checks the whole lines of `data`, spreading the work over
/// `outcomes.len()` threads; part `k`'s outcomes land in `outcomes[k]`, so
/// reading them in order reads the lines in order. Threads do no I/O and
/// the outcome does not depend on their number: they only share the SHA-256
/// work, which dominates verification. The buffers are reused from block to
/// block: allocated anew for each one, they showed in profiles as page
/// faults.
fn check_block(data: &[u8], outcomes: &mut [Vec<LineOutcome>]) {
    let workers = outcomes.len();
    if workers <= 1 || data.len() < 1 << 20 {
        for out in outcomes.iter_mut() {
            out.clear();
        }
        if let Some(first) = outcomes.first_mut() {
            check_lines(data, first);
        }
        return;
    }
    // Cut into `workers` parts of whole lines.
    let mut parts = Vec::with_capacity(workers);
    let mut start = 0;
    for k in 1..workers {
        let target = (data.len() * k / workers).max(start);
        let end = match data[target..].iter().position(|&b| b == b'\n') {
            Some(p) => target + p + 1,
            None => data.len(),
        };
        parts.push(&data[start..end]);
        start = end;
    }
    parts.push(&data[start..]);
    let (first, others) = outcomes.split_at_mut(1);
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (&part, out) in parts[1..].iter().zip(others.iter_mut()) {
            let mut buf = std::mem::take(out);
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                check_lines(part, &mut buf);
                buf
            });
            match spawned {
                Ok(handle) => handles.push((handle, out)),
                // No thread to be had: that part is done here instead (in
                // a new buffer; the one moved into the closure is gone).
                Err(_) => check_lines(part, out),
            }
        }
        check_lines(parts[0], &mut first[0]);
        for (handle, out) in handles {
            *out = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    });
}

/// Checks `block` on another thread while `read` (the next block) runs on
/// this one, so a file that is not in the page cache is read while the
/// previous block is hashed instead of in turns. (In the 10M-event bench it
/// moved verify from 0.82M to only 0.85M records/s: turn-taking was not the
/// main cost there.)
fn check_while_reading<T>(
    block: &[u8],
    outcomes: &mut Vec<Vec<LineOutcome>>,
    read: impl FnOnce() -> T,
) -> T {
    let workers = outcomes.len();
    let mut bufs = std::mem::take(outcomes);
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
            check_block(block, &mut bufs);
            bufs
        });
        match spawned {
            Ok(checker) => {
                let read = read();
                *outcomes = checker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                read
            }
            // No thread to be had: one after the other, in new buffers.
            Err(_) => {
                *outcomes = (0..workers).map(|_| Vec::new()).collect();
                check_block(block, outcomes);
                read()
            }
        }
    })
}

/// Reads the next round of whole lines into `block`: about
/// [`BLOCK_BYTES`], cut after a newline, the rest carried over in `carry`.
/// Returns false at the end of the export.
fn read_block<R: BufRead>(
    export: &mut R,
    block: &mut Vec<u8>,
    carry: &mut Vec<u8>,
) -> std::io::Result<bool> {
    block.clear();
    block.append(carry);
    loop {
        let buf = export.fill_buf()?;
        if buf.is_empty() {
            return Ok(!block.is_empty());
        }
        let take = buf.len().min(BLOCK_BYTES);
        block.extend_from_slice(&buf[..take]);
        export.consume(take);
        if block.len() >= BLOCK_BYTES
            && let Some(last_newline) = block.iter().rposition(|&b| b == b'\n')
        {
            carry.extend_from_slice(&block[last_newline + 1..]);
            block.truncate(last_newline + 1);
            return Ok(true);
        }
    }
}

/// The record lines read so far, reduced to what the tree and the error
/// report need.
///
/// An export as the server writes it (newest first) or sorted oldest first
/// holds the checkpoint's records as one run of consecutive seqs. The first
/// such run is hashed into a [`Span`] as it is read: O(log n) memory and no
/// sort. Any other record (past the checkpoint, or out of that order) is
/// kept as a 48-byte [`Entry`] and sorted at the end, so every order is
/// still accepted and reported exactly as before.
struct Leaves {
    /// The checkpoint's size: only seqs below it can join the run.
    size: u64,
    run: Option<Run>,
    /// Whether a record broke the run; it grows no more after that.
    run_closed: bool,
    rest: Vec<Entry>,
    records: u64,
}

/// Consecutive seqs read one after the other, in one direction.
struct Run {
    span: Span,
    /// The seq read first, and whether seqs then went down (newest first).
    first: u64,
    descending: Option<bool>,
    /// Where line numbers jump (a blank line, a record outside the run):
    /// `(k, line)` says the `k`-th record of the run (in reading order) is
    /// on `line`, and the records after it on the lines after it.
    line_jumps: Vec<(u64, u64)>,
    last_line: u64,
}

impl Run {
    /// The line the run's record `seq` is on.
    fn line_of(&self, seq: u64) -> u64 {
        let k = seq.abs_diff(self.first);
        let at = self.line_jumps.partition_point(|&(jk, _)| jk <= k);
        let (jk, line) = self.line_jumps[at - 1];
        line + (k - jk)
    }

    /// Adds the record if it continues the run; false if it does not.
    fn extend(&mut self, seq: u64, line: u64, leaf: Hash) -> bool {
        let down = match self.descending {
            _ if seq == self.span.hi() => false,
            _ if seq.checked_add(1) == Some(self.span.lo()) => true,
            _ => return false,
        };
        match self.descending {
            Some(d) if d != down => return false,
            _ => self.descending = Some(down),
        }
        if down {
            self.span.push_front(leaf);
        } else {
            self.span.push_back(leaf);
        }
        if line != self.last_line + 1 {
            self.line_jumps
                .push((self.span.hi() - self.span.lo() - 1, line));
        }
        self.last_line = line;
        true
    }
}

impl Leaves {
    fn new(size: u64) -> Self {
        Self {
            size,
            run: None,
            run_closed: false,
            rest: Vec::new(),
            records: 0,
        }
    }

    fn add(&mut self, seq: u64, line: u64, leaf: Hash) {
        self.records += 1;
        if seq < self.size && !self.run_closed {
            match &mut self.run {
                None => {
                    self.run = Some(Run {
                        span: Span::new(seq, leaf),
                        first: seq,
                        descending: None,
                        line_jumps: vec![(0, line)],
                        last_line: line,
                    });
                    return;
                }
                Some(run) => {
                    if run.extend(seq, line, leaf) {
                        return;
                    }
                    self.run_closed = true;
                }
            }
        }
        self.rest.push(Entry { seq, line, leaf });
    }

    /// Puts the records in their places: the lowest-seq problem among
    /// duplicates, a missing seq and a cut-off end (`edited` competes with
    /// them), else the root they form.
    fn finish(
        mut self,
        edited: Option<(u64, VerifyExportError)>,
    ) -> Result<(Hash, Vec<u64>, u64), VerifyExportError> {
        let size = self.size;
        // Sorting is cheap when the rest is already in (either) seq order,
        // and makes duplicates adjacent, the earlier line first.
        self.rest.sort_unstable_by_key(|e| (e.seq, e.line));

        let mut problem = edited;
        let mut consider = |seq: u64, err: VerifyExportError| {
            if problem.as_ref().is_none_or(|(s, _)| seq < *s) {
                problem = Some((seq, err));
            }
        };
        let mut range = CompactRange::new();
        let mut not_yet_covered = Vec::new();
        let mut missing: Option<u64> = None;
        // The run takes its place among the rest's seqs: before the first
        // entry at or past its start.
        let mut run = self.run.take();
        let place_run = |range: &mut CompactRange, missing: &mut Option<u64>, run: Run| {
            if missing.is_none() && range.size() != run.span.lo() {
                *missing = Some(range.size());
            }
            if missing.is_none() {
                for (level, root) in run.span.subtrees() {
                    range.append_subtree(level, root);
                }
            }
        };
        let mut i = 0;
        while i < self.rest.len() {
            let seq = self.rest[i].seq;
            let same = self.rest[i..].iter().take_while(|e| e.seq == seq).count();
            let in_run = match &run {
                Some(r) if seq >= r.span.lo() => {
                    if seq < r.span.hi() {
                        Some(r.line_of(seq))
                    } else {
                        if let Some(r) = run.take() {
                            place_run(&mut range, &mut missing, r);
                        }
                        None
                    }
                }
                _ => None,
            };
            // The two earliest lines holding this seq, if it is held twice.
            // The run's line comes first: the rest joins only after the
            // run has stopped growing.
            let mut lines = in_run
                .into_iter()
                .chain(self.rest[i..i + same].iter().map(|e| e.line));
            let first = lines.next().unwrap_or(u64::MAX);
            let second = lines.next().unwrap_or(u64::MAX);
            let leaf = self.rest[i].leaf;
            i += same;
            if second != u64::MAX {
                consider(
                    seq,
                    VerifyExportError::Duplicate {
                        seq,
                        first_line: first,
                        second_line: second,
                    },
                );
                if in_run.is_some() {
                    continue;
                }
            }
            if seq >= size {
                not_yet_covered.push(seq);
                continue;
            }
            if missing.is_none() && seq != range.size() {
                missing = Some(range.size());
            }
            if missing.is_none() {
                range.append(leaf);
            }
        }
        if let Some(r) = run.take() {
            place_run(&mut range, &mut missing, r);
        }
        if let Some(seq) = missing {
            consider(seq, VerifyExportError::Missing { seq, size });
        } else if range.size() < size {
            let first_missing = range.size();
            consider(
                first_missing,
                VerifyExportError::CutOff {
                    first_missing,
                    size,
                },
            );
        }
        match problem {
            Some((_, err)) => Err(err),
            None => Ok((range.root(), not_yet_covered, self.records)),
        }
    }
}

/// Verifies a JSONL export against a checkpoint (whose signature the caller
/// has already checked with [`open_note`]): lines in any order, every seq
/// below the checkpoint's size present exactly once and unaltered, and the
/// tree they form has the checkpoint's root. Records past the checkpoint are
/// listed as not yet covered; they must still be well formed, unique and
/// match their own leaf_hash.
///
/// Blank lines are ignored and `\r\n` line ends are accepted; anything else
/// around a record (white space, a byte order mark) makes the line malformed.
/// Memory: two 8 MiB read blocks (one is read while the other is checked),
/// O(log n) for an export in seq order (either way), and about 48 bytes per
/// record line out of that order.
/// Hashing runs on as many threads as
/// [`std::thread::available_parallelism`] allows.
pub fn verify_export<R: BufRead>(
    mut export: R,
    checkpoint: &Checkpoint,
) -> Result<VerifyReport, VerifyExportError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
    let mut outcomes: Vec<Vec<LineOutcome>> = (0..workers).map(|_| Vec::new()).collect();
    let mut leaves = Leaves::new(checkpoint.size);
    let mut reserialized = 0u64;
    let mut edited: Option<(u64, VerifyExportError)> = None;
    let (mut block, mut next, mut carry) = (Vec::new(), Vec::new(), Vec::new());
    let mut line_no = 0u64;
    let mut have_block =
        read_block(&mut export, &mut block, &mut carry).map_err(VerifyExportError::Read)?;
    while have_block {
        let next_read = check_while_reading(&block, &mut outcomes, || {
            read_block(&mut export, &mut next, &mut carry)
        });
        for outcome in outcomes.iter_mut().flat_map(|o| o.drain(..)) {
            line_no += 1;
            let parsed = match outcome {
                LineOutcome::Blank => continue,
                LineOutcome::Malformed(reason) => {
                    return Err(VerifyExportError::Malformed {
                        line: line_no,
                        reason,
                    });
                }
                LineOutcome::Record {
                    parsed,
                    reserialized: r,
                } => {
                    reserialized += u64::from(r);
                    parsed
                }
            };
            if parsed.leaf != parsed.claimed && edited.as_ref().is_none_or(|(s, _)| parsed.seq < *s)
            {
                edited = Some((
                    parsed.seq,
                    VerifyExportError::Edited {
                        line: line_no,
                        seq: parsed.seq,
                        computed: hex::encode(parsed.leaf),
                        claimed: hex::encode(parsed.claimed),
                    },
                ));
            }
            leaves.add(parsed.seq, line_no, parsed.leaf);
        }
        // A read error is reported after the lines read before it.
        have_block = next_read.map_err(VerifyExportError::Read)?;
        std::mem::swap(&mut block, &mut next);
    }

    let (root, not_yet_covered, records) = leaves.finish(edited)?;
    if root != checkpoint.root {
        return Err(VerifyExportError::RootMismatch {
            computed: hex::encode(root),
        });
    }
    Ok(VerifyReport {
        covered: checkpoint.size,
        not_yet_covered,
        records,
        reserialized,
    })
}

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

/// A JSON value parsed strictly: an object with a repeated key is an error
/// (serde_json's own `Value` keeps the last one silently, and another
/// parser could show an auditor the first).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

fn de_strict_value<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    StrictValue::deserialize(d).map(|v| v.0)
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Fixtures and the parser-fuzzing harness, shared by the unit tests, the
/// `fuzz/` target and benchmarks. Not part of the stable API.
#[doc(hidden)]
pub mod testkit {
    use std::collections::BTreeMap;
    use std::sync::OnceLock;

    use super::*;
    use crate::log::checkpoint::NoteSigner;
    use crate::log::merkle::{MemoryTiles, TreeState, consistency_proof, inclusion_proof};
    use crate::record::{Actor, ActorKind, Level, Micros, RecordBody};

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
    /// them: what a throughput measurement of [`verify_export`] needs.
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
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::testkit::*;
    use super::*;
    use crate::log::checkpoint::open_note;

    fn verify(export: &[u8], cp: &Checkpoint) -> Result<VerifyReport, VerifyExportError> {
        verify_export(export, cp)
    }

    #[test]
    fn a_good_export_verifies_in_any_order() {
        let records = sample_records(300);
        let cp = checkpoint_of(&records, 300);
        let report = verify(&export_lines(&records), &cp).expect("verifies");
        assert_eq!(
            report,
            VerifyReport {
                covered: 300,
                not_yet_covered: vec![],
                records: 300,
                reserialized: 0
            }
        );
        let mut reversed = records.clone();
        reversed.reverse();
        verify(&export_lines(&reversed), &cp).expect("newest first verifies");
        let mut shuffled = records.clone();
        for i in 0..shuffled.len() {
            let j = (i * 7919 + 13) % shuffled.len();
            shuffled.swap(i, j);
        }
        verify(&export_lines(&shuffled), &cp).expect("any order verifies");

        // CRLF line ends, a missing final newline and blank lines are fine.
        let crlf = String::from_utf8(export_lines(&records[..5]))
            .expect("utf8")
            .replace('\n', "\r\n");
        verify(crlf.as_bytes(), &checkpoint_of(&records, 5)).expect("CRLF");
        let mut no_final = export_lines(&records[..5]);
        no_final.pop();
        verify(&no_final, &checkpoint_of(&records, 5)).expect("no final newline");
        let mut blank = b"\n".to_vec();
        blank.extend_from_slice(&export_lines(&records[..5]));
        blank.extend_from_slice(b"\n\n");
        verify(&blank, &checkpoint_of(&records, 5)).expect("blank lines");

        // The empty log.
        verify(b"", &checkpoint_of(&records, 0)).expect("empty");
    }

    #[test]
    fn records_past_the_checkpoint_are_not_yet_covered() {
        let records = sample_records(10);
        let cp = checkpoint_of(&records, 6);
        let report = verify(&export_lines(&records), &cp).expect("verifies");
        assert_eq!(report.covered, 6);
        assert_eq!(report.not_yet_covered, vec![6, 7, 8, 9]);
        // A newer record still has to be intact.
        let mut bad = records.clone();
        bad[8].body.description.push('!');
        assert!(matches!(
            verify(&export_lines(&bad), &cp),
            Err(VerifyExportError::Edited {
                seq: 8,
                line: 9,
                ..
            })
        ));
    }

    #[test]
    fn the_first_wrong_record_is_named() {
        let records = sample_records(10);
        let cp = checkpoint_of(&records, 10);

        // Edited content, leaf_hash left as it was.
        let mut edited = records.clone();
        edited[4].body.description = "nothing happened".into();
        edited[7].body.description = "nothing happened".into();
        match verify(&export_lines(&edited), &cp) {
            Err(VerifyExportError::Edited {
                seq: 4, line: 5, ..
            }) => {}
            other => panic!("{other:?}"),
        }

        // Edited and re-sealed: only the root can tell.
        let mut resealed = records.clone();
        resealed[4].body.description = "nothing happened".into();
        resealed[4] = Record::seal(resealed[4].body.clone());
        assert!(matches!(
            verify(&export_lines(&resealed), &cp),
            Err(VerifyExportError::RootMismatch { .. })
        ));

        // Missing in the middle, cut off at the end.
        let mut missing = records.clone();
        missing.remove(3);
        match verify(&export_lines(&missing), &cp) {
            Err(VerifyExportError::Missing { seq: 3, size: 10 }) => {}
            other => panic!("{other:?}"),
        }
        match verify(&export_lines(&records[..7]), &cp) {
            Err(
                e @ VerifyExportError::CutOff {
                    first_missing: 7,
                    size: 10,
                },
            ) => {
                assert!(e.to_string().contains("cut off"), "{e}");
            }
            other => panic!("{other:?}"),
        }

        // Duplicated, with both lines named.
        let mut dup = records.clone();
        dup.push(records[2].clone());
        match verify(&export_lines(&dup), &cp) {
            Err(VerifyExportError::Duplicate {
                seq: 2,
                first_line: 3,
                second_line: 11,
            }) => {}
            other => panic!("{other:?}"),
        }

        // Moved: two records trade places and are re-sealed.
        let mut moved = records.clone();
        moved[2].body.seq = 5;
        moved[5].body.seq = 2;
        moved[2] = Record::seal(moved[2].body.clone());
        moved[5] = Record::seal(moved[5].body.clone());
        assert!(matches!(
            verify(&export_lines(&moved), &cp),
            Err(VerifyExportError::RootMismatch { .. })
        ));
        // Moved without re-sealing: the seq is part of the content.
        let mut moved = records.clone();
        moved[6].body.seq = 60;
        assert!(matches!(
            verify(&export_lines(&moved), &cp),
            Err(VerifyExportError::Edited { seq: 60, .. })
                | Err(VerifyExportError::Missing { seq: 6, .. })
        ));

        // Problems are reported lowest seq first.
        let mut two = records.clone();
        two.remove(8);
        two[1].body.description.push('!');
        match verify(&export_lines(&two), &cp) {
            Err(VerifyExportError::Edited { seq: 1, .. }) => {}
            other => panic!("{other:?}"),
        }

        // A checkpoint of another log.
        let mut other = cp.clone();
        other.root = crate::log::merkle::EMPTY_ROOT;
        assert!(matches!(
            verify(&export_lines(&records), &other),
            Err(VerifyExportError::RootMismatch { .. })
        ));
    }

    /// Exports of several read blocks: the next block is read while one is
    /// checked, and line numbers, precedence and errors must not notice.
    #[test]
    fn exports_of_several_blocks_verify_and_name_lines_across_blocks() {
        let records = sample_records(60_000);
        let cp = checkpoint_of(&records, 60_000);
        let export = export_lines(&records);
        assert!(export.len() > 2 * BLOCK_BYTES, "{} bytes", export.len());
        let report = verify(&export, &cp).expect("verifies");
        assert_eq!((report.covered, report.records), (60_000, 60_000));

        let text = String::from_utf8(export).expect("utf8");
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let last = lines.len() - 1;
        // Line numbers run on across blocks.
        let mut malformed = lines.clone();
        malformed[last] = "not json".into();
        match verify(format!("{}\n", malformed.join("\n")).as_bytes(), &cp) {
            Err(VerifyExportError::Malformed { line, .. }) => assert_eq!(line, last as u64 + 1),
            other => panic!("{other:?}"),
        }
        // An edit in a later block is named by its line.
        lines[45_000] = lines[45_000].replacen("Role", "Rolf", 1);
        match verify(format!("{}\n", lines.join("\n")).as_bytes(), &cp) {
            Err(VerifyExportError::Edited { line, seq, .. }) => {
                assert_eq!((line, seq), (45_001, 45_000))
            }
            other => panic!("{other:?}"),
        }
    }

    /// A read error stops verification, after the lines read before it.
    #[test]
    fn a_read_error_is_reported_after_the_lines_before_it() {
        struct FailsAfter(std::io::Cursor<Vec<u8>>, u64);
        impl std::io::Read for FailsAfter {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.position() >= self.1 {
                    return Err(std::io::Error::other("disk on fire"));
                }
                let room = (self.1 - self.0.position()) as usize;
                let n = buf.len().min(room);
                self.0.read(&mut buf[..n])
            }
        }
        let records = sample_records(40_000);
        let cp = checkpoint_of(&records, 40_000);
        let export = export_lines(&records);
        let cut = (BLOCK_BYTES + BLOCK_BYTES / 2) as u64;
        let read = |data: Vec<u8>| {
            verify_export(
                std::io::BufReader::new(FailsAfter(std::io::Cursor::new(data), cut)),
                &cp,
            )
        };
        assert!(matches!(
            read(export.clone()),
            Err(VerifyExportError::Read(_))
        ));
        // A malformed line in the first block comes first.
        let mut bad = export;
        bad.splice(0..0, b"not json\n".iter().copied());
        assert!(matches!(
            read(bad),
            Err(VerifyExportError::Malformed { line: 1, .. })
        ));
    }

    #[test]
    fn malformed_lines_are_named_by_line_number() {
        let records = sample_records(3);
        let cp = checkpoint_of(&records, 3);
        let good = String::from_utf8(export_lines(&records)).expect("utf8");
        let lines: Vec<&str> = good.lines().collect();
        let cases = [
            format!("{}\nnot json\n{}\n", lines[0], lines[1]),
            format!("{}\n {}\n{}\n", lines[0], lines[1], lines[2]),
            format!("{}\n{}\t\n{}\n", lines[0], lines[1], lines[2]),
            format!("{}\n[1]\n{}\n", lines[0], lines[2]),
            format!("{}\n{{}}\n{}\n", lines[0], lines[2]),
        ];
        for export in &cases {
            match verify(export.as_bytes(), &cp) {
                Err(VerifyExportError::Malformed { line: 2, .. }) => {}
                other => panic!("{export:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_reserialized_export_still_verifies_but_not_with_extra_fields() {
        let records = sample_records(12);
        let cp = checkpoint_of(&records, 12);
        // Another tool's rendering: keys sorted, pretty-ish spacing.
        let mut export = Vec::new();
        for r in &records {
            let v: Value = serde_json::from_slice(&r.to_json_bytes()).expect("json");
            let text = serde_json::to_string(&v)
                .expect("json")
                .replace(",\"", ", \"");
            export.extend_from_slice(text.as_bytes());
            export.push(b'\n');
        }
        let report = verify(&export, &cp).expect("re-serialized verifies");
        assert_eq!(report.reserialized, 12);

        let line = String::from_utf8(records[0].to_json_bytes()).expect("utf8");
        let with_extra = line.replacen("{", "{\"note\":\"hi\",", 1);
        let dup_key = line.replacen("{", "{\"seq\":0,", 1);
        let other_time = line.replacen(".000Z", ".000+00:00", 1);
        let upper_hash = line.replacen(
            &hex::encode(records[0].leaf_hash),
            &hex::encode(records[0].leaf_hash).to_uppercase(),
            1,
        );
        for bad in [with_extra, dup_key, upper_hash] {
            let mut export = export_lines(&records[1..]);
            export.extend_from_slice(bad.as_bytes());
            assert!(
                matches!(
                    verify(&export, &cp),
                    Err(VerifyExportError::Malformed { line: 12, .. })
                ),
                "{bad}"
            );
        }
        // Same instant, other spelling: still the fast shape, so it is hashed
        // as it stands and no longer matches its leaf_hash.
        let mut export = export_lines(&records[1..]);
        export.extend_from_slice(other_time.as_bytes());
        assert!(matches!(
            verify(&export, &cp),
            Err(VerifyExportError::Edited {
                line: 12,
                seq: 0,
                ..
            })
        ));
    }

    #[test]
    fn consistency_bundles_verify_and_fail_precisely() {
        let f = fixture();
        let report =
            verify_consistency_bundle(&f.old_note, &f.note, &f.consistency_json, &f.verifier)
                .expect("consistent");
        assert_eq!((report.old.size, report.new.size), (20, 37));
        // Reversed checkpoints.
        assert!(matches!(
            verify_consistency_bundle(&f.note, &f.old_note, &f.consistency_json, &f.verifier),
            Err(VerifyConsistencyError::Inconsistent(
                VerifyProofError::SizesOutOfOrder { .. }
            ))
        ));
        // A forked log: same size 37, different content.
        let signer = signer();
        let mut records = sample_records(37);
        records[25].body.description = "rewritten".into();
        records[25] = Record::seal(records[25].body.clone());
        let forked = signer
            .sign_checkpoint(&checkpoint_of(&records, 37))
            .expect("sign");
        assert!(matches!(
            verify_consistency_bundle(&f.old_note, &forked, &f.consistency_json, &f.verifier),
            Err(VerifyConsistencyError::Inconsistent(_))
        ));
        // Another log's checkpoint.
        let mut other = checkpoint_of(&sample_records(37), 37);
        other.origin = "audit.example.com/other".into();
        let other = signer.sign_checkpoint(&other).expect("sign");
        assert!(matches!(
            verify_consistency_bundle(&f.old_note, &other, &f.consistency_json, &f.verifier),
            Err(VerifyConsistencyError::OriginMismatch { .. })
        ));
        assert!(matches!(
            verify_consistency_bundle(&f.old_note, &f.note, br#"{"hashes":[],"x":1}"#, &f.verifier),
            Err(VerifyConsistencyError::BadProof(_))
        ));
    }

    #[test]
    fn proof_bundles_verify_alone() {
        let f = fixture();
        let event = verify_proof_bundle(&f.bundle_json, &f.verifier).expect("verifies");
        assert_eq!(event.record.body.seq, 11);
        assert_eq!(event.checkpoint.size, 37);
        assert_eq!(
            open_note(&f.note, &f.verifier).expect("note"),
            event.checkpoint
        );

        let bundle: ProofBundle = serde_json::from_slice(&f.bundle_json).expect("bundle");
        let json = |b: &ProofBundle| serde_json::to_vec(b).expect("json");

        let mut edited = bundle.clone();
        edited.record["description"] = Value::from("nothing happened");
        assert!(matches!(
            verify_proof_bundle(&json(&edited), &f.verifier),
            Err(VerifyBundleError::Edited { seq: 11, .. })
        ));
        let mut wrong_seq = bundle.clone();
        wrong_seq.seq = 12;
        assert!(matches!(
            verify_proof_bundle(&json(&wrong_seq), &f.verifier),
            Err(VerifyBundleError::SeqMismatch { .. })
        ));
        let mut wrong_size = bundle.clone();
        wrong_size.size = 36;
        assert!(matches!(
            verify_proof_bundle(&json(&wrong_size), &f.verifier),
            Err(VerifyBundleError::SizeMismatch { .. })
        ));
        let mut wrong_path = bundle.clone();
        wrong_path.hashes[0][0] ^= 1;
        assert!(matches!(
            verify_proof_bundle(&json(&wrong_path), &f.verifier),
            Err(VerifyBundleError::NotIncluded { seq: 11, .. })
        ));
        let mut other_key = bundle.clone();
        other_key.checkpoint =
            crate::log::checkpoint::NoteSigner::from_seed("audit.example.com", &[9; 32])
                .expect("signer")
                .sign_checkpoint(&open_note(&f.note, &f.verifier).expect("note"))
                .expect("sign");
        assert!(matches!(
            verify_proof_bundle(&json(&other_key), &f.verifier),
            Err(VerifyBundleError::Checkpoint(
                OpenNoteError::UnknownKey { .. }
            ))
        ));
        // Another account's record, re-sealed, under this log's checkpoint.
        let mut body = sample_body(11);
        body.account_id = "other".into();
        let mut other_account = bundle.clone();
        other_account.record =
            serde_json::from_slice(&Record::seal(body).to_json_bytes()).expect("json");
        assert!(matches!(
            verify_proof_bundle(&json(&other_account), &f.verifier),
            Err(VerifyBundleError::AccountMismatch { .. })
        ));
        let mut extra = serde_json::from_slice::<Value>(&f.bundle_json).expect("json");
        extra["extra"] = Value::from(1);
        assert!(matches!(
            verify_proof_bundle(&serde_json::to_vec(&extra).expect("json"), &f.verifier),
            Err(VerifyBundleError::Json(_))
        ));
    }

    /// The fuzz target's property over deterministic mutations of every
    /// parser's known-good input (a few thousand each).
    #[test]
    fn mutated_inputs_are_never_accepted() {
        for target in 0..TARGETS {
            let original = original(target);
            // The originals themselves pass.
            check_target(target, original);
            let mut n = 0;
            // JSON targets are long; sample every third mutation there to
            // keep the suite fast in debug builds.
            let step = if target >= 2 { 3 } else { 1 };
            for m in mutations(original).step_by(step) {
                check_target(target, &m);
                n += 1;
            }
            assert!(n > 1000, "target {target}: {n} mutations");
        }
        let f = fixture();
        assert!(
            verify_consistency_bundle(&f.old_note, &f.note, &f.consistency_json, &f.verifier)
                .is_ok()
        );
        assert!(verify_proof_bundle(&f.bundle_json, &f.verifier).is_ok());
        // The edit-list mode of the fuzz entry point.
        check(&[0x81, 0, 0, 10, b'x', 4, 0, 50, 0]);
        check(&[]);
    }

    fn lines_of(export: &[u8]) -> Vec<Vec<u8>> {
        export
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let mut v = l.to_vec();
                v.push(b'\n');
                v
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_single_byte_change_is_rejected(
            n in 1u64..24,
            pos in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let (export, cp) = export_fixture(n);
            let i = pos.index(export.len());
            prop_assume!(export[i] != byte);
            let mut bad = export.clone();
            bad[i] = byte;
            prop_assert!(verify(&bad, &cp).is_err(), "byte {} set to {:?}", i, byte as char);
        }

        #[test]
        fn deleting_a_record_is_rejected(n in 1u64..24, which in any::<prop::sample::Index>()) {
            let (export, cp) = export_fixture(n);
            let mut lines = lines_of(&export);
            lines.remove(which.index(lines.len()));
            prop_assert!(verify(&lines.concat(), &cp).is_err());
        }

        #[test]
        fn duplicating_a_record_is_rejected(
            n in 1u64..24,
            which in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
        ) {
            let (export, cp) = export_fixture(n);
            let mut lines = lines_of(&export);
            let line = lines[which.index(lines.len())].clone();
            let at = at.index(lines.len() + 1);
            lines.insert(at, line);
            let is_duplicate = matches!(verify(&lines.concat(), &cp), Err(VerifyExportError::Duplicate { .. }));
            prop_assert!(is_duplicate);
        }

        #[test]
        fn swapping_two_records_positions_is_rejected(
            n in 2u64..24,
            a in any::<prop::sample::Index>(),
            b in any::<prop::sample::Index>(),
            reseal in any::<bool>(),
        ) {
            let mut records = sample_records(n);
            let cp = checkpoint_of(&records, n);
            let (a, b) = (a.index(n as usize), b.index(n as usize));
            prop_assume!(a != b);
            records[a].body.seq = b as u64;
            records[b].body.seq = a as u64;
            if reseal {
                records[a] = Record::seal(records[a].body.clone());
                records[b] = Record::seal(records[b].body.clone());
            }
            prop_assert!(verify(&export_lines(&records), &cp).is_err());
        }

        #[test]
        fn truncating_the_export_is_rejected(n in 1u64..24, cut in any::<prop::sample::Index>()) {
            let (export, cp) = export_fixture(n);
            // Every cut but dropping the final newline alone loses data.
            let cut = cut.index(export.len() - 1);
            prop_assert!(verify(&export[..cut], &cp).is_err());
        }

        #[test]
        fn reordering_lines_is_accepted(n in 1u64..24, seed in any::<u64>()) {
            let (export, cp) = export_fixture(n);
            let mut lines = lines_of(&export);
            let mut s = seed;
            for i in (1..lines.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                lines.swap(i, (s >> 33) as usize % (i + 1));
            }
            prop_assert!(verify(&lines.concat(), &cp).is_ok());
        }
    }

    /// The verifier before it streamed: every record kept and sorted, then
    /// placed. The reference the streaming [`Leaves`] must match exactly.
    fn reference_verify(export: &[u8], cp: &Checkpoint) -> Result<VerifyReport, VerifyExportError> {
        let mut outcomes = Vec::new();
        check_lines(export, &mut outcomes);
        let (mut entries, mut reserialized, mut edited) = (Vec::new(), 0, None);
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let line = i as u64 + 1;
            let parsed = match outcome {
                LineOutcome::Blank => continue,
                LineOutcome::Malformed(reason) => {
                    return Err(VerifyExportError::Malformed { line, reason });
                }
                LineOutcome::Record {
                    parsed,
                    reserialized: r,
                } => {
                    reserialized += u64::from(r);
                    parsed
                }
            };
            if parsed.leaf != parsed.claimed && edited.as_ref().is_none_or(|(s, _)| parsed.seq < *s)
            {
                let err = VerifyExportError::Edited {
                    line,
                    seq: parsed.seq,
                    computed: hex::encode(parsed.leaf),
                    claimed: hex::encode(parsed.claimed),
                };
                edited = Some((parsed.seq, err));
            }
            entries.push(Entry {
                seq: parsed.seq,
                line,
                leaf: parsed.leaf,
            });
        }
        entries.sort_by_key(|e| (e.seq, e.line));
        let mut problem = edited;
        let mut consider = |seq: u64, err| {
            if problem.as_ref().is_none_or(|(s, _)| seq < *s) {
                problem = Some((seq, err));
            }
        };
        let (mut leaves, mut not_yet_covered, mut missing) = (Vec::new(), Vec::new(), None);
        for (i, e) in entries.iter().enumerate() {
            if i > 0 && entries[i - 1].seq == e.seq {
                let (first_line, second_line) = (entries[i - 1].line, e.line);
                consider(
                    e.seq,
                    VerifyExportError::Duplicate {
                        seq: e.seq,
                        first_line,
                        second_line,
                    },
                );
                continue;
            }
            if e.seq >= cp.size {
                not_yet_covered.push(e.seq);
            } else if missing.is_none() && e.seq != leaves.len() as u64 {
                missing = Some(leaves.len() as u64);
            } else if missing.is_none() {
                leaves.push(e.leaf);
            }
        }
        let size = cp.size;
        if let Some(seq) = missing {
            consider(seq, VerifyExportError::Missing { seq, size });
        } else if (leaves.len() as u64) < size {
            let first_missing = leaves.len() as u64;
            consider(
                first_missing,
                VerifyExportError::CutOff {
                    first_missing,
                    size,
                },
            );
        }
        if let Some((_, err)) = problem {
            return Err(err);
        }
        let root = crate::log::merkle::root_from_leaves(leaves);
        if root != cp.root {
            return Err(VerifyExportError::RootMismatch {
                computed: hex::encode(root),
            });
        }
        Ok(VerifyReport {
            covered: size,
            not_yet_covered,
            records: entries.len() as u64,
            reserialized,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Exports in the server's order, the opposite one or shuffled,
        /// then damaged (lines repeated, dropped, moved, blanked, edited),
        /// against checkpoints of every size: streaming reports exactly
        /// what sorting everything reported.
        #[test]
        fn streaming_reports_what_sorting_everything_reported(
            n in 1u64..40,
            size in any::<prop::sample::Index>(),
            order in 0u8..3,
            ops in prop::collection::vec((0u8..6, any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..4),
        ) {
            let mut records = sample_records(n);
            let cp = checkpoint_of(&records, size.index(n as usize + 1) as u64);
            match order {
                0 => records.reverse(),
                1 => {}
                _ => {
                    let m = records.len();
                    for i in 0..m {
                        records.swap(i, (i * 7 + 3) % m);
                    }
                }
            }
            let mut lines = lines_of(&export_lines(&records));
            for (op, a, b) in ops {
                let (i, j) = (a.index(lines.len()), b.index(lines.len() + 1));
                match op {
                    0 => { let l = lines[i].clone(); lines.insert(j, l); }
                    1 if lines.len() > 1 => { lines.remove(i); }
                    2 => { let l = lines.remove(i); lines.insert(j.min(lines.len()), l); }
                    3 => lines.insert(j, b"\n".to_vec()),
                    4 => {
                        let text = String::from_utf8(lines[i].clone()).expect("utf8");
                        lines[i] = text.replacen("\"description\":\"", "\"description\":\"x", 1).into_bytes();
                    }
                    _ => {
                        let last = lines.len() - 1;
                        lines.swap(i, j.min(last));
                    }
                }
            }
            let export = lines.concat();
            let got = format!("{:?}", verify(&export, &cp));
            let want = format!("{:?}", reference_verify(&export, &cp));
            prop_assert_eq!(got, want);
        }
    }

    /// Rough throughput of the export verifier; run with
    /// `cargo test --release -p auditlog-core --lib verify_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement, not a test; run in release"]
    fn verify_throughput() {
        let (export, cp) = export_fixture(1_000_000);
        let start = std::time::Instant::now();
        let report = verify_export(&export[..], &cp).expect("verifies");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "verified {} records ({} MB) in {:.3} s: {:.0} records/s",
            report.covered,
            export.len() / 1_000_000,
            secs,
            report.covered as f64 / secs
        );
    }
}
