//! Connection-level bounds: how many sockets a client may hold open, for how
//! long, and how long one may sit without sending a request.
//!
//! [`crate::serve_with`] applies them: a cap on open connections (global and
//! per client address) checked at accept, TCP keepalive, a deadline for the
//! first request of a connection (HTTP/1 or HTTP/2, including the bytes
//! hyper-util reads to tell the two apart), an idle timeout, a maximum
//! connection age, hyper's HTTP/1 header-read timeout and HTTP/2 keep-alive
//! pings. Request-level bounds (timeouts, load shedding, rate limits) are in
//! [`crate::limits`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use tokio::time::Instant;

/// How long a new connection may take to deliver its first request. Until
/// then hyper-util is still sniffing the HTTP version (its own header-read
/// timeout has not started), so a socket that sends nothing, or half an
/// HTTP/2 preface, would otherwise be held forever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send the headers of a request, and how long
/// an HTTP/1 keep-alive connection may wait for the next one (hyper starts
/// this timer whenever it waits for a request head).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection on which no request started for this long is closed
/// gracefully (HTTP/2 has no header-read timer between streams; responses
/// still streaming are let finish).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection older than this is closed gracefully after its current
/// requests, so no client pins one server (or one socket) forever and load
/// balancers can rebalance.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(30 * 60);

/// Open connections in all: each holds a file descriptor and a few KiB of
/// buffers; the process's descriptor limit is the hard wall behind this.
pub const MAX_CONNECTIONS: usize = 4096;

/// Open connections from one client address (IPv6: one /64, what a single
/// host usually gets), so one client cannot take the whole global cap.
/// Trusted proxies count only against the global cap.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;

/// Idle time before the kernel probes a silent peer, so connections of
/// clients that vanished (no FIN, no RST) are reclaimed.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Interval between the kernel's keepalive probes once they start.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Interval of HTTP/2 PING frames, and how long an unanswered one may wait
/// before the connection is dropped as dead.
pub const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Concurrent HTTP/2 streams per connection (each is a request in flight;
/// the global in-flight cap in [`crate::limits`] bounds them all together).
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// The connection bounds [`crate::serve_with`] applies.
#[derive(Clone, Debug)]
pub struct ConnLimits {
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_age: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// `None` leaves the system's TCP keepalive setting alone.
    pub tcp_keepalive: Option<Duration>,
    pub h2_keepalive_interval: Duration,
    pub h2_keepalive_timeout: Duration,
    /// Peers exempt from the per-address cap (every client behind a proxy
    /// shares its address).
    pub trusted_proxies: Arc<[IpNet]>,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_age: MAX_CONNECTION_AGE,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_address: MAX_CONNECTIONS_PER_ADDRESS,
            tcp_keepalive: Some(TCP_KEEPALIVE),
            h2_keepalive_interval: H2_KEEPALIVE_INTERVAL,
            h2_keepalive_timeout: H2_KEEPALIVE_TIMEOUT,
            trusted_proxies: Arc::from(Vec::new()),
        }
    }
}

/// The key under which a client address is counted: IPv4 as is (also when
/// written as an IPv4-mapped IPv6 address), IPv6 by its /64 prefix, since
/// one host commonly owns a whole /64 and could otherwise take a fresh
/// address per connection.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

/// Open connections per client address, with the guard that gives a slot
/// back when its connection ends.
#[derive(Debug, Default)]
pub(crate) struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's slot in [`PerAddress`]; released on drop.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    table: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    /// Takes a slot for `key`, or `None` when it already has `cap` open.
    pub(crate) fn try_take(self: &Arc<Self>, key: IpAddr, cap: usize) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: Arc::clone(self),
            key,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            // The table holds only addresses with a connection open, so its
            // size is bounded by the global cap.
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// When a connection last started a request, read by its watchdog.
#[derive(Debug)]
pub(crate) struct Activity {
    opened: Instant,
    /// Milliseconds after `opened` of the latest request start; `u64::MAX`
    /// before the first one.
    last_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
        }
    }

    pub(crate) fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last_request(&self) -> Option<Instant> {
        match self.last_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(self.opened + Duration::from_millis(ms)),
        }
    }
}

/// What the watchdog of a connection decides at a given instant.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing to do before this instant.
    Wait(Instant),
    /// No request arrived in time: drop the socket.
    Drop,
    /// Idle or too old: close after the requests in flight.
    Close(&'static str),
}

impl ConnLimits {
    pub(crate) fn verdict(&self, activity: &Activity, now: Instant) -> Verdict {
        let Some(last) = activity.last_request() else {
            let deadline = activity.opened + self.handshake_timeout;
            return if now >= deadline {
                Verdict::Drop
            } else {
                Verdict::Wait(deadline)
            };
        };
        let too_old = activity.opened + self.max_age;
        let idle = last + self.idle_timeout;
        if now >= too_old {
            Verdict::Close("max_age")
        } else if now >= idle {
            Verdict::Close("idle")
        } else {
            Verdict::Wait(too_old.min(idle))
        }
    }

    /// Whether `peer` is counted against the per-address cap.
    pub(crate) fn per_address_key(&self, peer: SocketAddr) -> Option<IpAddr> {
        let ip = peer.ip();
        let trusted = self.trusted_proxies.iter().any(|n| n.contains(&ip));
        (!trusted).then(|| address_key(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn per_address_slots_are_capped_and_given_back() {
        let table = Arc::new(PerAddress::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = table.try_take(a, 2).unwrap();
        let _second = table.try_take(a, 2).unwrap();
        assert!(table.try_take(a, 2).is_none());
        assert!(
            table.try_take(b, 2).is_some(),
            "another address has its own"
        );
        drop(first);
        assert!(table.try_take(a, 2).is_some());
    }

    #[test]
    fn the_watchdog_drops_silent_connections_and_closes_idle_ones() {
        let limits = ConnLimits {
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_age: Duration::from_secs(600),
            ..ConnLimits::default()
        };
        let s = Duration::from_secs;
        let silent = Activity::new();
        let t0 = silent.opened;
        assert_eq!(limits.verdict(&silent, t0), Verdict::Wait(t0 + s(5)));
        assert_eq!(limits.verdict(&silent, t0 + s(5)), Verdict::Drop);
        // A request 2 s in: idle 60 s after it, retired at 600 s whatever.
        let used = Activity {
            opened: t0,
            last_ms: AtomicU64::new(2000),
        };
        assert_eq!(limits.verdict(&used, t0 + s(10)), Verdict::Wait(t0 + s(62)));
        assert_eq!(limits.verdict(&used, t0 + s(62)), Verdict::Close("idle"));
        used.last_ms.store(590_000, Ordering::Relaxed);
        assert_eq!(
            limits.verdict(&used, t0 + s(595)),
            Verdict::Wait(t0 + s(600))
        );
        assert_eq!(
            limits.verdict(&used, t0 + s(600)),
            Verdict::Close("max_age")
        );
    }
}
