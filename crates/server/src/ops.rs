//! Operations endpoints (health, readiness, metrics, OpenAPI), the request
//! metrics middleware and the 404 fallback.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

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

/// `GET /readyz`: the store answers.
pub async fn readyz(State(st): State<AppState>) -> Response {
    match st.store.ready().await {
        Ok(()) => "ready\n".into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(st): State<AppState>) -> Response {
    if let Ok(bytes) = st.store.size_bytes().await {
        metrics::gauge!("auditlog_store_size_bytes").set(bytes as f64);
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

/// Counts and times every request by route and status, and sets the
/// headers every response carries.
pub async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let mut res = next.run(req).await;
    let status = res.status();
    let elapsed = start.elapsed().as_secs_f64();
    let labels = [
        ("method", method.to_string()),
        ("route", route.clone()),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("auditlog_http_requests_total", &labels).increment(1);
    metrics::histogram!("auditlog_http_request_duration_seconds", &labels[..2]).record(elapsed);
    if status.is_server_error() {
        tracing::warn!(%method, route, status = status.as_u16(), elapsed, "request failed");
    } else {
        tracing::debug!(%method, route, status = status.as_u16(), elapsed, "request");
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
