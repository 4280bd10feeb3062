//! The scan: a plan's look-up tables applied to every row of its chunks,
//! for any plan (record checks, workflow scopes, overflowed columns), and
//! the page built on it ([`Plan::page`]).

use std::collections::BinaryHeap;

use super::plan::Plan;
use super::{ACTOR_OVERFLOW, CHUNK_ROWS, Chunk, OVERFLOW, RowKey, TimeBounds};
use crate::query::Join;

impl Plan {
    /// Visits every matching row in the time bounds, in `seq` order.
    /// `check` decides one `seq` from its stored record (called
    /// only when the indexed columns cannot decide the row alone).
    pub fn for_each_match(
        &self,
        bounds: TimeBounds,
        check: &mut dyn FnMut(u64) -> bool,
        mut visit: impl FnMut(RowKey),
    ) {
        for (ci, r) in self.chunks.iter().enumerate() {
            // Bounds are checked before a sealed chunk is loaded.
            if r.len() == 0 || !bounds.overlaps(r.min_time(), r.max_time()) {
                continue;
            }
            let Some(chunk) = self.hold(r) else {
                return;
            };
            self.scan_chunk(&chunk, (ci * CHUNK_ROWS) as u64, bounds, check, &mut visit);
        }
    }

    /// One chunk of [`Plan::for_each_match`]; chunks are full but the last,
    /// so chunk `i` starts at `seq` `i * CHUNK_ROWS`.
    #[inline]
    pub(super) fn scan_chunk(
        &self,
        chunk: &Chunk,
        base: u64,
        bounds: TimeBounds,
        check: &mut dyn FnMut(u64) -> bool,
        visit: &mut impl FnMut(RowKey),
    ) {
        if !bounds.overlaps(chunk.min_time, chunk.max_time) {
            return;
        }
        // A chunk wholly inside the bounds needs no per-row time check.
        let whole = bounds.contains(chunk.min_time) && bounds.contains(chunk.max_time);
        let overflow = self.scope_undecided
            || self
                .tables
                .as_ref()
                .is_some_and(|t| t.undecided.iter().any(|&u| u));
        // Two copies of the loop: the overflow checks cost nothing in the
        // common case of an account within its caps.
        if overflow {
            self.scan_rows::<true>(chunk, base, whole, bounds, check, visit);
        } else {
            self.scan_rows::<false>(chunk, base, whole, bounds, check, visit);
        }
    }

    /// The rows of [`Plan::scan_chunk`]. A row is decided from the index
    /// alone unless a description filter needs it, or (`OVERFLOW`) a
    /// filtered column or the workflow scope holds the overflow id there;
    /// then `check` reads the record, and only when the decided columns
    /// leave the answer open (AND: all decided ones pass; OR: none does).
    #[inline]
    fn scan_rows<const OVERFLOW_ROWS: bool>(
        &self,
        chunk: &Chunk,
        base: u64,
        whole: bool,
        bounds: TimeBounds,
        check: &mut dyn FnMut(u64) -> bool,
        visit: &mut impl FnMut(RowKey),
    ) {
        let has_desc = self.has_description;
        let chunk = chunk.columns();
        for i in 0..chunk.time.len() {
            let t = chunk.time[i];
            if !whole && !bounds.contains(t) {
                continue;
            }
            let mut scope_pending = false;
            if let Some(scope) = &self.scope_event
                && (!scope[chunk.event[i] as usize]
                    || Some(chunk.workflow[i]) != self.scope_workflow)
            {
                continue;
            }
            if OVERFLOW_ROWS && self.scope_undecided {
                // Only overflow rows get past the scope check above.
                scope_pending = true;
            }
            let seq = base + i as u64;
            let mut pending = has_desc || scope_pending;
            let keep = match &self.tables {
                None => !pending || check(seq),
                Some(tb) => {
                    let actor = chunk.actor[i] as usize;
                    let ip = chunk.ip[i] as usize;
                    let wf = chunk.workflow[i] as usize;
                    let open = |k: usize, id: usize, over: u32| {
                        OVERFLOW_ROWS && tb.undecided[k] && id == over as usize
                    };
                    let (open_actor, open_ip, open_wf) = (
                        open(1, actor, ACTOR_OVERFLOW),
                        open(2, ip, OVERFLOW),
                        open(3, wf, OVERFLOW),
                    );
                    if OVERFLOW_ROWS {
                        pending |= open_actor || open_ip || open_wf;
                    }
                    match self.join {
                        Join::And => {
                            let decided = tb.event[chunk.event[i] as usize]
                                && (open_actor || tb.actor[actor])
                                && (open_ip || tb.ip[ip])
                                && (open_wf || tb.workflow[wf]);
                            decided && (!pending || check(seq))
                        }
                        Join::Or => {
                            let decided = (tb.touched[0] && tb.event[chunk.event[i] as usize])
                                || (tb.touched[1] && !open_actor && tb.actor[actor])
                                || (tb.touched[2] && !open_ip && tb.ip[ip])
                                || (tb.touched[3] && !open_wf && tb.workflow[wf]);
                            if decided {
                                !scope_pending || check(seq)
                            } else {
                                pending && check(seq)
                            }
                        }
                    }
                }
            };
            if keep {
                visit(RowKey {
                    occurred_at_us: t,
                    seq,
                });
            }
        }
    }

    /// The newest `limit` matching rows strictly before `after` in
    /// (occurred_at, seq) descending order, newest first, and whether more
    /// follow.
    pub fn page(
        &self,
        bounds: TimeBounds,
        after: Option<RowKey>,
        limit: usize,
        check: &mut dyn FnMut(u64) -> bool,
    ) -> (Vec<RowKey>, bool) {
        // A min-heap of the best `limit + 1` keys seen so far: the extra one
        // tells whether another page exists.
        let keep = limit + 1;
        let mut heap: BinaryHeap<std::cmp::Reverse<RowKey>> = BinaryHeap::with_capacity(keep + 1);
        let bounds = match after {
            // Rows later than the cursor's time cannot qualify: tighten the
            // bounds so whole chunks are skipped.
            Some(a) => TimeBounds {
                start: bounds.start,
                end: Some(
                    bounds
                        .end
                        .map_or(a.occurred_at_us + 1, |e| e.min(a.occurred_at_us + 1)),
                ),
            },
            None => bounds,
        };
        // Newest chunks first: once the heap is full, an older chunk whose
        // newest row is not newer than the heap's worst cannot contribute
        // (equal times lose on seq, which is lower in older chunks), so a
        // log ingested roughly in time order costs about one chunk a page.
        for (ci, r) in self.chunks.iter().enumerate().rev() {
            if r.len() == 0
                || !bounds.overlaps(r.min_time(), r.max_time())
                || heap.len() == keep
                    && heap
                        .peek()
                        .is_some_and(|min| r.max_time() <= min.0.occurred_at_us)
            {
                continue;
            }
            // Chunks no row of which can match are skipped before a sealed
            // one is loaded.
            if self.skips_chunk(ci) {
                continue;
            }
            let Some(chunk) = self.hold(r) else {
                break;
            };
            self.scan_chunk(
                &chunk,
                (ci * CHUNK_ROWS) as u64,
                bounds,
                check,
                &mut |row| {
                    if after.is_some_and(|a| row >= a) {
                        return;
                    }
                    if heap.len() < keep {
                        heap.push(std::cmp::Reverse(row));
                    } else if let Some(min) = heap.peek()
                        && row > min.0
                    {
                        heap.pop();
                        heap.push(std::cmp::Reverse(row));
                    }
                },
            );
        }
        let mut rows: Vec<RowKey> = heap.into_iter().map(|r| r.0).collect();
        rows.sort_unstable_by(|a, b| b.cmp(a));
        let more = rows.len() > limit;
        rows.truncate(limit);
        (rows, more)
    }
}
