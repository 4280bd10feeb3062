//! `auditlog migrate-store`: an embedded store copied into PostgreSQL
//! serves the same log — counts, lists and exports equal, old checkpoints
//! and proofs verify, tokens keep their state, seqs go on — and a database
//! that is not empty is refused.

use reqwest::StatusCode;
use serde_json::{Value, json};

use auditlog_store::postgres::testing::TestDb;

use crate::helpers::*;
use crate::tlog::{checkpoint, size_of, verify, verify_proof};

/// Past one sealed index segment (65,536 events) in ACME.
const N: usize = 65_536 + 700;

fn event(i: usize) -> Value {
    json!({
        "level": "account", "category": "Roles", "event": "Role created",
        "actor": {"kind": "user", "id": format!("u{}", i % 13)},
        "ip_address": format!("10.0.{}.{}", i % 5, i % 3),
        "metadata": {"role_id": format!("r_{i}"), "role_type": "custom"},
        "description": format!("role {i}"),
    })
}

/// The id of the token `auditlog token list` shows with this role in
/// `account`.
fn token_id(data_dir: &std::path::Path, account: &str, role: &str) -> String {
    let listed = run_ok(&[
        "token",
        "list",
        "--json",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--account",
        account,
    ]);
    listed
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|t| t["role"] == role && t["status"] == "active")
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .next_back()
        .expect("the token is listed")
}

fn acme_page_path() -> String {
    format!("/v1/accounts/{ACME}/events?range=all_time&limit=50&filter=user:eq:u3")
}

async fn export(server: &Server, token: &str, account: &str) -> String {
    let res = server
        .get(
            token,
            &format!("/v1/accounts/{account}/events/export?format=jsonl&range=all_time"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.expect("export")
}

fn migrate(from: &std::path::Path, to: &str) -> (bool, String) {
    let out = run(&[
        "migrate-store",
        "--from",
        from.to_str().unwrap(),
        "--to",
        to,
    ]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_store_moves_to_postgres_bit_for_bit() {
    let Some(db) = TestDb::create() else { return };
    let ws = Workspace::new();
    let dir = ws.data_dir();
    let ingest = create_token(&dir, ACME, "ingest");
    let read = create_token(&dir, ACME, "read");
    let g_ingest = create_token(&dir, GLOBEX, "ingest");
    let g_read = create_token(&dir, GLOBEX, "read");
    // A second read token of ACME, revoked before the move.
    let revoked = create_token(&dir, ACME, "read");
    let revoked_id = token_id(&dir, ACME, "read");
    run_ok(&[
        "token",
        "revoke",
        &revoked_id,
        "--data-dir",
        dir.to_str().unwrap(),
    ]);

    let mut server = Server::start(&ws);
    let key = server.get_text("/v1/public-key").await;
    std::fs::write(ws.path("key.txt"), &key).unwrap();
    let events: Vec<Value> = (0..N).map(event).collect();
    for part in events.chunks(10_000) {
        let res = server.post_batch(&ingest, ACME, part).await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    for i in 0..40 {
        let mut e = role_created(i);
        e["idempotency_key"] = json!(format!("g-{i}"));
        server.ingest(&g_ingest, GLOBEX, &e).await;
    }
    // An export taken before the move, with the checkpoint of its size;
    // the export's own "Audit logs exported" event lands after it.
    let old_globex = server.checkpoint(&g_read, GLOBEX).await;
    assert_eq!(size_of(&old_globex), 42, "40 events and two tokens' events");
    let globex_export = export(&server, &g_read, GLOBEX).await;
    assert_eq!(globex_export.lines().count(), 42);
    while server.count(&g_read, GLOBEX).await < 43 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    std::fs::write(ws.path("globex.jsonl"), &globex_export).unwrap();
    std::fs::write(ws.path("old-globex.txt"), &old_globex).unwrap();
    let globex_list = server.list_all(&g_read, GLOBEX, 7).await;
    let old_acme = checkpoint(&server, &read).await;
    let acme_count = server.count(&read, ACME).await;
    assert!(acme_count > N as u64, "the events and the tokens' events");
    let acme_page = server.get_json(&read, &acme_page_path()).await;
    // Not while a server runs on the directory.
    let (ok, out) = migrate(&dir, &db.url);
    assert!(!ok, "{out}");
    assert!(out.contains("in use by another auditlog process"), "{out}");
    server.terminate();
    assert!(
        server
            .wait_exit(std::time::Duration::from_secs(30))
            .success()
    );

    let (ok, out) = migrate(&dir, &db.url);
    assert!(ok, "{out}");
    assert!(out.contains("copied 2 accounts"), "{out}");
    assert!(out.contains("1 index segments"), "{out}");
    assert!(out.contains("5 tokens"), "{out}");
    assert!(out.contains("verified: 2 tree heads equal"), "{out}");
    assert!(out.contains("--signing-key"), "{out}");
    // Nothing is copied over a store: the second run is refused.
    let (ok, again) = migrate(&dir, &db.url);
    assert!(!ok, "{again}");
    assert!(again.contains("not empty"), "{again}");

    // The database served with the embedded server's keys.
    let target = Workspace::new();
    let key_file = dir.join("signing.key");
    let secret_file = dir.join("server.key");
    let server = Server::start_with(
        &target,
        &[
            "--database-url",
            &db.url,
            "--signing-key",
            key_file.to_str().unwrap(),
            "--server-secret",
            secret_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(server.get_text("/v1/public-key").await, key);
    assert_eq!(server.count(&read, ACME).await, acme_count);
    assert_eq!(
        server.get_json(&read, &acme_page_path()).await,
        acme_page,
        "the first page, cursor included (the same server secret)"
    );
    assert_eq!(server.list_all(&g_read, GLOBEX, 7).await, globex_list);
    assert_eq!(checkpoint(&server, &read).await, old_acme);

    // The old export verifies against the checkpoint signed before the
    // move, and a proof the new store serves for one of its events
    // verifies with the old key.
    let (ok, text) = verify(&[
        "--export",
        ws.path("globex.jsonl").to_str().unwrap(),
        "--checkpoint",
        ws.path("old-globex.txt").to_str().unwrap(),
        "--public-key",
        ws.path("key.txt").to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let first: Value = serde_json::from_str(globex_export.lines().next().unwrap()).unwrap();
    verify_proof(&ws, &server, &g_read, GLOBEX, first["id"].as_str().unwrap()).await;

    // Tokens keep their state: the revoked one stays refused.
    let status = server
        .get(&revoked, &format!("/v1/accounts/{ACME}/events"))
        .await
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Appends go on from the copied heads; an idempotency key used before
    // the move still answers its first record.
    let globex_size = globex_list.len() as u64;
    let next = server.ingest(&g_ingest, GLOBEX, &role_created(99)).await;
    assert_eq!(next["seq"], globex_size);
    let mut retry = role_created(3);
    retry["idempotency_key"] = json!("g-3");
    let res = server
        .post(&g_ingest, &format!("/v1/accounts/{GLOBEX}/events"), &retry)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let first_record = globex_list
        .iter()
        .find(|r| r["metadata"]["role_id"] == "r_3")
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["id"], first_record["id"]);

    // The new checkpoint is consistent with the one signed before the move.
    let new_globex = server.checkpoint(&g_read, GLOBEX).await;
    assert_eq!(size_of(&new_globex), globex_size + 1);
    std::fs::write(ws.path("new-globex.txt"), &new_globex).unwrap();
    let proof = server
        .get_json(
            &g_read,
            &format!(
                "/v1/accounts/{GLOBEX}/proof/consistency?from={}&to={}",
                size_of(&old_globex),
                globex_size + 1
            ),
        )
        .await;
    std::fs::write(ws.path("consistency.json"), proof.to_string()).unwrap();
    let (ok, text) = verify(&[
        "--checkpoint",
        ws.path("old-globex.txt").to_str().unwrap(),
        "--checkpoint",
        ws.path("new-globex.txt").to_str().unwrap(),
        "--proof",
        ws.path("consistency.json").to_str().unwrap(),
        "--public-key",
        ws.path("key.txt").to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    // A new account gets a key of its own.
    let initech = crate::postgres::create_token(&db.url, "initech", "ingest");
    server.ingest(&initech, "initech", &role_created(1)).await;
    assert_eq!(server.count(&read, ACME).await, acme_count);
}

/// The source must exist; a directory without a store is named.
#[test]
fn a_directory_without_a_store_is_refused() {
    let ws = Workspace::new();
    let (ok, out) = migrate(&ws.path("nothing"), "postgres://127.0.0.1:1/none");
    assert!(!ok);
    assert!(out.contains("no store in"), "{out}");
}
