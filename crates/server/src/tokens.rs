//! Token administration and `whoami`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use auditlog_core::record::Micros;
use auditlog_store::{Role, TokenScope};

use crate::AppState;
use crate::auth::{Caller, Needed, new_token};
use crate::error::{ApiError, ApiResult};

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

/// `POST /v1/accounts/{account}/tokens` with `{"role": "read"}`: a new token
/// for the account, its secret shown once.
#[utoipa::path(post, path = "/v1/accounts/{account}/tokens", params(("account" = String, Path, description = "Account id")), request_body(content = Object, description = "{\"role\": \"ingest\" | \"read\" | \"admin\"}"),
    responses((status = 201, description = "{id, token, account, role}: the secret is shown once")))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Admin)?;
    let body = crate::ingest::read_body(body)?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let role = value
        .get("role")
        .and_then(|r| r.as_str())
        .and_then(Role::parse)
        .ok_or_else(|| {
            ApiError::BadRequest("`role` is required; accepted: ingest, read, admin".into())
        })?;
    let now = Micros::from_timestamp(st.now()).0;
    let (secret, record) = new_token(TokenScope::Account(account.clone()), role, now);
    let id = record.id.clone();
    st.store.create_token(record).await?;
    tracing::info!(account = %account, token_id = %id, role = role.as_str(), by = %caller.token.id, "token created");
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": id, "token": secret, "account": account.as_str(), "role": role.as_str()}),
        ),
    )
        .into_response())
}

/// `DELETE /v1/accounts/{account}/tokens/{id}`
#[utoipa::path(delete, path = "/v1/accounts/{account}/tokens/{id}", params(("account" = String, Path, description = "Account id"), ("id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such live token", body = crate::openapi::Problem)))]
pub async fn revoke(
    State(st): State<AppState>,
    caller: Caller,
    Path((account, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Admin)?;
    if st.store.revoke_token(&account, &id).await? {
        tracing::info!(account = %account, token_id = %id, by = %caller.token.id, "token revoked");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(format!(
            "no live token `{id}` in this account"
        )))
    }
}
