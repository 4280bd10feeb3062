//! Bearer tokens: creation, hashing, and the extractor that checks a request's
//! token, its account and its role.
//!
//! A token is `alog_` followed by 32 random bytes in URL-safe base64 (256
//! bits). Only its SHA-256 is stored; the look-up is by that hash and the
//! final comparison is constant-time, so neither the database nor timing
//! reveals a secret.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use auditlog_core::merkle::Hash;
use auditlog_core::record::AccountId;
use auditlog_store::{Role, TokenRecord, TokenScope};

use crate::AppState;
use crate::error::ApiError;

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
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let secret = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        if !secret.starts_with(SECRET_PREFIX) || secret.len() > 128 {
            return Err(ApiError::Unauthorized);
        }
        let hash = hash_secret(secret);
        let token = state
            .store
            .find_token(&hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if !bool::from(token.secret_hash.ct_eq(&hash)) {
            return Err(ApiError::Unauthorized);
        }
        let now_us = auditlog_core::record::Micros::from_timestamp(state.now()).0;
        // Expired is refused like unknown: no hint for whoever holds it.
        // (The expiry is recorded in the log by the token recorder.)
        if token.is_expired(now_us) {
            return Err(ApiError::Unauthorized);
        }
        state.store.note_token_use(&token.id, now_us);
        Ok(Caller { token })
    }
}
