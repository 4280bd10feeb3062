//! Closing open accounts to keep what they hold within a budget.
//!
//! An open account holds, outside the segment cache: its index's tail (up
//! to 65,535 rows), dictionaries, rows per actor, rollups and summaries,
//! and its Merkle tree's right edge. Without a bound, a client (or the
//! checkpoint signer) touching thousands of accounts would keep them all.
//! So the writer keeps an estimate of each open account's bytes
//! ([`LogIndex::open_bytes`](auditlog_core::index::LogIndex::open_bytes)
//! and [`TreeState::heap_bytes`](auditlog_core::merkle::TreeState::heap_bytes),
//! counters read after each group that changed the account, never a walk),
//! and past the budget (`--open-accounts-memory`) closes the least
//! recently used idle accounts. Closing drops the in-memory state; the
//! next use opens the account again from what is stored, exactly as a
//! first use after a restart does (`open.rs`). The index tails of the
//! accounts about to close are stored first, as a clean shutdown stores
//! them, so that an open restores each tail instead of reading its rows.
//!
//! Why the writer decides: it owns each account's tree (its next `seq`),
//! and every change of what an account holds is made by it (adoptions,
//! appends, catch-ups, sealing), so it sees the total change and can take
//! an account out of its own state and the slot in one step. Nothing
//! acknowledged can be lost: an account is only closed between groups,
//! when all it holds is committed, and never with full chunks whose
//! segments are not stored yet. Nor can an older state come back: an
//! open that read the store before a close (its caller went away, its
//! state still on its way to the writer) is refused (`Opened::closes`).
//!
//! Never closed:
//! - an account in use: a query running on it, or a caller whose write,
//!   checkpoint or catch-up is on its way to the writer (each holds the
//!   state's `Arc`; [`Slot::close`](crate::layered::open::Slot::close)
//!   checks the count under the slot's write lock, where new holders
//!   clone it);
//! - the account used last, whatever its size: one account larger than the
//!   budget is then not reopened at every write (its summaries are read
//!   again at each open), and the bound is the budget plus that account.

use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(test)]
mod tests;

use auditlog_core::record::AccountId;

use super::{Sequencer, WriterAccount};
use crate::OpenAccountStats;
use crate::backend::LogTx;

/// What every open account costs besides its index and tree: its state,
/// slot, the writer's entry and their map entries (measured ~600 bytes;
/// rounded up).
const ACCOUNT_BYTES: usize = 1024;

/// Open accounts: the budget, and what the writer last counted (read by
/// `/metrics`).
pub(in crate::layered) struct OpenAccounts {
    budget: usize,
    open: AtomicU64,
    bytes: AtomicU64,
    evictions: AtomicU64,
}

impl OpenAccounts {
    pub(in crate::layered) fn new(budget: usize) -> OpenAccounts {
        OpenAccounts {
            budget,
            open: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    pub(in crate::layered) fn stats(&self) -> OpenAccountStats {
        OpenAccountStats {
            open: self.open.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            budget: self.budget as u64,
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }
}

/// What `acc` holds now, estimated.
fn bytes_of(acc: &WriterAccount) -> usize {
    acc.state.index.open_bytes() + acc.tree.heap_bytes() + ACCOUNT_BYTES
}

impl Sequencer {
    /// `account`'s bytes changed (or it was opened): counted again before
    /// the next decision.
    pub(super) fn changed(&mut self, account: &AccountId) {
        if !self.dirty.contains(account) {
            self.dirty.insert(account.clone());
        }
    }

    /// Counts again the accounts that changed, then, past the budget,
    /// closes idle accounts, least recently used first, down to 7/8 of it
    /// (so that the next few groups do not each pay for a pass).
    pub(super) fn bound_open_accounts(&mut self, tx: &mut dyn LogTx) {
        for account in std::mem::take(&mut self.dirty) {
            if let Some(acc) = self.accounts.get_mut(&account) {
                let now = bytes_of(acc);
                self.open_bytes = self.open_bytes - acc.counted + now;
                acc.counted = now;
            }
        }
        let budget = self.shared.open.budget;
        if self.open_bytes > budget {
            self.close_idle(tx, budget - budget / 8);
        }
        let open = &self.shared.open;
        open.open
            .store(self.accounts.len() as u64, Ordering::Relaxed);
        open.bytes.store(self.open_bytes as u64, Ordering::Relaxed);
    }

    fn close_idle(&mut self, tx: &mut dyn LogTx, target: usize) {
        let mut by_use: Vec<(u64, AccountId)> = self
            .accounts
            .keys()
            .filter_map(|a| Some((self.shared.slot(a)?.last_use(), a.clone())))
            .collect();
        by_use.sort_unstable_by_key(|(tick, _)| *tick);
        // The account used last stays open.
        by_use.pop();
        // Full chunks not stored yet would be replayed from rows at the
        // next open: such an account is closed after they are stored.
        by_use.retain(|(_, a)| {
            self.accounts
                .get(a)
                .is_some_and(|acc| !acc.state.index.has_unsealed())
        });
        self.store_tails_before_closing(tx, &by_use, target);
        let mut closed = 0;
        for (_, account) in by_use {
            if self.open_bytes <= target {
                break;
            }
            let (Some(acc), Some(slot)) = (self.accounts.get(&account), self.shared.slot(&account))
            else {
                continue;
            };
            if !slot.close(&acc.state) {
                continue;
            }
            let acc = self.accounts.remove(&account).expect("looked up above");
            self.open_bytes -= acc.counted;
            closed += 1;
            tracing::debug!(%account, bytes = acc.counted, "account closed (open accounts past their budget)");
        }
        if closed > 0 {
            self.shared
                .open
                .evictions
                .fetch_add(closed, Ordering::Relaxed);
        }
    }

    /// Stores the index tails of the accounts `close_idle` is about to
    /// close (the least recently used of `by_use` down to `target`), so
    /// that their next open restores each tail instead of reading its rows
    /// again: an account of fewer than 65,536 rows is all tail, and with
    /// more accounts in use than the budget holds, each is closed and
    /// opened again over and over (at 10M events, single events to 50
    /// accounts spent most of their CPU reading rows back). A tail
    /// restored and unchanged since is not written again. Any tail stored
    /// is a valid start: an open uses it only if it begins where the
    /// segments end, then reads the rows after it. Not stored (a failed
    /// write): the account closes all the same, and its rows are read.
    fn store_tails_before_closing(
        &self,
        tx: &mut dyn LogTx,
        by_use: &[(u64, AccountId)],
        target: usize,
    ) {
        let mut bytes = self.open_bytes;
        let mut tails = Vec::new();
        for (_, account) in by_use {
            if bytes <= target {
                break;
            }
            let Some(acc) = self.accounts.get(account) else {
                continue;
            };
            bytes -= acc.counted;
            if let Some(tail) = acc.state.index.changed_tail() {
                tails.push((&acc.state, tail));
            }
        }
        if tails.is_empty() {
            return;
        }
        let stored = tx.begin().and_then(|()| {
            for (state, tail) in &tails {
                tx.put_index_tail(state.key, tail)?;
            }
            tx.commit()
        });
        match stored {
            // An account that stays open (in use, so not closed) is not
            // stored again at every group while it is past the budget.
            Ok(()) => tails
                .iter()
                .for_each(|(state, _)| state.index.tail_stored()),
            Err(e) => {
                tx.rollback();
                tracing::debug!(error = %e, "index tails of accounts being closed not stored");
            }
        }
    }
}
