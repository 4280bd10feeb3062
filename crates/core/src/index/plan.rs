//! Compiling a query against a snapshot of the index: [`LogIndex::plan`]
//! turns each filter into a look-up table over a column's dictionary ids,
//! and [`Plan::matches_record`] answers the rows those tables cannot decide
//! from their stored records ([`RowFields`]).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use super::dict::Dict;
use super::{ChunkRef, ChunkSummary, Core, Inner, LogIndex, OVERFLOW, Scope};
use crate::catalog::{Catalog, Level};
use crate::query::{Column, Filter, Join, Matcher, op_matches};
use crate::record::WorkflowId;

/// A query compiled against one snapshot of the index.
pub struct Plan {
    pub(super) chunks: Vec<ChunkRef>,
    /// The index, for loading sealed chunks.
    pub(super) core: Arc<Core>,
    /// Why a sealed chunk could not be loaded: the answer is incomplete and
    /// the caller must not use it ([`Plan::load_error`]).
    error: std::sync::Mutex<Option<String>>,
    /// The summaries of the full chunks among them, by chunk index.
    pub(super) summaries: Vec<Option<Arc<ChunkSummary>>>,
    pub(super) len: u64,
    /// `None` means the query has no indexed filter and matches every row in
    /// scope, which lets counts skip the look-ups.
    pub(super) tables: Option<Tables>,
    pub(super) scope_event: Option<Vec<bool>>,
    pub(super) scope_workflow: Option<u32>,
    /// A workflow scope whose workflow is not in the dictionary, which has
    /// overflowed: rows with the overflow id may be in scope.
    pub(super) scope_undecided: bool,
    pub(super) join: Join,
    /// Whether any filter is on the description, which the index does not
    /// hold: such rows are decided by the caller's record check.
    pub(super) has_description: bool,
    /// The whole query, for the record check: the workflow of a workflow
    /// scope, and every filter.
    scope_name: Option<WorkflowId>,
    matcher: Matcher,
}

pub(super) struct Tables {
    pub(super) event: Vec<bool>,
    pub(super) actor: Vec<bool>,
    pub(super) ip: Vec<bool>,
    pub(super) workflow: Vec<bool>,
    /// Which tables any filter touched (an OR ignores untouched ones).
    pub(super) touched: [bool; 4],
    /// Per table, whether a filter touched it and its dictionary had
    /// overflowed: a row with the overflow id there is undecided.
    pub(super) undecided: [bool; 4],
}

impl Tables {
    /// The table of column slot `k` (event, actor, IP address, workflow).
    pub(super) fn column(&self, k: usize) -> &[bool] {
        match k {
            0 => &self.event,
            1 => &self.actor,
            2 => &self.ip,
            _ => &self.workflow,
        }
    }
}

/// The fields of a stored record that filters and scopes read, taken from
/// its canonical JSON (borrowed unless an escape forces a copy): what a
/// record check passes to [`Plan::matches_record`].
#[derive(Debug, Deserialize)]
pub struct RowFields<'a> {
    #[serde(borrow)]
    level: Cow<'a, str>,
    #[serde(borrow)]
    category: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    actor: RowActor<'a>,
    #[serde(borrow, default)]
    ip_address: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    workflow_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
struct RowActor<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

impl<'a> RowFields<'a> {
    /// Reads the fields from a record's canonical (or API) JSON.
    pub fn parse(json: &'a [u8]) -> Result<RowFields<'a>, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// The value `column` compares, as the index interns it.
    pub fn field(&self, column: Column) -> Option<&str> {
        Some(match column {
            Column::Event => &self.event,
            Column::Category => &self.category,
            Column::User => self.actor.name.as_deref().unwrap_or(&self.actor.id),
            Column::UserId => &self.actor.id,
            Column::IpAddress => return self.ip_address.as_deref(),
            Column::WorkflowId => return self.workflow_id.as_deref(),
            Column::Level => &self.level,
            Column::Description => &self.description,
        })
    }
}

impl LogIndex {
    /// Compiles filters for a scan over the current snapshot.
    ///
    /// The snapshot (chunk list, length, and each dictionary's size) is
    /// taken under the read lock at once; the look-up tables are then built
    /// [`PLAN_SLICE`] values at a time, each slice under the read lock on
    /// its own, so the writer (one thread for every account) waits for one
    /// slice at most, however many distinct values a column holds.
    /// Dictionaries only grow and a value is interned before its row is
    /// added (under the same write lock), so every row of the snapshot uses
    /// ids below the sizes taken with it.
    pub fn plan(&self, filters: &[Filter], join: Join, scope: &Scope) -> Plan {
        let catalog = Catalog::get();
        let n_events = catalog.len();
        let (chunks, summaries, len, sizes, scope_workflow, overflowed) = {
            let g = self.read();
            let scope_workflow = match scope {
                Scope::Account => None,
                // An unknown workflow id matches nothing (u32::MAX is never
                // assigned) unless the dictionary overflowed: then its rows
                // may hold the overflow id.
                Scope::Workflow(wf) => Some(g.workflows.ids.get(wf.as_str()).copied().unwrap_or(
                    if g.workflows.overflowed {
                        OVERFLOW
                    } else {
                        u32::MAX
                    },
                )),
            };
            let overflowed = [
                false,
                g.actors.overflowed,
                g.ips.overflowed,
                g.workflows.overflowed,
            ];
            let sizes = DictSizes {
                actors: g.actors.pairs.len(),
                user_ids: g.user_ids.values.len(),
                names: g.names.values.len(),
                ips: g.ips.values.len(),
                workflows: g.workflows.values.len(),
            };
            (
                g.chunks.clone(),
                g.summaries.clone(),
                g.len,
                sizes,
                scope_workflow,
                overflowed,
            )
        };
        let indexed: Vec<&Filter> = filters
            .iter()
            .filter(|f| f.column != Column::Description)
            .collect();
        let has_description = indexed.len() < filters.len();
        let tables = (!indexed.is_empty()).then(|| {
            // AND starts from "everything passes" and narrows; OR starts from
            // "nothing passes" and widens. Untouched columns are ignored by OR.
            let init = join == Join::And;
            let mut t = Tables {
                event: vec![init; n_events],
                actor: vec![init; sizes.actors],
                ip: vec![init; sizes.ips],
                workflow: vec![init; sizes.workflows],
                touched: [false; 4],
                undecided: [false; 4],
            };
            for f in indexed {
                let needle = f.needle();
                let (slot, table): (usize, Vec<bool>) = match f.column {
                    Column::Event | Column::Category | Column::Level => {
                        let table = catalog
                            .entries()
                            .map(|e| {
                                let v = match f.column {
                                    Column::Event => e.event.name.as_str(),
                                    Column::Category => e.category,
                                    _ => e.level.as_str(),
                                };
                                op_matches(f.op, Some(&crate::query::normalize(v)), &needle)
                            })
                            .collect();
                        (0, table)
                    }
                    Column::User | Column::UserId => {
                        // Actors are (user id, name) pairs: decide per
                        // distinct value, then map onto the pairs.
                        let by_name = f.column == Column::User;
                        let (n, dict): (usize, fn(&Inner) -> &Dict) = if by_name {
                            (sizes.names, |g| &g.names)
                        } else {
                            (sizes.user_ids, |g| &g.user_ids)
                        };
                        let mut by_value = Vec::with_capacity(n);
                        self.in_slices(n, |g, ids| {
                            dict(g).table_part(f, &needle, ids, &mut by_value)
                        });
                        let mut table = Vec::with_capacity(sizes.actors);
                        self.in_slices(sizes.actors, |g, ids| {
                            table.extend(g.actors.pairs[ids].iter().map(|&(user, name)| {
                                by_value[if by_name { name } else { user } as usize]
                            }))
                        });
                        (1, table)
                    }
                    Column::IpAddress | Column::WorkflowId => {
                        let ip = f.column == Column::IpAddress;
                        let n = if ip { sizes.ips } else { sizes.workflows };
                        let mut table = Vec::with_capacity(n);
                        self.in_slices(n, |g, ids| {
                            let dict = if ip { &g.ips } else { &g.workflows };
                            dict.table_part(f, &needle, ids, &mut table)
                        });
                        (if ip { 2 } else { 3 }, table)
                    }
                    Column::Description => unreachable!("filtered out above"),
                };
                t.touched[slot] = true;
                t.undecided[slot] = overflowed[slot];
                let dst = match slot {
                    0 => &mut t.event,
                    1 => &mut t.actor,
                    2 => &mut t.ip,
                    _ => &mut t.workflow,
                };
                for (d, s) in dst.iter_mut().zip(table) {
                    *d = if init { *d && s } else { *d || s };
                }
            }
            t
        });
        let scope_event = scope_workflow.map(|_| {
            catalog
                .entries()
                .map(|e| e.level == Level::Workflow)
                .collect()
        });
        Plan {
            chunks,
            core: self.core.clone(),
            error: std::sync::Mutex::new(None),
            summaries,
            len,
            tables,
            scope_event,
            scope_workflow,
            scope_undecided: scope_workflow == Some(OVERFLOW),
            join,
            has_description,
            scope_name: match scope {
                Scope::Account => None,
                Scope::Workflow(wf) => Some(wf.clone()),
            },
            matcher: Matcher::new(filters, join),
        }
    }

    /// Runs `f` over `0..n` in slices of [`PLAN_SLICE`], each under the
    /// read lock on its own.
    fn in_slices(&self, n: usize, mut f: impl FnMut(&Inner, std::ops::Range<usize>)) {
        let mut start = 0;
        while start < n {
            let end = n.min(start + PLAN_SLICE);
            f(&self.read(), start..end);
            start = end;
        }
    }
}

/// Distinct values per dictionary in a plan's snapshot.
struct DictSizes {
    actors: usize,
    user_ids: usize,
    names: usize,
    ips: usize,
    workflows: usize,
}

/// Dictionary values a plan decides per hold of the read lock: a few
/// hundred microseconds of `contains` on normalized strings, the longest
/// the writer waits for a query being planned.
const PLAN_SLICE: usize = 4096;

impl Plan {
    pub(super) fn fail(&self, why: String) {
        self.error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(why);
    }

    /// Why a sealed chunk could not be loaded during a scan of this plan,
    /// if one could not: every answer of the plan since is incomplete.
    pub fn load_error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Rows in the plan's snapshot of the log.
    pub fn rows(&self) -> u64 {
        self.len
    }

    /// Whether a stored record passes the whole query (its scope and every
    /// filter, not only those the index could not decide): what the
    /// caller's record check answers for the rows it is asked about.
    pub fn matches_record(&self, row: &RowFields<'_>) -> bool {
        if let Some(wf) = &self.scope_name
            && (row.level != Level::Workflow.as_str()
                || row.workflow_id.as_deref() != Some(wf.as_str()))
        {
            return false;
        }
        self.matcher.matches(|c| row.field(c))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::PLAN_SLICE;
    use crate::catalog::Level;
    use crate::index::tests::{ev, filter};
    use crate::index::{IndexRow, LogIndex, Scope, TimeBounds};
    use crate::query::{Column, Join, Op};

    /// Look-up tables are built a slice of dictionary values at a time,
    /// each under the lock on its own: with more distinct values than a
    /// slice, and a writer adding new ones while plans are made, every plan
    /// still answers exactly for its snapshot.
    #[test]
    fn plans_built_in_slices_answer_for_their_snapshot_while_the_writer_appends() {
        let login = ev(Level::Account, "Login/Logout", "Login");
        let idx = Arc::new(LogIndex::default());
        fn user(i: usize) -> String {
            format!("user {i:05}")
        }
        fn ip(i: usize) -> String {
            format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)
        }
        let add = move |idx: &LogIndex, from: usize, to: usize| {
            let names: Vec<(String, String, String)> = (from..to)
                .map(|i| (format!("u{i}"), user(i), ip(i)))
                .collect();
            idx.append(
                names
                    .iter()
                    .enumerate()
                    .map(|(k, (id, name, ip))| IndexRow {
                        occurred_at_us: (from + k) as i64,
                        event: login,
                        actor_id: id,
                        actor_name: Some(name),
                        ip_address: Some(ip),
                        workflow_id: None,
                    }),
            );
        };
        let n = 3 * PLAN_SLICE + 17;
        add(&idx, 0, n);
        let writer = {
            let idx = idx.clone();
            std::thread::spawn(move || {
                for k in 0..50 {
                    add(&idx, n + k * 100, n + (k + 1) * 100);
                }
            })
        };
        for _ in 0..20 {
            // Row i has user i (five digits) and IP i: "user 1" matches
            // rows 10000 and up, in the last slices and among the rows the
            // writer adds meanwhile.
            let filters = [filter(Column::User, Op::Contains, "user 1")];
            let plan = idx.plan(&filters, Join::And, &Scope::Account);
            let mut got = Vec::new();
            plan.for_each_match(TimeBounds::ALL, &mut |_| unreachable!(), |r| {
                got.push(r.seq)
            });
            let expected: Vec<u64> = (0..plan.len)
                .filter(|&i| user(i as usize).contains("user 1"))
                .collect();
            assert_eq!(got, expected);
            let filters = [filter(Column::IpAddress, Op::Eq, &ip(2 * PLAN_SLICE + 3))];
            let plan = idx.plan(&filters, Join::Or, &Scope::Account);
            let mut got = Vec::new();
            plan.for_each_match(TimeBounds::ALL, &mut |_| unreachable!(), |r| {
                got.push(r.seq)
            });
            assert_eq!(got, [2 * PLAN_SLICE as u64 + 3]);
        }
        writer.join().unwrap();
    }
}
