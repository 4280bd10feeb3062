//! The HTTP face of auditlog: the v1 API, operations endpoints and the
//! embedded dashboard, on top of any [`auditlog_store::Store`].
//!
//! Only this crate knows HTTP. [`app`] builds the router (tests call it
//! without a socket); [`serve`] runs it on a listener through hyper-util with
//! a header-read timeout and graceful shutdown; [`run_checkpointer`] signs
//! tree heads in the background.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use ipnet::IpNet;

use auditlog_core::checkpoint::NoteSigner;
use auditlog_store::DynStore;

pub mod auth;
mod dashboard;
pub mod error;
mod ingest;
mod openapi;
mod ops;
mod read;
mod tlog;
mod tokens;

pub use ops::install_metrics;
pub use read::{
    DEFAULT_EXPORT_SEND_TIMEOUT, DEFAULT_MAX_EXPORTS, DEFAULT_MAX_EXPORTS_PER_TOKEN,
    DEFAULT_QUERY_TIMEOUT, ReadConfig, ReadLimits,
};
pub use tlog::run_checkpointer;

/// Largest request body accepted (spec §3).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Reads the current time. The server reads the clock only through this, so
/// tests can pin it.
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(jiff::Timestamp::now)
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub clock: Clock,
    pub signer: Arc<NoteSigner>,
    /// Checkpoint origin prefix; an account's origin is `<origin>/<account>`.
    pub origin: Arc<str>,
    pub trusted_proxies: Arc<[IpNet]>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Query deadline, export caps and send deadline, with the export
    /// slots in use.
    pub reads: ReadLimits,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn now(&self) -> jiff::Timestamp {
        (self.clock)()
    }

    /// The origin line of an account's checkpoints.
    pub fn origin_of(&self, account: &str) -> String {
        format!("{}/{account}", self.origin)
    }
}

/// The TCP peer of a request, inserted by [`serve`].
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// The client's address: the peer, or — when the peer is a trusted proxy —
/// the right-most `X-Forwarded-For` hop that is not itself a trusted proxy.
/// The header's left part is whatever the client wrote, so it is never taken
/// blindly.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(header) = forwarded_for else {
        return Some(peer);
    };
    let mut last_trusted = peer;
    for hop in header.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => last_trusted = ip,
            Ok(ip) => return Some(ip),
            // A garbled hop: stop at the last address we can vouch for.
            Err(_) => return Some(last_trusted),
        }
    }
    Some(last_trusted)
}

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
        .route("/accounts/{account}/tokens", post(tokens::create))
        .route("/accounts/{account}/tokens/{id}", delete(tokens::revoke))
        .fallback(ops::not_found);
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/", get(dashboard::index))
        .route("/assets/{*file}", get(dashboard::asset))
        .fallback(ops::not_found)
        // Bodies are read whole by the handlers, which enforce the limit
        // themselves to answer 413 with a problem document.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(ops::observe))
        .with_state(state)
}

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish (up to 30 s).
///
/// hyper-util rather than `axum::serve`: the latter sets no header-read
/// timeout, so a client sending headers byte by byte (slowloris) could hold
/// connections forever.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
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
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
        let _ = stream.set_nodelay(true);
        let svc = app
            .clone()
            .map_request(move |mut req: axum::http::Request<_>| {
                req.extensions_mut().insert(Peer(peer));
                req
            });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("in-flight requests did not finish within 30 s");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ip_trusts_only_configured_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // A direct client: the header is ignored whatever it says.
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4"), &trusted),
            Some(ip("203.0.113.9"))
        );
        // Through the proxy: the right-most untrusted hop, not the left-most
        // (which the client controls).
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.2")),
                Some("6.6.6.6, 198.51.100.7, 10.0.0.3"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), None, &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), Some("garbage, 10.0.0.3"), &trusted),
            Some(ip("10.0.0.3"))
        );
    }
}
