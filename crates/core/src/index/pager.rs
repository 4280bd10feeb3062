//! A paged index's life with its store: full chunks sealed into segments
//! ([`LogIndex::unsealed`], [`LogIndex::mark_sealed`]), the index restored
//! from the segments' summaries at start-up ([`LogIndex::restore`]), and
//! sealed chunks loaded through the [`SegmentCache`] when a query needs
//! them — or rebuilt from the rows when their stored copy is missing or
//! fails its checksum.
//!
//! Dictionary ids are what make this work: a value's id is its place in the
//! order values were first seen, so replaying rows in `seq` order over a
//! dictionary restored from the summaries gives every value the id it had.
//! Each summary stores the entries added since the previous one; a
//! segment's ids are therefore resolvable from the summaries up to its own.

use std::sync::Arc;

use super::cache::SegmentCache;
use super::segment::{DictDelta, Segment, Summary};
use super::{
    ACTOR_OVERFLOW, CHUNK_ROWS, Chunk, ChunkRef, Core, Held, IndexLimits, IndexRow, Inner,
    LogIndex, OVERFLOW, SealedMeta,
};
use crate::catalog::EventId;

/// Where a paged index's segments are stored: implemented by the store for
/// one account.
pub trait SegmentSource: Send + Sync {
    /// The stored columns of segment `no`, if any.
    fn columns(&self, no: u32) -> Result<Option<Vec<u8>>, String>;
    /// The index columns of the rows with seq in `[from, to)`, ascending.
    fn rows(&self, from: u64, to: u64, visit: &mut dyn FnMut(IndexRow<'_>)) -> Result<(), String>;
    /// Segment `no`'s stored columns were unreadable (`why`) and have been
    /// rebuilt from the rows as `columns`: store them again, and say so.
    fn repaired(&self, no: u32, why: &str, columns: Vec<u8>);
}

/// The store and cache of a paged index.
pub(super) struct Pager {
    cache: Arc<SegmentCache>,
    source: Box<dyn SegmentSource>,
    /// This index's id in the cache.
    id: u64,
}

/// Dictionary sizes: the four text dictionaries (user ids, names, IPs,
/// workflows) and the actor pairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct DictMarks {
    texts: [u32; 4],
    actors: u32,
}

impl DictMarks {
    pub(super) fn of(g: &Inner) -> DictMarks {
        let n = |d: &super::dict::Dict| d.values.len() as u32;
        DictMarks {
            texts: [n(&g.user_ids), n(&g.names), n(&g.ips), n(&g.workflows)],
            actors: g.actors.pairs.len() as u32,
        }
    }
}

/// What a chunk's segment summary records of the dictionaries: their
/// sizes and overflow flags when the chunk filled, not when it is sealed.
/// Sealing comes later and at a different row in every process (whenever
/// its writer gets to it), so a summary cut at sealing time held a
/// different share of the dictionaries in each: two processes sealing one
/// segment wrote different summaries, and the next one's delta no longer
/// started where the stored one ended (a restart then replayed rows). Cut
/// at the fill, every process writes the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fill {
    dicts: DictMarks,
    overflowed: u8,
}

impl Fill {
    pub(super) fn of(g: &Inner) -> Fill {
        Fill {
            dicts: DictMarks::of(g),
            overflowed: overflow_bits(g),
        }
    }
}

impl DictMarks {
    /// Each size the larger of the two.
    fn max(self, other: DictMarks) -> DictMarks {
        let mut texts = self.texts;
        for (t, o) in texts.iter_mut().zip(other.texts) {
            *t = (*t).max(o);
        }
        DictMarks {
            texts,
            actors: self.actors.max(other.actors),
        }
    }
}

/// A full chunk encoded for the store: written with
/// [`LogIndex::mark_sealed`] called once the store has it.
#[derive(Debug)]
pub struct SealedSegment {
    pub no: u32,
    pub summary: Vec<u8>,
    pub columns: Vec<u8>,
    segment: Arc<Segment>,
    dicts_after: DictMarks,
}

/// An index restored from stored segments.
#[derive(Debug)]
pub struct Restored {
    pub index: LogIndex,
    /// Rows the segments cover: the store appends its rows from this seq.
    pub rows: u64,
    /// Why fewer segments than stored were used (the rest are rebuilt
    /// from rows and stored again), or a stored tail was not, if so.
    pub problem: Option<String>,
    /// Rows restored from a stored tail (included in `rows`).
    pub tail_rows: u64,
}

/// The growing tail of a paged index encoded for the store
/// ([`LogIndex::tail`]), so that the next open restores it instead of
/// reading its rows (up to 65,535 rows with their records). Derived data
/// like a segment: checked before use, and ignored
/// (the rows are read) when it is not the tail of the segments stored
/// before it or does not hold together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTail {
    /// The seq of its first row: the rows the stored segments cover.
    pub first: u64,
    /// A summary as a segment's (rows, span, rollup share, dictionary
    /// entries since the last segment, actor rows, overflow flags now).
    pub summary: Vec<u8>,
    /// Its columns, encoded as a segment's.
    pub columns: Vec<u8>,
}

fn overflow_bits(g: &Inner) -> u8 {
    u8::from(g.actors.overflowed)
        | u8::from(g.ips.overflowed) << 1
        | u8::from(g.workflows.overflowed) << 2
        | u8::from(g.user_ids.overflowed) << 3
        | u8::from(g.names.overflowed) << 4
}

impl LogIndex {
    /// An empty index whose full chunks are sealed into `source` and
    /// cached in `cache`.
    pub fn paged(
        limits: IndexLimits,
        cache: Arc<SegmentCache>,
        source: Box<dyn SegmentSource>,
    ) -> LogIndex {
        LogIndex::with_pager(Inner::new(limits), cache, source)
    }

    fn with_pager(inner: Inner, cache: Arc<SegmentCache>, source: Box<dyn SegmentSource>) -> Self {
        let id = cache.index_id();
        LogIndex {
            core: Arc::new(Core {
                inner: std::sync::RwLock::new(inner),
                pager: Some(Pager { cache, source, id }),
            }),
        }
    }

    /// A paged index restored from the summaries of its stored segments
    /// (`(number, summary)`, in any order). Segments are used from 0 up to
    /// the first that is missing, unreadable or inconsistent; the caller
    /// appends the rows from [`Restored::rows`] on.
    pub fn restore(
        limits: IndexLimits,
        cache: Arc<SegmentCache>,
        source: Box<dyn SegmentSource>,
        summaries: Vec<(u32, Vec<u8>)>,
    ) -> Restored {
        LogIndex::restore_with_tail(limits, cache, source, summaries, None)
    }

    /// [`LogIndex::restore`], then the stored tail when it starts where the
    /// segments used end and holds together (its rows are then not read);
    /// a tail that starts elsewhere is stale (a segment was sealed since it
    /// was stored) and ignored without a word.
    pub fn restore_with_tail(
        limits: IndexLimits,
        cache: Arc<SegmentCache>,
        source: Box<dyn SegmentSource>,
        mut summaries: Vec<(u32, Vec<u8>)>,
        tail: Option<StoredTail>,
    ) -> Restored {
        summaries.sort_unstable_by_key(|(no, _)| *no);
        let mut inner = Inner::new(limits);
        let mut problem = None;
        for (no, bytes) in &summaries {
            if *no as usize != inner.chunks.len() {
                problem = Some(format!("segment {} is missing", inner.chunks.len()));
                break;
            }
            let summary = match Summary::decode(bytes) {
                Ok(s) => s,
                Err(e) => {
                    problem = Some(format!("segment {no}: {e}"));
                    break;
                }
            };
            if let Err(e) = check(&inner, &summary) {
                problem = Some(format!("segment {no}: {e}"));
                break;
            }
            if let Err(e) = apply(&mut inner, *no, summary) {
                // Half applied: nothing of the segments can be trusted.
                problem = Some(format!("segment {no}: {e}; every segment is rebuilt"));
                inner = Inner::new(limits);
                break;
            }
        }
        inner.stored_dicts = DictMarks::of(&inner);
        let mut tail_rows = 0;
        // After a problem, the rows from where the segments stopped are
        // read: a tail further on is no use.
        if let Some(tail) = tail.filter(|t| t.first == inner.len && problem.is_none()) {
            match restore_tail(&mut inner, &tail) {
                Ok(rows) => {
                    tail_rows = rows;
                    inner.restored_tail_len = Some(inner.len);
                }
                Err(TailError::Unused(e)) => problem = Some(format!("stored tail: {e}")),
                Err(TailError::HalfApplied(e)) => {
                    problem = Some(format!("stored tail: {e}; every segment is rebuilt"));
                    inner = Inner::new(limits);
                }
            }
        }
        let rows = inner.len;
        Restored {
            index: LogIndex::with_pager(inner, cache, source),
            rows,
            problem,
            tail_rows,
        }
    }

    /// The growing tail encoded for the store, when it directly follows the
    /// stored segments (no full chunk is waiting to be stored) and holds
    /// rows; `None` otherwise, or for an index without a store.
    pub fn tail(&self) -> Option<StoredTail> {
        self.core.pager.as_ref()?;
        let g = self.read();
        if full_chunks(&g) != g.sealed {
            return None;
        }
        let Some(ChunkRef::Resident(chunk)) = g.chunks.last() else {
            return None;
        };
        if chunk.len() == 0 || chunk.len() >= CHUNK_ROWS {
            return None;
        }
        let summary = Summary {
            rows: chunk.len() as u32,
            min_time: chunk.min_time,
            max_time: chunk.max_time,
            overflowed: overflow_bits(&g),
            rollup: Summary::rollup_of(chunk),
            dicts: delta(&g, g.stored_dicts, DictMarks::of(&g)),
            actor_rows: Summary::actor_rows_of(chunk),
        };
        Some(StoredTail {
            first: g.len - chunk.len() as u64,
            summary: summary.encode(),
            columns: Segment::encode_chunk(chunk),
        })
    }

    /// [`LogIndex::tail`], unless it is the stored tail this index was
    /// restored from or last stored ([`LogIndex::tail_stored`]), unchanged
    /// since (no row appended): storing it again
    /// would write the same bytes, or overwrite a longer tail another
    /// instance stored meanwhile with this shorter one.
    pub fn changed_tail(&self) -> Option<StoredTail> {
        {
            let g = self.read();
            if g.restored_tail_len == Some(g.len) {
                return None;
            }
        }
        self.tail()
    }

    /// The tail as it is now has been stored: [`LogIndex::changed_tail`]
    /// has nothing to store until a row is appended. Called by the writer
    /// (the only appender) after the commit that stored it.
    pub fn tail_stored(&self) {
        let mut g = self.core.write();
        g.restored_tail_len = Some(g.len);
    }

    /// The full chunks whose segments are not stored yet, encoded, oldest
    /// first. Called by the writer (the only appender), so the chunks do not
    /// change meanwhile.
    pub fn unsealed(&self) -> Vec<SealedSegment> {
        let g = self.read();
        let full = full_chunks(&g);
        let mut marks = g.stored_dicts;
        let mut out = Vec::new();
        for (no, chunk) in g.chunks.iter().enumerate().take(full).skip(g.sealed) {
            let ChunkRef::Resident(chunk) = chunk else {
                continue;
            };
            // Every full chunk has its fill (appended or restored with it).
            let fill = g.fills.get(no).copied().unwrap_or_else(|| Fill::of(&g));
            // A summary stored by an older version may have covered entries
            // past this chunk's fill: the delta starts where it ended.
            let end = fill.dicts.max(marks);
            let segment = Arc::new(Segment::of((**chunk).clone()));
            let summary = Summary {
                rows: chunk.len() as u32,
                min_time: chunk.min_time,
                max_time: chunk.max_time,
                overflowed: fill.overflowed,
                rollup: Summary::rollup_of(chunk),
                dicts: delta(&g, marks, end),
                actor_rows: Summary::actor_rows_of(chunk),
            };
            marks = end;
            out.push(SealedSegment {
                no: no as u32,
                summary: summary.encode(),
                columns: segment.encode_columns(),
                segment,
                dicts_after: end,
            });
        }
        out
    }

    /// The store holds `segments` (from [`LogIndex::unsealed`]): their
    /// chunks leave the index for the cache. Without a pager (an index
    /// held in memory) this does nothing.
    pub fn mark_sealed(&self, segments: Vec<SealedSegment>) {
        let Some(pager) = &self.core.pager else {
            return;
        };
        let mut g = self.core.write();
        for s in segments {
            if s.no as usize != g.sealed {
                continue;
            }
            let c = &s.segment.chunk;
            let meta = SealedMeta {
                no: s.no,
                rows: c.len() as u32,
                min_time: c.min_time,
                max_time: c.max_time,
            };
            g.chunks[s.no as usize] = ChunkRef::Sealed(meta);
            g.sealed += 1;
            g.stored_dicts = s.dicts_after;
            pager.cache.insert((pager.id, s.no), s.segment, false);
        }
    }

    /// Whether the index has full chunks waiting to be stored.
    pub fn has_unsealed(&self) -> bool {
        let g = self.read();
        self.core.pager.is_some() && full_chunks(&g) > g.sealed
    }

    /// Number of stored segments this index uses.
    pub fn sealed_count(&self) -> usize {
        self.read().sealed
    }

    /// Whether two indexes hold the same dictionaries (the same values
    /// under the same ids): a rebuilt index against a restored one.
    pub fn same_dictionaries(&self, other: &LogIndex) -> bool {
        let (a, b) = (self.read(), other.read());
        a.user_ids.values == b.user_ids.values
            && a.names.values == b.names.values
            && a.ips.values == b.ips.values
            && a.workflows.values == b.workflows.values
            && a.actors.pairs == b.actors.pairs
    }
}

fn full_chunks(g: &Inner) -> usize {
    g.chunks.len() - usize::from(g.chunks.last().is_some_and(|c| c.len() < CHUNK_ROWS))
}

/// The dictionary entries from `from` to `to`.
fn delta(g: &Inner, from: DictMarks, to: DictMarks) -> DictDelta {
    let texts = [&g.user_ids, &g.names, &g.ips, &g.workflows];
    let mut out = DictDelta::default();
    for (k, d) in texts.into_iter().enumerate() {
        let (a, b) = (from.texts[k] as usize, to.texts[k] as usize);
        out.texts[k] = (
            a as u32,
            d.values[a..b].iter().map(|v| v.to_string()).collect(),
        );
    }
    let (a, b) = (from.actors as usize, to.actors as usize);
    out.actors = (a as u32, g.actors.pairs[a..b].to_vec());
    out
}

/// Whether a summary can extend `inner` (checked before anything of it is
/// applied).
fn check(inner: &Inner, s: &Summary) -> Result<(), String> {
    if s.rows as usize != CHUNK_ROWS {
        return Err(format!("{} rows, a segment holds {CHUNK_ROWS}", s.rows));
    }
    check_dicts(inner, s)
}

/// Whether a summary's dictionary entries start where `inner`'s end, and
/// its rollup names only events the catalog holds.
fn check_dicts(inner: &Inner, s: &Summary) -> Result<(), String> {
    let marks = DictMarks::of(inner);
    for k in 0..4 {
        if s.dicts.texts[k].0 != marks.texts[k] {
            return Err("dictionary entries out of order".into());
        }
    }
    if s.dicts.actors.0 != marks.actors {
        return Err("actor entries out of order".into());
    }
    let n_events = crate::catalog::Catalog::get().len();
    if s.rollup.iter().any(|&(_, e, _)| e as usize >= n_events) {
        return Err("an event the catalog does not hold".into());
    }
    Ok(())
}

/// Adds a checked summary to `inner` as sealed chunk `no`.
fn apply(inner: &mut Inner, no: u32, s: Summary) -> Result<(), String> {
    apply_counts(inner, &s)?;
    inner.push_summary(super::summary::from_stored(&s).map(Arc::new));
    inner.chunks.push(ChunkRef::Sealed(SealedMeta {
        no,
        rows: s.rows,
        min_time: s.min_time,
        max_time: s.max_time,
    }));
    inner.sealed += 1;
    inner.len += u64::from(s.rows);
    inner.min_time = inner.min_time.min(s.min_time);
    inner.fills.push(Fill {
        dicts: DictMarks::of(inner),
        overflowed: s.overflowed,
    });
    Ok(())
}

/// Why a stored tail was not used.
enum TailError {
    /// Refused before anything of it was applied.
    Unused(String),
    /// Refused half applied: nothing restored can be trusted.
    HalfApplied(String),
}

/// Adds a stored tail to `inner` (restored up to its first row) as the
/// growing chunk; returns its rows. Everything that can be checked is
/// checked before anything is applied: the summary as a segment's, the
/// columns against the summary (rows, span, rollup, rows per actor), and
/// every id against the dictionaries it will have.
fn restore_tail(inner: &mut Inner, tail: &StoredTail) -> Result<u64, TailError> {
    let unused = |e: String| TailError::Unused(e);
    let s = Summary::decode(&tail.summary).map_err(|e| unused(e.to_string()))?;
    check_dicts(inner, &s).map_err(unused)?;
    if s.rows == 0 || s.rows as usize >= CHUNK_ROWS {
        return Err(unused(format!(
            "{} rows, a tail holds 1 to {}",
            s.rows,
            CHUNK_ROWS - 1
        )));
    }
    let segment = Segment::decode_columns(&tail.columns).map_err(|e| unused(e.to_string()))?;
    let c = &segment.chunk;
    if c.len() != s.rows as usize || (c.min_time, c.max_time) != (s.min_time, s.max_time) {
        return Err(unused(
            "columns and summary disagree on rows or span".into(),
        ));
    }
    if Summary::rollup_of(c) != s.rollup || Summary::actor_rows_of(c) != s.actor_rows {
        return Err(unused("columns and summary disagree on counts".into()));
    }
    let marks = DictMarks::of(inner);
    let after = |k: usize| marks.texts[k] as usize + s.dicts.texts[k].1.len();
    let actors = marks.actors as usize + s.dicts.actors.1.len();
    let n_events = crate::catalog::Catalog::get().len();
    let fits =
        |ids: &[u32], n: usize, over: u32| ids.iter().all(|&i| (i as usize) < n || i == over);
    if !c.event.iter().all(|&e| (e as usize) < n_events)
        || !fits(&c.actor, actors, ACTOR_OVERFLOW)
        || !fits(&c.ip, after(2), OVERFLOW)
        || !fits(&c.workflow, after(3), OVERFLOW)
    {
        return Err(unused("an id the dictionaries do not hold".into()));
    }
    apply_counts(inner, &s).map_err(TailError::HalfApplied)?;
    let chunk = Chunk {
        time: c.time.to_vec().into(),
        event: c.event.to_vec().into(),
        actor: c.actor.to_vec().into(),
        ip: c.ip.to_vec().into(),
        workflow: c.workflow.to_vec().into(),
        min_time: c.min_time,
        max_time: c.max_time,
    };
    inner.chunks.push(ChunkRef::Resident(Arc::new(chunk)));
    inner.len += u64::from(s.rows);
    inner.min_time = inner.min_time.min(s.min_time);
    Ok(u64::from(s.rows))
}

/// Adds a checked summary's dictionary entries, rows per actor, overflow
/// flags and rollup share to `inner`. Each dictionary entry is interned
/// again, which must give it the id it had: anything else means the
/// summaries disagree with each other.
fn apply_counts(inner: &mut Inner, s: &Summary) -> Result<(), String> {
    let dicts = [
        &mut inner.user_ids,
        &mut inner.names,
        &mut inner.ips,
        &mut inner.workflows,
    ];
    for (d, (first, values)) in dicts.into_iter().zip(&s.dicts.texts) {
        for (k, v) in values.iter().enumerate() {
            if d.intern(Some(v)) != first + k as u32 {
                return Err("a dictionary entry does not take its id".into());
            }
        }
    }
    let (first, pairs) = &s.dicts.actors;
    for (k, &(user, name)) in pairs.iter().enumerate() {
        let id = inner.actors.intern(user, name);
        if id != first + k as u32 || id as usize != inner.actors.pairs.len() {
            return Err("an actor entry does not take its id".into());
        }
        inner.actors.pairs.push((user, name));
        inner.actor_rows.push(0);
    }
    for &(a, n) in &s.actor_rows {
        let slot = inner
            .actor_rows
            .get_mut(a as usize)
            .ok_or("rows of an actor the dictionaries do not hold")?;
        *slot += u64::from(n);
    }
    let bits = s.overflowed;
    inner.actors.overflowed |= bits & 1 != 0;
    inner.ips.overflowed |= bits & 2 != 0;
    inner.workflows.overflowed |= bits & 4 != 0;
    inner.user_ids.overflowed |= bits & 8 != 0;
    inner.names.overflowed |= bits & 16 != 0;
    // Entries come ordered by slot: one look-up in the map per slot, not
    // per entry (per entry, the map's search was half of an open's CPU at
    // 10M: ~1.2M entries over ~38k slots).
    for group in s.rollup.chunk_by(|a, b| a.0 == b.0) {
        let v = inner.rollup.entry(group[0].0).or_default();
        for &(_, event, n) in group {
            match v.iter_mut().find(|(e, _)| *e == event) {
                Some((_, c)) => *c += n,
                None => {
                    v.push((event, n));
                    inner.rollup_entries += 1;
                }
            }
        }
    }
    Ok(())
}

impl Drop for Core {
    /// The last holder of the index is gone (its account was closed, or
    /// the store dropped): its segments leave the cache rather than wait
    /// to be the least recently used.
    fn drop(&mut self) {
        if let Some(pager) = &self.pager {
            let sealed = self
                .inner
                .get_mut()
                .map_or_else(|e| e.into_inner().sealed, |g| g.sealed);
            pager.cache.forget(pager.id, sealed as u32);
        }
    }
}

impl Core {
    /// Sealed chunk `no`, from the cache or the store; rebuilt from the
    /// rows (and stored again) when the stored copy is missing or corrupt.
    pub(super) fn load(&self, no: u32) -> Result<Arc<Segment>, String> {
        let pager = self
            .pager
            .as_ref()
            .ok_or("a sealed chunk in an index without a store")?;
        pager
            .cache
            .get_or_load((pager.id, no), || match pager.source.columns(no)? {
                Some(bytes) => match Segment::decode_columns(&bytes) {
                    Ok(s) if s.chunk.len() == CHUNK_ROWS => Ok(s),
                    Ok(s) => self.repair(pager, no, &format!("{} rows", s.chunk.len())),
                    Err(e) => self.repair(pager, no, &e.to_string()),
                },
                None => self.repair(pager, no, "missing"),
            })
    }

    /// Chunk `no` rebuilt from its rows: each value looked up in the
    /// dictionaries, which hold every value of the sealed chunks (a value
    /// that is not there arrived past its cap: the overflow id).
    fn repair(&self, pager: &Pager, no: u32, why: &str) -> Result<Segment, String> {
        struct Owned {
            t: i64,
            event: EventId,
            user: String,
            name: Option<String>,
            ip: Option<String>,
            workflow: Option<String>,
        }
        let from = u64::from(no) * CHUNK_ROWS as u64;
        let mut rows = Vec::with_capacity(CHUNK_ROWS);
        pager
            .source
            .rows(from, from + CHUNK_ROWS as u64, &mut |r| {
                rows.push(Owned {
                    t: r.occurred_at_us,
                    event: r.event,
                    user: r.actor_id.to_owned(),
                    name: r.actor_name.map(str::to_owned),
                    ip: r.ip_address.map(str::to_owned),
                    workflow: r.workflow_id.map(str::to_owned),
                })
            })?;
        if rows.len() != CHUNK_ROWS {
            return Err(format!(
                "index segment {no} is unreadable ({why}) and its rows cannot rebuild it: {} of {CHUNK_ROWS} rows found",
                rows.len()
            ));
        }
        let mut chunk = Chunk::empty();
        {
            let g = self.read();
            for r in &rows {
                let user = g.user_ids.lookup(Some(&r.user));
                let name = g.names.lookup(Some(r.name.as_deref().unwrap_or(&r.user)));
                let actor = if user == OVERFLOW || name == OVERFLOW {
                    ACTOR_OVERFLOW
                } else {
                    g.actors.lookup(user, name)
                };
                chunk.time.push(r.t);
                chunk.event.push(r.event.0);
                chunk.actor.push(actor);
                chunk.ip.push(g.ips.lookup(r.ip.as_deref()));
                chunk
                    .workflow
                    .push(g.workflows.lookup(r.workflow.as_deref()));
                chunk.min_time = chunk.min_time.min(r.t);
                chunk.max_time = chunk.max_time.max(r.t);
            }
        }
        let segment = Segment::of(chunk);
        pager.source.repaired(no, why, segment.encode_columns());
        Ok(segment)
    }
}

impl super::plan::Plan {
    /// The chunk of `r` in hand, loading a sealed one; `None` (and the
    /// plan's error set) when it cannot be loaded.
    pub(super) fn hold(&self, r: &ChunkRef) -> Option<Held> {
        match r {
            ChunkRef::Resident(c) => Some(Held::Resident(c.clone())),
            ChunkRef::Sealed(m) => match self.core.load(m.no) {
                Ok(s) => Some(Held::Segment(s)),
                Err(e) => {
                    self.fail(e);
                    None
                }
            },
        }
    }
}
