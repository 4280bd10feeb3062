//! What handlers read from a request beyond its path and token: small
//! bodies, the URL query (strictly decoded, and through [`Params`] into one
//! typed value per endpoint), and the record a by-id route names.
//!
//! Shared by the handlers so that none borrows from another, and every
//! endpoint answers a bad body, an unknown parameter or an unknown id with
//! the same words.

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::http::request::Parts;

use auditlog_core::record::{AccountId, Record};

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, MAX_BODY_BYTES};

/// The body of a small JSON request (tokens), or a problem document when it
/// is over the limit or unreadable.
pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::BadRequest(format!("the body could not be read: {e}"))
        }
    })
}

/// The answer to a body over [`MAX_BODY_BYTES`].
pub(crate) fn too_large() -> ApiError {
    ApiError::TooLarge(format!(
        "the body is over the limit: at most {MAX_BODY_BYTES} bytes (10 MiB) are accepted"
    ))
}

/// The URL query's pairs, decoded as `application/x-www-form-urlencoded`
/// but strictly: `form_urlencoded::parse` replaces bytes that are not UTF-8
/// with U+FFFD, which would turn a garbled filter value into one that
/// silently matches nothing. Invalid UTF-8 is a 400 (PRODUCT.md §3).
pub(crate) fn query_pairs(raw: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    // `+` is a space, then percent-decoding, then a strict UTF-8 check.
    fn decode(s: &str) -> Option<String> {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    }
    let raw = raw.unwrap_or_default();
    let mut pairs = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match (decode(k), decode(v)) {
            (Some(k), Some(v)) => pairs.push((k, v)),
            _ => {
                return Err(ApiError::BadRequest(
                    "the query string is not UTF-8 once percent-decoded".into(),
                ));
            }
        }
    }
    Ok(pairs)
}

/// A query value of one endpoint, parsed from the decoded pairs (see
/// [`Params`]).
pub(crate) trait FromQuery: Sized {
    fn from_pairs(pairs: Vec<(String, String)>) -> ApiResult<Self>;
}

/// The typed query of an endpoint: the strictly decoded pairs
/// ([`query_pairs`]) parsed by `T`, which refuses an unknown parameter
/// rather than ignoring it (a typo must not read as an absent parameter).
///
/// Handlers take it as `Result<Params<T>, ApiError>` and apply the error
/// after checking the caller's authority over the account: every endpoint
/// answers in the same order (401, then 404 or 403, then 400), and a
/// caller without access learns nothing from how its query is judged.
pub(crate) struct Params<T>(pub T);

impl<S: Send + Sync, T: FromQuery> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> ApiResult<Self> {
        let pairs = query_pairs(parts.uri.query())?;
        T::from_pairs(pairs).map(Params)
    }
}

/// Hands each pair to `take` in order, with the index of its name in
/// `accepted`; a name not in `accepted` is refused with the list. In order,
/// so the first bad pair is the one the error names.
pub(crate) fn each_known(
    pairs: Vec<(String, String)>,
    accepted: &[&str],
    mut take: impl FnMut(usize, String, String) -> ApiResult<()>,
) -> ApiResult<()> {
    for (name, value) in pairs {
        let Some(i) = accepted.iter().position(|a| *a == name) else {
            return Err(ApiError::BadRequest(format!(
                "unknown parameter `{name}`; accepted: {}",
                accepted.join(", ")
            )));
        };
        take(i, name, value)?;
    }
    Ok(())
}

/// One record of the account, or the `404` every by-id route answers.
pub(crate) async fn record_or_404(
    st: &AppState,
    account: &AccountId,
    id: &str,
) -> ApiResult<Record> {
    st.store
        .get(account, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with id `{id}` in this account")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(raw: &str) -> ApiResult<Vec<(String, String)>> {
        query_pairs(Some(raw))
    }

    #[test]
    fn query_pairs_decode_strictly() {
        assert_eq!(
            pairs("a=1&b=x+y%20z&&c").unwrap(),
            [("a", "1"), ("b", "x y z"), ("c", "")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(pairs("a=%FF").is_err());
        assert!(query_pairs(None).unwrap().is_empty());
    }

    #[test]
    fn each_known_names_the_first_bad_pair() {
        let accepted = ["seq", "size"];
        let mut seen = Vec::new();
        each_known(pairs("size=2&seq=1").unwrap(), &accepted, |i, _, v| {
            seen.push((i, v));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(1, "2".to_owned()), (0, "1".to_owned())]);
        let err = each_known(pairs("sequence=1").unwrap(), &accepted, |_, _, _| Ok(()));
        match err {
            Err(ApiError::BadRequest(m)) => {
                assert_eq!(m, "unknown parameter `sequence`; accepted: seq, size")
            }
            other => panic!("{other:?}"),
        }
    }
}
