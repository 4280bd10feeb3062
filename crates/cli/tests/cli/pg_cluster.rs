//! Private PostgreSQL 15 clusters for the tests that stop, restart and fail
//! over a database: the shared test server (`scripts/postgres.sh`) serves
//! other tests at the same time and must never be stopped, so each such
//! test runs its own clusters, on free ports, in a temporary directory.
//!
//! `initdb` refuses root: the clusters belong to the `postgres` user
//! (`runuser -u postgres --`), in a directory it owns. A [`Cluster`] is
//! stopped hard and removed when dropped, also when the test fails.
//!
//! When the tests run: as root (or as `postgres`) with Debian's PostgreSQL
//! 15 installed. Otherwise they say why and pass locally, and fail in CI
//! (`CI=true`), as the other PostgreSQL tests do.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const BIN: &str = "/usr/lib/postgresql/15/bin";

/// Whether clusters can be made here; `false` (said on stderr) outside CI
/// when they cannot, a panic in CI.
pub fn available() -> bool {
    let user = user();
    let missing = if !Path::new(BIN).join("initdb").exists() {
        Some(format!("PostgreSQL 15 is not installed ({BIN})"))
    } else if user != "root" && user != "postgres" {
        Some(format!(
            "running as {user:?}: a private cluster needs root (initdb runs as the postgres user)"
        ))
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI must run the PostgreSQL fault tests, but {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED: PostgreSQL fault test: {why}");
            false
        }
    }
}

/// The name of the user running the tests.
fn user() -> String {
    let out = Command::new("id").arg("-un").output().ok();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// A command run as the `postgres` user, from a directory it can read
/// (some tools refuse to start where they cannot).
fn as_postgres(program: &str) -> Command {
    let path = Path::new(BIN).join(program);
    let mut cmd = if user() == "postgres" {
        Command::new(path)
    } else {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(path);
        cmd
    };
    cmd.current_dir("/tmp");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A port nothing listens on right now (the kernel's pick for port 0).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// One PostgreSQL cluster (a data directory and, while started, a server
/// on 127.0.0.1).
pub struct Cluster {
    /// The data directory, inside `_dir`.
    data: PathBuf,
    pub port: u16,
    running: bool,
    /// Its processes stopped by [`Cluster::freeze`].
    frozen: bool,
    /// Removed (by root, whoever owns the files) once [`Cluster::drop`]
    /// stopped the server.
    _dir: TempDir,
}

impl Cluster {
    /// A fresh cluster, initialized and started.
    pub fn start() -> Cluster {
        let mut cluster = Cluster::empty();
        run(as_postgres("initdb").arg("-D").arg(&cluster.data).args([
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]));
        cluster.start_server();
        cluster
    }

    /// A directory for a cluster (world-traversable, owned by `postgres`)
    /// and a port; nothing in it yet.
    fn empty() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("auditlog-pgc-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        run(Command::new("chmod").arg("755").arg(dir.path()));
        run(Command::new("chown").arg("postgres").arg(dir.path()));
        Cluster {
            data: dir.path().join("data"),
            port: free_port(),
            running: false,
            frozen: false,
            _dir: dir,
        }
    }

    /// A streaming replica of this (running) cluster, made with
    /// `pg_basebackup -R` and started on a port of its own; then this
    /// cluster's commits wait for it (`synchronous_standby_names`, with
    /// `synchronous_commit` on, the default): an acknowledged commit is
    /// on both. The replica does not inherit the setting (it is set on the
    /// primary after the copy), so once promoted it commits alone.
    pub fn start_replica(&self) -> Cluster {
        let mut replica = Cluster::empty();
        run(as_postgres("pg_basebackup")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-X", "stream", "-R", "--no-sync", "-D"])
            .arg(&replica.data));
        replica.start_server();
        self.sql("ALTER SYSTEM SET synchronous_standby_names = '*'");
        self.sql("SELECT pg_reload_conf()");
        self.wait_for(
            "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
            "1",
        );
        replica
    }

    fn start_server(&mut self) {
        let dir = self.data.parent().expect("data's parent").to_owned();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c max_connections=200 -c shared_buffers=32MB",
            self.port,
            dir.display()
        );
        run(as_postgres("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]));
        self.running = true;
    }

    /// Starts the server again after [`Cluster::stop_hard`] (crash recovery
    /// runs first: `pg_ctl -w` returns once it accepts connections).
    pub fn restart(&mut self) {
        assert!(!self.running, "already running");
        self.start_server();
    }

    /// `pg_ctl stop -m immediate`: the server quits without a checkpoint,
    /// as if its machine lost power (what was committed is in its WAL).
    pub fn stop_hard(&mut self) {
        run(as_postgres("pg_ctl").arg("-D").arg(&self.data).args([
            "-m",
            "immediate",
            "-w",
            "stop",
        ]));
        self.running = false;
    }

    /// Freezes the server (`SIGSTOP` to the postmaster and its children):
    /// a database that hangs, its storage stalled, while its machine's
    /// kernel still accepts connections and acknowledges what is sent.
    pub fn freeze(&mut self) {
        let pids = self.pids();
        self.signal("-STOP", &pids);
        self.frozen = true;
    }

    /// Lets a frozen server go on (`SIGCONT`).
    pub fn thaw(&mut self) {
        let pids = self.pids();
        self.signal("-CONT", &pids);
        self.frozen = false;
    }

    fn signal(&self, signal: &str, pids: &[u32]) {
        let mut cmd = Command::new("kill");
        cmd.arg(signal).args(pids.iter().map(u32::to_string));
        run(&mut cmd);
    }

    /// The postmaster (first) and its children, from `/proc`.
    fn pids(&self) -> Vec<u32> {
        let pid_file = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .expect("postmaster.pid of a running server");
        let postmaster: u32 = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("the postmaster's pid");
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // `pid (comm) state ppid …`; comm may hold spaces and parens.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(postmaster) {
                pids.push(pid);
            }
        }
        pids
    }

    /// `pg_ctl promote` of a replica: it becomes a primary that accepts
    /// writes (`-w`: once it does).
    pub fn promote(&self) {
        run(as_postgres("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "promote"]));
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@{}/postgres", self.addr())
    }

    /// Runs `sql` with `psql`; its rows, one a line, columns `|`-separated.
    pub fn sql(&self, sql: &str) -> String {
        let out = run(as_postgres("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-X", "-A", "-t", "-q"])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql]));
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .trim()
            .to_owned()
    }

    /// Waits until `sql` answers `expected` (bounded: a cluster that never
    /// gets there fails the test).
    pub fn wait_for(&self, sql: &str, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.sql(sql);
            if got == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{sql:?} still answers {got:?}, not {expected:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    /// Stops the server hard (nothing of a test cluster is worth a
    /// checkpoint); the directory goes with the `TempDir`.
    fn drop(&mut self) {
        if self.frozen {
            let pids = self.pids();
            let mut cmd = Command::new("kill");
            let _ = cmd
                .arg("-CONT")
                .args(pids.iter().map(u32::to_string))
                .output();
        }
        if self.running {
            let _ = as_postgres("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// A stand-in for a machine that is gone, on `127.0.0.1:port`: a socket
/// whose accept queue is full and never drained, so the kernel drops every
/// new SYN and a client's connect waits for its own timeout (no refusal,
/// no reset), as with a host powered off or cut off. Closed when dropped.
pub struct BlackHole {
    _listener: tokio::net::TcpListener,
    _queued: Vec<TcpStream>,
}

impl BlackHole {
    /// Takes `port` (free again once its server stopped) from inside a
    /// tokio runtime.
    pub fn open(port: u16) -> BlackHole {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        // The stopped server's connections may linger in TIME_WAIT.
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.bind(addr).expect("bind the stopped server's port");
        // The smallest queue: one connection fills it.
        let listener = socket.listen(0).expect("listen");
        let mut queued = Vec::new();
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(stream) => queued.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                Err(e) => panic!("filling the black hole's queue: {e}"),
            }
            assert!(queued.len() < 64, "the accept queue never filled");
        }
        BlackHole {
            _listener: listener,
            _queued: queued,
        }
    }
}
