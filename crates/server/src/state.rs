//! The state every handler shares ([`AppState`]: store, clock, keys,
//! bounds) and what a request says about its client ([`Peer`],
//! [`client_ip`]).
//!
//! It imports only `limits` (for the bounds it holds); the handlers,
//! `auth` and `request` take the state from here, and `lib.rs` builds it
//! into the router.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use auditlog_core::checkpoint::NoteSigner;
use auditlog_core::query::CursorKey;
use auditlog_core::redact::Redactor;
use auditlog_core::secret::ServerSecret;
use auditlog_store::DynStore;

use crate::limits::{ReadLimits, RequestLimits};

/// Largest request body accepted (spec §3).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Reads the current time. The server reads the clock only through this, so
/// tests can pin it.
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(jiff::Timestamp::now)
}

/// Shared state of every handler: one reference-counted [`SharedState`].
///
/// axum clones the state for every request (once per `State` extractor and
/// per middleware call), and a struct of a dozen `Arc`s costs a dozen
/// atomic increments and decrements each time, on counters every core
/// shares: measured on single-event ingest, dropping those clones alone
/// took ~1.5 µs of CPU per request. One `Arc` makes a clone one increment.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl From<SharedState> for AppState {
    fn from(shared: SharedState) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;
    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct SharedState {
    pub store: DynStore,
    pub clock: Clock,
    pub signer: Arc<NoteSigner>,
    /// Checkpoint origin prefix; an account's origin is `<origin>/<account>`.
    pub origin: Arc<str>,
    pub trusted_proxies: Arc<[IpNet]>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Keys derived from the server's secret.
    pub keys: Keys,
    /// Permits to read and parse a large ingest body (see
    /// `ingest::LARGE_BODY_BYTES`).
    pub large_bodies: Arc<tokio::sync::Semaphore>,
    /// Request timeout, in-flight cap and rate limiters.
    pub limits: Arc<RequestLimits>,
    /// Query deadline, export caps and send deadline, with the export
    /// slots in use.
    pub reads: ReadLimits,
}

/// Large ingest bodies read and parsed at once, by default. Each costs up
/// to the 10 MiB body plus what it parses into (measured: twenty hostile
/// 10 MiB bodies through four permits raised the peak RSS by 119 MiB), so
/// this is what bounds ingest's memory whatever clients send; small bodies
/// (the usual single events) never wait for it.
pub const DEFAULT_LARGE_BODIES: usize = 4;

/// The keys of a server, derived from its secret.
#[derive(Clone, Debug)]
pub struct Keys {
    /// Fingerprints secrets in ingested metadata.
    pub redactor: Arc<Redactor>,
    /// Authenticates list cursors.
    pub cursor_key: Arc<CursorKey>,
}

impl Keys {
    pub fn derive(secret: &ServerSecret) -> Keys {
        Keys {
            redactor: Arc::new(Redactor::new(secret.derive("fingerprint"))),
            cursor_key: Arc::new(CursorKey::new(secret.derive("cursor"))),
        }
    }
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

/// The TCP peer of a request, inserted by the accept loop (`serve_with`).
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

/// The client address of a request (see [`client_ip`]), from the peer
/// the accept loop recorded and every `X-Forwarded-For` line, joined in
/// order.
pub fn request_client_ip<'a>(
    peer: Option<&Peer>,
    forwarded_for: impl IntoIterator<Item = &'a axum::http::HeaderValue>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    // A line that is not text becomes a garbled hop, where the walk from
    // the right stops.
    let lines: Vec<&str> = forwarded_for
        .into_iter()
        .map(|v| v.to_str().unwrap_or("?"))
        .collect();
    let joined = (!lines.is_empty()).then(|| lines.join(","));
    client_ip(peer.map(|p| p.0.ip()), joined.as_deref(), trusted)
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
