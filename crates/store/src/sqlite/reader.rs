//! Reads of the SQLite file: a read-only connection per reader (pooled, or
//! an export's own), rows by seq, by id and in batches, tiles, leaf hashes,
//! checkpoints and tokens.

use auditlog_core::merkle::Hash;
use rusqlite::{Connection, OptionalExtension, params};

use super::{internal, sql_err, tokens};
use crate::backend::{AccountKey, LogReader};
use crate::{PendingTokenChange, RawRecord, Result, TokenInfo, TokenRecord, TokenScope};

/// A read-only connection.
pub struct SqliteReader {
    pub(super) conn: Connection,
}

fn leaf_hash(bytes: &[u8]) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| internal("stored leaf hash is not 32 bytes"))
}

impl SqliteReader {
    /// Reads the rows of `seqs` into `out`, in the order of `seqs`. When the
    /// seqs cover a dense run (an export of a log ingested roughly in time
    /// order), one range scan replaces a point look-up per row.
    fn fetch_many(&self, db_id: i64, seqs: &[u64], out: &mut Vec<RawRecord>) -> Result<()> {
        let (Some(&lo), Some(&hi)) = (seqs.iter().min(), seqs.iter().max()) else {
            return Ok(());
        };
        let span = (hi - lo + 1) as usize;
        if span > seqs.len() * 2 {
            for &seq in seqs {
                out.push(self.read_raw(AccountKey(db_id), seq)?);
            }
            return Ok(());
        }
        let mut slots: Vec<Option<RawRecord>> = Vec::with_capacity(span);
        slots.resize_with(span, || None);
        // Which seqs of the span are wanted: the range scan skips the others.
        let mut wanted = vec![false; span];
        for &seq in seqs {
            wanted[(seq - lo) as usize] = true;
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, body, leaf_hash FROM events WHERE account = ?1 AND seq BETWEEN ?2 AND ?3",
            )
            .map_err(sql_err("read events"))?;
        let mut rows = stmt
            .query(params![db_id, lo as i64, hi as i64])
            .map_err(sql_err("read events"))?;
        while let Some(r) = rows.next().map_err(sql_err("read events"))? {
            let seq = r.get::<_, i64>(0).map_err(sql_err("read events"))? as u64;
            if !wanted[(seq - lo) as usize] {
                continue;
            }
            // The hash is borrowed from SQLite, not allocated.
            let leaf_hash = leaf_hash(
                r.get_ref(2)
                    .and_then(|v| v.as_blob().map_err(Into::into))
                    .map_err(sql_err("read events"))?,
            )?;
            let canonical = r
                .get_ref(1)
                .and_then(|v| v.as_bytes().map_err(Into::into))
                .map_err(sql_err("read events"))?
                .to_vec();
            slots[(seq - lo) as usize] = Some(RawRecord {
                seq,
                canonical,
                leaf_hash,
            });
        }
        for &seq in seqs {
            let rec = slots[(seq - lo) as usize]
                .take()
                .ok_or_else(|| internal(format!("event seq {seq} is missing from the log")))?;
            out.push(rec);
        }
        Ok(())
    }
}

impl LogReader for SqliteReader {
    fn read_raw(&self, account: AccountKey, seq: u64) -> Result<RawRecord> {
        self.conn
            .prepare_cached("SELECT body, leaf_hash FROM events WHERE account = ?1 AND seq = ?2")
            .and_then(|mut s| {
                s.query_row(params![account.0, seq as i64], |r| {
                    // `as_bytes` takes TEXT as it is (a `Vec<u8>` would want
                    // a BLOB).
                    Ok((r.get_ref(0)?.as_bytes()?.to_vec(), r.get::<_, Vec<u8>>(1)?))
                })
            })
            .map_err(sql_err("read event"))
            .and_then(|(canonical, hash)| {
                Ok(RawRecord {
                    seq,
                    canonical,
                    leaf_hash: leaf_hash(&hash)?,
                })
            })
    }

    fn read_by_id(&self, account: AccountKey, id: &str) -> Result<Option<RawRecord>> {
        let row: Option<(i64, Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT seq, body, leaf_hash FROM events WHERE account = ?1 AND id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![account.0, id], |r| {
                    Ok((r.get(0)?, r.get_ref(1)?.as_bytes()?.to_vec(), r.get(2)?))
                })
                .optional()
            })
            .map_err(sql_err("read event"))?;
        row.map(|(seq, canonical, hash)| {
            Ok(RawRecord {
                seq: seq as u64,
                canonical,
                leaf_hash: leaf_hash(&hash)?,
            })
        })
        .transpose()
    }

    fn read_batch(
        &self,
        account: AccountKey,
        seqs: &[u64],
        out: &mut Vec<RawRecord>,
    ) -> Result<()> {
        // One read transaction per batch (a statement outside one takes and
        // drops the WAL read lock itself: a fifth of the reader's time,
        // perf), ended before returning: the caller may then wait on a slow
        // client, and a snapshot held meanwhile would keep the WAL from
        // being checkpointed and rewound.
        self.conn
            .execute_batch("BEGIN")
            .map_err(sql_err("begin export read"))?;
        let read = self.fetch_many(account.0, seqs, out);
        self.conn
            .execute_batch("COMMIT")
            .map_err(sql_err("end export read"))?;
        read
    }

    fn with_canonical(
        &self,
        account: AccountKey,
        seq: u64,
        f: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT body FROM events WHERE account = ?1 AND seq = ?2")
            .and_then(|mut s| {
                s.query_row(params![account.0, seq as i64], |r| {
                    Ok(f(r.get_ref(0)?.as_bytes()?))
                })
            })
            .map_err(sql_err("read event for a filter"))
    }

    fn leaf_hashes(&self, account: AccountKey, from: u64, to: u64) -> Result<Vec<Hash>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, leaf_hash FROM events WHERE account = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq",
            )
            .map_err(sql_err("read leaf hashes"))?;
        let mut rows = stmt
            .query(params![account.0, from as i64, to as i64])
            .map_err(sql_err("read leaf hashes"))?;
        let mut out = Vec::with_capacity((to - from) as usize);
        while let Some(r) = rows.next().map_err(sql_err("read leaf hashes"))? {
            let seq: i64 = r.get(0).map_err(sql_err("read leaf hashes"))?;
            let hash: Vec<u8> = r.get(1).map_err(sql_err("read leaf hashes"))?;
            if seq as u64 != from + out.len() as u64 {
                return Err(internal(format!(
                    "leaf {} is missing from the log",
                    from + out.len() as u64
                )));
            }
            out.push(leaf_hash(&hash)?);
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
        self.conn
            .prepare_cached(
                "SELECT hashes FROM tiles WHERE account = ?1 AND level = ?2 AND idx = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![account.0, level, index as i64], |r| r.get(0))
                    .optional()
            })
            .map_err(sql_err("read tile"))
    }

    fn latest_checkpoint(&self, account: AccountKey) -> Result<Option<String>> {
        self.conn
            .prepare_cached(
                "SELECT note FROM checkpoints WHERE account = ?1 ORDER BY size DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row([account.0], |r| r.get(0)).optional())
            .map_err(sql_err("read checkpoint"))
    }

    fn index_segment_summaries(&self, account: AccountKey) -> Result<Vec<(u32, Vec<u8>)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT segment, summary FROM index_segments WHERE account = ?1")
            .map_err(sql_err("read index segments"))?;
        stmt.query_map([account.0], |r| Ok((r.get::<_, u32>(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(sql_err("read index segments"))
    }

    fn index_segment_columns(&self, account: AccountKey, no: u32) -> Result<Option<Vec<u8>>> {
        self.conn
            .prepare_cached(
                "SELECT columns FROM index_segments WHERE account = ?1 AND segment = ?2",
            )
            .and_then(|mut s| s.query_row(params![account.0, no], |r| r.get(0)).optional())
            .map_err(sql_err("read an index segment"))
    }

    fn signed_size(&self, account: AccountKey) -> Result<u64> {
        let size: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(MAX(size), 0) FROM checkpoints WHERE account = ?1",
                [account.0],
                |r| r.get(0),
            )
            .map_err(sql_err("read checkpoints"))?;
        Ok(size as u64)
    }

    fn unsigned_accounts(&self) -> Result<Vec<AccountKey>> {
        // Each MAX is read from the last entry of `events_by_seq (account,
        // seq)` and of the checkpoints' primary key.
        self.conn
            .prepare(
                "SELECT a.id FROM accounts a \
                 WHERE COALESCE((SELECT MAX(seq) + 1 FROM events e WHERE e.account = a.id), 0) \
                     > COALESCE((SELECT MAX(size) FROM checkpoints c WHERE c.account = a.id), 0)",
            )
            .and_then(|mut s| {
                s.query_map([], |r| r.get(0).map(AccountKey))?
                    .collect::<std::result::Result<_, _>>()
            })
            .map_err(sql_err("find unsigned accounts"))
    }

    fn live_token(&self, secret_hash: &Hash) -> Result<Option<TokenRecord>> {
        tokens::live_token(&self.conn, secret_hash)
    }

    fn token_info(&self, id: &str) -> Result<Option<TokenInfo>> {
        tokens::read_token_info(&self.conn, id)
    }

    fn list_tokens(&self, scope: &TokenScope) -> Result<Vec<TokenInfo>> {
        tokens::list(&self.conn, Some(scope))
    }

    fn pending_token_changes(&self, now_us: i64) -> Result<Vec<PendingTokenChange>> {
        tokens::read_pending_changes(&self.conn, now_us)
    }

    fn revoked_token_count(&self) -> Result<i64> {
        tokens::revoked_count(&self.conn)
    }

    fn ping(&self) -> Result<()> {
        self.conn
            .query_row("SELECT 1", [], |_| Ok(()))
            .map_err(sql_err("ping database"))
    }
}
