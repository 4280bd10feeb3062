//! The PostgreSQL backend under the suite (each test on a database of its
//! own: see `auditlog_store::postgres::testing`), and what only this
//! backend has: migrations, durability settings, partitions, several
//! processes on one database.

use std::sync::Arc;

use auditlog_store::postgres::testing::{TestDb, off_runtime, open, server_url};
use auditlog_store::postgres::{PgOptions, PostgresStore};
use auditlog_store::{DynStore, Store};

use super::Backend;

pub struct Postgres {
    store: Option<DynStore>,
    db: TestDb,
}

impl Backend for Postgres {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_on_an_account_stops_rather_than_fork_the_log() {
    let Some(db) = TestDb::create() else { return };
    let a = super::acct("acme");
    let ev = |t| super::event("Login/Logout", "Login", t, "alice", None);
    let first = open(&db.url, PgOptions::default()).unwrap();
    first.append(&a, vec![ev(1)]).await.unwrap();
    let second = open(&db.url, PgOptions::default()).unwrap();
    // The first appends again: the second's view of the account is now
    // behind the database.
    first.append(&a, vec![ev(2)]).await.unwrap();
    let e = second.append(&a, vec![ev(3)]).await.unwrap_err();
    assert_eq!(e.kind, auditlog_store::StoreErrorKind::Unavailable, "{e}");
    let failed = tokio::time::timeout(std::time::Duration::from_secs(10), second.failed())
        .await
        .expect("the second store reports that it must restart");
    assert!(failed.message.contains("not at size 1"), "{failed}");
    assert!(second.ready().await.is_err());
    drop(second);
    assert_eq!(
        db.rows("SELECT seq FROM events ORDER BY seq"),
        vec![vec![Some("0".to_owned())], vec![Some("1".to_owned())]]
    );
    // Restarted, it catches up and appends after the first's events.
    let second = open(&db.url, PgOptions::default()).unwrap();
    let appended = second.append(&a, vec![ev(3)]).await.unwrap();
    assert_eq!(appended[0].record.body.seq, 2);
    first.append(&a, vec![ev(4)]).await.unwrap_err();
}
