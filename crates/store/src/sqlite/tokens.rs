//! The token rows: inserts, revocations, the `logged` bits of recorded
//! changes, and the reads of the cache, the listings and the recorder.

use auditlog_core::merkle::Hash;
use rusqlite::{Connection, OptionalExtension, params};

use super::{internal, sql_err};
use crate::{PendingTokenChange, Result, Role, TokenChange, TokenInfo, TokenRecord, TokenScope};

/// What a token listing reads, in [`token_info`]'s order.
const TOKEN_INFO_COLUMNS: &str =
    "id, scope, role, created_at, created_by, expires_at, last_used_at, revoked_at, revoked_by";

pub(super) fn insert_token(conn: &Connection, t: &TokenRecord) -> Result<()> {
    conn.execute(
        "INSERT INTO tokens (id, secret_hash, scope, role, created_at, expires_at, created_by, logged) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
        params![
            t.id,
            &t.secret_hash[..],
            t.scope.as_str(),
            t.role.as_str(),
            t.created_at_us,
            t.expires_at_us,
            t.created_by,
        ],
    )
    .map_err(sql_err("insert token"))?;
    Ok(())
}

/// Revokes the live token `id` of exactly `scope`; the number of rows changed.
pub(super) fn revoke_in(
    conn: &Connection,
    scope: &str,
    id: &str,
    by: Option<&str>,
    on: Option<&str>,
    now_us: i64,
) -> Result<usize> {
    conn.execute(
        "UPDATE tokens SET revoked_at = ?1, revoked_by = ?2, revoked_in = ?3 \
         WHERE id = ?4 AND scope = ?5 AND revoked_at IS NULL",
        params![now_us, by, on, id, scope],
    )
    .map_err(sql_err("revoke token"))
}

/// A row of [`TOKEN_INFO_COLUMNS`]; the outer error is SQLite's, the inner
/// one a stored value that does not parse.
pub(super) fn token_info(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<TokenInfo>> {
    let scope: String = r.get(1)?;
    let role: String = r.get(2)?;
    let (scope, role) = match (
        TokenScope::from_stored(&scope),
        Role::parse(&role).ok_or_else(|| internal("stored role is unknown")),
    ) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    Ok(Ok(TokenInfo {
        id: r.get(0)?,
        scope,
        role,
        created_at_us: r.get(3)?,
        created_by: r.get(4)?,
        expires_at_us: r.get(5)?,
        last_used_at_us: r.get(6)?,
        revoked_at_us: r.get(7)?,
        revoked_by: r.get(8)?,
    }))
}

pub(super) fn read_token_info(conn: &Connection, id: &str) -> Result<Option<TokenInfo>> {
    conn.prepare_cached(&format!(
        "SELECT {TOKEN_INFO_COLUMNS} FROM tokens WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row([id], token_info).optional())
    .map_err(sql_err("read token"))?
    .transpose()
}

/// Token changes no event records yet (see [`Store::pending_token_changes`]).
pub(super) fn read_pending_changes(
    conn: &Connection,
    now_us: i64,
) -> Result<Vec<PendingTokenChange>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {TOKEN_INFO_COLUMNS}, logged, revoked_in FROM tokens \
             WHERE (logged & 1) = 0 \
                OR (revoked_at IS NOT NULL AND (logged & 2) = 0) \
                OR (revoked_at IS NULL AND expires_at <= ?1 AND (logged & 4) = 0) \
             ORDER BY created_at, rowid"
        ))
        .map_err(sql_err("read pending token changes"))?;
    let rows = stmt
        .query_map([now_us], |r| {
            Ok((
                token_info(r)?,
                r.get::<_, i64>(9)?,
                r.get::<_, Option<String>>(10)?,
            ))
        })
        .map_err(sql_err("read pending token changes"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err("read pending token changes"))?;
    let mut out = Vec::new();
    for (info, logged, revoked_in) in rows {
        PendingTokenChange::of_token(info?, logged, revoked_in.as_deref(), now_us, &mut out);
    }
    Ok(out)
}

/// How many tokens of the file are revoked: it only grows, so a change
/// means another process revoked one.
pub(super) fn revoked_count(conn: &Connection) -> Result<i64> {
    conn.prepare_cached("SELECT count(revoked_at) FROM tokens")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(sql_err("count revoked tokens"))
}

/// Sets the `logged` bit of `change` on token `id`; `false` if it was set
/// already (or there is no such token).
pub(super) fn set_logged(conn: &Connection, id: &str, change: TokenChange) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE tokens SET logged = logged | ?2 WHERE id = ?1 AND (logged & ?2) = 0",
        )
        .and_then(|mut s| s.execute(params![id, change.logged_bit()]))
        .map_err(sql_err("mark token change recorded"))?;
    Ok(n > 0)
}

/// Sets the token's last use to `at_us` unless a later one is stored.
pub(super) fn touch(conn: &Connection, id: &str, at_us: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tokens SET last_used_at = ?1 WHERE id = ?2 \
         AND (last_used_at IS NULL OR last_used_at < ?1)",
    )
    .and_then(|mut s| s.execute(params![at_us, id]))
    .map_err(sql_err("note token use"))?;
    Ok(())
}

/// The token with this secret hash unless it is revoked.
pub(super) fn live_token(conn: &Connection, hash: &Hash) -> Result<Option<TokenRecord>> {
    type Row = (
        String,
        Vec<u8>,
        String,
        String,
        i64,
        Option<i64>,
        Option<String>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT id, secret_hash, scope, role, created_at, expires_at, created_by \
             FROM tokens WHERE secret_hash = ?1 AND revoked_at IS NULL",
        )
        .and_then(|mut s| {
            s.query_row([&hash[..]], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .optional()
        })
        .map_err(sql_err("read token"))?;
    let Some((id, stored, scope, role, created_at_us, expires_at_us, created_by)) = row else {
        return Ok(None);
    };
    let secret_hash: Hash = stored
        .as_slice()
        .try_into()
        .map_err(|_| internal("stored token hash is not 32 bytes"))?;
    let role = Role::parse(&role).ok_or_else(|| internal("stored role is unknown"))?;
    Ok(Some(TokenRecord {
        id,
        secret_hash,
        scope: TokenScope::from_stored(&scope)?,
        role,
        created_at_us,
        expires_at_us,
        created_by,
    }))
}

/// Tokens of exactly `scope` (every token for `None`, revoked ones
/// included), oldest first.
pub(super) fn list(conn: &Connection, scope: Option<&TokenScope>) -> Result<Vec<TokenInfo>> {
    let (sql, args): (String, Vec<&str>) = match scope {
        Some(s) => (
            format!(
                "SELECT {TOKEN_INFO_COLUMNS} FROM tokens \
                 WHERE scope = ?1 AND revoked_at IS NULL ORDER BY created_at, rowid"
            ),
            vec![s.as_str()],
        ),
        None => (
            format!("SELECT {TOKEN_INFO_COLUMNS} FROM tokens ORDER BY created_at, rowid"),
            Vec::new(),
        ),
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err("list tokens"))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), token_info)
        .map_err(sql_err("list tokens"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_err("list tokens"))?;
    rows.into_iter().collect()
}
