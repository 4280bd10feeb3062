//! The binary on PostgreSQL when the database goes away (issue 14): the
//! database stopped hard and started again under writers, and a failover
//! from a primary to its synchronous streaming replica. Each runs its own
//! clusters (`pg_cluster.rs`): the shared test server must never stop.
//!
//! What both check: every request is answered within [`ANSWER_BOUND`]
//! (success, or `503` with `Retry-After`: no request hangs on a database
//! that is gone), `/readyz` says so, the instances recover by themselves,
//! and afterwards every acknowledged event is in the log exactly once
//! (the retries of requests whose outcome was unknown included), with
//! dense seqs and checkpoints consistent across the fault.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ACME, Server, Workspace, role_created};
use crate::pg_cluster::{self, BlackHole, Cluster};
use crate::postgres::{assert_consistent, assert_one_log, create_token, start};
use crate::tlog::{checkpoint, size_of};

/// The longest any request may take while the database is down,
/// restarting or failing over. A hang check, not a performance claim: a
/// request answers at once or after the store's connect timeout (5 s).
const ANSWER_BOUND: Duration = Duration::from_secs(15);
/// Events per batch a writer posts.
const BATCH: usize = 10;
/// How long a test waits for a state it expects (ready again, a lock
/// taken) before it fails.
const SETTLE: Duration = Duration::from_secs(60);

/// What the writers share with the test.
#[derive(Default)]
struct Progress {
    /// Batches acknowledged (201).
    batches: AtomicUsize,
    /// `503` answers (each with `Retry-After`).
    unavailable: AtomicUsize,
    /// Every acknowledged `{id, seq}`.
    acked: Mutex<Vec<Value>>,
    stop: AtomicBool,
}

impl Progress {
    /// Waits until `n` more batches than now are acknowledged.
    async fn wait_batches(&self, n: usize) {
        let target = self.batches.load(Ordering::SeqCst) + n;
        let deadline = Instant::now() + SETTLE;
        while self.batches.load(Ordering::SeqCst) < target {
            assert!(Instant::now() < deadline, "the writers made no progress");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the writers were answered `503` `n` times in all.
    async fn wait_unavailable(&self, n: usize) {
        let deadline = Instant::now() + SETTLE;
        while self.unavailable.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "the writers never met the fault");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Writer `w`: keyed batches, each retried (same idempotency keys) until
/// acknowledged, at the instances of `bases` in turn after a failure (as
/// a client behind a load balancer), until told to stop.
async fn writer(w: usize, bases: Vec<String>, token: String, progress: Arc<Progress>) {
    let client = reqwest::Client::builder()
        .timeout(ANSWER_BOUND * 4)
        .build()
        .expect("client");
    let mut at = w % bases.len();
    for b in 0.. {
        if progress.stop.load(Ordering::SeqCst) {
            return;
        }
        let events: Vec<Value> = (0..BATCH)
            .map(|i| {
                let n = (w * 100_000) + b * BATCH + i;
                let mut e = role_created(n);
                e["idempotency_key"] = json!(format!("w{w}-{n}"));
                e
            })
            .collect();
        let deadline = Instant::now() + SETTLE;
        loop {
            let url = format!("{}/v1/accounts/{ACME}/events/batch", bases[at]);
            let sent = Instant::now();
            let res = client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({ "events": events }))
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {url}: {e}"));
            let took = sent.elapsed();
            assert!(took <= ANSWER_BOUND, "POST {url} took {took:?}");
            let status = res.status();
            if status == StatusCode::CREATED {
                let body: Value = res.json().await.expect("records");
                let records = body["records"].as_array().expect("records").clone();
                assert_eq!(records.len(), BATCH);
                progress.acked.lock().unwrap().extend(records);
                progress.batches.fetch_add(1, Ordering::SeqCst);
                break;
            }
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                res.text().await.unwrap_or_default()
            );
            assert!(
                res.headers().contains_key("retry-after"),
                "503 without Retry-After"
            );
            progress.unavailable.fetch_add(1, Ordering::SeqCst);
            assert!(Instant::now() < deadline, "writer {w} was never answered");
            at = (at + 1) % bases.len();
            // Shorter than the Retry-After the server asks for, to keep
            // the test brief; a client may retry sooner at its own risk.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn spawn_writers(
    n: usize,
    bases: &[String],
    token: &str,
    progress: &Arc<Progress>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|w| {
            let (bases, token) = (bases.to_vec(), token.to_owned());
            tokio::spawn(writer(w, bases, token, progress.clone()))
        })
        .collect()
}

/// Stops the writers after their batch in hand; every acknowledged
/// `{id, seq}`.
async fn stop_writers(progress: &Progress, tasks: Vec<tokio::task::JoinHandle<()>>) -> Vec<Value> {
    progress.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("writer");
    }
    std::mem::take(&mut *progress.acked.lock().unwrap())
}

/// An unauthenticated `GET`, answered within [`ANSWER_BOUND`]: its status.
async fn probe(server: &Server, path: &str) -> StatusCode {
    let sent = Instant::now();
    let res = server
        .client
        .get(server.url(path))
        .timeout(ANSWER_BOUND * 4)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let took = sent.elapsed();
    assert!(took <= ANSWER_BOUND, "GET {path} took {took:?}");
    if res.status() == StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            res.headers().contains_key("retry-after"),
            "503 without Retry-After"
        );
    }
    res.status()
}

/// Waits until `/readyz` of `server` answers `expected`.
async fn wait_ready(server: &Server, expected: StatusCode) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let status = probe(server, "/readyz").await;
        if status == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {status}, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Blocking work (a cluster command) from the async test.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The database stopped hard under four writers and started again: every
/// request is answered in time (201, or 503 with Retry-After), `/readyz`
/// turns false while the probes and metrics still answer, the server
/// recovers by itself, and every acknowledged event is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_stopped_and_started_under_writers() {
    if !pg_cluster::available() {
        return;
    }
    let mut db = blocking(Cluster::start);
    let url = db.url();
    let ws = Workspace::new();
    let ingest = create_token(&url, ACME, "ingest");
    let read = create_token(&url, ACME, "read");
    let server = start(&ws, &url);
    let progress = Arc::new(Progress::default());
    let writers = spawn_writers(4, std::slice::from_ref(&server.base), &ingest, &progress);
    progress.wait_batches(8).await;
    let early = checkpoint(&server, &read).await;

    blocking(|| db.stop_hard());
    wait_ready(&server, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(probe(&server, "/healthz").await, StatusCode::OK);
    assert_eq!(probe(&server, "/metrics").await, StatusCode::OK);
    let read_down = server
        .get(
            &read,
            &format!("/v1/accounts/{ACME}/events/count?range=all_time"),
        )
        .await;
    assert_eq!(read_down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(read_down.headers().contains_key("retry-after"));
    // The writers meet the outage before the database comes back.
    progress.wait_unavailable(4).await;

    blocking(|| db.restart());
    let restarted = Instant::now();
    wait_ready(&server, StatusCode::OK).await;
    eprintln!(
        "ready {:?} after the database accepted connections again",
        restarted.elapsed()
    );
    progress.wait_batches(8).await;
    stop_and_check(&ws, &server, &read, &progress, writers, &early).await;
}

/// Stops the writers and checks what they leave on `server`: the two
/// "Token created" events and every acknowledged event once, seq
/// contiguous, and a later checkpoint consistent with `early`.
async fn stop_and_check(
    ws: &Workspace,
    server: &Server,
    read: &str,
    progress: &Progress,
    writers: Vec<tokio::task::JoinHandle<()>>,
    early: &str,
) {
    let acked = stop_writers(progress, writers).await;
    eprintln!(
        "{} events acknowledged, {} answers 503",
        acked.len(),
        progress.unavailable.load(Ordering::SeqCst)
    );
    let listed = server.list_all(read, ACME, 1000).await;
    assert_one_log(&listed, &acked, 2 + acked.len());
    let late = checkpoint(server, read).await;
    assert!(size_of(&late) > size_of(early));
    assert_consistent(ws, server, read, early, &late).await;
}

/// The database frozen under four writers (its processes stopped: hung
/// storage, while its machine still accepts connections and acknowledges
/// what is sent, so only the server's own bounds can answer): every request
/// is answered in time (the request timeout, shortened here, answers 503
/// with Retry-After; `/readyz` gives up on the store after its own bound;
/// the probes and metrics answer), and once the database goes on, so does
/// the server, with every acknowledged event there once (the appends whose
/// requests timed out committed later, and their retries found them) and
/// checkpoints consistent across the hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_database_is_answered_in_bounded_time() {
    if !pg_cluster::available() {
        return;
    }
    let mut db = blocking(Cluster::start);
    let url = db.url();
    let ws = Workspace::new();
    let ingest = create_token(&url, ACME, "ingest");
    let read = create_token(&url, ACME, "read");
    let args = ["--database-url", &url, "--request-timeout-secs", "8"];
    let server = Server::start_with(&ws, &args, &[]);
    let progress = Arc::new(Progress::default());
    let writers = spawn_writers(4, std::slice::from_ref(&server.base), &ingest, &progress);
    progress.wait_batches(8).await;
    let early = checkpoint(&server, &read).await;

    blocking(|| db.freeze());
    wait_ready(&server, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(probe(&server, "/healthz").await, StatusCode::OK);
    assert_eq!(probe(&server, "/metrics").await, StatusCode::OK);
    progress.wait_unavailable(4).await;

    blocking(|| db.thaw());
    wait_ready(&server, StatusCode::OK).await;
    progress.wait_batches(8).await;
    stop_and_check(&ws, &server, &read, &progress, writers, &early).await;
}

/// A primary with a synchronous streaming replica, two instances given the
/// multi-host URL (`target_session_attrs=read-write`) and writers on both;
/// the primary's machine lost (stopped hard, its address silent) and the
/// replica promoted. The instances carry
/// on by themselves on the new primary: every event acknowledged before
/// (and after) the failure is there once, checkpoints across the failover
/// are consistent, the checkpoint signer is elected again and both
/// revocation listeners listen there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_follow_a_failover_to_the_promoted_replica() {
    if !pg_cluster::available() {
        return;
    }
    let mut primary = blocking(Cluster::start);
    let replica = blocking(|| primary.start_replica());
    let url = format!(
        "postgres://postgres@{},{}/postgres?target_session_attrs=read-write",
        primary.addr(),
        replica.addr()
    );
    let ws = Workspace::new();
    let ingest = create_token(&url, ACME, "ingest");
    let read = create_token(&url, ACME, "read");
    let first = start(&ws, &url);
    let second = start(&ws, &url);
    let bases = [first.base.clone(), second.base.clone()];
    let progress = Arc::new(Progress::default());
    let writers = spawn_writers(4, &bases, &ingest, &progress);
    progress.wait_batches(8).await;
    let early = checkpoint(&first, &read).await;
    let before_failure = progress.acked.lock().unwrap().clone();

    // The primary's machine is lost: its server stops at once and its
    // address answers nothing any more (a connect there waits for its
    // timeout, as to a host powered off).
    blocking(|| primary.stop_hard());
    let _lost = BlackHole::open(primary.port);
    // The replica is up but read-only: no instance may use it yet.
    wait_ready(&first, StatusCode::SERVICE_UNAVAILABLE).await;
    wait_ready(&second, StatusCode::SERVICE_UNAVAILABLE).await;
    blocking(|| replica.promote());
    let promoted = Instant::now();
    wait_ready(&first, StatusCode::OK).await;
    wait_ready(&second, StatusCode::OK).await;
    eprintln!(
        "both instances ready {:?} after the promotion",
        promoted.elapsed()
    );
    progress.wait_batches(8).await;
    let acked = stop_writers(&progress, writers).await;
    eprintln!(
        "{} events acknowledged ({} before the failure), {} answers 503",
        acked.len(),
        before_failure.len(),
        progress.unavailable.load(Ordering::SeqCst)
    );

    // Both instances read the new primary only (the old one is down).
    let listed = first.list_all(&read, ACME, 1000).await;
    assert_eq!(second.list_all(&read, ACME, 1000).await, listed);
    assert_one_log(&listed, &before_failure, 2 + acked.len());
    assert_one_log(&listed, &acked, 2 + acked.len());
    let stored = blocking(|| replica.sql("SELECT count(*) FROM events"));
    assert_eq!(stored, (2 + acked.len()).to_string());
    let late = checkpoint(&second, &read).await;
    assert!(size_of(&late) > size_of(&early));
    assert_consistent(&ws, &first, &read, &early, &late).await;

    // One signer holds its lock on the new primary, and both instances'
    // revocation listeners are connected there.
    let (high, low) = split_lock_key(auditlog_store::postgres::testing::SIGNER_LOCK);
    blocking(|| {
        replica.wait_for(
            &format!(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND classid = {high} AND objid = {low} AND objsubid = 1"
            ),
            "1",
        );
        replica.wait_for(
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{}'",
                auditlog_store::postgres::testing::LISTENER_NAME
            ),
            "2",
        );
    });
}

/// How `pg_locks` shows a one-`bigint` advisory lock: its high and low 32
/// bits as `classid` and `objid`.
fn split_lock_key(key: i64) -> (u32, u32) {
    ((key >> 32) as u32, key as u32)
}
