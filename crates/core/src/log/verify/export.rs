//! Verification of a JSONL export against a checkpoint: every line's
//! outcome (from [`super::reader`]) folded into the tree the records form,
//! with the first wrong record named precisely.

use std::io::BufRead;

use super::line::LineOutcome;
use super::reader::for_each_line;
use crate::log::checkpoint::Checkpoint;
use crate::log::merkle::{CompactRange, Hash, Span};

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
pub(super) struct Entry {
    pub(super) seq: u64,
    pub(super) line: u64,
    pub(super) leaf: Hash,
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
/// has already checked with
/// [`open_note`](crate::log::checkpoint::open_note)): lines in any order,
/// every seq below the checkpoint's size present exactly once and
/// unaltered, and the tree they form has the checkpoint's root. Records past the checkpoint are
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
    export: R,
    checkpoint: &Checkpoint,
) -> Result<VerifyReport, VerifyExportError> {
    let mut leaves = Leaves::new(checkpoint.size);
    let mut reserialized = 0u64;
    let mut edited: Option<(u64, VerifyExportError)> = None;
    let mut line_no = 0u64;
    let on_line = |outcome: LineOutcome| {
        line_no += 1;
        let parsed = match outcome {
            LineOutcome::Blank => return Ok(()),
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
        if parsed.leaf != parsed.claimed && edited.as_ref().is_none_or(|(s, _)| parsed.seq < *s) {
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
        Ok(())
    };
    for_each_line(export, on_line, VerifyExportError::Read)?;

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
