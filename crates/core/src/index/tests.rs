//! Tests of the index as a whole; helpers shared with the files' own tests.

use super::*;
use crate::catalog::{Catalog, Level};
use crate::query::{Column, Filter, Join, Op};
use crate::record::WorkflowId;
use proptest::prelude::*;

pub(super) fn ev(level: Level, cat: &str, name: &str) -> EventId {
    Catalog::get().find(level, cat, name).expect("in catalog")
}

pub(super) fn filter(column: Column, op: Op, value: &str) -> Filter {
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
pub(super) fn sample() -> LogIndex {
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

fn seqs(idx: &LogIndex, filters: &[Filter], join: Join, scope: &Scope) -> Vec<u64> {
    let plan = idx.plan(filters, join, scope);
    let mut out = Vec::new();
    plan.for_each_match(TimeBounds::ALL, &mut |_| unreachable!(), |r| {
        out.push(r.seq)
    });
    out
}

#[test]
fn filters_and_joins() {
    let idx = sample();
    let and = Join::And;
    assert_eq!(seqs(&idx, &[], and, &Scope::Account), [0, 1, 2, 3, 4]);
    let f = filter(Column::Event, Op::Eq, " LOGIN ");
    assert_eq!(seqs(&idx, &[f], and, &Scope::Account), [0, 2]);
    let f = filter(Column::Category, Op::Ne, "login/logout");
    assert_eq!(seqs(&idx, &[f], and, &Scope::Account), [1, 3, 4]);
    // `user` is the display name: the name, else the id.
    let f = filter(Column::User, Op::Eq, "u3");
    assert_eq!(seqs(&idx, &[f], and, &Scope::Account), [4]);
    // ne keeps events where the field is absent.
    let f = filter(Column::IpAddress, Op::Ne, "10.0.0.1");
    assert_eq!(seqs(&idx, &[f], and, &Scope::Account), [1, 2, 3, 4]);
    let f = filter(Column::WorkflowId, Op::Contains, "wf");
    assert_eq!(seqs(&idx, &[f], and, &Scope::Account), [3, 4]);
    let f = filter(Column::WorkflowId, Op::NotContains, "_1");
    assert_eq!(seqs(&idx, &[f], and, &Scope::Account), [0, 1, 2, 4]);
    let both = [
        filter(Column::Event, Op::Eq, "Role created"),
        filter(Column::User, Op::Eq, "jane doe"),
    ];
    assert_eq!(seqs(&idx, &both, Join::Or, &Scope::Account), [0, 1, 3]);
    assert_eq!(
        seqs(&idx, &both, Join::And, &Scope::Account),
        Vec::<u64>::new()
    );
    let f = filter(Column::Level, Op::Eq, "workflow");
    assert_eq!(seqs(&idx, &[f], and, &Scope::Account), [3, 4]);
    assert_eq!(
        seqs(&idx, &[], and, &Scope::Workflow(WorkflowId::new("wf_1"))),
        [3]
    );
    assert_eq!(
        seqs(&idx, &[], and, &Scope::Workflow(WorkflowId::new("nope"))),
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
    let plan = idx.plan(&filters, Join::And, &Scope::Account);
    let mut asked = Vec::new();
    let n = plan.count(TimeBounds::ALL, &mut |seq| {
        asked.push(seq);
        seq == 2
    });
    assert_eq!((n, asked), (1, vec![0, 2]));
    let plan = idx.plan(&filters, Join::Or, &Scope::Account);
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
    let plan = idx.plan(&[], Join::And, &Scope::Account);
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

#[test]
fn histogram_and_bounds() {
    let idx = sample();
    let plan = idx.plan(&[], Join::And, &Scope::Account);
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
    let plan = idx.plan(&[], Join::And, &Scope::Account);
    idx.append([IndexRow {
        occurred_at_us: 50,
        event: ev(Level::Account, "Login/Logout", "Logout"),
        actor_id: "u9",
        actor_name: None,
        ip_address: None,
        workflow_id: None,
    }]);
    assert_eq!(plan.count(TimeBounds::ALL, &mut |_| true), 5);
    let plan = idx.plan(&[], Join::And, &Scope::Account);
    assert_eq!(plan.count(TimeBounds::ALL, &mut |_| true), 6);
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
        let scope = scope_wf.map_or(Scope::Account, |w| Scope::Workflow(WorkflowId::new(w)));
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
            let plan = idx.plan(&filters, join, &scope);
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
        let plan = free.plan(&filters, join, &scope);
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
    let ChunkRef::Resident(chunk) = &g.chunks[0] else {
        unreachable!("an index without a store keeps its chunks")
    };
    let row_ips: Vec<u32> = chunk.ip.to_vec();
    assert_eq!(row_ips, [2, 3, OVERFLOW, OVERFLOW]);
    drop(g);
    let plan = idx.plan(
        &[filter(Column::IpAddress, Op::Eq, "10.0.0.4")],
        Join::And,
        &Scope::Account,
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
        &Scope::Account,
    );
    assert_eq!(
        plan.count(TimeBounds::ALL, &mut |_| true),
        (n as u64).div_ceil(2)
    );
    let (rows, more) = plan.page(TimeBounds::ALL, None, 3, &mut |_| true);
    assert!(more);
    assert_eq!(rows[0].seq, (n - 1) as u64);
}

/// A store of segments in memory, for the paged index's own tests (the
/// store crate's conformance suite runs the same against SQLite).
/// Stored segments by number: (summary, columns).
type Stored = std::collections::BTreeMap<u32, (Vec<u8>, Vec<u8>)>;

#[derive(Default)]
struct MemSegments {
    stored: std::sync::Mutex<Stored>,
    rows: Vec<GenRow>,
    repaired: std::sync::Mutex<Vec<u32>>,
}

impl SegmentSource for Arc<MemSegments> {
    fn columns(&self, no: u32) -> Result<Option<Vec<u8>>, String> {
        Ok(self.stored.lock().unwrap().get(&no).map(|s| s.1.clone()))
    }
    fn rows(&self, from: u64, to: u64, visit: &mut dyn FnMut(IndexRow<'_>)) -> Result<(), String> {
        for r in self.rows.iter().take(to as usize).skip(from as usize) {
            visit(gen_index_row(r));
        }
        Ok(())
    }
    fn repaired(&self, no: u32, _why: &str, columns: Vec<u8>) {
        self.repaired.lock().unwrap().push(no);
        if let Some(s) = self.stored.lock().unwrap().get_mut(&no) {
            s.1 = columns;
        }
    }
}

fn gen_index_row(r: &GenRow) -> IndexRow<'_> {
    IndexRow {
        occurred_at_us: r.0,
        event: r.1,
        actor_id: &r.2,
        actor_name: r.3.as_deref(),
        ip_address: r.4.as_deref(),
        workflow_id: r.5.as_deref(),
    }
}

/// Appends `rows` in batches of `batch`, sealing after each like the
/// store's writer does.
fn append_sealing(idx: &LogIndex, mem: &MemSegments, rows: &[GenRow], batch: usize) {
    for part in rows.chunks(batch.max(1)) {
        idx.append(part.iter().map(gen_index_row));
        let sealed = idx.unsealed();
        let mut stored = mem.stored.lock().unwrap();
        for s in &sealed {
            stored.insert(s.no, (s.summary.clone(), s.columns.clone()));
        }
        drop(stored);
        idx.mark_sealed(sealed);
    }
}

/// A paged index over `rows`, appended in batches of `batch` and sealed
/// into a fresh in-memory store; with that store.
fn paged_over(rows: &[GenRow], batch: usize) -> (Arc<MemSegments>, LogIndex) {
    let mem = Arc::new(MemSegments {
        rows: rows.to_vec(),
        ..MemSegments::default()
    });
    let idx = LogIndex::paged(
        IndexLimits::DEFAULT,
        SegmentCache::new(0),
        Box::new(mem.clone()),
    );
    append_sealing(&idx, &mem, rows, batch);
    (mem, idx)
}

impl MemSegments {
    /// The stored segments' summaries, as a store hands them to a restore.
    fn summaries(&self) -> Vec<(u32, Vec<u8>)> {
        let stored = self.stored.lock().unwrap();
        stored.iter().map(|(n, s)| (*n, s.0.clone())).collect()
    }
}

/// Every answer a dashboard or an export asks of an index.
fn answers(
    idx: &LogIndex,
    filters: &[Filter],
    join: Join,
    scope: &Scope,
    json: &[Vec<u8>],
) -> (u64, Vec<u64>, Vec<RowKey>, Vec<RowKey>) {
    let plan = idx.plan(filters, join, scope);
    let mut check = |s: u64| plan.matches_record(&RowFields::parse(&json[s as usize]).unwrap());
    let bounds = TimeBounds {
        start: Some(3),
        end: Some(40),
    };
    let count = idx.count(&plan, bounds, &mut check);
    let hist = idx.histogram(&plan, TimeBounds::ALL, &[0, 10, 20, 45], &mut check);
    let (page, _) = plan.page(bounds, None, 7, &mut check);
    let mut all = Vec::new();
    let mut walk = plan.export_keys(TimeBounds::ALL);
    let mut batch = Vec::new();
    while walk.next_batch(&mut check, &mut batch) {
        all.extend_from_slice(&batch);
    }
    assert_eq!(plan.load_error(), None);
    (count, hist, page, all)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// A paged index answers every query as the in-memory one does: with
    /// any cache budget (none at all: every read loads), after a restart
    /// (restored from the summaries plus the rows after them), after a
    /// crash between a chunk filling and its segment being stored (the
    /// last segment missing), and with a corrupted segment (rebuilt from
    /// its rows and stored again), under any distinct-value caps.
    #[test]
    fn paged_indexes_answer_like_memory(
        rows in proptest::collection::vec(gen_row(), 0..(CHUNK_ROWS * 6)),
        batch in 1usize..200,
        cap in prop_oneof![Just(usize::MAX), 0usize..6],
        budget in prop_oneof![Just(0usize), Just(usize::MAX), 1usize..20_000],
        filters in proptest::collection::vec(gen_filter(), 0..3),
        or in any::<bool>(),
        scope_wf in proptest::option::of(proptest::sample::select(vec!["wf_0", "nope"])),
        damage in 0usize..3,
        victim in any::<proptest::sample::Index>(),
    ) {
        let limits = IndexLimits { max_distinct: cap, ..IndexLimits::DEFAULT };
        let join = if or { Join::Or } else { Join::And };
        let scope = scope_wf.map_or(Scope::Account, |w| Scope::Workflow(WorkflowId::new(w)));
        let json: Vec<Vec<u8>> = rows.iter().map(row_json).collect();
        let memory = LogIndex::new(limits);
        memory.append(rows.iter().map(gen_index_row));
        let expected = answers(&memory, &filters, join, &scope, &json);

        let mem = Arc::new(MemSegments { rows: rows.clone(), ..MemSegments::default() });
        let cache = SegmentCache::new(budget);
        let paged = LogIndex::paged(limits, cache.clone(), Box::new(mem.clone()));
        append_sealing(&paged, &mem, &rows, batch);
        prop_assert_eq!(paged.sealed_count(), rows.len() / CHUNK_ROWS);
        prop_assert_eq!(&answers(&paged, &filters, join, &scope, &json), &expected);
        prop_assert!(cache.stats().bytes <= budget as u64);

        // What a clean shutdown stores besides the segments.
        let tail = paged.tail();
        prop_assert_eq!(
            tail.as_ref().map(|t| t.first),
            (rows.len() % CHUNK_ROWS > 0).then(|| (rows.len() - rows.len() % CHUNK_ROWS) as u64)
        );
        let stored = mem.stored.lock().unwrap().len();
        match damage {
            // A crash after the last chunk filled, before its segment.
            1 if stored > 0 => {
                mem.stored.lock().unwrap().pop_last();
            }
            // A flipped byte in a segment's columns.
            2 if stored > 0 => {
                let no = victim.index(stored) as u32;
                let mut s = mem.stored.lock().unwrap();
                let cols = &mut s.get_mut(&no).unwrap().1;
                let at = cols.len() / 2;
                cols[at] ^= 0x40;
            }
            _ => {}
        }
        let summaries = mem.stored.lock().unwrap().iter().map(|(n, s)| (*n, s.0.clone())).collect();
        let restored = LogIndex::restore_with_tail(
            limits, SegmentCache::new(budget), Box::new(mem.clone()), summaries, tail.clone(),
        );
        prop_assert_eq!(restored.problem, None);
        // The tail is used unless the crash lost the segment before it
        // (then it does not start where the segments end).
        let lost = damage == 1 && stored > 0;
        let tail_rows = tail.filter(|_| !lost).map_or(0, |_| rows.len() % CHUNK_ROWS);
        prop_assert_eq!(restored.tail_rows, tail_rows as u64);
        let index = restored.index;
        index.append(rows[restored.rows as usize..].iter().map(gen_index_row));
        prop_assert!(index.same_dictionaries(&memory));
        prop_assert_eq!(&answers(&index, &filters, join, &scope, &json), &expected);
        if damage == 2 && stored > 0 {
            // Read only when a query needed that chunk; when it was read, it
            // was repaired.
            let repaired = mem.repaired.lock().unwrap().clone();
            prop_assert!(repaired.iter().all(|&n| n == victim.index(stored) as u32));
        }
    }
}

/// A stored tail restores the growing chunk without its rows; appended
/// to, it fills and seals into the same bytes as an index that read the
/// rows. A tail that does not hold together is refused (the rows are read
/// instead), and one that no longer starts where the segments end is
/// ignored.
#[test]
fn a_stored_tail_restores_the_growing_chunk() {
    let login = ev(Level::Account, "Login/Logout", "Login");
    let row = |i: usize| -> GenRow {
        (
            i as i64 * 1_000_000,
            login,
            format!("u{}", i % 70),
            i.is_multiple_of(3).then(|| format!("User {}", i % 70)),
            Some(format!("10.0.{}.{}", i % 5, i % 250)),
            i.is_multiple_of(4).then(|| format!("wf_{}", i % 9)),
            String::new(),
        )
    };
    let rows: Vec<GenRow> = (0..CHUNK_ROWS * 3).map(row).collect();
    let in_tail = CHUNK_ROWS / 2 + 3;
    let (before, after) = rows.split_at(CHUNK_ROWS + in_tail);
    let mem = Arc::new(MemSegments {
        rows: rows.clone(),
        ..MemSegments::default()
    });
    let limits = IndexLimits::DEFAULT;
    let idx = LogIndex::paged(limits, SegmentCache::new(0), Box::new(mem.clone()));
    append_sealing(&idx, &mem, before, 5);
    let tail = idx.tail().expect("rows after the segment");
    assert_eq!(tail.first, CHUNK_ROWS as u64);
    let summaries = || -> Vec<(u32, Vec<u8>)> {
        let stored = mem.stored.lock().unwrap();
        stored.iter().map(|(n, s)| (*n, s.0.clone())).collect()
    };
    let restore = |tail: StoredTail| {
        LogIndex::restore_with_tail(
            limits,
            SegmentCache::new(0),
            Box::new(mem.clone()),
            summaries(),
            Some(tail),
        )
    };

    let restored = restore(tail.clone());
    assert_eq!(
        (restored.problem.clone(), restored.tail_rows),
        (None, in_tail as u64)
    );
    assert_eq!(restored.rows, before.len() as u64);
    let index = restored.index;
    assert!(index.same_dictionaries(&idx));
    assert_eq!(index.tail(), Some(tail.clone()));
    // Unchanged since it was restored: not stored again.
    assert_eq!(index.changed_tail(), None);
    index.append(after[..1].iter().map(gen_index_row));
    assert_eq!(index.changed_tail(), index.tail());
    assert!(index.changed_tail().is_some());
    // Stored as it is now: not stored again until a row is appended.
    index.tail_stored();
    assert_eq!(index.changed_tail(), None);
    index.append(after[1..2].iter().map(gen_index_row));
    assert!(index.changed_tail().is_some());
    // Filled from here, it seals what the index that read every row seals.
    let reference = LogIndex::new(limits);
    reference.append(rows.iter().map(gen_index_row));
    let stored_before = mem.stored.lock().unwrap().clone();
    append_sealing(&index, &mem, &after[2..], 7);
    assert_eq!(index.len(), rows.len() as u64);
    assert!(index.same_dictionaries(&reference));
    let fresh = Arc::new(MemSegments {
        rows: rows.clone(),
        ..MemSegments::default()
    });
    let replayed = LogIndex::paged(limits, SegmentCache::new(0), Box::new(fresh.clone()));
    append_sealing(&replayed, &fresh, &rows, 7);
    assert_eq!(*mem.stored.lock().unwrap(), *fresh.stored.lock().unwrap());
    *mem.stored.lock().unwrap() = stored_before;

    // Any flipped byte: refused, nothing of it applied.
    for (blob, at) in [
        (0, 9),
        (0, tail.summary.len() - 5),
        (1, 30),
        (1, tail.columns.len() / 2),
    ] {
        let mut bad = tail.clone();
        let bytes = if blob == 0 {
            &mut bad.summary
        } else {
            &mut bad.columns
        };
        bytes[at] ^= 0x10;
        let r = restore(bad);
        assert!(r.problem.unwrap().starts_with("stored tail"));
        assert_eq!((r.rows, r.tail_rows), (CHUNK_ROWS as u64, 0));
        r.index
            .append(before[CHUNK_ROWS..].iter().map(gen_index_row));
        assert!(r.index.same_dictionaries(&idx));
    }
    // A summary and columns of two different tails: refused.
    let mut mixed = tail.clone();
    let shorter = LogIndex::paged(limits, SegmentCache::new(0), Box::new(mem.clone()));
    append_sealing(&shorter, &mem, &before[..before.len() - 1], 5);
    mixed.columns = shorter.tail().unwrap().columns;
    let r = restore(mixed);
    assert!(r.problem.unwrap().contains("disagree"));
    assert_eq!(r.tail_rows, 0);
    // Stale: a segment was sealed after it was stored.
    let stale = StoredTail {
        first: 0,
        ..tail.clone()
    };
    let r = restore(stale);
    assert_eq!(
        (r.problem, r.tail_rows, r.rows),
        (None, 0, CHUNK_ROWS as u64)
    );
}

/// A summary that fails its checksum stops the restore there: the
/// segments before it are used, the rows after them are replayed.
#[test]
fn a_corrupt_summary_restores_the_segments_before_it() {
    let login = ev(Level::Account, "Login/Logout", "Login");
    let rows: Vec<GenRow> = (0..CHUNK_ROWS * 3 + 5)
        .map(|i| {
            (
                i as i64,
                login,
                format!("u{}", i % 7),
                None,
                Some(format!("10.0.0.{}", i % 300)),
                None,
                String::new(),
            )
        })
        .collect();
    let mem = Arc::new(MemSegments {
        rows: rows.clone(),
        ..MemSegments::default()
    });
    let idx = LogIndex::paged(
        IndexLimits::DEFAULT,
        SegmentCache::new(0),
        Box::new(mem.clone()),
    );
    append_sealing(&idx, &mem, &rows, 50);
    let mut summaries: Vec<(u32, Vec<u8>)> = mem
        .stored
        .lock()
        .unwrap()
        .iter()
        .map(|(n, s)| (*n, s.0.clone()))
        .collect();
    assert_eq!(summaries.len(), 3);
    summaries[1].1[9] ^= 1;
    let restored = LogIndex::restore(
        IndexLimits::DEFAULT,
        SegmentCache::new(0),
        Box::new(mem.clone()),
        summaries,
    );
    assert!(restored.problem.unwrap().contains("checksum"));
    assert_eq!(restored.rows, CHUNK_ROWS as u64);
    let index = restored.index;
    index.append(rows[CHUNK_ROWS..].iter().map(gen_index_row));
    assert!(index.same_dictionaries(&idx));
    assert_eq!(index.len(), rows.len() as u64);
    // The replayed chunks are stored again at the next seal.
    assert_eq!(index.unsealed().len(), 2);
}

/// A restored index settles from its segments' stored summaries what
/// they decide (a count of one event or actor column over whole chunks, a
/// histogram whose buckets hold whole chunks, chunks a filter cannot
/// match): those segments are not loaded, and every answer is the
/// in-memory index's.
#[test]
fn stored_summaries_answer_without_loading_segments() {
    let login = ev(Level::Account, "Login/Logout", "Login");
    let role = ev(Level::Account, "Roles", "Role created");
    let chunks = 4;
    // A heavy service account on every third row, two others, and one user
    // only in the last full chunk (few enough distinct ones for the
    // summaries of the tests' small chunks); the event alternates.
    let row = |i: usize| -> GenRow {
        let actor = match i {
            _ if i.is_multiple_of(3) => "svc".to_string(),
            _ if i / CHUNK_ROWS == chunks - 1 && i % 10 == 1 => "late".to_string(),
            _ => format!("u{}", i % 3),
        };
        (
            i as i64 * 1_000_000,
            if i.is_multiple_of(2) { login } else { role },
            actor,
            None,
            Some(format!("10.0.0.{}", i % 9)),
            None,
            String::new(),
        )
    };
    let rows: Vec<GenRow> = (0..CHUNK_ROWS * chunks + CHUNK_ROWS / 2).map(row).collect();
    let (mem, _) = paged_over(&rows, 1000);
    let limits = IndexLimits::DEFAULT;
    let summaries = mem.summaries();
    assert_eq!(summaries.len(), chunks);
    let cache = SegmentCache::new(0);
    let restored = LogIndex::restore(limits, cache.clone(), Box::new(mem.clone()), summaries);
    assert_eq!(restored.problem, None);
    let index = restored.index;
    index.append(rows[CHUNK_ROWS * chunks..].iter().map(gen_index_row));
    let reference = LogIndex::new(limits);
    reference.append(rows.iter().map(gen_index_row));
    let chunk_us = CHUNK_ROWS as i64 * 1_000_000;
    // Buckets of two chunks each, then the tail.
    let edges = [0, 2 * chunk_us, 4 * chunk_us, 5 * chunk_us];
    fn no_check(_: u64) -> bool {
        unreachable!("no record check")
    }
    let loads_of = |filters: &[Filter], what: &str| -> u64 {
        let before = cache.stats().loads;
        let plan = index.plan(filters, Join::And, &Scope::Account);
        let want = reference.plan(filters, Join::And, &Scope::Account);
        let (got, exp) = match what {
            "count" => (
                vec![index.count(&plan, TimeBounds::ALL, &mut no_check)],
                vec![reference.count(&want, TimeBounds::ALL, &mut no_check)],
            ),
            "histogram" => (
                index.histogram(&plan, TimeBounds::ALL, &edges, &mut no_check),
                reference.histogram(&want, TimeBounds::ALL, &edges, &mut no_check),
            ),
            "page" => {
                let page = |p: &Plan| -> Vec<u64> {
                    let (keys, _) = p.page(TimeBounds::ALL, None, 10, &mut |_| true);
                    keys.iter().map(|k| k.seq).collect()
                };
                (page(&plan), page(&want))
            }
            _ => {
                let export = |p: &Plan| -> Vec<u64> {
                    let mut walk = p.export_keys(TimeBounds::ALL);
                    let (mut all, mut batch) = (Vec::new(), Vec::new());
                    while walk.next_batch(&mut |_| true, &mut batch) {
                        all.extend(batch.iter().map(|k| k.seq));
                    }
                    all
                };
                (export(&plan), export(&want))
            }
        };
        assert_eq!(got, exp, "{what} of {filters:?}");
        assert_eq!(plan.load_error(), None);
        cache.stats().loads - before
    };
    let svc = [filter(Column::UserId, Op::Eq, "svc")];
    let not_svc = [filter(Column::UserId, Op::Ne, "svc")];
    let event = [filter(Column::Event, Op::Eq, "Login")];
    let late = [filter(Column::UserId, Op::Eq, "late")];
    let ip = [filter(Column::IpAddress, Op::Eq, "10.0.0.1")];
    for f in [&svc[..], &not_svc, &event] {
        assert_eq!(loads_of(f, "count"), 0, "count of {f:?}");
        assert_eq!(loads_of(f, "histogram"), 0, "histogram of {f:?}");
    }
    // A rare user's rows are visited through postings: only the chunk
    // that holds them is read, for any answer.
    for what in ["count", "histogram", "page"] {
        assert_eq!(loads_of(&late, what), 1, "{what} of {late:?}");
    }
    // The export's walk reads it twice (its window's rows are counted,
    // then scanned), with a cache that holds nothing.
    assert_eq!(loads_of(&late, "export"), 2);
    // The IP address column is not in the stored summaries: read.
    assert_eq!(loads_of(&ip, "count"), chunks as u64);
    // A bucket edge through a chunk needs its rows.
    let before = cache.stats().loads;
    let plan = index.plan(&svc, Join::And, &Scope::Account);
    let mid = [0, chunk_us / 2, 5 * chunk_us];
    assert_eq!(
        index.histogram(&plan, TimeBounds::ALL, &mid, &mut no_check),
        reference.histogram(
            &reference.plan(&svc, Join::And, &Scope::Account),
            TimeBounds::ALL,
            &mid,
            &mut no_check
        )
    );
    assert_eq!(cache.stats().loads - before, 1);
}

/// Chunk summaries are bounded per index: past `SUMMARY_BYTES_MAX` the
/// oldest chunks lose theirs (filled here or restored), and those chunks
/// are read instead; no answer changes.
#[test]
fn the_oldest_chunk_summaries_give_way_to_the_newest() {
    let login = ev(Level::Account, "Login/Logout", "Login");
    let chunks = 40;
    let row = |i: usize| -> GenRow {
        (
            i as i64,
            login,
            format!("u{}", i % 3),
            None,
            None,
            None,
            String::new(),
        )
    };
    let rows: Vec<GenRow> = (0..CHUNK_ROWS * chunks + 5).map(row).collect();
    let (mem, idx) = paged_over(&rows, 100);
    let limits = IndexLimits::DEFAULT;
    let restored = LogIndex::restore(
        limits,
        SegmentCache::new(0),
        Box::new(mem.clone()),
        mem.summaries(),
    );
    assert_eq!(restored.problem, None);
    let restored = restored.index;
    restored.append(rows[CHUNK_ROWS * chunks..].iter().map(gen_index_row));
    for index in [&idx, &restored] {
        let g = index.read();
        assert!(g.summary_bytes <= SUMMARY_BYTES_MAX);
        let kept: Vec<bool> = g.summaries.iter().map(Option::is_some).collect();
        let first = kept.iter().position(|&k| k).expect("the newest are kept");
        assert!(first > 0, "some were dropped");
        assert!(
            kept[first..].iter().all(|&k| k),
            "only the oldest are dropped"
        );
        assert_eq!(g.first_summary, first);
    }
    let heavy = [filter(Column::UserId, Op::Eq, "u1")];
    let plan = restored.plan(&heavy, Join::And, &Scope::Account);
    let mut no_check = |_: u64| -> bool { unreachable!("no record check") };
    let want = rows.iter().filter(|r| r.2 == "u1").count() as u64;
    assert_eq!(restored.count(&plan, TimeBounds::ALL, &mut no_check), want);
    let plan = idx.plan(&heavy, Join::And, &Scope::Account);
    assert_eq!(idx.count(&plan, TimeBounds::ALL, &mut no_check), want);
}

/// Regression (issue 14: several instances sealing one account): a
/// segment's summary held the dictionary entries added up to whenever it
/// was sealed, so processes sealing at different rows wrote different
/// summaries, and a chain of segments from two of them did not restore
/// (the rows from the first mismatch on were replayed). Cut at the chunk's
/// fill, every process seals the same bytes, however it batches, and a
/// process restored from stored segments goes on writing the same.
#[test]
fn every_process_seals_the_same_segments() {
    let login = ev(Level::Account, "Login/Logout", "Login");
    // A new user and address every few rows: every chunk adds entries.
    let rows: Vec<GenRow> = (0..CHUNK_ROWS * 4 + 9)
        .map(|i| {
            (
                i as i64,
                login,
                format!("u{}", i / 3),
                None,
                Some(format!("10.0.{}.{}", i / 5, i % 2)),
                (i % 4 == 0).then(|| format!("wf_{}", i / 7)),
                String::new(),
            )
        })
        .collect();
    let sealed_with = |batch: usize| {
        let mem = Arc::new(MemSegments {
            rows: rows.clone(),
            ..MemSegments::default()
        });
        let idx = LogIndex::paged(
            IndexLimits::DEFAULT,
            SegmentCache::new(usize::MAX),
            Box::new(mem.clone()),
        );
        append_sealing(&idx, &mem, &rows, batch);
        mem.stored.lock().unwrap().clone()
    };
    let first = sealed_with(1);
    assert_eq!(first.len(), 4);
    for batch in [7, 50, 130, rows.len()] {
        // (Not `assert_eq!`: the bytes would fill the screen.)
        assert!(
            sealed_with(batch) == first,
            "batch {batch} sealed other bytes"
        );
    }
    // Restored from the first two segments, the rest sealed anew.
    let mem = Arc::new(MemSegments {
        rows: rows.clone(),
        ..MemSegments::default()
    });
    let summaries = first
        .iter()
        .take(2)
        .map(|(n, s)| (*n, s.0.clone()))
        .collect();
    let restored = LogIndex::restore(
        IndexLimits::DEFAULT,
        SegmentCache::new(usize::MAX),
        Box::new(mem.clone()),
        summaries,
    );
    assert_eq!(restored.problem, None);
    append_sealing(&restored.index, &mem, &rows[restored.rows as usize..], 33);
    let resealed = mem.stored.lock().unwrap().clone();
    assert_eq!(resealed.len(), 2);
    for (no, s) in &resealed {
        assert!(Some(s) == first.get(no), "segment {no} sealed other bytes");
    }
}

/// What an open account costs is counted as it grows (the store bounds
/// the sum over open accounts by it): rows and new values add to it,
/// sealing moves the rows to the cache, and a dropped index takes its
/// segments out of the cache.
#[test]
fn open_bytes_follow_the_index_and_a_dropped_index_leaves_the_cache() {
    let login = ev(Level::Account, "Login/Logout", "Login");
    let rows: Vec<GenRow> = (0..CHUNK_ROWS * 2 + 10)
        .map(|i| {
            (
                i as i64 * 60_000_000,
                login,
                format!("user-{i}-{}", "x".repeat(40)),
                None,
                None,
                None,
                String::new(),
            )
        })
        .collect();
    let mem = Arc::new(MemSegments {
        rows: rows.clone(),
        ..MemSegments::default()
    });
    let cache = SegmentCache::new(1 << 30);
    let idx = LogIndex::paged(IndexLimits::DEFAULT, cache.clone(), Box::new(mem.clone()));
    let empty = idx.open_bytes();
    idx.append(rows[..10].iter().map(gen_index_row));
    let ten = idx.open_bytes();
    // Ten new actors (id and name: the name defaults to the id, one text
    // each) and ten rows: at least their text.
    assert!(ten >= empty + 10 * 2 * 40, "{empty} → {ten}");
    // The same rows again add rows, not values.
    idx.append(rows[..10].iter().map(gen_index_row));
    assert!(idx.open_bytes() - ten < ten - empty);
    let idx = LogIndex::paged(IndexLimits::DEFAULT, cache.clone(), Box::new(mem.clone()));
    idx.append(rows[..CHUNK_ROWS * 2].iter().map(gen_index_row));
    let full = idx.open_bytes();
    assert!(full >= CHUNK_ROWS * 2 * 22, "{full}");
    let sealed = idx.unsealed();
    assert_eq!(sealed.len(), 2);
    for s in &sealed {
        mem.stored
            .lock()
            .unwrap()
            .insert(s.no, (s.summary.clone(), s.columns.clone()));
    }
    idx.mark_sealed(sealed);
    assert!(
        idx.open_bytes() + CHUNK_ROWS * 2 * 22 <= full,
        "rows left for the cache"
    );
    assert!(cache.stats().bytes > 0);
    drop(idx);
    assert_eq!(cache.stats().bytes, 0, "the dropped index's segments left");
}
