//! The embedded backend: one SQLite file in WAL mode, one writer thread with
//! group commit, a small pool of read connections, and the in-memory column
//! index per account.
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use auditlog_core::catalog::{Catalog, EventId};
use auditlog_core::index::{
    IndexLimits, IndexRow, LogIndex, RowFields, RowKey, Scope as IndexScope,
};
use auditlog_core::merkle::{self, Hash, TileReader, TreeState};
use auditlog_core::record::{
    AccountId, CanonicalHead, CanonicalParts, CanonicalTail, Micros, Record, RecordBody,
};
use auditlog_core::validate::ValidEvent;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::{
    Appended, Page, PendingTokenChange, QueryWatch, RawRecord, RawSink, Result, Role, Scope,
    Selection, Store, StoreError, StoreErrorKind, TOKEN_REVOCATION_POLL, TOKEN_USE_PERSIST_EVERY,
    TokenChange, TokenInfo, TokenRecord, TokenScope, TreeHead,
};

/// The database file inside the data directory.
pub const DB_FILE: &str = "auditlog.db";

/// Most operations one group commit takes; bounded so one commit's latency
/// stays predictable under a flood.
const MAX_GROUP_OPS: usize = 256;
/// Most events one group commit takes (a batch larger than this still goes
/// through alone: batches are never split).
const MAX_GROUP_EVENTS: usize = 20_000;
/// Page size of a new database file. Every page a commit changes is one
/// WAL frame, written with two `pwrite` calls, and copied again by the
/// checkpoint: at 4 KiB those syscalls were a fifth of the writer's time
/// (perf). 8 and 16 KiB gave the same batch ingest (3M-event bench, runs
/// alternated); 16 KiB made each small commit write more and single events
/// a little slower (p99 +15 %). Files created with another size keep it.
const PAGE_SIZE: u32 = 8 * 1024;
/// Rows fetched per export batch.
const EXPORT_BATCH: usize = 1000;
/// Page cache of the writer's connection, in KiB (readers use
/// [`SqliteOptions::cache_kib`]).
const WRITER_CACHE_KIB: u32 = 4096;
/// Page cache of an export's own connection, in KiB. An export reads each
/// page once, in order (the kernel's page cache serves re-reads); with the
/// readers' 16 MiB, every concurrent export could pin that much more RSS.
const EXPORT_CACHE_KIB: i64 = 2048;

const SCHEMA: &str = r#"
-- An account's size is its number of events (seqs are dense from 0).
CREATE TABLE IF NOT EXISTS accounts (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);
-- Stable small ids for (level, category, event); the catalog's own order may
-- change between versions, these ids never do.
CREATE TABLE IF NOT EXISTS event_types (
    id        INTEGER PRIMARY KEY,
    level     TEXT NOT NULL,
    category  TEXT NOT NULL,
    event     TEXT NOT NULL,
    UNIQUE (level, category, event)
);
-- The log, in the order it was written (the implicit rowid): every insert
-- lands at the end of the table, which SQLite does without a search or a
-- page rebalance (measured: 25-30 % less insert time than a table clustered
-- by (account, seq)). A record is found by its position, which is what the
-- column index yields, through `events_by_seq` (see `create_schema`).
-- `body` is the canonical JSON the Merkle leaf commits to; the other columns
-- are what the index is rebuilt from at start-up.
CREATE TABLE IF NOT EXISTS events (
    account          INTEGER NOT NULL,
    seq              INTEGER NOT NULL,
    id               TEXT NOT NULL,
    occurred_at      INTEGER NOT NULL,
    event_type       INTEGER NOT NULL,
    actor_id         TEXT NOT NULL,
    actor_name       TEXT,
    ip_address       TEXT,
    workflow_id      TEXT,
    idempotency_key  TEXT,
    body             TEXT NOT NULL,
    leaf_hash        BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events (account, id);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_idempotency_key
    ON events (account, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Merkle tiles (C2SP tlog-tiles layout): level L holds tree level 8L,
-- tile N its nodes [256N, 256N+256). Only full tiles are stored, once each:
-- a partial tile is derived from the leaf hashes or the full tiles below,
-- so a commit writes no tile until one fills up. (Files written before this
-- may hold partial tiles too; they are read when wide enough.)
CREATE TABLE IF NOT EXISTS tiles (
    account  INTEGER NOT NULL,
    level    INTEGER NOT NULL,
    idx      INTEGER NOT NULL,
    hashes   BLOB NOT NULL,
    PRIMARY KEY (account, level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    account     INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    note        TEXT NOT NULL,
    PRIMARY KEY (account, size)
) WITHOUT ROWID;
-- Tokens: never the secret, only its SHA-256. `logged` holds a bit per
-- change (1 created, 2 revoked, 4 expired) that an "Audit Logs" event
-- records already; the bit is set in the transaction that appends the
-- event, so each change is recorded once. `revoked_in` is the account whose
-- log records a revocation (for a `*` token, the account of the request).
CREATE TABLE IF NOT EXISTS tokens (
    id            TEXT PRIMARY KEY,
    secret_hash   BLOB NOT NULL UNIQUE,
    scope         TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    expires_at    INTEGER,
    created_by    TEXT,
    last_used_at  INTEGER,
    revoked_by    TEXT,
    revoked_in    TEXT,
    logged        INTEGER NOT NULL DEFAULT 0
);
"#;

/// Columns the first files' `tokens` table lacks, added when such a file is
/// opened. Tokens of those files predate token events: they count as
/// recorded (`logged` 7), or opening an old file would log their creation
/// now.
const TOKEN_COLUMNS_ADDED: &[(&str, &str)] = &[
    ("expires_at", "INTEGER"),
    ("created_by", "TEXT"),
    ("last_used_at", "INTEGER"),
    ("revoked_by", "TEXT"),
    ("revoked_in", "TEXT"),
    ("logged", "INTEGER NOT NULL DEFAULT 7"),
];

/// Bit of `tokens.logged` for a change.
fn logged_bit(change: TokenChange) -> i64 {
    match change {
        TokenChange::Created => 1,
        TokenChange::Revoked => 2,
        TokenChange::Expired => 4,
    }
}

/// What a token listing reads, in [`token_info`]'s order.
const TOKEN_INFO_COLUMNS: &str =
    "id, scope, role, created_at, created_by, expires_at, last_used_at, revoked_at, revoked_by";

fn sql_err(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
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

fn internal(msg: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Internal, msg)
}

/// Tuning knobs, chosen by measurement (see ARCHITECTURE.md).
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Page cache per connection, in KiB.
    pub cache_kib: i64,
    /// Memory-mapped I/O size per connection, in bytes.
    pub mmap_bytes: i64,
    /// What each account's column index may hold in memory.
    pub index_limits: IndexLimits,
    /// A fault to inject, for tests of what happens then; only in builds
    /// with the `fault-injection` feature (never in a release binary). The
    /// default comes from `AUDITLOG_TEST_FAULT` (see [`Fault::parse`]).
    #[cfg(feature = "fault-injection")]
    pub fault: Option<Fault>,
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
            // 16 MiB of page cache per connection. No mmap: mapped file
            // pages count in the process's RSS, and an export would map the
            // whole file; the kernel's page cache serves reads as well.
            cache_kib: 16 * 1024,
            mmap_bytes: 0,
            index_limits: IndexLimits::DEFAULT,
            #[cfg(feature = "fault-injection")]
            fault: std::env::var("AUDITLOG_TEST_FAULT")
                .ok()
                .and_then(|f| Fault::parse(&f)),
        }
    }
}

fn open_conn(path: &Path, opts: &SqliteOptions, read_only: bool) -> Result<Connection> {
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
    create_schema(&conn)?;
    Ok(conn)
}

/// Creates a token directly in the database of `data_dir`: the bootstrap of
/// `auditlog token create`, which works whether or not a server is running
/// (SQLite serializes the two writers; the server reads tokens from the
/// file). Its "Token created" event is appended by the next server that
/// starts on this directory ([`Store::pending_token_changes`]). The command
/// line never appends to the log itself: a running server's writer owns
/// each account's sequence and tree.
pub fn create_token_offline(data_dir: &Path, token: &TokenRecord) -> Result<()> {
    insert_token(&open_offline(data_dir)?, token)
}

/// Revokes the live token `id` (any scope) in the database of `data_dir`:
/// `auditlog token revoke`. A server running on the directory stops
/// accepting it within [`TOKEN_REVOCATION_POLL`]; the next server start
/// records the revocation in the log. `None` if there is no such token; otherwise whether it was
/// live (`false`: it had been revoked before).
pub fn revoke_token_offline(data_dir: &Path, id: &str, now_us: i64) -> Result<Option<bool>> {
    let conn = open_offline(data_dir)?;
    let Some(info) = read_token_info(&conn, id)? else {
        return Ok(None);
    };
    Ok(Some(
        revoke_in(&conn, info.scope.as_str(), id, None, None, now_us)? > 0,
    ))
}

/// Every token of the database of `data_dir` (revoked ones included),
/// oldest first: `auditlog token list`. Never secrets or hashes.
pub fn list_tokens_offline(data_dir: &Path) -> Result<Vec<TokenInfo>> {
    let conn = open_offline(data_dir)?;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {TOKEN_INFO_COLUMNS} FROM tokens ORDER BY created_at, rowid"
        ))
        .map_err(sql_err("list tokens"))?;
    let rows = stmt
        .query_map([], token_info)
        .map_err(sql_err("list tokens"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err("list tokens"))?;
    rows.into_iter().collect()
}

fn insert_token(conn: &Connection, t: &TokenRecord) -> Result<()> {
    conn.execute(
        "INSERT INTO tokens (id, secret_hash, scope, role, created_at, expires_at, created_by, logged) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
        params![
            t.id,
            &t.secret_hash[..],
            t.scope.as_str(),
            t.role.as_str(),
            t.created_at_us,
            t.expires_at_us,
            t.created_by,
        ],
    )
    .map_err(sql_err("insert token"))?;
    Ok(())
}

/// Revokes the live token `id` of exactly `scope`; the number of rows changed.
fn revoke_in(
    conn: &Connection,
    scope: &str,
    id: &str,
    by: Option<&str>,
    on: Option<&str>,
    now_us: i64,
) -> Result<usize> {
    conn.execute(
        "UPDATE tokens SET revoked_at = ?1, revoked_by = ?2, revoked_in = ?3 \
         WHERE id = ?4 AND scope = ?5 AND revoked_at IS NULL",
        params![now_us, by, on, id, scope],
    )
    .map_err(sql_err("revoke token"))
}

fn parse_scope(scope: &str) -> Result<TokenScope> {
    if scope == "*" {
        Ok(TokenScope::All)
    } else {
        AccountId::parse(scope)
            .map(TokenScope::Account)
            .map_err(|e| internal(format!("stored token scope is invalid: {e}")))
    }
}

/// A row of [`TOKEN_INFO_COLUMNS`]; the outer error is SQLite's, the inner
/// one a stored value that does not parse.
fn token_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<TokenInfo>> {
    let scope: String = r.get(1)?;
    let role: String = r.get(2)?;
    let (scope, role) = match (
        parse_scope(&scope),
        Role::parse(&role).ok_or_else(|| internal("stored role is unknown")),
    ) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    Ok(Ok(TokenInfo {
        id: r.get(0)?,
        scope,
        role,
        created_at_us: r.get(3)?,
        created_by: r.get(4)?,
        expires_at_us: r.get(5)?,
        last_used_at_us: r.get(6)?,
        revoked_at_us: r.get(7)?,
        revoked_by: r.get(8)?,
    }))
}

fn read_token_info(conn: &Connection, id: &str) -> Result<Option<TokenInfo>> {
    conn.prepare_cached(&format!(
        "SELECT {TOKEN_INFO_COLUMNS} FROM tokens WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row([id], token_info).optional())
    .map_err(sql_err("read token"))?
    .transpose()
}

/// Token changes no event records yet (see [`Store::pending_token_changes`]).
fn read_pending_changes(conn: &Connection, now_us: i64) -> Result<Vec<PendingTokenChange>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TOKEN_INFO_COLUMNS}, logged, revoked_in FROM tokens \
             WHERE (logged & 1) = 0 \
                OR (revoked_at IS NOT NULL AND (logged & 2) = 0) \
                OR (revoked_at IS NULL AND expires_at <= ?1 AND (logged & 4) = 0) \
             ORDER BY created_at, rowid"
        ))
        .map_err(sql_err("read pending token changes"))?;
    let rows = stmt
        .query_map([now_us], |r| {
            Ok((
                token_info(r)?,
                r.get::<_, i64>(9)?,
                r.get::<_, Option<String>>(10)?,
            ))
        })
        .map_err(sql_err("read pending token changes"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err("read pending token changes"))?;
    let mut out = Vec::new();
    for (info, logged, revoked_in) in rows {
        let info = info?;
        let own = match &info.scope {
            TokenScope::Account(a) => Some(a.clone()),
            TokenScope::All => None,
        };
        let changes = [
            (TokenChange::Created, true),
            (TokenChange::Revoked, info.revoked_at_us.is_some()),
            (
                TokenChange::Expired,
                info.revoked_at_us.is_none() && info.expires_at_us.is_some_and(|e| e <= now_us),
            ),
        ];
        for (change, happened) in changes {
            if !happened || logged & logged_bit(change) != 0 {
                continue;
            }
            let account = match change {
                TokenChange::Revoked => revoked_in
                    .as_deref()
                    .and_then(|a| AccountId::parse(a).ok())
                    .or_else(|| own.clone()),
                _ => own.clone(),
            };
            out.push(PendingTokenChange {
                token: info.clone(),
                change,
                account,
            });
        }
    }
    Ok(out)
}

/// Per-account state shared by the writer and the readers.
struct AccountState {
    db_id: i64,
    index: LogIndex,
    /// The committed tree head: what checkpoints may sign.
    head: Mutex<TreeHead>,
    /// Size of the latest stored checkpoint.
    signed: Mutex<u64>,
}

/// How long a token found in the database is trusted without asking again.
/// Revocation through this store clears the cache at once; the TTL bounds
/// staleness for anything else.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(30);

struct Shared {
    /// Live tokens by secret hash, with the time they were read: every
    /// request authenticates, and a database read per request would cost
    /// more than the rest of a small ingest.
    token_cache: Mutex<HashMap<Hash, (TokenRecord, std::time::Instant)>>,
    /// Bumped by every revocation, so a look-up that raced one does not
    /// cache what it read before it.
    token_generation: std::sync::atomic::AtomicU64,
    /// When the file was last asked whether another process revoked a token
    /// (see [`TOKEN_REVOCATION_POLL`]), and how many revoked tokens it had.
    revocations_seen: Mutex<(std::time::Instant, i64)>,
    /// Per token id, the last use time written (or queued to be written):
    /// a use is persisted only [`TOKEN_USE_PERSIST_EVERY`] after the last.
    token_uses: Mutex<HashMap<String, i64>>,
    path: PathBuf,
    opts: SqliteOptions,
    readers: Mutex<Vec<Connection>>,
    accounts: RwLock<HashMap<AccountId, Arc<AccountState>>>,
    event_types: HashMap<EventId, i64>,
    /// Why the writer thread died, once it has: `ready` fails and
    /// `failed` resolves.
    writer_failure: tokio::sync::watch::Sender<Option<String>>,
}

impl Shared {
    /// The writer's cause of death, if it died.
    fn writer_failure(&self) -> Option<String> {
        self.writer_failure.borrow().clone()
    }

    fn account(&self, account: &AccountId) -> Option<Arc<AccountState>> {
        self.accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
            .cloned()
    }

    /// Runs `f` with a pooled read connection.
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => open_conn(&self.path, &self.opts, true)?,
        };
        let out = f(&conn);
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        out
    }
}

enum WriteOp {
    Append {
        account: AccountId,
        events: Vec<ValidEvent>,
        /// The canonical form of each event, but for id, seq, recorded_at.
        parts: Vec<CanonicalParts>,
        /// A token change these events record: its `logged` bit is set in
        /// the same transaction, and if it was set already nothing is
        /// appended (the reply is then empty).
        records: Option<(String, TokenChange)>,
        reply: oneshot::Sender<Result<Vec<Appended>>>,
    },
    Checkpoint {
        account: AccountId,
        size: u64,
        note: String,
        reply: oneshot::Sender<Result<()>>,
    },
    CreateToken {
        token: TokenRecord,
        reply: oneshot::Sender<Result<()>>,
    },
    RevokeToken {
        scope: String,
        id: String,
        by: Option<String>,
        on: Option<String>,
        at_us: i64,
        reply: oneshot::Sender<Result<bool>>,
    },
    /// Sets a token change's `logged` bit without an event (a `*` token's
    /// change that no account's log is the place for).
    MarkToken {
        id: String,
        change: TokenChange,
        reply: oneshot::Sender<Result<bool>>,
    },
    /// Persists a token's last use (nobody waits for the reply).
    TouchToken {
        id: String,
        at_us: i64,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// The embedded SQLite store.
pub struct SqliteStore {
    shared: Arc<Shared>,
    writer: tokio::sync::mpsc::Sender<WriteOp>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .finish()
    }
}

/// Writer-thread state of one account.
struct WriterAccount {
    state: Arc<AccountState>,
    tree: TreeState,
}

struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    accounts: HashMap<AccountId, WriterAccount>,
    wal: WalCheckpoints,
    /// Groups left to commit before the injected panic.
    #[cfg(feature = "fault-injection")]
    panic_after: Option<u64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`, rebuilding the
    /// column index and tree state of every account from the file.
    pub fn open(data_dir: &Path, opts: SqliteOptions) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::with_source(StoreErrorKind::Unavailable, "create data directory", e)
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = open_conn(&path, &opts, false)?;
        let layout = create_schema(&conn)?;

        let event_types = sync_event_types(&conn)?;
        let by_type: HashMap<i64, EventId> = event_types.iter().map(|(e, t)| (*t, *e)).collect();

        let mut shared_accounts = HashMap::new();
        let mut writer_accounts = HashMap::new();
        let rows: Vec<(i64, String)> = {
            let mut stmt = conn
                .prepare("SELECT id, name FROM accounts ORDER BY id")
                .map_err(sql_err("list accounts"))?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql_err("list accounts"))?
                .collect::<Result<_, _>>()
                .map_err(sql_err("list accounts"))?
        };
        let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
        let mut indexes = rebuild_indexes(&conn, layout, &ids, &by_type, opts.index_limits)?;
        for (db_id, name) in rows {
            let account = AccountId::parse(&name)
                .map_err(|e| internal(format!("stored account name is invalid: {e}")))?;
            let (index, size) = indexes.remove(&db_id).expect("one index per account");
            if index.overflowed() {
                warn_index_overflow(&account, &index);
            }
            let tree = TreeState::restore(
                size,
                &SqlTiles {
                    conn: &conn,
                    account: db_id,
                },
            )
            .map_err(|e| internal(format!("restore tree of {account}: {e}")))?;
            let signed: i64 = conn
                .query_row(
                    "SELECT COALESCE(MAX(size), 0) FROM checkpoints WHERE account = ?1",
                    [db_id],
                    |r| r.get(0),
                )
                .map_err(sql_err("read checkpoints"))?;
            let state = Arc::new(AccountState {
                db_id,
                index,
                head: Mutex::new(TreeHead {
                    size,
                    root: tree.root(),
                }),
                signed: Mutex::new(signed as u64),
            });
            shared_accounts.insert(account.clone(), state.clone());
            writer_accounts.insert(account, WriterAccount { state, tree });
        }

        let shared = Arc::new(Shared {
            token_cache: Mutex::new(HashMap::new()),
            token_generation: std::sync::atomic::AtomicU64::new(0),
            revocations_seen: Mutex::new((std::time::Instant::now(), revoked_count(&conn)?)),
            token_uses: Mutex::new(HashMap::new()),
            path,
            opts,
            readers: Mutex::new(Vec::new()),
            accounts: RwLock::new(shared_accounts),
            event_types,
            writer_failure: tokio::sync::watch::Sender::new(None),
        });
        // A bounded queue: when the writer falls behind, producers wait
        // rather than pile up memory.
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        // The writer's working set is the right edge of each B-tree (the log
        // is append-only): a smaller cache than the readers' is enough.
        conn.execute_batch(&format!("PRAGMA cache_size=-{WRITER_CACHE_KIB}"))
            .map_err(sql_err("configure writer cache"))?;
        let wal = WalCheckpoints::start(&mut conn, &shared.path, &shared.opts)?;
        #[cfg(feature = "fault-injection")]
        let panic_after = shared.opts.fault.map(|f| match f {
            Fault::WriterPanicAfter(n) => n,
        });
        let mut writer = Writer {
            conn,
            shared: shared.clone(),
            accounts: writer_accounts,
            wal,
            #[cfg(feature = "fault-injection")]
            panic_after,
        };
        let watcher = shared.clone();
        std::thread::Builder::new()
            .name("auditlog-writer".into())
            .spawn(move || {
                // A panic unwinds out of `run`, dropping the queue and the
                // group in hand: every waiting append gets an error at once
                // (none hangs), the open transaction is rolled back with
                // the connection, and later appends fail to send. What is
                // left is to say so: `ready` fails and `failed` resolves.
                // The writer is not restarted in place: a panic may have
                // left the in-memory trees or indexes out of step with the
                // file, and only a fresh open rebuilds them from it.
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.run(rx)));
                if let Err(panic) = outcome {
                    let cause = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned());
                    tracing::error!(cause, "store writer died; writes fail until restart");
                    watcher
                        .writer_failure
                        .send_replace(Some(format!("panicked: {cause}")));
                }
            })
            .map_err(|e| StoreError::with_source(StoreErrorKind::Internal, "spawn writer", e))?;
        Ok(SqliteStore { shared, writer: tx })
    }

    async fn send<T>(&self, op: impl FnOnce(oneshot::Sender<Result<T>>) -> WriteOp) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let stopped = || {
            let cause = self
                .shared
                .writer_failure()
                .map_or_else(|| "shutting down".to_owned(), |c| format!("it died: {c}"));
            StoreError::new(
                StoreErrorKind::Unavailable,
                format!("the store's writer stopped ({cause})"),
            )
        };
        // Waits only while the queue is full: backpressure, not memory.
        self.writer.send(op(tx)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Runs `f` on a blocking thread with the account's stored tiles.
    async fn with_tiles<T: Send + 'static>(
        &self,
        account: &AccountId,
        f: impl FnOnce(&SqlTiles<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let acc = self
            .shared
            .account(account)
            .ok_or_else(|| internal("account vanished"))?;
        self.blocking(move |sh| {
            sh.with_reader(|conn| {
                f(&SqlTiles {
                    conn,
                    account: acc.db_id,
                })
            })
        })
        .await
    }

    /// Drops every cached token, so the next look-up of each reads the file.
    fn forget_tokens(&self) {
        let mut cache = self
            .shared
            .token_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.shared
            .token_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        cache.clear();
    }

    /// At most once per [`TOKEN_REVOCATION_POLL`]: asks the file whether a
    /// token was revoked by another process (`auditlog token revoke` while
    /// the server runs), and if so forgets the cached tokens. One caller
    /// does the read; the others go on meanwhile.
    async fn poll_revocations(&self) -> Result<()> {
        {
            let mut seen = self
                .shared
                .revocations_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if seen.0.elapsed() < TOKEN_REVOCATION_POLL {
                return Ok(());
            }
            seen.0 = std::time::Instant::now();
        }
        let count = self.blocking(|sh| sh.with_reader(revoked_count)).await?;
        let changed = {
            let mut seen = self
                .shared
                .revocations_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let changed = seen.1 != count;
            seen.1 = count;
            changed
        };
        if changed {
            self.forget_tokens();
        }
        Ok(())
    }

    /// [`Store::append`], optionally marking a token change recorded in the
    /// same transaction (see [`WriteOp::Append`]).
    async fn append_recording(
        &self,
        account: &AccountId,
        events: Vec<ValidEvent>,
        records: Option<(String, TokenChange)>,
    ) -> Result<Vec<Appended>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // Everything of the canonical form but what the writer assigns is
        // serialized here, on the caller's thread, leaving the single writer
        // only the splice.
        let parts = events
            .iter()
            .map(|e| {
                CanonicalParts::new(
                    &CanonicalHead {
                        account_id: account.as_str(),
                        level: e.level,
                        category: &e.category,
                        event: &e.event,
                        occurred_at: e.occurred_at,
                    },
                    &CanonicalTail {
                        actor: &e.actor,
                        ip_address: e.ip_address.as_deref(),
                        workflow_id: e.workflow_id.as_deref(),
                        description: &e.description,
                        metadata: &e.metadata,
                    },
                )
            })
            .collect();
        let account = account.clone();
        self.send(|reply| WriteOp::Append {
            account,
            events,
            parts,
            records,
            reply,
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| internal(format!("blocking task failed: {e}")))?
    }
}

/// How many tokens of the file are revoked: it only grows, so a change
/// means another process revoked one.
fn revoked_count(conn: &Connection) -> Result<i64> {
    conn.prepare_cached("SELECT count(revoked_at) FROM tokens")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(sql_err("count revoked tokens"))
}

/// Makes sure every catalog event has a stable type id; returns the map.
fn sync_event_types(conn: &Connection) -> Result<HashMap<EventId, i64>> {
    let catalog = Catalog::get();
    let mut out = HashMap::new();
    for e in catalog.entries() {
        conn.execute(
            "INSERT OR IGNORE INTO event_types (level, category, event) VALUES (?1, ?2, ?3)",
            params![e.level.as_str(), e.category, e.event.name],
        )
        .map_err(sql_err("register event types"))?;
        let id: i64 = conn
            .query_row(
                "SELECT id FROM event_types WHERE level = ?1 AND category = ?2 AND event = ?3",
                params![e.level.as_str(), e.category, e.event.name],
                |r| r.get(0),
            )
            .map_err(sql_err("read event types"))?;
        out.insert(e.id, id);
    }
    Ok(out)
}

/// How a file's events table is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Rows in write order (the rowid), found by (account, seq) through
    /// the `events_by_seq` index.
    WriteOrder,
    /// Rows clustered by (account, seq) in a WITHOUT ROWID table: files
    /// written before the write-order layout. They are read and appended
    /// to as they are; every query here works on both.
    Clustered,
}

/// Creates what is missing of the schema; returns the events table's
/// layout.
fn create_schema(conn: &Connection) -> Result<Layout> {
    conn.execute_batch(SCHEMA)
        .map_err(sql_err("create schema"))?;
    let token_columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('tokens')")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sql_err("read schema"))?;
    for (name, ty) in TOKEN_COLUMNS_ADDED {
        if !token_columns.iter().any(|c| c == name) {
            // Another process may have added it meanwhile (a server and the
            // command line opening an old file at once).
            match conn.execute_batch(&format!("ALTER TABLE tokens ADD COLUMN {name} {ty}")) {
                Err(e) if !e.to_string().contains("duplicate column") => {
                    return Err(sql_err("add a token column")(e));
                }
                _ => {}
            }
        }
    }
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'events'",
            [],
            |r| r.get(0),
        )
        .map_err(sql_err("read schema"))?;
    if sql.contains("WITHOUT ROWID") {
        return Ok(Layout::Clustered);
    }
    conn.execute_batch("CREATE UNIQUE INDEX IF NOT EXISTS events_by_seq ON events (account, seq)")
        .map_err(sql_err("create schema"))?;
    Ok(Layout::WriteOrder)
}

/// The column index of every account's log, and its size, from one scan of
/// the table in storage order (each account's rows come in seq order in
/// both layouts); fails on a gap in an account's seqs or a row of an
/// account that is not registered.
fn rebuild_indexes(
    conn: &Connection,
    layout: Layout,
    accounts: &[i64],
    by_type: &HashMap<i64, EventId>,
    limits: IndexLimits,
) -> Result<HashMap<i64, (LogIndex, u64)>> {
    let mut out: HashMap<i64, (LogIndex, u64)> = accounts
        .iter()
        .map(|&a| (a, (LogIndex::new(limits), 0)))
        .collect();
    let order = match layout {
        Layout::WriteOrder => "rowid",
        Layout::Clustered => "account, seq",
    };
    let mut stmt = conn
        .prepare(&format!(
            "SELECT account, seq, occurred_at, event_type, actor_id, actor_name, ip_address, \
             workflow_id FROM events ORDER BY {order}"
        ))
        .map_err(sql_err("rebuild index"))?;
    let mut rows = stmt.query([]).map_err(sql_err("rebuild index"))?;
    while let Some(r) = rows.next().map_err(sql_err("rebuild index"))? {
        let account: i64 = r.get(0).map_err(sql_err("rebuild index"))?;
        let seq: i64 = r.get(1).map_err(sql_err("rebuild index"))?;
        let (index, expected) = out.get_mut(&account).ok_or_else(|| {
            internal(format!(
                "the log holds events of unregistered account {account}"
            ))
        })?;
        if seq as u64 != *expected {
            return Err(internal(format!(
                "log of account {account} has a gap: expected seq {expected}, found {seq}"
            )));
        }
        *expected += 1;
        let ty: i64 = r.get(3).map_err(sql_err("rebuild index"))?;
        let event = *by_type
            .get(&ty)
            .ok_or_else(|| internal(format!("stored event type {ty} is not in the catalog")))?;
        let text = |i| {
            r.get_ref(i)
                .and_then(|v| v.as_str_or_null().map_err(Into::into))
                .map_err(sql_err("rebuild index"))
        };
        // Whether the rows overflow a cap is told once the account is named.
        let _ = index.append([IndexRow {
            occurred_at_us: r.get(2).map_err(sql_err("rebuild index"))?,
            event,
            actor_id: text(4)?.ok_or_else(|| internal("stored event has no actor id"))?,
            actor_name: text(5)?,
            ip_address: text(6)?,
            workflow_id: text(7)?,
        }]);
    }
    Ok(out)
}

/// Tells the operator that an account's index reached a distinct-value cap:
/// its queries on that column now read records (see `IndexLimits`).
fn warn_index_overflow(account: &AccountId, index: &LogIndex) {
    let limits = index.limits();
    tracing::warn!(
        account = %account,
        max_distinct = limits.max_distinct,
        max_distinct_bytes = limits.max_distinct_bytes,
        "index distinct-value cap reached: new actors, IP addresses or workflow ids of this account are filtered by reading their records (slower); raise --index-max-distinct to keep them in memory"
    );
}

/// Reads tiles from SQLite for proofs and tree restoration.
struct SqlTiles<'a> {
    conn: &'a Connection,
    account: i64,
}

impl TileReader for SqlTiles<'_> {
    type Error = StoreError;

    fn read_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>> {
        let want = width as usize * 32;
        let blob: Option<Vec<u8>> = self
            .conn
            .prepare_cached(
                "SELECT hashes FROM tiles WHERE account = ?1 AND level = ?2 AND idx = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![self.account, level, index as i64], |r| r.get(0))
                    .optional()
            })
            .map_err(sql_err("read tile"))?;
        let blob = match blob {
            Some(b) if b.len() >= want => b,
            // Not stored (yet): only full tiles are. Derive it from below.
            _ if width < merkle::TILE_WIDTH => return self.derive_tile(level, index, width),
            _ => return Err(internal(format!("tile {level}/{index} is missing"))),
        };
        if blob.len() % 32 != 0 {
            return Err(internal(format!(
                "tile {level}/{index} holds {} bytes, {want} needed",
                blob.len()
            )));
        }
        Ok(blob[..want]
            .chunks_exact(32)
            .map(|c| c.try_into().expect("chunks of 32"))
            .collect())
    }
}

impl SqlTiles<'_> {
    /// The first `width` hashes of a tile that is not stored: at level 0 the
    /// leaf hashes of its events, above it the roots of the full tiles of
    /// the level below.
    fn derive_tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<Hash>> {
        let first = index * u64::from(merkle::TILE_WIDTH);
        if level > 0 {
            return (0..u64::from(width))
                .map(|j| {
                    let below = self.read_tile(level - 1, first + j, merkle::TILE_WIDTH)?;
                    Ok(merkle::full_tile_root(&below))
                })
                .collect();
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, leaf_hash FROM events WHERE account = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq",
            )
            .map_err(sql_err("read leaf hashes"))?;
        let mut rows = stmt
            .query(params![
                self.account,
                first as i64,
                (first + u64::from(width)) as i64
            ])
            .map_err(sql_err("read leaf hashes"))?;
        let mut out = Vec::with_capacity(usize::from(width));
        while let Some(r) = rows.next().map_err(sql_err("read leaf hashes"))? {
            let seq: i64 = r.get(0).map_err(sql_err("read leaf hashes"))?;
            let hash: Vec<u8> = r.get(1).map_err(sql_err("read leaf hashes"))?;
            if seq as u64 != first + out.len() as u64 {
                return Err(internal(format!(
                    "leaf {} is missing from the log",
                    first + out.len() as u64
                )));
            }
            out.push(
                hash.as_slice()
                    .try_into()
                    .map_err(|_| internal("stored leaf hash is not 32 bytes"))?,
            );
        }
        if out.len() != usize::from(width) {
            return Err(internal(format!(
                "tile 0/{index} needs {width} leaves, the log holds {}",
                out.len()
            )));
        }
        Ok(out)
    }
}

/// WAL frames after which the log is checkpointed (SQLite's own default).
const WAL_CHECKPOINT_FRAMES: u32 = 1000;
/// WAL frames at which the writer stops taking work until a checkpoint has
/// caught up (64 MiB of 8 KiB pages): the WAL stays bounded whatever the
/// checkpointer thread's pace.
const WAL_MAX_FRAMES: u32 = 8 * WAL_CHECKPOINT_FRAMES;

const CKPT_IDLE: u8 = 0;
const CKPT_RUNNING: u8 = 1;
const CKPT_DONE: u8 = 2;

/// Checkpoints of the WAL, moved off the writer's path.
///
/// A checkpoint copies every page of the WAL into the main file. Done by the
/// writer inside the commit that crosses the threshold (SQLite's automatic
/// checkpoint), it was a third of the writer's time in batch ingest (perf,
/// 2M-event bench: `pwrite` into new pages of the file), while the second
/// core idled a fifth of the time. So a thread of its own copies the bulk
/// with a PASSIVE checkpoint (it never blocks the writer or readers), and
/// the writer then copies what it committed meanwhile, which is little: that
/// leaves the whole WAL copied, so SQLite rewinds it at the next write and
/// it stays small. (A background checkpointer alone never catches up with a
/// busy writer, and the WAL grows without bound: the first attempt at this,
/// reverted in 071a4f5.)
struct WalCheckpoints {
    /// Frames in the WAL after the last commit, from SQLite's WAL hook.
    frames: Arc<std::sync::atomic::AtomicU32>,
    /// `CKPT_IDLE`, `CKPT_RUNNING` (the thread copies) or `CKPT_DONE`.
    phase: Arc<std::sync::atomic::AtomicU8>,
    /// Frames the thread's last checkpoint had copied when it ended.
    copied: Arc<std::sync::atomic::AtomicU32>,
    /// Wakes the checkpointer thread; `None` once it is gone.
    wake: Option<std::sync::mpsc::SyncSender<()>>,
}

impl WalCheckpoints {
    /// Takes over checkpointing from SQLite on the writer's connection (a
    /// WAL hook replaces the automatic checkpoint) and starts the thread.
    fn start(writer: &mut Connection, path: &Path, opts: &SqliteOptions) -> Result<Self> {
        use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
        let frames = Arc::new(AtomicU32::new(0));
        let seen = frames.clone();
        writer
            .wal_hook(Some(
                move |_: &mut rusqlite::hooks::Wal, n: std::ffi::c_int| {
                    seen.store(u32::try_from(n).unwrap_or(0), Ordering::Relaxed);
                    Ok(())
                },
            ))
            .map_err(sql_err("install the WAL hook"))?;
        let phase = Arc::new(AtomicU8::new(CKPT_IDLE));
        let conn = open_conn(path, opts, false)?;
        let (wake, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let copied = Arc::new(AtomicU32::new(0));
        let (done, copied_by_thread) = (phase.clone(), copied.clone());
        std::thread::Builder::new()
            .name("auditlog-wal".into())
            .spawn(move || {
                // Ends when the writer (the only sender) is dropped.
                while rx.recv().is_ok() {
                    match conn.wal_checkpoint_v2(Some("main"), CheckpointMode::PASSIVE) {
                        Ok((_, n)) => {
                            copied_by_thread.store(u32::try_from(n).unwrap_or(0), Ordering::Relaxed)
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "WAL checkpoint failed; the writer does it");
                            copied_by_thread.store(0, Ordering::Relaxed);
                        }
                    }
                    done.store(CKPT_DONE, Ordering::Release);
                }
            })
            .map_err(|e| {
                StoreError::with_source(StoreErrorKind::Internal, "spawn WAL checkpointer", e)
            })?;
        Ok(Self {
            frames,
            phase,
            copied,
            wake: Some(wake),
        })
    }

    /// Wakes the thread; false if it is gone.
    fn wake(&mut self) -> bool {
        use std::sync::atomic::Ordering;
        self.phase.store(CKPT_RUNNING, Ordering::Release);
        // The channel holds one wake-up and the thread is idle: a full
        // channel cannot happen, a closed one means the thread is gone.
        let woken = self.wake.as_ref().is_some_and(|w| w.try_send(()).is_ok());
        if !woken {
            self.wake = None;
            self.phase.store(CKPT_IDLE, Ordering::Release);
        }
        woken
    }

    /// Called by the writer after each commit.
    fn after_commit(&mut self, writer: &Connection) {
        use std::sync::atomic::Ordering;
        let frames = self.frames.load(Ordering::Relaxed);
        match self.phase.load(Ordering::Acquire) {
            CKPT_DONE => {
                // What was committed while the thread copied: if it is
                // much, the thread copies it too; the last little bit is
                // the writer's, so that the whole WAL is copied. At the
                // limit the writer catches up itself, whatever is left.
                let left = frames.saturating_sub(self.copied.load(Ordering::Relaxed));
                if left < WAL_CHECKPOINT_FRAMES / 4 || frames >= WAL_MAX_FRAMES || !self.wake() {
                    checkpoint_here(writer);
                    self.phase.store(CKPT_IDLE, Ordering::Release);
                }
            }
            // Over the threshold, the thread is woken (in the guard); if it
            // is gone, the writer does it here, as SQLite would.
            CKPT_IDLE if frames >= WAL_CHECKPOINT_FRAMES && !self.wake() => {
                checkpoint_here(writer);
            }
            CKPT_RUNNING if frames >= WAL_MAX_FRAMES => {
                // The thread fell behind: wait for it (backpressure: the
                // producers wait on the writer), within reason.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while self.phase.load(Ordering::Acquire) == CKPT_RUNNING
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if self.phase.load(Ordering::Acquire) == CKPT_DONE {
                    checkpoint_here(writer);
                    self.phase.store(CKPT_IDLE, Ordering::Release);
                }
            }
            _ => {}
        }
    }
}

/// A PASSIVE checkpoint on the writer's connection; busy (another
/// checkpoint running) or failed, the next one makes up for it.
fn checkpoint_here(writer: &Connection) {
    if let Err(e) = writer.wal_checkpoint_v2(Some("main"), CheckpointMode::PASSIVE) {
        tracing::debug!(error = %e, "WAL checkpoint by the writer did not run");
    }
}

impl Writer {
    fn run(&mut self, mut rx: tokio::sync::mpsc::Receiver<WriteOp>) {
        while let Some(first) = rx.blocking_recv() {
            let mut ops = vec![first];
            let mut events = op_events(&ops[0]);
            while ops.len() < MAX_GROUP_OPS && events < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(op) => {
                        events += op_events(&op);
                        ops.push(op);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(ops);
        }
        tracing::debug!("store writer stopped");
    }

    /// One transaction for the whole group; every op's reply is sent only
    /// after it commits (or with the error if it did not).
    fn commit_group(&mut self, mut ops: Vec<WriteOp>) {
        // Dropped before `ops` (locals go before parameters): on a panic,
        // the failure is on record before any waiting append is told.
        let _notice = DeathNotice(self.shared.clone());
        let n_ops = ops.len();
        let n_events: usize = ops.iter().map(op_events).sum();
        let now = Micros::from_timestamp(jiff::Timestamp::now());
        let now_json = CanonicalParts::time(now);
        // Tree states are cloned before the group so a failed commit leaves
        // the in-memory tree exactly as the file is.
        let mut snapshots: HashMap<AccountId, TreeState> = HashMap::new();
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(ops.len());
        let mut touched: Vec<AccountId> = Vec::new();

        let result = (|| -> Result<()> {
            // New accounts are registered before the group's transaction, in
            // their own: if the group then fails, the in-memory account still
            // matches a row in the file (an empty account is harmless; an
            // account whose row was rolled back would hand its id to the next
            // account registered).
            for op in &ops {
                if let WriteOp::Append { account, .. } = op {
                    self.account_mut(account)?;
                }
            }
            self.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(sql_err("begin transaction"))?;
            let mut group_keys: HashMap<(AccountId, String), Record> = HashMap::new();
            for op in &mut ops {
                let outcome = match op {
                    WriteOp::Append {
                        account,
                        events,
                        parts,
                        records,
                        ..
                    } => 'append: {
                        if let Some((id, change)) = records
                            && !set_logged(&self.conn, id, *change)?
                        {
                            // Recorded already (by a racing caller).
                            break 'append Outcome::Appended(Vec::new(), Vec::new());
                        }
                        // The events move into their records (nothing is
                        // cloned); a failed group answers with the error,
                        // so they are not needed again.
                        let events = std::mem::take(events);
                        let parts = std::mem::take(parts);
                        let account = &*account;
                        if !snapshots.contains_key(account) {
                            let acc = self.account_mut(account)?;
                            let tree = acc.tree.clone();
                            snapshots.insert(account.clone(), tree);
                            touched.push(account.clone());
                        }
                        // An error here fails the whole group (every request
                        // in it is answered with it and may retry): a failed
                        // insert cannot be undone without a savepoint per
                        // request, which costs more than the rare failure.
                        let event_ids: Vec<EventId> = events.iter().map(|e| e.event_id).collect();
                        match self.append_events(
                            account,
                            events,
                            parts,
                            now,
                            &now_json,
                            &mut group_keys,
                        )? {
                            Ok(appended) => Outcome::Appended(appended, event_ids),
                            // This request alone fails; it wrote nothing.
                            Err(conflict) => Outcome::Failed(conflict),
                        }
                    }
                    WriteOp::Checkpoint {
                        account,
                        size,
                        note,
                        ..
                    } => {
                        let acc = self.account_mut(account)?;
                        let db_id = acc.state.db_id;
                        self.conn
                            .execute(
                                "INSERT OR IGNORE INTO checkpoints (account, size, note) VALUES (?1, ?2, ?3)",
                                params![db_id, *size as i64, &*note],
                            )
                            .map_err(sql_err("store checkpoint"))?;
                        Outcome::Done
                    }
                    WriteOp::CreateToken { token, .. } => match insert_token(&self.conn, token) {
                        Ok(()) => Outcome::Done,
                        Err(e) => Outcome::Failed(e),
                    },
                    WriteOp::RevokeToken {
                        scope,
                        id,
                        by,
                        on,
                        at_us,
                        ..
                    } => {
                        let n =
                            revoke_in(&self.conn, scope, id, by.as_deref(), on.as_deref(), *at_us)?;
                        Outcome::Changed(n > 0)
                    }
                    WriteOp::MarkToken { id, change, .. } => {
                        Outcome::Changed(set_logged(&self.conn, id, *change)?)
                    }
                    WriteOp::TouchToken { id, at_us, .. } => {
                        self.conn
                            .prepare_cached(
                                "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2 \
                                 AND (last_used_at IS NULL OR last_used_at < ?1)",
                            )
                            .and_then(|mut s| s.execute(params![*at_us, &*id]))
                            .map_err(sql_err("note token use"))?;
                        Outcome::Done
                    }
                };
                outcomes.push(outcome);
            }
            // Tiles that filled up in every account this group appended to.
            for account in &touched {
                let acc = self
                    .accounts
                    .get_mut(account)
                    .expect("touched accounts exist");
                let db_id = acc.state.db_id;
                for (tile, bytes) in acc.tree.take_full_tiles() {
                    self.conn
                        .prepare_cached(
                            "INSERT INTO tiles (account, level, idx, hashes) VALUES (?1, ?2, ?3, ?4) \
                             ON CONFLICT (account, level, idx) DO UPDATE SET hashes = excluded.hashes",
                        )
                        .and_then(|mut s| {
                            s.execute(params![db_id, tile.level, tile.index as i64, bytes])
                        })
                        .map_err(sql_err("write tile"))?;
                }
            }
            // Only groups that append events count, so that bookkeeping
            // writes (a token's last use, a checkpoint) cannot move the
            // fault.
            #[cfg(feature = "fault-injection")]
            if let Some(n) = self
                .panic_after
                .as_mut()
                .filter(|_| ops.iter().any(|op| matches!(op, WriteOp::Append { .. })))
            {
                if *n == 0 {
                    panic!("injected fault: writer panic");
                }
                *n -= 1;
            }
            self.conn
                .execute_batch("COMMIT")
                .map_err(sql_err("commit"))?;
            Ok(())
        })();

        if let Err(e) = result {
            tracing::error!(error = %e, source = ?e.source, n_ops, "group commit failed");
            let _ = self.conn.execute_batch("ROLLBACK");
            for (account, tree) in snapshots {
                if let Some(acc) = self.accounts.get_mut(&account) {
                    // Dirty tiles of the failed group are dropped with it.
                    acc.tree = tree;
                }
            }
            for op in ops {
                let err = || StoreError::new(e.kind, e.message.clone());
                match op {
                    WriteOp::Append { reply, .. } => drop(reply.send(Err(err()))),
                    WriteOp::Checkpoint { reply, .. } => drop(reply.send(Err(err()))),
                    WriteOp::CreateToken { reply, .. } => drop(reply.send(Err(err()))),
                    WriteOp::RevokeToken { reply, .. } | WriteOp::MarkToken { reply, .. } => {
                        drop(reply.send(Err(err())))
                    }
                    WriteOp::TouchToken { reply, .. } => drop(reply.send(Err(err()))),
                }
            }
            return;
        }

        // Committed: make the events visible to queries, then acknowledge.
        // Ops are visited in order, so each account's index receives its
        // rows in `seq` order.
        for (op, outcome) in ops.iter().zip(&outcomes) {
            if let (WriteOp::Append { account, .. }, Outcome::Appended(appended, event_ids)) =
                (op, outcome)
            {
                let acc = &self.accounts[account];
                let overflowed = acc.state.index.append(
                    event_ids
                        .iter()
                        .zip(appended)
                        .filter(|(_, a)| a.created)
                        .map(|(event, a)| IndexRow {
                            occurred_at_us: a.record.body.occurred_at.0,
                            event: *event,
                            actor_id: &a.record.body.actor.id,
                            actor_name: a.record.body.actor.name.as_deref(),
                            ip_address: a.record.body.ip_address.as_deref(),
                            workflow_id: a.record.body.workflow_id.as_deref(),
                        }),
                );
                if overflowed {
                    warn_index_overflow(account, &acc.state.index);
                }
            }
        }
        for account in &touched {
            let acc = &self.accounts[account];
            *acc.state.head.lock().unwrap_or_else(|e| e.into_inner()) = TreeHead {
                size: acc.tree.size(),
                root: acc.tree.root(),
            };
        }
        metrics_group(n_ops, n_events);
        for (op, outcome) in ops.into_iter().zip(outcomes) {
            match (op, outcome) {
                (WriteOp::Append { reply, .. }, Outcome::Appended(a, _)) => drop(reply.send(Ok(a))),
                (WriteOp::Append { reply, .. }, Outcome::Failed(e)) => drop(reply.send(Err(e))),
                (
                    WriteOp::Checkpoint {
                        account,
                        size,
                        reply,
                        ..
                    },
                    _,
                ) => {
                    if let Some(acc) = self.accounts.get(&account) {
                        let mut s = acc.state.signed.lock().unwrap_or_else(|e| e.into_inner());
                        *s = (*s).max(size);
                    }
                    drop(reply.send(Ok(())))
                }
                (WriteOp::CreateToken { reply, .. }, Outcome::Failed(e)) => {
                    drop(reply.send(Err(e)))
                }
                (WriteOp::CreateToken { reply, .. }, _) => drop(reply.send(Ok(()))),
                (
                    WriteOp::RevokeToken { reply, .. } | WriteOp::MarkToken { reply, .. },
                    Outcome::Changed(b),
                ) => drop(reply.send(Ok(b))),
                (WriteOp::RevokeToken { reply, .. } | WriteOp::MarkToken { reply, .. }, _) => {
                    drop(reply.send(Err(internal("token change produced no outcome"))))
                }
                (WriteOp::TouchToken { reply, .. }, _) => drop(reply.send(Ok(()))),
                (WriteOp::Append { reply, .. }, _) => {
                    drop(reply.send(Err(internal("append produced no outcome"))))
                }
            }
        }
        // After the acknowledgements: a checkpoint is not their business.
        self.wal.after_commit(&self.conn);
    }

    /// The writer's state of `account`, registering the account on first use.
    fn account_mut(&mut self, account: &AccountId) -> Result<&mut WriterAccount> {
        if !self.accounts.contains_key(account) {
            self.conn
                .execute(
                    "INSERT OR IGNORE INTO accounts (name) VALUES (?1)",
                    [account.as_str()],
                )
                .map_err(sql_err("register account"))?;
            let db_id: i64 = self
                .conn
                .query_row(
                    "SELECT id FROM accounts WHERE name = ?1",
                    [account.as_str()],
                    |r| r.get(0),
                )
                .map_err(sql_err("register account"))?;
            let state = Arc::new(AccountState {
                db_id,
                index: LogIndex::new(self.shared.opts.index_limits),
                head: Mutex::new(TreeHead {
                    size: 0,
                    root: merkle::EMPTY_ROOT,
                }),
                signed: Mutex::new(0),
            });
            // Visible to readers only once it has committed events would be
            // tidier, but an empty account answers like an unknown one.
            self.shared
                .accounts
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(account.clone(), state.clone());
            self.accounts.insert(
                account.clone(),
                WriterAccount {
                    state,
                    tree: TreeState::new(),
                },
            );
        }
        Ok(self.accounts.get_mut(account).expect("inserted above"))
    }

    fn append_events(
        &mut self,
        account: &AccountId,
        events: Vec<ValidEvent>,
        parts: Vec<CanonicalParts>,
        now: Micros,
        now_json: &str,
        group_keys: &mut HashMap<(AccountId, String), Record>,
    ) -> Result<Result<Vec<Appended>, StoreError>> {
        let db_id = self.account_mut(account)?.state.db_id;
        // First every idempotency key, before anything of this request is
        // written: a key reused for another event fails this request alone
        // (its group goes on), and there is nothing to undo.
        let mut earlier: Vec<Option<Earlier>> = Vec::with_capacity(events.len());
        let mut batch_keys: HashMap<&str, usize> = HashMap::new();
        for (i, ev) in events.iter().enumerate() {
            let Some(key) = ev.idempotency_key.as_deref() else {
                earlier.push(None);
                continue;
            };
            let (found, same) = if let Some(&j) = batch_keys.get(key) {
                let first = record_like(&events[j], account);
                (Earlier::InBatch(j), same_event(ev, account, &first))
            } else if let Some(rec) = group_keys.get(&(account.clone(), key.to_owned())) {
                let same = same_event(ev, account, &rec.body);
                (Earlier::Stored(Box::new(rec.clone())), same)
            } else {
                let existing: Option<(String, Vec<u8>)> = self
                    .conn
                    .prepare_cached(
                        "SELECT body, leaf_hash FROM events WHERE account = ?1 AND idempotency_key = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![db_id, key], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(sql_err("look up idempotency key"))?;
                match existing {
                    Some((body, hash)) => {
                        let rec = parse_record(&body, &hash)?;
                        let same = same_event(ev, account, &rec.body);
                        (Earlier::Stored(Box::new(rec)), same)
                    }
                    None => {
                        batch_keys.insert(key, i);
                        earlier.push(None);
                        continue;
                    }
                }
            };
            if !same {
                // The stored record is not revealed: only that the key is
                // taken.
                return Ok(Err(StoreError::conflict(format!(
                    "idempotency key `{key}` was already used for a different event; \
                     a retry must send the same event, a new event needs a new key"
                ))));
            }
            earlier.push(Some(found));
        }
        let mut out: Vec<Appended> = Vec::with_capacity(events.len());
        for ((ev, parts), earlier) in events.into_iter().zip(parts).zip(earlier) {
            match earlier {
                Some(Earlier::Stored(record)) => {
                    out.push(Appended {
                        record: *record,
                        created: false,
                    });
                    continue;
                }
                Some(Earlier::InBatch(j)) => {
                    let record = out[j].record.clone();
                    out.push(Appended {
                        record,
                        created: false,
                    });
                    continue;
                }
                None => {}
            }
            let acc = self.accounts.get_mut(account).expect("registered above");
            let seq = acc.tree.size();
            let id =
                ulid::Ulid::from_parts((now.0 / 1000) as u64, rand::random::<u128>()).to_string();
            let mut canonical = Vec::with_capacity(512);
            parts.finish(&id, seq, now_json, &mut canonical);
            let body = RecordBody {
                id,
                seq,
                account_id: account.as_str().to_owned(),
                level: ev.level,
                category: ev.category,
                event: ev.event,
                occurred_at: ev.occurred_at,
                recorded_at: now,
                actor: ev.actor,
                ip_address: ev.ip_address,
                workflow_id: ev.workflow_id,
                description: ev.description,
                metadata: ev.metadata,
            };
            debug_assert_eq!(canonical, body.canonical_bytes());
            let leaf_hash = merkle::hash_leaf(&canonical);
            let canonical =
                String::from_utf8(canonical).map_err(|_| internal("canonical JSON is UTF-8"))?;
            let ty = *self
                .shared
                .event_types
                .get(&ev.event_id)
                .ok_or_else(|| internal("event type not registered"))?;
            self.conn
                .prepare_cached(
                    "INSERT INTO events (account, seq, id, occurred_at, event_type, actor_id, actor_name, \
                     ip_address, workflow_id, idempotency_key, body, leaf_hash) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        db_id,
                        seq as i64,
                        body.id,
                        body.occurred_at.0,
                        ty,
                        body.actor.id,
                        body.actor.name,
                        body.ip_address,
                        body.workflow_id,
                        ev.idempotency_key,
                        canonical,
                        &leaf_hash[..],
                    ])
                })
                .map_err(sql_err("insert event"))?;
            acc.tree.append(leaf_hash);
            let record = Record { body, leaf_hash };
            if let Some(key) = &ev.idempotency_key {
                group_keys.insert((account.clone(), key.clone()), record.clone());
            }
            out.push(Appended {
                record,
                created: true,
            });
        }
        Ok(Ok(out))
    }
}

/// The first event with an idempotency key that a later one repeats.
enum Earlier {
    /// Stored before, or earlier in the same group.
    Stored(Box<Record>),
    /// Earlier in the same request, at this index.
    InBatch(usize),
}

/// `ev` as a record body in `account`, with empty server-assigned fields.
fn record_like(ev: &ValidEvent, account: &AccountId) -> RecordBody {
    RecordBody {
        id: String::new(),
        seq: 0,
        account_id: account.as_str().to_owned(),
        level: ev.level,
        category: ev.category.clone(),
        event: ev.event.clone(),
        occurred_at: ev.occurred_at,
        recorded_at: Micros(0),
        actor: ev.actor.clone(),
        ip_address: ev.ip_address.clone(),
        workflow_id: ev.workflow_id.clone(),
        description: ev.description.clone(),
        metadata: ev.metadata.clone(),
    }
}

/// Whether `ev` is the same event as `first` (an idempotent retry): equal
/// canonical forms but for the fields the store assigns, and but for the
/// fields `ev` left to server defaults (its time and address are the
/// retry's, not the first request's).
fn same_event(ev: &ValidEvent, account: &AccountId, first: &RecordBody) -> bool {
    let mut retry = record_like(ev, account);
    retry.id.clone_from(&first.id);
    retry.seq = first.seq;
    retry.recorded_at = first.recorded_at;
    if ev.defaulted.occurred_at {
        retry.occurred_at = first.occurred_at;
    }
    if ev.defaulted.ip_address {
        retry.ip_address.clone_from(&first.ip_address);
    }
    retry.canonical_bytes() == first.canonical_bytes()
}

/// Marks the writer dead when dropped by a panic's unwinding.
struct DeathNotice(Arc<Shared>);

impl Drop for DeathNotice {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .writer_failure
                .send_replace(Some("panicked while committing".to_owned()));
        }
    }
}

enum Outcome {
    /// The records, and the catalog event of each (for the index).
    Appended(Vec<Appended>, Vec<EventId>),
    /// This op alone failed (a token insert, an idempotency conflict); it
    /// wrote nothing.
    Failed(StoreError),
    /// Whether a token update found its row.
    Changed(bool),
    Done,
}

/// Sets the `logged` bit of `change` on token `id`; `false` if it was set
/// already (or there is no such token).
fn set_logged(conn: &Connection, id: &str, change: TokenChange) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE tokens SET logged = logged | ?2 WHERE id = ?1 AND (logged & ?2) = 0",
        )
        .and_then(|mut s| s.execute(params![id, logged_bit(change)]))
        .map_err(sql_err("mark token change recorded"))?;
    Ok(n > 0)
}

fn op_events(op: &WriteOp) -> usize {
    match op {
        WriteOp::Append { events, .. } => events.len(),
        _ => 1,
    }
}

/// Records one committed group: how many requests and events shared the
/// fsync (the point of group commit, so it is worth watching).
fn metrics_group(n_ops: usize, n_events: usize) {
    metrics::counter!("auditlog_commits_total").increment(1);
    metrics::histogram!("auditlog_commit_batch_requests").record(n_ops as f64);
    metrics::histogram!("auditlog_commit_batch_events").record(n_events as f64);
}

fn parse_record(body: &str, hash: &[u8]) -> Result<Record> {
    let body: RecordBody = serde_json::from_str(body)
        .map_err(|e| internal(format!("stored record does not parse: {e}")))?;
    let leaf_hash: Hash = hash
        .try_into()
        .map_err(|_| internal("stored leaf hash is not 32 bytes"))?;
    Ok(Record { body, leaf_hash })
}

fn fetch_raw(conn: &Connection, db_id: i64, seq: u64) -> Result<RawRecord> {
    conn.prepare_cached("SELECT body, leaf_hash FROM events WHERE account = ?1 AND seq = ?2")
        .and_then(|mut s| {
            s.query_row(params![db_id, seq as i64], |r| {
                // `as_bytes` takes TEXT as it is (a `Vec<u8>` would want a
                // BLOB).
                Ok((r.get_ref(0)?.as_bytes()?.to_vec(), r.get::<_, Vec<u8>>(1)?))
            })
        })
        .map_err(sql_err("read event"))
        .and_then(|(canonical, hash)| {
            Ok(RawRecord {
                seq,
                canonical,
                leaf_hash: hash
                    .as_slice()
                    .try_into()
                    .map_err(|_| internal("stored leaf hash is not 32 bytes"))?,
            })
        })
}

/// Reads the records of `keys` into `out`, in the order of `keys`. When
/// the keys cover a dense run of seqs (an export of a log ingested roughly
/// in time order), one range scan of the clustered table replaces a point
/// look-up per row.
fn fetch_many(
    conn: &Connection,
    db_id: i64,
    keys: &[RowKey],
    out: &mut Vec<RawRecord>,
) -> Result<()> {
    let (Some(lo), Some(hi)) = (
        keys.iter().map(|k| k.seq).min(),
        keys.iter().map(|k| k.seq).max(),
    ) else {
        return Ok(());
    };
    let span = (hi - lo + 1) as usize;
    if span > keys.len() * 2 {
        for k in keys {
            out.push(fetch_raw(conn, db_id, k.seq)?);
        }
        return Ok(());
    }
    let mut slots: Vec<Option<RawRecord>> = Vec::with_capacity(span);
    slots.resize_with(span, || None);
    // Which seqs of the span are wanted: the range scan skips the others.
    let mut wanted = vec![false; span];
    for k in keys {
        wanted[(k.seq - lo) as usize] = true;
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, body, leaf_hash FROM events WHERE account = ?1 AND seq BETWEEN ?2 AND ?3",
        )
        .map_err(sql_err("read events"))?;
    let mut rows = stmt
        .query(params![db_id, lo as i64, hi as i64])
        .map_err(sql_err("read events"))?;
    while let Some(r) = rows.next().map_err(sql_err("read events"))? {
        let seq = r.get::<_, i64>(0).map_err(sql_err("read events"))? as u64;
        if !wanted[(seq - lo) as usize] {
            continue;
        }
        // The hash is borrowed from SQLite, not allocated.
        let leaf_hash = r
            .get_ref(2)
            .and_then(|v| v.as_blob().map_err(Into::into))
            .map_err(sql_err("read events"))?
            .try_into()
            .map_err(|_| internal("stored leaf hash is not 32 bytes"))?;
        let canonical = r
            .get_ref(1)
            .and_then(|v| v.as_bytes().map_err(Into::into))
            .map_err(sql_err("read events"))?
            .to_vec();
        slots[(seq - lo) as usize] = Some(RawRecord {
            seq,
            canonical,
            leaf_hash,
        });
    }
    for k in keys {
        let rec = slots[(k.seq - lo) as usize]
            .take()
            .ok_or_else(|| internal(format!("event seq {} is missing from the log", k.seq)))?;
        out.push(rec);
    }
    Ok(())
}

/// Decides one row the index could not decide (a description filter, a
/// value past the index's distinct-value cap) by reading its stored record
/// and asking [`auditlog_core::index::Plan::matches_record`]. A read error
/// is kept, not swallowed: a scan that met one has no answer, and
/// [`RecordCheck::finish`] returns it.
///
/// One SQL read per candidate row makes this the slow part of a query, so
/// it is where the query's deadline and cancellation are checked: once
/// either trips, every further row is answered `false` at once (no read)
/// and the scan of the in-memory index finishes quickly with the error.
struct RecordCheck<'a> {
    conn: &'a Connection,
    db_id: i64,
    plan: &'a auditlog_core::index::Plan,
    watch: QueryWatch,
    error: Option<StoreError>,
}

impl<'a> RecordCheck<'a> {
    fn new(
        conn: &'a Connection,
        db_id: i64,
        plan: &'a auditlog_core::index::Plan,
        watch: QueryWatch,
    ) -> Self {
        RecordCheck {
            conn,
            db_id,
            plan,
            watch,
            error: None,
        }
    }

    fn matches(&mut self, seq: u64) -> bool {
        if self.error.is_some() {
            return false;
        }
        // An atomic load and a clock read: noise beside the SQL read.
        if let Err(e) = self.watch.check() {
            self.error = Some(e);
            return false;
        }
        let read = self
            .conn
            .prepare_cached("SELECT body FROM events WHERE account = ?1 AND seq = ?2")
            .and_then(|mut s| {
                s.query_row(params![self.db_id, seq as i64], |r| {
                    let body = r.get_ref(0)?.as_bytes()?;
                    Ok(RowFields::parse(body).map(|row| self.plan.matches_record(&row)))
                })
            });
        match read {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                self.error = Some(internal(format!("stored record does not parse: {e}")));
                false
            }
            Err(e) => {
                self.error = Some(sql_err("read event for a filter")(e));
                false
            }
        }
    }

    fn finish(self) -> Result<()> {
        self.error.map_or(Ok(()), Err)
    }
}

fn index_scope(scope: &Scope) -> IndexScope<'_> {
    match scope {
        Scope::Account => IndexScope::Account,
        Scope::Workflow(w) => IndexScope::Workflow(w),
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn append(&self, account: &AccountId, events: Vec<ValidEvent>) -> Result<Vec<Appended>> {
        self.append_recording(account, events, None).await
    }

    async fn get(&self, account: &AccountId, id: &str) -> Result<Option<Record>> {
        let Some(acc) = self.shared.account(account) else {
            return Ok(None);
        };
        let id = id.to_owned();
        self.blocking(move |sh| {
            sh.with_reader(|conn| {
                let row: Option<(String, Vec<u8>)> = conn
                    .prepare_cached(
                        "SELECT body, leaf_hash FROM events WHERE account = ?1 AND id = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![acc.db_id, id], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(sql_err("read event"))?;
                row.map(|(b, h)| parse_record(&b, &h)).transpose()
            })
        })
        .await
    }

    async fn list(
        &self,
        account: &AccountId,
        sel: &Selection,
        after: Option<RowKey>,
        limit: usize,
    ) -> Result<Page> {
        let Some(acc) = self.shared.account(account) else {
            return Ok(Page {
                records: Vec::new(),
                next: None,
            });
        };
        let sel = sel.clone();
        // The deadline counts from the request, queueing for a thread
        // included.
        let watch = sel.control.start();
        self.blocking(move |sh| {
            sh.with_reader(|conn| {
                watch.check()?;
                let plan = acc
                    .index
                    .plan(&sel.filters, sel.join, index_scope(&sel.scope));
                let mut check = RecordCheck::new(conn, acc.db_id, &plan, watch.clone());
                let (keys, more) = plan.page(sel.bounds, after, limit, &mut |s| check.matches(s));
                check.finish()?;
                let mut records = Vec::with_capacity(keys.len());
                for k in &keys {
                    let raw = fetch_raw(conn, acc.db_id, k.seq)?;
                    let body = std::str::from_utf8(&raw.canonical)
                        .map_err(|e| internal(format!("stored record is not UTF-8: {e}")))?;
                    records.push(parse_record(body, &raw.leaf_hash)?);
                }
                let next = if more { keys.last().copied() } else { None };
                Ok(Page { records, next })
            })
        })
        .await
    }

    async fn count(&self, account: &AccountId, sel: &Selection) -> Result<u64> {
        let Some(acc) = self.shared.account(account) else {
            return Ok(0);
        };
        let sel = sel.clone();
        let watch = sel.control.start();
        self.blocking(move |sh| {
            sh.with_reader(|conn| {
                watch.check()?;
                let plan = acc
                    .index
                    .plan(&sel.filters, sel.join, index_scope(&sel.scope));
                let mut check = RecordCheck::new(conn, acc.db_id, &plan, watch.clone());
                let n = acc
                    .index
                    .count(&plan, sel.bounds, &mut |s| check.matches(s));
                check.finish()?;
                Ok(n)
            })
        })
        .await
    }

    async fn histogram(
        &self,
        account: &AccountId,
        sel: &Selection,
        edges: Vec<i64>,
    ) -> Result<Vec<u64>> {
        let Some(acc) = self.shared.account(account) else {
            return Ok(vec![0; edges.len().saturating_sub(1)]);
        };
        let sel = sel.clone();
        let watch = sel.control.start();
        self.blocking(move |sh| {
            sh.with_reader(|conn| {
                watch.check()?;
                let plan = acc
                    .index
                    .plan(&sel.filters, sel.join, index_scope(&sel.scope));
                let mut check = RecordCheck::new(conn, acc.db_id, &plan, watch.clone());
                let counts = acc
                    .index
                    .histogram(&plan, sel.bounds, &edges, &mut |s| check.matches(s));
                check.finish()?;
                Ok(counts)
            })
        })
        .await
    }

    async fn first_event_time(&self, account: &AccountId) -> Result<Option<i64>> {
        Ok(self
            .shared
            .account(account)
            .and_then(|a| a.index.min_time()))
    }

    async fn export(
        &self,
        account: &AccountId,
        sel: &Selection,
        mut sink: Box<RawSink<'static>>,
    ) -> Result<u64> {
        let Some(acc) = self.shared.account(account) else {
            return Ok(0);
        };
        let sel = sel.clone();
        self.blocking(move |sh| {
            // A dedicated connection: an export may run for minutes and must
            // not hold a pooled one (the export cap of the HTTP layer bounds
            // how many there are).
            let opts = SqliteOptions {
                cache_kib: EXPORT_CACHE_KIB,
                ..sh.opts.clone()
            };
            let conn = open_conn(&sh.path, &opts, true)?;
            // The plan is the snapshot: the index's rows when the export
            // started. Rows never change once written, so reading them in
            // many short transactions still gives exactly that snapshot.
            let plan = acc
                .index
                .plan(&sel.filters, sel.join, index_scope(&sel.scope));
            let mut check = RecordCheck::new(&conn, acc.db_id, &plan, sel.control.start());
            // Walk the plan's snapshot newest first in batches of keys
            // (a few MiB at most, see `ExportKeys`), and read and hand over
            // the records of a batch a thousand at a time: memory stays
            // flat however many rows match.
            let mut walk = plan.export_keys(sel.bounds);
            let mut keys = Vec::new();
            let mut n = 0u64;
            loop {
                // The deadline is per walk to the next batch of keys (the
                // part a description filter makes slow), not for the whole
                // export, which may rightly take minutes.
                check.watch = sel.control.start();
                let more = walk.next_batch(&mut |s| check.matches(s), &mut keys);
                // Rows whose description could not be read were left out of
                // this batch: stop rather than export an incomplete view.
                if let Some(e) = check.error.take() {
                    return Err(e);
                }
                check.watch.check()?;
                if !more {
                    break;
                }
                for part in keys.chunks(EXPORT_BATCH) {
                    // One read transaction per batch (a statement outside
                    // one takes and drops the WAL read lock itself: a fifth
                    // of the reader's time, perf), ended before the batch is
                    // handed over: the sink may wait on a slow client, and a
                    // snapshot held meanwhile would keep the WAL from being
                    // checkpointed and rewound.
                    let mut batch = Vec::with_capacity(part.len());
                    conn.execute_batch("BEGIN")
                        .map_err(sql_err("begin export read"))?;
                    let read = fetch_many(&conn, acc.db_id, part, &mut batch);
                    conn.execute_batch("COMMIT")
                        .map_err(sql_err("end export read"))?;
                    read?;
                    if sel.control.is_cancelled() {
                        return Err(StoreError::new(
                            StoreErrorKind::Unavailable,
                            "export cancelled: its client went away",
                        ));
                    }
                    n += batch.len() as u64;
                    sink(batch)?;
                }
            }
            Ok(n)
        })
        .await
    }

    async fn user_names(
        &self,
        account: &AccountId,
        needle: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        Ok(self
            .shared
            .account(account)
            .map(|a| a.index.user_names(needle, limit))
            .unwrap_or_default())
    }

    async fn tree_head(&self, account: &AccountId) -> Result<TreeHead> {
        Ok(match self.shared.account(account) {
            Some(a) => *a.head.lock().unwrap_or_else(|e| e.into_inner()),
            None => TreeHead {
                size: 0,
                root: merkle::EMPTY_ROOT,
            },
        })
    }

    async fn unsigned_heads(&self) -> Result<Vec<(AccountId, TreeHead)>> {
        let accounts = self
            .shared
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner());
        Ok(accounts
            .iter()
            .filter_map(|(id, a)| {
                let head = *a.head.lock().unwrap_or_else(|e| e.into_inner());
                let signed = *a.signed.lock().unwrap_or_else(|e| e.into_inner());
                (head.size > signed).then(|| (id.clone(), head))
            })
            .collect())
    }

    async fn unsigned_head(&self, account: &AccountId) -> Result<Option<TreeHead>> {
        Ok(self.shared.account(account).and_then(|a| {
            let head = *a.head.lock().unwrap_or_else(|e| e.into_inner());
            let signed = *a.signed.lock().unwrap_or_else(|e| e.into_inner());
            (head.size > signed).then_some(head)
        }))
    }

    async fn put_checkpoint(&self, account: &AccountId, size: u64, note: String) -> Result<()> {
        let account = account.clone();
        self.send(|reply| WriteOp::Checkpoint {
            account,
            size,
            note,
            reply,
        })
        .await
    }

    async fn latest_checkpoint(&self, account: &AccountId) -> Result<Option<String>> {
        let Some(acc) = self.shared.account(account) else {
            return Ok(None);
        };
        self.blocking(move |sh| {
            sh.with_reader(|conn| {
                conn.prepare_cached(
                    "SELECT note FROM checkpoints WHERE account = ?1 ORDER BY size DESC LIMIT 1",
                )
                .and_then(|mut s| s.query_row([acc.db_id], |r| r.get(0)).optional())
                .map_err(sql_err("read checkpoint"))
            })
        })
        .await
    }

    async fn inclusion_proof(&self, account: &AccountId, seq: u64, size: u64) -> Result<Vec<Hash>> {
        let head = self.tree_head(account).await?;
        if size > head.size || seq >= size {
            return Err(StoreError::invalid(format!(
                "no inclusion proof for seq {seq} in a tree of size {size}: the log has {} events and seq must be below size",
                head.size
            )));
        }
        self.with_tiles(account, move |tiles| {
            merkle::inclusion_proof(seq, size, tiles)
                .map_err(|e| internal(format!("inclusion proof: {e}")))
        })
        .await
    }

    async fn consistency_proof(
        &self,
        account: &AccountId,
        from: u64,
        to: u64,
    ) -> Result<Vec<Hash>> {
        let head = self.tree_head(account).await?;
        if from > to || to > head.size {
            return Err(StoreError::invalid(format!(
                "no consistency proof from size {from} to {to}: need from ≤ to ≤ {} (the log's size)",
                head.size
            )));
        }
        if from == 0 || from == to {
            return Ok(Vec::new());
        }
        self.with_tiles(account, move |tiles| {
            merkle::consistency_proof(from, to, tiles)
                .map_err(|e| internal(format!("consistency proof: {e}")))
        })
        .await
    }

    async fn create_token(&self, token: TokenRecord) -> Result<()> {
        self.send(|reply| WriteOp::CreateToken { token, reply })
            .await
    }

    async fn find_token(&self, secret_hash: &Hash) -> Result<Option<TokenRecord>> {
        let hash = *secret_hash;
        // A failed poll leaves the cache as it is (the TTL still bounds it)
        // rather than failing a request the cache can answer.
        if let Err(e) = self.poll_revocations().await {
            tracing::warn!(error = %e, "checking for revoked tokens failed");
        }
        if let Some((token, at)) = self
            .shared
            .token_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
            && at.elapsed() < TOKEN_CACHE_TTL
        {
            return Ok(Some(token.clone()));
        }
        let generation = self
            .shared
            .token_generation
            .load(std::sync::atomic::Ordering::SeqCst);
        let found = self
            .blocking(move |sh| {
                sh.with_reader(|conn| {
                    type Row = (String, Vec<u8>, String, String, i64, Option<i64>, Option<String>);
                    let row: Option<Row> = conn
                        .prepare_cached(
                            "SELECT id, secret_hash, scope, role, created_at, expires_at, created_by \
                             FROM tokens WHERE secret_hash = ?1 AND revoked_at IS NULL",
                        )
                        .and_then(|mut s| {
                            s.query_row([&hash[..]], |r| {
                                Ok((
                                    r.get(0)?,
                                    r.get(1)?,
                                    r.get(2)?,
                                    r.get(3)?,
                                    r.get(4)?,
                                    r.get(5)?,
                                    r.get(6)?,
                                ))
                            })
                            .optional()
                        })
                        .map_err(sql_err("read token"))?;
                    let Some((id, stored, scope, role, created_at_us, expires_at_us, created_by)) =
                        row
                    else {
                        return Ok(None);
                    };
                    let secret_hash: Hash = stored
                        .as_slice()
                        .try_into()
                        .map_err(|_| internal("stored token hash is not 32 bytes"))?;
                    let role =
                        Role::parse(&role).ok_or_else(|| internal("stored role is unknown"))?;
                    Ok(Some(TokenRecord {
                        id,
                        secret_hash,
                        scope: parse_scope(&scope)?,
                        role,
                        created_at_us,
                        expires_at_us,
                        created_by,
                    }))
                })
            })
            .await?;
        if let Some(token) = &found {
            let mut cache = self
                .shared
                .token_cache
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if self
                .shared
                .token_generation
                .load(std::sync::atomic::Ordering::SeqCst)
                == generation
            {
                cache.insert(hash, (token.clone(), std::time::Instant::now()));
            }
        }
        Ok(found)
    }

    async fn revoke_token(
        &self,
        scope: &TokenScope,
        id: &str,
        by: Option<&str>,
        on: Option<&AccountId>,
        at_us: i64,
    ) -> Result<bool> {
        let scope = scope.as_str().to_owned();
        let id = id.to_owned();
        let by = by.map(str::to_owned);
        let on = on.map(|a| a.as_str().to_owned());
        let revoked = self
            .send(|reply| WriteOp::RevokeToken {
                scope,
                id,
                by,
                on,
                at_us,
                reply,
            })
            .await?;
        // Whatever was revoked must stop working now, not after the TTL.
        self.forget_tokens();
        Ok(revoked)
    }

    async fn token_info(&self, id: &str) -> Result<Option<TokenInfo>> {
        let id = id.to_owned();
        self.blocking(move |sh| sh.with_reader(|conn| read_token_info(conn, &id)))
            .await
    }

    async fn list_tokens(&self, scope: &TokenScope) -> Result<Vec<TokenInfo>> {
        let scope = scope.as_str().to_owned();
        self.blocking(move |sh| {
            sh.with_reader(|conn| {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {TOKEN_INFO_COLUMNS} FROM tokens \
                         WHERE scope = ?1 AND revoked_at IS NULL ORDER BY created_at, rowid"
                    ))
                    .map_err(sql_err("list tokens"))?;
                let rows = stmt
                    .query_map([&scope], token_info)
                    .map_err(sql_err("list tokens"))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(sql_err("list tokens"))?;
                rows.into_iter().collect()
            })
        })
        .await
    }

    fn note_token_use(&self, id: &str, at_us: i64) {
        let every = TOKEN_USE_PERSIST_EVERY.as_micros() as i64;
        let mut uses = self
            .shared
            .token_uses
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if uses.get(id).is_some_and(|&last| at_us < last + every) {
            return;
        }
        // Queued, not awaited: the request does not wait for the write. A
        // full queue (the writer is busy) skips this one; a later use retries.
        let (reply, _) = oneshot::channel();
        let op = WriteOp::TouchToken {
            id: id.to_owned(),
            at_us,
            reply,
        };
        if self.writer.try_send(op).is_ok() {
            uses.insert(id.to_owned(), at_us);
        }
    }

    async fn pending_token_changes(&self, now_us: i64) -> Result<Vec<PendingTokenChange>> {
        self.blocking(move |sh| sh.with_reader(|conn| read_pending_changes(conn, now_us)))
            .await
    }

    async fn record_token_change(
        &self,
        id: &str,
        change: TokenChange,
        event: Option<(AccountId, ValidEvent)>,
    ) -> Result<bool> {
        let id = id.to_owned();
        match event {
            Some((account, event)) => Ok(!self
                .append_recording(&account, vec![event], Some((id, change)))
                .await?
                .is_empty()),
            None => {
                self.send(|reply| WriteOp::MarkToken { id, change, reply })
                    .await
            }
        }
    }

    async fn ready(&self) -> Result<()> {
        if let Some(cause) = self.shared.writer_failure() {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("the store's writer died ({cause}); restart the process"),
            ));
        }
        self.blocking(|sh| {
            sh.with_reader(|conn| {
                conn.query_row("SELECT 1", [], |_| Ok(()))
                    .map_err(sql_err("ping database"))
            })
        })
        .await
    }

    async fn failed(&self) -> StoreError {
        let mut rx = self.shared.writer_failure.subscribe();
        let cause = rx
            .wait_for(Option::is_some)
            .await
            .map(|c| c.clone().unwrap_or_default());
        // The sender lives in `Shared`, which `self` holds: never closed.
        let Ok(cause) = cause else {
            return std::future::pending().await;
        };
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!("the store's writer died: {cause}"),
        )
    }

    async fn size_bytes(&self) -> Result<u64> {
        let path = self.shared.path.clone();
        let mut total = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            if let Ok(m) = std::fs::metadata(&p) {
                total += m.len();
            }
        }
        Ok(total)
    }
}
