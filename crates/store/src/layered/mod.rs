//! The backend-neutral layer: [`LayeredStore`] implements [`Store`] over any
//! [`LogBackend`]. It owns what does not depend on the database: each
//! account's column index and Merkle tree state, the token cache, the query
//! code, and the write path's sequencing ([`Sequencer`]).
//!
//! At open it reads only the list of accounts. An account is opened on
//! first use (see `open.rs`): its index restored from its stored segments'
//! summaries and the rows after the last one (see `segments.rs`), its tree
//! from the stored tiles; past `IndexOptions::open_accounts_memory` the
//! least recently used idle accounts are closed again (`write/evict.rs`).
//! From then on the index learns each committed row
//! from the [`Sequencer`], which applies every write and stores each index
//! chunk that fills up as a segment (`write/seal.rs`). When other processes
//! append to the same database, a read catches up on their rows first, and
//! a backend that pushes word of their appends has them pulled in the
//! background (`wake.rs`).

mod open;
mod query;
mod segments;
mod tokens;
mod wake;
mod write;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use auditlog_core::index::{CacheStats, IndexLimits, LogIndex, RowKey, SegmentCache};
use auditlog_core::merkle::{self, Hash};
use auditlog_core::record::{AccountId, CanonicalHead, CanonicalParts, CanonicalTail, Record};
use auditlog_core::validate::ValidEvent;
use tokio::sync::oneshot;

use crate::backend::{AccountKey, LogBackend, LogReader};
use crate::{
    Appended, Clock, OpenAccountStats, Page, PendingTokenChange, RawSink, Result, Revocation,
    Selection, Store, StoreError, StoreErrorKind, TokenChange, TokenInfo, TokenRecord, TokenScope,
    TreeHead,
};
pub use segments::RebuildReport;
use write::{Op, evict};
pub use write::{Sequencer, WriteOp, WriterFailure};

/// Writes queued and not yet taken by the backend's writer at most: when it
/// falls behind, producers wait rather than pile up memory.
const WRITE_QUEUE: usize = 4096;

/// Per-account state shared by the writer and the readers.
struct AccountState {
    key: AccountKey,
    index: LogIndex,
    /// The committed tree head: what checkpoints may sign.
    head: Mutex<TreeHead>,
    /// Size of the latest stored checkpoint.
    signed: Mutex<u64>,
}

impl AccountState {
    fn new(key: AccountKey, index: LogIndex) -> AccountState {
        let head = TreeHead {
            size: 0,
            root: auditlog_core::merkle::EMPTY_ROOT,
        };
        AccountState::with_index(key, index, head, 0)
    }

    fn with_index(key: AccountKey, index: LogIndex, head: TreeHead, signed: u64) -> AccountState {
        AccountState {
            key,
            index,
            head: Mutex::new(head),
            signed: Mutex::new(signed),
        }
    }
}

struct Shared {
    /// Every account known, opened or not.
    accounts: RwLock<HashMap<AccountId, Arc<open::Slot>>>,
    tokens: tokens::TokenCache,
    /// Why the writer died, once it has: `ready` fails and `failed`
    /// resolves.
    failure: tokio::sync::watch::Sender<Option<String>>,
    /// What each account's index may hold.
    index_limits: IndexLimits,
    /// A new account's (empty, paged) index.
    new_index: segments::NewIndex,
    /// Every account's sealed index segments in memory.
    cache: Arc<SegmentCache>,
    /// Where queries send the segments they had to rebuild.
    repairs: segments::Repairs,
    /// Account opens whose stored segments were unusable from some segment
    /// on (the rows from there replayed): see
    /// [`LayeredStore::index_restore_problems`].
    restore_problems: std::sync::atomic::AtomicU64,
    /// The clock of account uses: each use of an account takes the next
    /// tick, so the least recently used open account is the one with the
    /// smallest (see `write/evict.rs`).
    uses: AtomicU64,
    /// Open accounts: their budget and what they hold (kept by the writer).
    open: evict::OpenAccounts,
}

impl Shared {
    fn slot(&self, account: &AccountId) -> Option<Arc<open::Slot>> {
        self.accounts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
            .cloned()
    }

    fn use_tick(&self) -> u64 {
        self.uses.fetch_add(1, Ordering::Relaxed)
    }

    fn limits(&self) -> IndexLimits {
        self.index_limits
    }

    /// The writer's cause of death, if it died.
    fn writer_failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }
}

/// How the column indexes are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexOptions {
    /// What each account's index may hold (distinct values per column).
    pub limits: IndexLimits,
    /// Bytes of sealed segments held in memory across all accounts.
    pub memory: usize,
    /// Bytes open accounts may hold besides their segments (their tails,
    /// dictionaries, rollups and trees): past it the least recently used
    /// idle accounts are closed (see `write/evict.rs`).
    pub open_accounts_memory: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            limits: IndexLimits::DEFAULT,
            memory: DEFAULT_INDEX_MEMORY,
            open_accounts_memory: DEFAULT_OPEN_ACCOUNTS_MEMORY,
        }
    }
}

/// 512 MiB of segments: about 22 million events' columns warm.
pub const DEFAULT_INDEX_MEMORY: usize = 512 << 20;

/// 256 MiB of open accounts: thousands of small accounts, or an account of
/// ~80 million events (its rollups, ~3 MB a million events, are most of a
/// large account's cost). A small account costs up to ~120 bytes an event
/// when its events are spread thin over a long span (a rollup slot of
/// 15 minutes per event or two): the bench's 49 accounts of ~20,000
/// events over 400 days hold ~2.4 MB each, 162 MB with the big one. With
/// 128 MiB they did not fit, and single events to all of them closed and
/// reopened accounts over and over (7× the CPU an event at 10M).
/// The account used last stays open whatever its size.
pub const DEFAULT_OPEN_ACCOUNTS_MEMORY: usize = 256 << 20;

/// A [`Store`] over the durable log `B`.
pub struct LayeredStore<B> {
    backend: Arc<B>,
    shared: Arc<Shared>,
    writer: tokio::sync::mpsc::Sender<WriteOp>,
}

impl<B> std::fmt::Debug for LayeredStore<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayeredStore")
            .field("backend", &std::any::type_name::<B>())
            .finish()
    }
}

impl<B: LogBackend> LayeredStore<B> {
    /// Opens the store over `backend`: reads the list of accounts (each
    /// one's index and tree are opened on first use) and starts its writer.
    /// `clock` is read once per commit for `recorded_at` and record ids;
    /// every account's index keeps to `index_limits`.
    pub fn over(backend: B, clock: Clock, index: IndexOptions) -> Result<LayeredStore<B>> {
        let backend = Arc::new(backend);
        let cache = SegmentCache::new(index.memory);
        let repairs = segments::Repairs::default();
        let slots = open::list_accounts(&*backend)?
            .into_iter()
            .map(|(account, key, unsigned)| {
                (account, Arc::new(open::Slot::unopened(key, unsigned)))
            })
            .collect();
        let revoked = backend.with_reader(|reader| reader.revoked_token_count())?;
        let shared = Arc::new(Shared {
            accounts: RwLock::new(slots),
            tokens: tokens::TokenCache::new(revoked),
            failure: tokio::sync::watch::Sender::new(None),
            index_limits: index.limits,
            new_index: segments::new_index(&backend, &cache, &repairs, index.limits),
            cache,
            repairs: repairs.clone(),
            restore_problems: Default::default(),
            uses: AtomicU64::new(1),
            open: evict::OpenAccounts::new(index.open_accounts_memory),
        });
        let (tx, rx) = tokio::sync::mpsc::channel(WRITE_QUEUE);
        repairs.connect(&tx);
        backend.start_writer(Sequencer::new(shared.clone(), clock), rx)?;
        wake::start(&backend, &shared, &tx)?;
        Ok(LayeredStore {
            backend,
            shared,
            writer: tx,
        })
    }

    /// The backend under the layer.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    async fn send<T>(&self, op: impl FnOnce(oneshot::Sender<Result<T>>) -> Op) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let stopped = || {
            let cause = self
                .shared
                .writer_failure()
                .map_or_else(|| "shutting down".to_owned(), |c| format!("it died: {c}"));
            StoreError::new(
                StoreErrorKind::Unavailable,
                format!("the store's writer stopped ({cause})"),
            )
        };
        // Waits only while the queue is full: backpressure, not memory.
        self.writer
            .send(WriteOp::new(op(tx)))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// The state of `account` for a read (`None`: an account without
    /// events): opened if it is not yet, and, when other processes may
    /// append to the logs, brought up to what is committed (its index and
    /// tree head): read-your-writes across instances. One query per read;
    /// the writer's catch-up only when behind, which also creates the state
    /// of an account another process registered after this one opened.
    async fn state(&self, account: &AccountId) -> Result<Option<Arc<AccountState>>> {
        let opened = self.opened(account).await?;
        if !self.backend.several_appenders() {
            return Ok(opened);
        }
        let name = account.clone();
        let committed = self.read(move |r| r.committed_size(&name)).await?;
        let held = opened.as_ref().map_or(0, |a| a.index.len());
        if committed <= held {
            return Ok(opened);
        }
        let name = account.clone();
        // `opened` is held until the writer answers: an account in use is
        // never closed, so the op finds it open.
        self.send(|reply| Op::CatchUp {
            account: name,
            reply,
        })
        .await?;
        drop(opened);
        self.opened(account).await
    }

    /// Runs `f` on a blocking thread with a pooled reader.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&B::Reader) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.blocking(move |b| b.with_reader(f)).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&B) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || f(&backend))
            .await
            .map_err(|e| internal(format!("blocking task failed: {e}")))?
    }

    /// Runs `f` on a blocking thread with the account's tiles.
    async fn with_tiles<T: Send + 'static>(
        &self,
        account: &AccountId,
        f: impl FnOnce(&query::Tiles<'_, B::Reader>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let acc = self
            .shared
            .slot(account)
            .ok_or_else(|| internal("account vanished"))?;
        self.read(move |reader| {
            f(&query::Tiles {
                reader,
                account: acc.key,
            })
        })
        .await
    }

    /// At most once per [`TOKEN_REVOCATION_POLL`](crate::TOKEN_REVOCATION_POLL):
    /// asks the database whether a token was revoked by another process
    /// (`auditlog token revoke` while the server runs), and if so forgets
    /// the cached tokens.
    async fn poll_revocations(&self) -> Result<()> {
        if !self.shared.tokens.poll_due() {
            return Ok(());
        }
        let count = self.read(|r| r.revoked_token_count()).await?;
        self.shared.tokens.revoked_count_is(count);
        Ok(())
    }

    /// [`Store::append`], optionally marking a token change recorded in the
    /// same transaction.
    async fn append_recording(
        &self,
        account: &AccountId,
        events: Vec<ValidEvent>,
        records: Option<(String, TokenChange)>,
    ) -> Result<Vec<Appended>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // Everything of the canonical form but what the writer assigns is
        // serialized here, on the caller's thread, leaving the single writer
        // only the splice.
        let parts = events
            .iter()
            .map(|e| {
                CanonicalParts::new(
                    &CanonicalHead {
                        account_id: account.as_str(),
                        level: e.level,
                        category: &e.category,
                        event: &e.event,
                        occurred_at: e.occurred_at,
                    },
                    &CanonicalTail {
                        actor: &e.actor,
                        ip_address: e.ip_address.as_deref(),
                        workflow_id: e.workflow_id.as_deref(),
                        description: &e.description,
                        metadata: &e.metadata,
                    },
                )
            })
            .collect();
        // The writer appends to the account's tree: it must hold it first,
        // and keep it (an account in use is never closed) until it answers.
        let _open = self.opened(account).await?;
        let account = account.clone();
        self.send(|reply| Op::Append {
            account,
            events,
            parts,
            records,
            reply,
        })
        .await
    }
}

fn internal(msg: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Internal, msg)
}

fn parse_record(canonical: &[u8], leaf_hash: &Hash) -> Result<Record> {
    let body = serde_json::from_slice(canonical)
        .map_err(|e| internal(format!("stored record does not parse: {e}")))?;
    Ok(Record {
        body,
        leaf_hash: *leaf_hash,
    })
}

#[async_trait::async_trait]
impl<B: LogBackend> Store for LayeredStore<B> {
    async fn append(&self, account: &AccountId, events: Vec<ValidEvent>) -> Result<Vec<Appended>> {
        self.append_recording(account, events, None).await
    }

    async fn get(&self, account: &AccountId, id: &str) -> Result<Option<Record>> {
        let Some(acc) = self.state(account).await? else {
            return Ok(None);
        };
        let id = id.to_owned();
        self.read(move |r| {
            r.read_by_id(acc.key, &id)?
                .map(|raw| parse_record(&raw.canonical, &raw.leaf_hash))
                .transpose()
        })
        .await
    }

    async fn list(
        &self,
        account: &AccountId,
        sel: &Selection,
        after: Option<RowKey>,
        limit: usize,
    ) -> Result<Page> {
        let Some(acc) = self.state(account).await? else {
            return Ok(Page {
                records: Vec::new(),
                next: None,
            });
        };
        let sel = sel.clone();
        // The deadline counts from the request, queueing for a thread
        // included.
        let watch = sel.control.start();
        self.read(move |r| query::list(r, &acc, &sel, watch, after, limit))
            .await
    }

    async fn count(&self, account: &AccountId, sel: &Selection) -> Result<u64> {
        let Some(acc) = self.state(account).await? else {
            return Ok(0);
        };
        let sel = sel.clone();
        let watch = sel.control.start();
        self.read(move |r| query::count(r, &acc, &sel, watch)).await
    }

    async fn histogram(
        &self,
        account: &AccountId,
        sel: &Selection,
        edges: Vec<i64>,
    ) -> Result<Vec<u64>> {
        let Some(acc) = self.state(account).await? else {
            return Ok(vec![0; edges.len().saturating_sub(1)]);
        };
        let sel = sel.clone();
        let watch = sel.control.start();
        self.read(move |r| query::histogram(r, &acc, &sel, watch, &edges))
            .await
    }

    async fn first_event_time(&self, account: &AccountId) -> Result<Option<i64>> {
        Ok(self.state(account).await?.and_then(|a| a.index.min_time()))
    }

    async fn export(
        &self,
        account: &AccountId,
        sel: &Selection,
        mut sink: Box<RawSink<'static>>,
    ) -> Result<u64> {
        let Some(acc) = self.state(account).await? else {
            return Ok(0);
        };
        let sel = sel.clone();
        self.blocking(move |backend| {
            // A reader of its own: an export may run for minutes and must
            // not hold a pooled one (the export cap of the HTTP layer
            // bounds how many there are).
            let reader = backend.dedicated_reader()?;
            query::export(&reader, &acc, &sel, &mut *sink)
        })
        .await
    }

    async fn user_names(
        &self,
        account: &AccountId,
        needle: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        Ok(self
            .state(account)
            .await?
            .map(|a| a.index.user_names(needle, limit))
            .unwrap_or_default())
    }

    async fn tree_head(&self, account: &AccountId) -> Result<TreeHead> {
        Ok(match self.state(account).await? {
            Some(a) => *a.head.lock().unwrap_or_else(|e| e.into_inner()),
            None => TreeHead {
                size: 0,
                root: merkle::EMPTY_ROOT,
            },
        })
    }

    async fn unsigned_heads(&self) -> Result<Vec<(AccountId, TreeHead)>> {
        let mut heads = Vec::new();
        for (id, slot) in self.slots() {
            // An account left with events no checkpoint covers is opened
            // for its root; the others wait for a request.
            let a = match slot.state() {
                Some(a) => a,
                None if slot.unsigned_unopened() => match self.opened(&id).await? {
                    Some(a) => a,
                    None => continue,
                },
                None => continue,
            };
            let head = *a.head.lock().unwrap_or_else(|e| e.into_inner());
            let signed = *a.signed.lock().unwrap_or_else(|e| e.into_inner());
            if head.size > signed {
                heads.push((id, head));
            }
        }
        Ok(heads)
    }

    async fn unsigned_head(&self, account: &AccountId) -> Result<Option<TreeHead>> {
        Ok(self.state(account).await?.and_then(|a| {
            let head = *a.head.lock().unwrap_or_else(|e| e.into_inner());
            let signed = *a.signed.lock().unwrap_or_else(|e| e.into_inner());
            (head.size > signed).then_some(head)
        }))
    }

    async fn put_checkpoint(&self, account: &AccountId, size: u64, note: String) -> Result<()> {
        // The writer records the signed size in the account's state, which
        // is held (so never closed) until it answers.
        let _open = self.opened(account).await?;
        let account = account.clone();
        self.send(|reply| Op::Checkpoint {
            account,
            size,
            note,
            reply,
        })
        .await
    }

    async fn latest_checkpoint(&self, account: &AccountId) -> Result<Option<String>> {
        let Some(acc) = self.state(account).await? else {
            return Ok(None);
        };
        self.read(move |r| r.latest_checkpoint(acc.key)).await
    }

    async fn inclusion_proof(&self, account: &AccountId, seq: u64, size: u64) -> Result<Vec<Hash>> {
        let head = self.tree_head(account).await?;
        if size > head.size || seq >= size {
            return Err(StoreError::invalid(format!(
                "no inclusion proof for seq {seq} in a tree of size {size}: the log has {} events and seq must be below size",
                head.size
            )));
        }
        self.with_tiles(account, move |tiles| {
            merkle::inclusion_proof(seq, size, tiles)
                .map_err(|e| internal(format!("inclusion proof: {e}")))
        })
        .await
    }

    async fn consistency_proof(
        &self,
        account: &AccountId,
        from: u64,
        to: u64,
    ) -> Result<Vec<Hash>> {
        let head = self.tree_head(account).await?;
        if from > to || to > head.size {
            return Err(StoreError::invalid(format!(
                "no consistency proof from size {from} to {to}: need from ≤ to ≤ {} (the log's size)",
                head.size
            )));
        }
        if from == 0 || from == to {
            return Ok(Vec::new());
        }
        self.with_tiles(account, move |tiles| {
            merkle::consistency_proof(from, to, tiles)
                .map_err(|e| internal(format!("consistency proof: {e}")))
        })
        .await
    }

    async fn create_token(&self, token: TokenRecord) -> Result<()> {
        self.send(|reply| Op::CreateToken { token, reply }).await
    }

    async fn find_token(&self, secret_hash: &Hash) -> Result<Option<TokenRecord>> {
        let hash = *secret_hash;
        // A failed poll leaves the cache as it is (the TTL still bounds it)
        // rather than failing a request the cache can answer.
        if let Err(e) = self.poll_revocations().await {
            tracing::warn!(error = %e, "checking for revoked tokens failed");
        }
        if let Some(count) = self.backend.revocations_notified() {
            self.shared.tokens.notified_is(count);
        }
        if let Some(token) = self.shared.tokens.get(&hash) {
            return Ok(Some(token));
        }
        let generation = self.shared.tokens.generation();
        let found = self.read(move |r| r.live_token(&hash)).await?;
        if let Some(token) = &found {
            self.shared.tokens.insert(hash, token.clone(), generation);
        }
        Ok(found)
    }

    async fn revoke_token(&self, revocation: Revocation) -> Result<bool> {
        let revoked = self
            .send(|reply| Op::RevokeToken { revocation, reply })
            .await?;
        // Whatever was revoked must stop working now, not after the TTL.
        self.shared.tokens.forget();
        Ok(revoked)
    }

    async fn token_info(&self, id: &str) -> Result<Option<TokenInfo>> {
        let id = id.to_owned();
        self.read(move |r| r.token_info(&id)).await
    }

    async fn list_tokens(&self, scope: &TokenScope) -> Result<Vec<TokenInfo>> {
        let scope = scope.clone();
        self.read(move |r| r.list_tokens(&scope)).await
    }

    fn note_token_use(&self, id: &str, at_us: i64) {
        self.shared.tokens.note_use(id, at_us, || {
            // Queued, not awaited: the request does not wait for the write.
            // A full queue (the writer is busy) skips this one; a later use
            // retries.
            let (reply, _) = oneshot::channel();
            let op = Op::TouchToken {
                id: id.to_owned(),
                at_us,
                reply,
            };
            self.writer.try_send(WriteOp::new(op)).is_ok()
        });
    }

    async fn pending_token_changes(&self, now_us: i64) -> Result<Vec<PendingTokenChange>> {
        self.read(move |r| r.pending_token_changes(now_us)).await
    }

    async fn record_token_change(
        &self,
        id: &str,
        change: TokenChange,
        event: Option<(AccountId, ValidEvent)>,
    ) -> Result<bool> {
        let id = id.to_owned();
        match event {
            Some((account, event)) => Ok(!self
                .append_recording(&account, vec![event], Some((id, change)))
                .await?
                .is_empty()),
            None => self.send(|reply| Op::MarkToken { id, change, reply }).await,
        }
    }

    async fn ready(&self) -> Result<()> {
        if let Some(cause) = self.shared.writer_failure() {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("the store's writer died ({cause}); restart the process"),
            ));
        }
        self.read(|r| r.ping()).await
    }

    async fn close(&self) -> Result<()> {
        self.store_index_tails().await
    }

    async fn failed(&self) -> StoreError {
        let mut rx = self.shared.failure.subscribe();
        let cause = rx
            .wait_for(Option::is_some)
            .await
            .map(|c| c.clone().unwrap_or_default());
        // The sender lives in `Shared`, which `self` holds: never closed.
        let Ok(cause) = cause else {
            return std::future::pending().await;
        };
        StoreError::new(
            StoreErrorKind::Unavailable,
            format!("the store's writer died: {cause}"),
        )
    }

    async fn leads_checkpoints(&self) -> Result<bool> {
        self.blocking(|b| b.lead_checkpoints()).await
    }

    async fn size_bytes(&self) -> Result<u64> {
        // On a blocking thread like every backend call: a database backend
        // asks its server.
        self.blocking(|b| b.size_bytes()).await
    }

    fn index_cache_stats(&self) -> Option<CacheStats> {
        Some(self.shared.cache.stats())
    }

    fn open_account_stats(&self) -> Option<OpenAccountStats> {
        Some(self.shared.open.stats())
    }
}
