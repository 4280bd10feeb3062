//! The bench's HTTP side: ingest (batches from a few clients, single events
//! from 64), dashboard queries and exports against a running auditlog.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::dataset::Reader;
use super::stats::Latency;
use super::{Range, Shape, proc};

/// Events per batch request, as the issue asks.
pub const BATCH: usize = 1000;

/// An HTTP/1.1 client with a connection pool large enough for 64 clients;
/// proxies from the environment are ignored (the server is local).
pub fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()?)
}

/// One ingest measurement.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Throughput {
    pub events: u64,
    /// Requests (auditlog) or transactions (baseline).
    pub requests: u64,
    pub clients: usize,
    pub secs: f64,
    pub events_per_sec: f64,
    /// Per request (auditlog) or per transaction (baseline).
    pub latency: Latency,
    /// CPU seconds the server spent in the phase (auditlog only).
    pub server_cpu_secs: Option<f64>,
    /// CPU seconds the bench process spent in the phase: the client's share
    /// of the two cores.
    pub client_cpu_secs: f64,
}

impl Throughput {
    /// One line for the progress output: the rate, and the CPU each event
    /// cost the server and the client (which share the machine's cores, so
    /// CPU per event is the steadier figure on a busy machine).
    pub fn summary(&self) -> String {
        let per_event = |secs: f64| secs * 1e6 / self.events.max(1) as f64;
        format!(
            "{:.0} events/s, p99 {:.1} ms; CPU per event: server {:.1} µs, client {:.1} µs",
            self.events_per_sec,
            self.latency.p99_ms,
            per_event(self.server_cpu_secs.unwrap_or_default()),
            per_event(self.client_cpu_secs),
        )
    }
}

/// POSTs prepared JSON bodies: the batch load generator, on the same
/// reqwest client as the queries, exports and `auditlog export`/`import`.
/// A batch carries 1,000 events, so the client's cost per request is
/// nothing beside the server's (1.2–1.5 µs of client CPU per event, as with
/// the hand-made [`Conn`]). What a request costs the client is measured in
/// every run (the report's "CPU per event: client").
#[derive(Debug, Clone)]
struct Poster {
    client: reqwest::Client,
    auth: HeaderValue,
}

impl Poster {
    fn new(client: &reqwest::Client, token: &str) -> Result<Poster> {
        Ok(Poster {
            client: client.clone(),
            auth: HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the token is not a valid header value")?,
        })
    }

    /// POSTs `body` as JSON to `url`; the time to the whole answer, which
    /// must be 201 Created.
    async fn post(&self, url: &Url, body: &Bytes) -> Result<Duration> {
        let t = Instant::now();
        let res = self
            .client
            .post(url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.clone())
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = res.status();
        let answer = res.bytes().await.with_context(|| format!("POST {url}"))?;
        let elapsed = t.elapsed();
        if status != StatusCode::CREATED {
            bail!("POST {url}: {status}: {}", String::from_utf8_lossy(&answer));
        }
        Ok(elapsed)
    }
}

/// A keep-alive HTTP/1.1 connection that POSTs prepared bodies: the
/// single-event load generator, the one place the bench does not use
/// reqwest. With one event per request the client's cost per request is
/// its cost per event, and it comes out of the same two cores as the
/// server's, so it must stay small: one buffer, one write per request,
/// httparse for the answer. Measured when the bench moved to its own crate
/// (quick runs, alternated, on a busy machine): reqwest took 34.5, 42.5 and
/// 38.0 µs of client CPU per single event, this 21.5 and 23.0 µs; at the
/// full run's ~27k events/s that difference is about a third of a core
/// taken from the server under test.
struct Conn {
    stream: tokio::net::TcpStream,
    host: String,
    auth: String,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(base: &str, token: &str) -> Result<Conn> {
        let host = base
            .strip_prefix("http://")
            .with_context(|| format!("not an http:// address: {base}"))?
            .trim_end_matches('/')
            .to_owned();
        let stream = tokio::net::TcpStream::connect(&host)
            .await
            .with_context(|| format!("connect to {host}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            host,
            auth: format!("Bearer {token}"),
            out: Vec::new(),
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// POSTs `body` as JSON to `path`; the time to the whole answer, which
    /// must be 201 Created.
    async fn post(&mut self, path: &str, body: &[u8]) -> Result<Duration> {
        use tokio::io::AsyncReadExt;
        let t = Instant::now();
        self.out.clear();
        self.out.extend_from_slice(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                self.host,
                self.auth,
                body.len()
            )
            .as_bytes(),
        );
        self.out.extend_from_slice(body);
        self.stream
            .write_all(&self.out)
            .await
            .with_context(|| format!("POST {path}"))?;
        self.buf.clear();
        let (status, head_len, body_len) = loop {
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("POST {path}: the server closed the connection");
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut res = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(n) = res.parse(&self.buf)? {
                let len = res
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .with_context(|| format!("POST {path}: an answer without Content-Length"))?;
                break (res.code.unwrap_or(0), n, len);
            }
        };
        while self.buf.len() < head_len + body_len {
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                bail!("POST {path}: the answer was cut off");
            }
        }
        let elapsed = t.elapsed();
        if status != 201 {
            bail!(
                "POST {path}: {status}: {}",
                String::from_utf8_lossy(&self.buf[head_len..head_len + body_len])
            );
        }
        Ok(elapsed)
    }
}

/// `{base}{path}` as a URL, parsed once rather than per request.
fn url(base: &str, path: &str) -> Result<Url> {
    let s = format!("{base}{path}");
    Url::parse(&s).with_context(|| format!("not a URL: {s}"))
}

/// Sends the first `n` events of the dataset in per-account batches of
/// [`BATCH`] from `clients` concurrent clients. Returns the throughput and
/// the events sent per account.
pub async fn ingest_batches(
    http: &reqwest::Client,
    bases: &[&str],
    token: &str,
    dataset: &Path,
    n: u64,
    clients: usize,
    server_pids: &[u32],
) -> Result<(Throughput, HashMap<String, u64>)> {
    // The reader thread groups lines by account and hands ready bodies to
    // the clients; the queue is short so reading stays just ahead of sending.
    let (tx, rx) = tokio::sync::mpsc::channel::<(String, Bytes)>(clients * 2);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let path = dataset.to_owned();
    let cpu0 = (servers_cpu_secs(server_pids), proc::cpu_secs(None));
    let started = Instant::now();
    let reader = tokio::task::spawn_blocking(move || -> Result<(u64, HashMap<String, u64>)> {
        let mut pending: HashMap<String, Vec<String>> = HashMap::new();
        let mut per_account: HashMap<String, u64> = HashMap::new();
        let mut requests = 0;
        let send = |account: &str, lines: &[String]| {
            let mut body =
                Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 16);
            body.extend_from_slice(b"{\"events\":[");
            for (i, l) in lines.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(l.as_bytes());
            }
            body.extend_from_slice(b"]}");
            tx.blocking_send((account.to_owned(), Bytes::from(body)))
                .is_ok()
        };
        for item in Reader::open(&path)?.take(n as usize) {
            let (account, json) = item?;
            *per_account.entry(account.clone()).or_default() += 1;
            let buf = pending.entry(account.clone()).or_default();
            buf.push(json);
            if buf.len() == BATCH {
                let lines = std::mem::take(buf);
                requests += 1;
                if !send(&account, &lines) {
                    bail!("the ingest clients stopped");
                }
            }
        }
        let mut rest: Vec<_> = pending.into_iter().filter(|(_, l)| !l.is_empty()).collect();
        rest.sort();
        for (account, lines) in rest {
            requests += 1;
            if !send(&account, &lines) {
                bail!("the ingest clients stopped");
            }
        }
        Ok((requests, per_account))
    });
    let poster = Poster::new(http, token)?;
    let mut workers = Vec::with_capacity(clients);
    // Client `i` talks to instance `i mod n`: the load split evenly, as a
    // round-robin load balancer would.
    for i in 0..clients {
        let (rx, poster, base) = (
            rx.clone(),
            poster.clone(),
            bases[i % bases.len()].to_owned(),
        );
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let next = rx.lock().await.recv().await;
                let Some((account, body)) = next else { break };
                let url = url(&base, &format!("/v1/accounts/{account}/events/batch"))?;
                lat.push(poster.post(&url, &body).await?);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut samples = Vec::new();
    let mut failure = None;
    for w in workers {
        match w.await? {
            Ok(l) => samples.extend(l),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let (requests, per_account) = reader.await??;
    let secs = started.elapsed().as_secs_f64();
    Ok((
        Throughput {
            events: n,
            requests,
            clients,
            secs,
            events_per_sec: n as f64 / secs,
            latency: Latency::of(samples),
            server_cpu_secs: Some(servers_cpu_secs(server_pids) - cpu0.0),
            client_cpu_secs: proc::cpu_secs(None) - cpu0.1,
        },
        per_account,
    ))
}

/// The CPU seconds of every server process, summed.
fn servers_cpu_secs(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| proc::cpu_secs(Some(p))).sum()
}

/// Sends `events` one request each from `clients` concurrent clients.
pub async fn ingest_singles(
    bases: &[&str],
    token: &str,
    events: Vec<(String, String)>,
    clients: usize,
    server_pids: &[u32],
) -> Result<Throughput> {
    let n = events.len();
    let events: Arc<Vec<(String, Bytes)>> = Arc::new(
        events
            .into_iter()
            .map(|(a, j)| (format!("/v1/accounts/{a}/events"), Bytes::from(j)))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = (servers_cpu_secs(server_pids), proc::cpu_secs(None));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(clients);
    for i in 0..clients {
        let (events, next) = (events.clone(), next.clone());
        let mut conn = Conn::open(bases[i % bases.len()], token).await?;
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, body)) = events.get(i) else {
                    break;
                };
                lat.push(conn.post(path, body).await?);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut samples = Vec::with_capacity(n);
    for w in workers {
        samples.extend(w.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Throughput {
        events: n as u64,
        requests: n as u64,
        clients,
        secs,
        events_per_sec: n as f64 / secs,
        latency: Latency::of(samples),
        server_cpu_secs: Some(servers_cpu_secs(server_pids) - cpu0.0),
        client_cpu_secs: proc::cpu_secs(None) - cpu0.1,
    })
}

/// Reads the read API of one account.
#[derive(Debug, Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
    pub account: String,
}

impl Api {
    fn url(&self, endpoint: &str, shape: &Shape, range: &Range, extra: &[(&str, &str)]) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("range", range.name);
        for f in &shape.api {
            q.append_pair("filter", f);
        }
        if shape.join_or {
            q.append_pair("join", "or");
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        format!(
            "{}/v1/accounts/{}/events{endpoint}?{}",
            self.base,
            self.account,
            q.finish()
        )
    }

    async fn get(&self, url: String) -> Result<Bytes> {
        let res = self
            .client
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = res.status();
        let body = res.bytes().await?;
        if !status.is_success() {
            bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body)
    }

    /// `GET …/count`: the exact count.
    pub async fn count(&self, shape: &Shape, range: &Range) -> Result<u64> {
        let body = self.get(self.url("/count", shape, range, &[])).await?;
        let v: Value = serde_json::from_slice(&body)?;
        v["count"]
            .as_u64()
            .context("count response without `count`")
    }

    /// `GET …/histogram?bucket=day`: returns the number of buckets.
    pub async fn histogram(&self, shape: &Shape, range: &Range) -> Result<usize> {
        let body = self
            .get(self.url("/histogram", shape, range, &[("bucket", "day")]))
            .await?;
        let v: Value = serde_json::from_slice(&body)?;
        Ok(v["buckets"].as_array().map_or(0, Vec::len))
    }

    /// `GET …/events?limit=50`: the first page; returns its size in bytes.
    pub async fn first_page(&self, shape: &Shape, range: &Range) -> Result<usize> {
        let body = self
            .get(self.url("", shape, range, &[("limit", "50")]))
            .await?;
        Ok(body.len())
    }

    /// Count, histogram and first page issued together (concurrently, as the
    /// dashboard's page load does); returns the count.
    pub async fn dashboard(&self, shape: &Shape, range: &Range) -> Result<u64> {
        let (count, _, _) = tokio::try_join!(
            self.count(shape, range),
            self.histogram(shape, range),
            self.first_page(shape, range)
        )?;
        Ok(count)
    }

    /// Streams an all-time export; counts its lines and, for JSONL, writes it
    /// to `save`. Returns the line count and the bytes.
    pub async fn export(&self, format: &str, save: Option<&PathBuf>) -> Result<(u64, u64)> {
        let url = format!(
            "{}/v1/accounts/{}/events/export?range=all_time&format={format}",
            self.base, self.account
        );
        let res = self
            .client
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !res.status().is_success() {
            let status = res.status();
            bail!(
                "GET {url}: {status}: {}",
                res.text().await.unwrap_or_default()
            );
        }
        let mut file = match save {
            Some(p) => Some(tokio::io::BufWriter::with_capacity(
                1 << 20,
                tokio::fs::File::create(p)
                    .await
                    .with_context(|| format!("creating {}", p.display()))?,
            )),
            None => None,
        };
        let (mut lines, mut bytes) = (0u64, 0u64);
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.context("reading the export")?;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            bytes += chunk.len() as u64;
            if let Some(f) = file.as_mut() {
                f.write_all(&chunk).await?;
            }
        }
        if let Some(mut f) = file {
            f.flush().await?;
        }
        Ok((lines, bytes))
    }

    /// A plain-text GET (checkpoint, public key).
    pub async fn text(&self, path: &str, auth: bool) -> Result<String> {
        let url = format!("{}{path}", self.base);
        let mut req = self.client.get(&url);
        if auth {
            req = req.bearer_auth(&self.token);
        }
        let res = req.send().await.with_context(|| format!("GET {url}"))?;
        let status = res.status();
        let text = res.text().await?;
        if !status.is_success() {
            bail!("GET {url}: {status}: {text}");
        }
        Ok(text)
    }
}

/// Whether `e` is the server's refusal of a query as too broad (400
/// `query-too-broad`: it would read more stored events than its cap).
pub fn too_broad(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("/problems/query-too-broad")
}
