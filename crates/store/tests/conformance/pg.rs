//! The PostgreSQL backend under the suite: each test gets a database of its
//! own on the server named by `AUDITLOG_TEST_DATABASE_URL` (the test
//! script starts one: `scripts/postgres.sh`), dropped afterwards. Without
//! that variable the PostgreSQL tests say so and pass locally, and fail in
//! CI (`CI=true`): they are never skipped quietly there.

use std::sync::Arc;

use auditlog_store::DynStore;
use auditlog_store::postgres::{PgOptions, PostgresStore};

use super::Backend;

/// The server's URL, or `None` (said on stderr) when no server is
/// configured outside CI.
pub fn server_url() -> Option<String> {
    match std::env::var("AUDITLOG_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "AUDITLOG_TEST_DATABASE_URL is not set: CI must run the PostgreSQL tests \
             (scripts/test.sh starts a server with scripts/postgres.sh)"
        ),
        _ => {
            eprintln!(
                "SKIPPED: PostgreSQL test (set AUDITLOG_TEST_DATABASE_URL, e.g. \
                 `eval \"$(bash scripts/postgres.sh)\"`)"
            );
            None
        }
    }
}

/// Runs blocking database work off the async test's worker: the store's
/// synchronous calls refuse to run inside an async task.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

/// Runs `sql` on the server's maintenance database.
fn admin(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    off_runtime(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("the test database server is reachable");
            tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap();
        });
    });
}

/// A database created for one test, dropped with it.
pub struct TestDb {
    server: String,
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn create() -> Option<TestDb> {
        let server = server_url()?;
        let name = format!("auditlog_t_{:016x}", rand::random::<u64>());
        admin(&server, &format!("CREATE DATABASE {name}"));
        let url = with_dbname(&server, &name);
        Some(TestDb { server, name, url })
    }

    pub fn sql(&self, sql: &str) {
        admin(&self.url, sql);
    }
}

/// `url` with its database replaced by `name`.
fn with_dbname(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

pub fn open(url: &str, opts: PgOptions) -> auditlog_store::Result<PostgresStore> {
    let url = url.to_owned();
    off_runtime(move || PostgresStore::open(&url, opts))
}

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
