//! The token rows: reads of the cache, the listings and the recorder (on a
//! reader), and the writes of the writer's transaction.

use auditlog_core::merkle::Hash;
use tokio_postgres::Row;

use super::reader::PgReader;
use super::{internal, pg_err};
use crate::{PendingTokenChange, Result, Role, TokenChange, TokenInfo, TokenRecord, TokenScope};

/// What a token listing reads, in [`info`]'s order.
const INFO_COLUMNS: &str =
    "id, scope, role, created_at, created_by, expires_at, last_used_at, revoked_at, revoked_by";

fn info(r: &Row) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0),
        scope: TokenScope::from_stored(r.get(1))?,
        role: Role::parse(r.get(2)).ok_or_else(|| internal("stored role is unknown"))?,
        created_at_us: r.get(3),
        created_by: r.get(4),
        expires_at_us: r.get(5),
        last_used_at_us: r.get(6),
        revoked_at_us: r.get(7),
        revoked_by: r.get(8),
    })
}

pub(super) fn live_token(r: &PgReader, hash: &Hash) -> Result<Option<TokenRecord>> {
    let rows = r.query(
        "read token",
        "SELECT id, scope, role, created_at, expires_at, created_by \
         FROM tokens WHERE secret_hash = $1 AND revoked_at IS NULL",
        &[&&hash[..]],
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(TokenRecord {
        id: row.get(0),
        secret_hash: *hash,
        scope: TokenScope::from_stored(row.get(1))?,
        role: Role::parse(row.get(2)).ok_or_else(|| internal("stored role is unknown"))?,
        created_at_us: row.get(3),
        expires_at_us: row.get(4),
        created_by: row.get(5),
    }))
}

pub(super) fn token_info(r: &PgReader, id: &str) -> Result<Option<TokenInfo>> {
    r.query(
        "read token",
        &format!("SELECT {INFO_COLUMNS} FROM tokens WHERE id = $1"),
        &[&id],
    )?
    .first()
    .map(info)
    .transpose()
}

/// Tokens of exactly `scope`, not revoked, oldest first.
pub(super) fn list(r: &PgReader, scope: &TokenScope) -> Result<Vec<TokenInfo>> {
    r.query(
        "list tokens",
        &format!(
            "SELECT {INFO_COLUMNS} FROM tokens \
             WHERE scope = $1 AND revoked_at IS NULL ORDER BY created_at, ord"
        ),
        &[&scope.as_str()],
    )?
    .iter()
    .map(info)
    .collect()
}

/// Every token, revoked ones included, oldest first.
pub(super) fn list_all(r: &PgReader) -> Result<Vec<TokenInfo>> {
    r.query(
        "list tokens",
        &format!("SELECT {INFO_COLUMNS} FROM tokens ORDER BY created_at, ord"),
        &[],
    )?
    .iter()
    .map(info)
    .collect()
}

/// Token changes no event records yet (see
/// [`Store::pending_token_changes`](crate::Store::pending_token_changes)).
pub(super) fn pending_changes(r: &PgReader, now_us: i64) -> Result<Vec<PendingTokenChange>> {
    let rows = r.query(
        "read pending token changes",
        &format!(
            "SELECT {INFO_COLUMNS}, logged, revoked_in FROM tokens \
             WHERE (logged & 1) = 0 \
                OR (revoked_at IS NOT NULL AND (logged & 2) = 0) \
                OR (revoked_at IS NULL AND expires_at <= $1 AND (logged & 4) = 0) \
             ORDER BY created_at, ord"
        ),
        &[&now_us],
    )?;
    let mut out = Vec::new();
    for row in &rows {
        let logged: i32 = row.get(9);
        let revoked_in: Option<&str> = row.get(10);
        PendingTokenChange::of_token(info(row)?, i64::from(logged), revoked_in, now_us, &mut out);
    }
    Ok(out)
}

pub(super) async fn insert(conn: &tokio_postgres::Client, t: &TokenRecord) -> Result<()> {
    conn.execute(
        "INSERT INTO tokens (id, secret_hash, scope, role, created_at, expires_at, created_by, logged) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
        &[
            &t.id,
            &&t.secret_hash[..],
            &t.scope.as_str(),
            &t.role.as_str(),
            &t.created_at_us,
            &t.expires_at_us,
            &t.created_by,
        ],
    )
    .await
    .map_err(pg_err("insert token"))?;
    Ok(())
}

/// Revokes the live token `id` of exactly `scope`; whether one was.
pub(super) async fn revoke(
    conn: &tokio_postgres::Client,
    scope: &str,
    id: &str,
    by: Option<&str>,
    on: Option<&str>,
    now_us: i64,
) -> Result<bool> {
    let n = conn
        .execute(
            "UPDATE tokens SET revoked_at = $1, revoked_by = $2, revoked_in = $3 \
             WHERE id = $4 AND scope = $5 AND revoked_at IS NULL",
            &[&now_us, &by, &on, &id, &scope],
        )
        .await
        .map_err(pg_err("revoke token"))?;
    if n > 0 {
        // Delivered to every listening instance when this commits.
        conn.execute(
            "SELECT pg_notify($1, $2)",
            &[&super::listen::TOKENS_CHANNEL, &id],
        )
        .await
        .map_err(pg_err("notify revocation"))?;
    }
    Ok(n > 0)
}

/// Sets the `logged` bit of `change`; `false` if it was set already (or
/// there is no such token).
pub(super) async fn set_logged(
    conn: &tokio_postgres::Client,
    id: &str,
    change: TokenChange,
) -> Result<bool> {
    let bit = change.logged_bit() as i32;
    let n = conn
        .execute(
            "UPDATE tokens SET logged = logged | $2 WHERE id = $1 AND (logged & $2) = 0",
            &[&id, &bit],
        )
        .await
        .map_err(pg_err("mark token change recorded"))?;
    Ok(n > 0)
}

/// Sets the token's last use to `at_us` unless a later one is stored.
pub(super) async fn touch(conn: &tokio_postgres::Client, id: &str, at_us: i64) -> Result<()> {
    conn.execute(
        "UPDATE tokens SET last_used_at = $1 WHERE id = $2 \
         AND (last_used_at IS NULL OR last_used_at < $1)",
        &[&at_us, &id],
    )
    .await
    .map_err(pg_err("note token use"))?;
    Ok(())
}
