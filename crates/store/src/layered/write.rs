//! The write path's backend-neutral half: the ops callers queue, and the
//! [`Sequencer`] that applies a group of them in one backend transaction —
//! seqs, ids and `recorded_at`, idempotency, the canonical splice, the
//! Merkle tree, and after the commit the column index and tree heads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use auditlog_core::catalog::EventId;
use auditlog_core::index::IndexRow;
use auditlog_core::merkle::{self, Hash, TreeState};
use auditlog_core::record::{AccountId, CanonicalParts, Micros, Record, RecordBody};
use auditlog_core::validate::ValidEvent;
use tokio::sync::oneshot;

mod adopt;
mod catch_up;
mod seal;

pub(super) use catch_up::OwnedRow;
pub(super) mod evict;
mod idem;

use idem::{Earlier, record_like, same_event};

use super::open::{Opened, Slot};
use super::{AccountState, Shared, internal, parse_record};
use crate::backend::{AccountKey, LogTx, NewRow};
use crate::{Appended, Clock, Result, Revocation, StoreError, TokenChange, TokenRecord, TreeHead};

type Reply<T> = oneshot::Sender<Result<T>>;

/// One write a caller queued; answered on its reply channel once the
/// transaction holding it has committed (or with the error that stopped it).
pub struct WriteOp(Op);

pub(super) enum Op {
    Append {
        account: AccountId,
        events: Vec<ValidEvent>,
        /// The canonical form of each event, but for id, seq, recorded_at.
        parts: Vec<CanonicalParts>,
        /// A token change these events record: its bit is set in the same
        /// transaction, and if it was set already nothing is appended (the
        /// reply is then empty).
        records: Option<(String, TokenChange)>,
        reply: Reply<Vec<Appended>>,
    },
    Checkpoint {
        account: AccountId,
        size: u64,
        note: String,
        reply: Reply<()>,
    },
    CreateToken {
        token: TokenRecord,
        reply: Reply<()>,
    },
    RevokeToken {
        revocation: Revocation,
        reply: Reply<bool>,
    },
    /// Sets a token change's bit without an event (a `*` token's change
    /// that no account's log is the place for).
    MarkToken {
        id: String,
        change: TokenChange,
        reply: Reply<bool>,
    },
    /// Brings the account's tree and index up to what other processes
    /// committed (a read's catch-up; see [`LogBackend::several_appenders`](crate::backend::LogBackend::several_appenders)).
    CatchUp {
        account: AccountId,
        reply: Reply<()>,
    },
    /// Rows other processes committed, `from` on, read off the writer
    /// after a notification (see `wake.rs`): the writer appends those its
    /// tree and index lack, before any transaction, and answers how many.
    Extend {
        account: AccountId,
        from: u64,
        rows: Vec<OwnedRow>,
        hashes: Vec<Hash>,
        reply: Reply<u64>,
    },
    /// Persists a token's last use (nobody waits for the reply).
    TouchToken {
        id: String,
        at_us: i64,
        reply: Reply<()>,
    },
    /// Takes the state of an account opened off the writer (see
    /// `open.rs`), unless it holds one already: answered, before any
    /// transaction, with the state it holds from then on (`None`: the
    /// state is stale, the account was closed since it was read; open it
    /// again). Then stores the segments of chunks the open replayed from
    /// rows.
    Adopt {
        account: AccountId,
        opened: Box<Opened>,
        reply: Reply<Option<Arc<AccountState>>>,
    },
    /// Stores again the columns of an index segment a query found
    /// unreadable and rebuilt from its rows (nobody waits for the reply).
    PutIndexColumns {
        key: AccountKey,
        no: u32,
        columns: Vec<u8>,
        reply: Reply<()>,
    },
    /// Stores the index tail of every open account (a clean shutdown;
    /// see [`StoredTail`](auditlog_core::index::StoredTail)).
    StoreIndexTails { reply: Reply<()> },
    /// Replaces every index segment of an account (`auditlog index
    /// rebuild`): `(number, summary, columns)`.
    ReplaceIndex {
        key: AccountKey,
        segments: Vec<(u32, Vec<u8>, Vec<u8>)>,
        reply: Reply<()>,
    },
}

impl WriteOp {
    pub(super) fn new(op: Op) -> WriteOp {
        WriteOp(op)
    }

    /// How many events the op appends (1 for any other op): what a backend
    /// counts to bound a group.
    pub fn weight(&self) -> usize {
        match &self.0 {
            Op::Append { events, .. } => events.len(),
            _ => 1,
        }
    }

    /// Whether the op appends events (rather than bookkeeping: tokens,
    /// checkpoints).
    pub fn appends(&self) -> bool {
        matches!(self.0, Op::Append { .. })
    }

    /// Answers the op with `e` (a group that failed as a whole).
    fn fail(self, e: &StoreError) {
        let err = || StoreError::new(e.kind, e.message.clone());
        match self.0 {
            Op::Append { reply, .. } => drop(reply.send(Err(err()))),
            Op::Checkpoint { reply, .. }
            | Op::CreateToken { reply, .. }
            | Op::TouchToken { reply, .. }
            | Op::CatchUp { reply, .. }
            | Op::PutIndexColumns { reply, .. }
            | Op::StoreIndexTails { reply }
            | Op::ReplaceIndex { reply, .. } => drop(reply.send(Err(err()))),
            Op::RevokeToken { reply, .. } | Op::MarkToken { reply, .. } => {
                drop(reply.send(Err(err())))
            }
            Op::Adopt { reply, .. } => drop(reply.send(Err(err()))),
            Op::Extend { reply, .. } => drop(reply.send(Err(err()))),
        }
    }
}

/// An op applied inside the transaction, waiting for its commit: the reply
/// and exactly what it will be answered with, so no op can end up with
/// another op's kind of outcome.
enum Done {
    /// Events appended (or found by their idempotency keys), with the
    /// catalog event of each for the index.
    Appended {
        account: AccountId,
        appended: Vec<Appended>,
        events: Vec<EventId>,
        reply: Reply<Vec<Appended>>,
    },
    Checkpoint {
        account: AccountId,
        size: u64,
        reply: Reply<()>,
    },
    /// An op answered with `result` whatever else the group did: a token
    /// insert or an append refused alone (it wrote nothing), or a write
    /// with nothing to report.
    Unit {
        result: Result<()>,
        reply: Reply<()>,
    },
    Refused {
        error: StoreError,
        reply: Reply<Vec<Appended>>,
    },
    /// Whether a token update found its row.
    Changed { changed: bool, reply: Reply<bool> },
}

impl Done {
    fn fail(self, e: &StoreError) {
        let err = || StoreError::new(e.kind, e.message.clone());
        match self {
            Done::Appended { reply, .. } | Done::Refused { reply, .. } => {
                drop(reply.send(Err(err())))
            }
            Done::Checkpoint { reply, .. } | Done::Unit { reply, .. } => {
                drop(reply.send(Err(err())))
            }
            Done::Changed { reply, .. } => drop(reply.send(Err(err()))),
        }
    }
}

/// Writer-side state of one account.
struct WriterAccount {
    state: Arc<AccountState>,
    tree: TreeState,
    /// Its bytes as last counted (see `evict.rs`).
    counted: usize,
}

/// Reports the death of a backend's writer: from then on `ready` fails and
/// `failed` resolves (see [`Store::failed`](crate::Store::failed)).
#[derive(Clone)]
pub struct WriterFailure(Arc<Shared>);

impl WriterFailure {
    pub fn report(&self, cause: String) {
        self.0.failure.send_replace(Some(cause));
    }
}

/// Applies groups of [`WriteOp`]s: owns the Merkle tree state of each
/// opened account (the writer is its only user, so it needs no lock) and
/// the clock.
pub struct Sequencer {
    shared: Arc<Shared>,
    /// The opened accounts.
    accounts: HashMap<AccountId, WriterAccount>,
    clock: Clock,
    /// Accounts that may have full chunks whose segments are not stored.
    unsealed: HashSet<AccountId>,
    /// Open accounts whose bytes changed since they were last counted.
    dirty: HashSet<AccountId>,
    /// The bytes of every open account, as last counted.
    open_bytes: usize,
}

impl Sequencer {
    pub(super) fn new(shared: Arc<Shared>, clock: Clock) -> Sequencer {
        Sequencer {
            shared,
            unsealed: HashSet::new(),
            dirty: HashSet::new(),
            open_bytes: 0,
            accounts: HashMap::new(),
            clock,
        }
    }

    /// Where the backend reports its writer's death.
    pub fn failure(&self) -> WriterFailure {
        WriterFailure(self.shared.clone())
    }

    /// One transaction for the whole group; every op's reply is sent only
    /// after it commits (or with the error if it did not). Returns once
    /// every op is answered: whether the group committed.
    pub fn commit_group(&mut self, tx: &mut dyn LogTx, ops: Vec<WriteOp>) -> bool {
        let ops = self.adopt(ops);
        let ops = self.extend(ops);
        if ops.is_empty() {
            // Chunks an open replayed from rows (a crash before their
            // segments were stored, or a file from before segments).
            self.seal(tx);
            self.bound_open_accounts(tx);
            return true;
        }
        let n_ops = ops.len();
        let n_events: usize = ops.iter().map(WriteOp::weight).sum();
        // New accounts are registered before the group's transaction, in
        // their own: if the group then fails, the in-memory account still
        // matches a row in the file (an empty account is harmless; an
        // account whose row was rolled back would hand its id to the next
        // account registered).
        let registered = ops.iter().try_for_each(|op| match &op.0 {
            Op::Append { account, .. } | Op::CatchUp { account, .. } => {
                self.account_mut(tx, account).map(drop)
            }
            _ => Ok(()),
        });
        // The accounts whose heads the group locks (and catches up on).
        let mut appending: Vec<AccountId> = Vec::new();
        for op in &ops {
            if let Op::Append { account, .. } | Op::CatchUp { account, .. } = &op.0
                && !appending.contains(account)
            {
                appending.push(account.clone());
            }
        }
        let mut ops = ops.into_iter();
        let mut done: Vec<Done> = Vec::with_capacity(n_ops);
        // Tree states are cloned before the group so a failed commit leaves
        // the in-memory tree exactly as the file is.
        let mut snapshots: HashMap<AccountId, TreeState> = HashMap::new();
        // Declared after what holds replies, so dropped before them: on a
        // panic, the failure is on record before any waiting append is told.
        let _notice = DeathNotice(self.shared.clone());
        // What these accounts hold changes (a failed group may still have
        // caught up on other processes' rows).
        appending.iter().for_each(|a| self.changed(a));

        let result = registered
            .and_then(|()| self.apply(tx, &appending, &mut ops, &mut done, &mut snapshots))
            .and_then(|()| tx.commit());
        if let Err(e) = result {
            tracing::error!(error = %e, source = ?e.source, n_ops, "group commit failed");
            tx.rollback();
            for (account, tree) in snapshots {
                if let Some(acc) = self.accounts.get_mut(&account) {
                    // Dirty tiles of the failed group are dropped with it.
                    acc.tree = tree;
                }
            }
            done.into_iter().for_each(|d| d.fail(&e));
            ops.for_each(|op| op.fail(&e));
            self.bound_open_accounts(tx);
            return false;
        }

        // Committed: make the events visible to queries, then acknowledge.
        // Ops are visited in order, so each account's index receives its
        // rows in `seq` order.
        for d in &done {
            if let Done::Appended {
                account,
                appended,
                events,
                ..
            } = d
            {
                let index = &self.accounts[account].state.index;
                let overflowed =
                    index.append(events.iter().zip(appended).filter(|(_, a)| a.created).map(
                        |(event, a)| IndexRow {
                            occurred_at_us: a.record.body.occurred_at.0,
                            event: *event,
                            actor_id: &a.record.body.actor.id,
                            actor_name: a.record.body.actor.name.as_deref(),
                            ip_address: a.record.body.ip_address.as_deref(),
                            workflow_id: a.record.body.workflow_id.as_deref(),
                        },
                    ));
                if overflowed {
                    super::query::warn_index_overflow(account, index);
                }
            }
        }
        for account in snapshots.keys() {
            let acc = &self.accounts[account];
            *acc.state.head.lock().unwrap_or_else(|e| e.into_inner()) = TreeHead {
                size: acc.tree.size(),
                root: acc.tree.root(),
            };
        }
        metrics_group(n_ops, n_events);
        for d in done {
            match d {
                Done::Appended {
                    appended, reply, ..
                } => drop(reply.send(Ok(appended))),
                Done::Refused { error, reply } => drop(reply.send(Err(error))),
                Done::Checkpoint {
                    account,
                    size,
                    reply,
                } => {
                    if let Some(acc) = self.accounts.get(&account) {
                        let mut s = acc.state.signed.lock().unwrap_or_else(|e| e.into_inner());
                        *s = (*s).max(size);
                    }
                    drop(reply.send(Ok(())))
                }
                Done::Unit { result, reply } => drop(reply.send(result)),
                Done::Changed { changed, reply } => drop(reply.send(Ok(changed))),
            }
        }
        self.unsealed.extend(snapshots.into_keys());
        self.seal(tx);
        self.bound_open_accounts(tx);
        true
    }

    /// The group's work inside its transaction: each op applied in order,
    /// then the tiles that filled up. An error fails the whole group.
    fn apply(
        &mut self,
        tx: &mut dyn LogTx,
        appending: &[AccountId],
        ops: &mut impl Iterator<Item = WriteOp>,
        done: &mut Vec<Done>,
        snapshots: &mut HashMap<AccountId, TreeState>,
    ) -> Result<()> {
        tx.begin()?;
        let mut now = Micros::from_timestamp(self.clock.now());
        if let Some(locks) = self.catch_up(tx, appending)? {
            // One clock for every process if the backend has one, and never
            // before what is committed: recorded_at never goes back as seq
            // grows.
            let floor = locks.heads.iter().filter_map(|h| h.recorded_at_us).max();
            let us = locks.now_us.unwrap_or(now.0).max(floor.unwrap_or(i64::MIN));
            // Records carry milliseconds (as `Micros::from_timestamp`).
            now = Micros(us.div_euclid(1000) * 1000);
        }
        let now_json = CanonicalParts::time(now);
        let mut group_keys: HashMap<(AccountId, String), Record> = HashMap::new();
        // An error fails the group; the op in hand is answered with it
        // first (`commit_group` answers the others). Its reply dropped
        // unanswered would read as the writer stopping.
        macro_rules! or_answer {
            ($result:expr, $reply:ident) => {
                match $result {
                    Ok(v) => v,
                    Err(e) => {
                        drop($reply.send(Err(StoreError::new(e.kind, e.message.clone()))));
                        return Err(e);
                    }
                }
            };
        }
        for WriteOp(op) in ops.by_ref() {
            let d = match op {
                Op::Append {
                    account,
                    events,
                    parts,
                    records,
                    reply,
                } => {
                    if let Some((id, change)) = &records
                        && !or_answer!(tx.mark_token_change(id, *change), reply)
                    {
                        // Recorded already (by a racing caller).
                        done.push(Done::Appended {
                            account,
                            appended: Vec::new(),
                            events: Vec::new(),
                            reply,
                        });
                        continue;
                    }
                    if !snapshots.contains_key(&account) {
                        let tree = or_answer!(self.account_mut(tx, &account), reply)
                            .tree
                            .clone();
                        snapshots.insert(account.clone(), tree);
                    }
                    // An error here fails the whole group (every request in
                    // it is answered with it and may retry): a failed insert
                    // cannot be undone without a savepoint per request,
                    // which costs more than the rare failure.
                    let event_ids: Vec<EventId> = events.iter().map(|e| e.event_id).collect();
                    let ctx = AppendCtx {
                        now,
                        now_json: &now_json,
                        group_keys: &mut group_keys,
                    };
                    match or_answer!(self.append_events(tx, &account, events, parts, ctx), reply) {
                        Ok(appended) => Done::Appended {
                            account,
                            appended,
                            events: event_ids,
                            reply,
                        },
                        // This request alone fails; it wrote nothing.
                        Err(error) => Done::Refused { error, reply },
                    }
                }
                Op::Checkpoint {
                    account,
                    size,
                    note,
                    reply,
                } => {
                    let key = or_answer!(self.account_mut(tx, &account), reply).state.key;
                    or_answer!(tx.put_checkpoint(key, size, &note), reply);
                    Done::Checkpoint {
                        account,
                        size,
                        reply,
                    }
                }
                Op::CreateToken { token, reply } => Done::Unit {
                    result: tx.insert_token(&token),
                    reply,
                },
                Op::RevokeToken { revocation, reply } => Done::Changed {
                    changed: or_answer!(tx.revoke_token(&revocation), reply),
                    reply,
                },
                Op::MarkToken { id, change, reply } => Done::Changed {
                    changed: or_answer!(tx.mark_token_change(&id, change), reply),
                    reply,
                },
                // Done by `catch_up` at the group's start.
                Op::CatchUp { reply, .. } => Done::Unit {
                    result: Ok(()),
                    reply,
                },
                Op::TouchToken { id, at_us, reply } => {
                    or_answer!(tx.touch_token(&id, at_us), reply);
                    Done::Unit {
                        result: Ok(()),
                        reply,
                    }
                }
                // Taken out by `adopt` and `extend` before the transaction.
                Op::Adopt { reply, .. } => {
                    drop(reply.send(Err(internal("an adoption reached the transaction"))));
                    continue;
                }
                Op::Extend { reply, .. } => {
                    drop(reply.send(Err(internal("an extension reached the transaction"))));
                    continue;
                }
                Op::PutIndexColumns {
                    key,
                    no,
                    columns,
                    reply,
                } => {
                    or_answer!(tx.put_index_columns(key, no, &columns), reply);
                    Done::Unit {
                        result: Ok(()),
                        reply,
                    }
                }
                Op::StoreIndexTails { reply } => {
                    let (mut accounts, mut rows) = (0, 0);
                    for w in self.accounts.values() {
                        if let Some(tail) = w.state.index.changed_tail() {
                            or_answer!(tx.put_index_tail(w.state.key, &tail), reply);
                            accounts += 1;
                            rows += w.state.index.len() - tail.first;
                        }
                    }
                    tracing::info!(accounts, rows, "index tails stored");
                    Done::Unit {
                        result: Ok(()),
                        reply,
                    }
                }
                Op::ReplaceIndex {
                    key,
                    segments,
                    reply,
                } => {
                    or_answer!(tx.delete_index_segments(key), reply);
                    for (no, summary, columns) in &segments {
                        or_answer!(tx.put_index_segment(key, *no, summary, columns), reply);
                    }
                    Done::Unit {
                        result: Ok(()),
                        reply,
                    }
                }
            };
            done.push(d);
        }
        // Tiles that filled up in every account this group appended to, in
        // the same transaction as the rows that filled them.
        for account in snapshots.keys() {
            let acc = self
                .accounts
                .get_mut(account)
                .expect("touched accounts exist");
            let key = acc.state.key;
            for (tile, bytes) in acc.tree.take_full_tiles() {
                tx.put_tile(key, tile.level, tile.index, &bytes)?;
            }
        }
        Ok(())
    }

    /// The writer's state of `account`, registering the account on first use.
    fn account_mut(
        &mut self,
        tx: &mut dyn LogTx,
        account: &AccountId,
    ) -> Result<&mut WriterAccount> {
        if !self.accounts.contains_key(account) {
            if self.shared.slot(account).is_some() {
                // Every op that names an account opens it first (see
                // `open.rs`): a known account the writer lacks would get a
                // second tree from seq 0.
                return Err(internal(format!(
                    "account {account} reached the writer before it was opened"
                )));
            }
            let key = tx.register_account(account)?;
            let state = Arc::new(AccountState::new(
                key,
                (self.shared.new_index)(key, account),
            ));
            // Visible to readers only once it has committed events would be
            // tidier, but an empty account answers like an unknown one.
            self.shared
                .accounts
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    account.clone(),
                    Arc::new(Slot::opened(state.clone(), self.shared.use_tick())),
                );
            self.accounts.insert(
                account.clone(),
                WriterAccount {
                    state,
                    tree: TreeState::new(),
                    counted: 0,
                },
            );
            self.changed(account);
        }
        Ok(self.accounts.get_mut(account).expect("inserted above"))
    }

    /// Appends one request's events; `Ok(Err(_))` when an idempotency key
    /// conflict refuses this request alone (nothing of it was written).
    fn append_events(
        &mut self,
        tx: &mut dyn LogTx,
        account: &AccountId,
        events: Vec<ValidEvent>,
        parts: Vec<CanonicalParts>,
        ctx: AppendCtx<'_>,
    ) -> Result<Result<Vec<Appended>, StoreError>> {
        let key = self.account_mut(tx, account)?.state.key;
        // First every idempotency key, before anything of this request is
        // written: a key reused for another event fails this request alone
        // (its group goes on), and there is nothing to undo.
        let mut earlier: Vec<Option<Earlier>> = Vec::with_capacity(events.len());
        let mut batch_keys: HashMap<&str, usize> = HashMap::new();
        for (i, ev) in events.iter().enumerate() {
            let Some(idem) = ev.idempotency_key.as_deref() else {
                earlier.push(None);
                continue;
            };
            let (found, same) = if let Some(&j) = batch_keys.get(idem) {
                let first = record_like(&events[j], account);
                (Earlier::InBatch(j), same_event(ev, account, &first))
            } else if let Some(rec) = ctx.group_keys.get(&(account.clone(), idem.to_owned())) {
                let same = same_event(ev, account, &rec.body);
                (Earlier::Stored(Box::new(rec.clone())), same)
            } else {
                match tx.find_idempotency_key(key, idem)? {
                    Some(raw) => {
                        let rec = parse_record(&raw.canonical, &raw.leaf_hash)?;
                        let same = same_event(ev, account, &rec.body);
                        (Earlier::Stored(Box::new(rec)), same)
                    }
                    None => {
                        batch_keys.insert(idem, i);
                        earlier.push(None);
                        continue;
                    }
                }
            };
            if !same {
                // The stored record is not revealed: only that the key is
                // taken.
                return Ok(Err(StoreError::conflict(format!(
                    "idempotency key `{idem}` was already used for a different event; \
                     a retry must send the same event, a new event needs a new key"
                ))));
            }
            earlier.push(Some(found));
        }
        let mut out: Vec<Appended> = Vec::with_capacity(events.len());
        for ((ev, parts), earlier) in events.into_iter().zip(parts).zip(earlier) {
            match earlier {
                Some(Earlier::Stored(record)) => {
                    out.push(Appended {
                        record: *record,
                        created: false,
                    });
                    continue;
                }
                Some(Earlier::InBatch(j)) => {
                    let record = out[j].record.clone();
                    out.push(Appended {
                        record,
                        created: false,
                    });
                    continue;
                }
                None => {}
            }
            let acc = self.accounts.get_mut(account).expect("registered above");
            let seq = acc.tree.size();
            let id = ulid::Ulid::from_parts((ctx.now.0 / 1000) as u64, rand::random::<u128>())
                .to_string();
            let mut canonical = Vec::with_capacity(512);
            parts.finish(&id, seq, ctx.now_json, &mut canonical);
            let body = RecordBody {
                id,
                seq,
                account_id: account.as_str().to_owned(),
                level: ev.level,
                category: ev.category,
                event: ev.event,
                occurred_at: ev.occurred_at,
                recorded_at: ctx.now,
                actor: ev.actor,
                ip_address: ev.ip_address,
                workflow_id: ev.workflow_id,
                description: ev.description,
                metadata: ev.metadata,
            };
            debug_assert_eq!(canonical, body.canonical_bytes());
            let leaf_hash = merkle::hash_leaf(&canonical);
            let canonical =
                String::from_utf8(canonical).map_err(|_| internal("canonical JSON is UTF-8"))?;
            tx.insert_row(
                key,
                &NewRow {
                    seq,
                    id: &body.id,
                    recorded_at_us: ctx.now.0,
                    columns: IndexRow {
                        occurred_at_us: body.occurred_at.0,
                        event: ev.event_id,
                        actor_id: &body.actor.id,
                        actor_name: body.actor.name.as_deref(),
                        ip_address: body.ip_address.as_deref(),
                        workflow_id: body.workflow_id.as_deref(),
                    },
                    idempotency_key: ev.idempotency_key.as_deref(),
                    canonical: &canonical,
                    leaf_hash: &leaf_hash,
                },
            )?;
            acc.tree.append(leaf_hash);
            let record = Record { body, leaf_hash };
            if let Some(idem) = ev.idempotency_key {
                ctx.group_keys
                    .insert((account.clone(), idem), record.clone());
            }
            out.push(Appended {
                record,
                created: true,
            });
        }
        Ok(Ok(out))
    }
}

/// What every append of a group shares: its commit time (as micros and as
/// the canonical JSON string) and the idempotency keys it has used so far.
struct AppendCtx<'a> {
    now: Micros,
    now_json: &'a str,
    group_keys: &'a mut HashMap<(AccountId, String), Record>,
}

/// Marks the writer dead when dropped by a panic's unwinding.
struct DeathNotice(Arc<Shared>);

impl Drop for DeathNotice {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .failure
                .send_replace(Some("panicked while committing".to_owned()));
        }
    }
}

/// Records one committed group: how many requests and events shared the
/// commit (the point of group commit, so it is worth watching).
fn metrics_group(n_ops: usize, n_events: usize) {
    metrics::counter!("auditlog_commits_total").increment(1);
    metrics::histogram!("auditlog_commit_batch_requests").record(n_ops as f64);
    metrics::histogram!("auditlog_commit_batch_events").record(n_events as f64);
}
