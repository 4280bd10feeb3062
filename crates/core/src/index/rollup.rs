//! The fast paths of [`LogIndex::count`] and [`LogIndex::histogram`]: the
//! per-slot rollups when only the event column matters, the actor column
//! (through a sealed chunk's postings when they pick few rows) when a `user`
//! filter decides with the event alone; else the scan.

use super::plan::Plan;
use super::{Inner, LogIndex, SLOT_US, TimeBounds};
use crate::query::Join;

impl LogIndex {
    /// Exact number of rows of `plan` in `bounds`: from the rollups when
    /// the plan depends on the event column alone and the bounds fall on
    /// slot edges (the seed's filters over any preset), else by a scan.
    ///
    /// The rollups are read at call time, so rows appended since the plan
    /// was made may be counted; every count still is exact for some
    /// instant.
    pub fn count(
        &self,
        plan: &Plan,
        bounds: TimeBounds,
        check: &mut dyn FnMut(u64) -> bool,
    ) -> u64 {
        if let Some(table) = plan.event_only_table()
            && let Some((lo, hi)) = slot_range(bounds)
        {
            return rollup_count(&self.read(), table, lo, hi);
        }
        if let Some(part) = plan.actor_part()
            && self.few_rows(&part, plan)
        {
            let event_hit = |e: u16| part.event.is_some_and(|ev| ev[e as usize]);
            let base = match (part.join, part.event, slot_range(bounds)) {
                (Join::And, _, _) | (Join::Or, None, _) => Some(0),
                (Join::Or, Some(ev), Some((lo, hi))) => {
                    Some(rollup_count(&self.read(), Some(ev), lo, hi))
                }
                (Join::Or, Some(_), None) => None,
            };
            if let Some(base) = base {
                let mut n = base;
                plan.actor_rows(&part, bounds, |t, e| {
                    let keep = match part.join {
                        Join::And => part.event.is_none_or(|ev| ev[e as usize]),
                        // Rows the event part already counted are not
                        // counted again.
                        Join::Or => !event_hit(e),
                    };
                    if keep && bounds.contains(t) {
                        n += 1;
                    }
                });
                return n;
            }
        }
        plan.count(bounds, check)
    }

    /// Counts per bucket (see [`Plan::histogram`]), from the rollups when
    /// the plan and every edge allow it, else by a scan.
    pub fn histogram(
        &self,
        plan: &Plan,
        bounds: TimeBounds,
        edges: &[i64],
        check: &mut dyn FnMut(u64) -> bool,
    ) -> Vec<u64> {
        let aligned = edges.iter().all(|e| e.rem_euclid(SLOT_US) == 0);
        if let Some(table) = plan.event_only_table()
            && aligned
            && let (Some(&first), Some(&last)) = (edges.first(), edges.last())
        {
            let clipped = TimeBounds {
                start: Some(bounds.start.map_or(first, |s| s.max(first))),
                end: Some(bounds.end.map_or(last, |e| e.min(last))),
            };
            if let Some((lo, hi)) = slot_range(clipped) {
                let mut counts = vec![0u64; edges.len() - 1];
                rollup_histogram(&self.read(), table, lo, hi, edges, &mut counts);
                return counts;
            }
        }
        if let Some(part) = plan.actor_part()
            && self.few_rows(&part, plan)
            && let (Some(&first), Some(&last)) = (edges.first(), edges.last())
        {
            let clipped = TimeBounds {
                start: Some(bounds.start.map_or(first, |s| s.max(first))),
                end: Some(bounds.end.map_or(last, |e| e.min(last))),
            };
            let mut counts = vec![0u64; edges.len() - 1];
            let base_ok = match (part.join, part.event, slot_range(clipped)) {
                (Join::And, _, _) | (Join::Or, None, _) => true,
                (Join::Or, Some(ev), Some((lo, hi))) if aligned => {
                    rollup_histogram(&self.read(), Some(ev), lo, hi, edges, &mut counts);
                    true
                }
                _ => false,
            };
            if base_ok {
                plan.actor_rows(&part, clipped, |t, e| {
                    if !clipped.contains(t) {
                        return;
                    }
                    let keep = match part.join {
                        Join::And => part.event.is_none_or(|ev| ev[e as usize]),
                        Join::Or => !part.event.is_some_and(|ev| ev[e as usize]),
                    };
                    if keep {
                        counts[edges.partition_point(|&x| x <= t) - 1] += 1;
                    }
                });
                return counts;
            }
        }
        plan.histogram(bounds, edges, check)
    }
}

impl LogIndex {
    /// Whether the actors a plan picks hold an eighth of its rows at most:
    /// then visiting their rows beats the scan (which the kernel runs
    /// branch-free over both cores).
    fn few_rows(&self, part: &ActorPart<'_>, plan: &Plan) -> bool {
        let g = self.read();
        let picked: u64 = part
            .actor
            .iter()
            .zip(&g.actor_rows)
            .filter(|(p, _)| **p)
            .map(|(_, n)| n)
            .sum();
        picked.saturating_mul(8) <= plan.rows()
    }
}

fn rollup_count(g: &Inner, table: Option<&[bool]>, lo: i64, hi: i64) -> u64 {
    g.rollup
        .range(lo..hi)
        .flat_map(|(_, v)| v)
        .filter(|(e, _)| table.is_none_or(|t| t[*e as usize]))
        .map(|(_, c)| u64::from(*c))
        .sum()
}

/// Adds the rollup counts of slots `lo..hi` into the buckets of `edges`.
fn rollup_histogram(
    g: &Inner,
    table: Option<&[bool]>,
    lo: i64,
    hi: i64,
    edges: &[i64],
    counts: &mut [u64],
) {
    let mut bucket = 0;
    for (slot, v) in g.rollup.range(lo..hi) {
        let t = slot * SLOT_US;
        while bucket + 1 < edges.len() - 1 && edges[bucket + 1] <= t {
            bucket += 1;
        }
        counts[bucket] += v
            .iter()
            .filter(|(e, _)| table.is_none_or(|t| t[*e as usize]))
            .map(|(_, c)| u64::from(*c))
            .sum::<u64>();
    }
}

/// A plan over the event and actor columns only, whose actor part may be
/// answered from postings.
struct ActorPart<'a> {
    join: Join,
    /// The event table; for OR, `None` when no filter touched the event.
    event: Option<&'a [bool]>,
    actor: &'a [bool],
}

/// The slots covering `bounds` exactly, if both ends fall on slot edges.
fn slot_range(bounds: TimeBounds) -> Option<(i64, i64)> {
    let lo = match bounds.start {
        None => i64::MIN,
        Some(s) if s.rem_euclid(SLOT_US) == 0 => s / SLOT_US,
        Some(_) => return None,
    };
    let hi = match bounds.end {
        None => i64::MAX,
        Some(e) if e.rem_euclid(SLOT_US) == 0 => e / SLOT_US,
        Some(_) => return None,
    };
    (lo < hi).then_some((lo, hi))
}

impl Plan {
    /// The plan as event and actor parts, when it touches nothing else.
    fn actor_part(&self) -> Option<ActorPart<'_>> {
        if self.has_description || self.scope_event.is_some() {
            return None;
        }
        let t = self.tables.as_ref()?;
        // Postings of the overflow actor mix many actors: scan instead.
        if !t.touched[1] || t.touched[2] || t.touched[3] || t.undecided[1] {
            return None;
        }
        let event = match self.join {
            Join::And => Some(t.event.as_slice()),
            Join::Or => t.touched[0].then_some(t.event.as_slice()),
        };
        Some(ActorPart {
            join: self.join,
            event,
            actor: &t.actor,
        })
    }

    /// Calls `f(time, event)` for every row of the snapshot in `bounds`'
    /// chunks whose actor the part picks (and maybe others of those chunks'
    /// rows outside `bounds`: `f` checks the time). A sealed chunk whose
    /// picked actors hold an eighth of its rows at most is visited through
    /// its postings; others by a walk of its actor column.
    fn actor_rows(&self, part: &ActorPart<'_>, bounds: TimeBounds, mut f: impl FnMut(i64, u16)) {
        let picked = |a: u32| part.actor.get(a as usize).copied().unwrap_or(false);
        for (ci, r) in self.chunks.iter().enumerate() {
            if r.len() == 0 || !bounds.overlaps(r.min_time(), r.max_time()) {
                continue;
            }
            // A chunk whose summary holds none of the picked actors is not
            // read (nor loaded, when sealed).
            let actors = self.summary(ci).and_then(|s| s.columns[1].as_deref());
            if actors.is_some_and(|v| !v.iter().any(|&(a, _)| picked(a))) {
                continue;
            }
            let Some(chunk) = self.hold(r) else {
                return;
            };
            let c = chunk.columns();
            if let Some(p) = chunk.postings() {
                let picked = p.picked(part.actor);
                let n: usize = picked.clone().map(<[u16]>::len).sum();
                if n * 8 <= c.time.len() {
                    for i in picked.flatten() {
                        let i = *i as usize;
                        f(c.time[i], c.event[i]);
                    }
                    continue;
                }
            }
            for (i, &a) in c.actor.iter().enumerate() {
                if picked(a) {
                    f(c.time[i], c.event[i]);
                }
            }
        }
    }

    /// When the plan's outcome depends only on a row's catalog event: the
    /// table of events that match (`None` = all do). `None` overall (the
    /// outer option) when another column, a description filter or a
    /// workflow scope is involved.
    #[allow(clippy::option_option)]
    fn event_only_table(&self) -> Option<Option<&[bool]>> {
        if self.has_description || self.scope_event.is_some() {
            return None;
        }
        match &self.tables {
            None => Some(None),
            Some(t) if !t.touched[1] && !t.touched[2] && !t.touched[3] => {
                Some(Some(t.event.as_slice()))
            }
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::{Catalog, EventId};
    use crate::index::tests::filter;
    use crate::index::{CHUNK_ROWS, IndexRow, LogIndex, Scope, TimeBounds};
    use crate::query::{Column, Join, Op};

    /// The rollup answers must equal the scan's for every plan shape it
    /// takes, and the scan must be used for the others.
    #[test]
    fn rollups_agree_with_scans() {
        let idx = LogIndex::default();
        let cat = Catalog::get();
        let ids: Vec<EventId> = cat.entries().map(|e| e.id).collect();
        let mut x: u64 = 7;
        let hour = 3_600_000_000i64;
        let rows: Vec<(i64, EventId, String)> = (0..CHUNK_ROWS + 5000)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly in time order, some late arrivals.
                let t = i as i64 * 60_000_000
                    - i64::from(x.is_multiple_of(5)) * (x % 1000) as i64 * 60_000_000;
                (
                    t,
                    ids[(x % ids.len() as u64) as usize],
                    format!("u{}", x % 13),
                )
            })
            .collect();
        idx.append(rows.iter().map(|(t, e, u)| IndexRow {
            occurred_at_us: *t,
            event: *e,
            actor_id: u,
            actor_name: None,
            ip_address: None,
            workflow_id: None,
        }));
        let shapes = [
            vec![],
            vec![filter(Column::Event, Op::Eq, "Login")],
            vec![filter(Column::Category, Op::Ne, "Login/Logout")],
            vec![
                filter(Column::Event, Op::Ne, "Login"),
                filter(Column::Category, Op::Ne, "Prompts"),
            ],
            vec![
                filter(Column::Event, Op::Eq, "Login"),
                filter(Column::User, Op::Eq, "u3"),
            ],
        ];
        let edges: Vec<i64> = (-2..30).map(|h| h * 24 * hour + 30 * 60_000_000).collect();
        for filters in &shapes {
            for join in [Join::And, Join::Or] {
                let plan = idx.plan(filters, join, &Scope::Account);
                for bounds in [
                    TimeBounds::ALL,
                    TimeBounds {
                        start: Some(5 * hour),
                        end: Some(500 * hour),
                    },
                    TimeBounds {
                        start: Some(5 * hour + 1),
                        end: None,
                    },
                ] {
                    assert_eq!(
                        idx.count(&plan, bounds, &mut |_| true),
                        plan.count(bounds, &mut |_| true),
                        "{filters:?} {join:?} {bounds:?}"
                    );
                    assert_eq!(
                        idx.histogram(&plan, bounds, &edges, &mut |_| true),
                        plan.histogram(bounds, &edges, &mut |_| true),
                        "{filters:?} {join:?} {bounds:?}"
                    );
                }
            }
        }
    }
}
