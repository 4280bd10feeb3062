//! The column index's life with the backend: each account's index is paged
//! (its full chunks stored as segments and cached within the process-wide
//! budget), restored at open from the stored summaries plus the rows after
//! the last segment, and checked and rebuilt by `auditlog index rebuild`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use auditlog_core::index::{IndexLimits, IndexRow, LogIndex, SegmentCache, SegmentSource};
use auditlog_core::record::AccountId;
use tokio::sync::oneshot;

use super::write::Op;
use super::{LayeredStore, WriteOp, internal};
use crate::Result;
use crate::backend::{AccountKey, LogBackend, LogReader};

/// Makes the (empty, paged) index of an account registered while running.
pub(super) type NewIndex = Box<dyn Fn(AccountKey, &AccountId) -> LogIndex + Send + Sync>;

/// Where a segment rebuilt by a query is sent to be stored again: the
/// writer's queue, known once the writer runs. Held weakly: the indexes
/// that hold it live in the writer's own state, and a strong sender there
/// would keep the queue, hence the writer and the database, open forever
/// after the store is dropped.
#[derive(Clone, Default)]
pub(super) struct Repairs(Arc<OnceLock<tokio::sync::mpsc::WeakSender<WriteOp>>>);

impl Repairs {
    pub(super) fn connect(&self, writer: &tokio::sync::mpsc::Sender<WriteOp>) {
        let _ = self.0.set(writer.downgrade());
    }
}

/// One account's segments in the backend.
struct BackendSegments<B> {
    backend: Arc<B>,
    key: AccountKey,
    account: AccountId,
    repairs: Repairs,
}

impl<B: LogBackend> SegmentSource for BackendSegments<B> {
    fn columns(&self, no: u32) -> std::result::Result<Option<Vec<u8>>, String> {
        self.backend
            .with_reader(|r| r.index_segment_columns(self.key, no))
            .map_err(|e| e.to_string())
    }

    fn rows(
        &self,
        from: u64,
        to: u64,
        visit: &mut dyn FnMut(IndexRow<'_>),
    ) -> std::result::Result<(), String> {
        self.backend
            .index_rows(self.key, from, to, &mut |_, row| {
                visit(row);
                Ok(())
            })
            .map_err(|e| e.to_string())
    }

    fn repaired(&self, no: u32, why: &str, columns: Vec<u8>) {
        tracing::error!(
            account = %self.account,
            segment = no,
            why,
            "index segment unreadable: rebuilt from its rows and stored again"
        );
        metrics::counter!("auditlog_index_segments_repaired_total").increment(1);
        if let Some(writer) = self.repairs.0.get().and_then(|w| w.upgrade()) {
            // Not awaited: the query goes on with the rebuilt chunk; if the
            // queue is full the next query to need it rebuilds it again.
            let (reply, _) = oneshot::channel();
            let _ = writer.try_send(WriteOp::new(Op::PutIndexColumns {
                key: self.key,
                no,
                columns,
                reply,
            }));
        }
    }
}

fn source<B: LogBackend>(
    backend: &Arc<B>,
    repairs: &Repairs,
    account: &AccountId,
    key: AccountKey,
) -> Box<dyn SegmentSource> {
    Box::new(BackendSegments {
        backend: backend.clone(),
        key,
        account: account.clone(),
        repairs: repairs.clone(),
    })
}

pub(super) fn new_index<B: LogBackend>(
    backend: &Arc<B>,
    cache: &Arc<SegmentCache>,
    repairs: &Repairs,
    limits: IndexLimits,
) -> NewIndex {
    let (backend, cache, repairs) = (backend.clone(), cache.clone(), repairs.clone());
    Box::new(move |key, account| {
        LogIndex::paged(
            limits,
            cache.clone(),
            source(&backend, &repairs, account, key),
        )
    })
}

/// An account's index at open: its stored segments' summaries, then its
/// rows after the last of them. Returns the index and the log's size, and
/// counts in `problems` a restore that could not use every stored segment.
pub(super) fn restore<B: LogBackend>(
    backend: &Arc<B>,
    cache: &Arc<SegmentCache>,
    repairs: &Repairs,
    limits: IndexLimits,
    account: &AccountId,
    key: AccountKey,
    problems: &AtomicU64,
) -> Result<(LogIndex, u64)> {
    let (summaries, tail) =
        backend.with_reader(|r| Ok((r.index_segment_summaries(key)?, r.index_tail(key)?)))?;
    let stored = summaries.len();
    let restored = LogIndex::restore_with_tail(
        limits,
        cache.clone(),
        source(backend, repairs, account, key),
        summaries,
        tail,
    );
    if let Some(problem) = &restored.problem {
        tracing::error!(
            account = %account,
            problem,
            "stored index (segments or tail) unusable from there on: rebuilt from the rows"
        );
        metrics::counter!("auditlog_index_segments_repaired_total").increment(1);
        problems.fetch_add(1, Ordering::Relaxed);
    }
    let index = restored.index;
    let mut expected = restored.rows;
    backend.index_rows(key, restored.rows, u64::MAX, &mut |seq, row| {
        if seq != expected {
            return Err(internal(format!(
                "log of account {account} has a gap: expected seq {expected}, found {seq}"
            )));
        }
        expected += 1;
        // Whether the rows overflow a cap is told once per account by the
        // caller.
        let _ = index.append([row]);
        Ok(())
    })?;
    tracing::debug!(
        account = %account,
        segments = index.sealed_count(),
        stored,
        tail = restored.tail_rows,
        replayed = expected - restored.rows,
        "index restored"
    );
    Ok((index, expected))
}

/// What `auditlog index rebuild` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    pub accounts: usize,
    /// Segments built from the rows.
    pub segments: usize,
    /// Of those, how many were stored with other columns (or unreadable).
    pub differed: usize,
    /// How many were not stored at all.
    pub missing: usize,
    /// Accounts whose restored dictionaries differed from the rebuilt ones.
    pub dictionaries_differed: usize,
}

impl<B: LogBackend> LayeredStore<B> {
    /// Stores the index tail of every open account, so that the next open
    /// restores it instead of reading its rows: what a clean shutdown does
    /// last. A crash skips it; the next open then reads the rows after the
    /// last tail stored (or after the segments, if one was sealed since).
    pub async fn store_index_tails(&self) -> Result<()> {
        self.send(|reply| Op::StoreIndexTails { reply }).await
    }

    /// Rebuilds every account's index from its rows alone, compares it
    /// with what the stored segments restored at open (the columns of each
    /// segment byte for byte, the dictionaries value for value), and
    /// replaces the stored segments with the rebuilt ones: the repair path,
    /// and the check that the persisted index is what the rows say.
    pub async fn rebuild_index(&self) -> Result<RebuildReport> {
        let backend = self.backend.clone();
        let limits = self.shared.limits();
        let fresh = tokio::task::spawn_blocking(move || {
            let mut fresh: HashMap<AccountKey, LogIndex> = HashMap::new();
            backend.scan_index_rows(&HashMap::new(), &mut |key, _, row| {
                let _ = fresh
                    .entry(key)
                    .or_insert_with(|| LogIndex::new(limits))
                    .append([row]);
                Ok(())
            })?;
            Ok::<_, crate::StoreError>(fresh)
        })
        .await
        .map_err(|e| internal(format!("rebuild failed: {e}")))??;
        let mut report = RebuildReport::default();
        for (account, slot) in self.slots() {
            let Some(index) = fresh.get(&slot.key) else {
                continue;
            };
            // Compared with what the stored segments restore: opened now.
            let Some(state) = self.opened(&account).await? else {
                continue;
            };
            report.accounts += 1;
            if !index.same_dictionaries(&state.index) {
                report.dictionaries_differed += 1;
                tracing::error!(account = %account, "restored index dictionaries differ from the rows'");
            }
            let segments = index.unsealed();
            let key = state.key;
            let numbers: Vec<u32> = segments.iter().map(|s| s.no).collect();
            let stored: Vec<Option<Vec<u8>>> = self
                .read(move |r| {
                    numbers
                        .iter()
                        .map(|&no| r.index_segment_columns(key, no))
                        .collect()
                })
                .await?;
            for (s, stored) in segments.iter().zip(&stored) {
                report.segments += 1;
                match stored {
                    None => report.missing += 1,
                    Some(c) if !auditlog_core::index::same_columns(c, &s.columns) => {
                        report.differed += 1;
                        tracing::error!(account = %account, segment = s.no, "stored index segment differs from its rows'");
                    }
                    Some(_) => {}
                }
            }
            let segments = segments
                .into_iter()
                .map(|s| (s.no, s.summary, s.columns))
                .collect();
            self.send(|reply| Op::ReplaceIndex {
                key,
                segments,
                reply,
            })
            .await?;
        }
        Ok(report)
    }
}
