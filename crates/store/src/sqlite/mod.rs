//! The embedded backend: one SQLite file in WAL mode, one writer thread with
//! group commit (`writer.rs`), a thread that checkpoints the WAL
//! (`wal.rs`), and a small pool of read connections (`reader.rs`).
//! [`SqliteStore`] is the layered store over it, which keeps the column
//! index per account in memory.
//!
//! Durability: every append is acknowledged only after the transaction that
//! holds it has committed with `synchronous=FULL` (the WAL is fsynced).
//! Concurrent appends queue on one channel; the writer takes everything
//! queued (up to a cap) into one transaction, so they share one fsync.
//!
//! Atomicity: events and the Merkle tiles they fill are written in the same
//! transaction, and an account's size is its number of rows, so after a
//! crash the log, the tree and the sequence agree without repair. The column
//! index and the tree's in-memory state are rebuilt from the file at
//! start-up.
//!
//! Other processes: the command line's token commands open the same file
//! (see [`create_token_offline`]); SQLite serializes the two writers, and
//! only a server's writer appends to the log.

mod dump;
mod pool;
mod reader;
mod schema;
mod tokens;
mod wal;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditlog_core::catalog::EventId;
use auditlog_core::index::IndexRow;
use auditlog_core::record::AccountId;
use rusqlite::{Connection, OpenFlags, params};

use crate::backend::{AccountKey, LogBackend};
use crate::layered::{IndexOptions, LayeredStore, Sequencer, WriteOp};
use crate::{Clock, Result, StoreError, StoreErrorKind, TokenInfo, TokenRecord};
pub use dump::SqliteDump;
pub use reader::SqliteReader;
use schema::Layout;

/// The database file inside the data directory.
pub const DB_FILE: &str = "auditlog.db";

/// Page size of a new database file. Every page a commit changes is one
/// WAL frame, written with two `pwrite` calls, and copied again by the
/// checkpoint: at 4 KiB those syscalls were a fifth of the writer's time
/// (perf). 8 and 16 KiB gave the same batch ingest (3M-event bench, runs
/// alternated); 16 KiB made each small commit write more and single events
/// a little slower (p99 +15 %). Files created with another size keep it.
const PAGE_SIZE: u32 = 8 * 1024;
/// Page cache of the writer's connection, in KiB (readers use
/// [`SqliteOptions::cache_kib`]).
const WRITER_CACHE_KIB: u32 = 4096;
/// Page cache of an export's own connection, in KiB. An export reads each
/// page once, in order (the kernel's page cache serves re-reads); with the
/// readers' cache, every concurrent export could pin that much more RSS.
const EXPORT_CACHE_KIB: i64 = 2048;

pub(super) fn sql_err(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| {
        // A full disk or a locked/unreadable file is a condition to wait
        // out, not a bug: callers answer 503 with Retry-After.
        let kind = match e.sqlite_error_code() {
            Some(
                rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::ReadOnly,
            ) => StoreErrorKind::Unavailable,
            _ => StoreErrorKind::Internal,
        };
        StoreError::with_source(kind, context, e)
    }
}

pub(super) fn internal(msg: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Internal, msg)
}

/// Tuning knobs, chosen by measurement (see ARCHITECTURE.md).
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Page cache per connection, in KiB.
    pub cache_kib: i64,
    /// Memory-mapped I/O size per connection, in bytes.
    pub mmap_bytes: i64,
    /// A fault to inject, for tests of what happens then; only in builds
    /// with the `fault-injection` feature (never in a release binary). The
    /// default comes from `AUDITLOG_TEST_FAULT` (see [`Fault::parse`]).
    #[cfg(feature = "fault-injection")]
    pub fault: Option<Fault>,
    /// The store's clock (see [`Clock`]); [`Clock::system`] by default.
    pub clock: Clock,
    /// What each account's column index may hold, and the memory of the
    /// index segments across accounts.
    pub index: IndexOptions,
}

/// A fault the store injects into itself (feature `fault-injection`).
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The writer thread commits `n` groups that append events, then
    /// panics inside the next one, with its transaction open (groups of
    /// bookkeeping alone — tokens, checkpoints — do not count).
    WriterPanicAfter(u64),
}

#[cfg(feature = "fault-injection")]
impl Fault {
    /// `writer-panic-after:N`.
    pub fn parse(s: &str) -> Option<Fault> {
        let n = s.strip_prefix("writer-panic-after:")?.parse().ok()?;
        Some(Fault::WriterPanicAfter(n))
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            // 4 MiB of page cache per read connection (at most
            // `pool::MAX_READERS` of them): the B-tree's upper pages and a
            // page's worth of records; the kernel's page cache serves the
            // rest. No mmap: mapped file pages count in the process's RSS,
            // and an export would map the whole file.
            cache_kib: 4 * 1024,
            mmap_bytes: 0,
            #[cfg(feature = "fault-injection")]
            fault: std::env::var("AUDITLOG_TEST_FAULT")
                .ok()
                .and_then(|f| Fault::parse(&f)),
            clock: Clock::system(),
            index: IndexOptions::default(),
        }
    }
}

pub(super) fn open_conn(path: &Path, opts: &SqliteOptions, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(sql_err("open database"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sql_err("set busy timeout"))?;
    // The page size applies only to a file not yet written (SQLite ignores
    // it afterwards); see PAGE_SIZE.
    let pragmas = format!(
        "PRAGMA page_size={PAGE_SIZE}; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; \
         PRAGMA cache_size=-{}; PRAGMA mmap_size={}; PRAGMA temp_store=MEMORY;",
        opts.cache_kib, opts.mmap_bytes
    );
    conn.execute_batch(&pragmas)
        .map_err(sql_err("configure database"))?;
    Ok(conn)
}

/// Opens the database of `data_dir` for the command line's token commands,
/// creating what is missing of the schema.
fn open_offline(data_dir: &Path) -> Result<Connection> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        StoreError::with_source(StoreErrorKind::Unavailable, "create data directory", e)
    })?;
    let conn = open_conn(&data_dir.join(DB_FILE), &SqliteOptions::default(), false)?;
    schema::create_schema(&conn)?;
    Ok(conn)
}

/// Creates a token directly in the database of `data_dir`: the bootstrap of
/// `auditlog token create`, which works whether or not a server is running
/// (SQLite serializes the two writers; the server reads tokens from the
/// file). Its "Token created" event is appended by the next server that
/// starts on this directory ([`Store::pending_token_changes`](crate::Store::pending_token_changes)). The command
/// line never appends to the log itself: a running server's writer owns
/// each account's sequence and tree.
pub fn create_token_offline(data_dir: &Path, token: &TokenRecord) -> Result<()> {
    tokens::insert_token(&open_offline(data_dir)?, token)
}

/// Revokes the live token `id` (any scope) in the database of `data_dir`:
/// `auditlog token revoke`. A server running on the directory stops
/// accepting it within [`TOKEN_REVOCATION_POLL`](crate::TOKEN_REVOCATION_POLL); the next server start
/// records the revocation in the log. `None` if there is no such token; otherwise whether it was
/// live (`false`: it had been revoked before).
pub fn revoke_token_offline(data_dir: &Path, id: &str, now_us: i64) -> Result<Option<bool>> {
    let conn = open_offline(data_dir)?;
    let Some(info) = tokens::read_token_info(&conn, id)? else {
        return Ok(None);
    };
    Ok(Some(
        tokens::revoke_in(&conn, info.scope.as_str(), id, None, None, now_us)? > 0,
    ))
}

/// Every token of the database of `data_dir` (revoked ones included),
/// oldest first: `auditlog token list`. Never secrets or hashes.
pub fn list_tokens_offline(data_dir: &Path) -> Result<Vec<TokenInfo>> {
    tokens::list(&open_offline(data_dir)?, None)
}

/// The embedded store: the layered store over one SQLite file.
pub type SqliteStore = LayeredStore<SqliteBackend>;

impl LayeredStore<SqliteBackend> {
    /// Opens (creating if needed) the store in `data_dir`, rebuilding the
    /// column index and tree state of every account from the file.
    pub fn open(data_dir: &Path, opts: SqliteOptions) -> Result<SqliteStore> {
        let (clock, index) = (opts.clock.clone(), opts.index);
        LayeredStore::over(SqliteBackend::open(data_dir, opts)?, clock, index)
    }
}

/// One SQLite file as a [`LogBackend`].
pub struct SqliteBackend {
    path: PathBuf,
    opts: SqliteOptions,
    layout: Layout,
    readers: pool::Readers,
    /// The catalog's stable type ids, both ways.
    event_types: Arc<HashMap<EventId, i64>>,
    by_type: HashMap<i64, EventId>,
    /// The writer's connection, until [`LogBackend::start_writer`] takes it.
    writer: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteBackend {
    /// Opens (creating if needed) the database in `data_dir`, creating
    /// what is missing of its schema. Nothing is written to the log until
    /// the writer starts.
    pub fn open(data_dir: &Path, opts: SqliteOptions) -> Result<SqliteBackend> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::with_source(StoreErrorKind::Unavailable, "create data directory", e)
        })?;
        let path = data_dir.join(DB_FILE);
        let conn = open_conn(&path, &opts, false)?;
        let layout = schema::create_schema(&conn)?;
        let event_types = schema::sync_event_types(&conn)?;
        let by_type = event_types.iter().map(|(e, t)| (*t, *e)).collect();
        Ok(SqliteBackend {
            path,
            opts,
            layout,
            readers: pool::Readers::new(),
            event_types: Arc::new(event_types),
            by_type,
            writer: Mutex::new(Some(conn)),
        })
    }

    /// Runs `f` with the writer's connection while the writer has not
    /// started (the scans of the open, as before the split: they leave the
    /// readers' caches empty), with a pooled reader's afterwards.
    /// The index columns of a row whose `occurred_at, event_type,
    /// actor_id, actor_name, ip_address, workflow_id` start at column `at`.
    fn index_row<'r>(
        &self,
        r: &'r rusqlite::Row<'_>,
        at: usize,
        what: &'static str,
    ) -> Result<IndexRow<'r>> {
        let ty: i64 = r.get(at + 1).map_err(sql_err(what))?;
        let event = *self
            .by_type
            .get(&ty)
            .ok_or_else(|| internal(format!("stored event type {ty} is not in the catalog")))?;
        let text = |i| {
            r.get_ref(at + i)
                .and_then(|v| v.as_str_or_null().map_err(Into::into))
                .map_err(sql_err(what))
        };
        Ok(IndexRow {
            occurred_at_us: r.get(at).map_err(sql_err(what))?,
            event,
            actor_id: text(2)?.ok_or_else(|| internal("stored event has no actor id"))?,
            actor_name: text(3)?,
            ip_address: text(4)?,
            workflow_id: text(5)?,
        })
    }

    fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        match writer.as_ref() {
            Some(conn) => f(conn),
            None => {
                drop(writer);
                self.with_reader(|r| f(&r.conn))
            }
        }
    }

    fn reader(&self, opts: &SqliteOptions) -> Result<SqliteReader> {
        Ok(SqliteReader {
            conn: open_conn(&self.path, opts, true)?,
            write_order: self.layout == Layout::WriteOrder,
        })
    }
}

impl LogBackend for SqliteBackend {
    type Reader = SqliteReader;

    fn accounts(&self) -> Result<Vec<(AccountId, AccountKey)>> {
        self.with_conn(|conn| {
            let rows: Vec<(i64, String)> = conn
                .prepare("SELECT id, name FROM accounts ORDER BY id")
                .and_then(|mut s| {
                    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<_, _>>()
                })
                .map_err(sql_err("list accounts"))?;
            rows.into_iter()
                .map(|(id, name)| {
                    let account = AccountId::parse(&name)
                        .map_err(|e| internal(format!("stored account name is invalid: {e}")))?;
                    Ok((account, AccountKey(id)))
                })
                .collect()
        })
    }

    /// One scan of the table in storage order (each account's rows come in
    /// seq order in both layouts), skipping the rows below `since`.
    fn scan_index_rows(
        &self,
        since: &HashMap<AccountKey, u64>,
        visit: &mut dyn FnMut(AccountKey, u64, IndexRow<'_>) -> Result<()>,
    ) -> Result<()> {
        let order = match self.layout {
            Layout::WriteOrder => "rowid",
            Layout::Clustered => "account, seq",
        };
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT account, seq, occurred_at, event_type, actor_id, actor_name, \
                     ip_address, workflow_id FROM events ORDER BY {order}"
                ))
                .map_err(sql_err("rebuild index"))?;
            let mut rows = stmt.query([]).map_err(sql_err("rebuild index"))?;
            while let Some(r) = rows.next().map_err(sql_err("rebuild index"))? {
                let account = AccountKey(r.get(0).map_err(sql_err("rebuild index"))?);
                let seq = r.get::<_, i64>(1).map_err(sql_err("rebuild index"))? as u64;
                if since.get(&account).is_some_and(|&from| seq < from) {
                    continue;
                }
                visit(account, seq, self.index_row(r, 2, "rebuild index")?)?;
            }
            Ok(())
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
        self.with_reader(|reader| {
            let mut stmt = reader
                .conn
                .prepare_cached(
                    "SELECT seq, occurred_at, event_type, actor_id, actor_name, ip_address, \
                     workflow_id FROM events WHERE account = ?1 AND seq >= ?2 AND seq < ?3 \
                     ORDER BY seq",
                )
                .map_err(sql_err(what))?;
            let to = i64::try_from(to).unwrap_or(i64::MAX);
            let mut rows = stmt
                .query(params![account.0, from as i64, to])
                .map_err(sql_err(what))?;
            while let Some(r) = rows.next().map_err(sql_err(what))? {
                let seq = r.get::<_, i64>(0).map_err(sql_err(what))? as u64;
                visit(seq, self.index_row(r, 1, what)?)?;
            }
            Ok(())
        })
    }

    fn with_reader<T>(&self, f: impl FnOnce(&SqliteReader) -> Result<T>) -> Result<T> {
        let reader = self
            .readers
            .take(pool::MAX_READERS, pool::READER_WAIT, || {
                self.reader(&self.opts)
            })?;
        f(&reader)
    }

    fn dedicated_reader(&self) -> Result<SqliteReader> {
        self.reader(&SqliteOptions {
            cache_kib: EXPORT_CACHE_KIB,
            ..self.opts.clone()
        })
    }

    fn start_writer(
        &self,
        sequencer: Sequencer,
        queue: tokio::sync::mpsc::Receiver<WriteOp>,
    ) -> Result<()> {
        let mut conn = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| internal("the writer was started already"))?;
        // The writer's working set is the right edge of each B-tree (the log
        // is append-only): a smaller cache than the readers' is enough.
        conn.execute_batch(&format!("PRAGMA cache_size=-{WRITER_CACHE_KIB}"))
            .map_err(sql_err("configure writer cache"))?;
        let wal = wal::WalCheckpoints::start(&mut conn, &self.path, &self.opts)?;
        let writer = writer::Writer {
            tx: writer::SqliteTx {
                conn,
                event_types: self.event_types.clone(),
                #[cfg(feature = "fault-injection")]
                group_appends: false,
                #[cfg(feature = "fault-injection")]
                panic_after: self.opts.fault.map(|f| match f {
                    Fault::WriterPanicAfter(n) => n,
                }),
            },
            sequencer,
            wal,
        };
        writer
            .spawn(queue)
            .map_err(|e| StoreError::with_source(StoreErrorKind::Internal, "spawn writer", e))
    }

    fn size_bytes(&self) -> Result<u64> {
        let mut total = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            if let Ok(m) = std::fs::metadata(&p) {
                total += m.len();
            }
        }
        Ok(total)
    }
}
