//! Catching up on other processes' rows: when several processes append to
//! one database, a group first locks the heads of the accounts it touches
//! and brings this process's tree and index of each up to what is
//! committed (see the seam's contract in [`crate::backend`]).

use auditlog_core::catalog::EventId;
use auditlog_core::index::IndexRow;
use auditlog_core::merkle::Hash;
use auditlog_core::record::AccountId;

use super::{Op, Sequencer, WriteOp, internal};
use crate::backend::{AccountKey, HeadLocks, LogTx};
use crate::{Result, TreeHead};

impl Sequencer {
    /// Locks the heads of the accounts the group appends to, and brings the
    /// tree and index of each up to what other processes committed (read
    /// from the backend), before the group's snapshots are taken. `None`:
    /// this process is the only appender (see [`LogTx::lock_heads`]).
    pub(super) fn catch_up(
        &mut self,
        tx: &mut dyn LogTx,
        accounts: &[AccountId],
    ) -> Result<Option<HeadLocks>> {
        if accounts.is_empty() {
            return Ok(None);
        }
        let mut keyed: Vec<(AccountKey, &AccountId)> = accounts
            .iter()
            .map(|a| (self.accounts[a].state.key, a))
            .collect();
        keyed.sort_by_key(|(k, _)| k.0);
        let keys: Vec<AccountKey> = keyed.iter().map(|(k, _)| *k).collect();
        let Some(locks) = tx.lock_heads(&keys)? else {
            return Ok(None);
        };
        for ((key, account), head) in keyed.into_iter().zip(&locks.heads) {
            let acc = self.accounts.get_mut(account).expect("registered");
            let from = acc.tree.size();
            if head.size < from || acc.state.index.len() != from {
                return Err(internal(format!(
                    "account {account}: the database's log has {} events, this process {} (index {})",
                    head.size,
                    from,
                    acc.state.index.len()
                )));
            }
            if head.size == from {
                continue;
            }
            let mut rows: Vec<OwnedRow> = Vec::with_capacity((head.size - from) as usize);
            let tree = &mut acc.tree;
            tx.committed_rows(key, from, head.size, &mut |seq, hash, row| {
                if seq != from + rows.len() as u64 {
                    return Err(internal(format!(
                        "account {account}: the log has a gap at seq {}",
                        from + rows.len() as u64
                    )));
                }
                tree.append(*hash);
                rows.push(OwnedRow::from(row));
                Ok(())
            })?;
            if tree.size() != head.size {
                return Err(internal(format!(
                    "account {account}: {} events committed, {} read",
                    head.size,
                    tree.size()
                )));
            }
            // The tiles these rows filled were stored with them.
            drop(tree.take_full_tiles());
            if acc.state.index.append(rows.iter().map(OwnedRow::as_row)) {
                crate::layered::query::warn_index_overflow(account, &acc.state.index);
            }
            *acc.state.head.lock().unwrap_or_else(|e| e.into_inner()) = TreeHead {
                size: acc.tree.size(),
                root: acc.tree.root(),
            };
            tracing::debug!(%account, from, to = head.size, "caught up on another process's events");
        }
        Ok(Some(locks))
    }

    /// Applies the group's [`Op::Extend`]s (rows read off the writer after
    /// a notification), answering each at once with how many rows it
    /// added, and returns the other ops. Outside any transaction: the rows
    /// are committed, so only this process's memory changes.
    pub(super) fn extend(&mut self, ops: Vec<WriteOp>) -> Vec<WriteOp> {
        let mut rest = Vec::with_capacity(ops.len());
        for op in ops {
            let WriteOp(Op::Extend {
                account,
                from,
                rows,
                hashes,
                reply,
            }) = op
            else {
                rest.push(op);
                continue;
            };
            let added = self.extend_one(&account, from, &rows, &hashes);
            drop(reply.send(Ok(added)));
        }
        rest
    }

    fn extend_one(
        &mut self,
        account: &AccountId,
        from: u64,
        rows: &[OwnedRow],
        hashes: &[Hash],
    ) -> u64 {
        let Some(acc) = self.accounts.get_mut(account) else {
            return 0;
        };
        let have = acc.tree.size();
        // Rows starting past what this process holds would leave a gap.
        // It does not happen (a pull starts at the index's length, which
        // only grows), but should it, a read's catch-up fills it.
        if acc.state.index.len() != have || from > have {
            return 0;
        }
        // What this process appended or caught up on meanwhile is skipped.
        let skip = (have - from) as usize;
        if skip >= rows.len() || rows.len() != hashes.len() {
            return 0;
        }
        for hash in &hashes[skip..] {
            acc.tree.append(*hash);
        }
        // The tiles these rows filled were stored with them.
        drop(acc.tree.take_full_tiles());
        if acc
            .state
            .index
            .append(rows[skip..].iter().map(OwnedRow::as_row))
        {
            crate::layered::query::warn_index_overflow(account, &acc.state.index);
        }
        *acc.state.head.lock().unwrap_or_else(|e| e.into_inner()) = TreeHead {
            size: acc.tree.size(),
            root: acc.tree.root(),
        };
        // A chunk these rows filled is sealed after this group, and the
        // account holds more (write/evict.rs).
        self.unsealed.insert(account.clone());
        self.changed(account);
        let added = (rows.len() - skip) as u64;
        metrics::counter!("auditlog_index_rows_woken_total").increment(added);
        tracing::debug!(%account, from = have, added, "pulled another instance's events");
        added
    }
}

/// A row's index columns, owned: read while catching up, then indexed.
pub(in crate::layered) struct OwnedRow {
    occurred_at_us: i64,
    event: EventId,
    actor_id: String,
    actor_name: Option<String>,
    ip_address: Option<String>,
    workflow_id: Option<String>,
}

impl OwnedRow {
    pub(in crate::layered) fn from(row: IndexRow<'_>) -> OwnedRow {
        OwnedRow {
            occurred_at_us: row.occurred_at_us,
            event: row.event,
            actor_id: row.actor_id.to_owned(),
            actor_name: row.actor_name.map(str::to_owned),
            ip_address: row.ip_address.map(str::to_owned),
            workflow_id: row.workflow_id.map(str::to_owned),
        }
    }

    fn as_row(&self) -> IndexRow<'_> {
        IndexRow {
            occurred_at_us: self.occurred_at_us,
            event: self.event,
            actor_id: &self.actor_id,
            actor_name: self.actor_name.as_deref(),
            ip_address: self.ip_address.as_deref(),
            workflow_id: self.workflow_id.as_deref(),
        }
    }
}
