//! The binary on PostgreSQL (`--database-url`): each test on a database of
//! its own (`auditlog_store::postgres::testing`, which fails in CI when no
//! server is configured rather than skip).

use std::time::Duration;

use auditlog_store::postgres::testing::TestDb;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ACME, Server, Workspace, role_created, run, run_ok};

/// `auditlog token create --database-url`.
pub fn create_token(url: &str, account: &str, role: &str) -> String {
    let out = run_ok(&[
        "token",
        "create",
        "--database-url",
        url,
        "--account",
        account,
        "--role",
        role,
    ]);
    out.trim().to_owned()
}

pub fn start(ws: &Workspace, url: &str) -> Server {
    Server::start_with(ws, &["--database-url", url], &[])
}

/// Events acknowledged before a SIGKILL are all there after a restart,
/// once each, with dense seqs; an idempotent retry answers the first
/// record; token commands work on the database while the server runs.
#[tokio::test]
async fn serve_on_postgres_survives_sigkill_and_token_commands_reach_it() {
    let Some(db) = TestDb::create() else { return };
    let ws = Workspace::new();
    let ingest = create_token(&db.url, ACME, "ingest");
    let read = create_token(&db.url, ACME, "read");
    let mut server = start(&ws, &db.url);
    let mut keyed = role_created(0);
    keyed["idempotency_key"] = json!("k-0");
    let first = server.ingest(&ingest, ACME, &keyed).await;
    let events: Vec<Value> = (1..60).map(role_created).collect();
    let res = server.post_batch(&ingest, ACME, &events).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let before = server.list_all(&read, ACME, 1000).await;
    // 60 events and the two tokens' "Token created".
    assert_eq!(before.len(), 62);
    server.kill();

    let server = start(&ws, &db.url);
    assert_eq!(server.list_all(&read, ACME, 7).await, before);
    let mut seqs: Vec<u64> = before.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..62).collect::<Vec<u64>>());
    let res = server
        .post(&ingest, &format!("/v1/accounts/{ACME}/events"), &keyed)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), first);
    assert_eq!(
        server.ingest(&ingest, ACME, &role_created(60)).await["seq"],
        62
    );

    // Listed and revoked on the database while the server runs: the
    // server refuses the token within its revocation poll.
    let listed = run_ok(&["token", "list", "--json", "--database-url", &db.url]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    let id = listed
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|t| t["role"] == "read")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    run_ok(&["token", "revoke", &id, "--database-url", &db.url]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = server
            .get(&read, &format!("/v1/accounts/{ACME}/events"))
            .await
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A database that could lose acknowledged events is refused at start,
/// with the way out named; the operator may accept it explicitly.
#[tokio::test]
async fn a_database_without_synchronous_commit_is_refused_unless_allowed() {
    let Some(db) = TestDb::create() else { return };
    db.sql(&format!(
        "ALTER DATABASE {} SET synchronous_commit = off",
        db.name
    ));
    let ws = Workspace::new();
    let out = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        ws.data_dir().to_str().unwrap(),
        "--database-url",
        &db.url,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("synchronous_commit=off") && stderr.contains("--allow-unsafe-durability"),
        "{stderr}"
    );
    let mut server = Server::start_with(
        &ws,
        &["--database-url", &db.url, "--allow-unsafe-durability"],
        &[],
    );
    server.kill();
}

/// Posts `event` to the instance `i` of `bases` until one instance answers
/// it (the other after a failure: a retry with the same idempotency key,
/// as a client behind a load balancer would); the record.
async fn post_until_answered(
    client: &reqwest::Client,
    bases: &std::sync::Mutex<Vec<String>>,
    mut i: usize,
    token: &str,
    event: &Value,
) -> Value {
    for _ in 0..600 {
        let base = bases.lock().unwrap()[i].clone();
        let sent = client
            .post(format!("{base}/v1/accounts/{ACME}/events"))
            .bearer_auth(token)
            .json(event)
            .send()
            .await;
        if let Ok(res) = sent
            && res.status().is_success()
        {
            return res.json().await.expect("record");
        }
        i = 1 - i;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no instance answered");
}

/// Two instances on one database, eight writers split across them for one
/// account, one instance SIGKILLed mid-stream and restarted: every
/// acknowledged event is there once, seqs are dense, both instances answer
/// the same records, and their checkpoints are consistent (checked with a
/// consistency proof by `auditlog verify`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_make_one_log_through_a_sigkill() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use crate::tlog::{checkpoint, size_of};

    let Some(db) = TestDb::create() else { return };
    let ws = Workspace::new();
    let ingest = create_token(&db.url, ACME, "ingest");
    let read = create_token(&db.url, ACME, "read");
    // One after the other: the first creates the signing key and server
    // secret in the shared data directory, the second reads them.
    let mut first = start(&ws, &db.url);
    let second = start(&ws, &db.url);
    let bases = Arc::new(Mutex::new(vec![first.base.clone(), second.base.clone()]));
    let acked = Arc::new(AtomicUsize::new(0));
    let (writers, per_writer) = (8, 25);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (bases, acked, token) = (bases.clone(), acked.clone(), ingest.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut records = Vec::new();
                for n in 0..per_writer {
                    let mut event = role_created(w * 100 + n);
                    event["idempotency_key"] = json!(format!("w{w}-{n}"));
                    records.push(post_until_answered(&client, &bases, w % 2, &token, &event).await);
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                records
            })
        })
        .collect();
    // Mid-stream: once a fifth is acknowledged, the first instance dies.
    while acked.load(Ordering::SeqCst) < writers * per_writer / 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill();
    let first = start(&ws, &db.url);
    bases.lock().unwrap()[0] = first.base.clone();
    let mut records = Vec::new();
    for t in tasks {
        records.extend(t.await.expect("writer"));
    }
    assert_eq!(records.len(), writers * per_writer);

    // Two "Token created" events and every acknowledged event once.
    let total = 2 + writers * per_writer;
    let listed = first.list_all(&read, ACME, 1000).await;
    assert_eq!(second.list_all(&read, ACME, 1000).await, listed);
    assert_one_log(&listed, &records, total);

    // A checkpoint from each instance, the second after one more event:
    // the later one is consistent with the earlier one.
    let early = checkpoint(&first, &read).await;
    second.ingest(&ingest, ACME, &role_created(9_999)).await;
    let late = checkpoint(&second, &read).await;
    assert_eq!(size_of(&late), size_of(&early) + 1);
    assert_consistent(&ws, &first, &read, &early, &late).await;
}

/// An instance that has an account open pulls in what another instance
/// acknowledged without being asked (counted in its `/metrics`), and its
/// next read has it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_pulls_another_instances_events_before_a_read() {
    use crate::hardening::{metrics_text, sample};

    let Some(db) = TestDb::create() else { return };
    let ws = Workspace::new();
    let ingest = create_token(&db.url, ACME, "ingest");
    let read = create_token(&db.url, ACME, "read");
    let first = start(&ws, &db.url);
    let second = start(&ws, &db.url);
    // Opened on the second by a read: the two "Token created" events.
    assert_eq!(second.list_all(&read, ACME, 100).await.len(), 2);
    let events: Vec<Value> = (0..50).map(role_created).collect();
    let res = first.post_batch(&ingest, ACME, &events).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let woken = "auditlog_index_rows_woken_total";
    let mut pulled = 0.0;
    for _ in 0..1000 {
        pulled = sample(&metrics_text(&second).await, woken);
        if pulled >= 50.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pulled, 50.0, "{woken}");
    assert_eq!(second.list_all(&read, ACME, 100).await.len(), 52);
}

/// `listed` (every record of the account) is one log of `total` events,
/// seqs `0..total`, holding each of the `acked` answers (full records, or
/// a batch's `{id, seq}`) as acknowledged.
pub fn assert_one_log(listed: &[Value], acked: &[Value], total: usize) {
    assert_eq!(listed.len(), total);
    let mut seqs: Vec<u64> = listed.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..total as u64).collect::<Vec<_>>());
    let by_id: std::collections::HashMap<&str, &Value> = listed
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r))
        .collect();
    for r in acked {
        let stored = by_id.get(r["id"].as_str().unwrap());
        let fields = r.as_object().expect("an acknowledged record");
        assert!(
            stored.is_some_and(|s| fields.iter().all(|(k, v)| &s[k] == v)),
            "acknowledged {r}, stored {stored:?}"
        );
    }
}

/// Checks with `auditlog verify` (from files alone) that the checkpoint
/// `late` is consistent with `early`, with the proof and key `server`
/// serves.
pub async fn assert_consistent(
    ws: &Workspace,
    server: &Server,
    read: &str,
    early: &str,
    late: &str,
) {
    use crate::tlog::{size_of, verify};

    let key = server.get_text("/v1/public-key").await;
    let proof = server
        .get_json(
            read,
            &format!(
                "/v1/accounts/{ACME}/proof/consistency?from={}&to={}",
                size_of(early),
                size_of(late)
            ),
        )
        .await;
    for (name, text) in [
        ("early.txt", early.to_owned()),
        ("late.txt", late.to_owned()),
        ("key.txt", key),
        ("proof.json", proof.to_string()),
    ] {
        std::fs::write(ws.path(name), text).expect("write");
    }
    let path = |n: &str| ws.path(n).to_str().unwrap().to_owned();
    let (ok, text) = verify(&[
        "--checkpoint",
        &path("early.txt"),
        "--checkpoint",
        &path("late.txt"),
        "--proof",
        &path("proof.json"),
        "--public-key",
        &path("key.txt"),
    ]);
    assert!(ok, "{text}");
}
