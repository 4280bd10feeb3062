//! Bearer tokens: creation, hashing, and the extractor that checks a request's
//! token, its account and its role.
//!
//! A token is `alog_` followed by 32 random bytes in URL-safe base64 (256
//! bits). Only its SHA-256 is stored; the look-up is by that hash and the
//! final comparison is constant-time, so neither the database nor timing
//! reveals a secret.

use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use auditlog_core::merkle::Hash;
use auditlog_core::record::AccountId;
use auditlog_store::{Role, TokenRecord, TokenScope};

use crate::error::ApiError;
use crate::state::{AppState, request_client_ip};

const SECRET_PREFIX: &str = "alog_";

/// Hash of a token secret, as stored.
pub fn hash_secret(secret: &str) -> Hash {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new token: the secret (shown once) and the record to store.
pub fn new_token(scope: TokenScope, role: Role, now_us: i64) -> (String, TokenRecord) {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let secret = format!("{SECRET_PREFIX}{}", b64.encode(rand::random::<[u8; 32]>()));
    let id = format!("tok_{}", b64.encode(rand::random::<[u8; 9]>()));
    let record = TokenRecord {
        id,
        secret_hash: hash_secret(&secret),
        scope,
        role,
        created_at_us: now_us,
        expires_at_us: None,
        created_by: None,
    };
    (secret, record)
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub token: TokenRecord,
    /// Where a refusal's reason goes for the security log.
    note: Option<Arc<AuthNote>>,
}

impl Caller {
    /// Checks the caller may act on `account` with `role`. Another account is
    /// `404` (never `403`): its existence is not revealed.
    pub fn authorize(&self, account: &str, needed: Needed) -> Result<AccountId, ApiError> {
        let account = AccountId::parse(account).map_err(|_| ApiError::no_account())?;
        if !self.token.scope.allows(&account) {
            return Err(ApiError::no_account());
        }
        let ok = match needed {
            Needed::Ingest => self.token.role == Role::Ingest,
            Needed::Read => matches!(self.token.role, Role::Read | Role::Admin),
            Needed::Admin => self.token.role == Role::Admin,
        };
        if ok {
            Ok(account)
        } else {
            note_reason(self.note.as_deref(), "token lacks the role");
            Err(ApiError::Forbidden(format!(
                "this token has the `{}` role; this operation needs `{}`",
                self.token.role.as_str(),
                needed.as_str()
            )))
        }
    }
}

/// What an operation needs.
#[derive(Clone, Copy, Debug)]
pub enum Needed {
    Ingest,
    Read,
    Admin,
}

impl Needed {
    fn as_str(self) -> &'static str {
        match self {
            Needed::Ingest => "ingest",
            Needed::Read => "read or admin",
            Needed::Admin => "admin",
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let note = parts.extensions.get::<Arc<AuthNote>>().cloned();
        match authenticate(parts, state).await {
            Ok(token) => {
                if let Some(note) = &note {
                    let _ = note.token_id.set(token.id.clone());
                }
                if let Err(e) = state.limits.token_request(&token.id) {
                    note_reason(note.as_deref(), "token over its request rate");
                    return Err(e);
                }
                Ok(Caller { token, note })
            }
            Err(Failure::Store(e)) => Err(e),
            Err(Failure::Auth(reason)) => {
                let client = request_client_ip(
                    parts.extensions.get(),
                    parts.headers.get_all("x-forwarded-for"),
                    &state.trusted_proxies,
                );
                if let Err(e) = state.limits.failed_auth(client) {
                    note_reason(
                        note.as_deref(),
                        "address over its failed-authentication rate",
                    );
                    return Err(e);
                }
                note_reason(note.as_deref(), reason);
                Err(ApiError::Unauthorized)
            }
        }
    }
}

/// Why a request was not authenticated.
enum Failure {
    /// The caller's fault: the reason, for the security log.
    Auth(&'static str),
    /// The store could not answer.
    Store(ApiError),
}

/// The token a request carries, if it is live. Never logs the secret or
/// the header.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<TokenRecord, Failure> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(Failure::Auth("no authorization header"))?
        .to_str()
        .map_err(|_| Failure::Auth("authorization header is not text"))?;
    let secret = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or(Failure::Auth("not a bearer token"))?;
    if !secret.starts_with(SECRET_PREFIX) || secret.len() > 128 {
        return Err(Failure::Auth("malformed token"));
    }
    let hash = hash_secret(secret);
    let token = state
        .store
        .find_token(&hash)
        .await
        .map_err(|e| Failure::Store(e.into()))?
        .ok_or(Failure::Auth("unknown or revoked token"))?;
    if !bool::from(token.secret_hash.ct_eq(&hash)) {
        return Err(Failure::Auth("unknown or revoked token"));
    }
    let now_us = auditlog_core::record::Micros::from_timestamp(state.now()).0;
    // Expired is refused like unknown: no hint for whoever holds it (the
    // expiry is recorded in the log by the token recorder).
    if token.is_expired(now_us) {
        return Err(Failure::Auth("expired token"));
    }
    state.store.note_token_use(&token.id, now_us);
    Ok(token)
}

/// What authentication learned about a request, for the security-event
/// log written by `ops::observe` once the response is known: the
/// token's id (never its secret) and why it was refused.
#[derive(Debug, Default)]
pub struct AuthNote {
    pub token_id: OnceLock<String>,
    pub reason: OnceLock<&'static str>,
}

fn note_reason(note: Option<&AuthNote>, reason: &'static str) {
    if let Some(note) = note {
        let _ = note.reason.set(reason);
    }
}
