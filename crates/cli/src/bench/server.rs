//! The server under test: the real `auditlog serve` binary (this executable)
//! in a child process on a free port, started, stopped and restarted on the
//! same data directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a start may take: at ten million events the store rebuilds its
/// column index from the file before it listens.
const START_TIMEOUT: Duration = Duration::from_secs(900);

/// A running `auditlog serve`.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub pid: u32,
    pub base_url: String,
    data_dir: PathBuf,
    /// From spawning the process to `/readyz` answering.
    pub start_secs: f64,
}

/// A command for this executable without any `AUDITLOG_*` setting of the
/// caller's environment (a `AUDITLOG_DATABASE_URL` there must not redirect
/// the bench), logging warnings only.
fn self_command() -> Result<Command> {
    let exe = std::env::current_exe().context("locating the auditlog executable")?;
    let mut cmd = Command::new(exe);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AUDITLOG_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AUDITLOG_LOG", "warn");
    Ok(cmd)
}

/// Runs `auditlog <args>` to completion; returns stdout, or the error with
/// stderr.
pub async fn run_self(args: &[&str]) -> Result<String> {
    let out = self_command()?
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running auditlog {}", args.join(" ")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{}",
            err.trim()
                .lines()
                .last()
                .unwrap_or("failed without a message")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates a token offline in `data_dir`.
pub async fn create_token(data_dir: &Path, account: &str, role: &str) -> Result<String> {
    let dir = data_dir.to_string_lossy();
    let out = run_self(&[
        "token",
        "create",
        "--data-dir",
        &dir,
        "--account",
        account,
        "--role",
        role,
    ])
    .await
    .with_context(|| format!("creating a {role} token for {account}"))?;
    Ok(out.trim().to_owned())
}

impl Server {
    /// Starts the server on `data_dir` and waits until `/readyz` answers.
    pub async fn start(data_dir: &Path, client: &reqwest::Client) -> Result<Server> {
        let started = Instant::now();
        let log = data_dir.with_extension("server.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut child = self_command()?
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .context("starting auditlog serve")?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base_url = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.trim().strip_prefix("listening on ") {
                    return Ok(url.trim_end_matches('/').to_owned());
                }
            }
            anyhow::Ok(String::new())
        })
        .await
        .context("the server did not start in time")??;
        if base_url.is_empty() {
            bail!("the server exited before listening; see {}", log.display());
        }
        // Keep draining stdout so a later line can never block the server.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = client
                .get(format!("{base_url}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!("the server never became ready; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Server {
            child,
            pid,
            base_url,
            data_dir: data_dir.to_owned(),
            start_secs: started.elapsed().as_secs_f64(),
        })
    }

    /// Stops the server gracefully (SIGTERM, as an operator would) and waits
    /// for it to exit; kills it after a minute.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                tracing::warn!(
                    pid = self.pid,
                    "server did not stop within a minute; killing it"
                );
                self.child.kill().await?;
            }
        }
        Ok(())
    }

    /// Stops the server, drops its files from the page cache, and starts it
    /// again on the same data directory: the next query is a cold one.
    pub async fn restart_cold(self, client: &reqwest::Client) -> Result<Server> {
        let dir = self.data_dir.clone();
        self.stop().await?;
        super::proc::evict(&super::proc::files_in(&dir));
        Server::start(&dir, client).await
    }
}
