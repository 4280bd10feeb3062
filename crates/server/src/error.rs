//! The one error type of the HTTP layer, rendered as RFC 9457 problem
//! details. User errors say what was wrong and what is accepted; internal
//! errors say "internal error" and the cause is logged, never sent.
//!
//! An internal error is logged once: its cause chain rides on the response
//! as an [`InternalCause`] extension to `ops::observe`, which writes it in
//! the request's own log line (with the method, route and status). Nothing
//! on the way logs it again.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use auditlog_core::query::ParseQueryError;
use auditlog_core::validate::FieldError;
use auditlog_store::{StoreError, StoreErrorKind};

/// Seconds a client should wait before retrying a `503`.
const RETRY_AFTER_SECS: &str = "2";

#[derive(Debug)]
pub enum ApiError {
    /// 400: malformed JSON, bad query parameter.
    BadRequest(String),
    /// 400: a well-formed query that would read more stored records than
    /// `--query-max-record-reads`; its own problem type, so a client can
    /// tell "narrow it" from "fix it".
    QueryTooBroad(String),
    /// 401: missing or unknown token.
    Unauthorized,
    /// 403: the token lacks the role.
    Forbidden(String),
    /// 404: not found, or another account's data.
    NotFound(String),
    /// 409: the request conflicts with what is stored (an idempotency key
    /// reused with another body).
    Conflict(String),
    /// 413: body over the size limit.
    TooLarge(String),
    /// 415: a content type the endpoint does not take.
    UnsupportedMediaType(String),
    /// 422: well-formed but breaks a catalog rule or a limit.
    Invalid {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// 429: a rate or concurrency limit; retry after the given seconds.
    TooManyRequests {
        detail: String,
        retry_after_secs: u32,
    },
    /// 503: the store cannot take work now.
    Unavailable(String),
    /// 500: a bug; the cause (its whole chain, see [`cause_chain`]) is
    /// logged, never sent.
    Internal(String),
}

/// The cause of a `500`, on its response for the request log (see the
/// module docs); never sent to the client.
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

/// An error and its sources on one line, outermost first:
/// `commit failed: database is locked`.
pub fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::QueryTooBroad(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::QueryTooBroad(_) => "query-too-broad",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge(_) => "too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Invalid { .. } => "invalid-event",
            ApiError::TooManyRequests { .. } => "too-many-requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The account does not exist for this token: the same answer whether
    /// the account exists for someone else or not at all.
    pub fn no_account() -> ApiError {
        ApiError::NotFound("no such account".into())
    }
}

impl From<ParseQueryError> for ApiError {
    fn from(e: ParseQueryError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e.kind {
            StoreErrorKind::Unavailable => {
                tracing::warn!(error = %e, source = ?e.source, "store unavailable");
                ApiError::Unavailable(format!(
                    "the store is unavailable ({}); retry shortly",
                    e.message
                ))
            }
            // The store's message says which deadline and what to narrow.
            StoreErrorKind::TimedOut => {
                tracing::warn!(error = %e, "query deadline passed");
                ApiError::Unavailable(e.message)
            }
            // The store's message says which cap and what to narrow.
            StoreErrorKind::TooBroad => ApiError::QueryTooBroad(e.message),
            StoreErrorKind::Invalid => ApiError::BadRequest(e.message),
            StoreErrorKind::Conflict => ApiError::Conflict(e.message),
            // Logged once, with the request (see the module docs).
            StoreErrorKind::Internal => ApiError::Internal(cause_chain(&e)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let slug = self.slug();
        let title = status.canonical_reason().unwrap_or("Error");
        let (detail, errors): (String, Option<&[FieldError]>) = match &self {
            ApiError::Unauthorized => (
                "missing or unknown token: send `Authorization: Bearer <token>`".into(),
                None,
            ),
            ApiError::Internal(_) => ("internal error".into(), None),
            ApiError::Invalid { detail, errors } => (detail.clone(), Some(errors)),
            ApiError::BadRequest(d)
            | ApiError::QueryTooBroad(d)
            | ApiError::Forbidden(d)
            | ApiError::NotFound(d)
            | ApiError::Conflict(d)
            | ApiError::TooLarge(d)
            | ApiError::TooManyRequests { detail: d, .. }
            | ApiError::UnsupportedMediaType(d)
            | ApiError::Unavailable(d) => (d.clone(), None),
        };
        let body = serde_json::to_vec(&Problem {
            kind: &format!("https://auditlog.dev/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: &detail,
            errors,
        })
        .unwrap_or_default();
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            ApiError::Unavailable(_) => {
                h.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
            }
            ApiError::Unauthorized => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Internal(cause) => {
                res.extensions_mut().insert(InternalCause(cause));
            }
            _ => {}
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 12): a store failure was logged where it became an
    /// `ApiError` and again when it was rendered. Now it is logged by
    /// nobody on the way: the cause, with its whole chain, rides on the
    /// response for the request log, and the client sees none of it.
    #[test]
    fn an_internal_error_carries_its_cause_chain_to_the_log_not_the_client() {
        let io = std::io::Error::other("disk on fire");
        let store = StoreError::with_source(StoreErrorKind::Internal, "commit failed", io);
        let err = ApiError::from(store);
        let res = err.into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let cause = res.extensions().get::<InternalCause>().expect("the cause");
        assert_eq!(cause.0, "commit failed: disk on fire");
        // Only user errors say more than "internal error".
        let bad = ApiError::BadRequest("x".into()).into_response();
        assert!(bad.extensions().get::<InternalCause>().is_none());
    }

    #[tokio::test]
    async fn an_internal_error_says_only_internal_error() {
        let res = ApiError::Internal("secret detail".into()).into_response();
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("\"detail\":\"internal error\""), "{body}");
        assert!(!body.contains("secret detail"), "{body}");
    }
}
