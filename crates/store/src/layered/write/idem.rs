//! Idempotent retries: what an append compares a repeated idempotency
//! key's event with, and what it found for it.

use auditlog_core::record::{AccountId, Micros, Record, RecordBody};
use auditlog_core::validate::ValidEvent;

/// The first event with an idempotency key that a later one repeats.
pub(super) enum Earlier {
    /// Stored before, or earlier in the same group.
    Stored(Box<Record>),
    /// Earlier in the same request, at this index.
    InBatch(usize),
}

/// `ev` as a record body in `account`, with empty server-assigned fields.
pub(super) fn record_like(ev: &ValidEvent, account: &AccountId) -> RecordBody {
    RecordBody {
        id: String::new(),
        seq: 0,
        account_id: account.as_str().to_owned(),
        level: ev.level,
        category: ev.category.clone(),
        event: ev.event.clone(),
        occurred_at: ev.occurred_at,
        recorded_at: Micros(0),
        actor: ev.actor.clone(),
        ip_address: ev.ip_address.clone(),
        workflow_id: ev.workflow_id.clone(),
        description: ev.description.clone(),
        metadata: ev.metadata.clone(),
    }
}

/// Whether `ev` is the same event as `first` (an idempotent retry): equal
/// canonical forms but for the fields the store assigns, and but for the
/// fields `ev` left to server defaults (its time and address are the
/// retry's, not the first request's).
pub(super) fn same_event(ev: &ValidEvent, account: &AccountId, first: &RecordBody) -> bool {
    let mut retry = record_like(ev, account);
    retry.id.clone_from(&first.id);
    retry.seq = first.seq;
    retry.recorded_at = first.recorded_at;
    if ev.defaulted.occurred_at {
        retry.occurred_at = first.occurred_at;
    }
    if ev.defaulted.ip_address {
        retry.ip_address.clone_from(&first.ip_address);
    }
    retry.canonical_bytes() == first.canonical_bytes()
}
