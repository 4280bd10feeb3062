//! The file read whole for a migration ([`SqliteDump`]): one connection
//! holding SQLite's write lock (`BEGIN IMMEDIATE`) from the first read to
//! the drop, so every read sees one snapshot and no other connection — a
//! server's writer, a token command — can commit meanwhile.

use auditlog_core::index::IndexRow;
use auditlog_core::merkle::Hash;
use auditlog_core::record::AccountId;
use rusqlite::{Connection, params};

use super::{SqliteBackend, internal, open_conn, sql_err};
use crate::Result;
use crate::backend::{AccountKey, NewRow};
use crate::migrate::{
    DumpAccount, LogDump, SegmentVisit, StoredToken, TileVisit, recorded_at_of_canonical,
};

/// A whole SQLite store, frozen: see the module doc.
pub struct SqliteDump<'b> {
    backend: &'b SqliteBackend,
    conn: Connection,
}

impl std::fmt::Debug for SqliteDump<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDump").finish_non_exhaustive()
    }
}

impl SqliteBackend {
    /// Takes the file's write lock (waiting up to the busy timeout for a
    /// writer to finish its transaction) and returns a dump that reads
    /// under it. A server left running on the file cannot commit until the
    /// dump is dropped: its writes fail with "unavailable".
    pub fn dump(&self) -> Result<SqliteDump<'_>> {
        let conn = open_conn(&self.path, &self.opts, false)?;
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(sql_err("take the database's write lock"))?;
        Ok(SqliteDump {
            backend: self,
            conn,
        })
    }
}

impl Drop for SqliteDump<'_> {
    fn drop(&mut self) {
        // Nothing was written: ending the transaction releases the lock.
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}

impl LogDump for SqliteDump<'_> {
    fn accounts(&mut self) -> Result<Vec<DumpAccount>> {
        let what = "list accounts";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT a.id, a.name, (SELECT count(*) FROM events e WHERE e.account = a.id) \
                 FROM accounts a ORDER BY a.id",
            )
            .map_err(sql_err(what))?;
        let rows: Vec<(i64, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(sql_err(what))?;
        rows.into_iter()
            .map(|(key, name, size)| {
                Ok(DumpAccount {
                    name: AccountId::parse(&name)
                        .map_err(|e| internal(format!("stored account name is invalid: {e}")))?,
                    key: AccountKey(key),
                    size: size as u64,
                })
            })
            .collect()
    }

    fn rows(
        &mut self,
        account: AccountKey,
        visit: &mut dyn FnMut(&NewRow<'_>) -> Result<()>,
    ) -> Result<()> {
        let what = "read events";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, id, occurred_at, event_type, actor_id, actor_name, ip_address, \
                 workflow_id, idempotency_key, body, leaf_hash FROM events \
                 WHERE account = ?1 ORDER BY seq",
            )
            .map_err(sql_err(what))?;
        let mut rows = stmt.query(params![account.0]).map_err(sql_err(what))?;
        while let Some(r) = rows.next().map_err(sql_err(what))? {
            let text = |i| {
                r.get_ref(i)
                    .and_then(|v| v.as_str_or_null().map_err(Into::into))
                    .map_err(sql_err(what))
            };
            let ty: i64 = r.get(3).map_err(sql_err(what))?;
            let event =
                *self.backend.by_type.get(&ty).ok_or_else(|| {
                    internal(format!("stored event type {ty} is not in the catalog"))
                })?;
            let canonical = text(9)?.ok_or_else(|| internal("a stored event has no body"))?;
            let hash_bytes = r
                .get_ref(10)
                .and_then(|v| v.as_blob().map_err(Into::into))
                .map_err(sql_err(what))?;
            let leaf_hash: Hash = hash_bytes
                .try_into()
                .map_err(|_| internal("stored leaf hash is not 32 bytes"))?;
            visit(&NewRow {
                seq: r.get::<_, i64>(0).map_err(sql_err(what))? as u64,
                id: text(1)?.ok_or_else(|| internal("a stored event has no id"))?,
                recorded_at_us: recorded_at_of_canonical(canonical)?,
                columns: IndexRow {
                    occurred_at_us: r.get(2).map_err(sql_err(what))?,
                    event,
                    actor_id: text(4)?.ok_or_else(|| internal("stored event has no actor id"))?,
                    actor_name: text(5)?,
                    ip_address: text(6)?,
                    workflow_id: text(7)?,
                },
                idempotency_key: text(8)?,
                canonical,
                leaf_hash: &leaf_hash,
            })?;
        }
        Ok(())
    }

    fn tiles(&mut self, visit: &mut TileVisit<'_>) -> Result<()> {
        let what = "read tiles";
        let mut stmt = self
            .conn
            .prepare("SELECT account, level, idx, hashes FROM tiles ORDER BY account, level, idx")
            .map_err(sql_err(what))?;
        let mut rows = stmt.query([]).map_err(sql_err(what))?;
        while let Some(r) = rows.next().map_err(sql_err(what))? {
            let hashes = r
                .get_ref(3)
                .and_then(|v| v.as_blob().map_err(Into::into))
                .map_err(sql_err(what))?;
            let level: i64 = r.get(1).map_err(sql_err(what))?;
            let level =
                u8::try_from(level).map_err(|_| internal("stored tile level is invalid"))?;
            visit(
                AccountKey(r.get(0).map_err(sql_err(what))?),
                level,
                r.get::<_, i64>(2).map_err(sql_err(what))? as u64,
                hashes,
            )?;
        }
        Ok(())
    }

    fn checkpoints(
        &mut self,
        visit: &mut dyn FnMut(AccountKey, u64, &str) -> Result<()>,
    ) -> Result<()> {
        let what = "read checkpoints";
        let mut stmt = self
            .conn
            .prepare("SELECT account, size, note FROM checkpoints ORDER BY account, size")
            .map_err(sql_err(what))?;
        let mut rows = stmt.query([]).map_err(sql_err(what))?;
        while let Some(r) = rows.next().map_err(sql_err(what))? {
            let note = r
                .get_ref(2)
                .and_then(|v| v.as_str().map_err(Into::into))
                .map_err(sql_err(what))?;
            visit(
                AccountKey(r.get(0).map_err(sql_err(what))?),
                r.get::<_, i64>(1).map_err(sql_err(what))? as u64,
                note,
            )?;
        }
        Ok(())
    }

    fn index_segments(&mut self, visit: &mut SegmentVisit<'_>) -> Result<()> {
        let what = "read index segments";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT account, segment, summary, columns FROM index_segments \
                 ORDER BY account, segment",
            )
            .map_err(sql_err(what))?;
        let mut rows = stmt.query([]).map_err(sql_err(what))?;
        while let Some(r) = rows.next().map_err(sql_err(what))? {
            let blob = |i| {
                r.get_ref(i)
                    .and_then(|v| v.as_blob().map_err(Into::into))
                    .map_err(sql_err(what))
            };
            visit(
                AccountKey(r.get(0).map_err(sql_err(what))?),
                r.get::<_, i64>(1).map_err(sql_err(what))? as u32,
                blob(2)?,
                blob(3)?,
            )?;
        }
        Ok(())
    }

    fn tokens(&mut self) -> Result<Vec<StoredToken>> {
        let what = "read tokens";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, secret_hash, scope, role, created_at, revoked_at, expires_at, \
                 created_by, last_used_at, revoked_by, revoked_in, logged \
                 FROM tokens ORDER BY created_at, rowid",
            )
            .map_err(sql_err(what))?;
        stmt.query_map([], |r| {
            Ok(StoredToken {
                id: r.get(0)?,
                secret_hash: r.get(1)?,
                scope: r.get(2)?,
                role: r.get(3)?,
                created_at_us: r.get(4)?,
                revoked_at_us: r.get(5)?,
                expires_at_us: r.get(6)?,
                created_by: r.get(7)?,
                last_used_at_us: r.get(8)?,
                revoked_by: r.get(9)?,
                revoked_in: r.get(10)?,
                logged: r.get(11)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(sql_err(what))
    }
}
