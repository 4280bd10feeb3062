//! The SQLite schema: tables, what older files lack and gain when opened,
//! their two layouts of the events table, and the catalog's stable type ids.

use std::collections::HashMap;

use auditlog_core::catalog::{Catalog, EventId};
use rusqlite::{Connection, params};

use super::sql_err;
use crate::Result;

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
-- The column index's sealed segments (derived from `events`, rewritten
-- when found corrupt or by `auditlog index rebuild`): start-up reads every
-- summary, a query reads the columns of the segments it needs. A rowid
-- table, since the columns blob (~1.5 MB) lives in overflow pages that a
-- read of the summary, stored first, does not touch.
CREATE TABLE IF NOT EXISTS index_segments (
    account  INTEGER NOT NULL,
    segment  INTEGER NOT NULL,
    summary  BLOB NOT NULL,
    columns  BLOB NOT NULL,
    UNIQUE (account, segment)
);
-- Each account's growing index chunk (the rows after its last segment),
-- stored at a clean shutdown so that the next open restores it instead of
-- reading up to 65,535 rows with their records. Derived data like the
-- segments: checked at open, ignored when a segment was sealed since
-- (`first` is then not where the segments end) or when it does not hold
-- together.
CREATE TABLE IF NOT EXISTS index_tails (
    account  INTEGER PRIMARY KEY,
    first    INTEGER NOT NULL,
    summary  BLOB NOT NULL,
    columns  BLOB NOT NULL
);
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

/// Makes sure every catalog event has a stable type id; returns the map.
pub(super) fn sync_event_types(conn: &Connection) -> Result<HashMap<EventId, i64>> {
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
pub(super) enum Layout {
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
pub(super) fn create_schema(conn: &Connection) -> Result<Layout> {
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
