//! The export's walk of a plan: [`ExportKeys`], every matching row newest
//! first in batches of bounded size, scanning each chunk about twice.

use super::plan::Plan;
use super::{CHUNK_ROWS, ChunkRef, RowKey, TimeBounds};

impl Plan {
    /// Every matching row in `bounds`, newest first like [`Plan::page`],
    /// in batches of bounded size: the export's walk of the index.
    pub fn export_keys(&self, bounds: TimeBounds) -> ExportKeys<'_> {
        ExportKeys {
            plan: self,
            bounds,
            state: ExportState::Windows { end: bounds.end },
        }
    }
}

/// Most keys an [`ExportKeys`] batch holds (16 bytes each: 4 MiB).
pub const EXPORT_KEYS_MAX: usize = 4 * CHUNK_ROWS;

/// The export's walk over a plan: batches of keys, newest first, that
/// together are exactly the rows [`Plan::page`] would return page after
/// page, in the same order.
///
/// Why not pages: a page of 1,000 rows costs a scan of a whole chunk (and a
/// heap operation for most of its rows), so paging through a log scans each
/// chunk about 65 times. Instead the walk cuts time into windows
/// `[start, end)`, newest first: `start` is the newest `min_time` among the
/// chunks holding rows before `end`, so that chunk lies wholly inside the
/// window and every window makes progress. Every chunk overlapping the
/// window is scanned for the rows inside it and the window is sorted. For a
/// log ingested roughly in time order a window is about one chunk, and each
/// chunk is scanned about twice in all; each row is in exactly one window,
/// so the record check is asked once per row at most.
///
/// Memory stays bounded: a window holding more than [`EXPORT_KEYS_MAX`]
/// rows (counted before any filter, so no description is read for it) means
/// chunks overlap in time (late events, an import of old events); its start
/// is then moved later until it holds few enough. Only when more rows than
/// that share one microsecond does the rest of the walk fall back to pages
/// of [`CHUNK_ROWS`] keys.
pub struct ExportKeys<'p> {
    plan: &'p Plan,
    bounds: TimeBounds,
    state: ExportState,
}

impl std::fmt::Debug for ExportKeys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportKeys")
            .field("bounds", &self.bounds)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
enum ExportState {
    /// Every row at `end` or later (exclusive end; `None` = no end) has
    /// been returned.
    Windows {
        end: Option<i64>,
    },
    /// Pages strictly before `after`, within times before `end`.
    Pages {
        end: Option<i64>,
        after: Option<RowKey>,
    },
    Done,
}

impl<'p> ExportKeys<'p> {
    /// Replaces `out` with the next batch, newest first; `false` (and `out`
    /// empty) when the walk is over. A batch is never empty otherwise.
    pub fn next_batch(
        &mut self,
        check: &mut dyn FnMut(u64) -> bool,
        out: &mut Vec<RowKey>,
    ) -> bool {
        out.clear();
        while out.is_empty() {
            match self.state {
                ExportState::Done => return false,
                ExportState::Windows { end } => self.next_window(end, check, out),
                ExportState::Pages { end, after } => {
                    let bounds = TimeBounds {
                        start: self.bounds.start,
                        end,
                    };
                    let (rows, more) = self.plan.page(bounds, after, CHUNK_ROWS, check);
                    self.state = match (more, rows.last()) {
                        (true, Some(&last)) => ExportState::Pages {
                            end,
                            after: Some(last),
                        },
                        _ => ExportState::Done,
                    };
                    out.extend_from_slice(&rows);
                }
            }
        }
        true
    }

    fn next_window(
        &mut self,
        end: Option<i64>,
        check: &mut dyn FnMut(u64) -> bool,
        out: &mut Vec<RowKey>,
    ) {
        let left = TimeBounds {
            start: self.bounds.start,
            end,
        };
        let live = |c: &ChunkRef| c.len() > 0 && left.overlaps(c.min_time(), c.max_time());
        let Some(start) = self
            .plan
            .chunks
            .iter()
            .filter(|c| live(c))
            .map(|c| {
                self.bounds
                    .start
                    .map_or(c.min_time(), |s| s.max(c.min_time()))
            })
            .max()
        else {
            self.state = ExportState::Done;
            return;
        };
        let mut window = TimeBounds {
            start: Some(start),
            end,
        };
        let mut rows = 0;
        for (_, c) in self.chunks_in(window) {
            let Some(c) = self.plan.hold(c) else {
                self.state = ExportState::Done;
                return;
            };
            rows += c.time.iter().filter(|&&t| window.contains(t)).count();
        }
        if rows > EXPORT_KEYS_MAX {
            match self.narrow(start, end) {
                Some(s) => window.start = Some(s),
                None => {
                    self.state = ExportState::Pages { end, after: None };
                    return;
                }
            }
        }
        for (ci, c) in self.chunks_in(window) {
            let Some(chunk) = self.plan.hold(c) else {
                self.state = ExportState::Done;
                return;
            };
            self.plan.scan_chunk(
                &chunk,
                (ci * CHUNK_ROWS) as u64,
                window,
                check,
                &mut |row| out.push(row),
            );
        }
        out.sort_unstable_by(|a, b| b.cmp(a));
        // The chunk that gave `start` had a row there (and a narrowed window
        // ends before its rows), so the walk moves.
        self.state = match window.start {
            Some(s) if self.bounds.start == Some(s) => ExportState::Done,
            s => ExportState::Windows { end: s },
        };
    }

    /// Non-empty chunks overlapping `window` that the plan can match (by
    /// their summaries: a sealed chunk no row of which can match is not
    /// loaded, and its rows do not count against a window's keys), with
    /// their positions.
    fn chunks_in(&self, window: TimeBounds) -> impl Iterator<Item = (usize, &'p ChunkRef)> + 'p {
        let plan = self.plan;
        plan.chunks.iter().enumerate().filter(move |&(ci, c)| {
            c.len() > 0 && window.overlaps(c.min_time(), c.max_time()) && !plan.skips_chunk(ci)
        })
    }

    /// A later start for a window `[lo, end)` that holds too many rows, so
    /// that `[start, end)` holds at most [`EXPORT_KEYS_MAX`]: chunks
    /// overlap in time, typically because a chunk holds a few events that
    /// arrived long after they occurred. One pass counts the rows into
    /// 1,024 buckets of time and takes the oldest bucket edge that keeps the
    /// count under the cap; when the newest non-empty bucket alone holds too
    /// many, the search goes on inside it. `None` when more than the cap
    /// share one microsecond.
    fn narrow(&self, mut lo: i64, end: Option<i64>) -> Option<i64> {
        const BUCKETS: i64 = 1024;
        let mut hi = match end {
            Some(e) => e,
            None => {
                self.chunks_in(TimeBounds::ALL)
                    .map(|(_, c)| c.max_time())
                    .max()?
                    + 1
            }
        };
        while hi - lo > 1 {
            let width = (hi - lo + BUCKETS - 1) / BUCKETS;
            let part = TimeBounds {
                start: Some(lo),
                end: Some(hi),
            };
            let mut counts = vec![0usize; BUCKETS as usize];
            for (_, c) in self.chunks_in(part) {
                // A chunk that cannot be loaded fails the plan; the walk
                // ends with the error.
                let c = self.plan.hold(c)?;
                for &t in c.time.iter() {
                    if part.contains(t) {
                        counts[((t - lo) / width) as usize] += 1;
                    }
                }
            }
            let mut above = 0;
            let mut b = BUCKETS - 1;
            loop {
                let n = counts[b as usize];
                if above + n > EXPORT_KEYS_MAX {
                    break;
                }
                above += n;
                if b == 0 {
                    // Everything fits after all.
                    return Some(lo);
                }
                b -= 1;
            }
            if above > 0 {
                return Some(lo + (b + 1) * width);
            }
            // No rows after bucket `b`, too many in it: look inside it.
            (lo, hi) = (lo + b * width, hi.min(lo + (b + 1) * width));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{EXPORT_KEYS_MAX, ExportState};
    use crate::catalog::Level;
    use crate::index::tests::{ev, filter, sample};
    use crate::index::{CHUNK_ROWS, IndexRow, LogIndex, Plan, RowKey, Scope, TimeBounds};
    use crate::query::{Column, Join, Op};

    /// Every page of `size` in turn, concatenated: what an export walk must
    /// equal.
    fn all_pages(
        plan: &Plan,
        bounds: TimeBounds,
        size: usize,
        desc: &dyn Fn(u64) -> bool,
    ) -> Vec<RowKey> {
        let mut after = None;
        let mut out = Vec::new();
        loop {
            let (rows, more) = plan.page(bounds, after, size, &mut |s| desc(s));
            out.extend_from_slice(&rows);
            if !more {
                return out;
            }
            after = rows.last().copied();
        }
    }

    /// The export walk's batches, concatenated; checks each batch's size
    /// and that no row's description is asked twice (when `once`).
    fn walk(
        plan: &Plan,
        bounds: TimeBounds,
        desc: &dyn Fn(u64) -> bool,
        once: bool,
    ) -> Vec<RowKey> {
        walk_paged(plan, bounds, desc, once).0
    }

    /// [`walk`], and whether it fell back to pages.
    fn walk_paged(
        plan: &Plan,
        bounds: TimeBounds,
        desc: &dyn Fn(u64) -> bool,
        once: bool,
    ) -> (Vec<RowKey>, bool) {
        let mut paged = false;
        let mut asked = std::collections::HashSet::new();
        let mut walk = plan.export_keys(bounds);
        let (mut keys, mut out) = (Vec::new(), Vec::new());
        while walk.next_batch(
            &mut |s| {
                assert!(asked.insert(s) || !once, "description of {s} asked twice");
                desc(s)
            },
            &mut keys,
        ) {
            assert!(!keys.is_empty() && keys.len() <= EXPORT_KEYS_MAX);
            out.extend_from_slice(&keys);
            paged |= matches!(walk.state, ExportState::Pages { .. });
        }
        assert!(keys.is_empty());
        (out, paged)
    }

    /// A log of `n` rows whose times follow `time(i)`, with a few actors
    /// and events so filters have something to pick.
    fn log_of(n: usize, time: impl Fn(usize) -> i64) -> LogIndex {
        let idx = LogIndex::default();
        let login = ev(Level::Account, "Login/Logout", "Login");
        let role = ev(Level::Account, "Roles", "Role created");
        let names = ["a", "b", "c", "d", "e"];
        idx.append((0..n).map(|i| IndexRow {
            occurred_at_us: time(i),
            event: if i % 3 == 0 { role } else { login },
            actor_id: names[i % 5],
            actor_name: None,
            ip_address: None,
            workflow_id: None,
        }));
        idx
    }

    /// A small deterministic generator (no dev-dependency needed).
    fn lcg(i: usize) -> u64 {
        (i as u64 ^ 0x9e37_79b9)
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407)
            >> 17
    }

    #[test]
    fn export_walk_equals_paging_for_a_log_in_time_order() {
        // Times mostly ascending with jitter, many ties, a few late
        // arrivals from long ago, over three chunks and a partial one.
        let n = 3 * CHUNK_ROWS + CHUNK_ROWS / 5 + 1;
        let idx = log_of(n, |i| {
            let t = (i as i64 / 4) * 10 + (lcg(i) % 25) as i64;
            if i % (CHUNK_ROWS / 3 + 7) == 7 {
                t - 3 * n as i64 / 2
            } else {
                t
            }
        });
        let role = filter(Column::Event, Op::Eq, "Role created");
        let user = filter(Column::User, Op::Ne, "b");
        let desc = filter(Column::Description, Op::Contains, "x");
        let is_x = |s: u64| s % 7 != 3;
        let mid = TimeBounds {
            start: Some(5 * n as i64 / 8),
            end: Some(2 * n as i64 + 1),
        };
        for (filters, join) in [
            (vec![], Join::And),
            (vec![role.clone()], Join::And),
            (vec![role.clone(), user.clone()], Join::Or),
            (vec![user.clone(), desc.clone()], Join::And),
            (vec![role.clone(), desc.clone()], Join::Or),
        ] {
            let plan = idx.plan(&filters, join, &Scope::Account);
            for bounds in [TimeBounds::ALL, mid] {
                let expected = all_pages(&plan, bounds, 5_000, &is_x);
                assert!(!expected.is_empty());
                let (got, paged) = walk_paged(&plan, bounds, &is_x, true);
                assert_eq!(got, expected, "{filters:?} {bounds:?}");
                assert!(!paged);
            }
        }
    }

    #[test]
    fn export_walk_stays_bounded_when_chunks_overlap_in_time() {
        // Times shuffled over the whole log: every chunk spans all of time,
        // so windows must be narrowed, each row still asked about once.
        let n = EXPORT_KEYS_MAX + CHUNK_ROWS / 2;
        let idx = log_of(n, |i| (lcg(i) % 100_000) as i64 - 50_000);
        let plan = idx.plan(&[], Join::And, &Scope::Account);
        let expected = all_pages(&plan, TimeBounds::ALL, 50_000, &|_| true);
        assert_eq!(expected.len(), n);
        let (got, paged) = walk_paged(&plan, TimeBounds::ALL, &|_| true, true);
        assert_eq!((got == expected, paged), (true, false));
        // More rows than a batch may hold at one microsecond (and a few
        // around it): pages then, in the same order.
        let idx = log_of(n, |i| match i % 1000 {
            1 => 7,
            2 => 3,
            _ => 5,
        });
        let plan = idx.plan(&[], Join::And, &Scope::Account);
        let expected = all_pages(&plan, TimeBounds::ALL, 50_000, &|_| true);
        let (got, paged) = walk_paged(&plan, TimeBounds::ALL, &|_| true, false);
        assert_eq!((got == expected, paged), (true, true));
    }

    #[test]
    fn export_walk_of_nothing_is_empty() {
        let idx = sample();
        let plan = idx.plan(&[], Join::And, &Scope::Account);
        let none = TimeBounds {
            start: Some(100),
            end: None,
        };
        assert!(walk(&plan, none, &|_| true, true).is_empty());
        let plan = LogIndex::default().plan(&[], Join::And, &Scope::Account);
        assert!(walk(&plan, TimeBounds::ALL, &|_| true, true).is_empty());
        // Ties on time keep seq descending; a start bound inside a chunk ends
        // the walk there.
        let plan = idx.plan(&[], Join::And, &Scope::Account);
        let from_10 = TimeBounds {
            start: Some(10),
            end: None,
        };
        let keys: Vec<_> = walk(&plan, from_10, &|_| true, true)
            .iter()
            .map(|r| (r.occurred_at_us, r.seq))
            .collect();
        assert_eq!(keys, [(30, 3), (30, 2), (20, 1), (10, 0)]);
    }
}
