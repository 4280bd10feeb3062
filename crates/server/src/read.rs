//! Reading the log: catalog, list, count, histogram, one record, export and
//! value suggestions, for an account and for a workflow's own view.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use auditlog_core::catalog::Catalog;
use auditlog_core::export::{
    ACCOUNT_CSV_FILE, ACCOUNT_JSONL_FILE, CsvEncoder, ExportEnd, ExportSummary, WORKFLOW_CSV_FILE,
    WORKFLOW_JSONL_FILE, export_event, push_jsonl,
};
use auditlog_core::index::TimeBounds;
use auditlog_core::query::{ExportFormat, Query, ResolvedRange, bucket_bounds, parse_query};
use auditlog_core::record::{AccountId, Micros, WorkflowId};
use auditlog_core::validate::MAX_FUTURE_MICROS;
use auditlog_store::{
    CancelOnDrop, QueryControl, RawRecord, Scope, Selection, StoreError, StoreErrorKind,
};

use crate::auth::{Caller, Needed};
use crate::error::{ApiError, ApiResult};
use crate::request::{FromQuery, Params, each_known, record_or_404};
use crate::state::AppState;

/// Batches queued between an export's stages (reader → encoder → hyper).
/// Each is 1,000 rows (about 0.8 MB of JSONL of 800-byte records). With 16
/// exports held unread (200k-event account, release build, VmRSS), depths
/// of 2 (raw) and 4 (encoded) cost 21 MB per export, depth 1 16 MB (the
/// rest: the key window, the connection's cache, the threads' allocator
/// heaps); a full 200k-row export took the same time with either (runs
/// alternated on a loaded machine: 0.44–1.03 s against 0.33–0.86 s).
const EXPORT_CHANNEL_DEPTH: usize = 1;
fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /v1/catalog`: the catalog, serialized once.
#[utoipa::path(get, path = "/v1/catalog", responses((status = 200, description = "levels → categories → events → fields {key, label, required, type, and sensitive: true on credentials, stored as fingerprints}")))]
pub async fn catalog(_caller: Caller) -> Response {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    let body = JSON.get_or_init(|| {
        let c = Catalog::get();
        serde_json::to_vec(&json!({ "levels": c.levels })).expect("the catalog serializes")
    });
    json_response(StatusCode::OK, body.clone())
}

/// A parsed, resolved request: what every read endpoint needs.
struct Prepared {
    account: AccountId,
    query: Query,
    range: ResolvedRange,
    sel: Selection,
    scope_key: String,
}

/// The view's query: every parameter of list, count, histogram and export
/// (core's [`parse_query`] refuses unknown ones).
impl FromQuery for Query {
    fn from_pairs(pairs: Vec<(String, String)>) -> ApiResult<Query> {
        Ok(parse_query(&pairs)?)
    }
}

fn prepare(
    state: &AppState,
    caller: &Caller,
    account: &str,
    workflow: Option<String>,
    query: ApiResult<Params<Query>>,
) -> ApiResult<Prepared> {
    let account = caller.authorize(account, Needed::Read)?;
    let Params(query) = query?;
    let range = query.range.resolve(state.now())?;
    let bounds = TimeBounds {
        start: range.start.map(|t| Micros::from_timestamp(t).0),
        end: range.end.map(|t| Micros::from_timestamp(t).0),
    };
    let (scope, scope_key) = match workflow {
        Some(w) => {
            let key = format!("workflow:{w}");
            (Scope::Workflow(WorkflowId::new(w)), key)
        }
        None => (Scope::Account, String::new()),
    };
    // Only a list reads the cursor, but every read endpoint takes the same
    // parameters and checks them alike (as it does `limit`): a cursor not
    // issued for this account and query is a 400 on count, histogram and
    // export too, rather than silently ignored.
    query.decode_cursor(&state.keys.cursor_key, account.as_str(), &scope_key)?;
    let sel = Selection {
        scope,
        bounds,
        filters: query.filters.clone(),
        join: query.join,
        control: QueryControl::new(Some(state.reads.config.query_timeout))
            .with_max_record_reads(Some(state.reads.config.max_record_reads)),
    };
    Ok(Prepared {
        account,
        query,
        range,
        sel,
        scope_key,
    })
}

async fn do_list(state: AppState, p: Prepared) -> ApiResult<Response> {
    let after = p
        .query
        .decode_cursor(&state.keys.cursor_key, p.account.as_str(), &p.scope_key)?;
    let page = state
        .store
        .list(&p.account, &p.sel, after, p.query.limit as usize)
        .await?;
    let next_cursor = page.next.map(|k| {
        p.query
            .encode_cursor(&state.keys.cursor_key, k, p.account.as_str(), &p.scope_key)
    });
    // Records are spliced in as their stored JSON, not re-serialized.
    let mut out = Vec::with_capacity(page.records.len() * 600 + 200);
    out.extend_from_slice(b"{\"events\":[");
    for (i, r) in page.records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        auditlog_core::record::Record::json_from_canonical(&r.canonical, &r.leaf_hash, &mut out);
    }
    out.extend_from_slice(b"],\"next_cursor\":");
    serde_json::to_writer(&mut out, &next_cursor).map_err(|e| ApiError::Internal(e.to_string()))?;
    out.extend_from_slice(b",\"range\":");
    serde_json::to_writer(&mut out, &p.range.to_json_echo(&p.query.range))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    out.push(b'}');
    Ok(json_response(StatusCode::OK, out))
}

async fn do_count(state: AppState, p: Prepared) -> ApiResult<Response> {
    let count = state.store.count(&p.account, &p.sel).await?;
    Ok(axum::Json(json!({ "count": count })).into_response())
}

async fn do_histogram(state: AppState, p: Prepared) -> ApiResult<Response> {
    // All time starts at the account's first event; an empty log has no
    // buckets.
    let start = match p.range.start {
        Some(s) => Some(s),
        None => state
            .store
            .first_event_time(&p.account)
            .await?
            .map(|us| Micros(us).to_timestamp()),
    };
    // All time ends with the newest event ingest can hold: one stamped up to
    // `MAX_FUTURE_MICROS` ahead of now (clock skew). Ending at `now` would
    // leave those — and, with a clock that has not moved since, events
    // stamped exactly now — listed and counted but in no bucket.
    let end = p.range.end.unwrap_or_else(|| {
        let horizon = Micros::from_timestamp(state.now()).0 + MAX_FUTURE_MICROS + 1000;
        Micros(horizon).to_timestamp()
    });
    let bucket = p.query.bucket.resolve(&ResolvedRange {
        start,
        end: Some(end),
    });
    let (edges, counts) = match start {
        Some(start) if start < end => {
            let edges = bucket_bounds(
                start,
                end,
                bucket,
                &p.query.range.tz,
                p.query.range.week_start,
            )?;
            let us: Vec<i64> = edges.iter().map(|t| Micros::from_timestamp(*t).0).collect();
            let counts = state.store.histogram(&p.account, &p.sel, us).await?;
            (edges, counts)
        }
        _ => (Vec::new(), Vec::new()),
    };
    let buckets: Vec<Value> = edges
        .iter()
        .zip(&counts)
        .map(|(start, count)| {
            let offset = p.query.range.tz.to_offset(*start);
            json!({"start": start.display_with_offset(offset).to_string(), "count": count})
        })
        .collect();
    Ok(axum::Json(json!({ "bucket": bucket.as_str(), "buckets": buckets })).into_response())
}

/// Why the export's encoder stopped early.
enum EncodeStop {
    ClientGone,
    SendDeadline,
    Failed(String),
}

/// The response body of an export: the encoded chunks, then the end. It
/// owns the export's cancel guard, so a client that goes away (hyper drops
/// the body) stops the store's walk too; and it ends with an error, not a
/// clean end, unless the export completed, so a client never takes a cut
/// export for a whole one.
struct ExportBody {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    complete: Arc<AtomicBool>,
    failed: bool,
    _cancel: CancelOnDrop,
}

/// Streams the export, then records an "Audit logs exported" event:
/// complete, or partial with the rows that went out and why it stopped.
///
/// Three stages: the store reads batches of records on a blocking thread
/// (each batch in its own short read transaction), an encoder on another
/// turns them into CSV or JSONL, and hyper sends the chunks. All channels
/// are bounded: a slow client slows the reader instead of growing memory.
/// A client that takes nothing for the send timeout is dropped, which
/// stops both threads and frees the export's slot.
async fn do_export(
    state: AppState,
    caller: Caller,
    p: Prepared,
    workflow: bool,
) -> ApiResult<Response> {
    let slot = state.reads.start_export(&caller.token.id)?;
    let send_timeout = state.reads.config.export_send_timeout;
    let format = p.query.format;
    let tz = p.query.range.tz.clone();
    // One encoded batch (~1,000 rows) waits for hyper, one more is being
    // encoded and one raw batch waits for the encoder: enough to keep the
    // three stages busy, and what an unread export holds (with the key
    // window and its connection's cache) — times `max_exports`.
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(EXPORT_CHANNEL_DEPTH);
    let mut csv = matches!(format, ExportFormat::Csv).then(|| CsvEncoder::new(tz));
    if let Some(enc) = csv.as_mut() {
        let _ = tx.send(Ok(Bytes::from(enc.take()))).await;
    }
    let (raw_tx, mut raw_rx) = tokio::sync::mpsc::channel::<Vec<RawRecord>>(EXPORT_CHANNEL_DEPTH);
    let body_tx = tx.clone();
    let sent = Arc::new(AtomicU64::new(0));
    let sent_by_encoder = sent.clone();
    let runtime = tokio::runtime::Handle::current();
    let encoder = tokio::task::spawn_blocking(move || -> Result<(), EncodeStop> {
        while let Some(batch) = raw_rx.blocking_recv() {
            let mut buf = Vec::with_capacity(batch.len() * 400);
            match csv.as_mut() {
                Some(enc) => {
                    for r in &batch {
                        // Checks the UTF-8 of what it prints.
                        enc.push_canonical(&r.canonical).map_err(|e| {
                            EncodeStop::Failed(format!(
                                "stored record seq {} does not parse: {e}",
                                r.seq
                            ))
                        })?;
                    }
                    buf = enc.take();
                }
                None => {
                    for r in &batch {
                        // Only UTF-8 leaves, as the CSV (the reader does
                        // not check).
                        std::str::from_utf8(&r.canonical).map_err(|e| {
                            EncodeStop::Failed(format!(
                                "stored record seq {} is not UTF-8: {e}",
                                r.seq
                            ))
                        })?;
                        push_jsonl(&r.canonical, &r.leaf_hash, &mut buf);
                    }
                }
            }
            // The send deadline: hyper takes a chunk only when the socket
            // takes bytes, so a full channel for this long means the
            // client has read nothing meanwhile.
            let send = tokio::time::timeout(send_timeout, body_tx.send(Ok(Bytes::from(buf))));
            match runtime.block_on(send) {
                Ok(Ok(())) => {
                    sent_by_encoder.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                Ok(Err(_)) => return Err(EncodeStop::ClientGone),
                Err(_) => return Err(EncodeStop::SendDeadline),
            }
        }
        Ok(())
    });
    let sink = Box::new(move |batch: Vec<RawRecord>| -> Result<(), StoreError> {
        raw_tx
            .blocking_send(batch)
            .map_err(|_| StoreError::new(StoreErrorKind::Unavailable, "export encoder stopped"))
    });
    let account = p.account.clone();
    let sel = p.sel.clone();
    let control = p.sel.control.clone();
    let filters_wire: Vec<String> = p.query.filters.iter().map(|f| f.to_wire()).collect();
    let range_echo = p.range.to_json_echo(&p.query.range).to_string();
    let join = p.query.join;
    let complete = Arc::new(AtomicBool::new(false));
    let body_complete = complete.clone();
    let st = state.clone();
    tokio::spawn(async move {
        // The slot is freed when this task ends, whatever the outcome.
        let _slot = slot;
        // The export is complete when the encoder has handed over its last
        // bytes, not when the reader is done.
        let read = st.store.export(&account, &sel, sink).await;
        let encoded = encoder
            .await
            .unwrap_or_else(|e| Err(EncodeStop::Failed(format!("export encoder failed: {e}"))));
        // The encoder's reason first: when it stops, the reader fails too
        // (its sink is closed), which says nothing more.
        let end = match (read, encoded) {
            (_, Err(EncodeStop::ClientGone)) => ExportEnd::ClientGone,
            (_, Err(EncodeStop::SendDeadline)) => ExportEnd::SendDeadline,
            (_, Err(EncodeStop::Failed(e))) => {
                tracing::error!(account = %account, error = %e, "export failed");
                ExportEnd::Failed
            }
            (Err(_), Ok(())) if control.is_cancelled() => ExportEnd::ClientGone,
            (Err(e), Ok(())) => {
                tracing::warn!(account = %account, error = %e, "export stopped");
                ExportEnd::Failed
            }
            (Ok(_), Ok(())) => ExportEnd::Complete,
        };
        if end == ExportEnd::Complete {
            complete.store(true, Ordering::Release);
        } else {
            metrics::counter!("auditlog_exports_partial_total", "reason" => end.as_str())
                .increment(1);
        }
        // Ends the body: cleanly when complete, else with an error.
        drop(tx);
        let rows = sent.load(Ordering::Relaxed);
        metrics::counter!("auditlog_export_rows_total").increment(rows);
        tracing::info!(account = %account, rows, end = end.as_str(), "export ended");
        let event = export_event(
            &ExportSummary {
                token_id: &caller.token.id,
                format: format.as_str(),
                range: &range_echo,
                filters: &filters_wire,
                join,
                rows,
                end,
            },
            Micros::from_timestamp(st.now()),
        );
        if let Err(e) = st.store.append(&account, vec![event]).await {
            tracing::error!(account = %account, error = %e, "could not record the export");
        }
    });
    let body = ExportBody {
        rx,
        complete: body_complete,
        failed: false,
        _cancel: p.sel.control.cancel_on_drop(),
    };
    let stream = futures_util::stream::unfold(body, |mut b| async move {
        match b.rx.recv().await {
            Some(item) => Some((item, b)),
            None if b.complete.load(Ordering::Acquire) || b.failed => None,
            None => {
                b.failed = true;
                let e = std::io::Error::other("the export stopped before its end");
                Some((Err(e), b))
            }
        }
    });
    let (ctype, file) = match (format, workflow) {
        (ExportFormat::Csv, false) => ("text/csv; charset=utf-8", ACCOUNT_CSV_FILE),
        (ExportFormat::Csv, true) => ("text/csv; charset=utf-8", WORKFLOW_CSV_FILE),
        (ExportFormat::Jsonl, false) => ("application/x-ndjson", ACCOUNT_JSONL_FILE),
        (ExportFormat::Jsonl, true) => ("application/x-ndjson", WORKFLOW_JSONL_FILE),
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ctype.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The path of a view: an account, and for a workflow's own view the
/// workflow (one handler serves both routes).
#[derive(serde::Deserialize)]
pub struct ViewPath {
    account: String,
    workflow: Option<String>,
}

#[utoipa::path(get, path = "/v1/accounts/{account}/events",
    params(("account" = String, Path, description = "Account id"), crate::schema::ViewParams,
        ("limit" = Option<u32>, Query, description = "1–1000, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "Newest first; `/v1/accounts/{account}/workflows/{workflow}/events` (and its /count, /histogram, /export) is the same for one workflow's workflow-level events", body = crate::schema::EventList),
        (status = 400, description = "A bad parameter; or (type …/query-too-broad) a description filter that would read more stored events than `--query-max-record-reads`: narrow the time range", body = crate::schema::Problem),
        (status = 503, description = "The query ran past its deadline (`--query-timeout-secs`), or the store is unavailable; see Retry-After", body = crate::schema::Problem)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(path): Path<ViewPath>,
    query: ApiResult<Params<Query>>,
) -> ApiResult<Response> {
    let p = prepare(&st, &caller, &path.account, path.workflow, query)?;
    // Dropped with this future: when the client goes away, the query stops.
    let _cancel = p.sel.control.cancel_on_drop();
    do_list(st, p).await
}

#[utoipa::path(get, path = "/v1/accounts/{account}/events/count",
    params(("account" = String, Path, description = "Account id"), crate::schema::ViewParams),
    responses((status = 200, description = "Exact count", body = crate::schema::Count),
        (status = 400, description = "A bad parameter; or (type …/query-too-broad) a description filter that would read more stored events than `--query-max-record-reads`: narrow the time range", body = crate::schema::Problem),
        (status = 503, description = "The query ran past its deadline (`--query-timeout-secs`), or the store is unavailable; see Retry-After", body = crate::schema::Problem)))]
pub async fn count(
    State(st): State<AppState>,
    caller: Caller,
    Path(path): Path<ViewPath>,
    query: ApiResult<Params<Query>>,
) -> ApiResult<Response> {
    let p = prepare(&st, &caller, &path.account, path.workflow, query)?;
    let _cancel = p.sel.control.cancel_on_drop();
    do_count(st, p).await
}

#[utoipa::path(get, path = "/v1/accounts/{account}/events/histogram",
    params(("account" = String, Path, description = "Account id"), crate::schema::ViewParams,
        ("bucket" = Option<String>, Query, description = "hour, day or auto")),
    responses((status = 200, description = "Buckets ascending, aligned to the viewer's zone", body = crate::schema::Histogram),
        (status = 400, description = "A bad parameter; or (type …/query-too-broad) a description filter that would read more stored events than `--query-max-record-reads`: narrow the time range", body = crate::schema::Problem),
        (status = 503, description = "The query ran past its deadline (`--query-timeout-secs`), or the store is unavailable; see Retry-After", body = crate::schema::Problem)))]
pub async fn histogram(
    State(st): State<AppState>,
    caller: Caller,
    Path(path): Path<ViewPath>,
    query: ApiResult<Params<Query>>,
) -> ApiResult<Response> {
    let p = prepare(&st, &caller, &path.account, path.workflow, query)?;
    let _cancel = p.sel.control.cancel_on_drop();
    do_histogram(st, p).await
}

#[utoipa::path(get, path = "/v1/accounts/{account}/events/export",
    params(("account" = String, Path, description = "Account id"), crate::schema::ViewParams,
        ("format" = Option<String>, Query, description = "csv (default) or jsonl")),
    responses((status = 200, description = "Streamed Account_Audit_Logs.csv (Workflow_Audit_Logs.csv for a workflow), or JSONL records; a body cut short (client too slow past the send deadline, query deadline, error) ends in a transport error, never a clean end"),
        (status = 429, description = "Too many exports running, for this token (`--max-exports-per-token`) or the server (`--max-exports`); see Retry-After", body = crate::schema::Problem)))]
pub async fn export(
    State(st): State<AppState>,
    caller: Caller,
    Path(path): Path<ViewPath>,
    query: ApiResult<Params<Query>>,
) -> ApiResult<Response> {
    let workflow = path.workflow.is_some();
    let p = prepare(&st, &caller, &path.account, path.workflow, query)?;
    do_export(st, caller, p, workflow).await
}

/// `GET /v1/accounts/{account}/events/{id}`
#[utoipa::path(get, path = "/v1/accounts/{account}/events/{id}", params(("account" = String, Path, description = "Account id"), ("id" = String, Path, description = "Event id")),
    responses((status = 200, description = "One record", body = crate::schema::EventRecord), (status = 404, description = "No such event", body = crate::schema::Problem)))]
pub async fn get_one(
    State(st): State<AppState>,
    caller: Caller,
    Path((account, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Read)?;
    let record = record_or_404(&st, &account, &id).await?;
    Ok(json_response(StatusCode::OK, record.to_json_bytes()))
}

/// The columns whose values `suggestions` offers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SuggestColumn {
    /// Actor names.
    User,
}

/// `?column=user&q=…` of `suggestions`.
pub(crate) struct SuggestionsQuery {
    column: SuggestColumn,
    /// The substring the values contain (all values when empty).
    needle: String,
}

impl FromQuery for SuggestionsQuery {
    fn from_pairs(pairs: Vec<(String, String)>) -> ApiResult<SuggestionsQuery> {
        let mut column = None;
        let mut needle = String::new();
        each_known(pairs, &["column", "q"], |i, _, v| {
            match i {
                0 => column = Some(v),
                _ => needle = v,
            }
            Ok(())
        })?;
        let column = match column.as_deref() {
            Some("user") => SuggestColumn::User,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "invalid `column`: `{other}`; accepted: user (event and category names come from /v1/catalog)"
                )));
            }
            None => {
                return Err(ApiError::BadRequest(
                    "`column` is required; accepted: user".into(),
                ));
            }
        };
        Ok(SuggestionsQuery { column, needle })
    }
}

/// `GET /v1/accounts/{account}/suggestions?column=user&q=…`: values seen in
/// the log, for the filter dialog.
#[utoipa::path(get, path = "/v1/accounts/{account}/suggestions", params(("account" = String, Path, description = "Account id"), ("column" = String, Query, description = "user"), ("q" = Option<String>, Query, description = "substring")),
    responses((status = 200, description = "{values: [...]}: user names seen in the log")))]
pub async fn suggestions(
    State(st): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    query: ApiResult<Params<SuggestionsQuery>>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Read)?;
    let Params(q) = query?;
    let values = match q.column {
        SuggestColumn::User => st.store.user_names(&account, &q.needle, 20).await?,
    };
    Ok(axum::Json(json!({ "values": values })).into_response())
}
