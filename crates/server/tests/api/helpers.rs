//! The harness: `spawn_app()` starts the real router on a real socket,
//! against a real SQLite store in a fresh temporary directory — or, with
//! `AUDITLOG_TEST_BACKEND=postgres`, a real PostgreSQL store on a fresh
//! database (the test script runs the suite once per backend) — with a
//! clock the test pins and moves; plus small data-driven helpers for
//! requests, events and problem documents.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use auditlog_core::checkpoint::NoteSigner;
use auditlog_core::record::{AccountId, Micros};
use auditlog_server::AppState;
use auditlog_server::auth::new_token;
use auditlog_store::postgres::PgOptions;
use auditlog_store::postgres::testing::TestDb;
use auditlog_store::sqlite::{SqliteOptions, SqliteStore};
use auditlog_store::{DynStore, Role, TokenScope};
use jiff::Timestamp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ACME: &str = "acme";
pub const GLOBEX: &str = "globex";

/// The instant the clock shows unless a test moves it.
pub const DEFAULT_NOW: &str = "2026-11-25T12:00:00Z";

/// Parses an RFC 3339 instant (any offset).
pub fn ts(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
}

/// The record's canonical rendering of an instant: UTC, milliseconds, `Z`.
pub fn canonical(s: &str) -> String {
    Micros::from_timestamp(ts(s)).to_rfc3339()
}

/// A URL query string from pairs, percent-encoded.
pub fn qs(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// How to start an app.
#[derive(Clone, Debug)]
pub struct AppOptions {
    pub now: Timestamp,
    /// CIDRs whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<&'static str>,
    /// Query deadline and export bounds.
    pub reads: auditlog_server::ReadConfig,
    /// A fault the store injects into itself (test builds only).
    pub fault: Option<auditlog_store::sqlite::Fault>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            now: ts(DEFAULT_NOW),
            trusted_proxies: Vec::new(),
            reads: auditlog_server::ReadConfig::default(),
            fault: None,
        }
    }
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub addr: SocketAddr,
    pub store: DynStore,
    pub client: reqwest::Client,
    /// Kept so the directory lives as long as the app.
    pub dir: TempDir,
    /// The app's PostgreSQL database, when the suite runs on PostgreSQL.
    db: Option<TestDb>,
    now: Arc<Mutex<Timestamp>>,
    options: AppOptions,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// One Prometheus recorder per test process: it is global, so every app
/// shares it (counters add up across tests; tests only look for their own).
fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        OnceLock::new();
    HANDLE.get_or_init(auditlog_server::install_metrics).clone()
}

/// Starts an app with the default options.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// Starts an app: a fresh store in a fresh temporary directory.
pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let dir = tempfile::tempdir().expect("create temp dir");
    let now = Arc::new(Mutex::new(options.now));
    // An injected fault is the embedded writer's: those tests stay on it.
    let db = (on_postgres() && options.fault.is_none()).then(|| {
        TestDb::create().expect("AUDITLOG_TEST_BACKEND=postgres needs AUDITLOG_TEST_DATABASE_URL")
    });
    let store = open_store(&dir, db.as_ref(), &now, options.fault);
    let (addr, shutdown, server) = start_server(store.clone(), now.clone(), &options).await;
    TestApp {
        base: format!("http://{addr}"),
        addr,
        store,
        client: reqwest::Client::new(),
        dir,
        db,
        now,
        options,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

/// Whether the suite runs on PostgreSQL (`AUDITLOG_TEST_BACKEND=postgres`).
fn on_postgres() -> bool {
    std::env::var("AUDITLOG_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The app's store: on `db` when there is one, else in `dir`.
fn open_store(
    dir: &TempDir,
    db: Option<&TestDb>,
    now: &Arc<Mutex<Timestamp>>,
    fault: Option<auditlog_store::sqlite::Fault>,
) -> DynStore {
    match db {
        Some(db) => {
            let opts = PgOptions {
                clock: store_clock(now),
                // The test's pinned clock, not the database's.
                database_clock: false,
                ..PgOptions::default()
            };
            Arc::new(auditlog_store::postgres::testing::open(&db.url, opts).expect("open store"))
        }
        None => {
            let opts = SqliteOptions {
                fault,
                clock: store_clock(now),
                ..SqliteOptions::default()
            };
            Arc::new(SqliteStore::open(dir.path(), opts).expect("open store"))
        }
    }
}

/// The store reads the same pinned clock as the server: `recorded_at` and
/// record ids are the test's instants too.
fn store_clock(now: &Arc<Mutex<Timestamp>>) -> auditlog_store::Clock {
    let now = now.clone();
    auditlog_store::Clock::new(move || *now.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The server secret of every test server (fixed, so fingerprints in
/// assertions can be computed by the test too).
pub fn test_secret() -> auditlog_core::secret::ServerSecret {
    auditlog_core::secret::ServerSecret::from_bytes([11; 32])
}

async fn start_server(
    store: DynStore,
    now: Arc<Mutex<Timestamp>>,
    options: &AppOptions,
) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let seed = [7u8; 32];
    let signer = NoteSigner::from_seed("auditlog.test", &seed).expect("signer");
    let trusted: Vec<ipnet::IpNet> = options
        .trusted_proxies
        .iter()
        .map(|c| c.parse().expect("test CIDR"))
        .collect();
    let state = AppState::from(auditlog_server::SharedState {
        store,
        clock: Arc::new(move || *now.lock().unwrap_or_else(|e| e.into_inner())),
        signer: Arc::new(signer),
        origin: "auditlog.test".into(),
        trusted_proxies: trusted.into(),
        metrics: metrics_handle(),
        keys: auditlog_server::Keys::derive(&test_secret()),
        large_bodies: Arc::new(tokio::sync::Semaphore::new(
            auditlog_server::DEFAULT_LARGE_BODIES,
        )),
        // Access tests send hundreds of wrong tokens from one address on
        // purpose; the failed-authentication limit is tested against the
        // binary (crates/cli/tests/cli/hardening.rs).
        limits: Arc::new(auditlog_server::limits::RequestLimits::new(
            auditlog_server::limits::LimitConfig {
                failed_auth_per_minute: 0,
                ..Default::default()
            },
        )),
        reads: auditlog_server::ReadLimits::new(options.reads.clone()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a port");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        auditlog_server::serve(listener, auditlog_server::app(state), shutdown)
            .await
            .expect("server ran");
    });
    (addr, tx, server)
}

impl TestApp {
    /// Moves the pinned clock.
    pub fn set_now(&self, at: &str) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = ts(at);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server and the store, then starts both again on the same
    /// directory (a new port): what survives is what is on disk.
    pub async fn restart(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(30), server)
                .await
                .expect("server stops within 30 s")
                .expect("server task");
        }
        let store = open_store(&self.dir, self.db.as_ref(), &self.now, None);
        self.store = store.clone();
        let (addr, shutdown, server) = start_server(store, self.now.clone(), &self.options).await;
        self.addr = addr;
        self.base = format!("http://{addr}");
        self.shutdown = Some(shutdown);
        self.server = Some(server);
        self.client = reqwest::Client::new();
    }

    /// A new token straight in the store: `(secret, token id)`.
    pub async fn token_with_id(&self, account: &str, role: Role) -> (String, String) {
        let scope = if account == "*" {
            TokenScope::All
        } else {
            TokenScope::Account(AccountId::parse(account).expect("test account id"))
        };
        let (secret, record) = new_token(scope, role, 0);
        let id = record.id.clone();
        self.store.create_token(record).await.expect("create token");
        (secret, id)
    }

    pub async fn token(&self, account: &str, role: Role) -> String {
        self.token_with_id(account, role).await.0
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// GET, expecting `200` and a JSON body.
    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        let res = self.get(token, path).await;
        let status = res.status();
        let text = res.text().await.expect("body");
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
    }

    pub async fn post_json(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn post_raw(
        &self,
        token: &str,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    /// Ingests one event, expecting `201`; returns the record.
    pub async fn ingest(&self, token: &str, account: &str, event: &Value) -> Value {
        let path = format!("/v1/accounts/{account}/events");
        let res = self.post_json(token, &path, event).await;
        let status = res.status();
        let text = res.text().await.expect("body");
        assert_eq!(status, StatusCode::CREATED, "ingest {event}: {text}");
        serde_json::from_str(&text).expect("record JSON")
    }

    /// Ingests a JSON batch, expecting `201`; returns `records`.
    pub async fn ingest_batch(&self, token: &str, account: &str, events: &[Value]) -> Vec<Value> {
        let path = format!("/v1/accounts/{account}/events/batch");
        let res = self
            .post_json(token, &path, &json!({ "events": events }))
            .await;
        let status = res.status();
        let text = res.text().await.expect("body");
        assert_eq!(status, StatusCode::CREATED, "batch: {text}");
        let v: Value = serde_json::from_str(&text).expect("batch JSON");
        v["records"].as_array().expect("records").clone()
    }

    /// Every event of a list query, following `next_cursor` with `limit`.
    pub async fn list_all(
        &self,
        token: &str,
        path: &str,
        query: &[(&str, &str)],
        limit: u32,
    ) -> Vec<Value> {
        let limit = limit.to_string();
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut pairs: Vec<(&str, &str)> = query.to_vec();
            pairs.push(("limit", &limit));
            if let Some(c) = &cursor {
                pairs.push(("cursor", c));
            }
            let page = self
                .get_json(token, &format!("{path}?{}", qs(&pairs)))
                .await;
            let events = page["events"].as_array().expect("events");
            assert!(
                events.len() <= limit.parse().unwrap(),
                "page longer than limit"
            );
            out.extend(events.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => {
                    assert!(!events.is_empty(), "a cursor after an empty page");
                    cursor = Some(c.to_owned());
                }
                None => break,
            }
            assert!(out.len() < 1_000_000, "paging does not end");
        }
        out
    }

    /// `GET …/count` with the query.
    pub async fn count(&self, token: &str, path: &str, query: &[(&str, &str)]) -> u64 {
        let v = self
            .get_json(token, &format!("{path}/count?{}", qs(query)))
            .await;
        v["count"].as_u64().unwrap_or_else(|| panic!("count: {v}"))
    }
}

/// The account's events path.
pub fn events_path(account: &str) -> String {
    format!("/v1/accounts/{account}/events")
}

/// A valid account-level "Role created" event; tests adjust fields.
pub fn role_created() -> Value {
    json!({
        "level": "account",
        "category": "Roles",
        "event": "Role created",
        "actor": {"kind": "user", "id": "u_1", "name": "Jane Doe", "email": "jane@acme.example"},
        "metadata": {"role_id": "r_9", "role_type": "custom"}
    })
}

/// `role_created()` at an instant.
pub fn role_created_at(at: &str) -> Value {
    let mut v = role_created();
    v["occurred_at"] = json!(at);
    v
}

/// A workflow-level event of `workflow` (no metadata needed).
pub fn workflow_event(workflow: &str) -> Value {
    json!({
        "level": "workflow",
        "category": "User Management",
        "event": "Invited users",
        "actor": {"id": "u_2", "name": "John Roe"},
        "workflow_id": workflow
    })
}

/// An account-level event of the Workflows category about `workflow`.
pub fn workflow_created(workflow: &str) -> Value {
    json!({
        "level": "account",
        "category": "Workflows",
        "event": "Workflow created",
        "actor": {"id": "u_1", "name": "Jane Doe"},
        "workflow_id": workflow,
        "metadata": {"workflow_name": "Invoices"}
    })
}

/// Checks a response is an RFC 9457 problem with `status`; returns it.
pub async fn problem(res: reqwest::Response, status: StatusCode) -> Value {
    let got = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.expect("body");
    assert_eq!(got, status, "body: {text}");
    assert_eq!(ctype, "application/problem+json", "body: {text}");
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("problem is not JSON ({e}): {text}"));
    assert_eq!(v["status"], json!(status.as_u16()), "{v}");
    for key in ["type", "title", "detail"] {
        assert!(v[key].is_string(), "problem without `{key}`: {v}");
    }
    v
}

/// The `path`s of a 422's `errors`.
pub fn error_paths(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {problem}"))
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_owned())
        .collect()
}

/// The message of the error at `path`.
pub fn error_message(problem: &Value, path: &str) -> String {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("no error at {path}: {problem}"))["message"]
        .as_str()
        .expect("message")
        .to_owned()
}

/// Polls `check` until it returns `Some`, for at most 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ids of a list of records, in order.
pub fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}
