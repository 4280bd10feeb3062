//! The server under test: the real `auditlog serve` binary in a child
//! process on a free port, started, stopped and restarted on the same data
//! directory; and the binary's other commands the bench runs (`token
//! create`, `verify`).

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
    bin: Auditlog,
    child: Child,
    pub pid: u32,
    pub base_url: String,
    data_dir: PathBuf,
    /// `serve` arguments of this server beyond the bench's own (e.g.
    /// `--database-url`), kept for restarts.
    extra_args: Vec<String>,
    /// From spawning the process to `/readyz` answering.
    pub start_secs: f64,
}

/// Arguments added to every `auditlog serve` (`--serve-arg`).
pub static SERVE_ARGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// The `auditlog` binary under test.
///
/// The bench used to be `auditlog bench` and started its own executable;
/// as its own crate it must find the product binary, and keep
/// `cargo run --release -p auditlog-bench -- --quick` one command from a
/// clean checkout. Stable cargo cannot build another package's binary as a
/// dependency (artifact dependencies are nightly-only), so when the bench
/// runs under cargo (`CARGO` is set) it runs `cargo build -p auditlog` in the
/// same profile itself: a no-op when the binary is fresh, and never a stale
/// server measured by mistake. Cargo reports the executable's path, so a
/// custom target directory works too. Run directly, the bench takes the
/// `auditlog` beside its own executable; `--auditlog PATH` overrides both.
#[derive(Debug, Clone)]
pub struct Auditlog {
    exe: PathBuf,
}

impl Auditlog {
    /// Finds (and under cargo, builds) the binary; see the type's docs.
    pub fn locate(explicit: Option<PathBuf>) -> Result<Auditlog> {
        if let Some(exe) = explicit {
            if !exe.is_file() {
                bail!("--auditlog {}: no such file", exe.display());
            }
            return Ok(Auditlog { exe });
        }
        let own = std::env::current_exe().context("locating the bench executable")?;
        let dir = own
            .parent()
            .context("the bench executable has no directory")?;
        if let Some(cargo) = std::env::var_os("CARGO") {
            return Self::build(&cargo, dir).map(|exe| Auditlog { exe });
        }
        let exe = dir.join("auditlog");
        if !exe.is_file() {
            bail!(
                "no auditlog binary beside {}: build it (cargo build --release -p auditlog), \
                 run the bench with `cargo run --release -p auditlog-bench`, or pass --auditlog PATH",
                own.display()
            );
        }
        Ok(Auditlog { exe })
    }

    /// `cargo build -p auditlog` in the bench's own profile (the name of the
    /// directory it runs from: `debug` is the dev profile); returns the path
    /// cargo reports for the executable.
    fn build(cargo: &std::ffi::OsStr, profile_dir: &Path) -> Result<PathBuf> {
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        eprintln!("bench: building auditlog (cargo build --profile {profile} -p auditlog)");
        let out = std::process::Command::new(cargo)
            .args([
                "build",
                "-p",
                "auditlog",
                "--bin",
                "auditlog",
                "--profile",
                profile,
            ])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--message-format=json-render-diagnostics")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .context("running cargo build -p auditlog")?;
        if !out.status.success() {
            bail!("cargo build -p auditlog failed ({})", out.status);
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "auditlog")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .context("cargo build -p auditlog reported no executable")
    }

    /// A command for the binary without any `AUDITLOG_*` setting of the
    /// caller's environment (a `AUDITLOG_DATABASE_URL` there must not
    /// redirect the bench), logging warnings only.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("AUDITLOG_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("AUDITLOG_LOG", "warn");
        cmd
    }

    /// Runs `auditlog <args>` to completion; returns stdout, or the error
    /// with stderr.
    pub async fn run(&self, args: &[&str]) -> Result<String> {
        let out = self
            .command()
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
    pub async fn create_token(&self, data_dir: &Path, account: &str, role: &str) -> Result<String> {
        let dir = data_dir.to_string_lossy();
        let out = self
            .run(&[
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
}

impl Server {
    /// Starts the server on `data_dir` and waits until `/readyz` answers.
    pub async fn start(
        bin: &Auditlog,
        data_dir: &Path,
        client: &reqwest::Client,
    ) -> Result<Server> {
        Server::start_with(bin, data_dir, &[], client).await
    }

    /// [`Server::start`] with more `serve` arguments (`--database-url`:
    /// the data directory then holds only the keys, which every instance
    /// on one database shares).
    pub async fn start_with(
        bin: &Auditlog,
        data_dir: &Path,
        extra_args: &[String],
        client: &reqwest::Client,
    ) -> Result<Server> {
        let started = Instant::now();
        let log = data_dir.with_extension("server.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut child = bin
            .command()
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(SERVE_ARGS.get().into_iter().flatten())
            .args(extra_args)
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
            bin: bin.clone(),
            child,
            pid,
            base_url,
            data_dir: data_dir.to_owned(),
            extra_args: extra_args.to_vec(),
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
                crate::step(format_args!(
                    "warning: the server (pid {}) did not stop within a minute; killing it",
                    self.pid
                ));
                self.child.kill().await?;
            }
        }
        Ok(())
    }

    /// Stops the server, drops its files from the page cache, and starts it
    /// again on the same data directory: the next query is a cold one.
    pub async fn restart_cold(self, client: &reqwest::Client) -> Result<Server> {
        let (bin, dir, extra) = (
            self.bin.clone(),
            self.data_dir.clone(),
            self.extra_args.clone(),
        );
        self.stop().await?;
        crate::proc::evict(&crate::proc::files_in(&dir));
        Server::start_with(&bin, &dir, &extra, client).await
    }
}
