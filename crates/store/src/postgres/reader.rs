//! Reads of the database: a pooled connection per reader (or an export's
//! own), rows by seq, by id and in batches, tiles, leaf hashes, checkpoints
//! and tokens. Statements are prepared once per connection (cached).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use auditlog_core::index::StoredTail;
use auditlog_core::merkle::Hash;
use auditlog_core::record::AccountId;
use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgRuntime, internal, pg_err, tokens};
use crate::backend::{AccountKey, LogReader};
use crate::{PendingTokenChange, RawRecord, Result, TokenInfo, TokenRecord, TokenScope};

/// Rows one read-ahead fetches (see [`ReadAhead`]).
const READ_AHEAD_ROWS: u64 = 1024;
/// Two record checks at most this many seqs apart are a dense walk.
const DENSE_GAP: u64 = 4;

/// A connection to read with.
pub struct PgReader {
    pub(super) conn: Object,
    pub(super) rt: Arc<PgRuntime>,
    pub(super) ahead: RefCell<ReadAhead>,
}

/// The bodies of the rows ahead of a dense walk of record checks.
///
/// A filter the index cannot decide (a description `contains`) checks its
/// candidate rows one at a time, in seq order, through
/// [`LogReader::with_canonical`]. Over SQLite each is an in-process read;
/// here each would be a round trip, 150,000 of them for a large account.
/// Once two checks come close together, the reader fetches the next
/// [`READ_AHEAD_ROWS`] rows in the walk's direction in one query; sparse
/// checks stay point reads (a window would mostly fetch rows nobody
/// wants). The rows never change, so a window cannot go stale.
#[derive(Default)]
pub(super) struct ReadAhead {
    account: Option<AccountKey>,
    last: Option<u64>,
    rows: HashMap<u64, String>,
}

pub(super) fn leaf_hash(bytes: &[u8]) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| internal("stored leaf hash is not 32 bytes"))
}

/// A stored row as a record.
fn raw(seq: u64, body: &str, hash: &[u8]) -> Result<RawRecord> {
    Ok(RawRecord {
        seq,
        canonical: body.as_bytes().to_vec(),
        leaf_hash: leaf_hash(hash)?,
    })
}

impl PgReader {
    /// Runs one cached statement and returns its rows.
    pub(super) fn query(
        &self,
        context: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        self.rt
            .block_on(async {
                let stmt = self.conn.prepare_cached(sql).await?;
                self.conn.query(&stmt, params).await
            })
            .map_err(pg_err(context))
    }

    fn query_opt(
        &self,
        context: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>> {
        Ok(self.query(context, sql, params)?.into_iter().next())
    }
}

impl LogReader for PgReader {
    fn read_raw(&self, account: AccountKey, seq: u64) -> Result<RawRecord> {
        let row = self
            .query_opt(
                "read event",
                "SELECT body, leaf_hash FROM events WHERE account_id = $1 AND seq = $2",
                &[&account.0, &(seq as i64)],
            )?
            .ok_or_else(|| internal(format!("event seq {seq} is missing from the log")))?;
        raw(seq, row.get(0), row.get(1))
    }

    fn read_by_id(&self, account: AccountKey, id: &str) -> Result<Option<RawRecord>> {
        self.query_opt(
            "read event",
            "SELECT seq, body, leaf_hash FROM events WHERE account_id = $1 AND id = $2",
            &[&account.0, &id],
        )?
        .map(|r| raw(r.get::<_, i64>(0) as u64, r.get(1), r.get(2)))
        .transpose()
    }

    /// One statement for the batch (one snapshot), the rows put back in the
    /// order of `seqs`.
    fn read_batch(
        &self,
        account: AccountKey,
        seqs: &[u64],
        out: &mut Vec<RawRecord>,
    ) -> Result<()> {
        let (Some(&lo), Some(&hi)) = (seqs.iter().min(), seqs.iter().max()) else {
            return Ok(());
        };
        let span = (hi - lo + 1) as usize;
        // A dense run (an export of a log ingested in time order) is one
        // range scan; a sparse one names its seqs.
        let rows = if span <= seqs.len() * 2 {
            self.query(
                "read events",
                "SELECT seq, body, leaf_hash FROM events \
                 WHERE account_id = $1 AND seq BETWEEN $2 AND $3",
                &[&account.0, &(lo as i64), &(hi as i64)],
            )?
        } else {
            let wanted: Vec<i64> = seqs.iter().map(|&s| s as i64).collect();
            self.query(
                "read events",
                "SELECT seq, body, leaf_hash FROM events \
                 WHERE account_id = $1 AND seq = ANY($2)",
                &[&account.0, &wanted],
            )?
        };
        let mut slots: Vec<Option<&Row>> = vec![None; span];
        for r in &rows {
            let seq = r.get::<_, i64>(0) as u64;
            if let Some(slot) = seq.checked_sub(lo).and_then(|i| slots.get_mut(i as usize)) {
                *slot = Some(r);
            }
        }
        for &seq in seqs {
            let r = slots[(seq - lo) as usize]
                .ok_or_else(|| internal(format!("event seq {seq} is missing from the log")))?;
            out.push(raw(seq, r.get(1), r.get(2))?);
        }
        Ok(())
    }

    fn with_canonical(
        &self,
        account: AccountKey,
        seq: u64,
        f: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<bool> {
        let mut ahead = self.ahead.borrow_mut();
        if ahead.account != Some(account) {
            *ahead = ReadAhead {
                account: Some(account),
                ..ReadAhead::default()
            };
        }
        let last = ahead.last.replace(seq);
        if let Some(body) = ahead.rows.get(&seq) {
            return Ok(f(body.as_bytes()));
        }
        if let Some(last) = last.filter(|&l| l.abs_diff(seq) <= DENSE_GAP) {
            let (lo, hi) = if seq >= last {
                (seq, seq + READ_AHEAD_ROWS - 1)
            } else {
                (seq.saturating_sub(READ_AHEAD_ROWS - 1), seq)
            };
            let rows = self.query(
                "read events for a filter",
                "SELECT seq, body FROM events WHERE account_id = $1 AND seq BETWEEN $2 AND $3",
                &[&account.0, &(lo as i64), &(hi as i64)],
            )?;
            ahead.rows = rows
                .into_iter()
                .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
                .collect();
            if let Some(body) = ahead.rows.get(&seq) {
                return Ok(f(body.as_bytes()));
            }
        }
        drop(ahead);
        let row = self
            .query_opt(
                "read event for a filter",
                "SELECT body FROM events WHERE account_id = $1 AND seq = $2",
                &[&account.0, &(seq as i64)],
            )?
            .ok_or_else(|| internal(format!("event seq {seq} is missing from the log")))?;
        Ok(f(row.get::<_, &str>(0).as_bytes()))
    }

    fn leaf_hashes(&self, account: AccountKey, from: u64, to: u64) -> Result<Vec<Hash>> {
        let rows = self.query(
            "read leaf hashes",
            "SELECT seq, leaf_hash FROM events \
             WHERE account_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
            &[&account.0, &(from as i64), &(to as i64)],
        )?;
        let mut out = Vec::with_capacity((to - from) as usize);
        for r in &rows {
            let seq = r.get::<_, i64>(0) as u64;
            if seq != from + out.len() as u64 {
                return Err(internal(format!(
                    "leaf {} is missing from the log",
                    from + out.len() as u64
                )));
            }
            out.push(leaf_hash(r.get(1))?);
        }
        if out.len() as u64 != to - from {
            return Err(internal(format!(
                "leaves {from}..{to} are needed, the log holds {}",
                out.len()
            )));
        }
        Ok(out)
    }

    fn stored_tile(&self, account: AccountKey, level: u8, index: u64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .query_opt(
                "read tile",
                "SELECT hashes FROM tiles WHERE account_id = $1 AND level = $2 AND idx = $3",
                &[&account.0, &i16::from(level), &(index as i64)],
            )?
            .map(|r| r.get(0)))
    }

    fn latest_checkpoint(&self, account: AccountKey) -> Result<Option<String>> {
        Ok(self
            .query_opt(
                "read checkpoint",
                "SELECT note FROM checkpoints WHERE account_id = $1 ORDER BY size DESC LIMIT 1",
                &[&account.0],
            )?
            .map(|r| r.get(0)))
    }

    fn signed_size(&self, account: AccountKey) -> Result<u64> {
        let row = self
            .query_opt(
                "read checkpoints",
                "SELECT COALESCE(MAX(size), 0) FROM checkpoints WHERE account_id = $1",
                &[&account.0],
            )?
            .ok_or_else(|| internal("an aggregate returned no row"))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn unsigned_accounts(&self) -> Result<Vec<AccountKey>> {
        Ok(self
            .query(
                "find unsigned accounts",
                "SELECT h.account_id FROM heads h \
                 WHERE h.size > COALESCE( \
                     (SELECT MAX(c.size) FROM checkpoints c WHERE c.account_id = h.account_id), 0)",
                &[],
            )?
            .iter()
            .map(|r| AccountKey(r.get(0)))
            .collect())
    }

    fn live_token(&self, secret_hash: &Hash) -> Result<Option<TokenRecord>> {
        tokens::live_token(self, secret_hash)
    }

    fn token_info(&self, id: &str) -> Result<Option<TokenInfo>> {
        tokens::token_info(self, id)
    }

    fn list_tokens(&self, scope: &TokenScope) -> Result<Vec<TokenInfo>> {
        tokens::list(self, scope)
    }

    fn pending_token_changes(&self, now_us: i64) -> Result<Vec<PendingTokenChange>> {
        tokens::pending_changes(self, now_us)
    }

    fn revoked_token_count(&self) -> Result<i64> {
        let row = self
            .query_opt(
                "count revoked tokens",
                "SELECT count(revoked_at) FROM tokens",
                &[],
            )?
            .ok_or_else(|| internal("an aggregate returned no row"))?;
        Ok(row.get(0))
    }

    fn committed_size(&self, account: &AccountId) -> Result<u64> {
        Ok(self
            .query_opt(
                "read the log's size",
                "SELECT h.size FROM accounts a JOIN heads h ON h.account_id = a.account_id \
                 WHERE a.name = $1",
                &[&account.as_str()],
            )?
            .map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    fn ping(&self) -> Result<()> {
        self.query("ping database", "SELECT 1", &[]).map(drop)
    }

    fn index_segment_summaries(&self, account: AccountKey) -> Result<Vec<(u32, Vec<u8>)>> {
        Ok(self
            .query(
                "read index segments",
                "SELECT segment, summary FROM index_segments WHERE account_id = $1",
                &[&account.0],
            )?
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, r.get(1)))
            .collect())
    }

    fn index_segment_columns(&self, account: AccountKey, no: u32) -> Result<Option<Vec<u8>>> {
        Ok(self
            .query_opt(
                "read an index segment",
                "SELECT columns FROM index_segments WHERE account_id = $1 AND segment = $2",
                &[&account.0, &(no as i32)],
            )?
            .map(|r| r.get(0)))
    }

    fn index_tail(&self, account: AccountKey) -> Result<Option<StoredTail>> {
        Ok(self
            .query_opt(
                "read an index tail",
                "SELECT first, summary, columns FROM index_tails WHERE account_id = $1",
                &[&account.0],
            )?
            .map(|r| StoredTail {
                first: r.get::<_, i64>(0) as u64,
                summary: r.get(1),
                columns: r.get(2),
            }))
    }
}
