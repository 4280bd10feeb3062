//! Ingest: one event or a batch (JSON or NDJSON), validated against the
//! catalog, all or nothing, acknowledged once durable.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::OwnedSemaphorePermit;

use auditlog_core::catalog::Catalog;
use auditlog_core::record::Micros;
use auditlog_core::redact::Redactor;
use auditlog_core::validate::{
    IngestContext, MAX_BATCH_EVENTS, Problems, ValidEvent, validate_body,
};
use auditlog_core::wire::{Batch, Body as EventItem, is_too_many};

use crate::auth::{Caller, Needed};
use crate::error::{ApiError, ApiResult};
use crate::request::too_large;
use crate::state::{AppState, MAX_BODY_BYTES, Peer, request_client_ip};

/// What validation needs from a request, without the borrowed key (so it
/// can move to a blocking thread).
struct Context {
    now: Micros,
    client_ip: Option<std::net::IpAddr>,
    redactor: Arc<Redactor>,
}

impl Context {
    fn ingest(&self) -> IngestContext<'_> {
        IngestContext {
            now: self.now,
            client_ip: self.client_ip,
            redactor: &self.redactor,
        }
    }
}

fn context(state: &AppState, headers: &HeaderMap, peer: Option<Peer>) -> Context {
    Context {
        now: Micros::from_timestamp(state.now()),
        client_ip: request_client_ip(
            peer.as_ref(),
            headers.get_all("x-forwarded-for"),
            &state.trusted_proxies,
        ),
        redactor: state.keys.redactor.clone(),
    }
}

/// Bodies up to this size are read and parsed on the async worker that
/// received them, without waiting for anything: a single event is a few
/// hundred bytes, and a batch of 100 typical events is ~60 KiB.
pub const LARGE_BODY_BYTES: u64 = 64 * 1024;
/// How long a large body waits for a permit (see
/// [`crate::state::DEFAULT_LARGE_BODIES`]) before the request is answered `503`.
const LARGE_BODY_WAIT: Duration = Duration::from_secs(10);

/// A request body read whole, with the permit that was needed to read it
/// when it is large.
struct ReadBody {
    bytes: Bytes,
    /// Held until the body has been parsed and validated.
    permit: Option<OwnedSemaphorePermit>,
}

/// Reads the body, or answers with a problem document when it is over the
/// limit or unreadable. A body that may be large (its `Content-Length` says
/// so, or it has none) first takes one of the large-body permits: memory
/// spent on bodies and their parse is bounded by the number of permits,
/// not by the number of clients sending 10 MiB at once.
async fn read_ingest_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<ReadBody> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let permit = if declared.is_some_and(|n| n <= LARGE_BODY_BYTES) {
        None
    } else {
        let wait = state.large_bodies.clone().acquire_owned();
        match tokio::time::timeout(LARGE_BODY_WAIT, wait).await {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                return Err(ApiError::Unavailable(
                    "too many large bodies are being ingested at once; retry shortly".into(),
                ));
            }
        }
    };
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            // The limit is the only error of ours; the rest is the client's
            // connection failing mid-body.
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            {
                too_large()
            } else {
                ApiError::BadRequest(format!("the body could not be read: {e}"))
            }
        })?;
    Ok(ReadBody { bytes, permit })
}

/// Runs `work` on the async worker for a small body, as blocking work for a
/// large one (parsing 10 MiB takes tens of milliseconds: long enough to
/// stall every other request the worker holds).
///
/// On the multi-threaded runtime (the server's) that is `block_in_place`:
/// the worker hands its other tasks to another thread and parses here, so
/// the events are allocated on the thread that goes on to drop them. With
/// `spawn_blocking` they were allocated on a pool thread and freed on a
/// worker, and mimalloc's cross-thread frees cost ~4 % of batch ingest's
/// CPU (medians of six alternated `perf` runs, decision 0006's addendum).
/// How many parse at once is bounded by the large-body permits either way.
async fn parse_off_async<T: Send + 'static>(
    body: ReadBody,
    work: impl FnOnce(Bytes) -> T + Send + 'static,
) -> ApiResult<T> {
    match body.permit {
        None => Ok(work(body.bytes)),
        Some(permit) => {
            let bytes = body.bytes;
            if tokio::runtime::Handle::current().runtime_flavor()
                == tokio::runtime::RuntimeFlavor::MultiThread
            {
                let out = tokio::task::block_in_place(|| work(bytes));
                drop(permit);
                return Ok(out);
            }
            tokio::task::spawn_blocking(move || {
                let out = work(bytes);
                drop(permit);
                out
            })
            .await
            .map_err(|e| ApiError::Internal(format!("ingest parse task failed: {e}")))
        }
    }
}

/// What a JSON parse error means for the client: syntax is "not valid
/// JSON", a shape error says what the shape is.
fn json_error(what: &str, e: &serde_json::Error) -> ApiError {
    if e.is_data() {
        ApiError::BadRequest(format!("{what}: {e}"))
    } else {
        ApiError::BadRequest(format!("{what} is not valid JSON: {e}"))
    }
}

fn invalid(problems: Problems) -> ApiError {
    let n = problems.total();
    ApiError::Invalid {
        detail: format!(
            "{n} problem{} with the event data; see `errors`",
            if n == 1 { "" } else { "s" }
        ),
        errors: problems.into_list(),
    }
}

/// `POST /v1/accounts/{account}/events`
#[utoipa::path(post, path = "/v1/accounts/{account}/events", params(("account" = String, Path, description = "Account id")), request_body = crate::schema::IngestEvent,
    responses((status = 201, description = "Stored durably", body = crate::schema::EventRecord), (status = 200, description = "Idempotent replay: the first record", body = crate::schema::EventRecord), (status = 422, description = "Breaks a catalog rule or a limit", body = crate::schema::Problem)))]
pub async fn ingest_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Ingest)?;
    let body = read_ingest_body(&state, &headers, body).await?;
    let ctx = context(&state, &headers, peer.map(|p| p.0));
    let event = parse_off_async(body, move |bytes| {
        let item = serde_json::from_slice::<EventItem<'_>>(&bytes)
            .map_err(|e| json_error("the body", &e))?;
        let mut problems = Problems::new();
        validate_body(Catalog::get(), item, "", &ctx.ingest(), &mut problems)
            .ok_or_else(|| invalid(problems))
    })
    .await??;
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
#[utoipa::path(post, path = "/v1/accounts/{account}/events/batch", params(("account" = String, Path, description = "Account id")), request_body(content = crate::schema::IngestBatch, description = "JSON {events: [...]} or NDJSON (application/x-ndjson)"),
    responses((status = 201, description = "All stored durably: {records: [{id, seq}]}"), (status = 413, description = "Over 10 MiB or 10,000 events", body = crate::schema::Problem), (status = 422, description = "Nothing stored", body = crate::schema::Problem)))]
pub async fn ingest_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Ingest)?;
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
    let ndjson = match mime.as_str() {
        "application/x-ndjson" | "application/jsonl" | "application/json-seq" => true,
        "application/json" | "" => false,
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content type `{}` is not accepted; send application/json ({{\"events\": [...]}}) or application/x-ndjson (one event per line)",
                auditlog_core::validate::quote(other)
            )));
        }
    };
    let body = read_ingest_body(&state, &headers, body).await?;
    let ctx = context(&state, &headers, peer.map(|p| p.0));
    let events = parse_off_async(body, move |bytes| -> ApiResult<Vec<ValidEvent>> {
        let items = if ndjson {
            ndjson_items(&bytes)?
        } else {
            match serde_json::from_slice::<Batch<'_>>(&bytes) {
                Ok(batch) => batch.events,
                Err(e) if is_too_many(&e) => return Err(too_many()),
                Err(e) => return Err(json_error("the body", &e)),
            }
        };
        if items.is_empty() {
            let mut problems = Problems::new();
            problems.push(auditlog_core::validate::FieldError {
                path: "events".into(),
                message: "a batch needs at least one event".into(),
            });
            return Err(invalid(problems));
        }
        let catalog = Catalog::get();
        let ctx = ctx.ingest();
        let mut problems = Problems::new();
        let mut events: Vec<ValidEvent> = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            if let Some(e) =
                validate_body(catalog, item, &format!("events[{i}]"), &ctx, &mut problems)
            {
                events.push(e);
            }
        }
        if !problems.is_empty() {
            // All or nothing: one bad event rejects the batch.
            return Err(invalid(problems));
        }
        Ok(events)
    })
    .await??;
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

/// The items of an NDJSON body, one per non-blank line, counted as they
/// are read (the item past [`MAX_BATCH_EVENTS`] stops the parse).
fn ndjson_items(bytes: &[u8]) -> ApiResult<Vec<EventItem<'_>>> {
    let mut items = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if items.len() == MAX_BATCH_EVENTS {
            return Err(too_many());
        }
        let item =
            serde_json::from_slice(line).map_err(|e| json_error(&format!("line {}", i + 1), &e))?;
        items.push(item);
    }
    Ok(items)
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

fn too_many() -> ApiError {
    ApiError::TooLarge(format!(
        "a batch holds at most {MAX_BATCH_EVENTS} events; split it"
    ))
}
