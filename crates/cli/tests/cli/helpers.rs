//! The harness: runs the real `auditlog` binary in a temporary directory —
//! `serve` as a child process whose address is read from its first stdout
//! line, one-shot commands to completion — and talks to it over HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_auditlog");
pub const ACME: &str = "acme";
pub const GLOBEX: &str = "globex";

/// A command of the binary with no `AUDITLOG_*` variable inherited from
/// the environment running the tests.
pub fn auditlog() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("AUDITLOG_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AUDITLOG_LOG", "warn");
    cmd
}

/// Runs a one-shot command to completion.
pub fn run(args: &[&str]) -> Output {
    auditlog()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running auditlog {args:?}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "auditlog {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 stdout")
}

/// `auditlog token create`, straight into the data directory.
pub fn create_token(data_dir: &Path, account: &str, role: &str) -> String {
    let dir = data_dir.to_str().expect("UTF-8 path");
    let out = run_ok(&[
        "token",
        "create",
        "--data-dir",
        dir,
        "--account",
        account,
        "--role",
        role,
    ]);
    let token = out.trim().to_owned();
    assert!(
        token.starts_with("alog_") && !token.contains('\n'),
        "one token on stdout: {out:?}"
    );
    token
}

/// A temporary directory holding a data directory and server logs.
pub struct Workspace {
    pub dir: TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A running `auditlog serve`. Dropping it kills the process.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub client: reqwest::Client,
    /// Where its log goes.
    pub log: PathBuf,
}

impl Server {
    /// Starts `auditlog serve` on a free port and waits for its
    /// `listening on http://…` line. Logs go to `server-<n>.log` beside the
    /// data directory (a pipe nobody reads would fill and block it).
    pub fn start(ws: &Workspace) -> Server {
        Server::start_with(ws, &[], &[])
    }

    /// [`Server::start`] with extra environment variables (flags as
    /// `AUDITLOG_*`, or a test fault).
    pub fn start_with_env(ws: &Workspace, env: &[(&str, &str)]) -> Server {
        Server::start_with(ws, &[], env)
    }

    /// [`Server::start`] with more `serve` arguments and environment
    /// variables.
    pub fn start_with(ws: &Workspace, args: &[&str], envs: &[(&str, &str)]) -> Server {
        let n = std::fs::read_dir(ws.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log_path = ws.path(&format!("server-{n}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut child = auditlog()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(ws.data_dir())
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn auditlog serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Reads every line so the pipe never fills; the first one is the
        // address.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "auditlog serve printed no address ({e}); see {}",
                    ws.dir.path().display()
                );
            }
        };
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Server {
            child,
            base,
            client: reqwest::Client::new(),
            log: log_path,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (through `kill`, to stay free of `unsafe`).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit, for at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    /// The text of an unauthenticated `GET` (`/metrics`, `/v1/public-key`).
    pub async fn get_text(&self, path: &str) -> String {
        let res = self.client.get(self.url(path)).send().await.expect("GET");
        res.text().await.expect("body")
    }

    /// The signed checkpoint note of `account` (expecting `200`).
    pub async fn checkpoint(&self, token: &str, account: &str) -> String {
        let res = self
            .get(token, &format!("/v1/accounts/{account}/checkpoint"))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        res.text().await.expect("checkpoint text")
    }

    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        let res = self.get(token, path).await;
        let status = res.status();
        let text = res.text().await.expect("body");
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        serde_json::from_str(&text).expect("JSON")
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    /// Ingests one event, expecting `201`.
    pub async fn ingest(&self, token: &str, account: &str, event: &Value) -> Value {
        let res = self
            .post(token, &format!("/v1/accounts/{account}/events"), event)
            .await;
        let status = res.status();
        let text = res.text().await.expect("body");
        assert_eq!(status, StatusCode::CREATED, "{text}");
        serde_json::from_str(&text).expect("record")
    }

    /// `POST …/events/batch` of `events` for `account`.
    pub async fn post_batch(
        &self,
        token: &str,
        account: &str,
        events: &[Value],
    ) -> reqwest::Response {
        self.post(
            token,
            &format!("/v1/accounts/{account}/events/batch"),
            &json!({ "events": events }),
        )
        .await
    }

    /// Every record of the account (all time), following cursors.
    pub async fn list_all(&self, token: &str, account: &str, limit: u32) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/accounts/{account}/events?range=all_time&limit={limit}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.get_json(token, &path).await;
            out.extend(page["events"].as_array().expect("events").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    pub async fn count(&self, token: &str, account: &str) -> u64 {
        let v = self
            .get_json(
                token,
                &format!("/v1/accounts/{account}/events/count?range=all_time"),
            )
            .await;
        v["count"].as_u64().expect("count")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A valid "Role created" event.
pub fn role_created(n: usize) -> Value {
    json!({
        "level": "account",
        "category": "Roles",
        "event": "Role created",
        "actor": {"kind": "user", "id": format!("u_{n}"), "name": "Jane Doe"},
        "metadata": {"role_id": format!("r_{n}"), "role_type": "custom"},
        "description": format!("role {n}")
    })
}
