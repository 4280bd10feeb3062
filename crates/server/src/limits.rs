//! Request-level bounds: the whole-request timeout and the in-flight cap
//! with load shedding (tower's own layers), the rate limits (governor):
//! failed authentication per client address and requests per token, and
//! the bounds of reads: the query deadline and the export caps.
//!
//! The failed-authentication limiter counts only failures and blocks only
//! further failures: a request whose token is valid is never refused by it,
//! so someone else's wrong guesses from the same address (a shared NAT, a
//! proxy) cannot lock a working client out — the lockout window for a valid
//! token is zero. An address over its budget gets `429` instead of `401`
//! until the budget refills.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::BoxError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::conn::address_key;
use crate::error::ApiError;

/// Longest a request handler may run, body upload included. A streamed
/// export is not cut: the timer stops when the response head is ready, and
/// the body streams on under the export's own deadlines.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Requests in flight in the whole server. Past it, requests are refused at
/// once with `503` + `Retry-After` (load shedding) instead of queueing:
/// queued requests hold memory and answer too late to be useful.
pub const MAX_IN_FLIGHT: usize = 1024;

/// Failed authentications one client address may make per minute (also the
/// burst). A token has 256 random bits, so this is not what keeps a secret
/// safe; it bounds the store look-ups and log lines a stranger can cause.
pub const FAILED_AUTH_PER_MINUTE: u32 = 30;

/// Requests one token may make per second (also the burst), so one tenant's
/// client cannot take the whole server. Far above what one node on the
/// reference machine serves (about 30k requests/s); operators set it to a
/// tenant's share.
pub const TOKEN_REQUESTS_PER_SECOND: u32 = 50_000;

/// Client addresses the failed-authentication limiter remembers (about 100
/// bytes each). When it is full of addresses still within their window,
/// every failure is refused as limited until some age out: failures fail
/// closed, valid tokens still pass.
pub const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// How often the limiters forget keys whose budget has refilled.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The request bounds, as configured.
#[derive(Clone, Debug)]
pub struct LimitConfig {
    pub request_timeout: Duration,
    pub max_in_flight: usize,
    /// `0` turns the limit off.
    pub failed_auth_per_minute: u32,
    /// `0` turns the limit off.
    pub token_requests_per_second: u32,
    pub max_tracked_addresses: usize,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            request_timeout: REQUEST_TIMEOUT,
            max_in_flight: MAX_IN_FLIGHT,
            failed_auth_per_minute: FAILED_AUTH_PER_MINUTE,
            token_requests_per_second: TOKEN_REQUESTS_PER_SECOND,
            max_tracked_addresses: MAX_TRACKED_ADDRESSES,
        }
    }
}

/// The rate limiters of a server, shared by every request.
pub struct RequestLimits {
    pub config: LimitConfig,
    failed_auth: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_token: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
    last_sweep: Mutex<Instant>,
}

impl std::fmt::Debug for RequestLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLimits")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits::new(LimitConfig::default())
    }
}

impl RequestLimits {
    pub fn new(config: LimitConfig) -> RequestLimits {
        let failed_auth = NonZeroU32::new(config.failed_auth_per_minute)
            .map(|n| RateLimiter::dashmap(Quota::per_minute(n)));
        let per_token = NonZeroU32::new(config.token_requests_per_second)
            .map(|n| RateLimiter::dashmap(Quota::per_second(n)));
        RequestLimits {
            config,
            failed_auth,
            per_token,
            clock: DefaultClock::default(),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Records a failed authentication from `client`: `Ok` while the
    /// address is within its budget (answer `401`), else the `429` to send.
    pub fn failed_auth(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let (Some(limiter), Some(ip)) = (&self.failed_auth, client) else {
            return Ok(());
        };
        self.sweep();
        let key = address_key(ip);
        // A full table is swept only on the sweep's own cadence: sweeping
        // it on each failure would let a stranger buy a scan of every
        // remembered address per request.
        let wait = if limiter.len() >= self.config.max_tracked_addresses {
            // Full of addresses still within their window: nothing more is
            // remembered, and every failure is refused as limited until
            // some age out (an address with one failure after one refill
            // interval). Valid tokens still pass.
            Some(Duration::from_secs(
                60 / u64::from(self.config.failed_auth_per_minute.max(1)),
            ))
        } else {
            limiter
                .check_key(&key)
                .err()
                .map(|n| n.wait_time_from(self.clock.now()))
        };
        match wait {
            None => Ok(()),
            Some(wait) => Err(ApiError::TooManyRequests {
                detail: format!(
                    "too many failed authentications from this address (at most {} a minute); \
                     send a valid token, or retry after the Retry-After seconds",
                    self.config.failed_auth_per_minute
                ),
                retry_after_secs: retry_secs(wait),
            }),
        }
    }

    /// Counts a request of the token `id`: `Err` with the `429` to send
    /// when it is over its rate.
    pub fn token_request(&self, id: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.per_token else {
            return Ok(());
        };
        self.sweep();
        match limiter.check_key(&id.to_owned()) {
            Ok(()) => Ok(()),
            Err(n) => Err(ApiError::TooManyRequests {
                detail: format!(
                    "this token is over its rate of {} requests a second; retry after the \
                     Retry-After seconds",
                    self.config.token_requests_per_second
                ),
                retry_after_secs: retry_secs(n.wait_time_from(self.clock.now())),
            }),
        }
    }

    /// Forgets keys whose budget has refilled (governor keeps every key it
    /// has seen until told), at most once per [`SWEEP_INTERVAL`].
    fn sweep(&self) {
        let Ok(mut last) = self.last_sweep.try_lock() else {
            return;
        };
        if last.elapsed() < SWEEP_INTERVAL {
            return;
        }
        *last = Instant::now();
        if let Some(limiter) = &self.failed_auth {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_token {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Addresses the failed-authentication limiter remembers now.
    pub fn tracked_addresses(&self) -> usize {
        self.failed_auth.as_ref().map_or(0, |l| l.len())
    }
}

/// Whole seconds to announce in `Retry-After`: rounded up, at least one.
fn retry_secs(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.clamp(1, u64::from(u32::MAX)) as u32
}

/// The answer when tower's layers refuse a request: load shedding (`503`
/// + `Retry-After`), the request timeout (`503`), or a bug.
pub(crate) async fn refused(config: LimitConfig, err: BoxError) -> ApiError {
    if err.is::<tower::load_shed::error::Overloaded>() {
        metrics::counter!("auditlog_requests_shed_total").increment(1);
        ApiError::Unavailable(format!(
            "the server is at its limit of {} requests in flight; retry after the Retry-After seconds",
            config.max_in_flight
        ))
    } else if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Unavailable(format!(
            "the request did not finish within {} s and was stopped; retry later or narrow it",
            config.request_timeout.as_secs_f64()
        ))
    } else {
        ApiError::Internal(format!("request middleware: {err}"))
    }
}

// The bounds of reads. Here rather than beside the read handlers because
// `AppState` holds them, and the state sits below every handler.

/// How long one query (list, count, histogram, or an export's walk to its
/// next batch) may work before it is stopped with `503`. A description
/// filter reads one stored record per candidate row, so over a large
/// account it is the client, not the server, that decides the cost.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Stored records one list, count or histogram may read to decide rows
/// the index cannot: a description filter, or a value past a
/// distinct-value cap. Each such row costs a read and a parse of its
/// record, ~5.8 µs of one core (1M-event bench data, release build: a
/// count of `description contains` over all time read 900k records in
/// 5.2 s of CPU; docs/bench/issue13-paged-10m.md, "Description filters"),
/// so over all time the client, not the server, decides the cost; past
/// the cap the query answers `400` saying to narrow the time range.
/// Half a million reads is ~3 s of one core: a dashboard view (list,
/// count and histogram, each reading) stays within seconds, and on a
/// loaded machine the cap, the same answer every time, still comes before
/// the 10 s deadline (measured: 7–9.5 s at load average 8; a million
/// reads ran into the deadline there). The last 90 days of a 1M-event
/// account (200k) answer; all of it (900k) is refused. The deadline
/// bounds the time, this the work. Exports are not capped: they read
/// every row they send anyway, and their slots bound them.
pub const DEFAULT_MAX_RECORD_READS: u64 = 500_000;
/// How long an export waits for its client to take the next chunk before
/// it drops the client: an export nobody reads must not hold its thread,
/// its connection and its slot for ever.
pub const DEFAULT_EXPORT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Exports running at once on the whole server. Each holds a blocking
/// thread while it reads or encodes, a SQLite connection (2 MiB of page
/// cache) and up to a few MiB of buffers; an unbounded number starved
/// every other request (issue 11: a few hundred unread exports).
pub const DEFAULT_MAX_EXPORTS: usize = 16;
/// Exports running at once per token: one tenant's script cannot take
/// every export slot.
pub const DEFAULT_MAX_EXPORTS_PER_TOKEN: usize = 4;
/// `Retry-After` of an export refused for the caps: exports take seconds.
const EXPORT_RETRY_AFTER_SECS: u32 = 10;

/// The bounds of reads, set by the operator (`auditlog serve` flags).
#[derive(Clone, Debug)]
pub struct ReadConfig {
    /// See [`DEFAULT_QUERY_TIMEOUT`].
    pub query_timeout: Duration,
    /// See [`DEFAULT_MAX_RECORD_READS`].
    pub max_record_reads: u64,
    /// See [`DEFAULT_EXPORT_SEND_TIMEOUT`].
    pub export_send_timeout: Duration,
    /// See [`DEFAULT_MAX_EXPORTS`].
    pub max_exports: usize,
    /// See [`DEFAULT_MAX_EXPORTS_PER_TOKEN`].
    pub max_exports_per_token: usize,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig {
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            max_record_reads: DEFAULT_MAX_RECORD_READS,
            export_send_timeout: DEFAULT_EXPORT_SEND_TIMEOUT,
            max_exports: DEFAULT_MAX_EXPORTS,
            max_exports_per_token: DEFAULT_MAX_EXPORTS_PER_TOKEN,
        }
    }
}

/// The read bounds and the export slots in use (shared by every handler
/// through `AppState`).
#[derive(Clone, Debug)]
pub struct ReadLimits {
    pub config: Arc<ReadConfig>,
    exports: Arc<Mutex<ExportSlots>>,
}

#[derive(Debug, Default)]
struct ExportSlots {
    total: usize,
    per_token: HashMap<String, usize>,
}

/// One running export's slot; freed when dropped (however the export ends).
#[derive(Debug)]
pub(crate) struct ExportSlot {
    slots: Arc<Mutex<ExportSlots>>,
    token: String,
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        s.total -= 1;
        if let Some(n) = s.per_token.get_mut(&self.token) {
            *n -= 1;
            if *n == 0 {
                s.per_token.remove(&self.token);
            }
        }
        metrics::gauge!("auditlog_exports_running").set(s.total as f64);
    }
}

impl ReadLimits {
    pub fn new(config: ReadConfig) -> ReadLimits {
        ReadLimits {
            config: Arc::new(config),
            exports: Arc::default(),
        }
    }

    /// A slot for one more export of `token`, or `429` past either cap.
    pub(crate) fn start_export(&self, token: &str) -> Result<ExportSlot, ApiError> {
        let cfg = &self.config;
        let mut s = self.exports.lock().unwrap_or_else(|e| e.into_inner());
        let mine = s.per_token.get(token).copied().unwrap_or(0);
        let refuse = |detail: String| {
            metrics::counter!("auditlog_exports_refused_total").increment(1);
            Err(ApiError::TooManyRequests {
                detail,
                retry_after_secs: EXPORT_RETRY_AFTER_SECS,
            })
        };
        if mine >= cfg.max_exports_per_token {
            return refuse(format!(
                "this token already runs {mine} exports, the most one token may run at once; \
                 retry when one of them has finished"
            ));
        }
        if s.total >= cfg.max_exports {
            return refuse(format!(
                "the server already runs {} exports, the most it runs at once; retry shortly",
                s.total
            ));
        }
        s.total += 1;
        *s.per_token.entry(token.to_owned()).or_default() += 1;
        metrics::gauge!("auditlog_exports_running").set(s.total as f64);
        Ok(ExportSlot {
            slots: self.exports.clone(),
            token: token.to_owned(),
        })
    }
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits::new(ReadConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_limited_per_address_and_keys_are_capped() {
        let limits = RequestLimits::new(LimitConfig {
            failed_auth_per_minute: 3,
            max_tracked_addresses: 2,
            ..LimitConfig::default()
        });
        let a = Some("192.0.2.1".parse().unwrap());
        for _ in 0..3 {
            limits.failed_auth(a).unwrap();
        }
        match limits.failed_auth(a) {
            Err(ApiError::TooManyRequests {
                retry_after_secs, ..
            }) => assert!((1..=20).contains(&retry_after_secs), "{retry_after_secs}"),
            other => panic!("{other:?}"),
        }
        limits
            .failed_auth(Some("192.0.2.2".parse().unwrap()))
            .unwrap();
        assert_eq!(limits.tracked_addresses(), 2);
        // A third address while both are still within their window: not
        // remembered, refused.
        assert!(
            limits
                .failed_auth(Some("192.0.2.3".parse().unwrap()))
                .is_err()
        );
        assert_eq!(limits.tracked_addresses(), 2);
        // Off: never limited.
        let off = RequestLimits::new(LimitConfig {
            failed_auth_per_minute: 0,
            ..LimitConfig::default()
        });
        for _ in 0..100 {
            off.failed_auth(a).unwrap();
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_secs(Duration::from_secs(2)), 2);
    }
}
