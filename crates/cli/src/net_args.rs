//! The `serve` options that bound connections and requests: the knobs
//! operators tune, with the server's named bounds as defaults.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;

use auditlog_server::conn::{self, ConnLimits};
use auditlog_server::limits::{self, LimitConfig};

/// Connection caps, timeouts and rate limits.
#[derive(Args, Debug, Clone)]
pub struct NetArgs {
    /// Seconds a new connection may take to send its first request before
    /// it is dropped.
    #[arg(long, env = "AUDITLOG_HANDSHAKE_TIMEOUT_SECS", default_value_t = conn::HANDSHAKE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub handshake_timeout_secs: u64,
    /// Seconds a client may take to send a request's headers, and an
    /// HTTP/1 keep-alive connection may wait for the next request.
    #[arg(long, env = "AUDITLOG_HEADER_READ_TIMEOUT_SECS", default_value_t = conn::HEADER_READ_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_secs: u64,
    /// Seconds without a new request after which a connection is closed
    /// (gracefully).
    #[arg(long, env = "AUDITLOG_IDLE_TIMEOUT_SECS", default_value_t = conn::IDLE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,
    /// Seconds after which a connection is closed gracefully whatever it
    /// does.
    #[arg(long, env = "AUDITLOG_MAX_CONNECTION_AGE_SECS", default_value_t = conn::MAX_CONNECTION_AGE.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connection_age_secs: u64,
    /// Open connections in all; more are closed at once.
    #[arg(long, env = "AUDITLOG_MAX_CONNECTIONS", default_value_t = conn::MAX_CONNECTIONS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Open connections per client address (IPv6: per /64; trusted proxies
    /// exempt); more are closed at once.
    #[arg(long, env = "AUDITLOG_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = conn::MAX_CONNECTIONS_PER_ADDRESS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,
    /// Seconds a request may run before it is answered 503 (a streamed
    /// export's body is not cut).
    #[arg(long, env = "AUDITLOG_REQUEST_TIMEOUT_SECS", default_value_t = limits::REQUEST_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,
    /// Requests in flight in the whole server; more are answered 503 with
    /// Retry-After at once.
    #[arg(long, env = "AUDITLOG_MAX_IN_FLIGHT", default_value_t = limits::MAX_IN_FLIGHT as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// Failed authentications per minute per client address before further
    /// failures are answered 429 (valid tokens always pass); 0 = no limit.
    #[arg(long, env = "AUDITLOG_FAILED_AUTH_PER_MINUTE", default_value_t = limits::FAILED_AUTH_PER_MINUTE)]
    pub failed_auth_per_minute: u32,
    /// Client addresses the failed-authentication limit remembers (about
    /// 100 bytes each); past it, failures from new addresses get 429.
    #[arg(long, env = "AUDITLOG_FAILED_AUTH_MAX_ADDRESSES", default_value_t = limits::MAX_TRACKED_ADDRESSES as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub failed_auth_max_addresses: u32,
    /// Requests per second per token (also the burst) before 429; 0 = no
    /// limit.
    #[arg(long, env = "AUDITLOG_TOKEN_REQUESTS_PER_SECOND", default_value_t = limits::TOKEN_REQUESTS_PER_SECOND)]
    pub token_requests_per_second: u32,
}

impl NetArgs {
    pub fn conn_limits(&self, trusted_proxies: &[IpNet]) -> ConnLimits {
        ConnLimits {
            handshake_timeout: Duration::from_secs(self.handshake_timeout_secs),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_age: Duration::from_secs(self.max_connection_age_secs),
            max_connections: self.max_connections as usize,
            max_connections_per_address: self.max_connections_per_address as usize,
            trusted_proxies: Arc::from(trusted_proxies),
            ..ConnLimits::default()
        }
    }

    pub fn limit_config(&self) -> LimitConfig {
        LimitConfig {
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_in_flight: self.max_in_flight as usize,
            failed_auth_per_minute: self.failed_auth_per_minute,
            token_requests_per_second: self.token_requests_per_second,
            max_tracked_addresses: self.failed_auth_max_addresses as usize,
        }
    }
}
