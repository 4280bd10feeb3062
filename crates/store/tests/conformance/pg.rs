//! The PostgreSQL backend under the suite (each test on a database of its
//! own: see `auditlog_store::postgres::testing`), and what only this
//! backend has: migrations, durability settings, partitions, several
//! processes on one database.

use std::sync::Arc;

use auditlog_store::postgres::testing::{TestDb, off_runtime, open, server_url};
use auditlog_store::postgres::{PgOptions, PostgresStore};
use auditlog_store::{DynStore, Store};

use super::{Backend, Damage};

pub struct Postgres {
    store: Option<DynStore>,
    db: TestDb,
}

impl Backend for Postgres {
    const ACCOUNT_COLUMNS: (&'static str, &'static str) = ("account_id", "account_id");

    fn available() -> bool {
        server_url().is_some()
    }

    fn fresh() -> Self {
        let db = TestDb::create().expect("checked by available()");
        let store = open(&db.url, PgOptions::default()).unwrap();
        Postgres {
            store: Some(Arc::new(store)),
            db,
        }
    }

    fn store(&self) -> DynStore {
        self.store.clone().unwrap()
    }

    fn reopen(&mut self) {
        self.store = None;
        let store = open(&self.db.url, PgOptions::default()).unwrap();
        self.store = Some(Arc::new(store));
    }

    fn reopen_with(&mut self, index: auditlog_store::layered::IndexOptions) {
        self.store = None;
        let opts = PgOptions {
            index,
            ..PgOptions::default()
        };
        self.store = Some(Arc::new(open(&self.db.url, opts).unwrap()));
    }

    fn reopen_damaged(&mut self, index_memory: usize, damage: Damage) {
        self.store = None;
        let flip = |column: &str, segment: u32| {
            format!(
                "UPDATE index_segments SET {column} = set_byte({column}, length({column}) / 2, \
                 get_byte({column}, length({column}) / 2) # 32) WHERE segment = {segment}"
            )
        };
        match damage {
            Damage::None => {}
            Damage::DropNewest => self.db.sql(
                "DELETE FROM index_segments WHERE segment = (SELECT max(segment) FROM index_segments)",
            ),
            Damage::FlipColumns => self.db.sql(&flip("columns", 0)),
            Damage::FlipSummary => self.db.sql(&flip("summary", 1)),
            Damage::FlipTail => self.db.sql(
                "UPDATE index_tails SET columns = set_byte(columns, 40, get_byte(columns, 40) # 255)",
            ),
            tail => self.db.sql(&super::tail_damage(tail, ("account_id", "account_id")).unwrap()),
        }
        let mut opts = PgOptions::default();
        opts.index.memory = index_memory;
        self.store = Some(Arc::new(open(&self.db.url, opts).unwrap()));
    }

    fn stored_segments(&self) -> usize {
        self.db.rows("SELECT count(*) FROM index_segments")[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn stored_tails(&self) -> Vec<i64> {
        self.db
            .rows("SELECT first FROM index_tails ORDER BY account_id")
            .iter()
            .map(|r| r[0].as_deref().unwrap().parse().unwrap())
            .collect()
    }

    fn sql_beside(&self, statement: &str) {
        self.db.sql(statement);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.store = None;
    }
}

fn error_of(r: auditlog_store::Result<PostgresStore>) -> auditlog_store::StoreError {
    match r {
        Ok(_) => panic!("the store opened"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_binary_is_refused() {
    let Some(db) = TestDb::create() else { return };
    drop(open(&db.url, PgOptions::default()).unwrap());
    db.sql("UPDATE auditlog_schema SET version = version + 1");
    let e = error_of(open(&db.url, PgOptions::default()));
    assert!(
        e.message.contains("written by a newer auditlog") && e.message.contains("upgrade"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_durability_settings_are_refused_unless_allowed() {
    let Some(db) = TestDb::create() else { return };
    // Sessions inherit a database's synchronous_commit (fsync is
    // server-wide: the same check reads it, but a test cannot turn it off
    // for one database).
    db.sql(&format!(
        "ALTER DATABASE {} SET synchronous_commit = off",
        db.name
    ));
    let e = error_of(open(&db.url, PgOptions::default()));
    assert!(
        e.message.contains("synchronous_commit=off")
            && e.message.contains("--allow-unsafe-durability"),
        "{e}"
    );
    let allowed = PgOptions {
        allow_unsafe_durability: true,
        ..PgOptions::default()
    };
    drop(open(&db.url, allowed).unwrap());
    db.sql(&format!(
        "ALTER DATABASE {} RESET synchronous_commit",
        db.name
    ));
    drop(open(&db.url, PgOptions::default()).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_once() {
    let Some(db) = TestDb::create() else { return };
    let url = db.url.clone();
    let opened: Vec<bool> = off_runtime(move || {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| s.spawn(|| PostgresStore::open(&url, PgOptions::default()).is_ok()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    });
    assert_eq!(opened, vec![true; 6]);
    let version = db.rows("SELECT version FROM auditlog_schema");
    assert_eq!(
        version,
        vec![vec![Some(
            auditlog_store::postgres::SCHEMA_VERSION.to_string()
        )]]
    );
    assert_eq!(
        db.rows("SELECT count(*) FROM event_types"),
        vec![vec![Some(
            auditlog_core::catalog::Catalog::get()
                .entries()
                .count()
                .to_string()
        )]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_in_the_partition_of_their_recorded_at_month() {
    let Some(db) = TestDb::create() else { return };
    // A clock far from today's months: its partitions are created on
    // demand, ahead too, and no insert fails.
    let now = std::sync::Arc::new(std::sync::Mutex::new(
        "1999-12-31T23:59:59Z".parse::<jiff::Timestamp>().unwrap(),
    ));
    let clock = {
        let now = now.clone();
        auditlog_store::Clock::new(move || *now.lock().unwrap())
    };
    let opts = PgOptions {
        clock,
        database_clock: false,
        ..PgOptions::default()
    };
    let store = open(&db.url, opts).unwrap();
    let a = super::acct("acme");
    let ev = |t| super::event("Login/Logout", "Login", t, "alice", None);
    store.append(&a, vec![ev(1), ev(2)]).await.unwrap();
    *now.lock().unwrap() = "2000-01-01T00:00:01Z".parse().unwrap();
    store.append(&a, vec![ev(3)]).await.unwrap();
    *now.lock().unwrap() = "2003-07-04T00:00:00Z".parse().unwrap();
    store.append(&a, vec![ev(4)]).await.unwrap();
    let rows = db.rows("SELECT tableoid::regclass::text, seq FROM events ORDER BY seq");
    let expect = [
        ("events_1999_12", 0),
        ("events_1999_12", 1),
        ("events_2000_01", 2),
        ("events_2003_07", 3),
    ];
    assert_eq!(
        rows,
        expect
            .iter()
            .map(|(p, s)| vec![Some(p.to_string()), Some(s.to_string())])
            .collect::<Vec<_>>()
    );
    let ahead = db.rows(
        "SELECT count(*) FROM pg_class WHERE relname IN ('events_2000_02', 'events_2003_08', 'events_2003_09')",
    );
    assert_eq!(ahead, vec![vec![Some("3".to_owned())]]);
}

/// Two processes appending to one account at once make one log: seq dense,
/// every acknowledged event there once, an idempotency key raced from both
/// answering one record, recorded_at never going back as seq grows, and
/// each process's tree heads consistent with the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_writers_on_one_account_make_one_log() {
    let Some(db) = TestDb::create() else { return };
    let a = super::acct("acme");
    let stores: Vec<Arc<PostgresStore>> = (0..2)
        .map(|_| Arc::new(open(&db.url, PgOptions::default()).unwrap()))
        .collect();
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let store = stores[w % 2].clone();
            let a = a.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for b in 0..20 {
                    // Key `race-b` is sent by every writer: one record.
                    let key = format!("race-{b}");
                    let events = vec![
                        super::event("Login/Logout", "Login", b, "alice", Some(&key)),
                        super::event("Roles", "Role created", b, &format!("w{w}"), None),
                    ];
                    for got in store.append(&a, events).await.unwrap() {
                        acked.push((got.record.body.id.clone(), got.record.body.seq));
                    }
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    // 20 keyed events once each, 8 × 20 unkeyed.
    let n = 20 + 8 * 20;
    let rows = db.rows(
        "SELECT seq, id, (extract(epoch FROM recorded_at) * 1000000)::int8 FROM events ORDER BY seq",
    );
    assert_eq!(rows.len(), n);
    let mut last_recorded = i64::MIN;
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0].as_deref(), Some(i.to_string().as_str()), "seq dense");
        let recorded: i64 = r[2].as_deref().unwrap().parse().unwrap();
        assert!(
            recorded >= last_recorded,
            "recorded_at went back at seq {i}"
        );
        last_recorded = recorded;
    }
    let stored: std::collections::HashMap<String, u64> = rows
        .iter()
        .map(|r| {
            (
                r[1].clone().unwrap(),
                r[0].as_deref().unwrap().parse().unwrap(),
            )
        })
        .collect();
    for (id, seq) in &acked {
        assert_eq!(stored.get(id), Some(seq), "acknowledged {id} at {seq}");
    }
    assert_eq!(
        db.rows("SELECT count(*) FROM idempotency_keys"),
        vec![vec![Some("20".to_owned())]]
    );
    // Each appends once more (catching up), then their heads agree with
    // the leaves and with each other.
    let mut heads = Vec::new();
    for s in &stores {
        s.append(
            &a,
            vec![super::event("Login/Logout", "Login", 99, "bob", None)],
        )
        .await
        .unwrap();
        heads.push(s.tree_head(&a).await.unwrap());
    }
    assert_eq!(heads[0].size as usize, n + 1);
    assert_eq!(heads[1].size as usize, n + 2);
    let proof = stores[1]
        .consistency_proof(&a, heads[0].size, heads[1].size)
        .await
        .unwrap();
    auditlog_core::merkle::verify_consistency(
        heads[0].size,
        heads[1].size,
        &heads[0].root,
        &heads[1].root,
        &proof,
    )
    .unwrap();
    // The first process's queries see the second's events once it has
    // caught up (its next append), and a restart sees them all.
    drop(stores);
    let reopened = open(&db.url, PgOptions::default()).unwrap();
    assert_eq!(reopened.tree_head(&a).await.unwrap(), heads[1]);
}

/// Two processes whose clocks disagree: recorded_at still never goes back
/// as seq grows (the head row keeps the latest, and a group never records
/// an earlier one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_at_never_goes_back_between_processes_with_skewed_clocks() {
    let Some(db) = TestDb::create() else { return };
    let pinned = |at: &'static str| PgOptions {
        clock: auditlog_store::Clock::new(move || at.parse().unwrap()),
        database_clock: false,
        ..PgOptions::default()
    };
    let ahead = open(&db.url, pinned("2030-01-01T00:00:00.500Z")).unwrap();
    let behind = open(&db.url, pinned("2029-06-01T00:00:00Z")).unwrap();
    let a = super::acct("acme");
    let ev = || vec![super::event("Login/Logout", "Login", 1, "alice", None)];
    let first = ahead.append(&a, ev()).await.unwrap();
    let second = behind.append(&a, ev()).await.unwrap();
    assert_eq!(second[0].record.body.seq, 1);
    assert_eq!(
        second[0].record.body.recorded_at,
        first[0].record.body.recorded_at
    );
}

/// An event acknowledged by one process is in every read of another right
/// after: count, page, histogram, tree head, proofs, checkpoints; for an
/// account the reader had never seen too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_one_process_see_what_another_acknowledged() {
    let Some(db) = TestDb::create() else { return };
    let a = super::acct("acme");
    let writer = open(&db.url, PgOptions::default()).unwrap();
    let reader = open(&db.url, PgOptions::default()).unwrap();
    let sel = super::all(Vec::new(), auditlog_core::query::Join::And);
    for round in 1..=3u64 {
        let events = (0..10)
            .map(|i| super::event("Login/Logout", "Login", i, "alice", None))
            .collect();
        let appended = writer.append(&a, events).await.unwrap();
        assert_eq!(reader.count(&a, &sel).await.unwrap(), round * 10);
        let page = reader.list(&a, &sel, None, 100).await.unwrap();
        assert_eq!(page.records.len() as u64, round * 10);
        assert_eq!(
            reader
                .histogram(&a, &sel, vec![0, 1_000_000])
                .await
                .unwrap(),
            vec![round * 10]
        );
        let head = reader.tree_head(&a).await.unwrap();
        assert_eq!(head, writer.tree_head(&a).await.unwrap());
        let last = &appended[9].record;
        let proof = reader
            .inclusion_proof(&a, last.body.seq, head.size)
            .await
            .unwrap();
        auditlog_core::merkle::verify_inclusion(
            &last.leaf_hash,
            last.body.seq,
            head.size,
            &proof,
            &head.root,
        )
        .unwrap();
        let got = reader.get(&a, &last.body.id).await.unwrap();
        assert_eq!(got.as_ref(), Some(last));
    }
    // And the other way round, on the same account.
    reader
        .append(
            &a,
            vec![super::event("Roles", "Role created", 5, "bob", None)],
        )
        .await
        .unwrap();
    assert_eq!(writer.count(&a, &sel).await.unwrap(), 31);
}

/// Another process's appends reach an open account's index without a
/// read: pushed by the database (`LISTEN`), pulled in the background. The
/// reads then agree with what was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_account_pulls_another_processs_appends_without_a_read() {
    let Some(db) = TestDb::create() else { return };
    let a = super::acct("acme");
    let writer = open(&db.url, PgOptions::default()).unwrap();
    let reader = open(&db.url, PgOptions::default()).unwrap();
    let sel = super::all(Vec::new(), auditlog_core::query::Join::And);
    let ev = |t| super::event("Login/Logout", "Login", t, "alice", None);
    writer.append(&a, vec![ev(0)]).await.unwrap();
    // Opened by its first read; a second account stays unopened.
    assert_eq!(reader.count(&a, &sel).await.unwrap(), 1);
    let other = super::acct("other");
    for round in 1..=5u64 {
        let events = (0..100).map(|i| ev(i as i64)).collect();
        writer.append(&a, events).await.unwrap();
        writer.append(&other, vec![ev(1)]).await.unwrap();
        wait_for_held(&reader, &a, 1 + round * 100).await;
    }
    // Not opened here: notified, and left alone.
    assert_eq!(reader.held_size(&other), None);
    assert_eq!(reader.count(&a, &sel).await.unwrap(), 501);
    assert_eq!(
        reader.tree_head(&a).await.unwrap(),
        writer.tree_head(&a).await.unwrap()
    );
}

/// Read-your-writes does not depend on the wake-ups: with them off, or
/// with the listening connections killed (a notification lost), a read
/// right after another process's acknowledgement still sees it. A killed
/// listener reconnects and wake-ups resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_other_processs_appends_without_wake_ups() {
    let Some(db) = TestDb::create() else { return };
    let a = super::acct("acme");
    let writer = open(&db.url, PgOptions::default()).unwrap();
    let deaf = PgOptions {
        wake_on_appends: false,
        ..PgOptions::default()
    };
    let readers = [
        open(&db.url, deaf).unwrap(),
        open(&db.url, PgOptions::default()).unwrap(),
    ];
    let sel = super::all(Vec::new(), auditlog_core::query::Join::And);
    let ev = |t| super::event("Login/Logout", "Login", t, "alice", None);
    writer.append(&a, vec![ev(0)]).await.unwrap();
    for r in &readers {
        assert_eq!(r.count(&a, &sel).await.unwrap(), 1);
    }
    // Every listening connection of the database ends (one per store).
    let listeners = format!(
        "FROM pg_stat_activity WHERE datname = current_database() AND application_name = '{}'",
        auditlog_store::postgres::testing::LISTENER_NAME
    );
    for _ in 0..1000 {
        if db.rows(&format!("SELECT count(*) {listeners}"))[0][0].as_deref() == Some("3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let killed = db.rows(&format!(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) {listeners}"
    ));
    assert_eq!(killed[0][0].as_deref(), Some("3"));
    let mut size = 1;
    for round in 0..3 {
        let events = (0..50).map(|i| ev(i as i64)).collect();
        writer.append(&a, events).await.unwrap();
        size += 50;
        // Without wake-ups nothing moved the index yet.
        assert_eq!(readers[0].held_size(&a), Some(size - 50), "{round}");
        for r in &readers {
            assert_eq!(r.count(&a, &sel).await.unwrap(), size, "{round}");
        }
    }
    // The killed listener is back (it retries every second): appends wake
    // the index again.
    for _ in 0..100 {
        writer.append(&a, vec![ev(1)]).await.unwrap();
        size += 1;
        if wait_for_held_within(&readers[1], &a, size, 100).await {
            return;
        }
    }
    panic!("wake-ups did not resume after the listener was killed");
}

/// Waits (up to 10 s) until `store`'s index of `account` holds `size`
/// events, without a read.
async fn wait_for_held(
    store: &PostgresStore,
    account: &auditlog_core::record::AccountId,
    size: u64,
) {
    if !wait_for_held_within(store, account, size, 1000).await {
        panic!(
            "the index holds {:?} events, not {size}",
            store.held_size(account)
        );
    }
}

async fn wait_for_held_within(
    store: &PostgresStore,
    account: &auditlog_core::record::AccountId,
    size: u64,
    tries: usize,
) -> bool {
    for _ in 0..tries {
        if store.held_size(account) == Some(size) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// A token revoked through one process stops working on another as soon
/// as the database's notification arrives: the second's revocation
/// counter moves (it moves on nothing else while its listener is up), and
/// its cached token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_process_is_pushed_to_the_others() {
    let Some(db) = TestDb::create() else { return };
    let first = open(&db.url, PgOptions::default()).unwrap();
    let second = open(&db.url, PgOptions::default()).unwrap();
    let scope = auditlog_store::TokenScope::Account(super::acct("acme"));
    first
        .create_token(super::token("tok_1", 9, scope.clone(), 1))
        .await
        .unwrap();
    assert!(second.find_token(&[9; 32]).await.unwrap().is_some());
    // The listener is up (its first connection bumped the counter once).
    let settled = wait_for_counter(&second, |n| n > 0).await;
    let revocation = auditlog_store::Revocation::new(&scope, "tok_1", None, None, 5);
    assert!(first.revoke_token(revocation).await.unwrap());
    wait_for_counter(&second, |n| n > settled).await;
    assert_eq!(second.find_token(&[9; 32]).await.unwrap(), None);
}

/// The backend's revocation counter once `ok` holds (within 10 s).
async fn wait_for_counter(store: &PostgresStore, ok: impl Fn(u64) -> bool) -> u64 {
    use auditlog_store::backend::LogBackend;
    for _ in 0..1000 {
        let n = store.backend().revocations_notified().unwrap();
        if ok(n) {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the revocation counter did not move");
}

/// One process at a time signs checkpoints in the background; when it goes,
/// another takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_leads_checkpoint_signing_and_another_takes_over() {
    let Some(db) = TestDb::create() else { return };
    let first = open(&db.url, PgOptions::default()).unwrap();
    let second = open(&db.url, PgOptions::default()).unwrap();
    assert!(first.leads_checkpoints().await.unwrap());
    assert!(!second.leads_checkpoints().await.unwrap());
    assert!(
        first.leads_checkpoints().await.unwrap(),
        "it keeps the lead"
    );
    drop(first);
    for _ in 0..1000 {
        if second.leads_checkpoints().await.unwrap() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the second process never took over");
}

/// Regression (found by the failover test): a request whose own step
/// failed inside a group was dropped unanswered, and its caller read "the
/// store's writer stopped (shutting down)" instead of the cause. The store
/// goes on after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_step_fails_is_answered_with_its_cause() {
    let Some(db) = TestDb::create() else { return };
    let store = open(&db.url, PgOptions::default()).unwrap();
    let a = super::acct("acme");
    let ev = |t, key| super::event("Login/Logout", "Login", t, "alice", key);
    store.append(&a, vec![ev(1, Some("k-1"))]).await.unwrap();
    // The next key's lookup fails.
    db.sql("DROP TABLE idempotency_keys");
    let err = store
        .append(&a, vec![ev(2, Some("k-2"))])
        .await
        .unwrap_err();
    assert!(err.message.contains("idempotency key"), "{err:?}");
    let appended = store.append(&a, vec![ev(3, None)]).await.unwrap();
    assert_eq!(appended[0].record.body.seq, 1);
}

/// Regression (issue 14): two processes appending to one account across
/// chunk boundaries each sealed the full chunks, cutting each summary's
/// dictionary entries at whatever row they had reached, and overwrote each
/// other's: the stored summaries no longer chained, and a restart replayed
/// the rows from the first mismatch on. Now each segment is stored once
/// (the other process finds it under the account's sealing lock and adopts
/// it), the stored chain restores without replaying a row, and after a
/// restart of both their answers are the embedded store's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_store_one_chain_of_index_segments() {
    use super::Backend;
    let Some(db) = TestDb::create() else { return };
    let a = super::acct("acme");
    // Without wake-ups each process learns of the other's rows only at its
    // next append (as when notifications are lost), so the two reach each
    // chunk's end at different rows.
    let deaf = || PgOptions {
        wake_on_appends: false,
        ..PgOptions::default()
    };
    let open_one = || Arc::new(open(&db.url, deaf()).unwrap());
    let stores = [open_one(), open_one()];
    let embedded = super::Sqlite::fresh();
    let n = 2 * 65_536 + 3_000;
    // Batches of 7,000 alternating between the processes: each chunk fills
    // in one process's group, and the other catches up past it later.
    for (k, start) in (0..n).step_by(7_000).enumerate() {
        let events: Vec<_> = (start..(start + 7_000).min(n)).map(fresh_values).collect();
        stores[k % 2].append(&a, events.clone()).await.unwrap();
        embedded.store().append(&a, events).await.unwrap();
    }
    // A process seals after a group's acknowledgements: one more group on
    // each, twice, and every seal of the groups above is done.
    let mut i = n;
    for _ in 0..2 {
        for s in &stores {
            s.append(&a, vec![fresh_values(i)]).await.unwrap();
            i += 1;
        }
    }
    embedded
        .store()
        .append(&a, (n..i).map(fresh_values).collect())
        .await
        .unwrap();
    let n = i;
    let segments =
        || db.rows("SELECT segment, encode(summary, 'hex') FROM index_segments ORDER BY segment");
    for _ in 0..2000 {
        if segments().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // What a restart restores from them: both segments, no row replayed.
    let summaries = segments()
        .into_iter()
        .map(|r| {
            let no = r[0].as_deref().unwrap().parse().unwrap();
            (no, hex(r[1].as_deref().unwrap()))
        })
        .collect();
    let restored = auditlog_core::index::LogIndex::restore(
        auditlog_core::index::IndexLimits::DEFAULT,
        auditlog_core::index::SegmentCache::new(0),
        Box::new(NoSegments),
        summaries,
    );
    assert_eq!(restored.problem, None);
    assert_eq!(restored.rows, 2 * 65_536);
    // Both restarted: the embedded store's answers.
    drop(stores);
    let expected = super::index_answers(&embedded.store(), &a).await;
    let stores = [open_one(), open_one()];
    for s in &stores {
        let s: DynStore = s.clone();
        assert_eq!(super::index_answers(&s, &a).await, expected);
    }
    // And their opens replayed no segment's rows.
    for s in &stores {
        assert_eq!(s.index_restore_problems(), 0);
    }
    let more = stores[1].append(&a, vec![fresh_values(n)]).await.unwrap();
    assert_eq!(more[0].record.body.seq, n as u64);
}

/// Event `i` of a log that keeps adding dictionary entries (a new user
/// every tenth event, a new address every seventh), over the mix that
/// `index_answers` asks about.
fn fresh_values(i: usize) -> auditlog_core::validate::ValidEvent {
    let (c, e) = match i % 5 {
        0 => ("Roles", "Role created"),
        1 => ("Workflow Management", "Workflow deployed"),
        _ => ("Login/Logout", "Login"),
    };
    let user = match i % 10 {
        2 | 7 => "svc".to_owned(),
        9 => format!("new{i}"),
        _ => format!("u{}", i % 13),
    };
    let mut ev = super::event(c, e, (i as i64) * 800, &user, None);
    ev.ip_address = Some(if i.is_multiple_of(7) {
        format!("10.1.{}.{}", i / 250 % 250, i % 250)
    } else {
        format!("10.0.0.{}", i % 11)
    });
    if ev.workflow_id.is_some() {
        ev.workflow_id = Some(format!("wf_{}", i % 4));
    }
    ev
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A segment source with nothing in it: a restore reads summaries only.
struct NoSegments;

impl auditlog_core::index::SegmentSource for NoSegments {
    fn columns(&self, _: u32) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
    fn rows(
        &self,
        _: u64,
        _: u64,
        _: &mut dyn FnMut(auditlog_core::index::IndexRow<'_>),
    ) -> Result<(), String> {
        Ok(())
    }
    fn repaired(&self, _: u32, _: &str, _: Vec<u8>) {}
}
