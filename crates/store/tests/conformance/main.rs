//! The store conformance suite: one set of behaviours every backend must
//! have, stamped out per backend by `conformance_suite!`, each test against a
//! real database created fresh for it.

use std::collections::BTreeMap;
use std::sync::Arc;

use auditlog_core::catalog::{Catalog, Level};
use auditlog_core::index::{RowKey, TimeBounds};
use auditlog_core::merkle;
use auditlog_core::query::{Filter, Join};
use auditlog_core::record::{AccountId, Actor, ActorKind, Micros, Record, RecordBody, WorkflowId};
use auditlog_core::validate::{Defaulted, ValidEvent};
use auditlog_store::sqlite::{SqliteOptions, SqliteStore};
use auditlog_store::{
    DynStore, Page, QueryControl, Revocation, Role, Scope, Selection, StoreErrorKind,
    TOKEN_REVOCATION_POLL, TokenChange, TokenRecord, TokenScope,
};

mod evict;
mod lazy;
mod pg;

use evict::{accounts_in_use_are_never_closed, closed_accounts_answer_as_open_ones};
use lazy::{
    a_lazily_opened_account_answers_like_before,
    concurrent_first_uses_of_an_unopened_account_share_one_state,
};
use pg::Postgres;

/// A backend under test: a fresh database, and a way to reopen it as after
/// a restart.
trait Backend: Sized {
    /// Whether the backend's database server is there to test against
    /// (see `pg::server_url`: never false in CI).
    fn available() -> bool {
        true
    }
    fn fresh() -> Self;
    fn store(&self) -> DynStore;
    /// Drops the open store and opens the same database again.
    fn reopen(&mut self);
    /// The same, with the column indexes kept as `index` says.
    fn reopen_with(&mut self, index: auditlog_store::layered::IndexOptions);
    /// Drops the open store, damages its stored index segments as `damage`
    /// says (what a crash or a bad disk leaves), and opens it again with
    /// `index_memory` bytes of segment cache.
    fn reopen_damaged(&mut self, index_memory: usize, damage: Damage);
    /// How many index segments are stored (all accounts).
    fn stored_segments(&self) -> usize;
    /// The first row of each stored index tail, by account.
    fn stored_tails(&self) -> Vec<i64>;
    /// Runs `statement` on the database from a connection of its own, with
    /// the store open (as another process would).
    fn sql_beside(&self, statement: &str);
    /// The columns naming an account in `events` and `accounts`.
    const ACCOUNT_COLUMNS: (&'static str, &'static str) = ("account", "id");
    /// SQL that says another user wrote the rows of the service account
    /// `svc` in `account` (never done to a real log: only to tell whether
    /// an open read the rows or took a stored tail).
    fn rename_svc_in(account: &str) -> String {
        let (events_account, accounts_id) = Self::ACCOUNT_COLUMNS;
        format!(
            "UPDATE events SET actor_name = 'u7' WHERE actor_name = 'svc' \
             AND {events_account} = (SELECT {accounts_id} FROM accounts WHERE name = '{account}')"
        )
    }
}

/// What happens to the stored index segments between two opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damage {
    None,
    /// The newest segment is gone: a crash after its chunk filled and
    /// before the segment was stored.
    DropNewest,
    /// A byte of segment 0's columns flipped.
    FlipColumns,
    /// A byte of segment 1's summary flipped.
    FlipSummary,
    /// A byte of every stored tail's columns flipped.
    FlipTail,
    /// Every stored tail claims to start a row earlier than it does (what a
    /// tail stored before a segment was sealed looks like).
    StaleTail,
    /// The index columns of the service account's rows after acme's first
    /// segment say another user wrote them: never done to a real log (its
    /// rows never change), only to tell here whether an open read the rows
    /// or took the stored tail.
    RowsUnderTail,
}

/// SQL that damages a tail or the rows under it as `damage` says, for
/// either backend (`account` names the account columns of `events` and
/// `accounts`; the rest is the same in both schemas). Flipping a byte is
/// each backend's own.
fn tail_damage(damage: Damage, account: (&str, &str)) -> Option<String> {
    let (events_account, accounts_id) = account;
    match damage {
        Damage::StaleTail => Some("UPDATE index_tails SET first = first - 1".to_owned()),
        Damage::RowsUnderTail => Some(format!(
            "UPDATE events SET actor_name = 'u7' WHERE actor_name = 'svc' AND seq >= 65536 \
             AND {events_account} = (SELECT {accounts_id} FROM accounts WHERE name = 'acme')"
        )),
        _ => None,
    }
}

fn sqlite_damage(dir: &std::path::Path, damage: Damage) {
    let conn = rusqlite::Connection::open(dir.join(auditlog_store::sqlite::DB_FILE)).unwrap();
    let flip = |column: &str, segment: i64| {
        let mut blob: Vec<u8> = conn
            .query_row(
                &format!("SELECT {column} FROM index_segments WHERE segment = ?1"),
                [segment],
                |r| r.get(0),
            )
            .unwrap();
        let at = blob.len() / 2;
        blob[at] ^= 0x20;
        conn.execute(
            &format!("UPDATE index_segments SET {column} = ?1 WHERE segment = ?2"),
            rusqlite::params![blob, segment],
        )
        .unwrap();
    };
    match damage {
        Damage::None => {}
        Damage::DropNewest => {
            conn.execute(
                "DELETE FROM index_segments WHERE segment = (SELECT MAX(segment) FROM index_segments)",
                [],
            )
            .unwrap();
        }
        Damage::FlipColumns => flip("columns", 0),
        Damage::FlipSummary => flip("summary", 1),
        Damage::FlipTail => {
            let mut stmt = conn
                .prepare("SELECT account, columns FROM index_tails")
                .unwrap();
            let tails: Vec<(i64, Vec<u8>)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            for (account, mut columns) in tails {
                columns[40] ^= 0xff;
                conn.execute(
                    "UPDATE index_tails SET columns = ?1 WHERE account = ?2",
                    rusqlite::params![columns, account],
                )
                .unwrap();
            }
        }
        tail => {
            let changed = conn
                .execute(&tail_damage(tail, ("account", "id")).unwrap(), [])
                .unwrap();
            assert!(changed > 0, "{tail:?} changed nothing");
        }
    }
}

struct Sqlite {
    dir: tempfile::TempDir,
    store: Option<DynStore>,
}

impl Backend for Sqlite {
    fn fresh() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        Sqlite {
            dir,
            store: Some(Arc::new(store)),
        }
    }

    fn store(&self) -> DynStore {
        self.store.clone().unwrap()
    }

    fn reopen(&mut self) {
        self.store = None;
        let store = SqliteStore::open(self.dir.path(), SqliteOptions::default()).unwrap();
        self.store = Some(Arc::new(store));
    }

    fn reopen_with(&mut self, index: auditlog_store::layered::IndexOptions) {
        self.store = None;
        let opts = SqliteOptions {
            index,
            ..SqliteOptions::default()
        };
        self.store = Some(Arc::new(SqliteStore::open(self.dir.path(), opts).unwrap()));
    }

    fn reopen_damaged(&mut self, index_memory: usize, damage: Damage) {
        self.store = None;
        sqlite_damage(self.dir.path(), damage);
        let mut opts = SqliteOptions::default();
        opts.index.memory = index_memory;
        let store = SqliteStore::open(self.dir.path(), opts).unwrap();
        self.store = Some(Arc::new(store));
    }

    fn stored_segments(&self) -> usize {
        let conn =
            rusqlite::Connection::open(self.dir.path().join(auditlog_store::sqlite::DB_FILE))
                .unwrap();
        conn.query_row("SELECT count(*) FROM index_segments", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap() as usize
    }

    fn stored_tails(&self) -> Vec<i64> {
        let conn =
            rusqlite::Connection::open(self.dir.path().join(auditlog_store::sqlite::DB_FILE))
                .unwrap();
        let mut stmt = conn
            .prepare("SELECT first FROM index_tails ORDER BY account")
            .unwrap();
        stmt.query_map([], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn sql_beside(&self, statement: &str) {
        let conn =
            rusqlite::Connection::open(self.dir.path().join(auditlog_store::sqlite::DB_FILE))
                .unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn.execute_batch(statement).unwrap();
    }
}

fn acct(s: &str) -> AccountId {
    AccountId::parse(s).unwrap()
}

/// A valid event: `(category, event)` at `t_ms`, by `user`.
fn event(category: &str, name: &str, t_ms: i64, user: &str, key: Option<&str>) -> ValidEvent {
    let level = if category == "Workflow Management" {
        Level::Workflow
    } else {
        Level::Account
    };
    let id = Catalog::get()
        .find(level, category, name)
        .expect("in catalog");
    ValidEvent {
        event_id: id,
        level,
        category: category.into(),
        event: name.into(),
        occurred_at: Micros(t_ms * 1000),
        actor: Actor {
            kind: ActorKind::User,
            id: format!("id_{user}"),
            name: Some(user.into()),
            email: Some(format!("{user}@example.com")),
        },
        ip_address: Some("203.0.113.7".into()),
        workflow_id: (level == Level::Workflow).then(|| "wf_1".into()),
        description: format!("{name} by {user} <b>"),
        metadata: BTreeMap::from([("k".into(), serde_json::json!(t_ms))]),
        idempotency_key: key.map(str::to_owned),
        defaulted: Defaulted::default(),
    }
}

fn all(filters: Vec<Filter>, join: Join) -> Selection {
    Selection {
        scope: Scope::Account,
        bounds: TimeBounds::ALL,
        filters,
        join,
        control: QueryControl::default(),
    }
}

/// A page's records parsed, after checking that each is stored exactly as
/// its parsed form serializes: splicing it is the same as re-serializing.
fn parsed(page: &Page) -> Vec<Record> {
    page.records
        .iter()
        .map(|raw| {
            let body: RecordBody = serde_json::from_slice(&raw.canonical).unwrap();
            assert_eq!(body.canonical_bytes(), raw.canonical);
            assert_eq!(body.seq, raw.seq);
            Record {
                body,
                leaf_hash: raw.leaf_hash,
            }
        })
        .collect()
}

fn f(s: &str) -> Filter {
    Filter::parse(s).unwrap()
}

/// `n` events from `start_ms`, a third of them "Role created" (`i % 3 ==
/// 0`), the rest "Login", by alice and bob in turn.
fn role_mix(n: usize, start_ms: i64) -> Vec<ValidEvent> {
    (0..n)
        .map(|i| {
            let (c, e) = if i % 3 == 0 {
                ("Roles", "Role created")
            } else {
                ("Login/Logout", "Login")
            };
            event(
                c,
                e,
                start_ms + i as i64,
                if i % 2 == 0 { "alice" } else { "bob" },
                None,
            )
        })
        .collect()
}

async fn append_seqs<B: Backend>(b: &B, account: &str, n: usize, start_ms: i64) -> Vec<u64> {
    let events = role_mix(n, start_ms);
    b.store()
        .append(&acct(account), events)
        .await
        .unwrap()
        .iter()
        .map(|a| a.record.body.seq)
        .collect()
}

async fn appends_get_dense_seqs_and_valid_leaf_hashes<B: Backend>() {
    let b = B::fresh();
    assert_eq!(append_seqs(&b, "acme", 5, 1000).await, [0, 1, 2, 3, 4]);
    assert_eq!(append_seqs(&b, "acme", 2, 2000).await, [5, 6]);
    // Another account has its own log.
    assert_eq!(append_seqs(&b, "other", 2, 1000).await, [0, 1]);
    let page = b
        .store()
        .list(&acct("acme"), &all(vec![], Join::And), None, 100)
        .await
        .unwrap();
    assert_eq!(page.records.len(), 7);
    for r in &parsed(&page) {
        assert_eq!(r.body.compute_leaf_hash(), r.leaf_hash);
        assert_eq!(r.body.account_id, "acme");
        assert_eq!(r.body.id.len(), 26);
        let got = b
            .store()
            .get(&acct("acme"), &r.body.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, r);
        // Never across accounts.
        assert!(
            b.store()
                .get(&acct("other"), &r.body.id)
                .await
                .unwrap()
                .is_none()
        );
    }
}

async fn idempotency_keys_return_the_first_record<B: Backend>() {
    let b = B::fresh();
    let s = b.store();
    let a = acct("acme");
    let first = s
        .append(
            &a,
            vec![event("Roles", "Role created", 1, "alice", Some("k1"))],
        )
        .await
        .unwrap();
    assert!(first[0].created);
    // Same key and event later, and twice inside one batch: never a second
    // record.
    let again = s
        .append(
            &a,
            vec![
                event("Roles", "Role created", 1, "alice", Some("k1")),
                event("Roles", "Role created", 3, "alice", Some("k2")),
                event("Roles", "Role created", 3, "alice", Some("k2")),
            ],
        )
        .await
        .unwrap();
    assert!(!again[0].created);
    assert_eq!(again[0].record, first[0].record);
    assert!(again[1].created);
    assert!(!again[2].created);
    assert_eq!(again[2].record, again[1].record);
    assert_eq!(s.count(&a, &all(vec![], Join::And)).await.unwrap(), 2);
    // The same key in another account is another event.
    let other = s
        .append(
            &acct("other"),
            vec![event("Roles", "Role created", 1, "x", Some("k1"))],
        )
        .await
        .unwrap();
    assert!(other[0].created);
}

/// Issue 11: a key reused with another event used to return the first
/// record as if it were the same; now the request fails with `Conflict`,
/// writes nothing, and does not take other requests of its group down.
async fn an_idempotency_key_reused_for_another_event_conflicts<B: Backend>() {
    let b = B::fresh();
    let s = b.store();
    let a = acct("acme");
    s.append(
        &a,
        vec![event("Roles", "Role created", 1, "alice", Some("k1"))],
    )
    .await
    .unwrap();
    let conflict = |r: Result<Vec<auditlog_store::Appended>, auditlog_store::StoreError>| {
        let e = r.expect_err("a conflict");
        assert_eq!(e.kind, StoreErrorKind::Conflict, "{e}");
        assert!(
            e.message.contains("`k1`") || e.message.contains("`k9`"),
            "{e}"
        );
        assert!(
            !e.message.contains("alice"),
            "the stored record is not revealed: {e}"
        );
    };
    // Another time, another actor, other metadata: each a different event.
    let mut other_meta = event("Roles", "Role created", 1, "alice", Some("k1"));
    other_meta
        .metadata
        .insert("extra".into(), serde_json::json!(true));
    for ev in [
        event("Roles", "Role created", 2, "alice", Some("k1")),
        event("Roles", "Role created", 1, "bob", Some("k1")),
        other_meta,
    ] {
        conflict(s.append(&a, vec![ev]).await);
    }
    // In a batch, with new events around it: nothing of the batch is written.
    conflict(
        s.append(
            &a,
            vec![
                event("Roles", "Role created", 5, "carol", Some("new")),
                event("Roles", "Role created", 2, "alice", Some("k1")),
            ],
        )
        .await,
    );
    // Twice in one batch with different events.
    conflict(
        s.append(
            &a,
            vec![
                event("Roles", "Role created", 5, "carol", Some("k9")),
                event("Roles", "Role created", 6, "carol", Some("k9")),
            ],
        )
        .await,
    );
    assert_eq!(s.count(&a, &all(vec![], Join::And)).await.unwrap(), 1);
    assert_eq!(s.tree_head(&a).await.unwrap().size, 1);
    // Conflicting requests among many concurrent ones (so they share
    // groups): only they fail.
    let mut tasks = Vec::new();
    for i in 0..64i64 {
        let s = s.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let ev = if i % 8 == 0 {
                event("Roles", "Role created", 99, "mallory", Some("k1"))
            } else {
                event("Roles", "Role created", 100 + i, "dave", None)
            };
            (i, s.append(&a, vec![ev]).await)
        }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        if i % 8 == 0 {
            conflict(r);
        } else {
            assert!(r.unwrap()[0].created);
        }
    }
    assert_eq!(s.count(&a, &all(vec![], Join::And)).await.unwrap(), 1 + 56);
    // The key still answers the first record to a true retry.
    let again = s
        .append(
            &a,
            vec![event("Roles", "Role created", 1, "alice", Some("k1"))],
        )
        .await
        .unwrap();
    assert!(!again[0].created);
    assert_eq!(again[0].record.body.seq, 0);
}

/// A retry that leaves `occurred_at` or `ip_address` to the server gets
/// another "now" and maybe another client address: still the same event.
/// A retry that sends them must send the same values.
async fn server_defaults_do_not_make_a_retry_a_conflict<B: Backend>() {
    let b = B::fresh();
    let s = b.store();
    let a = acct("acme");
    let defaulted = |t_ms: i64, ip: &str| {
        let mut ev = event("Roles", "Role created", t_ms, "alice", Some("d1"));
        ev.metadata = BTreeMap::from([("k".into(), serde_json::json!(0))]);
        ev.ip_address = Some(ip.into());
        ev.defaulted = Defaulted {
            occurred_at: true,
            ip_address: true,
        };
        ev
    };
    let first = s
        .append(&a, vec![defaulted(1_000, "198.51.100.1")])
        .await
        .unwrap();
    assert!(first[0].created);
    let retry = s
        .append(&a, vec![defaulted(61_000, "198.51.100.2")])
        .await
        .unwrap();
    assert!(!retry[0].created);
    assert_eq!(retry[0].record, first[0].record);
    // Within one batch too.
    let batch = s
        .append(
            &a,
            vec![
                {
                    let mut e = defaulted(5_000, "198.51.100.1");
                    e.idempotency_key = Some("d2".into());
                    e
                },
                {
                    let mut e = defaulted(5_001, "198.51.100.3");
                    e.idempotency_key = Some("d2".into());
                    e
                },
            ],
        )
        .await
        .unwrap();
    assert!(batch[0].created && !batch[1].created);
    assert_eq!(batch[1].record, batch[0].record);
    // The retry that states a time states the event's time: another one is
    // another event.
    let mut explicit = defaulted(61_000, "198.51.100.1");
    explicit.defaulted.occurred_at = false;
    let e = s.append(&a, vec![explicit]).await.unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Conflict);
    let mut explicit = defaulted(1_000, "198.51.100.1");
    explicit.defaulted.occurred_at = false;
    assert!(!s.append(&a, vec![explicit]).await.unwrap()[0].created);
}

async fn concurrent_appends_share_commits_and_keep_seq_dense<B: Backend>() {
    let b = B::fresh();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let s = b.store();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..25 {
                let r = s
                    .append(
                        &acct("acme"),
                        vec![event("Login/Logout", "Login", w * 1000 + i, "alice", None)],
                    )
                    .await
                    .unwrap();
                seqs.push(r[0].record.body.seq);
            }
            seqs
        }));
    }
    let mut seqs: Vec<u64> = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..400).collect::<Vec<u64>>());
    assert_eq!(b.store().tree_head(&acct("acme")).await.unwrap().size, 400);
}

async fn filters_counts_and_histograms<B: Backend>() {
    let b = B::fresh();
    append_seqs(&b, "acme", 30, 0).await;
    let s = b.store();
    let a = acct("acme");
    let count = |filters: Vec<Filter>, join| {
        let s = s.clone();
        let a = a.clone();
        async move { s.count(&a, &all(filters, join)).await.unwrap() }
    };
    assert_eq!(count(vec![], Join::And).await, 30);
    assert_eq!(count(vec![f("event:eq:role created")], Join::And).await, 10);
    assert_eq!(
        count(vec![f("category:ne:Login/Logout")], Join::And).await,
        10
    );
    assert_eq!(
        count(vec![f("event:eq:Role created"), f("user:eq:bob")], Join::Or).await,
        10 + 15 - 5
    );
    assert_eq!(
        count(
            vec![f("event:eq:Role created"), f("user:eq:bob")],
            Join::And
        )
        .await,
        5
    );
    assert_eq!(
        count(vec![f("description:contains:<B>")], Join::And).await,
        30
    );
    assert_eq!(
        count(vec![f("description:contains:by alice")], Join::And).await,
        15
    );
    // Time bounds are half-open.
    let sel = Selection {
        bounds: TimeBounds {
            start: Some(10_000),
            end: Some(20_000),
        },
        ..all(vec![], Join::And)
    };
    assert_eq!(s.count(&a, &sel).await.unwrap(), 10);
    let h = s
        .histogram(&a, &all(vec![], Join::And), vec![0, 10_000, 20_000, 30_000])
        .await
        .unwrap();
    assert_eq!(h, [10, 10, 10]);
    assert_eq!(s.first_event_time(&a).await.unwrap(), Some(0));
    assert_eq!(s.user_names(&a, "ali", 10).await.unwrap(), ["alice"]);
    // Another account sees none of it.
    assert_eq!(
        s.count(&acct("other"), &all(vec![], Join::And))
            .await
            .unwrap(),
        0
    );
}

async fn pages_visit_every_event_once_while_appending<B: Backend>() {
    let b = B::fresh();
    append_seqs(&b, "acme", 95, 1_000_000).await;
    let s = b.store();
    let a = acct("acme");
    let sel = all(vec![], Join::And);
    let mut after: Option<RowKey> = None;
    let mut seen = Vec::new();
    let mut round = 0;
    loop {
        let page = s.list(&a, &sel, after, 10).await.unwrap();
        seen.extend(page.records.iter().map(|r| r.seq));
        // New events (newer than everything) arrive between pages.
        append_seqs(&b, "acme", 3, 2_000_000 + round * 10).await;
        round += 1;
        match page.next {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no event twice");
    assert_eq!(
        sorted,
        (0..95).collect::<Vec<u64>>(),
        "every original event once"
    );
}

async fn workflow_scope_and_export_order<B: Backend>() {
    let b = B::fresh();
    let s = b.store();
    let a = acct("acme");
    s.append(
        &a,
        vec![
            event("Workflow Management", "Workflow deployed", 5, "alice", None),
            event("Roles", "Role created", 9, "alice", None),
            event("Workflow Management", "Workflow undeployed", 7, "bob", None),
        ],
    )
    .await
    .unwrap();
    let wf = Selection {
        scope: Scope::Workflow(WorkflowId::new("wf_1")),
        ..all(vec![], Join::And)
    };
    assert_eq!(s.count(&a, &wf).await.unwrap(), 2);
    let other_wf = Selection {
        scope: Scope::Workflow(WorkflowId::new("wf_2")),
        ..all(vec![], Join::And)
    };
    assert_eq!(s.count(&a, &other_wf).await.unwrap(), 0);
    let (n, rows) = export_seqs(&s, &a, &all(vec![], Join::And)).await;
    assert_eq!(n, 3);
    // Newest first by occurred_at: 9 ms (seq 1), 7 ms (seq 2), 5 ms (seq 0).
    assert_eq!(rows, [1, 2, 0]);
}

/// Exports `sel` and returns the count the store reported and the seqs of
/// the records handed to the sink, in order.
async fn export_seqs(s: &DynStore, a: &AccountId, sel: &Selection) -> (u64, Vec<u64>) {
    let rows = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink_rows = rows.clone();
    let n = s
        .export(
            a,
            sel,
            Box::new(move |batch| {
                sink_rows
                    .lock()
                    .unwrap()
                    .extend(batch.iter().map(|r| r.seq));
                Ok(())
            }),
        )
        .await
        .unwrap();
    let seqs = rows.lock().unwrap().clone();
    (n, seqs)
}

/// An export reads each row's own stored bytes, whether its account's rows
/// lie close together in the file (read in storage order) or far apart
/// among another account's (read by seq): the same records, bytes and leaf
/// hashes as paging through `list`.
async fn exports_read_the_rows_of_interleaved_accounts_exactly<B: Backend>() {
    let b = B::fresh();
    let s = b.store();
    // Rounds of one large and one small append per account, alternating,
    // so an export batch's rows sometimes lie close together in the file
    // and sometimes far apart among the other account's (acme's batches
    // spanning globex's 2,500-row appends).
    for round in 0..6i64 {
        let (acme, globex) = if round % 2 == 0 {
            (700, 40)
        } else {
            (60, 2500)
        };
        append_seqs(&b, "acme", acme, 1_000 + round * 10_000).await;
        append_seqs(&b, "globex", globex, 1_000 + round * 10_000).await;
    }
    for name in ["acme", "globex"] {
        let a = acct(name);
        let sel = all(vec![], Join::And);
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = s.list(&a, &sel, after, 1000).await.unwrap();
            paged.extend(page.records);
            match page.next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        let rows = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink_rows = rows.clone();
        let n = s
            .export(
                &a,
                &sel,
                Box::new(move |batch| {
                    sink_rows.lock().unwrap().extend(batch);
                    Ok(())
                }),
            )
            .await
            .unwrap();
        let exported = rows.lock().unwrap().clone();
        assert_eq!(n as usize, paged.len(), "{name}");
        assert_eq!(exported.len(), paged.len(), "{name}");
        for (e, p) in exported.iter().zip(&paged) {
            assert_eq!(
                (e.seq, &e.canonical, e.leaf_hash),
                (p.seq, &p.canonical, p.leaf_hash),
                "{name}"
            );
            let body = std::str::from_utf8(&e.canonical).unwrap();
            assert!(
                body.contains(&format!("\"seq\":{},", e.seq)),
                "{name}: {body}"
            );
        }
    }
}

/// An export walks the index in its own batches, not in pages: it must
/// still give exactly the rows and order of paging through `list`,
/// including ties on `occurred_at`, late events and description filters
/// (which the store decides by reading records).
async fn exports_equal_pages_in_order<B: Backend>() {
    let b = B::fresh();
    let s = b.store();
    let a = acct("acme");
    for round in 0..4i64 {
        let events = (0..900i64)
            .map(|i| {
                let n = round * 900 + i;
                // Four events a millisecond; every 97th arrives a second late.
                let t = 1_000_000 + n / 4 - if n % 97 == 5 { 1000 } else { 0 };
                let (c, e) = if n % 3 == 0 {
                    ("Roles", "Role created")
                } else {
                    ("Login/Logout", "Login")
                };
                event(c, e, t, ["alice", "bob", "carol"][(n % 3) as usize], None)
            })
            .collect();
        s.append(&a, events).await.unwrap();
    }
    let selections = [
        all(vec![], Join::And),
        all(vec![f("description:contains:alice")], Join::And),
        all(
            vec![f("event:eq:Login"), f("description:contains:carol")],
            Join::Or,
        ),
    ];
    for sel in selections {
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = s.list(&a, &sel, after, 100).await.unwrap();
            paged.extend(page.records.iter().map(|r| r.seq));
            match page.next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        let (n, exported) = export_seqs(&s, &a, &sel).await;
        assert!(!paged.is_empty());
        assert_eq!(n as usize, exported.len());
        assert!(exported == paged, "{:?}", sel.filters);
    }
}

async fn proofs_verify_against_the_tree_head<B: Backend>() {
    let b = B::fresh();
    append_seqs(&b, "acme", 300, 0).await;
    let s = b.store();
    let a = acct("acme");
    let head = s.tree_head(&a).await.unwrap();
    assert_eq!(head.size, 300);
    let page = s
        .list(&a, &all(vec![], Join::And), None, 1000)
        .await
        .unwrap();
    let mut leaves = vec![[0u8; 32]; 300];
    for r in &page.records {
        leaves[r.seq as usize] = r.leaf_hash;
    }
    assert_eq!(merkle::root_from_leaves(leaves.iter().copied()), head.root);
    for seq in [0u64, 1, 255, 256, 299] {
        let proof = s.inclusion_proof(&a, seq, 300).await.unwrap();
        merkle::verify_inclusion(&leaves[seq as usize], seq, 300, &proof, &head.root).unwrap();
    }
    // A tree head of an earlier size, and consistency to now.
    let old_root = merkle::root_from_leaves(leaves[..100].iter().copied());
    let proof = s.inclusion_proof(&a, 42, 100).await.unwrap();
    merkle::verify_inclusion(&leaves[42], 42, 100, &proof, &old_root).unwrap();
    let proof = s.consistency_proof(&a, 100, 300).await.unwrap();
    merkle::verify_consistency(100, 300, &old_root, &head.root, &proof).unwrap();
    // Impossible sizes are refused, not answered.
    assert!(s.inclusion_proof(&a, 300, 300).await.is_err());
    assert!(s.inclusion_proof(&a, 0, 301).await.is_err());
    assert!(s.consistency_proof(&a, 200, 100).await.is_err());
    assert!(s.inclusion_proof(&acct("other"), 0, 1).await.is_err());
}

async fn checkpoints_are_tracked<B: Backend>() {
    let b = B::fresh();
    append_seqs(&b, "acme", 3, 0).await;
    let s = b.store();
    let a = acct("acme");
    let pending = s.unsigned_heads().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].1.size, 3);
    s.put_checkpoint(&a, 3, "note-3".into()).await.unwrap();
    assert!(s.unsigned_heads().await.unwrap().is_empty());
    assert_eq!(
        s.latest_checkpoint(&a).await.unwrap().as_deref(),
        Some("note-3")
    );
    assert_eq!(s.latest_checkpoint(&acct("other")).await.unwrap(), None);
}

fn token(id: &str, hash: u8, scope: TokenScope, created_at_us: i64) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        secret_hash: [hash; 32],
        scope,
        role: Role::Read,
        created_at_us,
        expires_at_us: None,
        created_by: None,
    }
}

async fn tokens_are_found_by_hash_and_revoked<B: Backend>() {
    let b = B::fresh();
    let s = b.store();
    let mut t = token("tok_1", 7, TokenScope::Account(acct("acme")), 1);
    t.expires_at_us = Some(5_000_000);
    t.created_by = Some("tok_admin".into());
    s.create_token(t.clone()).await.unwrap();
    // Expired tokens are found: the caller decides with its clock.
    assert_eq!(s.find_token(&[7; 32]).await.unwrap(), Some(t.clone()));
    assert!(t.is_expired(5_000_000) && !t.is_expired(4_999_999));
    assert_eq!(s.find_token(&[8; 32]).await.unwrap(), None);
    // Duplicate ids are refused.
    assert!(
        s.create_token(token("tok_1", 9, TokenScope::All, 2))
            .await
            .is_err()
    );
    let acme = TokenScope::Account(acct("acme"));
    assert!(
        !s.revoke_token(Revocation::new(
            &TokenScope::Account(acct("other")),
            "tok_1",
            None,
            None,
            10
        ))
        .await
        .unwrap()
    );
    assert!(
        !s.revoke_token(Revocation::new(&TokenScope::All, "tok_1", None, None, 10))
            .await
            .unwrap()
    );
    assert!(
        s.revoke_token(Revocation::new(
            &acme,
            "tok_1",
            Some("tok_admin"),
            Some(&acct("acme")),
            10
        ))
        .await
        .unwrap()
    );
    // Effective at once, despite the cache that found it a moment ago.
    assert_eq!(s.find_token(&[7; 32]).await.unwrap(), None);
    assert!(
        !s.revoke_token(Revocation::new(&acme, "tok_1", None, None, 11))
            .await
            .unwrap()
    );
    let info = s.token_info("tok_1").await.unwrap().unwrap();
    assert_eq!(
        (
            info.revoked_at_us,
            info.revoked_by.as_deref(),
            info.expires_at_us
        ),
        (Some(10), Some("tok_admin"), Some(5_000_000))
    );
    assert_eq!(s.token_info("tok_nope").await.unwrap(), None);
    // `*` tokens are revoked with the `*` scope only.
    s.create_token(token("tok_star", 3, TokenScope::All, 2))
        .await
        .unwrap();
    assert!(s.find_token(&[3; 32]).await.unwrap().is_some());
    assert!(
        !s.revoke_token(Revocation::new(&acme, "tok_star", None, None, 12))
            .await
            .unwrap()
    );
    assert!(
        s.revoke_token(Revocation::new(
            &TokenScope::All,
            "tok_star",
            None,
            Some(&acct("acme")),
            12
        ))
        .await
        .unwrap()
    );
    assert_eq!(s.find_token(&[3; 32]).await.unwrap(), None);
}

async fn tokens_are_listed_by_scope_without_secrets<B: Backend>() {
    let b = B::fresh();
    let s = b.store();
    let acme = TokenScope::Account(acct("acme"));
    s.create_token(token("tok_b", 1, acme.clone(), 20))
        .await
        .unwrap();
    s.create_token(token("tok_a", 2, acme.clone(), 10))
        .await
        .unwrap();
    s.create_token(token("tok_g", 3, TokenScope::Account(acct("globex")), 5))
        .await
        .unwrap();
    s.create_token(token("tok_s", 4, TokenScope::All, 5))
        .await
        .unwrap();
    s.create_token(token("tok_r", 5, acme.clone(), 30))
        .await
        .unwrap();
    s.revoke_token(Revocation::new(&acme, "tok_r", None, None, 40))
        .await
        .unwrap();
    let ids = |v: Vec<auditlog_store::TokenInfo>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    // Oldest first, revoked ones left out.
    assert_eq!(ids(s.list_tokens(&acme).await.unwrap()), ["tok_a", "tok_b"]);
    assert_eq!(
        ids(s.list_tokens(&TokenScope::All).await.unwrap()),
        ["tok_s"]
    );
    assert_eq!(
        ids(s
            .list_tokens(&TokenScope::Account(acct("initech")))
            .await
            .unwrap()),
        Vec::<String>::new()
    );
}

/// "Last used" is noted on every request but written at most once per
/// `TOKEN_USE_PERSIST_EVERY`, without the caller waiting.
async fn token_use_is_persisted_at_most_once_a_minute<B: Backend>() {
    let b = B::fresh();
    let s = b.store();
    let acme = TokenScope::Account(acct("acme"));
    s.create_token(token("tok_u", 1, acme.clone(), 0))
        .await
        .unwrap();
    let last_used = || async {
        s.token_info("tok_u")
            .await
            .unwrap()
            .unwrap()
            .last_used_at_us
    };
    assert_eq!(last_used().await, None);
    let minute = 60_000_000;
    s.note_token_use("tok_u", 10 * minute);
    wait_for(|| async { last_used().await == Some(10 * minute) }).await;
    // Within the minute: not written (nothing to wait for, so check after
    // a write that queues behind it would have landed).
    s.note_token_use("tok_u", 10 * minute + 1_000);
    s.note_token_use("tok_u", 11 * minute - 1);
    s.create_token(token("tok_x", 2, acme.clone(), 0))
        .await
        .unwrap();
    assert_eq!(last_used().await, Some(10 * minute));
    s.note_token_use("tok_u", 11 * minute);
    wait_for(|| async { last_used().await == Some(11 * minute) }).await;
    // An unknown id is harmless.
    s.note_token_use("tok_nope", 11 * minute);
}

async fn wait_for<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Token changes are pending until recorded; recording appends the event
/// and marks the change in one step, once.
async fn token_changes_are_recorded_once<B: Backend>() {
    let mut b = B::fresh();
    let s = b.store();
    let a = acct("acme");
    let acme = TokenScope::Account(a.clone());
    let mut t = token("tok_e", 1, acme.clone(), 100);
    t.expires_at_us = Some(1_000);
    s.create_token(t).await.unwrap();
    s.create_token(token("tok_s", 2, TokenScope::All, 200))
        .await
        .unwrap();
    let pending = |now| {
        let s = s.clone();
        async move {
            s.pending_token_changes(now)
                .await
                .unwrap()
                .into_iter()
                .map(|p| (p.token.id, p.change, p.account.map(|a| a.to_string())))
                .collect::<Vec<_>>()
        }
    };
    let acme_s = Some("acme".to_owned());
    assert_eq!(
        pending(999).await,
        [
            ("tok_e".to_owned(), TokenChange::Created, acme_s.clone()),
            ("tok_s".to_owned(), TokenChange::Created, None),
        ]
    );
    assert_eq!(
        pending(1_000).await,
        [
            ("tok_e".to_owned(), TokenChange::Created, acme_s.clone()),
            ("tok_e".to_owned(), TokenChange::Expired, acme_s.clone()),
            ("tok_s".to_owned(), TokenChange::Created, None),
        ]
    );
    let ev = || event("Audit Logs", "Token created", 1, "x", None);
    assert!(
        s.record_token_change("tok_e", TokenChange::Created, Some((a.clone(), ev())))
            .await
            .unwrap()
    );
    // Twice, or racing: recorded once.
    let (r1, r2) = tokio::join!(
        s.record_token_change("tok_e", TokenChange::Created, Some((a.clone(), ev()))),
        s.record_token_change("tok_e", TokenChange::Created, Some((a.clone(), ev()))),
    );
    assert!(!r1.unwrap() && !r2.unwrap());
    assert_eq!(s.count(&a, &all(vec![], Join::And)).await.unwrap(), 1);
    assert!(
        s.record_token_change("tok_s", TokenChange::Created, None)
            .await
            .unwrap()
    );
    assert!(
        !s.record_token_change("tok_s", TokenChange::Created, None)
            .await
            .unwrap()
    );
    assert_eq!(
        pending(1_000).await,
        [("tok_e".to_owned(), TokenChange::Expired, acme_s.clone())]
    );
    // A `*` token revoked through an account's request: that account's log.
    s.revoke_token(Revocation::new(
        &TokenScope::All,
        "tok_s",
        Some("tok_admin"),
        Some(&acct("globex")),
        300,
    ))
    .await
    .unwrap();
    // A revoked token does not expire any more.
    s.revoke_token(Revocation::new(&acme, "tok_e", None, None, 301))
        .await
        .unwrap();
    assert_eq!(
        pending(1_000).await,
        [
            ("tok_e".to_owned(), TokenChange::Revoked, acme_s.clone()),
            (
                "tok_s".to_owned(),
                TokenChange::Revoked,
                Some("globex".to_owned())
            ),
        ]
    );
    // Pending survives a restart; recorded does too.
    b.reopen();
    let s = b.store();
    assert_eq!(s.pending_token_changes(1_000).await.unwrap().len(), 2);
    assert_eq!(s.count(&a, &all(vec![], Join::And)).await.unwrap(), 1);
    assert!(
        s.record_token_change("tok_e", TokenChange::Revoked, Some((a.clone(), ev())))
            .await
            .unwrap()
    );
    assert!(
        s.record_token_change("tok_s", TokenChange::Revoked, None)
            .await
            .unwrap()
    );
    assert!(s.pending_token_changes(i64::MAX).await.unwrap().is_empty());
}

/// A request signs its own account's head only (issue 11).
async fn one_accounts_unsigned_head<B: Backend>() {
    let b = B::fresh();
    let s = b.store();
    assert_eq!(s.unsigned_head(&acct("acme")).await.unwrap(), None);
    append_seqs(&b, "acme", 3, 0).await;
    append_seqs(&b, "globex", 2, 0).await;
    let head = s.unsigned_head(&acct("acme")).await.unwrap().unwrap();
    assert_eq!(head, s.tree_head(&acct("acme")).await.unwrap());
    s.put_checkpoint(&acct("acme"), 3, "note".into())
        .await
        .unwrap();
    assert_eq!(s.unsigned_head(&acct("acme")).await.unwrap(), None);
    assert_eq!(
        s.unsigned_head(&acct("globex"))
            .await
            .unwrap()
            .unwrap()
            .size,
        2
    );
    assert_eq!(s.unsigned_heads().await.unwrap().len(), 1);
}

/// A file as the first releases wrote it: events clustered by (account,
/// seq) in a WITHOUT ROWID table, 4 KiB pages. The store keeps such a file
/// in its layout; every behaviour must hold on it too.
struct SqliteClustered(Sqlite);

impl Backend for SqliteClustered {
    fn fresh() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conn =
            rusqlite::Connection::open(dir.path().join(auditlog_store::sqlite::DB_FILE)).unwrap();
        conn.execute_batch(
            "PRAGMA page_size=4096; PRAGMA journal_mode=WAL;
             CREATE TABLE events (
                 account INTEGER NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,
                 occurred_at INTEGER NOT NULL, event_type INTEGER NOT NULL,
                 actor_id TEXT NOT NULL, actor_name TEXT, ip_address TEXT,
                 workflow_id TEXT, idempotency_key TEXT, body TEXT NOT NULL,
                 leaf_hash BLOB NOT NULL,
                 PRIMARY KEY (account, seq)
             ) WITHOUT ROWID;",
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        SqliteClustered(Sqlite {
            dir,
            store: Some(Arc::new(store)),
        })
    }

    fn store(&self) -> DynStore {
        self.0.store()
    }

    fn reopen(&mut self) {
        self.0.reopen()
    }

    fn reopen_with(&mut self, index: auditlog_store::layered::IndexOptions) {
        self.0.reopen_with(index)
    }

    fn reopen_damaged(&mut self, index_memory: usize, damage: Damage) {
        self.0.reopen_damaged(index_memory, damage)
    }

    fn stored_segments(&self) -> usize {
        self.0.stored_segments()
    }

    fn stored_tails(&self) -> Vec<i64> {
        self.0.stored_tails()
    }

    fn sql_beside(&self, statement: &str) {
        self.0.sql_beside(statement)
    }
}

/// What the file looks like on disk, so the two suites test two layouts.
fn file_layout(dir: &std::path::Path) -> (i64, bool) {
    let conn = rusqlite::Connection::open(dir.join(auditlog_store::sqlite::DB_FILE)).unwrap();
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    let by_seq: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'events_by_seq'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (page_size, by_seq == 1)
}

/// `auditlog token revoke` writes the file while a server holds it open
/// with tokens cached: the server refuses the token within
/// `TOKEN_REVOCATION_POLL`, and the revocation is pending to be recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_by_another_process_takes_effect_within_the_poll() {
    let b = Sqlite::fresh();
    let s = b.store();
    let acme = TokenScope::Account(acct("acme"));
    s.create_token(token("tok_1", 7, acme.clone(), 1))
        .await
        .unwrap();
    auditlog_store::sqlite::create_token_offline(b.dir.path(), &token("tok_2", 8, acme, 2))
        .unwrap();
    assert!(s.find_token(&[7; 32]).await.unwrap().is_some());
    assert!(s.find_token(&[8; 32]).await.unwrap().is_some());
    let revoked =
        |id: &str| auditlog_store::sqlite::revoke_token_offline(b.dir.path(), id, 50).unwrap();
    assert_eq!(revoked("tok_2"), Some(true));
    assert_eq!(revoked("tok_2"), Some(false));
    assert_eq!(revoked("tok_nope"), None);
    let start = std::time::Instant::now();
    while s.find_token(&[8; 32]).await.unwrap().is_some() {
        assert!(
            start.elapsed() < TOKEN_REVOCATION_POLL * 5,
            "still accepted after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(s.find_token(&[7; 32]).await.unwrap().is_some());
    let changes: Vec<(String, TokenChange)> = s
        .pending_token_changes(0)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.token.id, p.change))
        .collect();
    assert!(
        changes.contains(&("tok_2".into(), TokenChange::Revoked)),
        "{changes:?}"
    );
    let listed = auditlog_store::sqlite::list_tokens_offline(b.dir.path()).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].revoked_at_us, Some(50));
}

/// A file whose `tokens` table predates expiry, "last used" and token
/// events: it opens, its tokens still work, and they do not count as new
/// changes to record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_tokens_table_gains_its_new_columns() {
    let dir = tempfile::tempdir().unwrap();
    let conn =
        rusqlite::Connection::open(dir.path().join(auditlog_store::sqlite::DB_FILE)).unwrap();
    conn.execute_batch(
        "CREATE TABLE tokens (
             id TEXT PRIMARY KEY, secret_hash BLOB NOT NULL UNIQUE, scope TEXT NOT NULL,
             role TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER);
         INSERT INTO tokens VALUES ('tok_old', zeroblob(32), 'acme', 'admin', 5, NULL);
         INSERT INTO tokens VALUES ('tok_gone', randomblob(32), 'acme', 'read', 6, 7);",
    )
    .unwrap();
    drop(conn);
    let s: DynStore = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let t = s.find_token(&[0; 32]).await.unwrap().unwrap();
    assert_eq!((t.id.as_str(), t.expires_at_us), ("tok_old", None));
    assert!(s.pending_token_changes(i64::MAX).await.unwrap().is_empty());
    s.create_token(token("tok_new", 9, TokenScope::Account(acct("acme")), 8))
        .await
        .unwrap();
    assert_eq!(s.pending_token_changes(0).await.unwrap().len(), 1);
    // The command line opening the same old-then-migrated file is fine too.
    assert_eq!(
        auditlog_store::sqlite::list_tokens_offline(dir.path())
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn new_files_are_in_write_order_and_old_files_keep_their_layout() {
    let new = Sqlite::fresh();
    assert_eq!(file_layout(new.dir.path()), (8 * 1024, true));
    let old = SqliteClustered::fresh();
    assert_eq!(file_layout(old.0.dir.path()), (4096, false));
}

/// Sustained appends keep the WAL small: the background checkpointer and
/// the writer together copy all of it, so SQLite rewinds it instead of
/// appending forever (a WAL the checkpoints never catch up with grows by
/// every byte written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_appends_keep_the_wal_bounded() {
    let b = Sqlite::fresh();
    // Four producers, so the writer always has the next group waiting.
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let store = b.store();
            tokio::spawn(async move {
                let description = "x".repeat(3000);
                for round in 0..30 {
                    let events: Vec<ValidEvent> = (0..500)
                        .map(|i| {
                            let t = (p * 100 + round) * 1000 + i;
                            let mut e = event("Login/Logout", "Login", t, "alice", None);
                            e.description = description.clone();
                            e
                        })
                        .collect();
                    store.append(&acct("acme"), events).await.unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let written = 4 * 30 * 500 * 3000;
    let wal = std::fs::metadata(
        b.dir
            .path()
            .join(format!("{}-wal", auditlog_store::sqlite::DB_FILE)),
    )
    .unwrap()
    .len();
    // The WAL file keeps its high-water mark: 8,000 frames of 8 KiB at
    // most (the writer waits for the checkpointer there), plus one group;
    // well under the 180 MB written, so it was rewound.
    assert!(
        wal <= 8000 * (8192 + 24) + (4 << 20),
        "WAL of {wal} bytes after {written} written"
    );
}

async fn reopening_rebuilds_index_and_tree_exactly<B: Backend>() {
    let mut b = B::fresh();
    append_seqs(&b, "acme", 70_000, 0).await;
    append_seqs(&b, "other", 3, 0).await;
    let a = acct("acme");
    let sel = all(vec![f("event:eq:Role created"), f("user:eq:bob")], Join::Or);
    let before = (
        b.store().tree_head(&a).await.unwrap(),
        b.store().count(&a, &sel).await.unwrap(),
        parsed(&b.store().list(&a, &sel, None, 5).await.unwrap()),
    );
    b.reopen();
    let after = (
        b.store().tree_head(&a).await.unwrap(),
        b.store().count(&a, &sel).await.unwrap(),
        parsed(&b.store().list(&a, &sel, None, 5).await.unwrap()),
    );
    assert_eq!(before.0, after.0);
    assert_eq!(before.1, after.1);
    assert_eq!(before.2, after.2);
    // And the log continues where it was.
    assert_eq!(append_seqs(&b, "acme", 1, 0).await, [70_000]);
    assert_eq!(append_seqs(&b, "other", 1, 0).await, [3]);
    // Proofs at the new size use the partial tiles of levels 0, 1 and 2
    // (70,001 leaves), rebuilt after the reopen.
    let s = b.store();
    let head = s.tree_head(&a).await.unwrap();
    assert_eq!(head.size, 70_001);
    let page = s
        .list(&a, &all(vec![], Join::And), None, 1000)
        .await
        .unwrap();
    let mut checked = 0;
    for r in page.records.iter().filter(|r| r.seq >= 69_000) {
        let seq = r.seq;
        let proof = s.inclusion_proof(&a, seq, head.size).await.unwrap();
        merkle::verify_inclusion(&r.leaf_hash, seq, head.size, &proof, &head.root).unwrap();
        checked += 1;
    }
    assert!(checked >= 100, "{checked} proofs checked");
    let proof = s.consistency_proof(&a, 70_000, 70_001).await.unwrap();
    merkle::verify_consistency(70_000, 70_001, &before.0.root, &head.root, &proof).unwrap();
}

/// Every answer the dashboard and an export ask for, for a few filter
/// shapes: what must not change whatever happens to the index segments.
async fn index_answers(s: &DynStore, a: &AccountId) -> Vec<(u64, Vec<u64>, Vec<u64>, u64)> {
    let shapes = [
        all(vec![], Join::And),
        all(vec![f("user:eq:svc")], Join::And),
        all(vec![f("user:ne:svc")], Join::And),
        all(vec![f("user:eq:u7")], Join::And),
        all(vec![f("event:eq:Role created"), f("user:eq:u3")], Join::Or),
        all(
            vec![f("ip_address:eq:10.0.0.9"), f("user:ne:svc")],
            Join::And,
        ),
        all(vec![f("workflow_id:eq:wf_2")], Join::Or),
    ];
    let mut out = Vec::new();
    for mut sel in shapes {
        sel.bounds = TimeBounds {
            start: Some(1_000_000),
            end: Some(120_000_000_000),
        };
        let count = s.count(a, &sel).await.unwrap();
        let edges: Vec<i64> = (0..=12).map(|h| h * 10_000_000_000).collect();
        let hist = s.histogram(a, &sel, edges).await.unwrap();
        let page: Vec<u64> = s
            .list(a, &sel, None, 20)
            .await
            .unwrap()
            .records
            .iter()
            .map(|r| r.seq)
            .collect();
        let exported = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let n = exported.clone();
        let total = s
            .export(
                a,
                &sel,
                Box::new(move |batch| {
                    n.fetch_add(
                        batch.iter().map(|r| r.seq).sum::<u64>(),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    Ok(())
                }),
            )
            .await
            .unwrap();
        assert_eq!(total, count);
        out.push((
            count,
            hist,
            page,
            exported.load(std::sync::atomic::Ordering::Relaxed),
        ));
    }
    out
}

/// Appends `n` events of a mix the index answers differently: three
/// events, a service account writing a fifth of the log, 13 users, 11 IP
/// addresses, 4 workflows; 800 ms apart from time 0.
async fn append_mixed(s: &DynStore, a: &AccountId, n: usize) {
    for start in (0..n).step_by(5_000) {
        let events = (start..(start + 5_000).min(n))
            .map(|i| {
                let (c, e) = match i % 5 {
                    0 => ("Roles", "Role created"),
                    1 => ("Workflow Management", "Workflow deployed"),
                    _ => ("Login/Logout", "Login"),
                };
                // One service account writes a fifth of the log.
                let user = if i % 5 == 2 {
                    "svc".to_owned()
                } else {
                    format!("u{}", i % 13)
                };
                let mut ev = event(c, e, (i as i64) * 800, &user, None);
                ev.ip_address = Some(format!("10.0.0.{}", i % 11));
                if ev.workflow_id.is_some() {
                    ev.workflow_id = Some(format!("wf_{}", i % 4));
                }
                ev
            })
            .collect();
        s.append(a, events).await.unwrap();
    }
}

/// The column index is stored as sealed segments: a restart, a memory
/// budget so small that every query loads and evicts, a crash between a
/// chunk filling and its segment being stored, and a corrupt segment
/// (columns or summary: caught by its checksum, rebuilt from the rows,
/// stored again) never change an answer.
async fn index_segments_never_change_an_answer<B: Backend>() {
    let mut b = B::fresh();
    let a = acct("acme");
    let n = 2 * 65_536 + 3_000;
    append_mixed(&b.store(), &a, n).await;
    append_seqs(&b, "other", 3, 0).await;
    let expected = index_answers(&b.store(), &a).await;
    assert!(expected.iter().all(|e| e.0 > 0), "{expected:?}");
    for (memory, damage) in [
        (usize::MAX, Damage::None),
        (0, Damage::None),
        (1 << 20, Damage::DropNewest),
        (0, Damage::FlipColumns),
        (usize::MAX, Damage::FlipSummary),
    ] {
        b.reopen_damaged(memory, damage);
        let got = index_answers(&b.store(), &a).await;
        assert_eq!(got, expected, "{memory} {damage:?}");
        let stats = b.store().index_cache_stats().unwrap();
        assert!(stats.bytes <= memory as u64, "{stats:?}");
        if memory == 0 {
            assert!(stats.loads > 0 && stats.evictions > 0, "{stats:?}");
        }
        // What was missing or unreadable is stored again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while b.stored_segments() < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(b.stored_segments(), 2, "{damage:?}");
    }
    // And the log goes on.
    assert_eq!(append_seqs(&b, "acme", 1, 0).await, [n as u64]);
}

/// A clean close stores each open account's index tail (the rows after
/// its last segment), and the next open takes it instead of reading those
/// rows: the answers are the same, also when the tail is corrupt (its
/// checksum fails: the rows are read) or stale (it starts where the
/// segments no longer end: ignored). That the open took the tail shows
/// when the rows under it are changed: its answers stay the tail's.
async fn a_stored_index_tail_stands_in_for_its_rows<B: Backend>() {
    let mut b = B::fresh();
    let a = acct("acme");
    let n = 65_536 + 3_000;
    append_mixed(&b.store(), &a, n).await;
    append_seqs(&b, "other", 3, 0).await;
    let expected = index_answers(&b.store(), &a).await;
    b.store().close().await.unwrap();
    assert_eq!(b.stored_tails(), [65_536, 0]);
    for damage in [Damage::None, Damage::FlipTail, Damage::StaleTail] {
        b.reopen_damaged(usize::MAX, damage);
        assert_eq!(index_answers(&b.store(), &a).await, expected, "{damage:?}");
        // Stored again, whole, at the next close (an account not opened
        // since keeps the tail it had, whatever became of it).
        b.store().close().await.unwrap();
        assert_eq!(b.stored_tails()[0], 65_536, "{damage:?}");
    }
    b.reopen_damaged(usize::MAX, Damage::RowsUnderTail);
    assert_eq!(index_answers(&b.store(), &a).await, expected);
    // A tail restored and unchanged since is not stored again: a mark put
    // on it while the store is open is still there after the close.
    b.sql_beside("UPDATE index_tails SET first = first + 7");
    b.store().close().await.unwrap();
    assert_eq!(b.stored_tails()[0], 65_536 + 7);
    b.sql_beside("UPDATE index_tails SET first = first - 7");
    // Without the tail, the open reads the changed rows.
    b.reopen_damaged(usize::MAX, Damage::StaleTail);
    assert_ne!(index_answers(&b.store(), &a).await, expected);
    // And the log goes on.
    assert_eq!(append_seqs(&b, "acme", 1, 0).await, [n as u64]);
}

/// An account closed to keep the open accounts within their budget stores
/// its index tail first, and its next open takes the tail instead of
/// reading its rows again (an account of fewer than 65,536 rows is all
/// tail). That the open took the tail shows when the rows under it are
/// changed: its answers stay the tail's.
async fn a_closed_account_reopens_from_its_stored_tail<B: Backend>() {
    let mut b = B::fresh();
    b.reopen_with(auditlog_store::layered::IndexOptions {
        open_accounts_memory: 0,
        ..auditlog_store::layered::IndexOptions::default()
    });
    let a = acct("acme");
    append_mixed(&b.store(), &a, 3_000).await;
    let expected = index_answers(&b.store(), &a).await;
    assert!(b.stored_tails().is_empty());
    // Writing to another account closes acme (every idle account is past
    // a budget of 0), its tail stored first.
    append_seqs(&b, "other", 1, 0).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while b.stored_tails().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(b.stored_tails(), [0]);
    b.sql_beside(&B::rename_svc_in("acme"));
    assert_eq!(index_answers(&b.store(), &a).await, expected);
    // Without the tail, the open reads the changed rows.
    b.sql_beside("DELETE FROM index_tails");
    append_seqs(&b, "other", 1, 0).await;
    assert_ne!(index_answers(&b.store(), &a).await, expected);
}

/// A query stops when its control says so: cancelled (`Unavailable`) or
/// past its deadline (`TimedOut`), for a description filter (the per-row
/// reads) and for plain scans and exports alike.
async fn queries_stop_when_cancelled_or_past_their_deadline<B: Backend>() {
    use auditlog_store::StoreErrorKind;
    use std::time::Duration;
    let b = B::fresh();
    let s = b.store();
    let a = acct("acme");
    append_seqs(&b, "acme", 300, 1_000).await;
    let sink = || Box::new(|_: Vec<auditlog_store::RawRecord>| Ok(()));
    for filters in [vec![], vec![f("description:contains:nothing")]] {
        let cancelled = QueryControl::new(None);
        cancelled.cancel();
        let late = QueryControl::new(Some(Duration::ZERO));
        for (control, kind) in [
            (cancelled, StoreErrorKind::Unavailable),
            (late, StoreErrorKind::TimedOut),
        ] {
            let sel = Selection {
                control,
                ..all(filters.clone(), Join::And)
            };
            let what = format!("{filters:?} {kind:?}");
            assert_eq!(
                s.list(&a, &sel, None, 10).await.unwrap_err().kind,
                kind,
                "{what}"
            );
            assert_eq!(s.count(&a, &sel).await.unwrap_err().kind, kind, "{what}");
            assert_eq!(
                s.histogram(&a, &sel, vec![0, 1_000_000_000])
                    .await
                    .unwrap_err()
                    .kind,
                kind,
                "{what}"
            );
            assert_eq!(
                s.export(&a, &sel, sink()).await.unwrap_err().kind,
                kind,
                "{what}"
            );
        }
        // A generous deadline changes nothing.
        let sel = Selection {
            control: QueryControl::new(Some(Duration::from_secs(60))),
            ..all(filters.clone(), Join::And)
        };
        let expected = if filters.is_empty() { 300 } else { 0 };
        assert_eq!(s.count(&a, &sel).await.unwrap(), expected);
    }
}

/// A cap on records read stops a list, a count and a histogram that would
/// read more (`TooBroad`, every time, whatever the machine's speed), lets
/// one that reads exactly the cap through, and leaves exports alone.
async fn queries_stop_past_their_cap_on_records_read<B: Backend>() {
    use auditlog_store::StoreErrorKind;
    let b = B::fresh();
    let s = b.store();
    let a = acct("acme");
    // 300 events, 100 of them "Role created" (every third).
    append_seqs(&b, "acme", 300, 1_000).await;
    let sink = || Box::new(|_: Vec<auditlog_store::RawRecord>| Ok(()));
    let capped = |filters: Vec<Filter>, max: u64| Selection {
        control: QueryControl::new(None).with_max_record_reads(Some(max)),
        ..all(filters, Join::And)
    };
    let desc = || f("description:contains:nothing");
    // Every row is a candidate: 300 reads needed.
    let sel = capped(vec![desc()], 299);
    let kind = |e: auditlog_store::StoreError| e.kind;
    assert_eq!(
        s.list(&a, &sel, None, 10).await.map_err(kind).unwrap_err(),
        StoreErrorKind::TooBroad
    );
    assert_eq!(
        s.count(&a, &sel).await.map_err(kind).unwrap_err(),
        StoreErrorKind::TooBroad
    );
    let edges = vec![0, 1_000_000_000];
    assert_eq!(
        s.histogram(&a, &sel, edges.clone())
            .await
            .map_err(kind)
            .unwrap_err(),
        StoreErrorKind::TooBroad
    );
    let e = s.count(&a, &sel).await.unwrap_err();
    assert!(e.message.contains("narrow the time range"), "{e}");
    // An export is not capped.
    assert_eq!(s.export(&a, &sel, sink()).await.unwrap(), 0);
    // Exactly the cap is allowed.
    let sel = capped(vec![desc()], 300);
    assert_eq!(s.count(&a, &sel).await.unwrap(), 0);
    assert_eq!(s.list(&a, &sel, None, 10).await.unwrap().records.len(), 0);
    // The index decides the event filter first: 100 candidates only.
    let sel = capped(vec![f("event:eq:Role created"), desc()], 100);
    assert_eq!(s.count(&a, &sel).await.unwrap(), 0);
    assert_eq!(
        s.histogram(&a, &sel, edges)
            .await
            .unwrap()
            .iter()
            .sum::<u64>(),
        0
    );
}

/// An export is the snapshot of its start: events appended while it runs
/// (here, from its own sink, between its read transactions) are not in it,
/// and the rows and their order are those of paging before it started.
async fn an_export_is_the_snapshot_of_its_start<B: Backend>() {
    let b = B::fresh();
    let s = b.store();
    let a = acct("acme");
    append_seqs(&b, "acme", 2_500, 1_000).await;
    let sel = all(vec![], Join::And);
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = s.list(&a, &sel, after, 1000).await.unwrap();
        paged.extend(page.records.iter().map(|r| r.seq));
        match page.next {
            Some(k) => after = Some(k),
            None => break,
        }
    }
    let rows = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink_rows = rows.clone();
    let writer = s.clone();
    let handle = tokio::runtime::Handle::current();
    let mut appended = false;
    let n = s
        .export(
            &a,
            &sel,
            Box::new(move |batch| {
                sink_rows
                    .lock()
                    .unwrap()
                    .extend(batch.iter().map(|r| r.seq));
                if !appended {
                    appended = true;
                    // Newer than everything: they would come first.
                    let events = (0..500)
                        .map(|i| event("Roles", "Role created", 9_000_000 + i, "carol", None))
                        .collect();
                    handle
                        .block_on(writer.append(&acct("acme"), events))
                        .unwrap();
                }
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert_eq!(n, 2_500);
    assert_eq!(*rows.lock().unwrap(), paged);
    assert_eq!(s.count(&a, &sel).await.unwrap(), 3_000);
}

/// Stamps out every test of the suite for each backend, one module per
/// backend.
macro_rules! conformance_suite {
    ($($module:ident: $backend:ident),+ ; $tests:tt) => {
        $(conformance_suite!(@one $module, $backend, $tests);)+
    };
    (@one $module:ident, $backend:ident, [$($test:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if !<super::$backend as super::Backend>::available() {
                        return;
                    }
                    super::$test::<super::$backend>().await;
                }
            )*
        }
    };
}

conformance_suite!(sqlite: Sqlite, sqlite_clustered: SqliteClustered, postgres: Postgres; [
    appends_get_dense_seqs_and_valid_leaf_hashes,
    idempotency_keys_return_the_first_record,
    concurrent_appends_share_commits_and_keep_seq_dense,
    filters_counts_and_histograms,
    pages_visit_every_event_once_while_appending,
    workflow_scope_and_export_order,
    exports_equal_pages_in_order,
    exports_read_the_rows_of_interleaved_accounts_exactly,
    proofs_verify_against_the_tree_head,
    checkpoints_are_tracked,
    tokens_are_found_by_hash_and_revoked,
    tokens_are_listed_by_scope_without_secrets,
    token_use_is_persisted_at_most_once_a_minute,
    token_changes_are_recorded_once,
    one_accounts_unsigned_head,
    an_idempotency_key_reused_for_another_event_conflicts,
    server_defaults_do_not_make_a_retry_a_conflict,
    reopening_rebuilds_index_and_tree_exactly,
    queries_stop_when_cancelled_or_past_their_deadline,
    queries_stop_past_their_cap_on_records_read,
    an_export_is_the_snapshot_of_its_start,
    index_segments_never_change_an_answer,
    a_stored_index_tail_stands_in_for_its_rows,
    a_closed_account_reopens_from_its_stored_tail,
    concurrent_first_uses_of_an_unopened_account_share_one_state,
    a_lazily_opened_account_answers_like_before,
    closed_accounts_answer_as_open_ones,
    accounts_in_use_are_never_closed,
]);
