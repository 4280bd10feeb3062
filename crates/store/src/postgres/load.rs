//! The migration's bulk load ([`PgLoad`]): a whole store written into an
//! empty database in one transaction, each table's rows as binary `COPY`
//! in bounded chunks.
//!
//! The transaction runs on a connection of its own, outside the pools: if
//! the load fails or is dropped before [`LogLoad::commit`], the connection
//! closes and the database rolls everything back, leaving it as empty as
//! it was. `accounts` and `tokens` are locked (`EXCLUSIVE`: reads go on)
//! for its length, so the emptiness checked at the start still holds at
//! the commit even if a server was started on the database meanwhile.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_postgres::NoTls;

use super::copy::CopyRows;
use super::schema::{Month, Partitions};
use super::writer::EVENT_COLUMNS;
use super::{PgBackend, internal, pg_err};
use crate::backend::{AccountKey, NewRow};
use crate::migrate::{DumpAccount, LogLoad, StoredToken};
use crate::{Result, StoreError, StoreErrorKind};

/// A table's buffer is sent once it holds this many bytes: bounds the
/// load's memory whatever the store's size, and each `COPY` is still
/// large enough that round trips do not count.
const CHUNK_BYTES: usize = 8 << 20;

/// The tables a load buffers, with their `COPY` statements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    Events,
    IdempotencyKeys,
    Tiles,
    Checkpoints,
    IndexSegments,
    Tokens,
}

impl Table {
    const ALL: [Table; 6] = [
        Table::Events,
        Table::IdempotencyKeys,
        Table::Tiles,
        Table::Checkpoints,
        Table::IndexSegments,
        Table::Tokens,
    ];

    fn copy_sql(self) -> String {
        let (table, columns) = match self {
            Table::Events => ("events", EVENT_COLUMNS),
            Table::IdempotencyKeys => ("idempotency_keys", "account_id, key, seq"),
            Table::Tiles => ("tiles", "account_id, level, idx, hashes"),
            Table::Checkpoints => ("checkpoints", "account_id, size, note"),
            Table::IndexSegments => ("index_segments", "account_id, segment, summary, columns"),
            // `ord` is assigned in the order the rows come: listing order.
            Table::Tokens => (
                "tokens",
                "id, secret_hash, scope, role, created_at, revoked_at, expires_at, created_by, \
                 last_used_at, revoked_by, revoked_in, logged",
            ),
        };
        format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary)")
    }

    fn what(self) -> &'static str {
        match self {
            Table::Events => "copy events",
            Table::IdempotencyKeys => "copy idempotency keys",
            Table::Tiles => "copy tiles",
            Table::Checkpoints => "copy checkpoints",
            Table::IndexSegments => "copy index segments",
            Table::Tokens => "copy tokens",
        }
    }
}

/// An account's head as its rows make it.
#[derive(Clone, Copy, Debug, Default)]
struct Head {
    size: u64,
    recorded_at_us: Option<i64>,
}

/// A bulk load into an empty database; see the module doc.
pub struct PgLoad<'b> {
    backend: &'b PgBackend,
    client: tokio_postgres::Client,
    buffers: Vec<CopyRows>,
    heads: BTreeMap<i64, Head>,
    /// Months of buffered events whose partition is not known to exist.
    new_months: Vec<Month>,
    /// Partitions created in the transaction (known once it commits).
    created: Vec<Month>,
}

impl std::fmt::Debug for PgLoad<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLoad").finish_non_exhaustive()
    }
}

fn buffer() -> CopyRows {
    CopyRows::with_capacity(CHUNK_BYTES + (64 << 10))
}

impl PgBackend {
    /// Opens a bulk load: its own connection, a transaction, the locks of
    /// the module doc. Refuses a database that holds an account or a token
    /// ([`StoreErrorKind::Conflict`]).
    pub fn bulk_load(&self) -> Result<PgLoad<'_>> {
        let config = self.config.clone();
        let client = self
            .db
            .rt
            .block_on(async move {
                let (client, conn) = config.connect(NoTls).await?;
                tokio::spawn(conn);
                client
                    .batch_execute("BEGIN; LOCK TABLE accounts, tokens IN EXCLUSIVE MODE")
                    .await?;
                Ok::<_, tokio_postgres::Error>(client)
            })
            .map_err(pg_err("open the load's transaction"))?;
        let row = self
            .db
            .rt
            .block_on(client.query_one(
                "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM tokens)",
                &[],
            ))
            .map_err(pg_err("check that the database is empty"))?;
        let (accounts, tokens): (i64, i64) = (row.get(0), row.get(1));
        if accounts > 0 || tokens > 0 {
            return Err(StoreError::new(
                StoreErrorKind::Conflict,
                format!(
                    "the database is not empty ({accounts} accounts, {tokens} tokens): \
                     a store is copied into an empty database only"
                ),
            ));
        }
        Ok(PgLoad {
            backend: self,
            client,
            buffers: Table::ALL.iter().map(|_| buffer()).collect(),
            heads: BTreeMap::new(),
            new_months: Vec::new(),
            created: Vec::new(),
        })
    }
}

impl PgLoad<'_> {
    fn buf(&mut self, t: Table) -> &mut CopyRows {
        &mut self.buffers[t as usize]
    }

    /// Sends `t`'s buffer if it is full (or `force`).
    fn flush(&mut self, t: Table, force: bool) -> Result<()> {
        let buf = &self.buffers[t as usize];
        if buf.rows() == 0 || (!force && buf.len() < CHUNK_BYTES) {
            return Ok(());
        }
        let body = std::mem::replace(&mut self.buffers[t as usize], buffer());
        let rows = body.rows();
        let months = match t {
            Table::Events => std::mem::take(&mut self.new_months),
            _ => Vec::new(),
        };
        let rt = self.backend.db.rt.clone();
        let client = &self.client;
        rt.block_on(async {
            if t == Table::Events {
                // Every month of the chunk has its partition before the
                // `COPY` (created in the transaction, under the partition
                // lock, like a group commit's).
                for m in &months {
                    Partitions::create_in_tx(client, *m).await?;
                }
            }
            send_copy(client, &t.copy_sql(), t.what(), body.finish(), rows).await
        })?;
        self.created.extend(months);
        Ok(())
    }
}

/// One `COPY … FROM STDIN` of `body` (`rows` tuples), checked.
async fn send_copy(
    client: &tokio_postgres::Client,
    sql: &str,
    what: &'static str,
    body: Bytes,
    rows: u64,
) -> Result<()> {
    let sink = client.copy_in(sql).await.map_err(pg_err(what))?;
    futures_util::pin_mut!(sink);
    sink.send(body).await.map_err(pg_err(what))?;
    let n = sink.finish().await.map_err(pg_err(what))?;
    if n != rows {
        return Err(internal(format!("{what}: {n} of {rows} rows")));
    }
    Ok(())
}

impl LogLoad for PgLoad<'_> {
    fn accounts(&mut self, accounts: &[DumpAccount]) -> Result<()> {
        let mut out = CopyRows::with_capacity(accounts.len() * 64);
        for a in accounts {
            out.row(2);
            out.i64(a.key.0);
            out.text(Some(a.name.as_str()));
            self.heads.insert(a.key.0, Head::default());
        }
        let rows = out.rows();
        let rt = self.backend.db.rt.clone();
        rt.block_on(send_copy(
            &self.client,
            "COPY accounts (account_id, name) FROM STDIN (FORMAT binary)",
            "copy accounts",
            out.finish(),
            rows,
        ))
    }

    fn row(&mut self, account: AccountKey, row: &NewRow<'_>) -> Result<()> {
        let ty = *self
            .backend
            .event_types
            .get(&row.columns.event)
            .ok_or_else(|| internal("event type not registered"))?;
        let head = self
            .heads
            .get_mut(&account.0)
            .ok_or_else(|| internal(format!("rows of account {} before it", account.0)))?;
        if row.seq != head.size {
            return Err(internal(format!(
                "rows of account {} out of order: seq {} after {}",
                account.0, row.seq, head.size
            )));
        }
        head.size += 1;
        head.recorded_at_us = head.recorded_at_us.max(Some(row.recorded_at_us));
        let month = Month::of_micros(row.recorded_at_us)?;
        if !self.backend.partitions.has(month)
            && !self.new_months.contains(&month)
            && !self.created.contains(&month)
        {
            self.new_months.push(month);
        }
        let b = self.buf(Table::Events);
        b.row(12);
        b.i64(account.0);
        b.i64(row.seq as i64);
        b.timestamptz(row.recorded_at_us);
        b.text(Some(row.id));
        b.i64(row.columns.occurred_at_us);
        b.i32(ty);
        b.text(Some(row.columns.actor_id));
        b.text(row.columns.actor_name);
        b.text(row.columns.ip_address);
        b.text(row.columns.workflow_id);
        b.text(Some(row.canonical));
        b.bytes(&row.leaf_hash[..]);
        if let Some(key) = row.idempotency_key {
            let k = self.buf(Table::IdempotencyKeys);
            k.row(3);
            k.i64(account.0);
            k.text(Some(key));
            k.i64(row.seq as i64);
            self.flush(Table::IdempotencyKeys, false)?;
        }
        self.flush(Table::Events, false)
    }

    fn tile(&mut self, account: AccountKey, level: u8, index: u64, hashes: &[u8]) -> Result<()> {
        let b = self.buf(Table::Tiles);
        b.row(4);
        b.i64(account.0);
        b.i16(i16::from(level));
        b.i64(index as i64);
        b.bytes(hashes);
        self.flush(Table::Tiles, false)
    }

    fn checkpoint(&mut self, account: AccountKey, size: u64, note: &str) -> Result<()> {
        let b = self.buf(Table::Checkpoints);
        b.row(3);
        b.i64(account.0);
        b.i64(size as i64);
        b.text(Some(note));
        self.flush(Table::Checkpoints, false)
    }

    fn index_segment(
        &mut self,
        account: AccountKey,
        no: u32,
        summary: &[u8],
        columns: &[u8],
    ) -> Result<()> {
        let b = self.buf(Table::IndexSegments);
        b.row(4);
        b.i64(account.0);
        b.i32(no as i32);
        b.bytes(summary);
        b.bytes(columns);
        self.flush(Table::IndexSegments, false)
    }

    fn token(&mut self, t: &StoredToken) -> Result<()> {
        let logged = i32::try_from(t.logged).map_err(|_| internal("token bits out of range"))?;
        let b = self.buf(Table::Tokens);
        b.row(12);
        b.text(Some(&t.id));
        b.bytes(&t.secret_hash);
        b.text(Some(&t.scope));
        b.text(Some(&t.role));
        b.i64(t.created_at_us);
        b.opt_i64(t.revoked_at_us);
        b.opt_i64(t.expires_at_us);
        b.text(t.created_by.as_deref());
        b.opt_i64(t.last_used_at_us);
        b.text(t.revoked_by.as_deref());
        b.text(t.revoked_in.as_deref());
        b.i32(logged);
        self.flush(Table::Tokens, false)
    }

    /// The rest of every buffer, the heads (each account's size and latest
    /// `recorded_at`: what appends lock and continue from), the accounts'
    /// key sequence moved past the keys copied, then `COMMIT`.
    fn commit(&mut self) -> Result<()> {
        for t in Table::ALL {
            self.flush(t, true)?;
        }
        let mut heads = CopyRows::with_capacity(self.heads.len() * 40);
        for (&account, h) in &self.heads {
            heads.row(3);
            heads.i64(account);
            heads.i64(h.size as i64);
            match h.recorded_at_us {
                Some(t) => heads.timestamptz(t),
                None => heads.text(None),
            }
        }
        let rows = heads.rows();
        let rt = self.backend.db.rt.clone();
        rt.block_on(async {
            send_copy(
                &self.client,
                "COPY heads (account_id, size, recorded_at) FROM STDIN (FORMAT binary)",
                "copy heads",
                heads.finish(),
                rows,
            )
            .await?;
            // The next account registered gets a key past every copied one.
            self.client
                .batch_execute(
                    "SELECT setval(pg_get_serial_sequence('accounts', 'account_id'), \
                     max(account_id)) FROM accounts HAVING count(*) > 0; COMMIT",
                )
                .await
                .map_err(pg_err("commit the load"))
        })?;
        for m in std::mem::take(&mut self.created) {
            self.backend.partitions.mark(m);
        }
        Ok(())
    }
}
