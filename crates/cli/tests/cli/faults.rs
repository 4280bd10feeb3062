//! Faults against the real binary (issue 11): a full disk (a small tmpfs
//! mounted as the data directory), fsync failing with EIO (`strace`
//! fault injection), and a writer thread that dies. In each: no write is
//! acknowledged that is not durable, reads go on, and every acknowledged
//! event is there afterwards — also after a restart.
//!
//! The tmpfs and strace tests need root (mount, ptrace); they run as root
//! in this project's CI and dev container.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// A size-limited tmpfs mounted on a directory; unmounted when dropped,
/// also when the test fails (declare it before the server, so the server
/// is stopped first).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size_mib: u32) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs failed (the test needs root)"
        );
        Tmpfs {
            path: path.to_owned(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process that still has a file open cannot keep it busy.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// An event whose description and idempotency key are `key`, with some
/// bulk so that a small disk fills quickly.
fn keyed_event(key: &str) -> Value {
    json!({
        "level": "account",
        "category": "Roles",
        "event": "Role edited",
        "actor": {"id": "u_fault", "name": "Fault Tester"},
        "metadata": {"role_id": key, "role_name": "x".repeat(900)},
        "description": key,
        "idempotency_key": key,
    })
}

/// Posts a batch of keyed events: the status, and the keys if they were
/// acknowledged (2xx).
async fn post_batch(server: &Server, token: &str, keys: &[String]) -> (StatusCode, Option<String>) {
    let events: Vec<Value> = keys.iter().map(|k| keyed_event(k)).collect();
    let res = server.post_batch(token, ACME, &events).await;
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let _ = res.bytes().await;
    (status, retry_after)
}

/// Every acknowledged key is stored exactly once, and seqs are dense.
/// How many of the test's own events ("Role edited") the account holds;
/// the log also holds the "Token created" events of the test's tokens.
async fn edits(server: &Server, token: &str) -> u64 {
    let v = server
        .get_json(
            token,
            &format!("/v1/accounts/{ACME}/events/count?range=all_time&filter=event:eq:Role edited"),
        )
        .await;
    v["count"].as_u64().expect("count")
}

async fn assert_all_there(server: &Server, token: &str, acked: &BTreeSet<String>) {
    let records = server.list_all(token, ACME, 1000).await;
    let mut seen = BTreeSet::new();
    for r in &records {
        if r["event"] == "Role edited" {
            let key = r["description"].as_str().unwrap().to_owned();
            assert!(seen.insert(key.clone()), "{key} stored twice");
        }
    }
    let missing: Vec<&String> = acked.difference(&seen).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let seqs: BTreeSet<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..records.len() as u64).collect(), "seq has gaps");
}

/// Writes a file until the filesystem is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("filler file");
    let chunk = vec![0xa5u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_answers_503_keeps_reads_and_resumes_by_itself_losing_nothing() {
    let ws = Workspace::new();
    let _fs = Tmpfs::mount(&ws.data_dir(), 32);
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    let mut server = Server::start(&ws);
    let mut acked = BTreeSet::new();
    let batch =
        |round: usize| -> Vec<String> { (0..50).map(|i| format!("r{round}-e{i}")).collect() };
    for round in 0..5 {
        let keys = batch(round);
        let (status, _) = post_batch(&server, &ingest, &keys).await;
        assert_eq!(status, StatusCode::CREATED);
        acked.extend(keys);
    }

    // Fill the disk; ingest until it is refused (the WAL may have room left
    // in space it already holds).
    let filler = ws.data_dir().join("filler");
    fill(&filler);
    let mut round = 5;
    let (refused_keys, retry_after) = loop {
        assert!(round < 2000, "ingest never failed on a full disk");
        let keys = batch(round);
        round += 1;
        match post_batch(&server, &ingest, &keys).await {
            (StatusCode::CREATED, _) => acked.extend(keys),
            (StatusCode::SERVICE_UNAVAILABLE, retry) => break (keys, retry),
            (other, _) => panic!("a full disk answered {other}"),
        }
    };
    assert!(retry_after.is_some(), "503 without Retry-After");
    eprintln!(
        "disk full: {} events acknowledged before the first 503",
        acked.len()
    );
    // Still refused while full, and nothing half-written.
    let (status, _) = post_batch(&server, &ingest, &refused_keys).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    // Reads and exports keep working on a full disk.
    assert_eq!(edits(&server, &read).await, acked.len() as u64);
    assert_all_there(&server, &read, &acked).await;
    let res = server
        .get(
            &read,
            &format!(
                "/v1/accounts/{ACME}/events/export?range=all_time&format=jsonl&filter=event:eq:Role edited"
            ),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.bytes().await.expect("a whole export on a full disk");
    assert_eq!(
        body.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        acked.len()
    );

    // Space returns: ingest resumes by itself, the refused batch included.
    std::fs::remove_file(&filler).expect("remove filler");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = post_batch(&server, &ingest, &refused_keys).await;
        if status == StatusCode::CREATED {
            acked.extend(refused_keys.iter().cloned());
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            Instant::now() < deadline,
            "ingest did not resume with space back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let keys = batch(round);
    assert_eq!(
        post_batch(&server, &ingest, &keys).await.0,
        StatusCode::CREATED
    );
    acked.extend(keys);
    assert_all_there(&server, &read, &acked).await;

    // And all of it is durable: a restart finds every acknowledged event.
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(40)).success());
    let server = Server::start(&ws);
    assert_all_there(&server, &read, &acked).await;
}

/// An fsync that fails (EIO, injected with strace into every thread of the
/// running server) is never answered 2xx; once fsync works again, ingest
/// resumes, and every acknowledged event survives a SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_fsync_error_is_never_acknowledged() {
    let ws = Workspace::new();
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    let mut server = Server::start(&ws);
    let mut acked = BTreeSet::new();
    for round in 0..3 {
        let keys: Vec<String> = (0..20).map(|i| format!("before{round}-{i}")).collect();
        assert_eq!(
            post_batch(&server, &ingest, &keys).await.0,
            StatusCode::CREATED
        );
        acked.extend(keys);
    }
    // SQLite syncs the WAL with fdatasync (or fsync where that is absent):
    // both fail from the moment strace has attached.
    let mut strace = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "-e", "trace=fsync,fdatasync"])
        .args(["-e", "inject=fsync,fdatasync:error=EIO", "-p"])
        .arg(server.pid().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace (the test needs it and ptrace rights)");
    // "strace: Process N attached with M threads" once it holds them all.
    let mut line = String::new();
    BufReader::new(strace.stderr.take().unwrap())
        .read_line(&mut line)
        .expect("strace output");
    assert!(line.contains("attached"), "strace: {line}");
    for round in 0..5 {
        let keys: Vec<String> = (0..20).map(|i| format!("eio{round}-{i}")).collect();
        let (status, retry_after) = post_batch(&server, &ingest, &keys).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "an ingest whose fsync failed was answered {status}"
        );
        assert!(retry_after.is_some());
    }
    // Reads do not sync: they still work.
    assert_eq!(edits(&server, &read).await, acked.len() as u64);
    let _ = Command::new("kill")
        .args(["-TERM", &strace.id().to_string()])
        .status();
    let _ = strace.wait();

    // fsync works again: ingest resumes (the same keys: none was stored).
    let deadline = Instant::now() + Duration::from_secs(30);
    let keys: Vec<String> = (0..20).map(|i| format!("eio0-{i}")).collect();
    loop {
        let (status, _) = post_batch(&server, &ingest, &keys).await;
        if status == StatusCode::CREATED {
            acked.extend(keys);
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            Instant::now() < deadline,
            "ingest did not resume after fsync recovered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill();
    let server = Server::start(&ws);
    assert_all_there(&server, &read, &acked).await;
}

/// A writer thread that dies (test-only fault hook): the write in hand is
/// answered 503 and the process exits non-zero, so that a supervisor
/// restarts it; after the restart everything acknowledged is there and
/// ingest works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_writer_makes_the_process_exit_for_its_supervisor() {
    let ws = Workspace::new();
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    // A first start records the tokens made on the command line (their
    // "Token created" events), so that the fault below counts only the
    // test's own batches.
    let mut warm_up = Server::start(&ws);
    warm_up.terminate();
    warm_up.wait_exit(Duration::from_secs(30));
    let mut server =
        Server::start_with_env(&ws, &[("AUDITLOG_TEST_FAULT", "writer-panic-after:1")]);
    let first = vec!["before".to_owned()];
    assert_eq!(
        post_batch(&server, &ingest, &first).await.0,
        StatusCode::CREATED
    );
    let (status, retry_after) = post_batch(&server, &ingest, &["lost".to_owned()]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after.is_some());
    let exit = server.wait_exit(Duration::from_secs(40));
    assert!(
        !exit.success(),
        "a dead writer must end the process with a failure"
    );
    let log: String = std::fs::read_dir(ws.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("server-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(log.contains("supervisor restarts"), "{log}");

    let server = Server::start(&ws);
    assert_all_there(&server, &read, &first.into_iter().collect()).await;
    server.ingest(&ingest, ACME, &keyed_event("after")).await;
    assert_eq!(edits(&server, &read).await, 2);
}
