//! The HTTP face of auditlog: the v1 API, operations endpoints and the
//! embedded dashboard, on top of any [`auditlog_store::Store`].
//!
//! Only this crate knows HTTP. [`app`] builds the router (tests call it
//! without a socket) with the request bounds of [`limits`]; [`serve_with`]
//! runs it on a listener through hyper-util within the connection bounds of
//! [`conn`] and shuts down gracefully; [`run_checkpointer`] signs tree heads
//! in the background.
//!
//! # What this crate must never do
//!
//! - **No SQL and no storage detail**: every read and write goes through
//!   the `Store` trait, so any backend serves the same API.
//! - **No domain rules**: validation, query semantics, descriptions, the
//!   export's own event and the log's hashing are `auditlog-core`'s; a
//!   handler parses, authorizes, calls, and maps errors (in `error.rs`, in
//!   one place).
//! - **No clock reads** outside `AppState::clock`, so tests pin time.
//! - **No unbounded cost for a client**: every body, query, connection and
//!   export has a bound (`limits`, `conn`; listed in `docs/security.md`).
//!
//! The modules form layers: each imports only modules listed before it
//! (none imports one that imports it back; `lib.rs` imports them all and
//! none imports `lib.rs`):
//!
//! 1. `error`: the problem+json error type. `schema`: the OpenAPI wire
//!    shapes. `conn`: connection bounds. `dashboard`: the embedded files.
//! 2. `limits` (error, conn): request and read bounds.
//! 3. `state` (limits): `AppState`, the client's address.
//! 4. `auth` (state, error): tokens and the `Caller` extractor.
//! 5. `request` (state, error): body reading, query pairs and the typed
//!    query extractors, record-or-404.
//! 6. The handlers, none importing another: `ingest`, `read`, `tlog`,
//!    `tokens` (error, state, auth, request, schema).
//! 7. `openapi` (schema, the handlers' annotations): the document.
//! 8. `ops` (state, auth, error, openapi): health, metrics, the request log.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

pub use conn::ConnLimits;

pub mod auth;
pub mod conn;
mod dashboard;
pub mod error;
mod ingest;
pub mod limits;
mod openapi;
mod ops;
mod read;
mod request;
mod schema;
mod state;
mod tlog;
mod tokens;

pub use limits::{
    DEFAULT_EXPORT_SEND_TIMEOUT, DEFAULT_MAX_EXPORTS, DEFAULT_MAX_EXPORTS_PER_TOKEN,
    DEFAULT_MAX_RECORD_READS, DEFAULT_QUERY_TIMEOUT, ReadConfig, ReadLimits,
};
pub use ops::install_metrics;
pub use state::{
    AppState, Clock, DEFAULT_LARGE_BODIES, Keys, MAX_BODY_BYTES, Peer, SharedState, client_ip,
    request_client_ip, system_clock,
};
pub use tlog::run_checkpointer;
pub use tokens::{MAX_TOKEN_TTL, record_token_changes, run_token_recorder};

/// The whole application router.
pub fn app(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/catalog", get(read::catalog))
        .route("/whoami", get(tokens::whoami))
        .route("/public-key", get(tlog::public_key))
        .route(
            "/accounts/{account}/events",
            post(ingest::ingest_one).get(read::list),
        )
        .route(
            "/accounts/{account}/events/batch",
            post(ingest::ingest_batch),
        )
        .route("/accounts/{account}/events/count", get(read::count))
        .route("/accounts/{account}/events/histogram", get(read::histogram))
        .route("/accounts/{account}/events/export", get(read::export))
        .route("/accounts/{account}/events/{id}", get(read::get_one))
        .route(
            "/accounts/{account}/events/{id}/proof",
            get(tlog::event_proof),
        )
        .route(
            "/accounts/{account}/workflows/{workflow}/events",
            get(read::list),
        )
        .route(
            "/accounts/{account}/workflows/{workflow}/events/count",
            get(read::count),
        )
        .route(
            "/accounts/{account}/workflows/{workflow}/events/histogram",
            get(read::histogram),
        )
        .route(
            "/accounts/{account}/workflows/{workflow}/events/export",
            get(read::export),
        )
        .route("/accounts/{account}/suggestions", get(read::suggestions))
        .route("/accounts/{account}/checkpoint", get(tlog::checkpoint))
        .route("/accounts/{account}/proof/inclusion", get(tlog::inclusion))
        .route(
            "/accounts/{account}/proof/consistency",
            get(tlog::consistency),
        )
        .route(
            "/accounts/{account}/tokens",
            post(tokens::create).get(tokens::list),
        )
        .route("/accounts/{account}/tokens/{id}", delete(tokens::revoke))
        .fallback(ops::not_found);
    let config = state.limits.config.clone();
    // tower's own layers: a request waits for no slot (load shedding answers
    // 503 at once), and a handler runs at most `request_timeout`. Applied
    // per route by axum, so the in-flight cap must be the global one.
    let bounds = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(
            move |e: axum::BoxError| limits::refused(config.clone(), e),
        ))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            state.limits.config.max_in_flight,
        ))
        .timeout(state.limits.config.request_timeout);
    Router::new()
        .nest("/v1", v1)
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/", get(dashboard::index))
        .route("/assets/{*file}", get(dashboard::asset))
        .fallback(ops::not_found)
        // Bodies are read whole by the handlers, which enforce the limit
        // themselves to answer 413 with a problem document.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(bounds)
        // Probes answer even when the server sheds load: a saturated server
        // is alive, and restarting it would not help.
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::observe,
        ))
        .with_state(state)
}

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = conn::HEADER_READ_TIMEOUT;

/// [`serve_with`] with the default [`ConnLimits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, app, &ConnLimits::default(), shutdown).await
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish (up to 30 s), within the connection bounds of
/// `limits` (see [`conn`]).
///
/// hyper-util rather than `axum::serve`: the latter sets no header-read
/// timeout, so a client sending headers byte by byte (slowloris) could hold
/// connections forever.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &ConnLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.h2_keepalive_interval)
        .keep_alive_timeout(limits.h2_keepalive_timeout)
        .max_concurrent_streams(conn::H2_MAX_CONCURRENT_STREAMS);
    let builder = Arc::new(builder);
    let limits = Arc::new(limits.clone());
    // One permit per open connection; at shutdown, taking them all back
    // means every connection has ended.
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_address = Arc::new(conn::PerAddress::default());
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Over a cap: the socket is closed at once, before a byte is read
        // (no buffers, no task). Counted, and logged at debug only: a flood
        // of them must not flood the log too.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            metrics::counter!("auditlog_connections_rejected_total", "reason" => "global_cap")
                .increment(1);
            tracing::debug!(%peer, "connection refused: global connection cap");
            continue;
        };
        let address_slot = match limits.per_address_key(peer) {
            Some(key) => match per_address.try_take(key, limits.max_connections_per_address) {
                Some(s) => Some(s),
                None => {
                    metrics::counter!("auditlog_connections_rejected_total", "reason" => "address_cap")
                        .increment(1);
                    tracing::debug!(%peer, "connection refused: per-address connection cap");
                    continue;
                }
            },
            None => None,
        };
        let _ = stream.set_nodelay(true);
        if let Some(idle) = limits.tcp_keepalive {
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(idle)
                .with_interval(conn::TCP_KEEPALIVE_INTERVAL);
            if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
                tracing::debug!(error = %e, "tcp keepalive not set");
            }
        }
        let activity = Arc::new(conn::Activity::new());
        let seen = Arc::clone(&activity);
        let svc = app
            .clone()
            .map_request(move |mut req: axum::http::Request<_>| {
                seen.touch();
                req.extensions_mut().insert(Peer(peer));
                req
            });
        let builder = Arc::clone(&builder);
        let limits = Arc::clone(&limits);
        let mut closing = closing.clone();
        tokio::spawn(async move {
            let _slots = (slot, address_slot);
            metrics::gauge!("auditlog_connections_open").increment(1.0);
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(svc),
            );
            let mut conn = std::pin::pin!(conn);
            let mut closing_down = false;
            loop {
                let next = match limits.verdict(&activity, tokio::time::Instant::now()) {
                    conn::Verdict::Wait(at) => at,
                    conn::Verdict::Drop => {
                        metrics::counter!("auditlog_connections_closed_total", "reason" => "handshake_timeout")
                            .increment(1);
                        tracing::debug!(%peer, "connection dropped: no request in time");
                        break;
                    }
                    conn::Verdict::Close(reason) => {
                        if !closing_down {
                            metrics::counter!("auditlog_connections_closed_total", "reason" => reason)
                                .increment(1);
                            conn.as_mut().graceful_shutdown();
                            closing_down = true;
                        }
                        // Only the connection itself ends it from here.
                        tokio::time::Instant::now() + Duration::from_secs(3600)
                    }
                };
                tokio::select! {
                    res = conn.as_mut() => {
                        if let Err(e) = res {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = tokio::time::sleep_until(next) => {}
                    _ = closing.changed(), if !closing_down => {
                        conn.as_mut().graceful_shutdown();
                        closing_down = true;
                    }
                }
            }
            metrics::gauge!("auditlog_connections_open").decrement(1.0);
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    let _ = closing_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("in-flight requests did not finish within 30 s");
        }
    }
    Ok(())
}
