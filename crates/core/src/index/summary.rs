//! Per-chunk summaries: which values of each column occur in a full
//! chunk, and on how many rows ([`ChunkSummary`], computed from the chunk
//! alone by [`summarize`]); and what a plan makes of them for one chunk
//! ([`Plan::verdict`]): no row can match, every row matches, or only some
//! columns need a look at the rows — and then, when one column decides,
//! how many rows match without looking at any.
//!
//! Why: a filter on a rare value (a user, an IP address, a workflow) would
//! otherwise read every row of the log, and a filter on a heavy one (a
//! service account writing a fifth of the log) still reads every row to
//! count it. With the summary a chunk the rare value is not in costs a few
//! thousand table look-ups instead of 65,536 rows, and a count of a
//! one-column filter is a sum over the chunk's distinct values.

use super::plan::{Plan, Tables};
use super::{CHUNK_ROWS, Chunk, TimeBounds};
use crate::query::Join;

/// Most distinct values of one column a summary keeps per chunk. A column
/// with more (e.g. an IP address per row) is not summarized and is always
/// looked at row by row: the summary of a chunk stays under 4 × 32 KiB
/// (about 9 % of the chunk's 1.4 MB, ~2 % for a typical account).
const SUMMARY_MAX_DISTINCT: usize = CHUNK_ROWS / 16;

/// Column slots, in the order of [`Tables`]'s `touched` and `undecided`.
pub(super) const COLUMNS: usize = 4;

/// What occurs in one full chunk, per column (event, actor, IP address,
/// workflow): each distinct id, ascending, with its number of rows; `None`
/// for a column with more than [`SUMMARY_MAX_DISTINCT`] distinct ids.
///
/// It is derived from the chunk alone (see [`summarize`]), so it can be
/// kept, dropped or persisted beside the chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkSummary {
    pub(super) rows: u32,
    pub(super) columns: [Option<ValueCounts>; COLUMNS],
}

impl ChunkSummary {
    /// Bytes it holds on the heap.
    pub(super) fn heap_bytes(&self) -> usize {
        let pairs: usize = self.columns.iter().flatten().map(|c| c.len()).sum();
        pairs * std::mem::size_of::<(u32, u32)>() + std::mem::size_of::<ChunkSummary>()
    }
}

/// Distinct ids of a column with their numbers of rows, ascending by id.
pub(super) type ValueCounts = Box<[(u32, u32)]>;

/// The summary of a chunk.
pub(super) fn summarize(chunk: &Chunk) -> ChunkSummary {
    ChunkSummary {
        rows: u32::try_from(chunk.len()).expect("a chunk holds fewer than 2^32 rows"),
        columns: [
            distinct(chunk.event.iter().map(|&e| u32::from(e))),
            distinct(chunk.actor.iter().copied()),
            distinct(chunk.ip.iter().copied()),
            distinct(chunk.workflow.iter().copied()),
        ],
    }
}

/// The distinct ids of a column with their counts, ascending.
fn distinct(ids: impl Iterator<Item = u32> + Clone) -> Option<ValueCounts> {
    let max = ids.clone().max()? as usize;
    // Counting into an array indexed by id is linear and branch-free; ids
    // are below the dictionary caps (100,000 by default). A larger id
    // space falls back to sorting a copy.
    let mut out = Vec::new();
    if max < 1 << 20 {
        let mut counts = vec![0u32; max + 1];
        for id in ids {
            counts[id as usize] += 1;
        }
        for (id, &n) in counts.iter().enumerate() {
            if n > 0 {
                if out.len() == SUMMARY_MAX_DISTINCT {
                    return None;
                }
                out.push((id as u32, n));
            }
        }
    } else {
        let mut all: Vec<u32> = ids.collect();
        all.sort_unstable();
        for id in all {
            match out.last_mut() {
                Some((last, n)) if *last == id => *n += 1,
                _ => {
                    if out.len() == SUMMARY_MAX_DISTINCT {
                        return None;
                    }
                    out.push((id, 1));
                }
            }
        }
    }
    Some(out.into_boxed_slice())
}

/// What a plan's look-up tables make of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// No row of the chunk can match.
    None,
    /// Every row of the chunk matches (time bounds aside).
    All,
    /// Rows match by the `live` columns alone (AND: every live column
    /// passes, OR: one does); `count` is how many when a single column is
    /// live and the summary gave its count.
    Rows {
        live: [bool; COLUMNS],
        count: Option<u64>,
    },
}

impl Plan {
    /// The verdict on a chunk of `rows` rows with this summary (`None`
    /// for the growing tail: every touched column is live). Only for a
    /// plan the index decides alone (see `Plan::decides_alone`).
    pub(super) fn verdict(
        &self,
        tables: &Tables,
        rows: usize,
        summary: Option<&ChunkSummary>,
    ) -> Verdict {
        let and = self.join == Join::And;
        let mut live = [false; COLUMNS];
        let mut single = None;
        for (k, slot) in live.iter_mut().enumerate() {
            // AND ignores an untouched column (its table passes all), OR
            // too (its table passes none).
            if !tables.touched[k] {
                continue;
            }
            let Some(values) = summary.and_then(|s| s.columns[k].as_deref()) else {
                *slot = true;
                continue;
            };
            let table = tables.column(k);
            let matched: u64 = values
                .iter()
                .filter(|(id, _)| table[*id as usize])
                .map(|(_, n)| u64::from(*n))
                .sum();
            match (and, matched) {
                (true, 0) => return Verdict::None,
                (false, m) if m == rows as u64 => return Verdict::All,
                // This column passes every row (AND) or none (OR): it
                // does not decide any row of this chunk.
                (true, m) if m == rows as u64 => {}
                (false, 0) => {}
                _ => {
                    *slot = true;
                    single = Some(matched);
                }
            }
        }
        match live.iter().filter(|&&l| l).count() {
            0 if and => Verdict::All,
            0 => Verdict::None,
            // `single` is set only by a live summarized column: here, the
            // one live column.
            1 => Verdict::Rows {
                live,
                count: single,
            },
            _ => Verdict::Rows { live, count: None },
        }
    }

    /// The summary of chunk `ci`, if it is full.
    pub(super) fn summary(&self, ci: usize) -> Option<&ChunkSummary> {
        self.summaries.get(ci).and_then(|s| s.as_deref())
    }

    /// The look-up tables when every row is decided by them alone (`Some(None)`:
    /// no indexed filter, every row matches); `None` when a record check,
    /// a workflow scope or an overflowed column is involved.
    #[allow(clippy::option_option)]
    pub(super) fn decided_tables(&self) -> Option<Option<&Tables>> {
        if self.has_description || self.scope_event.is_some() {
            return None;
        }
        match &self.tables {
            None => Some(None),
            Some(t) if t.undecided.iter().any(|&u| u) => None,
            Some(t) => Some(Some(t)),
        }
    }

    /// The verdict on a chunk of `rows` rows, for a plan the tables decide
    /// alone.
    pub(super) fn chunk_verdict(
        &self,
        tables: Option<&Tables>,
        rows: usize,
        summary: Option<&ChunkSummary>,
    ) -> Verdict {
        match tables {
            None => Verdict::All,
            Some(t) => self.verdict(t, rows, summary),
        }
    }

    /// Whether no row of chunk `ci` can match, by its summary alone.
    pub(super) fn skips_chunk(&self, ci: usize) -> bool {
        let summary = self.summary(ci);
        summary.is_some()
            && matches!(
                self.decided_tables(),
                Some(t) if self.chunk_verdict(t, self.chunks[ci].len(), summary) == Verdict::None
            )
    }

    /// How many rows of chunk `ci` within `bounds` match, when its summary
    /// settles that without the rows: none can match, or the chunk lies
    /// wholly within the bounds and every row or one summarized column
    /// decides. A sealed chunk so settled is not loaded.
    pub(super) fn settled_count(&self, ci: usize, bounds: TimeBounds) -> Option<u64> {
        let summary = Some(self.summary(ci)?);
        let tables = self.decided_tables()?;
        let r = &self.chunks[ci];
        let whole = bounds.contains(r.min_time()) && bounds.contains(r.max_time());
        match self.chunk_verdict(tables, r.len(), summary) {
            Verdict::None => Some(0),
            Verdict::All if whole => Some(r.len() as u64),
            Verdict::Rows { count: Some(n), .. } if whole => Some(n),
            _ => None,
        }
    }
}

/// The summary of a sealed chunk from what its stored segment summary
/// holds: the event column from its rollup, the actor column from its rows
/// per actor (both exactly what [`summarize`] counts from the rows), and no
/// IP address or workflow column (not stored: looked at row by row).
/// `None` when the counts do not add up to the chunk's rows.
pub(super) fn from_stored(s: &super::segment::Summary) -> Option<ChunkSummary> {
    let mut events = vec![0u32; crate::catalog::Catalog::get().len()];
    for &(_, e, n) in &s.rollup {
        let slot = events.get_mut(e as usize)?;
        *slot = slot.checked_add(n)?;
    }
    let events: Vec<(u32, u32)> = (0u32..).zip(events).filter(|&(_, n)| n > 0).collect();
    let actors = &s.actor_rows;
    let ascending = actors.windows(2).all(|w| w[0].0 < w[1].0);
    let sum = |v: &[(u32, u32)]| v.iter().map(|&(_, n)| u64::from(n)).sum::<u64>();
    if sum(&events) != u64::from(s.rows) || sum(actors) != u64::from(s.rows) || !ascending {
        return None;
    }
    let capped = |v: &[(u32, u32)]| (v.len() <= SUMMARY_MAX_DISTINCT).then(|| v.into());
    Some(ChunkSummary {
        rows: s.rows,
        columns: [capped(&events), capped(actors), None, None],
    })
}
