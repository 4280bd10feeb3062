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
//! The index is derived data: the store rebuilds it from the durable log at
//! start-up, and appends to it after each commit and before acknowledging,
//! so a query sees every acknowledged event (read your writes).
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

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::{Arc, RwLock};

use std::borrow::Cow;

use serde::Deserialize;

use crate::catalog::{Catalog, EventId, Level};
use crate::query::{Column, Filter, Join, Matcher, op_matches};

/// Rows per chunk: large enough that the chunk list stays short, small
/// enough that copying the tail (at most ~1.4 MB) is cheap.
pub const CHUNK_ROWS: usize = 1 << 16;

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

#[derive(Clone, Default)]
struct Chunk {
    time: Vec<i64>,
    event: Vec<u16>,
    actor: Vec<u32>,
    ip: Vec<u32>,
    workflow: Vec<u32>,
    min_time: i64,
    max_time: i64,
}

impl Chunk {
    fn len(&self) -> usize {
        self.time.len()
    }
}

/// Distinct strings of one column, each with its normalized form.
///
/// Each distinct string is allocated once: the look-up map and the list
/// share it, and its normalized form shares it too when normalizing
/// changes nothing (ids, addresses, most workflow ids). An ingest token can
/// send many distinct values, so what each costs is what it must cost.
struct Dict {
    ids: HashMap<Arc<str>, u32>,
    /// Index 0 is the absent value, 1 the overflow (both empty here).
    values: Vec<Arc<str>>,
    normalized: Vec<Arc<str>>,
    /// Most distinct values held, and most bytes of their text.
    cap: usize,
    cap_bytes: usize,
    bytes: usize,
    /// Whether a value was refused for the cap: rows with [`OVERFLOW`].
    overflowed: bool,
}

impl Dict {
    fn new(limits: IndexLimits) -> Dict {
        let empty: Arc<str> = "".into();
        Dict {
            ids: HashMap::new(),
            values: vec![empty.clone(), empty.clone()],
            normalized: vec![empty.clone(), empty],
            cap: limits.max_distinct,
            cap_bytes: limits.max_distinct_bytes,
            bytes: 0,
            overflowed: false,
        }
    }

    fn intern(&mut self, s: Option<&str>) -> u32 {
        let Some(s) = s else { return ABSENT };
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let normalized = crate::query::normalize(s);
        let text = s.len() + if normalized == s { 0 } else { normalized.len() };
        if self.ids.len() >= self.cap || self.bytes + text > self.cap_bytes {
            self.overflowed = true;
            return OVERFLOW;
        }
        self.bytes += text;
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        let value: Arc<str> = s.into();
        let normalized = if *normalized == *s {
            value.clone()
        } else {
            normalized.into()
        };
        self.values.push(value.clone());
        self.normalized.push(normalized);
        self.ids.insert(value, id);
        id
    }

    /// Appends to `out` whether the filter holds for each value id in
    /// `ids` (so `out[id]`, when filled from 0 up).
    fn table_part(
        &self,
        filter: &Filter,
        needle: &str,
        ids: std::ops::Range<usize>,
        out: &mut Vec<bool>,
    ) {
        out.extend(ids.map(|i| {
            let field = (i as u32 != ABSENT).then_some(&*self.normalized[i]);
            op_matches(filter.op, field, needle)
        }));
    }
}

/// Actors are interned as (id, name) pairs; the pair id is the row's value.
/// Pair 0 is [`ACTOR_OVERFLOW`]: an actor whose id or name overflowed its
/// dictionary, or that arrived when the pairs were full.
struct Actors {
    ids: HashMap<(u32, u32), u32>,
    /// Per actor: (user id in `user_ids`, display name in `names`).
    pairs: Vec<(u32, u32)>,
    cap: usize,
    overflowed: bool,
}

impl Actors {
    /// The pair's id; a new one is `pairs.len()` (the caller pushes it).
    fn intern(&mut self, user: u32, name: u32) -> u32 {
        if user == OVERFLOW || name == OVERFLOW {
            self.overflowed = true;
            return ACTOR_OVERFLOW;
        }
        if let Some(&id) = self.ids.get(&(user, name)) {
            return id;
        }
        if self.ids.len() >= self.cap {
            self.overflowed = true;
            return ACTOR_OVERFLOW;
        }
        let id = u32::try_from(self.pairs.len()).expect("fewer than 2^32 actors");
        self.ids.insert((user, name), id);
        id
    }
}

/// Rollup granularity: 15 minutes. Every UTC offset in use is a multiple of
/// 15 minutes, so every day or hour boundary of any viewer's zone — hence
/// every preset, custom range and histogram edge — falls on a slot edge.
pub const SLOT_US: i64 = 15 * 60 * 1_000_000;

/// Events per (slot, catalog event): sparse, since a slot holds a few dozen
/// distinct events at most.
type Rollup = BTreeMap<i64, Vec<(u16, u32)>>;

struct Inner {
    chunks: Vec<Arc<Chunk>>,
    rollup: Rollup,
    /// Per actor, the seqs of its events, ascending: a `user` filter that
    /// picks a few actors visits their rows instead of scanning the log.
    /// `u32` halves the memory; an account past 2^32 events stops keeping
    /// them (`postings_complete`) and falls back to scans.
    postings: Vec<Vec<u32>>,
    postings_complete: bool,
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
    inner: RwLock<Inner>,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// The whole account log.
    Account,
    /// One workflow's own view: its workflow-level events.
    Workflow(&'a str),
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

/// A query compiled against one snapshot of the index.
pub struct Plan {
    chunks: Vec<Arc<Chunk>>,
    len: u64,
    /// `None` means the query has no indexed filter and matches every row in
    /// scope, which lets counts skip the look-ups.
    tables: Option<Tables>,
    scope_event: Option<Vec<bool>>,
    scope_workflow: Option<u32>,
    /// A workflow scope whose workflow is not in the dictionary, which has
    /// overflowed: rows with the overflow id may be in scope.
    scope_undecided: bool,
    join: Join,
    /// Whether any filter is on the description, which the index does not
    /// hold: such rows are decided by the caller's record check.
    has_description: bool,
    /// The whole query, for the record check: the workflow of a workflow
    /// scope, and every filter.
    scope_name: Option<String>,
    matcher: Matcher,
}

struct Tables {
    event: Vec<bool>,
    actor: Vec<bool>,
    ip: Vec<bool>,
    workflow: Vec<bool>,
    /// Which tables any filter touched (an OR ignores untouched ones).
    touched: [bool; 4],
    /// Per table, whether a filter touched it and its dictionary had
    /// overflowed: a row with the overflow id there is undecided.
    undecided: [bool; 4],
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

/// One result row: where it sorts and which record it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowKey {
    pub occurred_at_us: i64,
    pub seq: u64,
}

impl LogIndex {
    pub fn new(limits: IndexLimits) -> LogIndex {
        let cap = limits.max_distinct;
        LogIndex {
            inner: RwLock::new(Inner {
                chunks: Vec::new(),
                rollup: Rollup::new(),
                // The overflow actor's rows, like any actor's.
                postings: vec![Vec::new()],
                postings_complete: true,
                len: 0,
                min_time: i64::MAX,
                limits,
                actors: Actors {
                    ids: HashMap::new(),
                    pairs: vec![(OVERFLOW, OVERFLOW)],
                    cap,
                    overflowed: false,
                },
                user_ids: Dict::new(limits),
                names: Dict::new(limits),
                ips: Dict::new(limits),
                workflows: Dict::new(limits),
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
        // A panic while holding the lock cannot leave the index half-written
        // in a way readers would misread (lengths are updated last), so a
        // poisoned lock is still usable.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
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
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
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
                inner.postings.push(Vec::new());
            }
            match u32::try_from(inner.len) {
                Ok(seq) if inner.postings_complete => inner.postings[actor as usize].push(seq),
                _ => inner.postings_complete = false,
            }
            let ip = inner.ips.intern(row.ip_address);
            let workflow = inner.workflows.intern(row.workflow_id);
            if inner.chunks.last().is_none_or(|c| c.len() >= CHUNK_ROWS) {
                inner.chunks.push(Arc::new(Chunk {
                    min_time: i64::MAX,
                    max_time: i64::MIN,
                    ..Chunk::default()
                }));
            }
            let tail = Arc::make_mut(inner.chunks.last_mut().expect("pushed above"));
            let t = row.occurred_at_us;
            tail.time.push(t);
            tail.event.push(row.event.0);
            tail.actor.push(actor);
            tail.ip.push(ip);
            tail.workflow.push(workflow);
            tail.min_time = tail.min_time.min(t);
            tail.max_time = tail.max_time.max(t);
            inner.min_time = inner.min_time.min(t);
            let slot = inner.rollup.entry(t.div_euclid(SLOT_US)).or_default();
            match slot.iter_mut().find(|(e, _)| *e == row.event.0) {
                Some((_, c)) => *c += 1,
                None => slot.push((row.event.0, 1)),
            }
            inner.len += 1;
        }
        !before && inner.overflowed()
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
    pub fn plan(&self, filters: &[Filter], join: Join, scope: Scope<'_>) -> Plan {
        let catalog = Catalog::get();
        let n_events = catalog.len();
        let (chunks, len, sizes, scope_workflow, overflowed) = {
            let g = self.read();
            let scope_workflow = match scope {
                Scope::Account => None,
                // An unknown workflow id matches nothing (u32::MAX is never
                // assigned) unless the dictionary overflowed: then its rows
                // may hold the overflow id.
                Scope::Workflow(wf) => Some(g.workflows.ids.get(wf).copied().unwrap_or(
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
            (g.chunks.clone(), g.len, sizes, scope_workflow, overflowed)
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
            len,
            tables,
            scope_event,
            scope_workflow,
            scope_undecided: scope_workflow == Some(OVERFLOW),
            join,
            has_description,
            scope_name: match scope {
                Scope::Account => None,
                Scope::Workflow(wf) => Some(wf.to_owned()),
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
        if let Some(part) = plan.actor_part() {
            let g = self.read();
            if let Some(seqs) = actor_rows(&g, plan, &part) {
                let event_hit = |e: u16| part.event.is_some_and(|ev| ev[e as usize]);
                match part.join {
                    Join::And => {
                        return seqs
                            .iter()
                            .filter(|&&s| {
                                let (t, e) = plan.row(s);
                                bounds.contains(t) && part.event.is_none_or(|ev| ev[e as usize])
                            })
                            .count() as u64;
                    }
                    Join::Or => {
                        let base = match (part.event, slot_range(bounds)) {
                            (None, _) => Some(0),
                            (Some(ev), Some((lo, hi))) => Some(rollup_count(&g, Some(ev), lo, hi)),
                            (Some(_), None) => None,
                        };
                        if let Some(base) = base {
                            // Rows the event part already counted are not
                            // counted again.
                            return base
                                + seqs
                                    .iter()
                                    .filter(|&&s| {
                                        let (t, e) = plan.row(s);
                                        bounds.contains(t) && !event_hit(e)
                                    })
                                    .count() as u64;
                        }
                    }
                }
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
            && let (Some(&first), Some(&last)) = (edges.first(), edges.last())
        {
            let clipped = TimeBounds {
                start: Some(bounds.start.map_or(first, |s| s.max(first))),
                end: Some(bounds.end.map_or(last, |e| e.min(last))),
            };
            let g = self.read();
            if let Some(seqs) = actor_rows(&g, plan, &part) {
                let mut counts = vec![0u64; edges.len() - 1];
                let base_ok = match (part.join, part.event, slot_range(clipped)) {
                    (Join::And, _, _) | (Join::Or, None, _) => true,
                    (Join::Or, Some(ev), Some((lo, hi))) if aligned => {
                        rollup_histogram(&g, Some(ev), lo, hi, edges, &mut counts);
                        true
                    }
                    _ => false,
                };
                if base_ok {
                    for &s in &seqs {
                        let (t, e) = plan.row(s);
                        if !clipped.contains(t) {
                            continue;
                        }
                        let keep = match part.join {
                            Join::And => part.event.is_none_or(|ev| ev[e as usize]),
                            Join::Or => !part.event.is_some_and(|ev| ev[e as usize]),
                        };
                        if keep {
                            counts[edges.partition_point(|&x| x <= t) - 1] += 1;
                        }
                    }
                    return counts;
                }
            }
        }
        plan.histogram(bounds, edges, check)
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

/// The seqs of the plan's matching actors, ascending, within the plan's
/// snapshot — when they are few enough (an eighth of the log at most) that
/// visiting them beats a scan.
fn actor_rows(g: &Inner, plan: &Plan, part: &ActorPart<'_>) -> Option<Vec<u32>> {
    if !g.postings_complete {
        return None;
    }
    let picked: Vec<&Vec<u32>> = part
        .actor
        .iter()
        .enumerate()
        .filter(|(_, hit)| **hit)
        .filter_map(|(a, _)| g.postings.get(a))
        .collect();
    let total: usize = picked.iter().map(|p| p.len()).sum();
    if total.saturating_mul(8) > plan.len as usize {
        return None;
    }
    let mut seqs: Vec<u32> = picked
        .into_iter()
        .flatten()
        .copied()
        .filter(|&s| u64::from(s) < plan.len)
        .collect();
    seqs.sort_unstable();
    Some(seqs)
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

    /// Time and catalog event of row `seq` of the snapshot.
    fn row(&self, seq: u32) -> (i64, u16) {
        let seq = seq as usize;
        let chunk = &self.chunks[seq / CHUNK_ROWS];
        let i = seq % CHUNK_ROWS;
        (chunk.time[i], chunk.event[i])
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

    /// Whether a stored record passes the whole query (its scope and every
    /// filter, not only those the index could not decide): what the
    /// caller's record check answers for the rows it is asked about.
    pub fn matches_record(&self, row: &RowFields<'_>) -> bool {
        if let Some(wf) = &self.scope_name
            && (row.level != Level::Workflow.as_str() || row.workflow_id.as_deref() != Some(wf))
        {
            return false;
        }
        self.matcher.matches(|c| row.field(c))
    }

    /// Visits every matching row in the time bounds, in `seq` order.
    /// `check` decides one `seq` from its stored record (called
    /// only when the indexed columns cannot decide the row alone).
    pub fn for_each_match(
        &self,
        bounds: TimeBounds,
        check: &mut dyn FnMut(u64) -> bool,
        mut visit: impl FnMut(RowKey),
    ) {
        for (ci, chunk) in self.chunks.iter().enumerate() {
            self.scan_chunk(chunk, (ci * CHUNK_ROWS) as u64, bounds, check, &mut visit);
        }
    }

    /// One chunk of [`Plan::for_each_match`]; chunks are full but the last,
    /// so chunk `i` starts at `seq` `i * CHUNK_ROWS`.
    #[inline]
    fn scan_chunk(
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
        for i in 0..chunk.len() {
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

    /// Exact number of matching rows.
    pub fn count(&self, bounds: TimeBounds, check: &mut dyn FnMut(u64) -> bool) -> u64 {
        let mut n = 0;
        self.for_each_match(bounds, check, |_| n += 1);
        n
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
        let bounds = TimeBounds {
            start: Some(bounds.start.map_or(first, |s| s.max(first))),
            end: Some(bounds.end.map_or(last, |e| e.min(last))),
        };
        // Rows mostly arrive in time order: try the last bucket first.
        let mut cur = 0;
        self.for_each_match(bounds, check, |row| {
            let t = row.occurred_at_us;
            if !(edges[cur] <= t && t < edges[cur + 1]) {
                cur = edges.partition_point(|&e| e <= t) - 1;
            }
            counts[cur] += 1;
        });
        counts
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
        for (ci, chunk) in self.chunks.iter().enumerate().rev() {
            if heap.len() == keep
                && heap
                    .peek()
                    .is_some_and(|min| chunk.max_time <= min.0.occurred_at_us)
            {
                continue;
            }
            self.scan_chunk(chunk, (ci * CHUNK_ROWS) as u64, bounds, check, &mut |row| {
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
            });
        }
        let mut rows: Vec<RowKey> = heap.into_iter().map(|r| r.0).collect();
        rows.sort_unstable_by(|a, b| b.cmp(a));
        let more = rows.len() > limit;
        rows.truncate(limit);
        (rows, more)
    }

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

impl ExportKeys<'_> {
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
        let live = |c: &Chunk| c.len() > 0 && left.overlaps(c.min_time, c.max_time);
        let Some(start) = self
            .plan
            .chunks
            .iter()
            .filter(|c| live(c))
            .map(|c| self.bounds.start.map_or(c.min_time, |s| s.max(c.min_time)))
            .max()
        else {
            self.state = ExportState::Done;
            return;
        };
        let mut window = TimeBounds {
            start: Some(start),
            end,
        };
        let rows: usize = self
            .chunks_in(window)
            .map(|c| c.time.iter().filter(|&&t| window.contains(t)).count())
            .sum();
        if rows > EXPORT_KEYS_MAX {
            match self.narrow(start, end) {
                Some(s) => window.start = Some(s),
                None => {
                    self.state = ExportState::Pages { end, after: None };
                    return;
                }
            }
        }
        for (ci, chunk) in self.plan.chunks.iter().enumerate() {
            self.plan
                .scan_chunk(chunk, (ci * CHUNK_ROWS) as u64, window, check, &mut |row| {
                    out.push(row)
                });
        }
        out.sort_unstable_by(|a, b| b.cmp(a));
        // The chunk that gave `start` had a row there (and a narrowed window
        // ends before its rows), so the walk moves.
        self.state = match window.start {
            Some(s) if self.bounds.start == Some(s) => ExportState::Done,
            s => ExportState::Windows { end: s },
        };
    }

    /// Non-empty chunks overlapping `window`.
    fn chunks_in(&self, window: TimeBounds) -> impl Iterator<Item = &Chunk> {
        self.plan
            .chunks
            .iter()
            .map(|c| &**c)
            .filter(move |c| c.len() > 0 && window.overlaps(c.min_time, c.max_time))
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
            None => self.chunks_in(TimeBounds::ALL).map(|c| c.max_time).max()? + 1,
        };
        while hi - lo > 1 {
            let width = (hi - lo + BUCKETS - 1) / BUCKETS;
            let part = TimeBounds {
                start: Some(lo),
                end: Some(hi),
            };
            let mut counts = vec![0usize; BUCKETS as usize];
            for c in self.chunks_in(part) {
                for &t in &c.time {
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
    use super::*;
    use crate::query::Op;
    use proptest::prelude::*;

    fn ev(level: Level, cat: &str, name: &str) -> EventId {
        Catalog::get().find(level, cat, name).expect("in catalog")
    }

    fn filter(column: Column, op: Op, value: &str) -> Filter {
        Filter::parse(&format!(
            "{}:{}:{value}",
            match column {
                Column::Event => "event",
                Column::Category => "category",
                Column::User => "user",
                Column::UserId => "user_id",
                Column::IpAddress => "ip_address",
                Column::WorkflowId => "workflow_id",
                Column::Level => "level",
                Column::Description => "description",
            },
            match op {
                Op::Eq => "eq",
                Op::Ne => "ne",
                Op::Contains => "contains",
                Op::NotContains => "not_contains",
            }
        ))
        .unwrap()
    }

    /// A small log: (time, event, user id, user name, ip, workflow).
    fn sample() -> LogIndex {
        let idx = LogIndex::default();
        let login = ev(Level::Account, "Login/Logout", "Login");
        let role = ev(Level::Account, "Roles", "Role created");
        let wf = ev(Level::Workflow, "Workflow Management", "Workflow deployed");
        let rows = [
            (10, login, "u1", Some("Jane Doe"), Some("10.0.0.1"), None),
            (20, role, "u2", Some("Bob"), None, None),
            (30, login, "u2", Some("Bob"), Some("10.0.0.2"), None),
            (30, wf, "u1", Some("Jane Doe"), None, Some("wf_1")),
            (5, wf, "u3", None, None, Some("wf_2")),
        ];
        idx.append(rows.iter().map(|&(t, e, id, name, ip, wf)| IndexRow {
            occurred_at_us: t,
            event: e,
            actor_id: id,
            actor_name: name,
            ip_address: ip,
            workflow_id: wf,
        }));
        idx
    }

    fn seqs(idx: &LogIndex, filters: &[Filter], join: Join, scope: Scope<'_>) -> Vec<u64> {
        let plan = idx.plan(filters, join, scope);
        let mut out = Vec::new();
        plan.for_each_match(TimeBounds::ALL, &mut |_| unreachable!(), |r| {
            out.push(r.seq)
        });
        out
    }

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
            let plan = idx.plan(&filters, Join::And, Scope::Account);
            let mut got = Vec::new();
            plan.for_each_match(TimeBounds::ALL, &mut |_| unreachable!(), |r| {
                got.push(r.seq)
            });
            let expected: Vec<u64> = (0..plan.len)
                .filter(|&i| user(i as usize).contains("user 1"))
                .collect();
            assert_eq!(got, expected);
            let filters = [filter(Column::IpAddress, Op::Eq, &ip(2 * PLAN_SLICE + 3))];
            let plan = idx.plan(&filters, Join::Or, Scope::Account);
            let mut got = Vec::new();
            plan.for_each_match(TimeBounds::ALL, &mut |_| unreachable!(), |r| {
                got.push(r.seq)
            });
            assert_eq!(got, [2 * PLAN_SLICE as u64 + 3]);
        }
        writer.join().unwrap();
    }

    #[test]
    fn filters_and_joins() {
        let idx = sample();
        let and = Join::And;
        assert_eq!(seqs(&idx, &[], and, Scope::Account), [0, 1, 2, 3, 4]);
        let f = filter(Column::Event, Op::Eq, " LOGIN ");
        assert_eq!(seqs(&idx, &[f], and, Scope::Account), [0, 2]);
        let f = filter(Column::Category, Op::Ne, "login/logout");
        assert_eq!(seqs(&idx, &[f], and, Scope::Account), [1, 3, 4]);
        // `user` is the display name: the name, else the id.
        let f = filter(Column::User, Op::Eq, "u3");
        assert_eq!(seqs(&idx, &[f], and, Scope::Account), [4]);
        // ne keeps events where the field is absent.
        let f = filter(Column::IpAddress, Op::Ne, "10.0.0.1");
        assert_eq!(seqs(&idx, &[f], and, Scope::Account), [1, 2, 3, 4]);
        let f = filter(Column::WorkflowId, Op::Contains, "wf");
        assert_eq!(seqs(&idx, &[f], and, Scope::Account), [3, 4]);
        let f = filter(Column::WorkflowId, Op::NotContains, "_1");
        assert_eq!(seqs(&idx, &[f], and, Scope::Account), [0, 1, 2, 4]);
        let both = [
            filter(Column::Event, Op::Eq, "Role created"),
            filter(Column::User, Op::Eq, "jane doe"),
        ];
        assert_eq!(seqs(&idx, &both, Join::Or, Scope::Account), [0, 1, 3]);
        assert_eq!(
            seqs(&idx, &both, Join::And, Scope::Account),
            Vec::<u64>::new()
        );
        let f = filter(Column::Level, Op::Eq, "workflow");
        assert_eq!(seqs(&idx, &[f], and, Scope::Account), [3, 4]);
        assert_eq!(seqs(&idx, &[], and, Scope::Workflow("wf_1")), [3]);
        assert_eq!(
            seqs(&idx, &[], and, Scope::Workflow("nope")),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn description_filters_are_asked_only_when_needed() {
        let idx = sample();
        let filters = [
            filter(Column::Event, Op::Eq, "Login"),
            filter(Column::Description, Op::Contains, "x"),
        ];
        let plan = idx.plan(&filters, Join::And, Scope::Account);
        let mut asked = Vec::new();
        let n = plan.count(TimeBounds::ALL, &mut |seq| {
            asked.push(seq);
            seq == 2
        });
        assert_eq!((n, asked), (1, vec![0, 2]));
        let plan = idx.plan(&filters, Join::Or, Scope::Account);
        let mut asked = Vec::new();
        let n = plan.count(TimeBounds::ALL, &mut |seq| {
            asked.push(seq);
            false
        });
        assert_eq!((n, asked), (2, vec![1, 3, 4]));
    }

    #[test]
    fn pages_walk_every_row_once_newest_first() {
        let idx = sample();
        let plan = idx.plan(&[], Join::And, Scope::Account);
        let mut after = None;
        let mut seen = Vec::new();
        loop {
            let (rows, more) = plan.page(TimeBounds::ALL, after, 2, &mut |_| true);
            seen.extend(rows.iter().map(|r| (r.occurred_at_us, r.seq)));
            if !more {
                break;
            }
            after = rows.last().copied();
        }
        assert_eq!(seen, [(30, 3), (30, 2), (20, 1), (10, 0), (5, 4)]);
    }

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
        let n = 3 * CHUNK_ROWS + 12_345;
        let idx = log_of(n, |i| {
            let t = (i as i64 / 4) * 10 + (lcg(i) % 25) as i64;
            if i % 20_011 == 7 { t - 900_000 } else { t }
        });
        let role = filter(Column::Event, Op::Eq, "Role created");
        let user = filter(Column::User, Op::Ne, "b");
        let desc = filter(Column::Description, Op::Contains, "x");
        let is_x = |s: u64| s % 7 != 3;
        let mid = TimeBounds {
            start: Some(200_000),
            end: Some(700_001),
        };
        for (filters, join) in [
            (vec![], Join::And),
            (vec![role.clone()], Join::And),
            (vec![role.clone(), user.clone()], Join::Or),
            (vec![user.clone(), desc.clone()], Join::And),
            (vec![role.clone(), desc.clone()], Join::Or),
        ] {
            let plan = idx.plan(&filters, join, Scope::Account);
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
        let plan = idx.plan(&[], Join::And, Scope::Account);
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
        let plan = idx.plan(&[], Join::And, Scope::Account);
        let expected = all_pages(&plan, TimeBounds::ALL, 50_000, &|_| true);
        let (got, paged) = walk_paged(&plan, TimeBounds::ALL, &|_| true, false);
        assert_eq!((got == expected, paged), (true, true));
    }

    #[test]
    fn export_walk_of_nothing_is_empty() {
        let idx = sample();
        let plan = idx.plan(&[], Join::And, Scope::Account);
        let none = TimeBounds {
            start: Some(100),
            end: None,
        };
        assert!(walk(&plan, none, &|_| true, true).is_empty());
        let plan = LogIndex::default().plan(&[], Join::And, Scope::Account);
        assert!(walk(&plan, TimeBounds::ALL, &|_| true, true).is_empty());
        // Ties on time keep seq descending; a start bound inside a chunk ends
        // the walk there.
        let plan = idx.plan(&[], Join::And, Scope::Account);
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

    #[test]
    fn histogram_and_bounds() {
        let idx = sample();
        let plan = idx.plan(&[], Join::And, Scope::Account);
        assert_eq!(
            plan.histogram(TimeBounds::ALL, &[0, 10, 20, 40], &mut |_| true),
            [1, 1, 3]
        );
        let b = TimeBounds {
            start: Some(11),
            end: None,
        };
        assert_eq!(
            plan.histogram(b, &[0, 10, 20, 40], &mut |_| true),
            [0, 0, 3]
        );
        let b = TimeBounds {
            start: Some(10),
            end: Some(30),
        };
        assert_eq!(plan.count(b, &mut |_| true), 2);
        assert_eq!(idx.user_names("o", 10), ["Bob", "Jane Doe"]);
    }

    #[test]
    fn readers_keep_their_snapshot_while_the_writer_appends() {
        let idx = sample();
        let plan = idx.plan(&[], Join::And, Scope::Account);
        idx.append([IndexRow {
            occurred_at_us: 50,
            event: ev(Level::Account, "Login/Logout", "Logout"),
            actor_id: "u9",
            actor_name: None,
            ip_address: None,
            workflow_id: None,
        }]);
        assert_eq!(plan.count(TimeBounds::ALL, &mut |_| true), 5);
        let plan = idx.plan(&[], Join::And, Scope::Account);
        assert_eq!(plan.count(TimeBounds::ALL, &mut |_| true), 6);
    }

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
                let plan = idx.plan(filters, join, Scope::Account);
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

    /// One generated row: (time, event, user id, name, ip, workflow,
    /// description).
    type GenRow = (
        i64,
        EventId,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
    );

    fn row_json(r: &GenRow) -> Vec<u8> {
        let e = Catalog::get().entry(r.1);
        serde_json::to_vec(&serde_json::json!({
            "level": e.level.as_str(),
            "category": e.category,
            "event": e.event.name.as_str(),
            "actor": {"type": "user", "id": r.2, "name": r.3},
            "ip_address": r.4,
            "workflow_id": r.5,
            "description": r.6,
        }))
        .unwrap()
    }

    fn gen_row() -> impl Strategy<Value = GenRow> {
        let pool = |p: &'static str, n: u32| (0..n).prop_map(move |i| format!("{p}{i}"));
        // Three account-level and three workflow-level events.
        let of = |level| {
            Catalog::get()
                .entries()
                .filter(move |e| e.level == level)
                .map(|e| e.id)
                .take(3)
        };
        let ids: Vec<EventId> = of(Level::Account).chain(of(Level::Workflow)).collect();
        (
            0i64..50,
            proptest::sample::select(ids),
            pool("u", 8),
            proptest::option::of(pool("N", 5)),
            proptest::option::of(pool("10.0.0.", 6)),
            proptest::option::of(pool("wf_", 5)),
            pool("d", 4),
        )
    }

    fn gen_filter() -> impl Strategy<Value = Filter> {
        let column = proptest::sample::select(vec![
            Column::Event,
            Column::User,
            Column::UserId,
            Column::IpAddress,
            Column::WorkflowId,
            Column::Level,
            Column::Description,
        ]);
        let op = proptest::sample::select(vec![Op::Eq, Op::Ne, Op::Contains, Op::NotContains]);
        let value = proptest::sample::select(vec![
            "u1", "u3", "n2", "10.0.0.1", "10.0.0.4", "wf_0", "wf_3", "d1", "1", "3", "workflow",
            "Login",
        ]);
        (column, op, value).prop_map(|(c, o, v)| filter(c, o, v))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// However small the distinct-value caps, every query answers as
        /// if there were none: overflow rows are decided from their
        /// records, and only they (or description filters) are read.
        #[test]
        fn caps_never_change_an_answer(
            rows in proptest::collection::vec(gen_row(), 0..120),
            cap in 0usize..6,
            cap_bytes in prop_oneof![Just(usize::MAX), 0usize..40],
            filters in proptest::collection::vec(gen_filter(), 0..4),
            or in any::<bool>(),
            scope_wf in proptest::option::of(proptest::sample::select(vec!["wf_0", "wf_4", "nope"])),
        ) {
            let join = if or { Join::Or } else { Join::And };
            let scope = scope_wf.map_or(Scope::Account, Scope::Workflow);
            let json: Vec<Vec<u8>> = rows.iter().map(row_json).collect();
            let capped = LogIndex::new(IndexLimits { max_distinct: cap, max_distinct_bytes: cap_bytes });
            let free = LogIndex::default();
            for idx in [&capped, &free] {
                idx.append(rows.iter().map(|r| IndexRow {
                    occurred_at_us: r.0,
                    event: r.1,
                    actor_id: &r.2,
                    actor_name: r.3.as_deref(),
                    ip_address: r.4.as_deref(),
                    workflow_id: r.5.as_deref(),
                }));
            }
            let bounds = TimeBounds { start: Some(3), end: Some(40) };
            let edges = [0, 10, 20, 45];
            let answer = |idx: &LogIndex| {
                let plan = idx.plan(&filters, join, scope);
                let mut asked = Vec::new();
                let mut check = |s: u64| {
                    asked.push(s);
                    plan.matches_record(&RowFields::parse(&json[s as usize]).unwrap())
                };
                let count = idx.count(&plan, bounds, &mut check);
                let hist = idx.histogram(&plan, TimeBounds::ALL, &edges, &mut check);
                let (page, _) = plan.page(bounds, None, 7, &mut check);
                let mut all = Vec::new();
                let mut walk = plan.export_keys(TimeBounds::ALL);
                let mut batch = Vec::new();
                while walk.next_batch(&mut check, &mut batch) {
                    all.extend_from_slice(&batch);
                }
                (count, hist, page, all, asked)
            };
            let (c1, h1, p1, a1, asked) = answer(&capped);
            let (c2, h2, p2, a2, _) = answer(&free);
            prop_assert_eq!(c1, c2);
            prop_assert_eq!(h1, h2);
            prop_assert_eq!(p1, p2);
            prop_assert_eq!(&a1, &a2);
            // The oracle: every row tested against its record directly.
            let plan = free.plan(&filters, join, scope);
            let expected: Vec<u64> = (0..rows.len() as u64)
                .filter(|&s| plan.matches_record(&RowFields::parse(&json[s as usize]).unwrap()))
                .collect();
            let mut got: Vec<u64> = a1.iter().map(|k| k.seq).collect();
            got.sort_unstable();
            prop_assert_eq!(got, expected);
            // Within the caps and without a description filter, no record
            // is read at all.
            if !capped.overflowed() && filters.iter().all(|f| f.column != Column::Description) {
                prop_assert!(asked.is_empty(), "asked {:?}", asked);
            }
        }
    }

    #[test]
    fn values_past_the_cap_share_one_id_and_are_still_counted() {
        let idx = LogIndex::new(IndexLimits {
            max_distinct: 2,
            ..IndexLimits::DEFAULT
        });
        let login = ev(Level::Account, "Login/Logout", "Login");
        let ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
        idx.append(ips.iter().map(|ip| IndexRow {
            occurred_at_us: 1,
            event: login,
            actor_id: "u",
            actor_name: None,
            ip_address: Some(ip),
            workflow_id: None,
        }));
        assert!(idx.overflowed());
        let g = idx.read();
        assert_eq!(g.ips.ids.len(), 2);
        let row_ips: Vec<u32> = g.chunks[0].ip.clone();
        assert_eq!(row_ips, [2, 3, OVERFLOW, OVERFLOW]);
        drop(g);
        let plan = idx.plan(
            &[filter(Column::IpAddress, Op::Eq, "10.0.0.4")],
            Join::And,
            Scope::Account,
        );
        let mut asked = Vec::new();
        let n = idx.count(&plan, TimeBounds::ALL, &mut |s| {
            asked.push(s);
            s == 3
        });
        assert_eq!((n, asked), (1, vec![2, 3]));
        assert_eq!(idx.len(), 4);
    }

    #[test]
    fn many_chunks() {
        let idx = LogIndex::default();
        let login = ev(Level::Account, "Login/Logout", "Login");
        let n = CHUNK_ROWS * 2 + 17;
        idx.append((0..n).map(|i| IndexRow {
            occurred_at_us: i as i64,
            event: login,
            actor_id: if i % 2 == 0 { "a" } else { "b" },
            actor_name: None,
            ip_address: None,
            workflow_id: None,
        }));
        let plan = idx.plan(
            &[filter(Column::UserId, Op::Eq, "a")],
            Join::And,
            Scope::Account,
        );
        assert_eq!(
            plan.count(TimeBounds::ALL, &mut |_| true),
            (n as u64).div_ceil(2)
        );
        let (rows, more) = plan.page(TimeBounds::ALL, None, 3, &mut |_| true);
        assert!(more);
        assert_eq!(rows[0].seq, (n - 1) as u64);
    }
}
