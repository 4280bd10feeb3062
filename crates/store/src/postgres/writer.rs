//! The writer thread and its transaction ([`PgTx`]): group commit as over
//! SQLite (everything queued, up to a cap, in one transaction), with the
//! group's rows buffered and sent at commit in one batch.
//!
//! Several instances may append to one account. At the group's start the
//! appended accounts' `heads` rows are locked (`FOR UPDATE`, ascending
//! keys: every process takes them in one order, so two groups cannot
//! deadlock) and the layer catches up on what other processes committed
//! ([`LogTx::lock_heads`], [`LogTx::committed_rows`]). At commit, in this
//! order: each `heads` row is moved from the size this process appended
//! from to the new one; then the rows (binary `COPY`, or one multi-row
//! `INSERT`: see [`BatchWrite`]), the idempotency keys and the filled
//! tiles; then `COMMIT`. The size check cannot fail while the lock is held;
//! it stays as a guard: should it ever fail, the writer stops (the process
//! restarts and rebuilds from the database) rather than fork the log.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use auditlog_core::catalog::EventId;
use auditlog_core::index::{IndexRow, StoredTail};
use auditlog_core::merkle::Hash;
use auditlog_core::record::AccountId;
use bytes::{BufMut, Bytes, BytesMut};
use deadpool_postgres::Object;
use futures_util::SinkExt;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::copy::{CopyRows, PG_EPOCH_US};
use super::listen::Announce;
use super::schema::{Month, Partitions, SEAL_LOCK_CLASS};
use super::{BatchWrite, Db, PgOptions, internal, pg_err, reader, tokens};
use crate::backend::{AccountKey, HeadLocks, LockedHead, LogTx, NewRow};
use crate::layered::{Sequencer, WriteOp};
use crate::{Clock, RawRecord, Result, Revocation, StoreError, StoreErrorKind, TokenChange};
use crate::{TokenRecord, layered::WriterFailure};

/// Most operations one group commit takes (as SQLite's writer).
const MAX_GROUP_OPS: usize = 256;
/// Most events one group commit takes (a larger batch still goes alone).
const MAX_GROUP_EVENTS: usize = 20_000;

/// A group's rows, column by column, until the commit sends them.
#[derive(Default)]
struct Rows {
    account: Vec<i64>,
    seq: Vec<i64>,
    recorded_at: Vec<i64>,
    id: Vec<String>,
    occurred_at: Vec<i64>,
    event_type: Vec<i32>,
    actor_id: Vec<String>,
    actor_name: Vec<Option<String>>,
    ip_address: Vec<Option<String>>,
    workflow_id: Vec<Option<String>>,
    body: Vec<String>,
    leaf_hash: Vec<Vec<u8>>,
}

impl Rows {
    fn len(&self) -> usize {
        self.seq.len()
    }

    /// The rows in PostgreSQL's binary `COPY` format.
    fn to_copy(&self) -> Bytes {
        let mut out = CopyRows::with_capacity(self.body.iter().map(|b| b.len() + 160).sum());
        for i in 0..self.len() {
            out.row(12);
            out.i64(self.account[i]);
            out.i64(self.seq[i]);
            out.timestamptz(self.recorded_at[i]);
            out.text(Some(&self.id[i]));
            out.i64(self.occurred_at[i]);
            out.i32(self.event_type[i]);
            out.text(Some(&self.actor_id[i]));
            out.text(self.actor_name[i].as_deref());
            out.text(self.ip_address[i].as_deref());
            out.text(self.workflow_id[i].as_deref());
            out.text(Some(&self.body[i]));
            out.bytes(&self.leaf_hash[i]);
        }
        out.finish()
    }
}

/// A `timestamptz` parameter from Unix microseconds (the driver maps only
/// chrono's and time's types, which this crate does not use).
#[derive(Clone, Copy, Debug)]
struct PgTime(i64);

impl ToSql for PgTime {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_i64(self.0 - PG_EPOCH_US);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }

    to_sql_checked!();
}

pub(super) const EVENT_COLUMNS: &str = "account_id, seq, recorded_at, id, occurred_at, event_type, actor_id, \
     actor_name, ip_address, workflow_id, body, leaf_hash";

/// The writer's connection as a [`LogTx`].
pub(super) struct PgTx {
    db: Db,
    /// Taken from the writer's pool when needed; dropped after an error
    /// that closed it, so the next group connects again.
    conn: Option<Object>,
    event_types: Arc<HashMap<EventId, i32>>,
    by_type: Arc<HashMap<i32, EventId>>,
    partitions: Arc<Partitions>,
    clock: Clock,
    /// Whether `recorded_at` comes from the database's clock.
    database_clock: bool,
    batch: BatchWrite,
    rows: Rows,
    /// Per appended account: the size it was appended from, and to.
    heads: BTreeMap<i64, (u64, u64)>,
    keys: (Vec<i64>, Vec<String>, Vec<i64>),
    tiles: (Vec<i64>, Vec<i16>, Vec<i64>, Vec<Vec<u8>>),
    /// Months whose partition this transaction creates.
    new_months: Vec<Month>,
    /// Set when the database's log moved behind this process's back.
    diverged: Option<String>,
    /// Where committed appends are announced to other instances; `None`:
    /// not announced (the command line's one-shot commands).
    pub(super) appends: Option<Arc<Announce>>,
}

impl PgTx {
    pub(super) fn new(
        db: Db,
        event_types: Arc<HashMap<EventId, i32>>,
        partitions: Arc<Partitions>,
        opts: &PgOptions,
    ) -> PgTx {
        let by_type = event_types.iter().map(|(e, t)| (*t, *e)).collect();
        PgTx {
            db,
            conn: None,
            event_types,
            by_type: Arc::new(by_type),
            partitions,
            clock: opts.clock.clone(),
            database_clock: opts.database_clock,
            batch: opts.batch_write,
            rows: Rows::default(),
            heads: BTreeMap::new(),
            keys: Default::default(),
            tiles: Default::default(),
            new_months: Vec::new(),
            diverged: None,
            appends: None,
        }
    }

    fn conn(&mut self) -> Result<&Object> {
        if self.conn.as_ref().is_some_and(|c| c.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = Some(self.db.get()?);
        }
        Ok(self.conn.as_ref().expect("connected above"))
    }

    /// Runs one statement on the writer's connection; the rows it changed.
    fn execute(
        &mut self,
        context: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64> {
        let rt = self.db.rt.clone();
        let conn = self.conn()?;
        rt.block_on(async {
            let stmt = conn.prepare_cached(sql).await?;
            conn.execute(&stmt, params).await
        })
        .map_err(pg_err(context))
    }

    fn clear(&mut self) {
        self.rows = Rows::default();
        self.heads.clear();
        self.keys = Default::default();
        self.tiles = Default::default();
        self.new_months.clear();
    }

    /// Sends the group's buffered writes, inside its transaction.
    /// `Ok(Err(cause))`: an appended account's head was not where this
    /// process left it (see the module doc).
    async fn flush(&self, conn: &Object) -> Result<Result<(), String>> {
        // Heads first, in account order (the BTreeMap's), pipelined.
        let update = conn
            .prepare_cached(
                "UPDATE heads SET size = $3, recorded_at = GREATEST(recorded_at, $4) \
                 WHERE account_id = $1 AND size = $2",
            )
            .await
            .map_err(pg_err("update heads"))?;
        let now = PgTime(self.rows.recorded_at.iter().copied().max().unwrap_or(0));
        let params: Vec<[i64; 3]> = self
            .heads
            .iter()
            .map(|(&a, &(from, to))| [a, from as i64, to as i64])
            .collect();
        let args: Vec<[&(dyn ToSql + Sync); 4]> = params
            .iter()
            .map(|p| [&p[0] as _, &p[1] as _, &p[2] as _, &now as _])
            .collect();
        let updates = args.iter().map(|a| conn.execute(&update, a));
        let counts = futures_util::future::try_join_all(updates)
            .await
            .map_err(pg_err("update heads"))?;
        if let Some((account, _)) = params.iter().zip(&counts).find(|(_, n)| **n != 1) {
            return Ok(Err(format!(
                "the log of account {} in the database is not at size {}: another process \
                 appended to it, or a commit whose outcome was unknown did commit",
                account[0], account[1]
            )));
        }
        for m in &self.new_months {
            Partitions::create_in_tx(conn, *m).await?;
        }
        if self.rows.len() > 0 {
            match self.batch {
                BatchWrite::Copy => self.copy_rows(conn).await?,
                BatchWrite::Insert => self.insert_rows(conn).await?,
            }
        }
        if !self.keys.0.is_empty() {
            let stmt = conn
                .prepare_cached(
                    "INSERT INTO idempotency_keys (account_id, key, seq) \
                     SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[])",
                )
                .await
                .map_err(pg_err("insert idempotency keys"))?;
            conn.execute(&stmt, &[&self.keys.0, &self.keys.1, &self.keys.2])
                .await
                .map_err(pg_err("insert idempotency keys"))?;
        }
        if !self.tiles.0.is_empty() {
            let stmt = conn
                .prepare_cached(
                    "INSERT INTO tiles (account_id, level, idx, hashes) \
                     SELECT * FROM unnest($1::int8[], $2::int2[], $3::int8[], $4::bytea[]) \
                     ON CONFLICT (account_id, level, idx) DO UPDATE SET hashes = excluded.hashes",
                )
                .await
                .map_err(pg_err("write tiles"))?;
            let t = &self.tiles;
            conn.execute(&stmt, &[&t.0, &t.1, &t.2, &t.3])
                .await
                .map_err(pg_err("write tiles"))?;
        }
        Ok(Ok(()))
    }

    async fn copy_rows(&self, conn: &Object) -> Result<()> {
        let sink = conn
            .copy_in(&format!(
                "COPY events ({EVENT_COLUMNS}) FROM STDIN (FORMAT binary)"
            ))
            .await
            .map_err(pg_err("insert events"))?;
        futures_util::pin_mut!(sink);
        sink.send(self.rows.to_copy())
            .await
            .map_err(pg_err("insert events"))?;
        let n = sink.finish().await.map_err(pg_err("insert events"))?;
        if n != self.rows.len() as u64 {
            return Err(internal(format!(
                "copied {n} of {} events",
                self.rows.len()
            )));
        }
        Ok(())
    }

    async fn insert_rows(&self, conn: &Object) -> Result<()> {
        let stmt = conn
            .prepare_cached(&format!(
                "INSERT INTO events ({EVENT_COLUMNS}) \
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::timestamptz[], $4::text[], \
                             $5::int8[], $6::int4[], $7::text[], $8::text[], $9::text[], \
                             $10::text[], $11::text[], $12::bytea[])"
            ))
            .await
            .map_err(pg_err("insert events"))?;
        let r = &self.rows;
        let recorded_at: Vec<PgTime> = r.recorded_at.iter().map(|&t| PgTime(t)).collect();
        conn.execute(
            &stmt,
            &[
                &r.account,
                &r.seq,
                &recorded_at,
                &r.id,
                &r.occurred_at,
                &r.event_type,
                &r.actor_id,
                &r.actor_name,
                &r.ip_address,
                &r.workflow_id,
                &r.body,
                &r.leaf_hash,
            ],
        )
        .await
        .map_err(pg_err("insert events"))?;
        Ok(())
    }
}

impl LogTx for PgTx {
    /// The account's row and its `heads` row, in one transaction of their
    /// own.
    fn register_account(&mut self, account: &AccountId) -> Result<AccountKey> {
        let rt = self.db.rt.clone();
        self.conn()?;
        let conn = self.conn.as_mut().expect("connected above");
        rt.block_on(async {
            let tx = conn.transaction().await?;
            tx.execute(
                "INSERT INTO accounts (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                &[&account.as_str()],
            )
            .await?;
            let key: i64 = tx
                .query_one(
                    "SELECT account_id FROM accounts WHERE name = $1",
                    &[&account.as_str()],
                )
                .await?
                .get(0);
            tx.execute(
                "INSERT INTO heads (account_id) VALUES ($1) ON CONFLICT (account_id) DO NOTHING",
                &[&key],
            )
            .await?;
            tx.commit().await?;
            Ok(AccountKey(key))
        })
        .map_err(pg_err("register account"))
    }

    fn begin(&mut self) -> Result<()> {
        self.clear();
        // The partitions of this month and the next ones exist before the
        // group's transaction (creating one locks the table; inside the
        // group it would hold that lock until the commit).
        let now = self.clock.now().as_microsecond();
        if !self.partitions.has(Month::of_micros(now)?) {
            let rt = self.db.rt.clone();
            let partitions = self.partitions.clone();
            let conn = self.conn()?;
            rt.block_on(partitions.ensure_ahead(conn, now))?;
        }
        self.execute("begin transaction", "BEGIN", &[]).map(drop)
    }

    /// `SELECT … FOR UPDATE` with `ORDER BY`: PostgreSQL locks the rows in
    /// the sorted order, ascending keys, the same in every process.
    fn lock_heads(&mut self, accounts: &[AccountKey]) -> Result<Option<HeadLocks>> {
        let keys: Vec<i64> = accounts.iter().map(|a| a.0).collect();
        let rt = self.db.rt.clone();
        let database_clock = self.database_clock;
        let conn = self.conn()?;
        let rows = rt
            .block_on(async {
                let stmt = conn
                    .prepare_cached(
                        "SELECT account_id, size, \
                         (extract(epoch FROM recorded_at) * 1000000)::int8, \
                         (extract(epoch FROM clock_timestamp()) * 1000000)::int8 \
                         FROM heads WHERE account_id = ANY($1) ORDER BY account_id FOR UPDATE",
                    )
                    .await?;
                conn.query(&stmt, &[&keys]).await
            })
            .map_err(pg_err("lock heads"))?;
        let mut heads = Vec::with_capacity(accounts.len());
        for (key, row) in keys.iter().zip(&rows) {
            if row.get::<_, i64>(0) != *key {
                return Err(internal(format!("account {key} has no head row")));
            }
            heads.push(LockedHead {
                size: row.get::<_, i64>(1) as u64,
                recorded_at_us: row.get(2),
            });
        }
        if heads.len() != keys.len() {
            return Err(internal("an appended account has no head row"));
        }
        let now_us = rows
            .first()
            .filter(|_| database_clock)
            .map(|r| r.get::<_, i64>(3));
        Ok(Some(HeadLocks { heads, now_us }))
    }

    fn committed_rows(
        &mut self,
        account: AccountKey,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(u64, &Hash, IndexRow<'_>) -> Result<()>,
    ) -> Result<()> {
        let rt = self.db.rt.clone();
        let conn = self.conn()?;
        let rows = rt
            .block_on(async {
                let stmt = conn
                    .prepare_cached(
                        "SELECT seq, leaf_hash, occurred_at, event_type, actor_id, actor_name, \
                         ip_address, workflow_id FROM events \
                         WHERE account_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
                    )
                    .await?;
                conn.query(&stmt, &[&account.0, &(from as i64), &(to as i64)])
                    .await
            })
            .map_err(pg_err("read another process's events"))?;
        for r in &rows {
            let ty: i32 = r.get(3);
            let event = *self
                .by_type
                .get(&ty)
                .ok_or_else(|| internal(format!("stored event type {ty} is not in the catalog")))?;
            visit(
                r.get::<_, i64>(0) as u64,
                &reader::leaf_hash(r.get(1))?,
                IndexRow {
                    occurred_at_us: r.get(2),
                    event,
                    actor_id: r.get(4),
                    actor_name: r.get(5),
                    ip_address: r.get(6),
                    workflow_id: r.get(7),
                },
            )?;
        }
        Ok(())
    }

    fn find_idempotency_key(
        &mut self,
        account: AccountKey,
        key: &str,
    ) -> Result<Option<RawRecord>> {
        let rt = self.db.rt.clone();
        let conn = self.conn()?;
        let row = rt
            .block_on(async {
                let stmt = conn
                    .prepare_cached(
                        "SELECT e.seq, e.body, e.leaf_hash FROM idempotency_keys k \
                         JOIN events e ON e.account_id = k.account_id AND e.seq = k.seq \
                         WHERE k.account_id = $1 AND k.key = $2",
                    )
                    .await?;
                conn.query_opt(&stmt, &[&account.0, &key]).await
            })
            .map_err(pg_err("look up idempotency key"))?;
        row.map(|r| {
            Ok(RawRecord {
                seq: r.get::<_, i64>(0) as u64,
                canonical: r.get::<_, &str>(1).as_bytes().to_vec(),
                leaf_hash: reader::leaf_hash(r.get(2))?,
            })
        })
        .transpose()
    }

    fn insert_row(&mut self, account: AccountKey, row: &NewRow<'_>) -> Result<()> {
        let ty = *self
            .event_types
            .get(&row.columns.event)
            .ok_or_else(|| internal("event type not registered"))?;
        let month = Month::of_micros(row.recorded_at_us)?;
        if !self.partitions.has(month) && !self.new_months.contains(&month) {
            // A clock far from the months created ahead (a test's pinned
            // clock, a jump): the partition is created in the group.
            self.new_months.push(month);
        }
        let head = self.heads.entry(account.0).or_insert((row.seq, row.seq));
        if row.seq != head.1 {
            return Err(internal(format!(
                "rows of account {} out of order: seq {} after {}",
                account.0, row.seq, head.1
            )));
        }
        head.1 = row.seq + 1;
        let r = &mut self.rows;
        r.account.push(account.0);
        r.seq.push(row.seq as i64);
        r.recorded_at.push(row.recorded_at_us);
        r.id.push(row.id.to_owned());
        r.occurred_at.push(row.columns.occurred_at_us);
        r.event_type.push(ty);
        r.actor_id.push(row.columns.actor_id.to_owned());
        r.actor_name.push(row.columns.actor_name.map(str::to_owned));
        r.ip_address.push(row.columns.ip_address.map(str::to_owned));
        r.workflow_id
            .push(row.columns.workflow_id.map(str::to_owned));
        r.body.push(row.canonical.to_owned());
        r.leaf_hash.push(row.leaf_hash.to_vec());
        if let Some(key) = row.idempotency_key {
            self.keys.0.push(account.0);
            self.keys.1.push(key.to_owned());
            self.keys.2.push(row.seq as i64);
        }
        Ok(())
    }

    fn put_tile(
        &mut self,
        account: AccountKey,
        level: u8,
        index: u64,
        hashes: &[u8],
    ) -> Result<()> {
        self.tiles.0.push(account.0);
        self.tiles.1.push(i16::from(level));
        self.tiles.2.push(index as i64);
        self.tiles.3.push(hashes.to_vec());
        Ok(())
    }

    fn put_index_segment(
        &mut self,
        account: AccountKey,
        no: u32,
        summary: &[u8],
        columns: &[u8],
    ) -> Result<()> {
        self.execute(
            "write an index segment",
            "INSERT INTO index_segments (account_id, segment, summary, columns) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, segment) \
             DO UPDATE SET summary = excluded.summary, columns = excluded.columns",
            &[&account.0, &(no as i32), &summary, &columns],
        )
        .map(drop)
    }

    /// `pg_try_advisory_xact_lock`: a process that finds the account's
    /// lock taken moves on (its ingest never waits on sealing), and the
    /// lock ends with the transaction, or with the session of a process
    /// that died holding it.
    fn lock_index_segments(
        &mut self,
        account: AccountKey,
        nos: &[u32],
    ) -> Result<Option<Vec<Option<Vec<u8>>>>> {
        let rt = self.db.rt.clone();
        let conn = self.conn()?;
        let numbers: Vec<i32> = nos.iter().map(|&n| n as i32).collect();
        let stored = rt
            .block_on(async {
                let locked: bool = conn
                    .query_one(
                        "SELECT pg_try_advisory_xact_lock($1, $2)",
                        &[&SEAL_LOCK_CLASS, &(account.0 as i32)],
                    )
                    .await?
                    .get(0);
                if !locked {
                    return Ok(None);
                }
                let stmt = conn
                    .prepare_cached(
                        "SELECT segment, summary FROM index_segments \
                         WHERE account_id = $1 AND segment = ANY($2)",
                    )
                    .await?;
                conn.query(&stmt, &[&account.0, &numbers]).await.map(Some)
            })
            .map_err(pg_err("lock index segments"))?;
        Ok(stored.map(|rows| {
            let mut by_no: HashMap<i32, Vec<u8>> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            numbers.iter().map(|n| by_no.remove(n)).collect()
        }))
    }

    fn put_index_columns(&mut self, account: AccountKey, no: u32, columns: &[u8]) -> Result<()> {
        self.execute(
            "write an index segment",
            "UPDATE index_segments SET columns = $3 WHERE account_id = $1 AND segment = $2",
            &[&account.0, &(no as i32), &columns],
        )
        .map(drop)
    }

    fn delete_index_segments(&mut self, account: AccountKey) -> Result<()> {
        self.execute(
            "drop index segments",
            "DELETE FROM index_segments WHERE account_id = $1",
            &[&account.0],
        )?;
        self.execute(
            "drop an index tail",
            "DELETE FROM index_tails WHERE account_id = $1",
            &[&account.0],
        )
        .map(drop)
    }

    fn put_index_tail(&mut self, account: AccountKey, tail: &StoredTail) -> Result<()> {
        self.execute(
            "write an index tail",
            "INSERT INTO index_tails (account_id, first, summary, columns) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (account_id) DO UPDATE SET \
             first = excluded.first, summary = excluded.summary, columns = excluded.columns",
            &[
                &account.0,
                &(tail.first as i64),
                &tail.summary,
                &tail.columns,
            ],
        )
        .map(drop)
    }

    fn put_checkpoint(&mut self, account: AccountKey, size: u64, note: &str) -> Result<()> {
        self.execute(
            "store checkpoint",
            "INSERT INTO checkpoints (account_id, size, note) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, size) DO NOTHING",
            &[&account.0, &(size as i64), &note],
        )
        .map(drop)
    }

    /// In a savepoint: a failed insert (a duplicate id or hash) must not
    /// abort the group's transaction, which PostgreSQL would otherwise do.
    fn insert_token(&mut self, token: &TokenRecord) -> Result<()> {
        let rt = self.db.rt.clone();
        let conn = self.conn()?;
        rt.block_on(async {
            conn.batch_execute("SAVEPOINT token")
                .await
                .map_err(pg_err("insert token"))?;
            let inserted = tokens::insert(conn, token).await;
            let end = match inserted {
                Ok(()) => "RELEASE SAVEPOINT token",
                Err(_) => "ROLLBACK TO SAVEPOINT token",
            };
            conn.batch_execute(end)
                .await
                .map_err(pg_err("insert token"))?;
            inserted
        })
    }

    fn revoke_token(&mut self, r: &Revocation) -> Result<bool> {
        let rt = self.db.rt.clone();
        let conn = self.conn()?;
        let on = r.on.as_ref().map(AccountId::as_str);
        rt.block_on(tokens::revoke(
            conn,
            r.scope.as_str(),
            &r.id,
            r.by.as_deref(),
            on,
            r.at_us,
        ))
    }

    fn mark_token_change(&mut self, id: &str, change: TokenChange) -> Result<bool> {
        let rt = self.db.rt.clone();
        let conn = self.conn()?;
        rt.block_on(tokens::set_logged(conn, id, change))
    }

    fn touch_token(&mut self, id: &str, at_us: i64) -> Result<()> {
        let rt = self.db.rt.clone();
        let conn = self.conn()?;
        rt.block_on(tokens::touch(conn, id, at_us))
    }

    /// Sends the buffered rows, then commits. An error on `COMMIT` itself
    /// leaves the outcome unknown: the client's retry with its idempotency
    /// key finds the rows if they were committed.
    fn commit(&mut self) -> Result<()> {
        let rt = self.db.rt.clone();
        self.conn()?;
        let conn = self.conn.take().expect("connected above");
        let flushed = rt.block_on(async {
            if let Err(cause) = self.flush(&conn).await? {
                return Ok(Err(cause));
            }
            conn.batch_execute("COMMIT")
                .await
                .map_err(pg_err("commit"))?;
            Ok(Ok(()))
        });
        self.conn = Some(conn);
        if let Err(cause) = flushed? {
            self.diverged = Some(cause.clone());
            return Err(StoreError::new(StoreErrorKind::Unavailable, cause));
        }
        if let Some(appends) = &self.appends {
            // Other instances hear of it from the notifier (`listen.rs`),
            // off this thread: the acknowledgements do not wait for it.
            appends.push(self.heads.keys().copied());
        }
        for m in std::mem::take(&mut self.new_months) {
            self.partitions.mark(m);
        }
        self.clear();
        Ok(())
    }

    fn rollback(&mut self) {
        self.clear();
        let rt = self.db.rt.clone();
        if let Some(conn) = &self.conn
            && rt.block_on(conn.batch_execute("ROLLBACK")).is_err()
        {
            // A connection that cannot even roll back is replaced.
            self.conn = None;
        }
    }
}

/// Starts the writer thread on `queue`.
pub(super) fn spawn(
    mut tx: PgTx,
    mut sequencer: Sequencer,
    mut queue: tokio::sync::mpsc::Receiver<WriteOp>,
) -> std::io::Result<()> {
    let failure: WriterFailure = sequencer.failure();
    std::thread::Builder::new()
        .name("auditlog-pg-writer".into())
        .spawn(move || {
            // As over SQLite: a panic drops the queue and the group in hand
            // (every waiting append gets an error), and is reported.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                while let Some(first) = queue.blocking_recv() {
                    let mut events = first.weight();
                    let mut ops = vec![first];
                    while ops.len() < MAX_GROUP_OPS && events < MAX_GROUP_EVENTS {
                        match queue.try_recv() {
                            Ok(op) => {
                                events += op.weight();
                                ops.push(op);
                            }
                            Err(_) => break,
                        }
                    }
                    sequencer.commit_group(&mut tx, ops);
                    if let Some(cause) = tx.diverged.take() {
                        // Only a fresh open rebuilds the trees from the
                        // database: stop, so the process restarts.
                        tracing::error!(cause, "store writer stopped; restart to catch up");
                        failure.report(cause);
                        return;
                    }
                }
                tracing::debug!("store writer stopped");
            }));
            if let Err(panic) = outcome {
                let cause = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                tracing::error!(cause, "store writer died; writes fail until restart");
                failure.report(format!("panicked: {cause}"));
            }
        })
        .map(drop)
}
