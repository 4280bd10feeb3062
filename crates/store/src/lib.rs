//! Durable storage for auditlog: the [`Store`] trait and its backends.
//!
//! Only this crate knows SQL. A store keeps, per account, the append-only
//! log of records (with `seq` and `leaf_hash`), the Merkle tiles over it, the
//! signed checkpoints and the API tokens. Queries run on the column index of
//! `auditlog_core::index`, which the layered store keeps in step with the
//! log.
//!
//! Two layers implement [`Store`]: [`layered::LayeredStore`] owns everything
//! that does not depend on the database (the column index, the Merkle tree
//! state, the token cache, the query code, sequencing and idempotency), and
//! it runs over a thin durable-log backend, [`backend::LogBackend`], which
//! stores rows, tiles, checkpoints and tokens. The embedded backend is
//! [`sqlite::SqliteBackend`] ([`sqlite::SqliteStore`] is the layered store
//! over it). Every backend must pass the conformance suite in `tests/` (one
//! suite, stamped out per backend).
//!
//! # What this crate must never do
//!
//! - **Update or delete an event**: no method does; the log is append-only
//!   and `seq` dense per account.
//! - **Answer before durability**: an append returns only after its
//!   transaction is committed and synced (and its rows are in the index).
//! - **Cross accounts**: every method that reads or writes a log, tree or
//!   checkpoint takes the account (the exceptions are named on the trait).
//! - **Know HTTP or product rules**: validation and query semantics are
//!   `auditlog-core`'s; this crate stores and finds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use auditlog_core::index::{RowKey, TimeBounds};
use auditlog_core::merkle::Hash;
use auditlog_core::query::{Filter, Join};
use auditlog_core::record::{AccountId, Record};
use auditlog_core::validate::ValidEvent;

pub mod backend;
pub mod layered;
pub mod migrate;
pub mod postgres;
pub mod sqlite;

/// Reads the current time: the store's one clock, used for `recorded_at`,
/// the time part of record ids, and nothing else. Injected (see
/// [`sqlite::SqliteOptions::clock`]) so that tests can pin it; production
/// uses [`Clock::system`].
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(jiff::Timestamp::now))
    }

    pub fn new(f: impl Fn() -> jiff::Timestamp + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    pub fn now(&self) -> jiff::Timestamp {
        (self.0)()
    }
}

impl From<Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>> for Clock {
    fn from(f: Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>) -> Clock {
        Clock(f)
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// What kind of failure a store operation met; callers match on this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The store cannot take writes or answer now (disk full, database
    /// unreachable, shutting down). Retry later; nothing was half-written.
    Unavailable,
    /// The request names something impossible (a proof for a size the log
    /// has not reached, …).
    Invalid,
    /// The request contradicts what is stored: an idempotency key already
    /// used for a different event. Nothing was written; retrying the same
    /// request fails the same way.
    Conflict,
    /// A query ran past its deadline ([`QueryControl::timeout`]); the same
    /// query will likely take as long again, so narrowing it is the fix.
    TimedOut,
    /// A query needed more stored records read than its cap
    /// ([`QueryControl::max_record_reads`]); the same query always will,
    /// so narrowing it is the fix.
    TooBroad,
    /// A bug or corrupted data.
    Internal,
}

/// A store failure: a kind to match on and the cause to log.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        kind: StoreErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    pub fn invalid(message: impl Into<String>) -> StoreError {
        StoreError::new(StoreErrorKind::Invalid, message)
    }

    pub fn conflict(message: impl Into<String>) -> StoreError {
        StoreError::new(StoreErrorKind::Conflict, message)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The outcome of appending one event.
#[derive(Clone, Debug)]
pub struct Appended {
    pub record: Record,
    /// `false` when an earlier event with the same idempotency key was
    /// returned instead of writing a new one.
    pub created: bool,
}

/// One token revocation, as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The exact scope of the token to revoke.
    pub scope: TokenScope,
    pub id: String,
    /// The revoking token's id; `None`: an operator.
    pub by: Option<String>,
    /// The account whose log records the revocation (for a `*` token: the
    /// account of the request); `None`: no log records it.
    pub on: Option<AccountId>,
    /// When, in Unix microseconds.
    pub at_us: i64,
}

impl Revocation {
    /// A revocation of `id` of exactly `scope`, by the token `by` (`None`:
    /// an operator), recorded in the log of `on`, at `at_us`.
    pub fn new(
        scope: &TokenScope,
        id: &str,
        by: Option<&str>,
        on: Option<&AccountId>,
        at_us: i64,
    ) -> Revocation {
        Revocation {
            scope: scope.clone(),
            id: id.to_owned(),
            by: by.map(str::to_owned),
            on: on.cloned(),
            at_us,
        }
    }
}

/// Which part of an account's log a query covers: the index's own type.
pub use auditlog_core::index::Scope;

/// A query's selection: scope, time bounds, filters and their join, and
/// what stops it early.
#[derive(Clone, Debug)]
pub struct Selection {
    pub scope: Scope,
    pub bounds: TimeBounds,
    pub filters: Vec<Filter>,
    pub join: Join,
    pub control: QueryControl,
}

/// How long a query may work, how many stored records it may read, and
/// whether its client still wants the answer. The store checks it in its
/// per-row and per-batch loops (at least once per stored record read to
/// decide a row the index cannot, and per export batch): past the deadline
/// the query fails with [`StoreErrorKind::TimedOut`], past the record
/// reads with [`StoreErrorKind::TooBroad`], once cancelled with
/// [`StoreErrorKind::Unavailable`], and either way stops working soon after.
///
/// Clones share the cancellation flag, so the HTTP handler keeps one (as
/// the guard of [`QueryControl::cancel_on_drop`]) and the store's blocking
/// thread another.
#[derive(Clone, Debug, Default)]
pub struct QueryControl {
    cancelled: Arc<AtomicBool>,
    /// The longest a query (for an export: the walk to each next batch) may
    /// work; `None` for no deadline.
    pub timeout: Option<Duration>,
    /// The most stored records a list, count or histogram may read to
    /// decide rows the index cannot (a description filter, a value past a
    /// distinct-value cap); `None` for no cap. An export ignores it (it
    /// reads every row it sends anyway; export slots bound it). The
    /// deadline bounds the time such a query takes, this bounds its work:
    /// a machine under load would otherwise let the same query read fewer
    /// records before its deadline, and the answer would depend on the
    /// load.
    pub max_record_reads: Option<u64>,
}

impl QueryControl {
    pub fn new(timeout: Option<Duration>) -> QueryControl {
        QueryControl {
            cancelled: Arc::default(),
            timeout,
            max_record_reads: None,
        }
    }

    /// The same control with a cap on the stored records read (see
    /// [`QueryControl::max_record_reads`]).
    pub fn with_max_record_reads(mut self, max: Option<u64>) -> QueryControl {
        self.max_record_reads = max;
        self
    }

    /// Asks every clone to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// A guard that cancels the query when dropped: held by a request's
    /// future, it stops the work when the client goes away (hyper drops the
    /// future) as well as when the answer is done.
    pub fn cancel_on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }

    /// Starts the clock: the watch the store checks from here on.
    pub fn start(&self) -> QueryWatch {
        QueryWatch {
            deadline: self.timeout.map(|t| Instant::now() + t),
            control: self.clone(),
        }
    }
}

/// Cancels its query when dropped (see [`QueryControl::cancel_on_drop`]).
#[derive(Debug)]
pub struct CancelOnDrop(QueryControl);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A started query's deadline and cancellation flag.
#[derive(Clone, Debug)]
pub struct QueryWatch {
    control: QueryControl,
    deadline: Option<Instant>,
}

impl QueryWatch {
    /// The cap on stored records this query may read, if any.
    pub fn max_record_reads(&self) -> Option<u64> {
        self.control.max_record_reads
    }

    /// The error of a query that needed more than `max` stored records
    /// read (counted in `auditlog_queries_stopped_total{reason}`): what was
    /// exceeded and what to do, in words a dashboard user can act on.
    pub fn too_broad(max: u64) -> StoreError {
        metrics::counter!("auditlog_queries_stopped_total", "reason" => "record_reads")
            .increment(1);
        StoreError::new(
            StoreErrorKind::TooBroad,
            format!(
                "this query was stopped after reading {} stored events, its limit: \
                 a description filter (or a filter on a value the index does not hold) \
                 is checked by reading each event it could match; \
                 narrow the time range, or add a filter on event, category, user or IP address",
                group_digits(max)
            ),
        )
    }

    /// `Err` once the query should stop: cancelled, or past its deadline
    /// (counted in `auditlog_queries_stopped_total{reason}`). A caller
    /// stops at the first `Err`, so each stopped query counts once.
    pub fn check(&self) -> Result<()> {
        if self.control.is_cancelled() {
            metrics::counter!("auditlog_queries_stopped_total", "reason" => "cancelled")
                .increment(1);
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "query cancelled: its client went away",
            ));
        }
        if let (Some(deadline), Some(timeout)) = (self.deadline, self.control.timeout)
            && Instant::now() >= deadline
        {
            metrics::counter!("auditlog_queries_stopped_total", "reason" => "deadline")
                .increment(1);
            return Err(StoreError::new(
                StoreErrorKind::TimedOut,
                format!(
                    "the query ran longer than its deadline of {} s and was stopped; \
                     narrow the time range or the filters (description filters are the slowest)",
                    timeout.as_secs_f64()
                ),
            ));
        }
        Ok(())
    }
}

/// `1234567` as `1,234,567`: a limit a person reads.
fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One page of records, newest first, as stored (see [`RawRecord`]): the
/// API writes them out with their leaf hash spliced in, never re-serialized.
#[derive(Clone, Debug)]
pub struct Page {
    /// Checked to be UTF-8 (unlike an export's, which its consumer checks).
    pub records: Vec<RawRecord>,
    /// The key of the last record when another page follows.
    pub next: Option<RowKey>,
}

/// A stored record as raw canonical bytes, for answering pages and
/// exports without re-serializing: the API JSON is `canonical` with the
/// leaf hash spliced in
/// ([`Record::json_from_canonical`](auditlog_core::record::Record::json_from_canonical)).
///
/// In an export the bytes are as stored, not yet checked to be UTF-8: the
/// consumer checks them (the export's encoder thread has time to spare, its
/// reader has not).
#[derive(Clone, Debug)]
pub struct RawRecord {
    pub seq: u64,
    pub canonical: Vec<u8>,
    pub leaf_hash: Hash,
}

/// The tree head of one account, as committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
}

/// A token's role (spec §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Ingest,
    Read,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "ingest" => Some(Role::Ingest),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Which accounts a token may touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenScope {
    Account(AccountId),
    /// `*`: a platform service that ingests (or reads) for every account.
    All,
}

impl TokenScope {
    pub fn as_str(&self) -> &str {
        match self {
            TokenScope::Account(a) => a.as_str(),
            TokenScope::All => "*",
        }
    }

    pub fn allows(&self, account: &AccountId) -> bool {
        match self {
            TokenScope::Account(a) => a == account,
            TokenScope::All => true,
        }
    }

    /// A scope as a backend stored it ([`TokenScope::as_str`]).
    pub(crate) fn from_stored(scope: &str) -> Result<TokenScope> {
        if scope == "*" {
            Ok(TokenScope::All)
        } else {
            AccountId::parse(scope)
                .map(TokenScope::Account)
                .map_err(|e| {
                    StoreError::new(
                        StoreErrorKind::Internal,
                        format!("stored token scope is invalid: {e}"),
                    )
                })
        }
    }
}

/// A token as stored: never the secret, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub secret_hash: Hash,
    pub scope: TokenScope,
    pub role: Role,
    pub created_at_us: i64,
    /// The instant from which the token is refused (`None`: never expires).
    /// The store keeps it; callers compare it with their own clock.
    pub expires_at_us: Option<i64>,
    /// Who issued it: the id of the admin token that did, or `None` for an
    /// operator on the command line (or the demo).
    pub created_by: Option<String>,
}

impl TokenRecord {
    /// Whether the token is past its expiry at `now_us`.
    pub fn is_expired(&self, now_us: i64) -> bool {
        self.expires_at_us.is_some_and(|e| e <= now_us)
    }
}

/// What a token listing shows: everything about a token but its secret and
/// the secret's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub scope: TokenScope,
    pub role: Role,
    pub created_at_us: i64,
    pub created_by: Option<String>,
    pub expires_at_us: Option<i64>,
    /// The last request made with it, as noted by
    /// [`Store::note_token_use`] (persisted at most once a minute).
    pub last_used_at_us: Option<i64>,
    pub revoked_at_us: Option<i64>,
    pub revoked_by: Option<String>,
}

/// A change to a token that the account's log records as an "Audit Logs"
/// event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenChange {
    Created,
    Revoked,
    Expired,
}

impl TokenChange {
    pub const ALL: [TokenChange; 3] = [
        TokenChange::Created,
        TokenChange::Revoked,
        TokenChange::Expired,
    ];

    /// The catalog event ("Audit Logs" category) that records it.
    pub fn event_name(self) -> &'static str {
        match self {
            TokenChange::Created => "Token created",
            TokenChange::Revoked => "Token revoked",
            TokenChange::Expired => "Token expired",
        }
    }
}

/// A token change no event records yet (see [`Store::pending_token_changes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingTokenChange {
    pub token: TokenInfo,
    pub change: TokenChange,
    /// The account whose log should record it: the token's own account, or
    /// for a `*` token the account named by the request that revoked it;
    /// `None` when no account is involved (a `*` token created or revoked on
    /// the command line, or expired).
    pub account: Option<AccountId>,
}

impl TokenChange {
    /// The bit of a token row's `logged` column that says an event records
    /// this change already (the same in every backend).
    pub(crate) fn logged_bit(self) -> i64 {
        match self {
            TokenChange::Created => 1,
            TokenChange::Revoked => 2,
            TokenChange::Expired => 4,
        }
    }
}

impl PendingTokenChange {
    /// The changes of one stored token that no event records yet, given its
    /// `logged` bits and the account its revocation was made in, appended
    /// to `out` (the part of a backend's pending-change read that does not
    /// depend on the database).
    pub(crate) fn of_token(
        info: TokenInfo,
        logged: i64,
        revoked_in: Option<&str>,
        now_us: i64,
        out: &mut Vec<PendingTokenChange>,
    ) {
        let own = match &info.scope {
            TokenScope::Account(a) => Some(a.clone()),
            TokenScope::All => None,
        };
        let changes = [
            (TokenChange::Created, true),
            (TokenChange::Revoked, info.revoked_at_us.is_some()),
            (
                TokenChange::Expired,
                info.revoked_at_us.is_none() && info.expires_at_us.is_some_and(|e| e <= now_us),
            ),
        ];
        for (change, happened) in changes {
            if !happened || logged & change.logged_bit() != 0 {
                continue;
            }
            let account = match change {
                TokenChange::Revoked => revoked_in
                    .and_then(|a| AccountId::parse(a).ok())
                    .or_else(|| own.clone()),
                _ => own.clone(),
            };
            out.push(PendingTokenChange {
                token: info.clone(),
                change,
                account,
            });
        }
    }
}

/// A byte sink for streamed exports; returning an error stops the stream.
pub type RawSink<'a> = dyn FnMut(Vec<RawRecord>) -> Result<(), StoreError> + Send + 'a;

/// The accounts a store holds open (their index besides the segments, and
/// their tree), for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenAccountStats {
    /// Accounts open now.
    pub open: u64,
    /// What they hold, estimated (see `LogIndex::open_bytes`).
    pub bytes: u64,
    /// The budget past which idle accounts are closed.
    pub budget: u64,
    /// Accounts closed to keep within the budget, since the store opened.
    pub evictions: u64,
}

/// The storage boundary. Used as `Arc<dyn Store>`.
///
/// Contract for every method:
/// - Tenant isolation: a method that takes an account never returns,
///   counts or proves anything of another account. The methods without one
///   are the operator's and the authenticator's: [`Store::unsigned_heads`]
///   (every account's head, for the signer) and the token methods (a token
///   is found by its secret before any account is known; its scope says
///   which accounts it may touch).
/// - Errors of kind `Unavailable` leave nothing half-written: a failed
///   append wrote none of its events.
/// - No method updates or deletes an event: the log is append-only.
/// - What a store holds in memory for an account is derived: an account
///   closed to keep within a memory budget, and opened again on its next
///   use, answers every method exactly as if it had stayed open.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends `events` to the account's log, all or nothing, and returns
    /// when they are durable (committed and synced). Each new event gets the
    /// next `seq`, a fresh ULID `id` and `recorded_at`, both from the
    /// store's [`Clock`] read once per commit, and its
    /// leaf hash. An event whose idempotency key the account has used before
    /// (or earlier in the same call) is not written again: if it is the same
    /// event, the first record is returned with `created: false`; if it is
    /// another, the whole call fails with [`StoreErrorKind::Conflict`] and
    /// writes nothing (other callers' appends are not affected). "The same
    /// event" means equal canonical forms but for `id`, `seq` and
    /// `recorded_at`, except that a field the new event took as a server
    /// default (`occurred_at`, `ip_address`: see
    /// [`ValidEvent::defaulted`](auditlog_core::validate::ValidEvent)) is not
    /// compared, so a retry that leaves them out is the same event whatever
    /// the clock or the client's address. Results are in input order. Once
    /// this returns, every query sees the events.
    async fn append(&self, account: &AccountId, events: Vec<ValidEvent>) -> Result<Vec<Appended>>;

    /// One record by id.
    async fn get(&self, account: &AccountId, id: &str) -> Result<Option<Record>>;

    /// The newest `limit` records of the selection strictly after `after`
    /// in (occurred_at, seq) descending order.
    async fn list(
        &self,
        account: &AccountId,
        sel: &Selection,
        after: Option<RowKey>,
        limit: usize,
    ) -> Result<Page>;

    /// Exact number of records in the selection.
    async fn count(&self, account: &AccountId, sel: &Selection) -> Result<u64>;

    /// Records per bucket: `edges` are bucket starts then the final end.
    async fn histogram(
        &self,
        account: &AccountId,
        sel: &Selection,
        edges: Vec<i64>,
    ) -> Result<Vec<u64>>;

    /// Earliest `occurred_at` of the account, if it has events.
    async fn first_event_time(&self, account: &AccountId) -> Result<Option<i64>>;

    /// Streams every record of the selection, newest first, in batches, to
    /// `sink` (called from a blocking thread). Memory stays bounded however
    /// many records match: the matching keys are walked in bounded batches
    /// (see `auditlog_core::index::ExportKeys`), and their records read and
    /// handed over a thousand at a time.
    ///
    /// The walk is a consistent snapshot: exactly the matching records the
    /// log held when the call started (records appended meanwhile are left
    /// out), newest first. No read transaction or snapshot is held while
    /// `sink` runs, so a sink that blocks on a slow client keeps nothing
    /// from the database (the WAL can still be checkpointed and rewound).
    /// `sel.control` is checked between batches: a cancelled export stops,
    /// and the walk to each next batch has the control's timeout. Returns
    /// the number of records handed to `sink`; a sink error stops the
    /// export and is returned.
    async fn export(
        &self,
        account: &AccountId,
        sel: &Selection,
        sink: Box<RawSink<'static>>,
    ) -> Result<u64>;

    /// User names seen in the account's log containing `needle`.
    async fn user_names(
        &self,
        account: &AccountId,
        needle: &str,
        limit: usize,
    ) -> Result<Vec<String>>;

    /// The committed tree head of the account (size 0 if it has no events).
    async fn tree_head(&self, account: &AccountId) -> Result<TreeHead>;

    /// Accounts whose committed size is larger than their latest stored
    /// checkpoint: the ones to sign next.
    async fn unsigned_heads(&self) -> Result<Vec<(AccountId, TreeHead)>>;

    /// The committed tree head of `account` if it is larger than its latest
    /// stored checkpoint (`None`: nothing to sign, or no such account). Looks
    /// at this account only, so a request can sign its own head without
    /// signing anyone else's.
    async fn unsigned_head(&self, account: &AccountId) -> Result<Option<TreeHead>>;

    /// Stores a signed checkpoint note for `size` (idempotent per size).
    async fn put_checkpoint(&self, account: &AccountId, size: u64, note: String) -> Result<()>;

    /// The latest signed checkpoint note of the account.
    async fn latest_checkpoint(&self, account: &AccountId) -> Result<Option<String>>;

    /// Inclusion proof of leaf `seq` in the tree of `size` leaves.
    async fn inclusion_proof(&self, account: &AccountId, seq: u64, size: u64) -> Result<Vec<Hash>>;

    /// Consistency proof between the trees of `from` and `to` leaves.
    async fn consistency_proof(&self, account: &AccountId, from: u64, to: u64)
    -> Result<Vec<Hash>>;

    /// Stores a new token (the id and the secret hash must be unique). Its
    /// creation is pending in [`Store::pending_token_changes`] until
    /// [`Store::record_token_change`] records it.
    async fn create_token(&self, token: TokenRecord) -> Result<()>;

    /// The token with this secret hash unless it is revoked. Expired tokens
    /// are returned too (with `expires_at_us`): the caller compares with its
    /// own clock. A revocation through this store is seen by the very next
    /// call; one made by another process on the same database (the command
    /// line) within [`TOKEN_REVOCATION_POLL`].
    async fn find_token(&self, secret_hash: &Hash) -> Result<Option<TokenRecord>>;

    /// Revokes the live token `r.id` whose scope is exactly `r.scope`
    /// (`*` tokens are revoked with [`TokenScope::All`]); `false` if there
    /// is no such live token, so nothing is revealed of other scopes.
    /// Effective for [`Store::find_token`] as soon as this returns.
    async fn revoke_token(&self, r: Revocation) -> Result<bool>;

    /// The token `id` (revoked or not), without its hash.
    async fn token_info(&self, id: &str) -> Result<Option<TokenInfo>>;

    /// Tokens whose scope is exactly `scope` and that are not revoked
    /// (expired ones included), oldest first. Never secrets or hashes.
    async fn list_tokens(&self, scope: &TokenScope) -> Result<Vec<TokenInfo>>;

    /// Notes that token `id` was used at `at_us`. Cheap and never waits on
    /// I/O: the time is persisted off the caller's path, at most once per
    /// [`TOKEN_USE_PERSIST_EVERY`] per token (later uses within that window
    /// are not written; a crash may lose the last one).
    fn note_token_use(&self, id: &str, at_us: i64);

    /// Token changes that no event records yet: creations, revocations, and
    /// expiries (tokens not revoked whose `expires_at` ≤ `now_us`), oldest
    /// first.
    async fn pending_token_changes(&self, now_us: i64) -> Result<Vec<PendingTokenChange>>;

    /// Marks `change` of token `id` as recorded and, in the same
    /// transaction, appends `event` (with no idempotency key) to the
    /// account's log, when given. Returns `false` if the change had been
    /// recorded already: nothing is appended, so each change is recorded at
    /// most once however many callers race; a failure records nothing and
    /// leaves the change pending.
    async fn record_token_change(
        &self,
        id: &str,
        change: TokenChange,
        event: Option<(AccountId, ValidEvent)>,
    ) -> Result<bool>;

    /// Store is reachable and accepting work: `Err` when it cannot take
    /// writes until the process restarts (see [`Store::failed`]).
    async fn ready(&self) -> Result<()>;

    /// Resolves, with the cause, once the store can no longer take writes
    /// until it is opened again (the embedded backend's writer thread died);
    /// never resolves otherwise. Every write from then on fails with
    /// `Unavailable` and none waits forever. The binary exits on it so that
    /// a supervisor restarts the process, which rebuilds the in-memory state
    /// from the durable file.
    async fn failed(&self) -> StoreError {
        std::future::pending().await
    }

    /// Called once at a clean shutdown, after the last request: stores
    /// what lets the next open start faster (the index tails of the open
    /// accounts). A crash skips it and loses nothing. Nothing by default.
    async fn close(&self) -> Result<()> {
        Ok(())
    }

    /// Bytes the store uses on disk, for metrics.
    async fn size_bytes(&self) -> Result<u64>;

    /// The column index's segment cache counters, for metrics.
    fn index_cache_stats(&self) -> Option<auditlog_core::index::CacheStats> {
        None
    }

    /// What the open accounts hold and how often accounts were closed,
    /// for metrics.
    fn open_account_stats(&self) -> Option<OpenAccountStats> {
        None
    }

    /// Whether this process is the one that signs checkpoints in the
    /// background (several instances on one database elect one; the
    /// others still sign an account's head when a client asks for its
    /// checkpoint — a note of one size is the same whoever signs it). Asked
    /// before every round; `true` for a store only one process serves.
    async fn leads_checkpoints(&self) -> Result<bool> {
        Ok(true)
    }
}

/// How soon a revocation made by another process on the same database
/// (`auditlog token revoke` while a server runs) takes effect: a store
/// trusts tokens it has looked up for a while, and checks at most this often
/// whether anything was revoked behind its back.
pub const TOKEN_REVOCATION_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// How often a token's "last used" time is written at most: once per
/// request would add a write to every read.
pub const TOKEN_USE_PERSIST_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Shared handle to a store.
pub type DynStore = Arc<dyn Store>;
