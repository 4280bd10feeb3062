//! Moving a whole store from one backend to another, bit for bit:
//! `auditlog migrate-store` (the embedded store into PostgreSQL).
//!
//! The copy runs under the seam, not through the [`Sequencer`]: a source
//! backend dumps what it stores ([`LogDump`]: accounts, rows with their
//! seq, id, `recorded_at`, canonical bytes and leaf hash, tiles,
//! checkpoint notes, index segments, tokens) and a target backend loads it
//! in bulk ([`LogLoad`]). Nothing is re-sequenced, re-hashed or re-signed,
//! so every proof, export and checkpoint made before the move still
//! verifies against the target.
//!
//! The rules a migration keeps (see `auditlog migrate-store --help`):
//!
//! - **A consistent, frozen source.** A dump reads one snapshot and holds
//!   the source's write lock until it is dropped: nothing can be appended
//!   behind its back (an append would otherwise be acknowledged by the old
//!   store and never reach the new one).
//! - **An empty target, all or nothing.** A load refuses a target that
//!   holds an account or a token, and writes everything in one
//!   transaction: an interrupted migration leaves the target empty, and
//!   running it again is the way to resume.
//! - **Checked.** While copying, each account's Merkle root is computed
//!   from the leaf hashes dumped ([`Copied`]); afterwards the caller opens
//!   the target as a store and compares every account's tree head and
//!   latest checkpoint with them ([`verify`]).
//!
//! [`Sequencer`]: crate::layered::Sequencer

use auditlog_core::merkle::{CompactRange, Hash};
use auditlog_core::record::AccountId;

use crate::backend::{AccountKey, NewRow};
use crate::{Result, Store, StoreError, StoreErrorKind};

/// An account as the source stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpAccount {
    pub name: AccountId,
    /// The source's key, kept by the target (keys are the backends' own
    /// business, but keeping them costs nothing and keeps logs comparable).
    pub key: AccountKey,
    /// The committed size of its log (its number of rows).
    pub size: u64,
}

/// A token row as stored, every column (never the secret: its hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredToken {
    pub id: String,
    pub secret_hash: Vec<u8>,
    pub scope: String,
    pub role: String,
    pub created_at_us: i64,
    pub revoked_at_us: Option<i64>,
    pub expires_at_us: Option<i64>,
    pub created_by: Option<String>,
    pub last_used_at_us: Option<i64>,
    pub revoked_by: Option<String>,
    pub revoked_in: Option<String>,
    /// The bits of the changes the log records already (1 created, 2
    /// revoked, 4 expired).
    pub logged: i64,
}

/// Called with `(account, level, index, hashes)` of each stored tile.
pub type TileVisit<'a> = dyn FnMut(AccountKey, u8, u64, &[u8]) -> Result<()> + 'a;

/// Called with `(account, number, summary, columns)` of each index segment.
pub type SegmentVisit<'a> = dyn FnMut(AccountKey, u32, &[u8], &[u8]) -> Result<()> + 'a;

/// A whole store read for a migration: one consistent snapshot, with the
/// store's writes locked out until the dump is dropped.
pub trait LogDump {
    /// Every account, in key order.
    fn accounts(&mut self) -> Result<Vec<DumpAccount>>;

    /// The account's rows in seq order.
    fn rows(
        &mut self,
        account: AccountKey,
        visit: &mut dyn FnMut(&NewRow<'_>) -> Result<()>,
    ) -> Result<()>;

    /// Every stored tile as `(account, level, index, hashes)`.
    fn tiles(&mut self, visit: &mut TileVisit<'_>) -> Result<()>;

    /// Every checkpoint note as `(account, size, note)`.
    fn checkpoints(
        &mut self,
        visit: &mut dyn FnMut(AccountKey, u64, &str) -> Result<()>,
    ) -> Result<()>;

    /// Every index segment as `(account, number, summary, columns)`.
    fn index_segments(&mut self, visit: &mut SegmentVisit<'_>) -> Result<()>;

    /// Every token, in the order listings show them (oldest first).
    fn tokens(&mut self) -> Result<Vec<StoredToken>>;
}

/// Bulk writes into an empty store, in one transaction that
/// [`LogLoad::commit`] ends; dropped without it, nothing is written.
pub trait LogLoad {
    /// Registers the accounts with their keys (before any of their rows).
    fn accounts(&mut self, accounts: &[DumpAccount]) -> Result<()>;

    /// Adds a row; each account's rows come in seq order from 0. The
    /// account's committed size becomes its number of rows.
    fn row(&mut self, account: AccountKey, row: &NewRow<'_>) -> Result<()>;

    fn tile(&mut self, account: AccountKey, level: u8, index: u64, hashes: &[u8]) -> Result<()>;

    fn checkpoint(&mut self, account: AccountKey, size: u64, note: &str) -> Result<()>;

    fn index_segment(
        &mut self,
        account: AccountKey,
        no: u32,
        summary: &[u8],
        columns: &[u8],
    ) -> Result<()>;

    /// Adds a token (in listing order).
    fn token(&mut self, token: &StoredToken) -> Result<()>;

    /// Writes what is buffered and commits.
    fn commit(&mut self) -> Result<()>;
}

/// How far a copy has come, for a progress bar.
pub trait CopyProgress {
    /// A new phase of the copy; `total` rows (events) when it counts them.
    fn phase(&mut self, name: &str, total: Option<u64>);
    /// `n` more rows copied in the current phase.
    fn advance(&mut self, n: u64);
}

/// What was copied of one account, from the source's own rows and notes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopiedAccount {
    pub name: AccountId,
    pub size: u64,
    /// The Merkle root of its rows' leaf hashes.
    pub root: Hash,
    /// The note of its largest checkpoint, if any.
    pub latest_checkpoint: Option<String>,
}

/// What a copy moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub accounts: Vec<CopiedAccount>,
    pub events: u64,
    pub tiles: u64,
    pub checkpoints: u64,
    pub index_segments: u64,
    pub tokens: u64,
}

fn invalid(msg: String) -> StoreError {
    StoreError::new(StoreErrorKind::Internal, msg)
}

/// Copies everything `src` holds into `dst` and commits. A row out of
/// order, or an account whose rows do not number its size, fails the copy
/// (nothing is committed).
pub fn copy(
    src: &mut dyn LogDump,
    dst: &mut dyn LogLoad,
    progress: &mut dyn CopyProgress,
) -> Result<Copied> {
    let accounts = src.accounts()?;
    dst.accounts(&accounts)?;
    let mut copied = Copied::default();
    progress.phase("events", Some(accounts.iter().map(|a| a.size).sum()));
    const STEP: u64 = 4096;
    for a in &accounts {
        let mut tree = CompactRange::new();
        let mut pending = 0;
        src.rows(a.key, &mut |row| {
            if row.seq != tree.size() {
                return Err(invalid(format!(
                    "account {}: row of seq {} where {} was expected",
                    a.name,
                    row.seq,
                    tree.size()
                )));
            }
            tree.append(*row.leaf_hash);
            dst.row(a.key, row)?;
            pending += 1;
            if pending == STEP {
                progress.advance(pending);
                pending = 0;
            }
            Ok(())
        })?;
        progress.advance(pending);
        if tree.size() != a.size {
            return Err(invalid(format!(
                "account {}: {} rows for a log of size {}",
                a.name,
                tree.size(),
                a.size
            )));
        }
        copied.events += a.size;
        copied.accounts.push(CopiedAccount {
            name: a.name.clone(),
            size: a.size,
            root: tree.root(),
            latest_checkpoint: None,
        });
    }
    progress.phase("tiles", None);
    src.tiles(&mut |account, level, index, hashes| {
        copied.tiles += 1;
        dst.tile(account, level, index, hashes)
    })?;
    progress.phase("checkpoints", None);
    let mut latest: std::collections::HashMap<AccountKey, (u64, String)> = Default::default();
    src.checkpoints(&mut |account, size, note| {
        copied.checkpoints += 1;
        let e = latest.entry(account).or_insert((size, note.to_owned()));
        if size > e.0 {
            *e = (size, note.to_owned());
        }
        dst.checkpoint(account, size, note)
    })?;
    for (a, c) in accounts.iter().zip(&mut copied.accounts) {
        c.latest_checkpoint = latest.remove(&a.key).map(|(_, note)| note);
    }
    progress.phase("index segments", None);
    src.index_segments(&mut |account, no, summary, columns| {
        copied.index_segments += 1;
        dst.index_segment(account, no, summary, columns)
    })?;
    progress.phase("tokens", None);
    for t in src.tokens()? {
        copied.tokens += 1;
        dst.token(&t)?;
    }
    progress.phase("committing", None);
    dst.commit()?;
    Ok(copied)
}

/// One difference [`verify`] found between the source and the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub account: AccountId,
    pub what: String,
}

/// Compares every copied account's tree head and latest checkpoint with
/// what `target` (the target opened as a store) serves; the differences.
pub async fn verify(target: &dyn Store, copied: &Copied) -> Result<Vec<Difference>> {
    let mut out = Vec::new();
    for a in &copied.accounts {
        let head = target.tree_head(&a.name).await?;
        if head.size != a.size || head.root != a.root {
            out.push(Difference {
                account: a.name.clone(),
                what: format!(
                    "tree head: source size {} root {}, target size {} root {}",
                    a.size,
                    hex(&a.root),
                    head.size,
                    hex(&head.root)
                ),
            });
        }
        let note = target.latest_checkpoint(&a.name).await?;
        if note != a.latest_checkpoint {
            out.push(Difference {
                account: a.name.clone(),
                what: format!(
                    "latest checkpoint: source {:?}, target {:?}",
                    a.latest_checkpoint
                        .as_deref()
                        .and_then(|n| n.lines().nth(1)),
                    note.as_deref().and_then(|n| n.lines().nth(1)),
                ),
            });
        }
    }
    Ok(out)
}

fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `recorded_at` (microseconds) of a record's canonical form, which
/// holds it as RFC 3339 right after `seq` (a backend that does not store
/// it in a column of its own, such as the embedded one, dumps it from
/// there).
pub fn recorded_at_of_canonical(canonical: &str) -> Result<i64> {
    const KEY: &str = "\"recorded_at\":\"";
    // The first occurrence is the record's own: the fields before it (id,
    // seq, level, category, event, occurred_at) cannot hold the key.
    let at = canonical
        .find(KEY)
        .ok_or_else(|| invalid("a stored record has no recorded_at".to_owned()))?
        + KEY.len();
    let end = canonical[at..]
        .find('"')
        .ok_or_else(|| invalid("a stored record's recorded_at is cut off".to_owned()))?;
    auditlog_core::record::Micros::parse_rfc3339(&canonical[at..at + end])
        .map(|m| m.0)
        .map_err(|e| invalid(format!("a stored record's recorded_at is invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_at_is_read_from_the_canonical_form() {
        let c = r#"{"id":"01J","seq":3,"level":"account","category":"Roles","event":"Role created","occurred_at":"2026-11-25T10:00:00.120Z","recorded_at":"2026-11-25T10:00:00.130Z","actor":{"kind":"user","id":"u"},"metadata":{"recorded_at":"x"}}"#;
        let us = recorded_at_of_canonical(c).unwrap();
        assert_eq!(
            us,
            auditlog_core::record::Micros::parse_rfc3339("2026-11-25T10:00:00.130Z")
                .unwrap()
                .0
        );
        assert!(recorded_at_of_canonical("{}").is_err());
    }
}
