//! Token administration (issue, list, revoke), `whoami`, and the recording
//! of every token change as an "Audit Logs" event in the account's log.
//!
//! A change is recorded by [`Store::record_token_change`], which marks it
//! recorded in the transaction that appends the event, so each change is in
//! the log exactly once: the handlers record theirs before answering;
//! a server records at its start whatever is pending (tokens issued or
//! revoked on the command line, anything a failed request left), and
//! [`run_token_recorder`] records expiries while it runs.
//!
//! Why the command line's changes wait for the next start: the command
//! line cannot append (the running server's writer owns each account's
//! sequence and tree), and a running server taking them up at a random
//! moment would drop events into a log under a reader's eyes (the
//! dashboard's tests count what they ingested). A revocation on the command
//! line still takes effect within a second (the store's revocation poll);
//! only its event waits.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use auditlog_core::catalog::{Catalog, Level};
use auditlog_core::record::{Actor, ActorKind, MetaValue, Micros};
use auditlog_core::validate::ValidEvent;
use auditlog_store::{
    DynStore, PendingTokenChange, Revocation, Role, StoreError, TokenChange, TokenInfo, TokenScope,
};

use crate::auth::{Caller, Needed, new_token};
use crate::error::{ApiError, ApiResult};
use crate::request::read_body;
use crate::state::AppState;

/// Longest lifetime a token can be given (`ttl` or `expires_at`): ten
/// years. Beyond that "never expires" (no expiry) says the same more
/// honestly, and every expiry stays a time the record format prints.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// Most live (not revoked) tokens one account may hold. Issuing is an
/// admin's action, but each token is a row that every listing returns and
/// an admin token that leaked could otherwise issue without end. (Checked
/// before the insert, not in it: concurrent requests may pass it by a few.)
pub const MAX_LIVE_TOKENS_PER_ACCOUNT: usize = 1000;

/// How often [`run_token_recorder`] looks for tokens that expired: an
/// expiry is in the log within this time.
pub const TOKEN_RECORD_INTERVAL: Duration = Duration::from_secs(5);

/// The actor id of changes made by an operator (command line, demo).
const OPERATOR: &str = "operator";
/// The actor id of changes the server makes by itself (expiry).
const SERVER: &str = "auditlog";

/// `GET /v1/whoami`: which account and role the caller's token has.
#[utoipa::path(get, path = "/v1/whoami", responses((status = 200, description = "{token_id, account, role} of the caller's token")))]
pub async fn whoami(caller: Caller) -> Response {
    Json(json!({
        "token_id": caller.token.id,
        "account": caller.token.scope.as_str(),
        "role": caller.token.role.as_str(),
    }))
    .into_response()
}

/// The body of `POST …/tokens`.
struct NewToken {
    role: Role,
    expires_at: Option<Micros>,
}

const ACCEPTED_KEYS: &str = "role (ingest, read or admin), and at most one of expires_at (an RFC 3339 instant) or ttl (seconds)";

fn parse_new_token(body: &[u8], now: Micros) -> ApiResult<NewToken> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(ApiError::BadRequest(format!(
            "the body must be a JSON object with {ACCEPTED_KEYS}"
        )));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["role", "expires_at", "ttl"].contains(&k.as_str()))
    {
        let k: String = k.chars().take(64).collect();
        return Err(ApiError::BadRequest(format!(
            "unknown key `{k}`; accepted: {ACCEPTED_KEYS}"
        )));
    }
    let role = obj
        .get("role")
        .and_then(|r| r.as_str())
        .and_then(Role::parse)
        .ok_or_else(|| {
            ApiError::BadRequest("`role` is required; accepted: ingest, read, admin".into())
        })?;
    let max = MAX_TOKEN_TTL.as_secs();
    let expires_at = match (obj.get("expires_at"), obj.get("ttl")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give `expires_at` or `ttl`, not both".into(),
            ));
        }
        (Some(at), None) => {
            let at = at
                .as_str()
                .and_then(|s| Micros::parse_rfc3339(s).ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "`expires_at` must be an RFC 3339 instant such as 2027-01-31T00:00:00Z"
                            .into(),
                    )
                })?;
            if at.0 <= now.0 || at.0 - now.0 > max as i64 * 1_000_000 {
                return Err(ApiError::BadRequest(format!(
                    "`expires_at` must be in the future and at most {} days away",
                    max / 86_400
                )));
            }
            Some(at)
        }
        (None, Some(ttl)) => {
            let secs = ttl
                .as_u64()
                .filter(|s| (1..=max).contains(s))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`ttl` must be a whole number of seconds from 1 to {max}"
                    ))
                })?;
            Some(Micros(now.0 + secs as i64 * 1_000_000))
        }
        (None, None) => None,
    };
    Ok(NewToken { role, expires_at })
}

/// `POST /v1/accounts/{account}/tokens` with `{"role": "read"}` (and
/// optionally `expires_at` or `ttl`): a new token for the account, its secret
/// shown once. Recorded as a "Token created" event before the answer.
#[utoipa::path(post, path = "/v1/accounts/{account}/tokens", params(("account" = String, Path, description = "Account id")),
    request_body(content = crate::schema::NewToken, description = "The role, and optionally when the token expires"),
    responses((status = 201, description = "{id, token, account, role, expires_at}: the secret is shown once", body = crate::schema::IssuedToken),
        (status = 400, description = "Not a valid token request", body = crate::schema::Problem),
        (status = 409, description = "The account holds the most live tokens allowed", body = crate::schema::Problem)))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Admin)?;
    let body = read_body(body)?;
    let now = Micros::from_timestamp(st.now());
    let req = parse_new_token(&body, now)?;
    let scope = TokenScope::Account(account.clone());
    if st.store.list_tokens(&scope).await?.len() >= MAX_LIVE_TOKENS_PER_ACCOUNT {
        return Err(ApiError::Conflict(format!(
            "this account already has {MAX_LIVE_TOKENS_PER_ACCOUNT} live tokens, the most allowed; revoke unused ones first"
        )));
    }
    let (secret, mut record) = new_token(scope, req.role, now.0);
    record.expires_at_us = req.expires_at.map(|t| t.0);
    record.created_by = Some(caller.token.id.clone());
    let id = record.id.clone();
    let info = info_of_new(&record);
    st.store.create_token(record).await?;
    record_change(
        &st.store,
        &PendingTokenChange {
            token: info,
            change: TokenChange::Created,
            account: Some(account.clone()),
        },
    )
    .await?;
    tracing::info!(account = %account, token_id = %id, role = req.role.as_str(), by = %caller.token.id, "token created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "token": secret,
            "account": account.as_str(),
            "role": req.role.as_str(),
            "expires_at": req.expires_at.map(|t| t.to_rfc3339()),
        })),
    )
        .into_response())
}

fn info_of_new(t: &auditlog_store::TokenRecord) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        scope: t.scope.clone(),
        role: t.role,
        created_at_us: t.created_at_us,
        created_by: t.created_by.clone(),
        expires_at_us: t.expires_at_us,
        last_used_at_us: None,
        revoked_at_us: None,
        revoked_by: None,
    }
}

fn time(us: Option<i64>) -> Value {
    us.map_or(Value::Null, |t| json!(Micros(t).to_rfc3339()))
}

/// A token as listed: never its secret or the secret's hash.
fn token_json(t: &TokenInfo, now: Micros) -> Value {
    json!({
        "id": t.id,
        "account": t.scope.as_str(),
        "role": t.role.as_str(),
        "created_at": time(Some(t.created_at_us)),
        "created_by": t.created_by.as_deref().unwrap_or(OPERATOR),
        "expires_at": time(t.expires_at_us),
        "expired": t.expires_at_us.is_some_and(|e| e <= now.0),
        "last_used_at": time(t.last_used_at_us),
    })
}

/// `GET /v1/accounts/{account}/tokens`: the account's live tokens (expired
/// ones included, marked), oldest first; for a `*` admin also the `*`
/// tokens, which act on this account too. An account's admin does not see
/// `*` tokens: they belong to the platform, not the tenant.
#[utoipa::path(get, path = "/v1/accounts/{account}/tokens", params(("account" = String, Path, description = "Account id")),
    responses((status = 200, description = "{tokens: [...]}: ids, roles, times; never secrets", body = crate::schema::TokenList)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Admin)?;
    let now = Micros::from_timestamp(st.now());
    let mut tokens = st.store.list_tokens(&TokenScope::Account(account)).await?;
    if caller.token.scope == TokenScope::All {
        tokens.extend(st.store.list_tokens(&TokenScope::All).await?);
    }
    let tokens: Vec<Value> = tokens.iter().map(|t| token_json(t, now)).collect();
    Ok(Json(json!({ "tokens": tokens })).into_response())
}

/// `DELETE /v1/accounts/{account}/tokens/{id}`: revokes a token of the
/// account, or — for a `*` admin — a `*` token. Effective on the next
/// request; recorded as a "Token revoked" event in the account's log before
/// the answer.
#[utoipa::path(delete, path = "/v1/accounts/{account}/tokens/{id}", params(("account" = String, Path, description = "Account id"), ("id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such live token", body = crate::schema::Problem)))]
pub async fn revoke(
    State(st): State<AppState>,
    caller: Caller,
    Path((account, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Admin)?;
    let now = Micros::from_timestamp(st.now()).0;
    let mut revocation = Revocation {
        scope: TokenScope::Account(account.clone()),
        id: id.clone(),
        by: Some(caller.token.id.clone()),
        on: Some(account.clone()),
        at_us: now,
    };
    let mut revoked = st.store.revoke_token(revocation.clone()).await?;
    if !revoked && caller.token.scope == TokenScope::All {
        revocation.scope = TokenScope::All;
        revoked = st.store.revoke_token(revocation).await?;
    }
    if !revoked {
        // The id is the client's: shown back only if it is short.
        let shown: String = id.chars().take(64).collect();
        return Err(ApiError::NotFound(format!(
            "no live token `{shown}` in this account"
        )));
    }
    tracing::info!(account = %account, token_id = %id, by = %caller.token.id, "token revoked");
    if let Some(info) = st.store.token_info(&id).await? {
        record_change(
            &st.store,
            &PendingTokenChange {
                token: info,
                change: TokenChange::Revoked,
                account: Some(account),
            },
        )
        .await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The "Audit Logs" event that records a token change.
pub fn change_event(p: &PendingTokenChange) -> ValidEvent {
    let t = &p.token;
    let name = p.change.event_name();
    let event_id = Catalog::get()
        .find(
            Level::Account,
            auditlog_core::validate::RESERVED_CATEGORY,
            name,
        )
        .expect("the catalog has the token events");
    let (by, at_us) = match p.change {
        TokenChange::Created => (t.created_by.as_deref(), t.created_at_us),
        TokenChange::Revoked => (
            t.revoked_by.as_deref(),
            t.revoked_at_us.unwrap_or(t.created_at_us),
        ),
        TokenChange::Expired => (None, t.expires_at_us.unwrap_or(t.created_at_us)),
    };
    let actor = match (p.change, by) {
        (TokenChange::Expired, _) => Actor {
            kind: ActorKind::System,
            id: SERVER.into(),
            name: None,
            email: None,
        },
        (_, Some(token)) => Actor {
            kind: ActorKind::App,
            id: token.into(),
            name: None,
            email: None,
        },
        (_, None) => Actor {
            kind: ActorKind::System,
            id: OPERATOR.into(),
            name: None,
            email: None,
        },
    };
    let s = |v: &str| Value::String(v.to_owned());
    let mut metadata: BTreeMap<String, MetaValue> = BTreeMap::from([
        ("token_id".to_owned(), s(&t.id)),
        ("role".to_owned(), s(t.role.as_str())),
        ("scope".to_owned(), s(t.scope.as_str())),
    ]);
    let expires = t.expires_at_us.map(|e| Micros(e).to_rfc3339());
    let who = by.unwrap_or(OPERATOR);
    let description = match p.change {
        TokenChange::Created => {
            metadata.insert("created_by".into(), s(who));
            if let Some(e) = &expires {
                metadata.insert("expires_at".into(), s(e));
            }
            format!(
                "Token {} ({} role) created by {who}{}",
                t.id,
                t.role.as_str(),
                expires
                    .as_deref()
                    .map(|e| format!(", expires {e}"))
                    .unwrap_or_default()
            )
        }
        TokenChange::Revoked => {
            metadata.insert("revoked_by".into(), s(who));
            format!("Token {} ({} role) revoked by {who}", t.id, t.role.as_str())
        }
        TokenChange::Expired => {
            metadata.insert("expires_at".into(), s(expires.as_deref().unwrap_or("")));
            format!("Token {} ({} role) expired", t.id, t.role.as_str())
        }
    };
    ValidEvent {
        event_id,
        level: Level::Account,
        category: auditlog_core::validate::RESERVED_CATEGORY.into(),
        event: name.into(),
        occurred_at: Micros(at_us),
        actor,
        ip_address: None,
        workflow_id: None,
        description,
        metadata,
        idempotency_key: None,
        defaulted: Default::default(),
    }
}

/// Records one token change: its event in the account's log, or — when no
/// account's log is the place (a `*` token's change made on the command
/// line, or its expiry) — only the mark, with a log line. `false` if it had
/// been recorded already.
pub async fn record_change(store: &DynStore, p: &PendingTokenChange) -> Result<bool, StoreError> {
    let event = p.account.clone().map(|a| (a, change_event(p)));
    if event.is_none() {
        tracing::info!(token_id = %p.token.id, change = p.change.event_name(), "platform token change: no account log records it");
    }
    store
        .record_token_change(&p.token.id, p.change, event)
        .await
}

/// Records the token changes of the kinds in `changes` that no event
/// records yet (tokens issued or revoked on the command line, tokens
/// expired by `now`, …); the number recorded.
pub async fn record_token_changes(
    store: &DynStore,
    now: jiff::Timestamp,
    changes: &[TokenChange],
) -> Result<usize, StoreError> {
    let pending = store
        .pending_token_changes(Micros::from_timestamp(now).0)
        .await?;
    let mut n = 0;
    for p in pending.iter().filter(|p| changes.contains(&p.change)) {
        if record_change(store, p).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// Records expiries every [`TOKEN_RECORD_INTERVAL`], forever.
pub async fn run_token_recorder(state: AppState) {
    let mut tick = tokio::time::interval(TOKEN_RECORD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match record_token_changes(&state.store, state.now(), &[TokenChange::Expired]).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(n, "token changes recorded"),
            Err(e) => tracing::warn!(error = %e, "recording token changes failed; retrying"),
        }
    }
}
