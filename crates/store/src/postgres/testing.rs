//! Test support (feature `testing`, enabled by the workspace's test
//! builds, never by a release build): a database of its own for each test
//! on the server named by `AUDITLOG_TEST_DATABASE_URL` (the test script
//! starts one: `scripts/postgres.sh`), dropped afterwards. Without that
//! variable the PostgreSQL tests say so and pass locally, and fail in CI
//! (`CI=true`): they are never skipped quietly there.

use super::{PgOptions, PostgresStore};

/// The key of the checkpoint signer's advisory lock, for tests that look
/// for its holder in `pg_locks`.
pub const SIGNER_LOCK: i64 = super::schema::SIGNER_LOCK;

/// The `application_name` of each instance's listening connection (token
/// revocations, appends), for tests that look for it in `pg_stat_activity`.
pub const LISTENER_NAME: &str = super::listen::APPLICATION_NAME;

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

    /// The rows of `sql` in this database, every value as text.
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let (url, sql) = (self.url.clone(), sql.to_owned());
        off_runtime(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                client
                    .simple_query(&sql)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                        }
                        _ => None,
                    })
                    .collect()
            })
        })
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

/// Opens a store on `url` off the async runtime (see [`off_runtime`]).
pub fn open(url: &str, opts: PgOptions) -> crate::Result<PostgresStore> {
    let url = url.to_owned();
    off_runtime(move || PostgresStore::open(&url, opts))
}
