//! [`Plan::count`] and [`Plan::histogram`], a chunk at a time
//! ([`Plan::count_chunk`], [`Plan::histogram_chunk`]): for a plan the index
//! decides alone (no description filter, no workflow scope, no overflowed
//! column filtered on) by the chunk's summary and a branch-free loop, else
//! by the scan.
//!
//! Why a second loop beside `scan_rows`: that loop asks, per row, which
//! columns are touched, whether a record check is pending and how the join
//! combines them, and hands each match to a closure — a few unpredictable
//! branches per row, about 5 ns, so a filter on a heavy user or on an IP
//! address cost ~50 ms per request at 10M rows. Here the chunk's summary
//! first settles what it can ([`Plan::verdict`]): chunks no row of which
//! can match are skipped, columns that decide nothing in the chunk are
//! dropped, and a count of one deciding column comes from the summary.
//! The columns left are applied one pass each into a byte per row (a table
//! look-up and an AND or OR, no branch), and the answer is read off those
//! bytes: a sum for a count; for a histogram, groups of eight rows with no
//! match are skipped and the others added to their buckets. A whole chunk
//! with two live columns (or a count with one) skips the bytes: one pass
//! looks the columns up per row and adds the result straight away.

use super::plan::{Plan, Tables};
use super::summary::{ChunkSummary, Verdict};
use super::{CHUNK_ROWS, Chunk, TimeBounds};
use crate::query::Join;

/// Chunks (of 65,536 rows) from which a count or histogram the index
/// decides alone is split over two threads: about 1M rows, ~5 ms of work,
/// well above the cost of starting a thread (tens of microseconds). On a
/// busy machine the split costs nothing extra: the work is the same, and
/// the second thread waits for a core like any other. Tests split from two
/// chunks, so that their few chunks take this path too.
const PARALLEL_MIN_CHUNKS: usize = if cfg!(test) { 2 } else { 16 };

/// The record check of a plan the index decides alone: never asked (see
/// [`Plan::decided_tables`]).
fn decided(_: u64) -> bool {
    unreachable!("a plan the index decides alone reads no record")
}

impl Plan {
    /// Exact number of matching rows.
    pub fn count(&self, bounds: TimeBounds, check: &mut dyn FnMut(u64) -> bool) -> u64 {
        if let Some(parts) = self.in_two_threads(|range, mask| {
            range
                .map(|ci| {
                    if let Some(n) = self.settled_count(ci, bounds) {
                        return n;
                    }
                    let base = (ci * CHUNK_ROWS) as u64;
                    let Some(chunk) = self.hold_in(ci, bounds) else {
                        return 0;
                    };
                    self.count_chunk(&chunk, base, self.summary(ci), bounds, mask, &mut decided)
                })
                .sum::<u64>()
        }) {
            return parts.0 + parts.1;
        }
        let mut mask = Vec::new();
        let mut n = 0;
        for ci in 0..self.chunks.len() {
            if let Some(settled) = self.settled_count(ci, bounds) {
                n += settled;
                continue;
            }
            let base = (ci * CHUNK_ROWS) as u64;
            let Some(chunk) = self.hold_in(ci, bounds) else {
                continue;
            };
            n += self.count_chunk(&chunk, base, self.summary(ci), bounds, &mut mask, check);
        }
        n
    }

    /// Chunk `ci` in hand if its time span overlaps `bounds` (a sealed one
    /// is loaded only then); `None` otherwise, or when it cannot be loaded
    /// (the plan's error is set: see [`Plan::load_error`]).
    fn hold_in(&self, ci: usize, bounds: TimeBounds) -> Option<super::Held> {
        let r = &self.chunks[ci];
        if r.len() == 0 || !bounds.overlaps(r.min_time(), r.max_time()) {
            return None;
        }
        self.hold(r)
    }

    /// Adds chunk `ci`'s matches to `counts` when its summary settles them
    /// without its rows ([`Plan::settled_count`]): none match, or the chunk
    /// lies within one bucket. Whether it did.
    fn settled_bucket(
        &self,
        ci: usize,
        bounds: TimeBounds,
        edges: &[i64],
        counts: &mut [u64],
    ) -> bool {
        match self.settled_count(ci, bounds) {
            None => false,
            Some(0) => true,
            Some(n) => {
                let r = &self.chunks[ci];
                let mut cur = Bucket::new(edges);
                let b = cur.of(r.min_time());
                let one_bucket = b == cur.of(r.max_time());
                if one_bucket {
                    counts[b] += n;
                }
                one_bucket
            }
        }
    }

    /// Runs `part` over the first and second half of the chunks on two
    /// threads, when the plan needs no record check (which reads through
    /// the caller's single reader) and the chunks are many enough
    /// ([`PARALLEL_MIN_CHUNKS`]); else `None`.
    fn in_two_threads<T: Send>(
        &self,
        part: impl Fn(std::ops::Range<usize>, &mut Vec<u8>) -> T + Sync,
    ) -> Option<(T, T)> {
        let n = self.chunks.len();
        if n < PARALLEL_MIN_CHUNKS || self.decided_tables().is_none() {
            return None;
        }
        let mid = n / 2;
        let part = &part;
        std::thread::scope(|s| {
            let second = s.spawn(move || part(mid..n, &mut Vec::new()));
            let first = part(0..mid, &mut Vec::new());
            // A panic in the second half is a bug; re-raise it here.
            let second = second
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            Some((first, second))
        })
    }

    /// Counts per bucket of the rows within `bounds`; `edges` are ascending
    /// bucket starts followed by the final end (`edges.len() - 1` buckets).
    /// Rows outside the edges or the bounds are ignored.
    pub fn histogram(
        &self,
        bounds: TimeBounds,
        edges: &[i64],
        check: &mut dyn FnMut(u64) -> bool,
    ) -> Vec<u64> {
        let mut counts = vec![0u64; edges.len().saturating_sub(1)];
        let (Some(&first), Some(&last)) = (edges.first(), edges.last()) else {
            return counts;
        };
        if counts.is_empty() {
            return counts;
        }
        let bounds = TimeBounds {
            start: Some(bounds.start.map_or(first, |s| s.max(first))),
            end: Some(bounds.end.map_or(last, |e| e.min(last))),
        };
        let part = |range: std::ops::Range<usize>, counts: &mut [u64], mask: &mut Vec<u8>| {
            for ci in range {
                if self.settled_bucket(ci, bounds, edges, counts) {
                    continue;
                }
                let base = (ci * CHUNK_ROWS) as u64;
                let Some(chunk) = self.hold_in(ci, bounds) else {
                    continue;
                };
                let summary = self.summary(ci);
                self.histogram_chunk(
                    &chunk,
                    base,
                    summary,
                    bounds,
                    edges,
                    counts,
                    mask,
                    &mut decided,
                );
            }
        };
        if let Some((mut a, b)) = self.in_two_threads(|range, mask| {
            let mut counts = vec![0u64; edges.len() - 1];
            part(range, &mut counts, mask);
            counts
        }) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
            return a;
        }
        let mut mask = Vec::new();
        for ci in 0..self.chunks.len() {
            if self.settled_bucket(ci, bounds, edges, &mut counts) {
                continue;
            }
            let base = (ci * CHUNK_ROWS) as u64;
            let Some(chunk) = self.hold_in(ci, bounds) else {
                continue;
            };
            let summary = self.summary(ci);
            self.histogram_chunk(
                &chunk,
                base,
                summary,
                bounds,
                edges,
                &mut counts,
                &mut mask,
                check,
            );
        }
        counts
    }

    /// Matching rows of one chunk within `bounds`; `base` is the chunk's
    /// first `seq`, `summary` the chunk's (`None` for the growing tail),
    /// `mask` scratch space reused across chunks.
    pub(super) fn count_chunk(
        &self,
        chunk: &Chunk,
        base: u64,
        summary: Option<&ChunkSummary>,
        bounds: TimeBounds,
        mask: &mut Vec<u8>,
        check: &mut dyn FnMut(u64) -> bool,
    ) -> u64 {
        if chunk.len() == 0 || !bounds.overlaps(chunk.min_time, chunk.max_time) {
            return 0;
        }
        let Some(tables) = self.decided_tables() else {
            let mut n = 0;
            self.scan_chunk(chunk, base, bounds, check, &mut |_| n += 1);
            return n;
        };
        let whole = bounds.contains(chunk.min_time) && bounds.contains(chunk.max_time);
        match self.chunk_verdict(tables, chunk.len(), summary) {
            Verdict::None => 0,
            Verdict::All if whole => chunk.len() as u64,
            Verdict::Rows { count: Some(n), .. } if whole => n,
            verdict => {
                let mut n = 0;
                if let (true, Verdict::Rows { live, .. }, Some(t)) = (whole, verdict, tables)
                    && (one_live_count(chunk, t, live).map(|c| n = c).is_some()
                        || two_live(chunk, t, live, self.join == Join::And, |_, m| n += m))
                {
                    return n;
                }
                self.fill_mask(tables, chunk, verdict, whole, bounds, mask);
                mask.iter().map(|&m| u64::from(m)).sum()
            }
        }
    }

    /// Adds one chunk's matching rows within `bounds` to the buckets of
    /// `edges` (as [`Plan::histogram`]; `bounds` lie within the edges).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn histogram_chunk(
        &self,
        chunk: &Chunk,
        base: u64,
        summary: Option<&ChunkSummary>,
        bounds: TimeBounds,
        edges: &[i64],
        counts: &mut [u64],
        mask: &mut Vec<u8>,
        check: &mut dyn FnMut(u64) -> bool,
    ) {
        if chunk.len() == 0 || !bounds.overlaps(chunk.min_time, chunk.max_time) {
            return;
        }
        let mut cur = Bucket::new(edges);
        let Some(tables) = self.decided_tables() else {
            self.scan_chunk(chunk, base, bounds, check, &mut |row| {
                counts[cur.of(row.occurred_at_us)] += 1;
            });
            return;
        };
        let whole = bounds.contains(chunk.min_time) && bounds.contains(chunk.max_time);
        let verdict = self.chunk_verdict(tables, chunk.len(), summary);
        if verdict == Verdict::None {
            return;
        }
        // A chunk within one bucket needs only its count.
        if whole && cur.of(chunk.min_time) == cur.of(chunk.max_time) {
            let b = cur.of(chunk.min_time);
            counts[b] += self.count_chunk(chunk, base, summary, bounds, mask, check);
            return;
        }
        if verdict == Verdict::All && whole {
            for &t in chunk.time.iter() {
                cur.add(t, 1, counts);
            }
            cur.flush(counts);
            return;
        }
        if let (true, Verdict::Rows { live, .. }, Some(t)) = (whole, verdict, tables)
            && two_live(chunk, t, live, self.join == Join::And, |t, m| {
                cur.add(t, m, counts)
            })
        {
            cur.flush(counts);
            return;
        }
        self.fill_mask(tables, chunk, verdict, whole, bounds, mask);
        let time: &[i64] = &chunk.time;
        // Groups of eight rows: most groups of a selective filter hold no
        // match and cost one load; a group with one is added row by row
        // into a running sum (times mostly ascend, so the bucket rarely
        // changes, and `counts` is written only when it does).
        let groups = mask.chunks_exact(8);
        let tail = groups.remainder().len();
        for (g, m8) in groups.enumerate() {
            let word = u64::from_le_bytes(m8.try_into().expect("eight bytes"));
            if word == 0 {
                continue;
            }
            let at = g * 8;
            for (&t, &m) in time[at..at + 8].iter().zip(m8) {
                cur.add(t, u64::from(m), counts);
            }
        }
        let from = mask.len() - tail;
        for (&t, &m) in time[from..].iter().zip(&mask[from..]) {
            cur.add(t, u64::from(m), counts);
        }
        cur.flush(counts);
    }

    /// One byte per row of the chunk into `mask`: 1 when the row matches
    /// (the verdict's live columns, and the bounds unless `whole`).
    fn fill_mask(
        &self,
        tables: Option<&Tables>,
        chunk: &Chunk,
        verdict: Verdict,
        whole: bool,
        bounds: TimeBounds,
        mask: &mut Vec<u8>,
    ) {
        let and = self.join == Join::And;
        mask.clear();
        match (verdict, tables) {
            (Verdict::Rows { live, .. }, Some(t)) => {
                mask.resize(chunk.len(), u8::from(and));
                for (k, _) in live.iter().enumerate().filter(|(_, l)| **l) {
                    let table = t.column(k);
                    match (k, and) {
                        (0, true) => apply::<_, true>(&chunk.event, table, mask),
                        (0, false) => apply::<_, false>(&chunk.event, table, mask),
                        (1, true) => apply::<_, true>(&chunk.actor, table, mask),
                        (1, false) => apply::<_, false>(&chunk.actor, table, mask),
                        (2, true) => apply::<_, true>(&chunk.ip, table, mask),
                        (2, false) => apply::<_, false>(&chunk.ip, table, mask),
                        (_, true) => apply::<_, true>(&chunk.workflow, table, mask),
                        (_, false) => apply::<_, false>(&chunk.workflow, table, mask),
                    }
                }
            }
            (Verdict::None, _) => mask.resize(chunk.len(), 0),
            _ => mask.resize(chunk.len(), 1),
        }
        if !whole {
            for (m, &t) in mask.iter_mut().zip(chunk.time.iter()) {
                *m &= u8::from(bounds.contains(t));
            }
        }
    }
}

/// The matching rows of a whole chunk when exactly one column is live and
/// its summary did not give the count (a restored chunk's IP address or
/// workflow column): one pass of look-ups, where the mask takes two.
fn one_live_count(chunk: &Chunk, tables: &Tables, live: [bool; 4]) -> Option<u64> {
    let mut ks = (0..4).filter(|&k| live[k]);
    let (Some(k), None) = (ks.next(), ks.next()) else {
        return None;
    };
    let table = tables.column(k);
    let hits = |ids: &[u32]| ids.iter().map(|&id| u64::from(table[id as usize])).sum();
    Some(match k {
        0 => chunk
            .event
            .iter()
            .map(|&id| u64::from(table[usize::from(id)]))
            .sum(),
        1 => hits(&chunk.actor),
        2 => hits(&chunk.ip),
        _ => hits(&chunk.workflow),
    })
}

/// Visits each row of a whole chunk with its time and whether it matches
/// (1 or 0), when exactly two columns are live, in one pass that looks
/// both up per row (the mask takes two passes, then one to read it).
/// False, having visited nothing, for any other number of live columns.
fn two_live(
    chunk: &Chunk,
    tables: &Tables,
    live: [bool; 4],
    and: bool,
    mut visit: impl FnMut(i64, u64),
) -> bool {
    let mut ks = (0..4).filter(|&k| live[k]);
    let (Some(a), Some(b), None) = (ks.next(), ks.next(), ks.next()) else {
        return false;
    };
    let wide = |k: usize| -> &[u32] {
        match k {
            1 => &chunk.actor,
            2 => &chunk.ip,
            _ => &chunk.workflow,
        }
    };
    let (time, ta, tb): (&[i64], _, _) = (&chunk.time, tables.column(a), tables.column(b));
    let v = &mut visit;
    // Live columns come in column order: only the first can be the event's.
    match (a, and) {
        (0, true) => pair::<_, true>(time, &chunk.event, ta, wide(b), tb, v),
        (0, false) => pair::<_, false>(time, &chunk.event, ta, wide(b), tb, v),
        (_, true) => pair::<_, true>(time, wide(a), ta, wide(b), tb, v),
        (_, false) => pair::<_, false>(time, wide(a), ta, wide(b), tb, v),
    }
    true
}

#[inline]
fn pair<A: Copy + Into<u64>, const AND: bool>(
    time: &[i64],
    a: &[A],
    ta: &[bool],
    b: &[u32],
    tb: &[bool],
    visit: &mut impl FnMut(i64, u64),
) {
    for ((&t, &x), &y) in time.iter().zip(a).zip(b) {
        let (p, q) = (ta[x.into() as usize], tb[y as usize]);
        visit(t, u64::from(if AND { p & q } else { p | q }));
    }
}

/// One column pass: `mask[i] &= table[col[i]]` (AND) or `|=` (OR). No
/// branch in the loop, so its cost is the look-up.
#[inline]
fn apply<T: Copy + Into<u64>, const AND: bool>(col: &[T], table: &[bool], mask: &mut [u8]) {
    for (m, &id) in mask.iter_mut().zip(col) {
        let hit = u8::from(table[id.into() as usize]);
        if AND {
            *m &= hit;
        } else {
            *m |= hit;
        }
    }
}

/// The bucket of a time among ascending edges, remembering the last one
/// (rows mostly arrive in time order). A time outside the edges gets the
/// first or last bucket: only rows with nothing to add ask for one.
struct Bucket<'a> {
    edges: &'a [i64],
    cur: usize,
    lo: i64,
    hi: i64,
    /// Rows of bucket `cur` not yet added to the counts (see [`Bucket::add`]).
    pending: u64,
}

impl<'a> Bucket<'a> {
    fn new(edges: &'a [i64]) -> Bucket<'a> {
        Bucket {
            edges,
            cur: 0,
            lo: edges[0],
            hi: edges[1],
            pending: 0,
        }
    }

    /// Adds `n` rows at time `t`, written to `counts` only when the bucket
    /// changes (and by [`Bucket::flush`]): adding to `counts[cur]` per row
    /// would chain every row to the previous one's store (a few cycles
    /// each); a running sum in a register does not.
    ///
    /// Inlined into the per-row loops, with the bucket change out of line:
    /// as one function, the compiler kept it out of line, a call per row
    /// (a third of a heavy user's all-time histogram, perf).
    #[inline(always)]
    fn add(&mut self, t: i64, n: u64, counts: &mut [u64]) {
        if t < self.lo || t >= self.hi {
            self.change(t, counts);
        }
        self.pending += n;
    }

    #[cold]
    #[inline(never)]
    fn change(&mut self, t: i64, counts: &mut [u64]) {
        counts[self.cur] += self.pending;
        self.pending = 0;
        self.of(t);
    }

    fn flush(&mut self, counts: &mut [u64]) {
        counts[self.cur] += self.pending;
        self.pending = 0;
    }

    #[inline]
    fn of(&mut self, t: i64) -> usize {
        if t < self.lo || t >= self.hi {
            let after = self.edges.partition_point(|&e| e <= t);
            self.cur = after.clamp(1, self.edges.len() - 1) - 1;
            self.lo = self.edges[self.cur];
            self.hi = self.edges[self.cur + 1];
        }
        self.cur
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{Catalog, EventId, Level};
    use crate::index::tests::{ev, filter};
    use crate::index::{
        CHUNK_ROWS, IndexLimits, IndexRow, LogIndex, RowFields, RowKey, Scope, TimeBounds,
    };
    use crate::query::{Column, Filter, Join, Op};

    /// (time, event, user, ip, workflow) of a skewed log: user "svc" writes
    /// a fifth of it from the office's address, which carries a quarter of
    /// the rest; "rare" appears in the second chunk only; workflow wf_0
    /// takes half of the workflow rows; some rows arrive late.
    type Row = (i64, EventId, String, Option<String>, Option<String>);

    fn rows(n: usize) -> Vec<Row> {
        let ids: Vec<EventId> = Catalog::get().entries().map(|e| e.id).take(12).collect();
        let login = ev(Level::Account, "Login/Logout", "Login");
        let mut x: u64 = 99;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let r = x % 100;
                let user = if r < 20 {
                    "svc".to_owned()
                } else if (CHUNK_ROWS..CHUNK_ROWS + 300).contains(&i) && r < 30 {
                    "rare".to_owned()
                } else {
                    format!("u{}", (x >> 8) % 50)
                };
                let ip = match (r < 20, (x >> 16) % 8) {
                    (true, _) | (_, 0 | 1) => Some("10.0.0.1".to_owned()),
                    (_, 2) => None,
                    (_, k) => Some(format!("10.1.0.{}", (x >> 24) % 40 + k)),
                };
                let wf = match (x >> 32) % 10 {
                    0 => Some("wf_0".to_owned()),
                    1 => Some(format!("wf_{}", (x >> 40) % 9 + 1)),
                    _ => None,
                };
                let late = if (x >> 48).is_multiple_of(50) {
                    500_000
                } else {
                    0
                };
                let event = if (x >> 20).is_multiple_of(2) {
                    login
                } else {
                    ids[(x >> 52) as usize % ids.len()]
                };
                (i as i64 * 10 - late, event, user, ip, wf)
            })
            .collect()
    }

    fn json(r: &Row) -> Vec<u8> {
        let e = Catalog::get().entry(r.1);
        serde_json::to_vec(&serde_json::json!({
            "level": e.level.as_str(),
            "category": e.category,
            "event": e.event.name.as_str(),
            "actor": {"id": r.2},
            "ip_address": r.3,
            "workflow_id": r.4,
            "description": "",
        }))
        .unwrap()
    }

    fn shapes() -> Vec<Vec<Filter>> {
        let f = filter;
        vec![
            vec![],
            vec![f(Column::UserId, Op::Eq, "svc")],
            vec![f(Column::UserId, Op::Ne, "svc")],
            vec![f(Column::UserId, Op::Eq, "rare")],
            vec![f(Column::UserId, Op::Eq, "nobody")],
            vec![f(Column::IpAddress, Op::Eq, "10.0.0.1")],
            vec![f(Column::IpAddress, Op::Eq, "10.1.0.7")],
            vec![f(Column::IpAddress, Op::Ne, "")],
            vec![f(Column::WorkflowId, Op::Eq, "wf_0")],
            vec![f(Column::Event, Op::Eq, "Login")],
            vec![
                f(Column::Event, Op::Eq, "Role created"),
                f(Column::UserId, Op::Eq, "svc"),
            ],
            vec![
                f(Column::UserId, Op::Eq, "svc"),
                f(Column::Event, Op::Eq, "Login"),
            ],
            vec![
                f(Column::IpAddress, Op::Eq, "10.0.0.1"),
                f(Column::UserId, Op::Ne, "svc"),
            ],
            vec![
                f(Column::UserId, Op::Eq, "rare"),
                f(Column::WorkflowId, Op::Contains, "wf"),
                f(Column::IpAddress, Op::Contains, "10."),
            ],
            vec![f(Column::Level, Op::Eq, "workflow")],
        ]
    }

    /// The plain scan's answers, row by row through `for_each_match`.
    fn reference(
        plan: &crate::index::Plan,
        bounds: TimeBounds,
        edges: &[i64],
        check: &mut dyn FnMut(u64) -> bool,
    ) -> (u64, Vec<u64>, Vec<RowKey>) {
        let mut keys = Vec::new();
        plan.for_each_match(bounds, check, |k| keys.push(k));
        let mut hist = vec![0; edges.len() - 1];
        for k in &keys {
            let t = k.occurred_at_us;
            if edges[0] <= t && t < edges[edges.len() - 1] {
                hist[edges.partition_point(|&e| e <= t) - 1] += 1;
            }
        }
        let count = keys.len() as u64;
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.truncate(20);
        (count, hist, keys)
    }

    /// Over several full chunks (with summaries) and a tail, with heavy and
    /// rare values, late rows, bounds cutting chunks and histogram edges
    /// that do and do not cover the bounds, the per-chunk count, histogram
    /// and page equal the plain scan's — within the caps and with every
    /// dictionary overflowed (the scan path, reading records).
    #[test]
    fn per_chunk_answers_equal_the_plain_scan() {
        let rows = rows(3 * CHUNK_ROWS + CHUNK_ROWS / 3);
        let free = LogIndex::default();
        // Some actors and addresses past the cap, not most (their rows
        // are decided from records, slow in a debug build).
        let capped = LogIndex::new(IndexLimits {
            max_distinct: 45,
            ..IndexLimits::DEFAULT
        });
        let records: Vec<Vec<u8>> = rows.iter().map(json).collect();
        for idx in [&free, &capped] {
            idx.append(rows.iter().map(|r| IndexRow {
                occurred_at_us: r.0,
                event: r.1,
                actor_id: &r.2,
                actor_name: None,
                ip_address: r.3.as_deref(),
                workflow_id: r.4.as_deref(),
            }));
        }
        assert!(capped.overflowed() && !free.overflowed());
        assert_eq!(free.read().summaries.len(), 3);
        let end = rows.len() as i64 * 10;
        let bounds = [
            TimeBounds::ALL,
            TimeBounds {
                start: Some(CHUNK_ROWS as i64 * 10 + 5),
                end: Some(end - 777),
            },
            TimeBounds {
                start: Some(CHUNK_ROWS as i64 * 15),
                end: Some(CHUNK_ROWS as i64 * 16),
            },
        ];
        let step = CHUNK_ROWS as i64 * 3;
        let edges: Vec<i64> = (-1..=(end / step + 1)).map(|k| k * step).collect();
        let narrow = [CHUNK_ROWS as i64 * 12, CHUNK_ROWS as i64 * 14, end];
        for filters in shapes() {
            for join in [Join::And, Join::Or] {
                // The capped index decides most rows from their records
                // (slow in a debug build): one bounds and one set of edges.
                for (idx, bounds, all_edges) in [
                    (&free, &bounds[..], &[edges.as_slice(), &narrow][..]),
                    (&capped, &bounds[1..2], &[edges.as_slice()][..]),
                ] {
                    let plan = idx.plan(&filters, join, &Scope::Account);
                    let mut check = |s: u64| {
                        plan.matches_record(&RowFields::parse(&records[s as usize]).unwrap())
                    };
                    for &b in bounds {
                        for &edges in all_edges {
                            let (count, hist, page) = reference(&plan, b, edges, &mut check);
                            let what = format!("{filters:?} {join:?} {b:?} {edges:?}");
                            assert_eq!(plan.count(b, &mut check), count, "{what}");
                            assert_eq!(idx.count(&plan, b, &mut check), count, "{what}");
                            assert_eq!(plan.histogram(b, edges, &mut check), hist, "{what}");
                            assert_eq!(plan.page(b, None, 20, &mut check).0, page, "{what}");
                        }
                    }
                }
            }
        }
    }
}
