//! The durable-log backend: the thin seam under [`LayeredStore`], and the
//! contract every backend keeps.
//!
//! A backend stores; it decides nothing. It keeps, per account, rows with
//! their `seq` and leaf hash, the full Merkle tiles, the signed checkpoint
//! notes, and the tokens. Everything that does not depend on the database —
//! the column index, the tree state, sequencing, idempotency, the token
//! cache, the queries — lives once in [`crate::layered`], so a second
//! backend implements only this module's three traits.
//!
//! # Contract
//!
//! **Rows.** A row, once a transaction holding it has committed, never
//! changes and is never deleted. An account's seqs are dense from 0 in
//! commit order: the row of seq `n` is committed in the same transaction as,
//! or after, the row of seq `n - 1`. Ids and idempotency keys are unique per
//! account (the layer checks both before inserting; a violation is an
//! error, never a silent overwrite).
//!
//! **Atomicity and durability.** Everything a [`LogTx`] did between
//! [`LogTx::begin`] and a successful [`LogTx::commit`] is durable (synced)
//! when `commit` returns, and all of it or none of it survives a crash:
//! rows, the tiles they filled, the token bits set with them. A failed
//! `commit` or a [`LogTx::rollback`] leaves nothing of the transaction.
//! Conditions to wait out (disk full, database unreachable, locked) are
//! [`StoreErrorKind::Unavailable`](crate::StoreErrorKind); anything else
//! is `Internal`.
//!
//! **One sequence per account.** While a transaction holds rows of an
//! account, no other transaction (of this process or another) appends to
//! that account: the backend serializes appenders per account. The
//! embedded backend does it by having one writer thread per file (and
//! `BEGIN IMMEDIATE` against other processes, which write tokens only), so
//! the [`Sequencer`]'s in-memory tree is the truth. A backend shared by
//! several appending processes (PostgreSQL) locks each appended account's
//! head in the transaction, in ascending key order so that two groups
//! cannot deadlock ([`LogTx::lock_heads`]), and tells the layer the
//! committed size; the layer brings its tree and index up to it from the
//! committed rows ([`LogTx::committed_rows`]) before it appends.
//!
//! **Reads.** A [`LogReader`] sees committed rows only. Each call is
//! consistent on its own; the layer never relies on two calls seeing the
//! same snapshot, because committed rows never change: the index it holds
//! *is* its snapshot, and it reads rows by the seqs the index gave.
//! Readers may run on many threads at once, alongside the writer.
//!
//! **Index segments.** Each account's column index is stored as sealed
//! segments (see `auditlog_core::index::segment`): opaque, checksummed
//! blobs the layer writes once a chunk of the index is full, in a
//! transaction of their own right after the rows that filled it. They are
//! derived from the rows and may be replaced; a backend stores and returns
//! them byte for byte.
//!
//! **Several processes.** A backend may be opened by several processes at
//! once (the command line's token commands beside a server; several
//! stateless servers on one PostgreSQL database). Token rows may change
//! behind a process's back; a process notices revocations by polling
//! [`LogReader::revoked_token_count`], which only grows. A process's column
//! index catches up on rows other processes appended (under the head locks
//! at its next append, before a read when [`LogBackend::several_appenders`],
//! and, when the backend pushes them, on [`LogBackend::on_appends`]'s
//! hints); processes sealing one account's index segments store each once
//! ([`LogTx::lock_index_segments`]).
//!
//! **Writes go through a queue.** [`LayeredStore`] turns every write into a
//! [`WriteOp`] on a bounded queue (back-pressure for callers) and hands the
//! receiving end, with the [`Sequencer`] that knows how to apply ops, to
//! [`LogBackend::start_writer`]. How ops are grouped into transactions is
//! the backend's business: the embedded backend's one writer thread takes
//! everything queued into one transaction (group commit: one fsync for
//! many requests), which is SQLite-specific machinery and stays there.
//!
//! [`LayeredStore`]: crate::layered::LayeredStore
//! [`WriteOp`]: crate::layered::WriteOp
//! [`Sequencer`]: crate::layered::Sequencer

use std::collections::HashMap;

use auditlog_core::index::{IndexRow, StoredTail};
use auditlog_core::merkle::Hash;
use auditlog_core::record::AccountId;

use crate::layered::{Sequencer, WriteOp};
use crate::{
    PendingTokenChange, RawRecord, Result, Revocation, TokenChange, TokenInfo, TokenRecord,
    TokenScope,
};

/// What a backend calls when an account may have new committed rows (see
/// [`LogBackend::on_appends`]). It must return at once: it runs on the
/// backend's notification path.
pub type AppendWake = std::sync::Arc<dyn Fn(&AccountId) + Send + Sync>;

/// The backend's key of an account (a row id): assigned once when the
/// account is registered, never reused, never changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AccountKey(pub i64);

/// A row to append: the record's canonical bytes and leaf hash, and the
/// columns the index is rebuilt from.
#[derive(Debug)]
pub struct NewRow<'a> {
    pub seq: u64,
    pub id: &'a str,
    /// The record's `recorded_at` in microseconds (a backend may partition
    /// rows by it; the canonical JSON holds it too).
    pub recorded_at_us: i64,
    /// The columns the index is rebuilt from (and the store's own filter
    /// columns).
    pub columns: IndexRow<'a>,
    pub idempotency_key: Option<&'a str>,
    /// The canonical JSON the leaf hash commits to, stored byte for byte.
    pub canonical: &'a str,
    pub leaf_hash: &'a Hash,
}

/// What [`LogTx::lock_heads`] learned under the locks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadLocks {
    /// Per account, in the order asked.
    pub heads: Vec<LockedHead>,
    /// The database's clock (microseconds), when the backend gives
    /// `recorded_at` one clock for every process; `None`: the layer's
    /// [`Clock`](crate::Clock).
    pub now_us: Option<i64>,
}

/// What is committed of an account's log, read under its head's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockedHead {
    /// The log's committed size (its next seq).
    pub size: u64,
    /// The latest `recorded_at` committed (microseconds), if any: the
    /// group's must not be earlier, so that it never goes back as seq grows,
    /// whichever process's clock wrote it.
    pub recorded_at_us: Option<i64>,
}

/// Reads of committed data. Obtained from [`LogBackend::with_reader`] (a
/// pooled, short-lived reader) or [`LogBackend::dedicated_reader`].
pub trait LogReader {
    /// The row of `seq`; an error if it is missing.
    fn read_raw(&self, account: AccountKey, seq: u64) -> Result<RawRecord>;

    /// The row with record id `id`, if any.
    fn read_by_id(&self, account: AccountKey, id: &str) -> Result<Option<RawRecord>>;

    /// The rows of `seqs`, appended to `out` in the order of `seqs`, read in
    /// one snapshot (one short read transaction, ended before returning);
    /// an error if one is missing.
    fn read_batch(&self, account: AccountKey, seqs: &[u64], out: &mut Vec<RawRecord>)
    -> Result<()>;

    /// Calls `f` with the canonical bytes of the row of `seq` (borrowed
    /// from the database where it can: this is the per-row read of a filter
    /// the index cannot decide, the slow part of a query).
    fn with_canonical(
        &self,
        account: AccountKey,
        seq: u64,
        f: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<bool>;

    /// The leaf hashes of seqs `[from, to)` in order; an error if one is
    /// missing.
    fn leaf_hashes(&self, account: AccountKey, from: u64, to: u64) -> Result<Vec<Hash>>;

    /// The stored tile `level/index` as concatenated hashes, if stored.
    /// Only full tiles are written; files of older versions may also hold
    /// partial ones, which the layer uses when wide enough.
    fn stored_tile(&self, account: AccountKey, level: u8, index: u64) -> Result<Option<Vec<u8>>>;

    /// The note of the largest checkpoint stored for the account.
    fn latest_checkpoint(&self, account: AccountKey) -> Result<Option<String>>;

    /// The size of the largest checkpoint stored for the account (0: none).
    fn signed_size(&self, account: AccountKey) -> Result<u64>;

    /// The accounts whose log holds events that no stored checkpoint
    /// covers (committed size above the largest checkpoint's): read once
    /// at open, when accounts are not opened yet, so that the checkpoint
    /// signer still signs them. One query, two index look-ups an account.
    fn unsigned_accounts(&self) -> Result<Vec<AccountKey>>;

    /// The token with this secret hash unless it is revoked.
    fn live_token(&self, secret_hash: &Hash) -> Result<Option<TokenRecord>>;

    /// The token `id`, revoked or not.
    fn token_info(&self, id: &str) -> Result<Option<TokenInfo>>;

    /// Tokens of exactly `scope`, not revoked, oldest first.
    fn list_tokens(&self, scope: &TokenScope) -> Result<Vec<TokenInfo>>;

    /// Token changes no event records yet (see
    /// [`Store::pending_token_changes`](crate::Store::pending_token_changes)).
    fn pending_token_changes(&self, now_us: i64) -> Result<Vec<PendingTokenChange>>;

    /// How many tokens are revoked. It only grows, so a change means some
    /// process revoked one.
    fn revoked_token_count(&self) -> Result<i64>;

    /// A cheap round trip: `Err` if the database cannot answer.
    fn ping(&self) -> Result<()>;

    /// The summaries of the account's stored index segments, as
    /// `(segment number, summary)` in any order: what start-up reads.
    fn index_segment_summaries(&self, account: AccountKey) -> Result<Vec<(u32, Vec<u8>)>>;

    /// The stored columns of index segment `no`, if stored.
    fn index_segment_columns(&self, account: AccountKey, no: u32) -> Result<Option<Vec<u8>>>;

    /// The account's index tail stored at the last clean shutdown, if any
    /// (maybe stale: the open checks it).
    fn index_tail(&self, account: AccountKey) -> Result<Option<StoredTail>>;

    /// The committed size of the log of `account` (0 for an account the
    /// database does not know), asked before a read when
    /// [`LogBackend::several_appenders`]: the layer catches up if its index
    /// holds less. Only such backends are asked.
    fn committed_size(&self, account: &AccountId) -> Result<u64> {
        let _ = account;
        Err(crate::StoreError::new(
            crate::StoreErrorKind::Internal,
            "this backend has one appending process: its index is the truth",
        ))
    }
}

/// The writes of one transaction, used by the [`Sequencer`] on the
/// backend's writer. Every method but [`LogTx::register_account`] runs
/// inside the transaction that [`LogTx::begin`] opened.
pub trait LogTx {
    /// The key of `account`, registering it on first use, committed on its
    /// own before the group's transaction: if the group then fails, the
    /// account still exists (empty, which answers like an unknown one), so
    /// the layer's view of accounts never names one that was rolled back.
    fn register_account(&mut self, account: &AccountId) -> Result<AccountKey>;

    /// Opens the group's transaction, taking the write lock.
    fn begin(&mut self) -> Result<()>;

    /// Locks the heads of `accounts` (ascending keys) until the transaction
    /// ends and returns what is committed of each, in the same order.
    /// `None` (the default): this process is the only appender, its trees
    /// are the truth (the embedded backend).
    fn lock_heads(&mut self, accounts: &[AccountKey]) -> Result<Option<HeadLocks>> {
        let _ = accounts;
        Ok(None)
    }

    /// Calls `visit` with the seq, leaf hash and index columns of the
    /// committed rows `[from, to)` of an account, in seq order (rows another
    /// process appended, read to catch up under the lock of
    /// [`LogTx::lock_heads`]). Only backends whose `lock_heads` returns
    /// heads are asked.
    fn committed_rows(
        &mut self,
        account: AccountKey,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(u64, &Hash, IndexRow<'_>) -> Result<()>,
    ) -> Result<()> {
        let _ = (account, from, to, visit);
        Err(crate::StoreError::new(
            crate::StoreErrorKind::Internal,
            "this backend has one appending process: no rows to catch up on",
        ))
    }

    /// The committed row an idempotency key was used for, if any.
    fn find_idempotency_key(&mut self, account: AccountKey, key: &str)
    -> Result<Option<RawRecord>>;

    /// Inserts a row. A backend may buffer rows and write them at
    /// [`LogTx::commit`] (one batch per group): so neither
    /// [`LogTx::find_idempotency_key`] nor a reader need see the rows of the
    /// open transaction — the layer remembers the keys its group used.
    fn insert_row(&mut self, account: AccountKey, row: &NewRow<'_>) -> Result<()>;

    /// Stores a full tile (hashes concatenated), replacing a partial one of
    /// an older file.
    fn put_tile(&mut self, account: AccountKey, level: u8, index: u64, hashes: &[u8])
    -> Result<()>;

    /// Stores a checkpoint note for `size`; a second one for the same size
    /// is ignored.
    fn put_checkpoint(&mut self, account: AccountKey, size: u64, note: &str) -> Result<()>;

    /// Inserts a token; its changes are all pending. An error (a duplicate
    /// id or hash) fails this call alone: the transaction goes on.
    fn insert_token(&mut self, token: &TokenRecord) -> Result<()>;

    /// Revokes the live token `id` of exactly `scope`; `false` if there is
    /// none. `on` is the account whose log records the revocation.
    fn revoke_token(&mut self, r: &Revocation) -> Result<bool>;

    /// Marks `change` of token `id` recorded; `false` if it was already
    /// (or there is no such token).
    fn mark_token_change(&mut self, id: &str, change: TokenChange) -> Result<bool>;

    /// Sets the token's last use to `at_us` unless a later one is stored.
    fn touch_token(&mut self, id: &str, at_us: i64) -> Result<()>;

    /// Stores index segment `no` of the account (summary and columns),
    /// replacing one stored before. Segments are derived data: they may be
    /// rewritten (a repair, a rebuild), unlike rows.
    fn put_index_segment(
        &mut self,
        account: AccountKey,
        no: u32,
        summary: &[u8],
        columns: &[u8],
    ) -> Result<()>;

    /// Takes the account's sealing lock until the transaction ends and
    /// returns, for each of `nos`, the summary of the segment stored under
    /// that number, if any: so that processes sharing the database store
    /// each segment once between them (the others find it stored and adopt
    /// it). `None`: another process holds the lock (it is storing them);
    /// the caller tries again later, without waiting. The default (one
    /// appending process, whose writer is the lock): nothing stored ahead.
    fn lock_index_segments(
        &mut self,
        account: AccountKey,
        nos: &[u32],
    ) -> Result<Option<Vec<Option<Vec<u8>>>>> {
        let _ = account;
        Ok(Some(vec![None; nos.len()]))
    }

    /// Replaces the columns of stored segment `no` (rebuilt after a
    /// failed checksum); nothing if it is not stored.
    fn put_index_columns(&mut self, account: AccountKey, no: u32, columns: &[u8]) -> Result<()>;

    /// Drops every index segment of the account, and its stored tail
    /// (`auditlog index rebuild` stores the segments anew in the same
    /// transaction).
    fn delete_index_segments(&mut self, account: AccountKey) -> Result<()>;

    /// Stores the account's index tail, replacing the one stored before.
    fn put_index_tail(&mut self, account: AccountKey, tail: &StoredTail) -> Result<()>;

    /// Commits and syncs; see the module's contract.
    fn commit(&mut self) -> Result<()>;

    /// Abandons the transaction, if one is open.
    fn rollback(&mut self);
}

/// A durable log: what [`crate::layered::LayeredStore`] runs over.
pub trait LogBackend: Send + Sync + 'static {
    type Reader: LogReader;

    /// Every registered account and its key.
    fn accounts(&self) -> Result<Vec<(AccountId, AccountKey)>>;

    /// Calls `visit` with the index columns of every committed row whose
    /// seq is at least `since[account]` (0 for an account not in `since`),
    /// each account's rows in ascending seq order (accounts may
    /// interleave). Rows of an account [`LogBackend::accounts`] does not
    /// name are passed on too: the layer refuses them, as it refuses a gap.
    fn scan_index_rows(
        &self,
        since: &HashMap<AccountKey, u64>,
        visit: &mut dyn FnMut(AccountKey, u64, IndexRow<'_>) -> Result<()>,
    ) -> Result<()>;

    /// Calls `visit` with the index columns of the account's rows with seq
    /// in `[from, to)`, ascending: the rows after an index's last stored
    /// segment at start-up, and a segment's rows when it is rebuilt.
    fn index_rows(
        &self,
        account: AccountKey,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(u64, IndexRow<'_>) -> Result<()>,
    ) -> Result<()>;

    /// Runs `f` with a short-lived reader (pooled: do not hold it long).
    fn with_reader<T>(&self, f: impl FnOnce(&Self::Reader) -> Result<T>) -> Result<T>;

    /// A reader of its own, for a long walk (an export) that must not hold
    /// a pooled one. It takes no snapshot between calls.
    fn dedicated_reader(&self) -> Result<Self::Reader>;

    /// Starts applying the ops of `queue`, in queue order, with
    /// `sequencer` ([`Sequencer::commit_group`] on a [`LogTx`] for each
    /// group of ops the backend chooses). Called once, at open. If the
    /// writer dies, it reports it through [`Sequencer::failure`] before any
    /// op in hand is answered, and drops the queue.
    fn start_writer(
        &self,
        sequencer: Sequencer,
        queue: tokio::sync::mpsc::Receiver<WriteOp>,
    ) -> Result<()>;

    /// Bytes used on disk, for metrics.
    fn size_bytes(&self) -> Result<u64>;

    /// Whether other processes may append to the logs (several instances
    /// on one database): then every read first asks
    /// [`LogReader::committed_size`] and catches up (read-your-writes
    /// across instances). `false` (the default): this process is the only
    /// appender.
    fn several_appenders(&self) -> bool {
        false
    }

    /// Whether this process signs checkpoints in the background (see
    /// [`Store::leads_checkpoints`](crate::Store::leads_checkpoints)): a
    /// backend that several processes serve elects one; `true` by default.
    fn lead_checkpoints(&self) -> Result<bool> {
        Ok(true)
    }

    /// A counter that grows whenever another process may have revoked a
    /// token (pushed by the database), read before every token look-up:
    /// the layer forgets its token cache when it moved. `None` (the
    /// default): only the layer's poll of
    /// [`LogReader::revoked_token_count`] notices such revocations.
    fn revocations_notified(&self) -> Option<u64> {
        None
    }

    /// Asks to be told, with `wake`, of accounts to which a process (this
    /// one included) may have committed rows: a hint pushed by the
    /// database, so that the layer can pull the rows into an open index
    /// before a read has to. Hints may be late, repeated or lost (a
    /// reconnection); reads never rely on them (see
    /// [`LogBackend::several_appenders`]). Called once, at open. Returns
    /// whether `wake` will ever be called; `false` (the default): the
    /// backend pushes nothing.
    fn on_appends(&self, wake: AppendWake) -> bool {
        let _ = wake;
        false
    }
}
