//! The writer thread: group commit. Concurrent writes queue on one channel;
//! the writer takes everything queued (up to a cap) into one transaction,
//! so they share one fsync. What a group does inside the transaction is the
//! layer's [`Sequencer`]; this file is its SQLite transaction ([`SqliteTx`])
//! and the thread around it.

use std::collections::HashMap;
use std::sync::Arc;

use auditlog_core::catalog::EventId;
use auditlog_core::index::StoredTail;
use auditlog_core::record::AccountId;
use rusqlite::{Connection, OptionalExtension, params};

use super::wal::WalCheckpoints;
use super::{internal, sql_err, tokens};
use crate::backend::{AccountKey, LogTx, NewRow};
use crate::layered::{Sequencer, WriteOp};
use crate::{RawRecord, Result, Revocation, TokenChange, TokenRecord};

/// Most operations one group commit takes; bounded so one commit's latency
/// stays predictable under a flood.
const MAX_GROUP_OPS: usize = 256;
/// Most events one group commit takes (a batch larger than this still goes
/// through alone: batches are never split).
const MAX_GROUP_EVENTS: usize = 20_000;

/// The writer's connection as a [`LogTx`].
pub(super) struct SqliteTx {
    pub(super) conn: Connection,
    pub(super) event_types: Arc<HashMap<EventId, i64>>,
    /// Whether the group in hand appends events (for the injected fault).
    #[cfg(feature = "fault-injection")]
    pub(super) group_appends: bool,
    /// Groups that append events left to commit before the injected panic.
    #[cfg(feature = "fault-injection")]
    pub(super) panic_after: Option<u64>,
}

impl LogTx for SqliteTx {
    fn register_account(&mut self, account: &AccountId) -> Result<AccountKey> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO accounts (name) VALUES (?1)",
                [account.as_str()],
            )
            .map_err(sql_err("register account"))?;
        self.conn
            .query_row(
                "SELECT id FROM accounts WHERE name = ?1",
                [account.as_str()],
                |r| r.get(0),
            )
            .map(AccountKey)
            .map_err(sql_err("register account"))
    }

    fn begin(&mut self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sql_err("begin transaction"))
    }

    fn find_idempotency_key(
        &mut self,
        account: AccountKey,
        key: &str,
    ) -> Result<Option<RawRecord>> {
        let row: Option<(i64, Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT seq, body, leaf_hash FROM events WHERE account = ?1 AND idempotency_key = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![account.0, key], |r| {
                    Ok((r.get(0)?, r.get_ref(1)?.as_bytes()?.to_vec(), r.get(2)?))
                })
                .optional()
            })
            .map_err(sql_err("look up idempotency key"))?;
        row.map(|(seq, canonical, hash)| {
            Ok(RawRecord {
                seq: seq as u64,
                canonical,
                leaf_hash: hash
                    .as_slice()
                    .try_into()
                    .map_err(|_| internal("stored leaf hash is not 32 bytes"))?,
            })
        })
        .transpose()
    }

    fn insert_row(&mut self, account: AccountKey, row: &NewRow<'_>) -> Result<()> {
        let ty = *self
            .event_types
            .get(&row.columns.event)
            .ok_or_else(|| internal("event type not registered"))?;
        self.conn
            .prepare_cached(
                "INSERT INTO events (account, seq, id, occurred_at, event_type, actor_id, actor_name, \
                 ip_address, workflow_id, idempotency_key, body, leaf_hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    account.0,
                    row.seq as i64,
                    row.id,
                    row.columns.occurred_at_us,
                    ty,
                    row.columns.actor_id,
                    row.columns.actor_name,
                    row.columns.ip_address,
                    row.columns.workflow_id,
                    row.idempotency_key,
                    row.canonical,
                    &row.leaf_hash[..],
                ])
            })
            .map_err(sql_err("insert event"))?;
        Ok(())
    }

    fn put_tile(
        &mut self,
        account: AccountKey,
        level: u8,
        index: u64,
        hashes: &[u8],
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO tiles (account, level, idx, hashes) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (account, level, idx) DO UPDATE SET hashes = excluded.hashes",
            )
            .and_then(|mut s| s.execute(params![account.0, level, index as i64, hashes]))
            .map_err(sql_err("write tile"))?;
        Ok(())
    }

    fn put_checkpoint(&mut self, account: AccountKey, size: u64, note: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO checkpoints (account, size, note) VALUES (?1, ?2, ?3)",
                params![account.0, size as i64, note],
            )
            .map_err(sql_err("store checkpoint"))?;
        Ok(())
    }

    fn insert_token(&mut self, token: &TokenRecord) -> Result<()> {
        tokens::insert_token(&self.conn, token)
    }

    fn revoke_token(&mut self, r: &Revocation) -> Result<bool> {
        let on = r.on.as_ref().map(AccountId::as_str);
        let by = r.by.as_deref();
        Ok(tokens::revoke_in(&self.conn, r.scope.as_str(), &r.id, by, on, r.at_us)? > 0)
    }

    fn mark_token_change(&mut self, id: &str, change: TokenChange) -> Result<bool> {
        tokens::set_logged(&self.conn, id, change)
    }

    fn touch_token(&mut self, id: &str, at_us: i64) -> Result<()> {
        tokens::touch(&self.conn, id, at_us)
    }

    fn put_index_segment(
        &mut self,
        account: AccountKey,
        no: u32,
        summary: &[u8],
        columns: &[u8],
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO index_segments (account, segment, summary, columns) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account, segment) \
                 DO UPDATE SET summary = excluded.summary, columns = excluded.columns",
            )
            .and_then(|mut s| s.execute(params![account.0, no, summary, columns]))
            .map_err(sql_err("write an index segment"))?;
        Ok(())
    }

    fn put_index_columns(&mut self, account: AccountKey, no: u32, columns: &[u8]) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE index_segments SET columns = ?3 WHERE account = ?1 AND segment = ?2",
            )
            .and_then(|mut s| s.execute(params![account.0, no, columns]))
            .map_err(sql_err("write an index segment"))?;
        Ok(())
    }

    fn delete_index_segments(&mut self, account: AccountKey) -> Result<()> {
        self.conn
            .execute("DELETE FROM index_segments WHERE account = ?1", [account.0])
            .map_err(sql_err("drop index segments"))?;
        self.conn
            .execute("DELETE FROM index_tails WHERE account = ?1", [account.0])
            .map_err(sql_err("drop an index tail"))?;
        Ok(())
    }

    fn put_index_tail(&mut self, account: AccountKey, tail: &StoredTail) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO index_tails (account, first, summary, columns) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account) DO UPDATE SET \
                 first = excluded.first, summary = excluded.summary, columns = excluded.columns",
            )
            .and_then(|mut s| {
                s.execute(params![
                    account.0,
                    tail.first as i64,
                    tail.summary,
                    tail.columns
                ])
            })
            .map_err(sql_err("write an index tail"))?;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        // Only groups that append events count, so that bookkeeping writes
        // (a token's last use, a checkpoint) cannot move the fault.
        #[cfg(feature = "fault-injection")]
        if let Some(n) = self.panic_after.as_mut().filter(|_| self.group_appends) {
            if *n == 0 {
                panic!("injected fault: writer panic");
            }
            *n -= 1;
        }
        self.conn.execute_batch("COMMIT").map_err(sql_err("commit"))
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}

pub(super) struct Writer {
    pub(super) tx: SqliteTx,
    pub(super) sequencer: Sequencer,
    pub(super) wal: WalCheckpoints,
}

impl Writer {
    /// Starts the writer thread on `queue`.
    pub(super) fn spawn(
        mut self,
        queue: tokio::sync::mpsc::Receiver<WriteOp>,
    ) -> std::io::Result<()> {
        let failure = self.sequencer.failure();
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
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(queue)));
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

    fn run(&mut self, mut rx: tokio::sync::mpsc::Receiver<WriteOp>) {
        while let Some(first) = rx.blocking_recv() {
            let mut events = first.weight();
            let mut ops = vec![first];
            while ops.len() < MAX_GROUP_OPS && events < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(op) => {
                        events += op.weight();
                        ops.push(op);
                    }
                    Err(_) => break,
                }
            }
            #[cfg(feature = "fault-injection")]
            {
                self.tx.group_appends = ops.iter().any(WriteOp::appends);
            }
            if self.sequencer.commit_group(&mut self.tx, ops) {
                // After the acknowledgements: a checkpoint is not their
                // business.
                self.wal.after_commit(&self.tx.conn);
            }
        }
        tracing::debug!("store writer stopped");
    }
}
