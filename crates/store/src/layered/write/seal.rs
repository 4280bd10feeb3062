//! Sealing: the index chunks that filled up stored as segments, in a
//! transaction of their own right after the group that filled them, once
//! per segment however many processes hold the account.
//!
//! Every process that holds an account fills the same chunks with the same
//! rows and encodes the same bytes for each (a summary covers the
//! dictionaries as they were when its chunk filled: see
//! `auditlog_core::index::pager`). The first process to store a segment
//! stores it; the others find it stored under the account's sealing lock
//! ([`LogTx::lock_index_segments`]) and adopt it without writing. A stored
//! segment with other bytes (unreadable, or written by an older version
//! that cut summaries when it sealed) is replaced by this process's, so the
//! stored summaries always chain: each one's dictionary entries start
//! where the previous one's end, and a restart replays no rows.

use std::sync::Arc;

use auditlog_core::record::AccountId;

use super::Sequencer;
use crate::backend::{AccountKey, LogTx};
use crate::layered::AccountState;

impl Sequencer {
    /// Stores the index segments of chunks that filled up (after the
    /// group's acknowledgements: a segment is derived data, and a crash
    /// before it is stored only means the rows after the last stored
    /// segment are replayed at the next start, and the segment stored
    /// then). An account another process is sealing right now, or a
    /// failure, is retried after the next group.
    pub(super) fn seal(&mut self, tx: &mut dyn LogTx) {
        let pending: Vec<(AccountId, AccountKey, Arc<AccountState>)> = self
            .unsealed
            .iter()
            .filter_map(|a| Some((a, self.accounts.get(a)?)))
            .filter(|(_, w)| w.state.index.has_unsealed())
            .map(|(a, w)| (a.clone(), w.state.key, w.state.clone()))
            .collect();
        if pending.is_empty() {
            self.unsealed.clear();
            return;
        }
        let segments: Vec<_> = pending
            .iter()
            .map(|(_, key, state)| (*key, state.index.unsealed()))
            .collect();
        let mut counts = Counts::default();
        let stored = tx.begin().and_then(|()| {
            let mut sealed = Vec::with_capacity(segments.len());
            for (key, segs) in &segments {
                let nos: Vec<u32> = segs.iter().map(|s| s.no).collect();
                let Some(found) = tx.lock_index_segments(*key, &nos)? else {
                    // Another process holds the lock: it is storing them.
                    sealed.push(false);
                    continue;
                };
                for (s, found) in segs.iter().zip(found) {
                    match found {
                        Some(summary) if summary == s.summary => counts.adopted += 1,
                        Some(_) => {
                            tracing::info!(
                                account = key.0,
                                segment = s.no,
                                "a stored index segment differs from this process's: replaced"
                            );
                            tx.put_index_segment(*key, s.no, &s.summary, &s.columns)?;
                            counts.replaced += 1;
                        }
                        None => {
                            tx.put_index_segment(*key, s.no, &s.summary, &s.columns)?;
                            counts.written += 1;
                        }
                    }
                }
                sealed.push(true);
            }
            tx.commit()?;
            Ok(sealed)
        });
        let sealed = match stored {
            Ok(sealed) => sealed,
            Err(e) => {
                tx.rollback();
                tracing::warn!(error = %e, "storing index segments failed; retried after the next write");
                return;
            }
        };
        counts.record();
        let mut waiting = false;
        for (((account, _, state), (_, segs)), sealed) in pending.iter().zip(segments).zip(sealed) {
            if sealed {
                state.index.mark_sealed(segs);
                // Its chunks left for the segment cache: the account holds
                // less (write/evict.rs).
                self.changed(account);
            } else {
                waiting = true;
            }
        }
        if !waiting {
            self.unsealed.clear();
        }
        // Otherwise every account stays listed; those sealed have nothing
        // unsealed left and drop out of the next round's `pending`.
    }
}

/// What one round of sealing did, for the metrics.
#[derive(Default)]
struct Counts {
    /// Stored by this process.
    written: u64,
    /// Found stored with the same bytes (another process sealed first).
    adopted: u64,
    /// Found stored with other bytes, and replaced.
    replaced: u64,
}

impl Counts {
    fn record(&self) {
        metrics::counter!("auditlog_index_segments_sealed_total")
            .increment(self.written + self.replaced);
        metrics::counter!("auditlog_index_segments_adopted_total").increment(self.adopted);
        metrics::counter!("auditlog_index_segments_replaced_total").increment(self.replaced);
    }
}
