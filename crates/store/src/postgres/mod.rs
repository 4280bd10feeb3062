//! The PostgreSQL backend: the log in a database that several `auditlog
//! serve` instances may share (spec §10). [`PostgresStore`] is the layered
//! store over it, which keeps the column index per account in memory as
//! over SQLite.
//!
//! Driver: `tokio-postgres` with a `deadpool-postgres` pool. The seam's
//! traits are synchronous (they run on `spawn_blocking` threads and on the
//! backend's writer thread), so the backend owns a small multi-threaded
//! tokio runtime of its own ([`PgRuntime`]) and every call is
//! `Handle::block_on` of the driver's future on the calling thread: the
//! connections' protocol tasks run on the runtime's two workers, whatever
//! the caller's runtime is doing (or if it has none: the writer thread, the
//! command line). Borrowing the server's runtime instead would tie the
//! database's I/O to HTTP workers that may be saturated, and would not
//! exist at all for a synchronous caller. The rule that follows: no method
//! of this module may be called from inside an async task (tokio refuses
//! `block_on` there); open the store with [`PostgresStore::open`] on a
//! blocking thread (or [`PostgresStore::open_async`]).
//!
//! Durability: an append is acknowledged after `COMMIT` returns, with the
//! server's `synchronous_commit` on (refused at start, as `fsync=off` is,
//! unless [`PgOptions::allow_unsafe_durability`]). The writer groups
//! queued ops into one transaction, as SQLite's does. An error on `COMMIT`
//! leaves the outcome unknown: the next group catches up on whatever did
//! commit, and the client's retry with its idempotency key finds it.
//!
//! Several instances: any number may serve one database. Appends lock the
//! account's head row (see `writer.rs`); every read first compares the
//! committed size with the index it holds and catches up when behind, so
//! what one instance acknowledged is in the next read of any other. Each
//! instance also announces its committed appends on a channel the others
//! `LISTEN` on (`listen.rs`), and they pull the rows into the accounts
//! they have open before a read has to (`layered/wake.rs`). Each index
//! segment is stored once: under a per-account advisory lock, the first
//! instance writes it and the others find the same bytes and adopt them.
//!
//! Schema and partitions: `schema.rs`; rows and group commit: `writer.rs`;
//! reads: `reader.rs`; tokens: `tokens.rs`.

mod copy;
mod listen;
mod load;
mod reader;
mod schema;
#[cfg(feature = "testing")]
pub mod testing;
mod tokens;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use auditlog_core::catalog::EventId;
use auditlog_core::index::IndexRow;
use auditlog_core::record::AccountId;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::backend::{AccountKey, LogBackend};
use crate::layered::{IndexOptions, LayeredStore, Sequencer, WriteOp};
use crate::{Clock, Result, StoreError, StoreErrorKind, TokenInfo, TokenRecord};
pub use load::PgLoad;
pub use reader::PgReader;
pub use schema::SCHEMA_VERSION;

/// Rows of the index scan fetched per round trip at open: bounds the memory
/// a scan of a large database takes in flight.
const SCAN_BATCH: i32 = 20_000;

/// How the writer sends a group's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchWrite {
    /// One binary `COPY … FROM STDIN` per group.
    Copy,
    /// One `INSERT … SELECT FROM unnest(arrays)` per group.
    Insert,
}

/// Options of the PostgreSQL backend.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// The store's clock (see [`Clock`]): `recorded_at` when
    /// [`PgOptions::database_clock`] is off, and the month whose partitions
    /// are created ahead.
    pub clock: Clock,
    /// `recorded_at` from the database's clock (`clock_timestamp()`, read
    /// under the appended accounts' locks): one clock for every instance.
    /// Off, tests pin [`PgOptions::clock`]. Either way `recorded_at` never
    /// goes back as `seq` grows (the head row keeps the latest).
    pub database_clock: bool,
    /// What each account's column index may hold in memory.
    pub index: IndexOptions,
    /// Pooled connections for reads (the writer has its own).
    pub pool_size: usize,
    /// How long a connection attempt, or a wait for a pooled connection,
    /// may take before the caller is answered "unavailable" (503).
    pub connect_timeout: Duration,
    /// Start even if the server runs with `fsync=off` or
    /// `synchronous_commit=off` (an acknowledged event could then be lost).
    pub allow_unsafe_durability: bool,
    /// How a group's rows are sent; see [`BatchWrite`].
    pub batch_write: BatchWrite,
    /// Listen for other processes' token revocations (a server; not the
    /// command line's one-shot commands).
    pub listen_for_revocations: bool,
    /// Listen for appends (every process's group commits notify them) and
    /// pull their rows into the open accounts' indexes in the background,
    /// so a read after another instance's write finds its index up to date
    /// (a server; tests turn it off to show reads do not depend on it).
    pub wake_on_appends: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            clock: Clock::system(),
            database_clock: true,
            index: IndexOptions::default(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            allow_unsafe_durability: false,
            batch_write: BatchWrite::Copy,
            listen_for_revocations: true,
            wake_on_appends: true,
        }
    }
}

/// The backend's own tokio runtime, shut down without blocking when the
/// last holder lets go (which may be inside an async task: a store dropped
/// by a test or by the server's shutdown).
pub(crate) struct PgRuntime(Option<tokio::runtime::Runtime>);

impl PgRuntime {
    fn new() -> Result<Arc<PgRuntime>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("auditlog-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::with_source(StoreErrorKind::Internal, "start runtime", e))?;
        Ok(Arc::new(PgRuntime(Some(rt))))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("runtime lives until drop").handle()
    }

    /// Runs `fut` to completion on the calling thread (never an async
    /// task's: see the module doc).
    pub(crate) fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.0
            .as_ref()
            .expect("runtime lives until drop")
            .block_on(fut)
    }
}

impl Drop for PgRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Maps a driver error: the database unreachable, restarting, out of
/// connections or a transaction to retry is a condition to wait out (503
/// with Retry-After); anything else is a bug or corrupt data.
pub(crate) fn pg_err(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| {
        if is_transient(&e) {
            StoreError::with_source(StoreErrorKind::Unavailable, context, e)
        } else {
            // The database's words go into the message: a group's error is
            // copied to every op of the group without its source, and
            // clients see "internal error" whatever it says.
            let message = match e.as_db_error() {
                Some(db) => format!("{context}: {}: {}", db.code().code(), db.message()),
                None => format!("{context}: {e}"),
            };
            StoreError::with_source(StoreErrorKind::Internal, message, e)
        }
    }
}

fn is_transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // 08: connection exception; 53: insufficient resources; 57P:
        // operator intervention (shutdown, cannot connect now); 58: system
        // error (I/O); 40001/40P01: serialization failure, deadlock; 25006:
        // read-only transaction (a standby during failover).
        Some(code) => {
            let c = code.code();
            ["08", "53", "57P", "58"].iter().any(|p| c.starts_with(p))
                || ["40001", "40P01", "25006"].contains(&c)
        }
        // No SQLSTATE: the socket failed or timed out.
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

pub(crate) fn pool_err(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg_err("connect to the database")(e),
        other => StoreError::with_source(
            StoreErrorKind::Unavailable,
            "no database connection available",
            other,
        ),
    }
}

pub(crate) fn internal(msg: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Internal, msg)
}

/// Everything the backend's parts share.
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) rt: Arc<PgRuntime>,
    pub(crate) pool: Pool,
}

impl Db {
    fn connect(config: &tokio_postgres::Config, size: usize, opts: &PgOptions) -> Result<Db> {
        let rt = PgRuntime::new()?;
        let pool = pool(config, size, opts)?;
        Ok(Db { rt, pool })
    }

    /// A pooled connection.
    pub(crate) fn get(&self) -> Result<Object> {
        self.rt.block_on(self.pool.get()).map_err(pool_err)
    }
}

fn pool(config: &tokio_postgres::Config, size: usize, opts: &PgOptions) -> Result<Pool> {
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            // A broken connection is noticed by its first failed query;
            // checking each one out with a round trip would cost more.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(opts.connect_timeout))
        .create_timeout(Some(opts.connect_timeout))
        .recycle_timeout(Some(opts.connect_timeout))
        .build()
        .map_err(|e| StoreError::with_source(StoreErrorKind::Internal, "build pool", e))
}

/// Creates a token directly in the database at `url`: the bootstrap of
/// `auditlog token create --database-url`, whether or not servers run on
/// it. Its "Token created" event is appended by the next server that
/// starts (or by a running one's recorder); the command line never appends
/// to a log itself. On a blocking thread only.
pub fn create_token_offline(url: &str, token: &TokenRecord) -> Result<()> {
    let backend = PgBackend::open(url, offline_options())?;
    let conn = backend.db.get()?;
    backend.db.rt.block_on(tokens::insert(&conn, token))
}

/// Revokes the live token `id` (any scope) in the database at `url`:
/// `auditlog token revoke --database-url`. Running servers stop accepting
/// it within [`TOKEN_REVOCATION_POLL`](crate::TOKEN_REVOCATION_POLL).
/// `None` if there is no such token; otherwise whether it was live.
pub fn revoke_token_offline(url: &str, id: &str, now_us: i64) -> Result<Option<bool>> {
    let backend = PgBackend::open(url, offline_options())?;
    let Some(info) = backend.with_reader(|r| tokens::token_info(r, id))? else {
        return Ok(None);
    };
    let conn = backend.db.get()?;
    let revoked = backend.db.rt.block_on(tokens::revoke(
        &conn,
        info.scope.as_str(),
        id,
        None,
        None,
        now_us,
    ))?;
    Ok(Some(revoked))
}

/// Every token of the database at `url` (revoked ones included), oldest
/// first: `auditlog token list --database-url`. Never secrets or hashes.
pub fn list_tokens_offline(url: &str) -> Result<Vec<TokenInfo>> {
    PgBackend::open(url, offline_options())?.with_reader(tokens::list_all)
}

/// Options of the command line's token commands: two connections, and no
/// durability check (it guards acknowledged events, which they never
/// write; a server refuses such a database when it starts).
fn offline_options() -> PgOptions {
    PgOptions {
        pool_size: 2,
        allow_unsafe_durability: true,
        listen_for_revocations: false,
        wake_on_appends: false,
        ..PgOptions::default()
    }
}

/// The PostgreSQL store: the layered store over one database.
pub type PostgresStore = LayeredStore<PgBackend>;

impl LayeredStore<PgBackend> {
    /// Connects to `url`, migrates the schema, checks durability settings,
    /// and rebuilds the column index and tree state of every account. On a
    /// blocking thread only (see the module doc).
    pub fn open(url: &str, opts: PgOptions) -> Result<PostgresStore> {
        let (clock, index) = (opts.clock.clone(), opts.index);
        LayeredStore::over(PgBackend::open(url, opts)?, clock, index)
    }

    /// [`PostgresStore::open`] from an async task (on a blocking thread).
    pub async fn open_async(url: String, opts: PgOptions) -> Result<PostgresStore> {
        tokio::task::spawn_blocking(move || PostgresStore::open(&url, opts))
            .await
            .map_err(|e| internal(format!("open task failed: {e}")))?
    }
}

/// One PostgreSQL database as a [`LogBackend`].
pub struct PgBackend {
    db: Db,
    /// The writer's own pool of one connection: readers can never take
    /// the connection the writer needs, nor the writer theirs.
    writer_db: Db,
    /// Connections of exports (long walks that must not hold a reader's).
    export_pool: Pool,
    opts: PgOptions,
    event_types: Arc<HashMap<EventId, i32>>,
    by_type: HashMap<i32, EventId>,
    partitions: Arc<schema::Partitions>,
    /// Bumped by every revocation notified (see `listen.rs`); `None` for
    /// the command line's one-shot commands.
    revocations: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Called with each account another process appended to, once the
    /// layer sets it (see `listen.rs`); `None`: not listened for.
    appends: Option<Arc<std::sync::OnceLock<crate::backend::AppendWake>>>,
    /// Where the writer leaves its committed appends for the listener's
    /// connection to notify; `None`: no listener.
    announce: Option<Arc<listen::Announce>>,
    config: tokio_postgres::Config,
    /// The session holding the checkpoint signer's advisory lock, while
    /// this process holds it.
    signer: std::sync::Mutex<Option<tokio_postgres::Client>>,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend").finish_non_exhaustive()
    }
}

/// Parses `url` (`postgres://…` or `host=… dbname=…`), with the options'
/// timeouts.
fn config(url: &str, opts: &PgOptions) -> Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
        StoreError::with_source(StoreErrorKind::Invalid, "parse the database URL", e)
    })?;
    // With several hosts (`host=a,b`, a failover pair) the driver tries
    // them in turn, each with the whole connect timeout, while the pool
    // gives up on the attempt after `connect_timeout` in all: a first host
    // that is gone (its machine off, no refusal) would use all of it, and
    // the second, the new primary, would never be tried. Each host gets an
    // equal share instead (a TCP connect on a LAN takes milliseconds).
    let hosts = config.get_hosts().len().max(config.get_hostaddrs().len());
    let share = opts.connect_timeout / u32::try_from(hosts.max(1)).unwrap_or(u32::MAX);
    config.connect_timeout(share.max(MIN_HOST_CONNECT_TIMEOUT));
    config.application_name("auditlog");
    // `CREATE … IF NOT EXISTS` of a partition that exists is a NOTICE,
    // which the driver would log at info on every start.
    config.options("-c client_min_messages=warning");
    // A peer that is gone (a machine lost, a network cut) is noticed by
    // the kernel rather than a request hanging on it: data unacknowledged
    // for `DEAD_PEER_TIMEOUT` closes the connection (TCP would otherwise
    // retransmit for about 15 minutes), and an idle connection (the
    // LISTEN one, the signer's) is probed after 30 s.
    config.tcp_user_timeout(DEAD_PEER_TIMEOUT);
    config.keepalives_idle(Duration::from_secs(30));
    config.keepalives_interval(Duration::from_secs(5));
    config.keepalives_retries(3);
    Ok(config)
}

/// The least time one host of several gets to accept a connection (see
/// [`config`]).
const MIN_HOST_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long sent data may stay unacknowledged before the connection is
/// given up (`TCP_USER_TIMEOUT`): far above a round trip to a database on
/// the same network, and short enough that a writer whose database machine
/// died moves on to the new primary within it. A slow query is not cut:
/// the server's kernel acknowledges the query while it runs.
const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(15);

impl PgBackend {
    /// Connects, runs the migrations the database lacks (under an advisory
    /// lock: instances may start together), refuses unsafe durability
    /// settings, and creates the months' partitions ahead.
    pub fn open(url: &str, opts: PgOptions) -> Result<PgBackend> {
        let config = config(url, &opts)?;
        let db = Db::connect(&config, opts.pool_size.max(1), &opts)?;
        let writer_db = Db {
            rt: db.rt.clone(),
            pool: pool(&config, 1, &opts)?,
        };
        let export_pool = pool(&config, 64, &opts)?;
        let conn = db.get()?;
        db.rt.block_on(async {
            if !opts.allow_unsafe_durability {
                schema::check_durability(&conn).await?;
            }
            schema::migrate(&conn).await
        })?;
        let partitions = Arc::new(schema::Partitions::default());
        let event_types = db.rt.block_on(async {
            partitions
                .ensure_ahead(&conn, opts.clock.now().as_microsecond())
                .await?;
            schema::sync_event_types(&conn).await
        })?;
        drop(conn);
        let by_type = event_types.iter().map(|(e, t)| (*t, *e)).collect();
        let revocations = opts
            .listen_for_revocations
            .then(|| Arc::new(std::sync::atomic::AtomicU64::new(0)));
        let appends = opts.wake_on_appends.then(Default::default);
        // A server's listener also announces its appends to the others
        // (whether or not it listens for theirs).
        let announce = (revocations.is_some() || appends.is_some()).then(|| {
            let announce = Arc::new(listen::Announce::default());
            let listeners = listen::Listeners {
                revocations: revocations.clone(),
                appends: Option::clone(&appends),
                announce: announce.clone(),
            };
            listen::spawn(db.rt.handle(), config.clone(), listeners);
            announce
        });
        Ok(PgBackend {
            db,
            writer_db,
            export_pool,
            opts,
            event_types: Arc::new(event_types),
            by_type,
            partitions,
            revocations,
            appends,
            announce,
            config,
            signer: std::sync::Mutex::new(None),
        })
    }
}

impl PgBackend {
    /// The index columns of a row whose `occurred_at, event_type,
    /// actor_id, actor_name, ip_address, workflow_id` start at column `at`.
    fn index_row<'r>(&self, r: &'r tokio_postgres::Row, at: usize) -> Result<IndexRow<'r>> {
        let ty: i32 = r.get(at + 1);
        let event = *self
            .by_type
            .get(&ty)
            .ok_or_else(|| internal(format!("stored event type {ty} is not in the catalog")))?;
        Ok(IndexRow {
            occurred_at_us: r.get(at),
            event,
            actor_id: r.get(at + 2),
            actor_name: r.get(at + 3),
            ip_address: r.get(at + 4),
            workflow_id: r.get(at + 5),
        })
    }
}

impl LogBackend for PgBackend {
    type Reader = PgReader;

    fn accounts(&self) -> Result<Vec<(AccountId, AccountKey)>> {
        let conn = self.db.get()?;
        let rows = self
            .db
            .rt
            .block_on(conn.query(
                "SELECT account_id, name FROM accounts ORDER BY account_id",
                &[],
            ))
            .map_err(pg_err("list accounts"))?;
        rows.iter()
            .map(|r| {
                let name: &str = r.get(1);
                let account = AccountId::parse(name)
                    .map_err(|e| internal(format!("stored account name is invalid: {e}")))?;
                Ok((account, AccountKey(r.get(0))))
            })
            .collect()
    }

    /// One ordered scan (account, seq) through a portal, fetched in
    /// batches; for an account in `since`, from that seq on (the primary
    /// key serves both).
    fn scan_index_rows(
        &self,
        since: &HashMap<AccountKey, u64>,
        visit: &mut dyn FnMut(AccountKey, u64, IndexRow<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut conn = self.db.get()?;
        let rt = self.db.rt.clone();
        rt.block_on(async {
            let tx = conn
                .build_transaction()
                .read_only(true)
                .start()
                .await
                .map_err(pg_err("rebuild index"))?;
            let portal = tx
                .bind(
                    "SELECT account_id, seq, occurred_at, event_type, actor_id, actor_name, \
                     ip_address, workflow_id FROM events ORDER BY account_id, seq",
                    &[],
                )
                .await
                .map_err(pg_err("rebuild index"))?;
            loop {
                let rows = tx
                    .query_portal(&portal, SCAN_BATCH)
                    .await
                    .map_err(pg_err("rebuild index"))?;
                for r in &rows {
                    let account = AccountKey(r.get(0));
                    let seq = r.get::<_, i64>(1) as u64;
                    if since.get(&account).is_some_and(|&from| seq < from) {
                        continue;
                    }
                    visit(account, seq, self.index_row(r, 2)?)?;
                }
                if rows.len() < SCAN_BATCH as usize {
                    break;
                }
            }
            tx.commit().await.map_err(pg_err("rebuild index"))
        })
    }

    fn index_rows(
        &self,
        account: AccountKey,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(u64, IndexRow<'_>) -> Result<()>,
    ) -> Result<()> {
        let what = "read index rows";
        let mut conn = self.db.get()?;
        let rt = self.db.rt.clone();
        let to = i64::try_from(to).unwrap_or(i64::MAX);
        rt.block_on(async {
            let tx = conn
                .build_transaction()
                .read_only(true)
                .start()
                .await
                .map_err(pg_err(what))?;
            let portal = tx
                .bind(
                    "SELECT seq, occurred_at, event_type, actor_id, actor_name, ip_address, \
                     workflow_id FROM events WHERE account_id = $1 AND seq >= $2 AND seq < $3 \
                     ORDER BY seq",
                    &[&account.0, &(from as i64), &to],
                )
                .await
                .map_err(pg_err(what))?;
            loop {
                let rows = tx
                    .query_portal(&portal, SCAN_BATCH)
                    .await
                    .map_err(pg_err(what))?;
                for r in &rows {
                    visit(r.get::<_, i64>(0) as u64, self.index_row(r, 1)?)?;
                }
                if rows.len() < SCAN_BATCH as usize {
                    break;
                }
            }
            tx.commit().await.map_err(pg_err(what))
        })
    }

    fn with_reader<T>(&self, f: impl FnOnce(&PgReader) -> Result<T>) -> Result<T> {
        let reader = PgReader {
            conn: self.db.get()?,
            rt: self.db.rt.clone(),
            ahead: Default::default(),
        };
        f(&reader)
    }

    fn dedicated_reader(&self) -> Result<PgReader> {
        let conn = self
            .db
            .rt
            .block_on(self.export_pool.get())
            .map_err(pool_err)?;
        Ok(PgReader {
            conn,
            rt: self.db.rt.clone(),
            ahead: Default::default(),
        })
    }

    fn start_writer(
        &self,
        sequencer: Sequencer,
        queue: tokio::sync::mpsc::Receiver<WriteOp>,
    ) -> Result<()> {
        let mut tx = writer::PgTx::new(
            self.writer_db.clone(),
            self.event_types.clone(),
            self.partitions.clone(),
            &self.opts,
        );
        tx.appends = self.announce.clone();
        writer::spawn(tx, sequencer, queue)
            .map_err(|e| StoreError::with_source(StoreErrorKind::Internal, "spawn writer", e))
    }

    /// Any number of instances may serve one database.
    fn several_appenders(&self) -> bool {
        true
    }

    /// The holder of a session-level advisory lock, on a connection of its
    /// own kept open while it leads: if the process dies, the database
    /// ends its session and the lock passes at another's next try.
    fn lead_checkpoints(&self) -> Result<bool> {
        let mut signer = self.signer.lock().unwrap_or_else(|e| e.into_inner());
        if signer.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(true);
        }
        *signer = None;
        let config = self.config.clone();
        let client = self.db.rt.block_on(async move {
            let (client, conn) = config.connect(NoTls).await?;
            tokio::spawn(conn);
            let led: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&schema::SIGNER_LOCK])
                .await?
                .get(0);
            Ok::<_, tokio_postgres::Error>(led.then_some(client))
        });
        *signer = client.map_err(pg_err("elect the checkpoint signer"))?;
        Ok(signer.is_some())
    }

    fn revocations_notified(&self) -> Option<u64> {
        self.revocations
            .as_ref()
            .map(|e| e.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn on_appends(&self, wake: crate::backend::AppendWake) -> bool {
        match &self.appends {
            Some(to) => to.set(wake).is_ok(),
            None => false,
        }
    }

    fn size_bytes(&self) -> Result<u64> {
        let conn = self.db.get()?;
        let row = self
            .db
            .rt
            .block_on(conn.query_one("SELECT pg_database_size(current_database())", &[]))
            .map_err(pg_err("read database size"))?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{PgOptions, config};

    /// Regression (the failover test): with several hosts each got the
    /// whole connect timeout, so a silent first host used up the pool's
    /// attempt and the promoted second one was never tried.
    #[test]
    fn each_host_gets_a_share_of_the_connect_timeout() {
        let opts = PgOptions {
            connect_timeout: Duration::from_secs(5),
            ..PgOptions::default()
        };
        let timeout = |url: &str| *config(url, &opts).unwrap().get_connect_timeout().unwrap();
        assert_eq!(timeout("postgres://u@a/db"), Duration::from_secs(5));
        assert_eq!(
            timeout("postgres://u@a:1,b:2/db?target_session_attrs=read-write"),
            Duration::from_millis(2500)
        );
        assert_eq!(
            timeout("host=a,b,c port=1,2,3 user=u dbname=db"),
            Duration::from_secs(5) / 3
        );
        // Never below a second per host, however many there are.
        let many = (0..10)
            .map(|i| format!("h{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            timeout(&format!("host={many} user=u")),
            Duration::from_secs(1)
        );
    }
}
