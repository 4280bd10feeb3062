//! The column index: a compact, in-memory copy of the few columns every
//! dashboard query filters on, scanned instead of asking the database.
//!
//! Why: the dashboard asks for an exact count, a histogram and the first page
//! of any filter shape at once, including "not equal" filters over all time.
//! B-tree indexes answer the first page well but counts and `ne` filters
//! poorly (they visit every matching row through the table). Here each event
//! is 22 bytes — time (`i64`), event (`u16` catalog id, which also gives the
//! category and level), actor, IP and workflow (`u32` dictionary ids) — and
//! a filter becomes one table look-up per column per row. Text comparison
//! happens once per distinct value (the dictionaries), never per row.
//!
//! The index is derived data: the store appends to it after each commit and
//! before acknowledging, so a query sees every acknowledged event (read your
//! writes). A paged index ([`LogIndex::paged`]) persists each full chunk as a
//! sealed segment in the store ([`LogIndex::unsealed`], `segment.rs`) and
//! from then on holds only its summary; the chunk itself is loaded through
//! the process-wide [`SegmentCache`] when a query needs it. At start-up the
//! store restores it from the segments' summaries ([`LogIndex::restore`]) and
//! the rows after the last one, instead of from every row.
//!
//! Concurrency: rows live in chunks of [`CHUNK_ROWS`]. Full chunks are
//! immutable and shared (`Arc`); the tail chunk is copied on write only when
//! a reader still holds it. Readers take the lock just long enough to clone
//! the chunk list (and note the dictionaries' sizes), then build their
//! look-up tables a slice of values per hold ([`LogIndex::plan`]) and scan
//! without it, so neither a long scan nor a huge dictionary holds up the
//! writer.
//!
//! Description filters are not indexed (descriptions are mostly unique and
//! large); the caller passes a record check, a closure that reads the
//! stored record of a row the indexed columns cannot decide and answers it
//! with [`Plan::matches_record`].
//!
//! Layout, one concept per file. Each child file uses items of this module
//! and of the files above it in this list, never of one below it, so there
//! is no import circle between them:
//!
//! - `mod.rs`: [`LogIndex`] (rows appended into chunks, the rollups kept on
//!   append), [`IndexRow`], [`IndexLimits`], [`Scope`], [`TimeBounds`];
//! - `segment.rs`: the stored form of a sealed chunk (summary and columns,
//!   versioned and checksummed) and its per-actor postings;
//! - `cache.rs`: [`SegmentCache`], sealed segments in memory within a budget;
//! - `dict.rs`: the dictionaries (`Dict`, `Actors`) and their overflow ids;
//! - `pager.rs`: sealing, restoring, and loading (or repairing) segments;
//! - `plan.rs`: [`LogIndex::plan`] builds a [`Plan`]'s look-up tables over a
//!   snapshot; [`RowFields`] and [`Plan::matches_record`] for the record check;
//! - `summary.rs`: per-chunk summaries (which values occur, how often) and
//!   a plan's verdict on a chunk from them;
//! - `scan.rs`: the scan of a chunk's rows for any plan, and the page
//!   built on it;
//! - `kernel.rs`: count and histogram, a chunk at a time: branch-free for a
//!   plan the index decides alone, else by the scan;
//! - `rollup.rs`: the faster answers of [`LogIndex::count`] and
//!   [`LogIndex::histogram`], from the rollups and the segments' postings;
//! - `export.rs`: [`ExportKeys`], the export's walk in time windows.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::catalog::EventId;
use crate::record::WorkflowId;

mod cache;
mod column;
mod dict;
mod export;
mod kernel;
mod pager;
mod plan;
mod rollup;
mod scan;
mod segment;
mod summary;
#[cfg(test)]
mod tests;

pub use cache::{CacheStats, SegmentCache};
use column::Col;
use dict::{Actors, Dict};
pub use export::{EXPORT_KEYS_MAX, ExportKeys};
pub use pager::{Restored, SealedSegment, SegmentSource, StoredTail};
pub use plan::{Plan, RowFields};
pub use segment::{COLUMNS_VERSION, SEGMENT_VERSION, Segment, SegmentError, same_columns};
use summary::ChunkSummary;
// One result row's key is also what a list cursor carries, so a page's last
// row is the next page's cursor as is. It is defined beside the cursor
// encoding, since `query` must not depend on the index (the index uses
// `query`'s filters).
pub use crate::query::RowKey;

/// Rows per chunk: large enough that the chunk list stays short, small
/// enough that copying the tail (at most ~1.4 MB) is cheap. Row offsets in
/// a chunk fit 16 bits (the segments' postings rely on it). The index's own
/// tests use small chunks, so that a few hundred generated rows cross many
/// chunk and segment boundaries.
#[cfg(not(test))]
pub const CHUNK_ROWS: usize = 1 << 16;
#[cfg(test)]
pub const CHUNK_ROWS: usize = 64;

/// Dictionary id meaning "absent" for optional columns.
const ABSENT: u32 = 0;

/// Dictionary id of every value that arrived after its dictionary was full
/// ([`IndexLimits::max_distinct`]); actor id of every such actor. The row
/// still exists and is counted; only its value is not in memory, so a
/// filter on that column decides it from the stored record.
const OVERFLOW: u32 = 1;
const ACTOR_OVERFLOW: u32 = 0;

/// What one account's index may hold in memory, whatever clients send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexLimits {
    /// Distinct values kept per column (actor ids, display names, actor
    /// pairs, IP addresses, workflow ids). Past it a new value is stored
    /// and exported as always, but the index holds one shared overflow id
    /// for it, and a filter on that column reads such rows' records (the
    /// slower path) instead of deciding them from memory.
    pub max_distinct: usize,
    /// Bytes of text (values and their normalized forms) kept per column:
    /// the same cap in bytes, since one value may be 1,024 characters.
    pub max_distinct_bytes: usize,
}

impl IndexLimits {
    /// 100,000 distinct values or 16 MiB of text per column, whichever
    /// comes first: ten times a large organisation's users. With the
    /// per-value overhead (~90 bytes) an account's dictionaries stay under
    /// ~100 MiB whatever its clients send; a typical one takes a few MiB.
    pub const DEFAULT: IndexLimits = IndexLimits {
        max_distinct: 100_000,
        max_distinct_bytes: 16 << 20,
    };
}

impl Default for IndexLimits {
    fn default() -> Self {
        IndexLimits::DEFAULT
    }
}

/// What the index keeps of one event.
#[derive(Clone, Copy, Debug)]
pub struct IndexRow<'a> {
    pub occurred_at_us: i64,
    pub event: EventId,
    pub actor_id: &'a str,
    pub actor_name: Option<&'a str>,
    pub ip_address: Option<&'a str>,
    pub workflow_id: Option<&'a str>,
}

#[derive(Clone, Default, Debug, PartialEq, Eq)]
struct Chunk {
    time: Col<i64>,
    event: Col<u16>,
    actor: Col<u32>,
    ip: Col<u32>,
    workflow: Col<u32>,
    min_time: i64,
    max_time: i64,
}

impl Chunk {
    fn len(&self) -> usize {
        self.time.len()
    }

    /// Its columns as plain slices, for loops that read them row by row
    /// (a [`Col`] decides where it lives on every access).
    fn columns(&self) -> Columns<'_> {
        Columns {
            time: &self.time,
            event: &self.event,
            actor: &self.actor,
            ip: &self.ip,
            workflow: &self.workflow,
        }
    }

    /// Bytes its columns hold.
    fn bytes(&self) -> usize {
        self.time.bytes()
            + self.event.bytes()
            + self.actor.bytes()
            + self.ip.bytes()
            + self.workflow.bytes()
    }

    fn empty() -> Chunk {
        Chunk {
            min_time: i64::MAX,
            max_time: i64::MIN,
            ..Chunk::default()
        }
    }
}

/// A chunk's columns, borrowed as slices.
#[derive(Clone, Copy)]
struct Columns<'a> {
    time: &'a [i64],
    event: &'a [u16],
    actor: &'a [u32],
    ip: &'a [u32],
    workflow: &'a [u32],
}

/// A chunk as the index (and a plan's snapshot) holds it.
#[derive(Clone, Debug)]
enum ChunkRef {
    /// In memory: the growing tail, a full chunk whose segment is not
    /// stored yet, or every chunk of an index without a store.
    Resident(Arc<Chunk>),
    /// Stored as a segment: loaded through the cache when a query needs it.
    Sealed(SealedMeta),
}

/// What the index keeps of a sealed chunk: enough to skip it.
#[derive(Clone, Copy, Debug)]
struct SealedMeta {
    no: u32,
    rows: u32,
    min_time: i64,
    max_time: i64,
}

impl ChunkRef {
    fn len(&self) -> usize {
        match self {
            ChunkRef::Resident(c) => c.len(),
            ChunkRef::Sealed(m) => m.rows as usize,
        }
    }

    fn min_time(&self) -> i64 {
        match self {
            ChunkRef::Resident(c) => c.min_time,
            ChunkRef::Sealed(m) => m.min_time,
        }
    }

    fn max_time(&self) -> i64 {
        match self {
            ChunkRef::Resident(c) => c.max_time,
            ChunkRef::Sealed(m) => m.max_time,
        }
    }
}

/// A chunk in hand for a scan: resident, or a loaded segment (with its
/// postings).
enum Held {
    Resident(Arc<Chunk>),
    Segment(Arc<Segment>),
}

impl std::ops::Deref for Held {
    type Target = Chunk;
    fn deref(&self) -> &Chunk {
        match self {
            Held::Resident(c) => c,
            Held::Segment(s) => &s.chunk,
        }
    }
}

impl Held {
    fn postings(&self) -> Option<&segment::Postings> {
        match self {
            Held::Resident(_) => None,
            Held::Segment(s) => Some(&s.postings),
        }
    }
}

/// Rollup granularity: 15 minutes. Every UTC offset in use is a multiple of
/// 15 minutes, so every day or hour boundary of any viewer's zone — hence
/// every preset, custom range and histogram edge — falls on a slot edge.
pub const SLOT_US: i64 = 15 * 60 * 1_000_000;

/// Events per (slot, catalog event): sparse, since a slot holds a few dozen
/// distinct events at most.
type Rollup = BTreeMap<i64, Vec<(u16, u32)>>;

/// What one rollup slot costs besides its entries: its key and vector in
/// a B-tree node (32, nodes about half full when filled in time order)
/// and the vector's allocation (at least four entries).
const ROLLUP_SLOT_BYTES: usize = 96;
/// What one (event, count) entry of a slot costs, with the vector's
/// spare room.
const ROLLUP_ENTRY_BYTES: usize = 12;
/// One row of a chunk: time, event, actor, IP, workflow.
const ROW_BYTES: usize = 22;
/// An index of one row: its struct and the first allocations of its maps,
/// vectors and rollup (measured ~3 KiB by the `open_bytes` example).
const EMPTY_INDEX_BYTES: usize = 3 << 10;

/// Most heap bytes of chunk summaries one index keeps: past it, the oldest
/// chunks' summaries are dropped. A summary grows with the chunk's
/// distinct values (~16 KB a chunk at the bench's 2,000 users, 0.25 bytes
/// an event), so without a bound an account's open index would grow with
/// its log (+24 MiB at 100M events, `restore_cost` example); 16 MiB keeps
/// the newest ~1,000 such chunks (~65M events). Tests keep a few chunks'.
const SUMMARY_BYTES_MAX: usize = if cfg!(test) { 1 << 10 } else { 16 << 20 };

struct Inner {
    chunks: Vec<ChunkRef>,
    /// The summary of each full chunk (`summaries[i]` is chunk `i`'s):
    /// computed once as the chunk fills, since full chunks never change,
    /// or from its stored segment's summary when restored (event and actor
    /// columns only, see `summary::from_stored`); `None` for a restored
    /// chunk whose stored counts do not add up, and for the oldest chunks
    /// past [`SUMMARY_BYTES_MAX`] (such chunks are read row by row:
    /// loaded, when sealed).
    summaries: Vec<Option<Arc<ChunkSummary>>>,
    /// `summaries[..first_summary]` are dropped ([`Inner::push_summary`]).
    first_summary: usize,
    /// The length the index had when its growing chunk was restored from
    /// a stored tail, or last stored as one: while it still has it, that
    /// tail is what is stored ([`LogIndex::changed_tail`]).
    restored_tail_len: Option<u64>,
    rollup: Rollup,
    /// Entries of `rollup` (slot, event): with `rollup.len()`, what it
    /// costs ([`LogIndex::open_bytes`]) without a walk.
    rollup_entries: usize,
    /// Heap bytes of `summaries`, kept as they are added.
    summary_bytes: usize,
    /// Chunks whose segments are stored (`chunks[..sealed]` are
    /// [`ChunkRef::Sealed`]).
    sealed: usize,
    /// Dictionary sizes the stored segments' summaries cover: a new
    /// segment's summary holds the entries from these on.
    stored_dicts: pager::DictMarks,
    /// Per full chunk, the dictionaries' sizes and overflow flags the
    /// moment it filled: what its segment's summary covers, so that every
    /// process sealing it writes the same bytes (see `pager.rs`).
    fills: Vec<pager::Fill>,
    /// Rows per actor pair (pair 0: the overflow actor): what tells whether
    /// a `user` filter picks few rows (postings) or many (a scan).
    actor_rows: Vec<u64>,
    len: u64,
    min_time: i64,
    limits: IndexLimits,
    actors: Actors,
    user_ids: Dict,
    names: Dict,
    ips: Dict,
    workflows: Dict,
}

impl Inner {
    fn overflowed(&self) -> bool {
        self.actors.overflowed || self.ips.overflowed || self.workflows.overflowed
    }
}

/// The column index of one account's log; rows are appended in `seq` order,
/// so a row's position is its `seq`.
pub struct LogIndex {
    core: Arc<Core>,
}

/// What a [`LogIndex`] and its plans share: plans load sealed chunks (and
/// repair them from rows against the dictionaries) after the index moved
/// on.
struct Core {
    inner: RwLock<Inner>,
    /// Where sealed segments are stored and cached; `None`: an index held
    /// wholly in memory.
    pager: Option<pager::Pager>,
}

impl Core {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the index half-written
        // in a way readers would misread (lengths are updated last), so a
        // poisoned lock is still usable.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for LogIndex {
    fn default() -> Self {
        LogIndex::new(IndexLimits::DEFAULT)
    }
}

impl std::fmt::Debug for LogIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogIndex")
            .field("len", &self.len())
            .finish()
    }
}

/// Which part of the log a query looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The whole account log.
    Account,
    /// One workflow's own view: its workflow-level events.
    Workflow(WorkflowId),
}

/// Half-open time bounds in Unix microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeBounds {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl TimeBounds {
    pub const ALL: TimeBounds = TimeBounds {
        start: None,
        end: None,
    };

    fn contains(&self, t: i64) -> bool {
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t < e)
    }

    fn overlaps(&self, min: i64, max: i64) -> bool {
        self.start.is_none_or(|s| max >= s) && self.end.is_none_or(|e| min < e)
    }
}

impl Inner {
    /// Adds the next full chunk's summary, then drops the oldest ones
    /// while they hold more than [`SUMMARY_BYTES_MAX`].
    fn push_summary(&mut self, summary: Option<Arc<ChunkSummary>>) {
        self.summary_bytes += summary.as_ref().map_or(0, |s| s.heap_bytes());
        self.summaries.push(summary);
        while self.summary_bytes > SUMMARY_BYTES_MAX && self.first_summary < self.summaries.len() {
            if let Some(old) = self.summaries[self.first_summary].take() {
                self.summary_bytes -= old.heap_bytes();
            }
            self.first_summary += 1;
        }
    }

    fn new(limits: IndexLimits) -> Inner {
        let inner = Inner {
            chunks: Vec::new(),
            summaries: Vec::new(),
            first_summary: 0,
            restored_tail_len: None,
            rollup: Rollup::new(),
            rollup_entries: 0,
            summary_bytes: 0,
            sealed: 0,
            stored_dicts: pager::DictMarks::default(),
            fills: Vec::new(),
            actor_rows: vec![0],
            len: 0,
            min_time: i64::MAX,
            limits,
            actors: Actors::new(limits.max_distinct),
            user_ids: Dict::new(limits),
            names: Dict::new(limits),
            ips: Dict::new(limits),
            workflows: Dict::new(limits),
        };
        Inner {
            stored_dicts: pager::DictMarks::of(&inner),
            ..inner
        }
    }
}

impl LogIndex {
    /// An index held wholly in memory.
    pub fn new(limits: IndexLimits) -> LogIndex {
        LogIndex {
            core: Arc::new(Core {
                inner: RwLock::new(Inner::new(limits)),
                pager: None,
            }),
        }
    }

    /// The limits the index was made with.
    pub fn limits(&self) -> IndexLimits {
        self.read().limits
    }

    /// Whether some value of any column was past its cap (and so is decided
    /// from the stored record when filtered on).
    pub fn overflowed(&self) -> bool {
        self.read().overflowed()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.core.read()
    }

    /// Number of rows: the log size the index reflects.
    pub fn len(&self) -> u64 {
        self.read().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Earliest `occurred_at` in the log, if any.
    pub fn min_time(&self) -> Option<i64> {
        let g = self.read();
        (g.len > 0).then_some(g.min_time)
    }

    /// Appends rows; the first gets `seq == self.len()`. Returns whether
    /// these rows were the first past a distinct-value cap (worth telling
    /// the operator once).
    pub fn append<'a>(&self, rows: impl IntoIterator<Item = IndexRow<'a>>) -> bool {
        let mut g = self.core.write();
        let inner = &mut *g;
        let before = inner.overflowed();
        for row in rows {
            let user = inner.user_ids.intern(Some(row.actor_id));
            let name = inner
                .names
                .intern(Some(row.actor_name.unwrap_or(row.actor_id)));
            let actor = inner.actors.intern(user, name);
            if actor as usize == inner.actors.pairs.len() {
                inner.actors.pairs.push((user, name));
                inner.actor_rows.push(0);
            }
            inner.actor_rows[actor as usize] += 1;
            let ip = inner.ips.intern(row.ip_address);
            let workflow = inner.workflows.intern(row.workflow_id);
            if inner.chunks.last().is_none_or(|c| c.len() >= CHUNK_ROWS) {
                inner
                    .chunks
                    .push(ChunkRef::Resident(Arc::new(Chunk::empty())));
            }
            let ChunkRef::Resident(tail) = inner.chunks.last_mut().expect("pushed above") else {
                unreachable!("only full chunks are sealed")
            };
            let tail = Arc::make_mut(tail);
            let t = row.occurred_at_us;
            tail.time.push(t);
            tail.event.push(row.event.0);
            tail.actor.push(actor);
            tail.ip.push(ip);
            tail.workflow.push(workflow);
            tail.min_time = tail.min_time.min(t);
            tail.max_time = tail.max_time.max(t);
            if tail.len() == CHUNK_ROWS {
                let summary = Arc::new(summary::summarize(tail));
                inner.push_summary(Some(summary));
                let fill = pager::Fill::of(inner);
                inner.fills.push(fill);
            }
            inner.min_time = inner.min_time.min(t);
            let slot = inner.rollup.entry(t.div_euclid(SLOT_US)).or_default();
            match slot.iter_mut().find(|(e, _)| *e == row.event.0) {
                Some((_, c)) => *c += 1,
                None => {
                    slot.push((row.event.0, 1));
                    inner.rollup_entries += 1;
                }
            }
            inner.len += 1;
        }
        !before && inner.overflowed()
    }

    /// Bytes the index holds outside the segment cache, estimated from
    /// counts kept on append (no walk over rows or values): the resident
    /// chunks (the tail, and full chunks waiting to be stored), the
    /// dictionaries and rows per actor, the rollups, and the summaries
    /// and chunk list. What an open account costs besides its tree; the
    /// store bounds the sum over open accounts.
    pub fn open_bytes(&self) -> usize {
        let g = self.read();
        let resident = g.chunks.len() - g.sealed;
        let tail = match g.chunks.last() {
            Some(ChunkRef::Resident(c)) if c.len() < CHUNK_ROWS => c.bytes(),
            _ => 0,
        };
        let full = resident - usize::from(tail > 0);
        let dicts = g.user_ids.heap_estimate()
            + g.names.heap_estimate()
            + g.ips.heap_estimate()
            + g.workflows.heap_estimate()
            + g.actors.pairs.len() * dict::ACTOR_OVERHEAD;
        tail + full * CHUNK_ROWS * ROW_BYTES
            + dicts
            + g.rollup.len() * ROLLUP_SLOT_BYTES
            + g.rollup_entries * ROLLUP_ENTRY_BYTES
            + g.summary_bytes
            + g.chunks.capacity() * std::mem::size_of::<ChunkRef>()
            + g.summaries.capacity() * std::mem::size_of::<Option<Arc<ChunkSummary>>>()
            + EMPTY_INDEX_BYTES
    }

    /// Distinct user names seen in the log whose normalized form contains
    /// `needle` (normalized), sorted, at most `limit`: suggestions for the
    /// filter dialog.
    pub fn user_names(&self, needle: &str, limit: usize) -> Vec<String> {
        let g = self.read();
        let needle = crate::query::normalize(needle);
        let mut out: Vec<String> = g
            .names
            .values
            .iter()
            .zip(&g.names.normalized)
            .skip(2)
            .filter(|(_, n)| n.contains(&needle))
            .map(|(v, _)| v.to_string())
            .collect();
        out.sort_by_key(|s| s.to_lowercase());
        out.truncate(limit);
        out
    }
}
