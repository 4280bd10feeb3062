//! Other processes' rows pulled into this process's open indexes in the
//! background, when the backend pushes word of them
//! ([`LogBackend::on_appends`]): the next read then finds its index up to
//! date and pays one size check instead of a catch-up.
//!
//! Read-your-writes never depends on this: every read still compares the
//! committed size with its index and catches up through the writer when
//! behind (`LayeredStore::state`). A wake-up only moves that work earlier,
//! off the read.
//!
//! Bounds: a notification for an account this process has not opened is
//! ignored (its first use opens it whole). An open account has at most one
//! wake-up queued ([`Slot::waking`](super::open::Slot)), however many
//! notifications arrive, and one thread pulls them one account at a time,
//! at most [`WAKE_ROWS`] rows a step: a flood of notifications for many
//! accounts costs a queue entry per open account, never a task or a
//! buffer per notification.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak, mpsc};

use auditlog_core::record::AccountId;
use tokio::sync::oneshot;

use super::write::{Op, OwnedRow};
use super::{AccountState, LayeredStore, Shared, WriteOp, internal};
use crate::Result;
use crate::backend::{AppendWake, LogBackend, LogReader};

/// Rows pulled per step (as one group commit's most): what a wake-up holds
/// in memory at once.
const WAKE_ROWS: u64 = 20_000;

/// Asks `backend` to push appends, and starts the thread that pulls them
/// if it will.
pub(super) fn start<B: LogBackend>(
    backend: &Arc<B>,
    shared: &Arc<Shared>,
    writer: &tokio::sync::mpsc::Sender<WriteOp>,
) -> Result<()> {
    let (queue, wakes) = mpsc::channel::<AccountId>();
    let to = Arc::downgrade(shared);
    // Runs on the backend's notification path: a map look-up and a flag.
    let wake: AppendWake = Arc::new(move |account: &AccountId| {
        let Some(slot) = to.upgrade().and_then(|s| s.slot(account)) else {
            return;
        };
        if slot.state().is_none() || slot.waking.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = queue.send(account.clone());
    });
    if !backend.on_appends(wake) {
        return Ok(());
    }
    // Weak references: the thread must not keep the store alive. It ends
    // when the backend (which holds the queue's sender) is dropped.
    let worker = Worker {
        backend: Arc::downgrade(backend),
        shared: Arc::downgrade(shared),
        writer: writer.downgrade(),
    };
    std::thread::Builder::new()
        .name("auditlog-wake".into())
        .spawn(move || worker.run(&wakes))
        .map(drop)
        .map_err(|e| internal(format!("spawn the wake-up thread: {e}")))
}

struct Worker<B> {
    backend: Weak<B>,
    shared: Weak<Shared>,
    writer: tokio::sync::mpsc::WeakSender<WriteOp>,
}

impl<B: LogBackend> Worker<B> {
    fn run(self, wakes: &mpsc::Receiver<AccountId>) {
        while let Ok(account) = wakes.recv() {
            let (Some(backend), Some(shared), Some(writer)) = (
                self.backend.upgrade(),
                self.shared.upgrade(),
                self.writer.upgrade(),
            ) else {
                return;
            };
            let Some(slot) = shared.slot(&account) else {
                continue;
            };
            // Cleared before the pull: a notification arriving during it
            // queues another one rather than being lost.
            slot.waking.store(false, Ordering::Release);
            let Some(state) = slot.state() else {
                continue;
            };
            if let Err(e) = pull(&*backend, &writer, &account, &state) {
                // The next read catches up instead.
                tracing::debug!(%account, error = %e, "pulling another instance's events failed");
            }
        }
    }
}

/// Reads the rows committed past what `state`'s index holds (off the
/// writer, on a pooled reader, without any lock) and hands them to the
/// writer, which owns the tree: it appends those it still lacks.
fn pull<B: LogBackend>(
    backend: &B,
    writer: &tokio::sync::mpsc::Sender<WriteOp>,
    account: &AccountId,
    state: &AccountState,
) -> Result<()> {
    let committed = backend.with_reader(|r| r.committed_size(account))?;
    loop {
        let from = state.index.len();
        if committed <= from {
            return Ok(());
        }
        let to = committed.min(from + WAKE_ROWS);
        let mut rows = Vec::with_capacity((to - from) as usize);
        backend.index_rows(state.key, from, to, &mut |seq, row| {
            if seq != from + rows.len() as u64 {
                return Err(internal(format!("account {account}: a gap at seq {seq}")));
            }
            rows.push(OwnedRow::from(row));
            Ok(())
        })?;
        let hashes = backend.with_reader(|r| r.leaf_hashes(state.key, from, to))?;
        if rows.len() != hashes.len() || rows.len() as u64 != to - from {
            return Err(internal(format!(
                "account {account}: {} rows and {} hashes read for seqs {from}..{to}",
                rows.len(),
                hashes.len()
            )));
        }
        let (reply, added) = oneshot::channel();
        let op = Op::Extend {
            account: account.clone(),
            from,
            rows,
            hashes,
            reply,
        };
        writer
            .blocking_send(WriteOp::new(op))
            .map_err(|_| internal("the writer stopped"))?;
        let added = added
            .blocking_recv()
            .map_err(|_| internal("the writer stopped"))??;
        if added == 0 {
            // The writer had them already (its own append or a read's
            // catch-up came first), or cannot take them: leave the rest to
            // the next read rather than spin.
            return Ok(());
        }
    }
}

impl<B: LogBackend> LayeredStore<B> {
    /// How many events this process's index of `account` holds, without
    /// asking the database (`None`: not opened here): what a wake-up moves
    /// without a read (for tests and diagnostics).
    pub fn held_size(&self, account: &AccountId) -> Option<u64> {
        self.shared
            .slot(account)
            .and_then(|s| s.state().map(|a| a.index.len()))
    }

    /// How many accounts this process opened found their stored index
    /// segments unusable from some segment on, and replayed the rows from
    /// there (each also logged at `error` and counted in
    /// `auditlog_index_segments_repaired_total`): 0 when every open used
    /// every stored segment.
    pub fn index_restore_problems(&self) -> u64 {
        self.shared
            .restore_problems
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}
