//! Accounts opened on first use. At open the store reads only the list of
//! accounts; an account's state (its index restored from the segment
//! summaries and the rows after the last segment, its Merkle tree from the
//! tiles) is built by the first query or write that needs it, exactly once
//! however many race for it, and handed to the writer, which owns the tree.
//!
//! Why on a blocking thread and not as a writer op: the writer is the one
//! thread every account's writes go through, so an open there (seconds for
//! an account of millions of events) would stall every other account's
//! writes. Built beside it, the state reaches the writer as one cheap op
//! ([`Op::Adopt`]); the writer keeps the first state it adopts, and that one
//! is what every caller gets, so a duplicate open (a caller cancelled
//! mid-way, another one taking over) is wasted work, never a second truth.
//! No write can reach the account before: every op that names an account
//! opens it first, and a caller sends its op only after the adoption's
//! reply, behind it in the writer's queue.
//!
//! An open account may be closed again by the writer when the open
//! accounts hold more than their budget (`write/evict.rs`): its state
//! leaves the slot and the writer together, and the next use opens it
//! here as if for the first time. A caller keeps the state's `Arc` from
//! `opened` until its op is answered, which is what keeps the account open
//! until then (the writer never closes a state someone else holds).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use auditlog_core::merkle::TreeState;
use auditlog_core::record::AccountId;

use super::write::Op;
use super::{AccountState, LayeredStore, Shared, internal, query, segments};
use crate::backend::{AccountKey, LogBackend, LogReader};
use crate::{Result, TreeHead};

/// One account known to the store, opened or not.
pub(super) struct Slot {
    pub(super) key: AccountKey,
    /// The opened state: set by the writer when it adopts one (or creates
    /// the account), taken back by the writer when it closes the account
    /// (see `write/evict.rs`). Callers clone it under the read lock, so
    /// the writer, under the write lock, sees every holder in the count.
    state: RwLock<Option<Arc<AccountState>>>,
    /// When the account was last used (a tick of [`Shared::use_tick`]):
    /// the least recently used open accounts are closed first.
    last_use: AtomicU64,
    /// How many times the writer closed the account (see
    /// [`Opened::closes`]).
    closes: AtomicU64,
    /// Held by the caller that opens the account: the others wait for it
    /// rather than open it again. One lock per account, so an open never
    /// holds up another account's reads or writes.
    opening: tokio::sync::Mutex<()>,
    /// Whether, when the store opened, the log held events that no
    /// checkpoint covers: the checkpoint signer opens such an account
    /// without waiting for a request to.
    unsigned: AtomicBool,
    /// Set while a wake-up of this account is queued (see `wake.rs`): a
    /// flood of notifications for it queues one.
    pub(super) waking: AtomicBool,
}

impl Slot {
    /// An account of the database, not opened yet.
    pub(super) fn unopened(key: AccountKey, unsigned: bool) -> Slot {
        Slot {
            key,
            state: RwLock::new(None),
            last_use: AtomicU64::new(0),
            closes: AtomicU64::new(0),
            opening: tokio::sync::Mutex::new(()),
            unsigned: AtomicBool::new(unsigned),
            waking: AtomicBool::new(false),
        }
    }

    /// An account whose state exists already (registered by the writer
    /// for a write: used at `tick`).
    pub(super) fn opened(state: Arc<AccountState>, tick: u64) -> Slot {
        let slot = Slot::unopened(state.key, false);
        slot.last_use.store(tick, Ordering::Relaxed);
        *slot.state.write().unwrap_or_else(|e| e.into_inner()) = Some(state);
        slot
    }

    /// The opened state, if the account is open (without counting as a
    /// use: the checkpoint signer's look).
    pub(super) fn state(&self) -> Option<Arc<AccountState>> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The opened state for a use at `tick`: the account becomes the most
    /// recently used.
    fn state_for_use(&self, tick: u64) -> Option<Arc<AccountState>> {
        let state = self.state();
        self.last_use.fetch_max(tick, Ordering::Relaxed);
        state
    }

    pub(super) fn last_use(&self) -> u64 {
        self.last_use.load(Ordering::Relaxed)
    }

    pub(super) fn closes(&self) -> u64 {
        self.closes.load(Ordering::SeqCst)
    }

    /// Sets the state unless one is set; returns the one that is. Only the
    /// writer calls this.
    pub(super) fn install(&self, state: Arc<AccountState>) -> Arc<AccountState> {
        let mut g = self.state.write().unwrap_or_else(|e| e.into_inner());
        self.unsigned.store(false, Ordering::Relaxed);
        g.get_or_insert(state).clone()
    }

    /// Takes the state back (the account is closed) unless someone besides
    /// this slot and the writer holds it: a query running on it, or a
    /// caller whose write or checkpoint is on its way to the writer. Only
    /// the writer calls this, with the state it holds.
    pub(super) fn close(&self, held: &Arc<AccountState>) -> bool {
        let mut g = self.state.write().unwrap_or_else(|e| e.into_inner());
        let Some(state) = g.as_ref() else {
            return true;
        };
        // This slot's reference and the writer's.
        if !Arc::ptr_eq(state, held) || Arc::strong_count(state) > 2 {
            return false;
        }
        // Events no checkpoint covers: the signer opens it again for them.
        let head = state.head.lock().unwrap_or_else(|e| e.into_inner()).size;
        let signed = *state.signed.lock().unwrap_or_else(|e| e.into_inner());
        self.unsigned.store(head > signed, Ordering::Relaxed);
        self.closes.fetch_add(1, Ordering::SeqCst);
        *g = None;
        true
    }

    /// Not opened, and holding events no checkpoint covers.
    pub(super) fn unsigned_unopened(&self) -> bool {
        self.state().is_none() && self.unsigned.load(Ordering::Relaxed)
    }
}

/// An account's state built off the writer, on its way to it.
pub(super) struct Opened {
    pub(super) state: Arc<AccountState>,
    pub(super) tree: TreeState,
    /// How many times the account had been closed when the store was
    /// read for this state. The writer adopts it only if that is still
    /// the count: an open that a cancelled caller left on its way (its
    /// `Adopt` still queued) may have read the store before writes that a
    /// later open's state took and a close then dropped; adopting it would
    /// give the account a tree behind its log.
    pub(super) closes: u64,
}

/// Builds the state of `account` from what the backend stores: the index
/// from its segments' summaries and the rows after them, the tree from the
/// tiles at the log's size, the signed size. Blocking.
pub(super) fn open_account<B: LogBackend>(
    backend: &Arc<B>,
    shared: &Shared,
    account: &AccountId,
    key: AccountKey,
) -> Result<Opened> {
    let started = Instant::now();
    let (index, size) = segments::restore(
        backend,
        &shared.cache,
        &shared.repairs,
        shared.limits(),
        account,
        key,
        &shared.restore_problems,
    )?;
    let indexed = started.elapsed();
    if index.overflowed() {
        query::warn_index_overflow(account, &index);
    }
    let (tree, signed) = backend.with_reader(|reader| {
        let tiles = query::Tiles {
            reader,
            account: key,
        };
        let tree = TreeState::restore(size, &tiles)
            .map_err(|e| internal(format!("restore tree of {account}: {e}")))?;
        Ok((tree, reader.signed_size(key)?))
    })?;
    let head = TreeHead {
        size,
        root: tree.root(),
    };
    let elapsed = started.elapsed();
    metrics::counter!("auditlog_accounts_opened_total").increment(1);
    metrics::histogram!("auditlog_account_open_seconds").record(elapsed.as_secs_f64());
    let (index_ms, total_ms) = (indexed.as_millis() as u64, elapsed.as_millis() as u64);
    // A slow open is worth the operator's eye (its first request waited
    // for it); the many quick ones are not.
    if elapsed.as_secs() >= 1 {
        tracing::info!(%account, events = size, index_ms, total_ms, "account opened");
    } else {
        tracing::debug!(%account, events = size, index_ms, total_ms, "account opened");
    }
    Ok(Opened {
        state: Arc::new(AccountState::with_index(key, index, head, signed)),
        tree,
        closes: 0,
    })
}

/// The accounts of the database, each marked if its log holds events no
/// checkpoint covers: two queries whatever the number of accounts.
pub(super) fn list_accounts<B: LogBackend>(
    backend: &B,
) -> Result<Vec<(AccountId, AccountKey, bool)>> {
    let accounts = backend.accounts()?;
    let unsigned: HashSet<AccountKey> = backend
        .with_reader(|reader| reader.unsigned_accounts())?
        .into_iter()
        .collect();
    Ok(accounts
        .into_iter()
        .map(|(account, key)| {
            let unsigned = unsigned.contains(&key);
            (account, key, unsigned)
        })
        .collect())
}

impl<B: LogBackend> LayeredStore<B> {
    /// The state of `account`, opened now if it is not yet; `None` for an
    /// account this process does not know (which answers like an empty
    /// one). Concurrent callers wait for one open.
    pub(super) async fn opened(&self, account: &AccountId) -> Result<Option<Arc<AccountState>>> {
        let Some(slot) = self.shared.slot(account) else {
            return Ok(None);
        };
        let tick = self.shared.use_tick();
        if let Some(state) = slot.state_for_use(tick) {
            return Ok(Some(state));
        }
        let _opening = slot.opening.lock().await;
        if let Some(state) = slot.state_for_use(tick) {
            return Ok(Some(state));
        }
        // Refused only when the account was closed since an earlier open
        // read the store (see `Opened::closes`); under the opening lock no
        // other open runs, so the next one is adopted.
        loop {
            let (backend, shared, name, key) = (
                self.backend.clone(),
                self.shared.clone(),
                account.clone(),
                slot.key,
            );
            // Read before the store is: a close after this makes the
            // state stale, and the writer refuses it.
            let closes = slot.closes();
            let mut opened =
                tokio::task::spawn_blocking(move || open_account(&backend, &shared, &name, key))
                    .await
                    .map_err(|e| internal(format!("opening an account failed: {e}")))??;
            opened.closes = closes;
            let account = account.clone();
            let adopted = self
                .send(|reply| Op::Adopt {
                    account,
                    opened: Box::new(opened),
                    reply,
                })
                .await?;
            if let Some(state) = adopted {
                return Ok(Some(state));
            }
        }
    }

    /// Every account known, opened or not, and its slot.
    pub(super) fn slots(&self) -> Vec<(AccountId, Arc<Slot>)> {
        self.shared
            .accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(a, s)| (a.clone(), s.clone()))
            .collect()
    }
}
