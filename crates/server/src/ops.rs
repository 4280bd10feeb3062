//! Operations endpoints (health, readiness, metrics, OpenAPI), the request
//! metrics middleware and the 404 fallback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::AuthNote;
use crate::error::{ApiError, InternalCause};
use crate::state::{AppState, Peer, request_client_ip};

/// Installs the global Prometheus recorder; call once per process.
pub fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                "auditlog_http_request_duration_seconds".into(),
            ),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ],
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("auditlog_commit_batch_events".into()),
                &[
                    1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 20000.0,
                ],
            )
        })
        .ok()?
        .install_recorder()
        .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
        .ok()?;
    Some(handle)
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// How long `/readyz` and `/metrics` wait for the store before they
/// answer without it: a database that hangs (its storage stalled, its
/// process frozen) must not hang the probes too. Readiness is outside the
/// request timeout (probes answer even when the server sheds load), so
/// this is its only bound; it matches the database backend's connect
/// timeout, within which an unreachable database is already reported.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /readyz`: the store answers, within [`STORE_PROBE_TIMEOUT`].
pub async fn readyz(State(st): State<AppState>) -> Response {
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, st.store.ready()).await {
        Ok(Ok(())) => "ready\n".into_response(),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(_) => {
            tracing::warn!("the store did not answer the readiness check");
            ApiError::Unavailable(format!(
                "the store did not answer within {} s",
                STORE_PROBE_TIMEOUT.as_secs()
            ))
            .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text format (without the store's size if
/// the store does not tell it within [`STORE_PROBE_TIMEOUT`]).
pub async fn metrics(State(st): State<AppState>) -> Response {
    if let Ok(Ok(bytes)) = tokio::time::timeout(STORE_PROBE_TIMEOUT, st.store.size_bytes()).await {
        metrics::gauge!("auditlog_store_size_bytes").set(bytes as f64);
    }
    if let Some(c) = st.store.index_cache_stats() {
        metrics::counter!("auditlog_index_cache_hits_total").absolute(c.hits);
        metrics::counter!("auditlog_index_cache_misses_total").absolute(c.misses);
        metrics::counter!("auditlog_index_cache_loads_total").absolute(c.loads);
        metrics::counter!("auditlog_index_cache_evictions_total").absolute(c.evictions);
        metrics::gauge!("auditlog_index_cache_bytes").set(c.bytes as f64);
        metrics::gauge!("auditlog_index_cache_budget_bytes").set(c.budget as f64);
    }
    if let Some(o) = st.store.open_account_stats() {
        metrics::gauge!("auditlog_accounts_open").set(o.open as f64);
        metrics::gauge!("auditlog_accounts_open_bytes").set(o.bytes as f64);
        metrics::gauge!("auditlog_accounts_open_budget_bytes").set(o.budget as f64);
        metrics::counter!("auditlog_accounts_evicted_total").absolute(o.evictions);
    }
    let body = st.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `GET /openapi.json`
pub async fn openapi() -> Response {
    let doc = crate::openapi::document();
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see /openapi.json".into())
}

/// The `method` label of a request: the standard methods by name, anything
/// else as `other`. A client can send any token as a method, and a label
/// taking raw values would grow `/metrics` (and the recorder's memory) with
/// each invented one.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The security-event kind of a status, if it is one.
fn security_kind(status: StatusCode) -> Option<&'static str> {
    match status {
        StatusCode::UNAUTHORIZED => Some("unauthorized"),
        StatusCode::FORBIDDEN => Some("forbidden"),
        StatusCode::TOO_MANY_REQUESTS => Some("rate_limited"),
        _ => None,
    }
}

/// Counts and times every request by route and status, logs and counts
/// security events (every `401`, `403` and `429`), and sets the headers
/// every response carries.
///
/// Every label is bounded: `method` by [`method_label`], `route` by the
/// router's own patterns (`unmatched` otherwise), `status` by HTTP, `kind`
/// by [`security_kind`].
pub async fn observe(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let note = Arc::new(AuthNote::default());
    req.extensions_mut().insert(Arc::clone(&note));
    // Kept for the security log (cheap: a copy and, behind a proxy, a few
    // shared byte strings).
    let peer = req.extensions().get::<Peer>().copied();
    let forwarded: Vec<HeaderValue> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .cloned()
        .collect();
    let mut res = next.run(req).await;
    let status = res.status();
    let elapsed = start.elapsed().as_secs_f64();
    let labels = [
        ("method", method.to_owned()),
        ("route", route.clone()),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("auditlog_http_requests_total", &labels).increment(1);
    metrics::histogram!("auditlog_http_request_duration_seconds", &labels[..2]).record(elapsed);
    if let Some(kind) = security_kind(status) {
        metrics::counter!("auditlog_security_events_total", "kind" => kind).increment(1);
        let client = request_client_ip(peer.as_ref(), &forwarded, &st.trusted_proxies);
        // Who (the token's id, never its secret or the header), from where,
        // what, and why; the time is the log line's own.
        tracing::warn!(
            kind,
            token_id = note.token_id.get().map(String::as_str),
            client = client.map(tracing::field::display),
            method,
            route,
            status = status.as_u16(),
            reason = note.reason.get().copied().unwrap_or(kind),
            "security event"
        );
    } else if let Some(InternalCause(cause)) = res.extensions_mut().remove::<InternalCause>() {
        // The one place an internal error is logged (see `error`).
        tracing::error!(
            method,
            route,
            status = status.as_u16(),
            elapsed,
            cause,
            "request failed"
        );
    } else if status.is_server_error() {
        tracing::warn!(
            method,
            route,
            status = status.as_u16(),
            elapsed,
            "request failed"
        );
    } else {
        tracing::debug!(method, route, status = status.as_u16(), elapsed, "request");
    }
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        for m in ["GET", "POST", "DELETE", "HEAD", "PUT", "PATCH", "OPTIONS"] {
            assert_eq!(method_label(&m.parse().unwrap()), m);
        }
        assert_eq!(method_label(&"FROB".parse().unwrap()), "other");
        assert_eq!(method_label(&"get".parse().unwrap()), "other");
    }
}
