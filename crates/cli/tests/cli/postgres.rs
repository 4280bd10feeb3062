//! The binary on PostgreSQL (`--database-url`): each test on a database of
//! its own (`auditlog_store::postgres::testing`, which fails in CI when no
//! server is configured rather than skip).

use std::time::Duration;

use auditlog_store::postgres::testing::TestDb;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ACME, Server, Workspace, role_created, run, run_ok};

/// `auditlog token create --database-url`.
fn create_token(url: &str, account: &str, role: &str) -> String {
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

fn start(ws: &Workspace, url: &str) -> Server {
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
