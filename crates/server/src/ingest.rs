//! Ingest: one event or a batch (JSON or NDJSON), validated against the
//! catalog, all or nothing, acknowledged once durable.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use auditlog_core::catalog::Catalog;
use auditlog_core::record::Micros;
use auditlog_core::validate::{IngestContext, MAX_BATCH_EVENTS, ValidEvent, validate_body};
use auditlog_core::wire::{Batch, Body};

use crate::auth::{Caller, Needed};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, MAX_BODY_BYTES, Peer, client_ip};

fn context(state: &AppState, headers: &HeaderMap, peer: Option<Peer>) -> IngestContext {
    // Several X-Forwarded-For lines are one comma-separated list (RFC 9110
    // §5.3): a proxy may append its own line instead of extending the
    // client's, and the client's line comes first, so reading only the
    // first line would take the client's word. A line that is not text
    // becomes a garbled hop, where the walk from the right stops.
    let lines: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("?"))
        .collect();
    let forwarded = (!lines.is_empty()).then(|| lines.join(","));
    IngestContext {
        now: Micros::from_timestamp(state.now()),
        client_ip: client_ip(
            peer.map(|p| p.0.ip()),
            forwarded.as_deref(),
            &state.trusted_proxies,
        ),
    }
}

/// The body, or a problem document when it is over the limit or unreadable.
pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "the body is over the limit: at most {MAX_BODY_BYTES} bytes (10 MiB) are accepted"
            ))
        } else {
            ApiError::BadRequest(format!("the body could not be read: {e}"))
        }
    })
}

fn parse_json(bytes: &[u8], what: &str) -> ApiResult<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("{what} is not valid JSON: {e}")))
}

/// One event item read straight from its bytes; when they are not JSON,
/// the `Value` parser's own message says where.
fn parse_item<'a>(bytes: &'a [u8], what: &str) -> ApiResult<Body<'a>> {
    match serde_json::from_slice(bytes) {
        Ok(body) => Ok(body),
        Err(_) => parse_json(bytes, what).map(Body::from_value),
    }
}

fn invalid(errors: Vec<auditlog_core::validate::FieldError>) -> ApiError {
    let n = errors.len();
    ApiError::Invalid {
        detail: format!(
            "{n} problem{} with the event data; see `errors`",
            if n == 1 { "" } else { "s" }
        ),
        errors,
    }
}

/// `POST /v1/accounts/{account}/events`
#[utoipa::path(post, path = "/v1/accounts/{account}/events", params(("account" = String, Path, description = "Account id")), request_body = crate::openapi::IngestEvent,
    responses((status = 201, description = "Stored durably", body = crate::openapi::EventRecord), (status = 200, description = "Idempotent replay: the first record", body = crate::openapi::EventRecord), (status = 422, description = "Breaks a catalog rule or a limit", body = crate::openapi::Problem)))]
pub async fn ingest_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Ingest)?;
    let body = read_body(body)?;
    let item = parse_item(&body, "the body")?;
    let ctx = context(&state, &headers, peer.map(|p| p.0));
    let mut errors = Vec::new();
    let Some(event) = validate_body(Catalog::get(), item, "", &ctx, &mut errors) else {
        return Err(invalid(errors));
    };
    let mut appended = state.store.append(&account, vec![event]).await?;
    let a = appended
        .pop()
        .ok_or_else(|| ApiError::Internal("append returned nothing".into()))?;
    metrics::counter!("auditlog_events_ingested_total").increment(u64::from(a.created));
    let status = if a.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        [(header::CONTENT_TYPE, "application/json")],
        a.record.to_json_bytes(),
    )
        .into_response())
}

/// `POST /v1/accounts/{account}/events/batch`
#[utoipa::path(post, path = "/v1/accounts/{account}/events/batch", params(("account" = String, Path, description = "Account id")), request_body(content = crate::openapi::IngestBatch, description = "JSON {events: [...]} or NDJSON (application/x-ndjson)"),
    responses((status = 201, description = "All stored durably: {records: [{id, seq}]}"), (status = 413, description = "Over 10 MiB or 10,000 events", body = crate::openapi::Problem), (status = 422, description = "Nothing stored", body = crate::openapi::Problem)))]
pub async fn ingest_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Ingest)?;
    let body = read_body(body)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let items: Vec<Body<'_>> = match mime.as_str() {
        "application/x-ndjson" | "application/jsonl" | "application/json-seq" => {
            let mut items = Vec::new();
            for (i, line) in body.split(|b| *b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if items.len() == MAX_BATCH_EVENTS {
                    return Err(too_many());
                }
                items.push(parse_item(line, &format!("line {}", i + 1))?);
            }
            items
        }
        "application/json" | "" => match serde_json::from_slice::<Batch<'_>>(&body) {
            Ok(batch) => batch.events,
            // Not the usual shape: parsed again as a `Value`, to say what
            // is wrong (or, should it be fine after all, to go on with it).
            Err(_) => batch_from_value(parse_json(&body, "the body")?)?,
        },
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content type `{other}` is not accepted; send application/json ({{\"events\": [...]}}) or application/x-ndjson (one event per line)"
            )));
        }
    };
    if items.is_empty() {
        return Err(invalid(vec![auditlog_core::validate::FieldError {
            path: "events".into(),
            message: "a batch needs at least one event".into(),
        }]));
    }
    if items.len() > MAX_BATCH_EVENTS {
        return Err(too_many());
    }
    let ctx = context(&state, &headers, peer.map(|p| p.0));
    let catalog = Catalog::get();
    let mut errors = Vec::new();
    let mut events: Vec<ValidEvent> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        if let Some(e) = validate_body(catalog, item, &format!("events[{i}]"), &ctx, &mut errors) {
            events.push(e);
        }
    }
    if !errors.is_empty() {
        // All or nothing: one bad event rejects the batch.
        return Err(invalid(errors));
    }
    let appended = state.store.append(&account, events).await?;
    let created = appended.iter().filter(|a| a.created).count() as u64;
    metrics::counter!("auditlog_events_ingested_total").increment(created);
    let records: Vec<Ack<'_>> = appended
        .iter()
        .map(|a| Ack {
            id: &a.record.body.id,
            seq: a.record.body.seq,
        })
        .collect();
    Ok((StatusCode::CREATED, Json(Acks { records })).into_response())
}

/// The batch answer, `{"records": [{"id", "seq"}, …]}`, serialized straight
/// from the records (no intermediate `Value`).
#[derive(serde::Serialize)]
struct Acks<'a> {
    records: Vec<Ack<'a>>,
}

#[derive(serde::Serialize)]
struct Ack<'a> {
    id: &'a str,
    seq: u64,
}

/// The events of a batch body parsed as a `Value`, or what is wrong with
/// its shape.
fn batch_from_value(mut value: Value) -> ApiResult<Vec<Body<'static>>> {
    let Some(obj) = value.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "the body must be an object {\"events\": [...]}".into(),
        ));
    };
    if let Some(k) = obj.keys().find(|k| *k != "events") {
        return Err(ApiError::BadRequest(format!(
            "unknown field `{k}` in the batch; the body is {{\"events\": [...]}}"
        )));
    }
    match obj.remove("events") {
        Some(Value::Array(items)) => Ok(items.into_iter().map(Body::from_value).collect()),
        _ => Err(ApiError::BadRequest(
            "`events` must be an array of events".into(),
        )),
    }
}

fn too_many() -> ApiError {
    ApiError::TooLarge(format!(
        "a batch holds at most {MAX_BATCH_EVENTS} events; split it"
    ))
}
