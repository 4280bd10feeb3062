//! The read path's backend-neutral half: queries planned on the column
//! index, rows the index cannot decide checked against their stored
//! records, pages and exports read by seq, and the Merkle tiles for proofs.

use auditlog_core::index::{LogIndex, Plan, RowFields, RowKey};
use auditlog_core::merkle::{self, Hash, TileReader};

use super::{AccountState, internal};
use crate::backend::{AccountKey, LogReader};
use crate::{Page, QueryWatch, RawRecord, RawSink, Result, Selection, StoreError, StoreErrorKind};

/// Records read and handed to an export's sink at a time.
const EXPORT_BATCH: usize = 1000;

/// Tells the operator that an account's index reached a distinct-value cap:
/// its queries on that column now read records (see [`IndexLimits`]).
pub(super) fn warn_index_overflow(account: &auditlog_core::record::AccountId, index: &LogIndex) {
    let limits = index.limits();
    tracing::warn!(
        account = %account,
        max_distinct = limits.max_distinct,
        max_distinct_bytes = limits.max_distinct_bytes,
        "index distinct-value cap reached: new actors, IP addresses or workflow ids of this account are filtered by reading their records (slower); raise --index-max-distinct to keep them in memory"
    );
}

fn plan(acc: &AccountState, sel: &Selection) -> Plan {
    acc.index.plan(&sel.filters, sel.join, &sel.scope)
}

/// Decides one row the index could not decide (a description filter, a
/// value past the index's distinct-value cap) by reading its stored record
/// and asking [`Plan::matches_record`]. A read error is kept, not
/// swallowed: a scan that met one has no answer, and
/// [`RecordCheck::finish`] returns it.
///
/// One read per candidate row makes this the slow part of a query, so it
/// is where the query's deadline, its cap on records read and its
/// cancellation are checked: once one trips, every further row is answered
/// `false` at once (no read) and the scan of the in-memory index finishes
/// quickly with the error.
struct RecordCheck<'a, R> {
    reader: &'a R,
    account: AccountKey,
    plan: &'a Plan,
    watch: QueryWatch,
    /// Records read since the watch was (re)started.
    reads: u64,
    error: Option<StoreError>,
}

impl<'a, R: LogReader> RecordCheck<'a, R> {
    fn new(reader: &'a R, account: AccountKey, plan: &'a Plan, watch: QueryWatch) -> Self {
        RecordCheck {
            reader,
            account,
            plan,
            watch,
            reads: 0,
            error: None,
        }
    }

    /// Starts the deadline and the count of records read afresh (an
    /// export's walk to its next batch).
    fn restart(&mut self, watch: QueryWatch) {
        self.watch = watch;
        self.reads = 0;
    }

    fn matches(&mut self, seq: u64) -> bool {
        if self.error.is_some() {
            return false;
        }
        // An atomic load and a clock read: noise beside the read.
        if let Err(e) = self.watch.check() {
            self.error = Some(e);
            return false;
        }
        if let Some(max) = self.watch.max_record_reads()
            && self.reads >= max
        {
            self.error = Some(QueryWatch::too_broad(max));
            return false;
        }
        self.reads += 1;
        let plan = self.plan;
        let mut parse_error = None;
        let read = self.reader.with_canonical(
            self.account,
            seq,
            &mut |body| match RowFields::parse(body) {
                Ok(row) => plan.matches_record(&row),
                Err(e) => {
                    parse_error = Some(e);
                    false
                }
            },
        );
        match (read, parse_error) {
            (Ok(_), Some(e)) => {
                self.error = Some(internal(format!("stored record does not parse: {e}")));
                false
            }
            (Ok(m), None) => m,
            (Err(e), _) => {
                self.error = Some(e);
                false
            }
        }
    }

    /// The scan's outcome: the first read error, or a sealed index chunk
    /// that could not be loaded (the answer would be incomplete).
    fn finish(self) -> Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.plan.load_error() {
            Some(why) => Err(internal(format!("reading the column index: {why}"))),
            None => Ok(()),
        }
    }
}

/// [`Store::list`](crate::Store::list) on one account.
pub(super) fn list<R: LogReader>(
    reader: &R,
    acc: &AccountState,
    sel: &Selection,
    watch: QueryWatch,
    after: Option<RowKey>,
    limit: usize,
) -> Result<Page> {
    watch.check()?;
    let plan = plan(acc, sel);
    let mut check = RecordCheck::new(reader, acc.key, &plan, watch.clone());
    let (keys, more) = plan.page(sel.bounds, after, limit, &mut |s| check.matches(s));
    check.finish()?;
    // One read for the page (one statement on PostgreSQL, one snapshot):
    // a read per record was 50 round trips, ~8 ms of a page there.
    let seqs: Vec<u64> = keys.iter().map(|k| k.seq).collect();
    let mut records = Vec::with_capacity(keys.len());
    reader.read_batch(acc.key, &seqs, &mut records)?;
    for raw in &records {
        // Checked here, as the parse that used to read it did: a page is
        // written out as it is.
        std::str::from_utf8(&raw.canonical)
            .map_err(|e| internal(format!("stored record is not UTF-8: {e}")))?;
    }
    let next = if more { keys.last().copied() } else { None };
    Ok(Page { records, next })
}

/// [`Store::count`](crate::Store::count) on one account.
pub(super) fn count<R: LogReader>(
    reader: &R,
    acc: &AccountState,
    sel: &Selection,
    watch: QueryWatch,
) -> Result<u64> {
    watch.check()?;
    let plan = plan(acc, sel);
    let mut check = RecordCheck::new(reader, acc.key, &plan, watch.clone());
    let n = acc
        .index
        .count(&plan, sel.bounds, &mut |s| check.matches(s));
    check.finish()?;
    Ok(n)
}

/// [`Store::histogram`](crate::Store::histogram) on one account.
pub(super) fn histogram<R: LogReader>(
    reader: &R,
    acc: &AccountState,
    sel: &Selection,
    watch: QueryWatch,
    edges: &[i64],
) -> Result<Vec<u64>> {
    watch.check()?;
    let plan = plan(acc, sel);
    let mut check = RecordCheck::new(reader, acc.key, &plan, watch.clone());
    let counts = acc
        .index
        .histogram(&plan, sel.bounds, edges, &mut |s| check.matches(s));
    check.finish()?;
    Ok(counts)
}

/// [`Store::export`](crate::Store::export) on one account, with a reader of
/// its own.
pub(super) fn export<R: LogReader>(
    reader: &R,
    acc: &AccountState,
    sel: &Selection,
    sink: &mut RawSink<'_>,
) -> Result<u64> {
    // The plan is the snapshot: the index's rows when the export started.
    // Rows never change once written, so reading them in many short
    // transactions still gives exactly that snapshot.
    let plan = plan(acc, sel);
    // No cap on records read: an export reads every row it sends anyway,
    // so a description check at most doubles its reads, and what exports
    // cost together is bounded by their slots. Cancellation is shared.
    let control = sel.control.clone().with_max_record_reads(None);
    let mut check = RecordCheck::new(reader, acc.key, &plan, control.start());
    // Walk the plan's snapshot newest first in batches of keys (a few MiB
    // at most, see `ExportKeys`), and read and hand over the records of a
    // batch a thousand at a time: memory stays flat however many rows
    // match.
    let mut walk = plan.export_keys(sel.bounds);
    let mut keys = Vec::new();
    let mut seqs = Vec::with_capacity(EXPORT_BATCH);
    let mut n = 0u64;
    loop {
        // The deadline is per walk to the next batch of keys (the part a
        // description filter makes slow), not for the whole export, which
        // may rightly take minutes.
        check.restart(control.start());
        let more = walk.next_batch(&mut |s| check.matches(s), &mut keys);
        // Rows whose record could not be read were left out of this
        // batch: stop rather than export an incomplete view.
        if let Some(e) = check.error.take() {
            return Err(e);
        }
        if let Some(why) = plan.load_error() {
            return Err(internal(format!("reading the column index: {why}")));
        }
        check.watch.check()?;
        if !more {
            break;
        }
        for part in keys.chunks(EXPORT_BATCH) {
            // One snapshot per batch, ended before the batch is handed
            // over: the sink may wait on a slow client, and a snapshot held
            // meanwhile would keep the database from reclaiming space (the
            // WAL from being checkpointed and rewound).
            seqs.clear();
            seqs.extend(part.iter().map(|k| k.seq));
            let mut batch: Vec<RawRecord> = Vec::with_capacity(part.len());
            reader.read_batch(acc.key, &seqs, &mut batch)?;
            if sel.control.is_cancelled() {
                return Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    "export cancelled: its client went away",
                ));
            }
            n += batch.len() as u64;
            sink(batch)?;
        }
    }
    Ok(n)
}

/// The Merkle tiles of one account, for proofs and tree restoration. Only
/// full tiles are stored: a partial one is derived from the leaf hashes or
/// the full tiles below.
pub(super) struct Tiles<'a, R> {
    pub reader: &'a R,
    pub account: AccountKey,
}

impl<R: LogReader> TileReader for Tiles<'_, R> {
    type Error = StoreError;

    fn read_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>> {
        let want = width as usize * 32;
        let blob = match self.reader.stored_tile(self.account, level, index)? {
            Some(b) if b.len() >= want => b,
            // Not stored (yet): only full tiles are. Derive it from below.
            _ if width < merkle::TILE_WIDTH => return self.derive_tile(level, index, width),
            _ => return Err(internal(format!("tile {level}/{index} is missing"))),
        };
        if blob.len() % 32 != 0 {
            return Err(internal(format!(
                "tile {level}/{index} holds {} bytes, {want} needed",
                blob.len()
            )));
        }
        Ok(blob[..want]
            .chunks_exact(32)
            .map(|c| c.try_into().expect("chunks of 32"))
            .collect())
    }
}

impl<R: LogReader> Tiles<'_, R> {
    /// The first `width` hashes of a tile that is not stored: at level 0 the
    /// leaf hashes of its events, above it the roots of the full tiles of
    /// the level below.
    fn derive_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>> {
        let first = index * u64::from(merkle::TILE_WIDTH);
        if level > 0 {
            return (0..u64::from(width))
                .map(|j| {
                    let below = self.read_tile(level - 1, first + j, merkle::TILE_WIDTH)?;
                    Ok(merkle::full_tile_root(&below))
                })
                .collect();
        }
        self.reader
            .leaf_hashes(self.account, first, first + u64::from(width))
    }
}
