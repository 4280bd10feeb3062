//! Reading the log: catalog, list, count, histogram, one record, export and
//! value suggestions, for an account and for a workflow's own view.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use auditlog_core::catalog::{Catalog, Level};
use auditlog_core::export::{ACCOUNT_CSV_FILE, CsvEncoder, WORKFLOW_CSV_FILE, push_jsonl};
use auditlog_core::index::{RowKey, TimeBounds};
use auditlog_core::query::{
    Cursor, ExportFormat, Query, ResolvedRange, bucket_bounds, parse_query,
};
use auditlog_core::record::{AccountId, Actor, ActorKind, Micros, Record};
use auditlog_core::validate::{MAX_FUTURE_MICROS, ValidEvent};
use auditlog_store::{RawRecord, Scope, Selection, StoreError, StoreErrorKind};

use crate::AppState;
use crate::auth::{Caller, Needed};
use crate::error::{ApiError, ApiResult};

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

/// The URL query's pairs, decoded as `application/x-www-form-urlencoded`
/// but strictly: `form_urlencoded::parse` replaces bytes that are not UTF-8
/// with U+FFFD, which would turn a garbled filter value into one that
/// silently matches nothing. Invalid UTF-8 is a 400 (PRODUCT.md §3).
pub(crate) fn query_pairs(raw: Option<String>) -> ApiResult<Vec<(String, String)>> {
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

/// A parsed, resolved request: what every read endpoint needs.
struct Prepared {
    account: AccountId,
    query: Query,
    range: ResolvedRange,
    sel: Selection,
    scope_key: String,
}

fn prepare(
    state: &AppState,
    caller: &Caller,
    account: &str,
    workflow: Option<String>,
    raw: Option<String>,
) -> ApiResult<Prepared> {
    let account = caller.authorize(account, Needed::Read)?;
    let pairs = query_pairs(raw)?;
    let query = parse_query(&pairs)?;
    let range = query.range.resolve(state.now())?;
    let bounds = TimeBounds {
        start: range.start.map(|t| Micros::from_timestamp(t).0),
        end: range.end.map(|t| Micros::from_timestamp(t).0),
    };
    let (scope, scope_key) = match workflow {
        Some(w) => (Scope::Workflow(w.clone()), format!("workflow:{w}")),
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
        .decode_cursor(&state.keys.cursor_key, p.account.as_str(), &p.scope_key)?
        .map(|c| RowKey {
            occurred_at_us: c.occurred_at_us,
            seq: c.seq,
        });
    let page = state
        .store
        .list(&p.account, &p.sel, after, p.query.limit as usize)
        .await?;
    let next_cursor = page.next.map(|k| {
        p.query.encode_cursor(
            &state.keys.cursor_key,
            Cursor {
                occurred_at_us: k.occurred_at_us,
                seq: k.seq,
            },
            p.account.as_str(),
            &p.scope_key,
        )
    });
    // Records are spliced in as their stored JSON, not re-serialized.
    let mut out = Vec::with_capacity(page.records.len() * 600 + 200);
    out.extend_from_slice(b"{\"events\":[");
    for (i, r) in page.records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&r.to_json_bytes());
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

/// Streams the export, then records an "Audit logs exported" event.
async fn do_export(
    state: AppState,
    caller: Caller,
    p: Prepared,
    workflow: bool,
) -> ApiResult<Response> {
    let format = p.query.format;
    let tz = p.query.range.tz.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let mut csv = matches!(format, ExportFormat::Csv).then(|| CsvEncoder::new(tz));
    if let Some(enc) = csv.as_mut() {
        let _ = tx.send(Ok(Bytes::from(enc.take()))).await;
    }
    // Two stages on two threads: the store reads batches of records, an
    // encoder turns them into CSV or JSONL. Both channels are bounded: a
    // slow client slows the reader instead of growing memory.
    let (raw_tx, mut raw_rx) = tokio::sync::mpsc::channel::<Vec<RawRecord>>(2);
    let body_tx = tx.clone();
    let encoder = tokio::task::spawn_blocking(move || -> Result<(), String> {
        while let Some(batch) = raw_rx.blocking_recv() {
            let mut buf = Vec::with_capacity(batch.len() * 400);
            match csv.as_mut() {
                Some(enc) => {
                    for r in &batch {
                        std::str::from_utf8(&r.canonical)
                            .map_err(|e| e.to_string())
                            .and_then(|c| enc.push_canonical(c).map_err(|e| e.to_string()))
                            .map_err(|e| {
                                format!("stored record seq {} does not parse: {e}", r.seq)
                            })?;
                    }
                    buf = enc.take();
                }
                None => {
                    for r in &batch {
                        // Only UTF-8 leaves, as the CSV (the reader does
                        // not check).
                        std::str::from_utf8(&r.canonical).map_err(|e| {
                            format!("stored record seq {} is not UTF-8: {e}", r.seq)
                        })?;
                        push_jsonl(&r.canonical, &r.leaf_hash, &mut buf);
                    }
                }
            }
            body_tx
                .blocking_send(Ok(Bytes::from(buf)))
                .map_err(|_| "export client went away".to_owned())?;
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
    let filters_wire: Vec<String> = p.query.filters.iter().map(|f| f.to_wire()).collect();
    let range_echo = p.range.to_json_echo(&p.query.range).to_string();
    let join = match p.query.join {
        auditlog_core::query::Join::And => "and",
        auditlog_core::query::Join::Or => "or",
    };
    let format_name = match format {
        ExportFormat::Csv => "csv",
        ExportFormat::Jsonl => "jsonl",
    };
    let st = state.clone();
    tokio::spawn(async move {
        // The export is complete when the encoder has handed over its last
        // bytes, not when the reader is done.
        let read = st.store.export(&account, &sel, sink).await;
        let encoded = encoder
            .await
            .unwrap_or_else(|e| Err(format!("export encoder failed: {e}")));
        let outcome = match (read, encoded) {
            (Ok(rows), Ok(())) => Ok(rows),
            (Err(e), _) => Err(e.to_string()),
            (Ok(_), Err(e)) => Err(e),
        };
        match outcome {
            Ok(rows) => {
                metrics::counter!("auditlog_export_rows_total").increment(rows);
                let event = export_event(
                    &st,
                    &caller,
                    format_name,
                    &range_echo,
                    &filters_wire,
                    join,
                    rows,
                );
                if let Err(e) = st.store.append(&account, vec![event]).await {
                    tracing::error!(account = %account, error = %e, "could not record the export");
                }
            }
            Err(e) => {
                tracing::warn!(account = %account, error = %e, "export stopped");
                let _ = tx.send(Err(std::io::Error::other(e))).await;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let (ctype, file) = match (format, workflow) {
        (ExportFormat::Csv, false) => ("text/csv; charset=utf-8", ACCOUNT_CSV_FILE.to_owned()),
        (ExportFormat::Csv, true) => ("text/csv; charset=utf-8", WORKFLOW_CSV_FILE.to_owned()),
        (ExportFormat::Jsonl, false) => (
            "application/x-ndjson",
            "Account_Audit_Logs.jsonl".to_owned(),
        ),
        (ExportFormat::Jsonl, true) => (
            "application/x-ndjson",
            "Workflow_Audit_Logs.jsonl".to_owned(),
        ),
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

fn export_event(
    state: &AppState,
    caller: &Caller,
    format: &str,
    range: &str,
    filters: &[String],
    join: &str,
    rows: u64,
) -> ValidEvent {
    let catalog = Catalog::get();
    let id = catalog
        .find(Level::Account, "Audit Logs", "Audit logs exported")
        .expect("the catalog has the export event");
    let filters = if filters.is_empty() {
        String::new()
    } else {
        filters.join(&format!(" {} ", join.to_uppercase()))
    };
    let metadata: BTreeMap<String, Value> = BTreeMap::from([
        ("token_id".to_owned(), json!(caller.token.id)),
        ("format".to_owned(), json!(format)),
        ("range".to_owned(), json!(range)),
        ("filters".to_owned(), json!(filters)),
        ("row_count".to_owned(), json!(rows)),
    ]);
    let description = format!(
        "Exported {rows} audit log entr{} as {} with token {}",
        if rows == 1 { "y" } else { "ies" },
        format.to_uppercase(),
        caller.token.id
    );
    ValidEvent {
        event_id: id,
        level: Level::Account,
        category: "Audit Logs".into(),
        event: "Audit logs exported".into(),
        occurred_at: Micros::from_timestamp(state.now()),
        actor: Actor {
            kind: ActorKind::App,
            id: caller.token.id.clone(),
            name: None,
            email: None,
        },
        ip_address: None,
        workflow_id: None,
        description,
        metadata,
        idempotency_key: None,
        defaulted: Default::default(),
    }
}

/// The path of a view: an account, and for a workflow's own view the
/// workflow (one handler serves both routes).
#[derive(serde::Deserialize)]
pub struct ViewPath {
    account: String,
    workflow: Option<String>,
}

#[utoipa::path(get, path = "/v1/accounts/{account}/events",
    params(("account" = String, Path, description = "Account id"), crate::openapi::ViewParams,
        ("limit" = Option<u32>, Query, description = "1–1000, default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "Newest first; `/v1/accounts/{account}/workflows/{workflow}/events` (and its /count, /histogram, /export) is the same for one workflow's workflow-level events", body = crate::openapi::EventList),
        (status = 400, description = "A bad parameter", body = crate::openapi::Problem)))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(path): Path<ViewPath>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let p = prepare(&st, &caller, &path.account, path.workflow, q)?;
    do_list(st, p).await
}

#[utoipa::path(get, path = "/v1/accounts/{account}/events/count",
    params(("account" = String, Path, description = "Account id"), crate::openapi::ViewParams),
    responses((status = 200, description = "Exact count", body = crate::openapi::Count)))]
pub async fn count(
    State(st): State<AppState>,
    caller: Caller,
    Path(path): Path<ViewPath>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let p = prepare(&st, &caller, &path.account, path.workflow, q)?;
    do_count(st, p).await
}

#[utoipa::path(get, path = "/v1/accounts/{account}/events/histogram",
    params(("account" = String, Path, description = "Account id"), crate::openapi::ViewParams,
        ("bucket" = Option<String>, Query, description = "hour, day or auto")),
    responses((status = 200, description = "Buckets ascending, aligned to the viewer's zone", body = crate::openapi::Histogram)))]
pub async fn histogram(
    State(st): State<AppState>,
    caller: Caller,
    Path(path): Path<ViewPath>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let p = prepare(&st, &caller, &path.account, path.workflow, q)?;
    do_histogram(st, p).await
}

#[utoipa::path(get, path = "/v1/accounts/{account}/events/export",
    params(("account" = String, Path, description = "Account id"), crate::openapi::ViewParams,
        ("format" = Option<String>, Query, description = "csv (default) or jsonl")),
    responses((status = 200, description = "Streamed Account_Audit_Logs.csv (Workflow_Audit_Logs.csv for a workflow), or JSONL records")))]
pub async fn export(
    State(st): State<AppState>,
    caller: Caller,
    Path(path): Path<ViewPath>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let workflow = path.workflow.is_some();
    let p = prepare(&st, &caller, &path.account, path.workflow, q)?;
    do_export(st, caller, p, workflow).await
}

/// `GET /v1/accounts/{account}/events/{id}`
#[utoipa::path(get, path = "/v1/accounts/{account}/events/{id}", params(("account" = String, Path, description = "Account id"), ("id" = String, Path, description = "Event id")),
    responses((status = 200, description = "One record", body = crate::openapi::EventRecord), (status = 404, description = "No such event", body = crate::openapi::Problem)))]
pub async fn get_one(
    State(st): State<AppState>,
    caller: Caller,
    Path((account, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Read)?;
    let record = record_or_404(&st, &account, &id).await?;
    Ok(json_response(StatusCode::OK, record.to_json_bytes()))
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

/// `GET /v1/accounts/{account}/suggestions?column=user&q=…`: values seen in
/// the log, for the filter dialog.
#[utoipa::path(get, path = "/v1/accounts/{account}/suggestions", params(("account" = String, Path, description = "Account id"), ("column" = String, Query, description = "user"), ("q" = Option<String>, Query, description = "substring")),
    responses((status = 200, description = "{values: [...]}: user names seen in the log")))]
pub async fn suggestions(
    State(st): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Read)?;
    let mut column = None;
    let mut needle = String::new();
    for (k, v) in query_pairs(q)? {
        match k.as_str() {
            "column" => column = Some(v),
            "q" => needle = v,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter `{other}`; accepted: column, q"
                )));
            }
        }
    }
    let values = match column.as_deref() {
        Some("user") => st.store.user_names(&account, &needle, 20).await?,
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
    Ok(axum::Json(json!({ "values": values })).into_response())
}
