//! The baseline auditlog is measured against: what a team would build first
//! with SQLite — one plain table of text columns, four B-tree indexes, WAL
//! and `synchronous=FULL`, queried with straightforward SQL.
//!
//! Deliberately plain: SQLite's default page cache, no `ANALYZE`, no covering
//! or partial indexes, no summary tables. Filters compare with `=` / `!=`
//! (exact text, where auditlog ignores case and surrounding white space; the
//! generated data has one spelling per value, so the counts agree). The
//! histogram groups by UTC day (`substr(occurred_at, 1, 10)`): a
//! simplification of auditlog's time-zone-aware buckets that only favours
//! the baseline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::{Connection, params_from_iter};
use serde_json::Value;

use super::{Range, Shape};

/// One row as the baseline stores it.
#[derive(Debug, Clone)]
pub struct BaselineRow {
    pub account: String,
    pub occurred_at: String,
    pub level: String,
    pub category: String,
    pub event: String,
    pub user_id: String,
    pub user_name: Option<String>,
    pub ip: Option<String>,
    pub workflow_id: Option<String>,
    pub description: String,
    pub metadata: String,
}

impl BaselineRow {
    /// The row of one dataset line (an ingest body).
    pub fn from_ingest(account: &str, json: &str) -> Result<BaselineRow> {
        let v: Value = serde_json::from_str(json).context("dataset line is not JSON")?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let opt = |x: &Value| x.as_str().map(str::to_owned);
        Ok(BaselineRow {
            account: account.to_owned(),
            occurred_at: s("occurred_at"),
            level: s("level"),
            category: s("category"),
            event: s("event"),
            user_id: v["actor"]["id"].as_str().unwrap_or_default().to_owned(),
            user_name: opt(&v["actor"]["name"]),
            ip: opt(&v["ip_address"]),
            workflow_id: opt(&v["workflow_id"]),
            description: s("description"),
            metadata: v["metadata"].to_string(),
        })
    }
}

pub(crate) const SCHEMA: &str = "
CREATE TABLE baseline_events (
    account      TEXT NOT NULL,
    occurred_at  TEXT NOT NULL,
    level        TEXT NOT NULL,
    category     TEXT NOT NULL,
    event        TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    user_name    TEXT,
    ip           TEXT,
    workflow_id  TEXT,
    description  TEXT NOT NULL,
    metadata     TEXT NOT NULL
);
CREATE INDEX baseline_by_time ON baseline_events (account, occurred_at);
CREATE INDEX baseline_by_event ON baseline_events (account, event, occurred_at);
CREATE INDEX baseline_by_category ON baseline_events (account, category, occurred_at);
CREATE INDEX baseline_by_user ON baseline_events (account, user_name, occurred_at);
";

const INSERT: &str = "INSERT INTO baseline_events (account, occurred_at, level, category, event, \
     user_id, user_name, ip, workflow_id, description, metadata) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// The baseline database: one file, one writer connection.
#[derive(Debug)]
pub struct Baseline {
    path: PathBuf,
    conn: Connection,
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")?;
    Ok(conn)
}

impl Baseline {
    /// Creates the table and its indexes in a new file.
    pub fn create(path: &Path) -> Result<Baseline> {
        let conn = open(path)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Baseline {
            path: path.to_owned(),
            conn,
        })
    }

    /// Inserts `rows` in one transaction (one fsync); returns its duration.
    pub fn insert_transaction(&mut self, rows: &[BaselineRow]) -> Result<Duration> {
        let started = Instant::now();
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(INSERT)?;
            for r in rows {
                insert(&mut stmt, r)?;
            }
        }
        tx.commit()?;
        Ok(started.elapsed())
    }

    /// Inserts one row in its own transaction (autocommit); returns the
    /// duration.
    pub fn insert_one(&mut self, row: &BaselineRow) -> Result<Duration> {
        let started = Instant::now();
        let mut stmt = self.conn.prepare_cached(INSERT)?;
        insert(&mut stmt, row)?;
        Ok(started.elapsed())
    }

    /// Moves the WAL into the main file, as a quiet database would be.
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Bytes on disk (database, WAL, shared memory).
    pub fn size_bytes(&self) -> u64 {
        super::proc::files_size(&[
            self.path.clone(),
            with_suffix(&self.path, "-wal"),
            with_suffix(&self.path, "-shm"),
        ])
    }

    /// Files to evict from the page cache for a cold query.
    pub fn files(&self) -> Vec<PathBuf> {
        vec![self.path.clone(), with_suffix(&self.path, "-wal")]
    }

    /// A read connection, as a dashboard backend would hold.
    pub fn reader(&self) -> Result<Connection> {
        open(&self.path)
    }
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn insert(stmt: &mut rusqlite::CachedStatement<'_>, r: &BaselineRow) -> Result<()> {
    stmt.execute(rusqlite::params![
        r.account,
        r.occurred_at,
        r.level,
        r.category,
        r.event,
        r.user_id,
        r.user_name,
        r.ip,
        r.workflow_id,
        r.description,
        r.metadata
    ])?;
    Ok(())
}

/// The WHERE clause and parameters of a shape in a range.
pub(crate) fn selection(account: &str, shape: &Shape, range: &Range) -> (String, Vec<String>) {
    let mut sql = "account = ?".to_owned();
    let mut params = vec![account.to_owned()];
    if let Some((from, to)) = &range.bounds_text {
        sql.push_str(" AND occurred_at >= ? AND occurred_at < ?");
        params.push(from.clone());
        params.push(to.clone());
    }
    if let Some(w) = &shape.sql {
        sql.push_str(" AND ");
        sql.push_str(w);
        params.extend(shape.sql_params.iter().cloned());
    }
    (sql, params)
}

/// `SELECT count(*)` of the selection.
pub fn count(conn: &Connection, account: &str, shape: &Shape, range: &Range) -> Result<u64> {
    let (w, p) = selection(account, shape, range);
    let sql = format!("SELECT count(*) FROM baseline_events WHERE {w}");
    let n: i64 = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(p), |r| r.get(0))?;
    Ok(n as u64)
}

/// Events per UTC day of the selection; returns the number of days.
pub fn histogram(conn: &Connection, account: &str, shape: &Shape, range: &Range) -> Result<usize> {
    let (w, p) = selection(account, shape, range);
    let sql = format!(
        "SELECT substr(occurred_at, 1, 10) AS day, count(*) FROM baseline_events \
         WHERE {w} GROUP BY day ORDER BY day"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(p))?;
    let mut days = 0;
    while let Some(r) = rows.next()? {
        let _: String = r.get(0)?;
        let _: i64 = r.get(1)?;
        days += 1;
    }
    Ok(days)
}

/// The first page: the newest 50 rows, every column read.
pub fn first_page(conn: &Connection, account: &str, shape: &Shape, range: &Range) -> Result<usize> {
    let (w, p) = selection(account, shape, range);
    let sql = format!(
        "SELECT account, occurred_at, level, category, event, user_id, user_name, ip, \
         workflow_id, description, metadata FROM baseline_events WHERE {w} \
         ORDER BY occurred_at DESC LIMIT 50"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(p))?;
    let mut n = 0;
    let mut bytes = 0usize;
    while let Some(r) = rows.next()? {
        for i in 0..11 {
            let v: Option<String> = r.get(i)?;
            bytes += v.map_or(0, |s| s.len());
        }
        n += 1;
    }
    std::hint::black_box(bytes);
    Ok(n)
}

/// Streams every row of the account, newest first, as CSV with auditlog's
/// columns into `out`; returns the number of rows.
pub fn export_csv(conn: &Connection, account: &str, out: &mut impl std::io::Write) -> Result<u64> {
    let mut stmt = conn.prepare(
        "SELECT occurred_at, event, category, description, user_name, user_id, ip \
         FROM baseline_events WHERE account = ? ORDER BY occurred_at DESC",
    )?;
    let mut rows = stmt.query([account])?;
    out.write_all(
        b"Date and Time,Event Name,Event Category,Description,User/App Name,IP Address\r\n",
    )?;
    let mut n = 0;
    let mut line = String::with_capacity(512);
    while let Some(r) = rows.next()? {
        line.clear();
        let at: String = r.get(0)?;
        let name: Option<String> = r.get(4)?;
        let user = match name {
            Some(n) => n,
            None => r.get(5)?,
        };
        let ip: Option<String> = r.get(6)?;
        let cells = [
            at.as_str(),
            r.get_ref(1)?.as_str()?,
            r.get_ref(2)?.as_str()?,
            r.get_ref(3)?.as_str()?,
            user.as_str(),
            ip.as_deref().unwrap_or(""),
        ];
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            push_csv_cell(&mut line, c);
        }
        line.push_str("\r\n");
        out.write_all(line.as_bytes())?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// RFC 4180 quoting plus the formula-injection guard auditlog applies, so
/// both exports do the same work per cell.
pub(crate) fn push_csv_cell(out: &mut String, cell: &str) {
    let guard = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = guard || cell.contains([',', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    if guard {
        out.push('\'');
    }
    for ch in cell.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    if quote {
        out.push('"');
    }
}
