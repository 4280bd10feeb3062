//! Reads of the SQLite file: a read-only connection per reader (pooled, or
//! an export's own), rows by seq, by id and in batches, tiles, leaf hashes,
//! checkpoints and tokens.

use auditlog_core::index::StoredTail;
use auditlog_core::merkle::Hash;
use rusqlite::{Connection, OptionalExtension, params};

use super::{internal, sql_err, tokens};
use crate::backend::{AccountKey, LogReader};
use crate::{PendingTokenChange, RawRecord, Result, TokenInfo, TokenRecord, TokenScope};

/// A read-only connection.
pub struct SqliteReader {
    pub(super) conn: Connection,
    /// The file's `events` table is in write order (a rowid table, not the
    /// old clustered layout): an account's rows lie in seq order along the
    /// rowids, mixed with other accounts' rows.
    pub(super) write_order: bool,
}

fn leaf_hash(bytes: &[u8]) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| internal("stored leaf hash is not 32 bytes"))
}

/// One row of a batch read: `(seq, body, leaf_hash)` borrowed from SQLite,
/// made into a [`RawRecord`] only when the batch wants it.
fn raw_record<'r>(r: &'r rusqlite::Row<'_>, first: usize) -> Result<(u64, &'r [u8], Hash)> {
    let seq = r.get::<_, i64>(first).map_err(sql_err("read events"))? as u64;
    let body = r
        .get_ref(first + 1)
        .and_then(|v| v.as_bytes().map_err(Into::into))
        .map_err(sql_err("read events"))?;
    // The hash is borrowed from SQLite, not allocated.
    let hash = leaf_hash(
        r.get_ref(first + 2)
            .and_then(|v| v.as_blob().map_err(Into::into))
            .map_err(sql_err("read events"))?,
    )?;
    Ok((seq, body, hash))
}

/// The rows of one account's dense run of seqs `[lo, lo + wanted.len())`
/// being read: which are wanted, and those found so far.
struct Run {
    lo: u64,
    wanted: Vec<bool>,
    slots: Vec<Option<RawRecord>>,
}

impl Run {
    fn new(seqs: &[u64], lo: u64, hi: u64) -> Run {
        let span = (hi - lo + 1) as usize;
        let mut wanted = vec![false; span];
        for &seq in seqs {
            wanted[(seq - lo) as usize] = true;
        }
        let mut slots = Vec::with_capacity(span);
        slots.resize_with(span, || None);
        Run { lo, wanted, slots }
    }

    /// Keeps the row if the run wants it (and has not got it yet).
    fn offer(&mut self, seq: u64, body: &[u8], leaf_hash: Hash) {
        let Some(i) = seq.checked_sub(self.lo).map(|i| i as usize) else {
            return;
        };
        if self.wanted.get(i) == Some(&true) && self.slots[i].is_none() {
            self.slots[i] = Some(RawRecord {
                seq,
                canonical: body.to_vec(),
                leaf_hash,
            });
        }
    }

    fn complete(&self) -> bool {
        self.wanted
            .iter()
            .zip(&self.slots)
            .all(|(w, s)| !w || s.is_some())
    }
}

/// How many rows of other accounts a storage-order read of a run may step
/// over, as a multiple of the run's span, before the look-up by seq is
/// cheaper: stepping over a row costs a fraction of a seek, so an account
/// holding most of the log (the exports that are long) reads in storage
/// order, and a small account among many large ones by seq.
const MAX_ROWID_SPREAD: u64 = 2;

/// The widest gap between two wanted seqs that one range read spans: a
/// range read fetches every row between (SQLite computes a row's columns
/// before handing it over), each costing a fraction of a look-up of its
/// own (a statement run per row). A batch of an export is 1,000 rows in
/// time order, which concurrent ingest makes a few runs of dense seqs
/// apart from each other (the 1M bench: half the batches spanned twice
/// their rows, one in six more, read row by row before).
const MAX_RUN_GAP: u64 = 8;

impl SqliteReader {
    /// Reads the rows of `seqs` into `out`, in the order of `seqs`. The
    /// seqs are cut into runs without wide gaps; a run of several rows is
    /// read by one range scan, of the table itself when the run is dense
    /// and its rows lie close together in the file
    /// ([`SqliteReader::scan_storage_order`]), else of `events_by_seq`; a
    /// lone seq by a look-up of its own.
    fn fetch_many(&self, db_id: i64, seqs: &[u64], out: &mut Vec<RawRecord>) -> Result<()> {
        let mut sorted = seqs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut found: Vec<Option<RawRecord>> = Vec::with_capacity(sorted.len());
        let mut start = 0;
        while start < sorted.len() {
            let mut end = start + 1;
            while end < sorted.len() && sorted[end] - sorted[end - 1] <= MAX_RUN_GAP {
                end += 1;
            }
            let part = &sorted[start..end];
            let (lo, hi) = (part[0], part[part.len() - 1]);
            if part.len() == 1 {
                found.push(Some(self.read_raw(AccountKey(db_id), lo)?));
            } else {
                let mut run = Run::new(part, lo, hi);
                // Storage order relies on each account's rows lying in seq
                // order along the rowids (the writer appends them so).
                // Should a file ever break that, a row is missed, not
                // wrong: the run is completed by seq below. Only dense runs:
                // the table scan reads every row between.
                let dense = part.len() as u64 * 10 >= (hi - lo + 1) * 9;
                if !(self.write_order
                    && dense
                    && self.scan_storage_order(db_id, &mut run)?
                    && run.complete())
                {
                    self.scan_by_seq(db_id, &mut run)?;
                }
                found.extend(
                    part.iter()
                        .map(|&seq| run.slots[(seq - lo) as usize].take()),
                );
            }
            start = end;
        }
        for &seq in seqs {
            let rec = sorted
                .binary_search(&seq)
                .ok()
                .and_then(|i| found[i].take())
                .ok_or_else(|| internal(format!("event seq {seq} is missing from the log")))?;
            out.push(rec);
        }
        Ok(())
    }

    /// The run's rows through `events_by_seq`: a step along the index and a
    /// seek from the table's root for each row.
    fn scan_by_seq(&self, db_id: i64, run: &mut Run) -> Result<()> {
        let hi = run.lo + run.wanted.len() as u64 - 1;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, body, leaf_hash FROM events WHERE account = ?1 AND seq BETWEEN ?2 AND ?3",
            )
            .map_err(sql_err("read events"))?;
        let mut rows = stmt
            .query(params![db_id, run.lo as i64, hi as i64])
            .map_err(sql_err("read events"))?;
        while let Some(r) = rows.next().map_err(sql_err("read events"))? {
            let (seq, body, hash) = raw_record(r, 0)?;
            run.offer(seq, body, hash);
        }
        Ok(())
    }

    /// The run's rows by one scan of the table between the rowids of its
    /// first and last rows, stepping over other accounts' rows: a cursor
    /// step per row instead of a seek through the index per row (perf: the
    /// seeks were the reader's largest cost after SQLite's page reads), and
    /// the file read front to back, which the kernel reads ahead. `false`
    /// (nothing read) when those rowids hold too many other accounts' rows
    /// ([`MAX_ROWID_SPREAD`]).
    fn scan_storage_order(&self, db_id: i64, run: &mut Run) -> Result<bool> {
        let hi = run.lo + run.wanted.len() as u64 - 1;
        let mut rowid = self
            .conn
            .prepare_cached("SELECT rowid FROM events WHERE account = ?1 AND seq = ?2")
            .map_err(sql_err("read events"))?;
        let mut at = |seq: u64| -> Result<Option<i64>> {
            rowid
                .query_row(params![db_id, seq as i64], |r| r.get(0))
                .optional()
                .map_err(sql_err("read events"))
        };
        let (Some(first), Some(last)) = (at(run.lo)?, at(hi)?) else {
            return Ok(false);
        };
        let spread = (last - first + 1).max(0) as u64;
        if first > last || spread > MAX_ROWID_SPREAD * run.wanted.len() as u64 {
            return Ok(false);
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT account, seq, body, leaf_hash FROM events WHERE rowid BETWEEN ?1 AND ?2",
            )
            .map_err(sql_err("read events"))?;
        let mut rows = stmt
            .query(params![first, last])
            .map_err(sql_err("read events"))?;
        while let Some(r) = rows.next().map_err(sql_err("read events"))? {
            if r.get::<_, i64>(0).map_err(sql_err("read events"))? != db_id {
                continue;
            }
            let (seq, body, hash) = raw_record(r, 1)?;
            run.offer(seq, body, hash);
        }
        Ok(true)
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

    fn index_tail(&self, account: AccountKey) -> Result<Option<StoredTail>> {
        self.conn
            .prepare_cached("SELECT first, summary, columns FROM index_tails WHERE account = ?1")
            .and_then(|mut s| {
                s.query_row([account.0], |r| {
                    Ok(StoredTail {
                        first: r.get::<_, i64>(0)? as u64,
                        summary: r.get(1)?,
                        columns: r.get(2)?,
                    })
                })
                .optional()
            })
            .map_err(sql_err("read an index tail"))
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
