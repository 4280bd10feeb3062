//! Connection and request bounds against the real binary (issue 11): silent
//! and idle sockets are closed, connection caps hold, invented methods do
//! not grow `/metrics`, wrong tokens are rate limited without locking out a
//! valid one, a saturated server sheds load with `503`, a slow handler is
//! stopped while a long export streams on, and every 401/403/429 is logged
//! (without the secret) and counted.
//!
//! Each test starts its own server with small limits through the flags, so
//! the bounds are reached in a second or two.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Starts `auditlog serve` with extra flags (as [`Server::start`] does
/// otherwise); its log goes to `server-<n>.log` in the workspace.
fn start_with(ws: &Workspace, flags: &[&str]) -> (Server, std::path::PathBuf) {
    let server = Server::start_with(ws, flags, &[]);
    let log = server.log.clone();
    (server, log)
}

fn addr(server: &Server) -> SocketAddr {
    server
        .base
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap()
}

/// Reads until the server closes the socket (EOF or reset), for at most
/// `limit`; returns what was read and how long it took, or `None` when the
/// socket was still open at the limit.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(Vec<u8>, Duration)> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((got, start.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// One HTTP/1.1 request on an open connection; returns the status line's
/// code after reading the head (bodies here are small and fit one read).
async fn get_on(stream: &mut TcpStream, path: &str) -> u16 {
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("an answer within 10 s")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {head:?}"))
}

pub async fn metrics_text(server: &Server) -> String {
    let res = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.unwrap()
}

/// The value of one sample line of `/metrics` (0 when absent).
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test]
async fn silent_and_half_open_connections_are_closed_while_others_are_served() {
    let ws = Workspace::new();
    let (server, _) = start_with(&ws, &["--handshake-timeout-secs", "1"]);
    let addr = addr(&server);
    // Nothing at all; half an HTTP/2 preface (hyper-util still sniffing the
    // version, where its header timer has not started); HTTP/1 headers
    // never finished (hyper's header-read timer).
    let opened = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut half_h2 = TcpStream::connect(addr).await.unwrap();
    half_h2.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let mut half_h1 = TcpStream::connect(addr).await.unwrap();
    half_h1
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    // Meanwhile the server answers everyone else.
    for _ in 0..5 {
        let res = server
            .client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    for (name, stream) in [
        ("silent", &mut silent),
        ("half HTTP/2 preface", &mut half_h2),
    ] {
        let (got, _) = read_until_closed(stream, Duration::from_secs(8))
            .await
            .unwrap_or_else(|| panic!("{name}: still open after 8 s"));
        assert!(got.is_empty(), "{name}: {got:?}");
        eprintln!(
            "{name} connection closed {:?} after it opened (handshake timeout 1 s)",
            opened.elapsed()
        );
    }
    // The half-sent request head: the first-request deadline ends it too.
    read_until_closed(&mut half_h1, Duration::from_secs(15))
        .await
        .expect("a request head never finished is closed");
    eprintln!(
        "half request head closed {:?} after it opened",
        opened.elapsed()
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_an_old_one_retired() {
    let ws = Workspace::new();
    let (server, _) = start_with(
        &ws,
        &[
            "--header-read-timeout-secs",
            "1",
            "--max-connection-age-secs",
            "2",
        ],
    );
    let addr = addr(&server);
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(get_on(&mut idle, "/healthz").await, 200);
    let (_, took) = read_until_closed(&mut idle, Duration::from_secs(8))
        .await
        .expect("an idle keep-alive connection is closed");
    eprintln!("idle keep-alive connection closed after {took:?} (header-read timeout 1 s)");

    // A busy connection is retired at its maximum age: it stops being
    // kept alive, the requests so far all answered.
    let mut busy = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let mut answered = 0;
    loop {
        let req = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
        if busy.write_all(req).await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(5), busy.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                assert!(buf.starts_with(b"HTTP/1.1 200"));
                answered += 1;
            }
            _ => break,
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the connection outlived its maximum age"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answered >= 5, "answered {answered}");
    assert!(start.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed_at_once() {
    let ws = Workspace::new();
    let (server, _) = start_with(&ws, &["--max-connections-per-address", "3"]);
    let addr = addr(&server);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Accepted, then closed before a byte is read: EOF or a reset.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let (got, _) = read_until_closed(&mut extra, Duration::from_secs(5))
        .await
        .expect("the connection over the cap is closed");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    // The first three still work.
    for stream in &mut held {
        assert_eq!(get_on(stream, "/healthz").await, 200);
    }
    // Once one closes, its slot is free again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    assert_eq!(get_on(&mut again, "/healthz").await, 200);
    drop((held, again));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = metrics_text(&server).await;
    assert!(
        sample(
            &m,
            "auditlog_connections_rejected_total{reason=\"address_cap\"}"
        ) >= 1.0,
        "{m}"
    );
}

#[tokio::test]
async fn invented_methods_leave_metrics_small() {
    let ws = Workspace::new();
    let server = Server::start(&ws);
    let before = metrics_text(&server).await.len();
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("XMETHOD{i}").as_bytes()).unwrap();
        let res = server
            .client
            .request(method, server.url(&format!("/v1/nothing/{i}")))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{}", res.status());
    }
    let text = metrics_text(&server).await;
    // Was 1.6 KB → 472 KB with the raw method as a label.
    assert!(
        text.len() < before + 8 * 1024,
        "/metrics grew from {before} to {} bytes",
        text.len()
    );
    assert!(text.contains("method=\"other\""), "{text}");
    assert!(!text.contains("XMETHOD"), "{text}");
    eprintln!(
        "/metrics: {before} bytes before, {} after 300 invented methods",
        text.len()
    );
}

#[tokio::test]
async fn wrong_tokens_are_rate_limited_and_logged_but_a_valid_token_still_works() {
    let ws = Workspace::new();
    let (server, log) = start_with(
        &ws,
        &[
            "--failed-auth-per-minute",
            "5",
            "--token-requests-per-second",
            "1",
        ],
    );
    // One token per check: each may make one request a second.
    let read = create_token(&ws.data_dir(), ACME, "read");
    let reader = create_token(&ws.data_dir(), ACME, "read");
    let busy = create_token(&ws.data_dir(), ACME, "read");
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let wrong = format!("alog_{}", "A".repeat(43));
    let events = format!("/v1/accounts/{ACME}/events?range=all_time");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..12 {
        let res = server.get(&wrong, &events).await;
        statuses.push(res.status().as_u16());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u32>().unwrap());
            assert_eq!(res.headers()["content-type"], "application/problem+json");
            let p: Value = res.json().await.unwrap();
            assert!(
                p["detail"]
                    .as_str()
                    .unwrap()
                    .contains("failed authentications"),
                "{p}"
            );
        }
    }
    // The budget (5), then 429 for every further failure.
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");
    let retry_after = retry_after.expect("Retry-After on 429");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // A request without a token is a failure like any other.
    let res = server.client.get(server.url(&events)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    // Documented: the failed-auth limit never refuses a valid token, even
    // from the address that is over its budget.
    let res = server.get(&read, &events).await;
    assert_eq!(res.status(), StatusCode::OK);

    // 403: a read token cannot ingest.
    let res = server
        .post(
            &reader,
            &format!("/v1/accounts/{ACME}/events"),
            &role_created(1),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Requests per token: 1 a second; a burst of 10 gets 429s, the other
    // tokens are not affected.
    let mut limited = 0;
    for _ in 0..10 {
        let res = server.get(&busy, "/v1/whoami").await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(res.headers().contains_key("retry-after"));
            let p: Value = res.json().await.unwrap();
            assert!(p["detail"].as_str().unwrap().contains("rate"), "{p}");
            limited += 1;
        } else {
            assert_eq!(res.status(), StatusCode::OK);
        }
    }
    assert!(limited >= 5, "{limited} of 10 limited");
    let res = server.get(&ingest, "/v1/whoami").await;
    assert_eq!(res.status(), StatusCode::OK);

    // Counted with bounded labels...
    let m = metrics_text(&server).await;
    let count = |kind: &str| {
        sample(
            &m,
            &format!("auditlog_security_events_total{{kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(count("unauthorized"), 5.0, "{m}");
    assert!(count("rate_limited") >= 8.0, "{m}");
    assert_eq!(count("forbidden"), 1.0, "{m}");
    // ...and logged: who, from where, what, why; never a secret.
    let text = std::fs::read_to_string(&log).unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("security event"))
        .collect();
    assert!(events.len() >= 14, "{text}");
    for line in &events {
        assert!(line.contains("client=127.0.0.1"), "{line}");
        assert!(line.contains("route="), "{line}");
        assert!(line.contains("method="), "{line}");
    }
    assert!(
        events
            .iter()
            .any(|l| l.contains("unknown or revoked token") && l.contains("status=401")),
        "{text}"
    );
    assert!(
        events
            .iter()
            .any(|l| l.contains("token lacks the role") && l.contains("token_id=\"tok_")),
        "{text}"
    );
    assert!(
        events
            .iter()
            .any(|l| l.contains("over its failed-authentication rate")),
        "{text}"
    );
    assert!(
        events.iter().any(|l| l.contains("over its request rate")),
        "{text}"
    );
    for secret in [&wrong, &read, &reader, &busy, &ingest] {
        assert!(!text.contains(secret.as_str()), "a secret in the log");
    }
}

/// Sends the head of an ingest with a body that never finishes: the
/// handler waits on the body, holding one slot of the in-flight cap.
async fn hold_slow_ingest(addr: SocketAddr, token: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/accounts/{ACME}/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"level\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

#[tokio::test]
async fn a_saturated_server_sheds_load_with_503_and_retry_after() {
    let ws = Workspace::new();
    let (server, _) = start_with(
        &ws,
        &["--max-in-flight", "2", "--request-timeout-secs", "2"],
    );
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    let addr = addr(&server);
    let slow_a = hold_slow_ingest(addr, &ingest).await;
    let slow_b = hold_slow_ingest(addr, &ingest).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = server
        .get(
            &read,
            &format!("/v1/accounts/{ACME}/events/count?range=all_time"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let p: Value = res.json().await.unwrap();
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("limit of 2 requests"),
        "{p}"
    );
    // Probes still answer.
    let res = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // The held requests end at the request timeout (503), which frees the
    // slots.
    for mut slow in [slow_a, slow_b] {
        let (got, took) = read_until_closed(&mut slow, Duration::from_secs(15))
            .await
            .expect("the slow request is answered");
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(text.contains("did not finish within 2 s"), "{text}");
        assert!(took < Duration::from_secs(12), "{took:?}");
    }
    assert_eq!(server.count(&read, ACME).await, 0);
    let m = metrics_text(&server).await;
    assert!(sample(&m, "auditlog_requests_shed_total") >= 1.0, "{m}");
}

#[tokio::test]
async fn an_export_longer_than_the_request_timeout_streams_to_the_end() {
    let ws = Workspace::new();
    let (server, _) = start_with(&ws, &["--request-timeout-secs", "1"]);
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    let total = 20_000;
    // Batches small enough to stay under the 1 s timeout in a debug build.
    for part in 0..40 {
        let events: Vec<Value> = (0..500).map(|i| role_created(part * 500 + i)).collect();
        let res = server.post_batch(&ingest, ACME, &events).await;
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    }
    let mut res = server
        .get(
            &read,
            &format!("/v1/accounts/{ACME}/events/export?range=all_time&format=jsonl"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let start = Instant::now();
    let mut lines = 0usize;
    while let Some(chunk) = res.chunk().await.expect("the export is not cut") {
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        // A slow reader: the export lasts well past the 1 s timeout.
        if start.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        start.elapsed() > Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(lines, total, "every row arrived");
}

#[tokio::test]
async fn two_thousand_idle_connections_stay_within_the_caps_and_memory() {
    let ws = Workspace::new();
    let (server, _) = start_with(
        &ws,
        &[
            "--max-connections",
            "1500",
            "--max-connections-per-address",
            "4096",
            "--handshake-timeout-secs",
            "30",
        ],
    );
    let pid = server.pid();
    let addr = addr(&server);
    // Warm up so the baseline includes the runtime's threads.
    for _ in 0..20 {
        server
            .client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap();
    }
    let base = vm_hwm_kib(pid);
    let mut held = Vec::new();
    for _ in 0..2000 {
        match TcpStream::connect(addr).await {
            Ok(s) => held.push(s),
            Err(e) => panic!("connect: {e}"),
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Over the global cap: closed at once.
    let mut closed = 0;
    for s in &mut held {
        let mut b = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(2), s.read(&mut b)).await
        {
            closed += 1;
        }
    }
    // Make room for the request that reads /metrics.
    let hwm = vm_hwm_kib(pid);
    held.drain(..10);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = metrics_text(&server).await;
    let open = sample(&m, "auditlog_connections_open");
    let rejected = sample(
        &m,
        "auditlog_connections_rejected_total{reason=\"global_cap\"}",
    );
    eprintln!(
        "2000 idle connections: {open} open, {rejected} refused at the global cap (1500), \
         {closed} seen closed; VmHWM {base} KiB before, {hwm} KiB after (+{} KiB)",
        hwm - base
    );
    assert!(open <= 1501.0, "{open}");
    assert!(rejected >= 499.0, "{rejected}");
    assert!(closed >= 499, "{closed}");
    assert!(hwm - base < 64 * 1024, "+{} KiB", hwm - base);
}

/// The HTTP/2 connection preface and an empty SETTINGS frame: enough for
/// hyper to take the connection as HTTP/2.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A HEADERS frame (END_STREAM | END_HEADERS) on stream `id` for `GET
/// /healthz`, HPACK-encoded by hand: indexed `:method GET` and `:scheme
/// http`, then `:path` and `:authority` as literals with indexed names.
fn h2_get_healthz(id: u8) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x44, 8];
    block.extend_from_slice(b"/healthz");
    block.extend_from_slice(&[0x41, 1, b't']);
    let mut frame = vec![0, 0, block.len() as u8, 0x01, 0x05, 0, 0, 0, id];
    frame.extend_from_slice(&block);
    frame
}

/// Reads HTTP/2 frames until the server closes the connection (for at
/// most `limit`), acknowledging its SETTINGS and PINGs as a live client
/// does (a graceful close waits for the PING's answer); returns the frame
/// types received.
async fn h2_frames_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    const SETTINGS: u8 = 0x4;
    const PING: u8 = 0x6;
    let start = Instant::now();
    let mut types = Vec::new();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while buf.len() >= 9 {
            let len = usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            types.push(kind);
            let ack = match kind {
                SETTINGS if flags & 1 == 0 => Some(vec![0, 0, 0, SETTINGS, 1, 0, 0, 0, 0]),
                PING if flags & 1 == 0 => {
                    let mut f = vec![0, 0, 8, PING, 1, 0, 0, 0, 0];
                    f.extend_from_slice(&buf[9..17]);
                    Some(f)
                }
                _ => None,
            };
            if let Some(ack) = ack {
                let _ = stream.write_all(&ack).await;
            }
            buf.drain(..9 + len);
        }
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(types),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn http2_connections_get_the_same_handshake_and_idle_bounds() {
    const GOAWAY: u8 = 0x7;
    const HEADERS: u8 = 0x1;
    let ws = Workspace::new();
    let (server, _) = start_with(
        &ws,
        &["--handshake-timeout-secs", "1", "--idle-timeout-secs", "2"],
    );
    let addr = addr(&server);
    // A full HTTP/2 preface, then no request: dropped at the handshake
    // deadline.
    let mut quiet = TcpStream::connect(addr).await.unwrap();
    quiet.write_all(H2_PREFACE).await.unwrap();
    let (_, took) = read_until_closed(&mut quiet, Duration::from_secs(8))
        .await
        .expect("an HTTP/2 connection without a request is closed");
    eprintln!("HTTP/2 connection without a request closed after {took:?}");

    // Two requests on one connection, both answered; then idle: GOAWAY and
    // close after the idle timeout (HTTP/2 has no header-read timer
    // between streams).
    let mut used = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    used.write_all(H2_PREFACE).await.unwrap();
    used.write_all(&h2_get_healthz(1)).await.unwrap();
    used.write_all(&h2_get_healthz(3)).await.unwrap();
    let types = h2_frames_until_closed(&mut used, Duration::from_secs(15))
        .await
        .expect("an idle HTTP/2 connection is closed");
    let took = start.elapsed();
    let answers = types.iter().filter(|t| **t == HEADERS).count();
    assert_eq!(answers, 2, "both answered first: {types:?}");
    assert_eq!(types.last(), Some(&GOAWAY), "{types:?}");
    assert!(took >= Duration::from_secs(2), "{took:?}");
    eprintln!("idle HTTP/2 connection closed after {took:?} (idle timeout 2 s)");
}

#[tokio::test]
async fn behind_a_trusted_proxy_failed_auth_is_counted_per_forwarded_client() {
    let ws = Workspace::new();
    let (server, log) = start_with(
        &ws,
        &[
            "--trusted-proxy",
            "127.0.0.1/32",
            "--failed-auth-per-minute",
            "2",
        ],
    );
    let wrong = format!("alog_{}", "B".repeat(43));
    let call = |client: &'static str| {
        server
            .client
            .get(server.url("/v1/whoami"))
            .bearer_auth(&wrong)
            .header("x-forwarded-for", client)
            .send()
    };
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(call("198.51.100.1").await.unwrap().status().as_u16());
    }
    assert_eq!(first, [401, 401, 429]);
    // Another client behind the same proxy has its own budget.
    assert_eq!(call("198.51.100.2").await.unwrap().status(), 401);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("client=198.51.100.1"), "{text}");
    assert!(text.contains("client=198.51.100.2"), "{text}");
}

#[tokio::test]
async fn the_failed_auth_limiter_remembers_a_bounded_number_of_addresses() {
    let ws = Workspace::new();
    let (server, _) = start_with(
        &ws,
        &[
            "--trusted-proxy",
            "127.0.0.1/32",
            "--failed-auth-per-minute",
            "5",
            "--failed-auth-max-addresses",
            "50",
        ],
    );
    let read = create_token(&ws.data_dir(), ACME, "read");
    let wrong = format!("alog_{}", "C".repeat(43));
    let call = |token: &str, n: usize| {
        server
            .client
            .get(server.url("/v1/whoami"))
            .bearer_auth(token)
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .send()
    };
    // Fifty addresses, each within its budget, fill the table...
    for n in 0..50 {
        assert_eq!(call(&wrong, n).await.unwrap().status(), 401, "address {n}");
    }
    // ...so, until some age out, failures are refused without being
    // remembered (fail closed), while a valid token still passes.
    for n in [50, 51, 7] {
        let res = call(&wrong, n).await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "address {n}");
        assert_eq!(
            res.headers()["retry-after"],
            "12",
            "one refill at 5 a minute"
        );
    }
    assert_eq!(call(&read, 50).await.unwrap().status(), 200);
}
