//! One-shot commands: `auditlog catalog`, and `auditlog export` /
//! `auditlog import` moving an account's log into another account.

use serde_json::{Value, json};

use crate::helpers::*;

#[test]
fn catalog_prints_every_event_as_json() {
    let out = run_ok(&["catalog"]);
    let cat: Value = serde_json::from_str(&out).expect("JSON on stdout");
    let levels = cat["levels"].as_array().unwrap();
    let names: Vec<&str> = levels
        .iter()
        .map(|l| l["level"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["account", "workflow"]);
    let mut events = Vec::new();
    for level in levels {
        for c in level["categories"].as_array().unwrap() {
            for e in c["events"].as_array().unwrap() {
                events.push((
                    level["level"].as_str().unwrap(),
                    c["name"].as_str().unwrap(),
                    e.clone(),
                ));
            }
        }
    }
    assert_eq!(events.len(), 95);
    assert_eq!(
        events
            .iter()
            .filter(|(_, _, e)| e["source"] == "seed")
            .count(),
        91
    );
    let extensions: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|(_, _, e)| e["source"] == "extension")
        .map(|(l, c, e)| (*l, *c, e["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        extensions,
        [
            ("account", "Audit Logs", "Audit logs exported"),
            ("account", "Audit Logs", "Token created"),
            ("account", "Audit Logs", "Token revoked"),
            ("account", "Audit Logs", "Token expired"),
        ]
    );
    let account = events.iter().filter(|(l, _, _)| *l == "account").count();
    assert_eq!(account, 57 + 4);
    // An event as PRODUCT.md shows it.
    let role_created = events
        .iter()
        .find(|(l, c, e)| *l == "account" && *c == "Roles" && e["name"] == "Role created")
        .map(|(_, _, e)| e)
        .expect("Role created");
    assert_eq!(
        role_created["fields"],
        json!([
            {"key": "role_id", "label": "Role ID", "required": true, "type": "string"},
            {"key": "role_type", "label": "Role Type", "required": true, "type": "string"}
        ])
    );
}

/// The parts of a record an import must carry over.
fn portable(r: &Value) -> Value {
    json!([
        r["level"],
        r["category"],
        r["event"],
        r["occurred_at"],
        r["actor"],
        r["ip_address"],
        r["workflow_id"],
        r["description"],
        r["metadata"]
    ])
}

/// A varied log: account and workflow events, explicit addresses and
/// times, numbers and booleans in metadata.
fn varied_events() -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..30 {
        let mut ev = role_created(i);
        ev["occurred_at"] = json!(format!(
            "2026-10-{:02}T0{}:00:00.{i:03}Z",
            i % 28 + 1,
            i % 10
        ));
        out.push(ev);
    }
    for i in 0..10 {
        out.push(json!({
            "level": "workflow", "category": "Workflow Management", "event": "API async enabled",
            "actor": {"kind": "app", "id": format!("svc-{i}")},
            "workflow_id": format!("wf_{}", i % 3),
            "ip_address": "2001:db8::7",
            "metadata": {"version_id": "v3", "url": "https://x.example/cb", "access_token": "t",
                         "timeout": i % 2 == 0, "timeout_value": 1.5},
        }));
    }
    out
}

#[tokio::test]
async fn export_then_import_moves_a_log_into_another_account() {
    let ws = Workspace::new();
    let data = ws.data_dir();
    let acme_ingest = create_token(&data, ACME, "ingest");
    let acme_read = create_token(&data, ACME, "read");
    let globex_ingest = create_token(&data, GLOBEX, "ingest");
    let globex_read = create_token(&data, GLOBEX, "read");
    let server = Server::start(&ws);
    for ev in varied_events() {
        server.ingest(&acme_ingest, ACME, &ev).await;
    }
    let original = server.list_all(&acme_read, ACME, 1000).await;
    // The 40 events and the "Token created" events of the two acme tokens
    // made on the command line (recorded when the server started).
    assert_eq!(original.len(), 42);

    let file = ws.path("acme.jsonl");
    let file_arg = file.to_str().unwrap();
    run_ok(&[
        "export",
        "--url",
        &server.base,
        "--token",
        &acme_read,
        "--account",
        ACME,
        "-o",
        file_arg,
    ]);
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSONL"))
        .collect();
    assert_eq!(lines, original, "the export is the log, newest first");

    run_ok(&[
        "import",
        "--url",
        &server.base,
        "--token",
        &globex_ingest,
        "--account",
        GLOBEX,
        "--batch",
        "7",
        file_arg,
    ]);
    // Audit Logs events are the server's own: not imported, and globex has
    // its own "Token created" events.
    let not_audit = |v: &&Value| v["category"] != "Audit Logs";
    let imported = server.list_all(&globex_read, GLOBEX, 1000).await;
    assert_eq!(imported.len(), original.len());
    let mut want: Vec<Value> = original.iter().filter(not_audit).map(portable).collect();
    let mut got: Vec<Value> = imported.iter().filter(not_audit).map(portable).collect();
    assert_eq!(want.len(), 40);
    want.sort_by_key(|v| v.to_string());
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, want, "every event carried over unchanged");
    assert!(imported.iter().all(|r| r["account_id"] == GLOBEX));

    // Run again (as after an interruption): nothing is imported twice.
    run_ok(&[
        "import",
        "--url",
        &server.base,
        "--token",
        &globex_ingest,
        "--account",
        GLOBEX,
        file_arg,
    ]);
    assert_eq!(server.count(&globex_read, GLOBEX).await, 42);
}

/// Every export records an "Audit logs exported" event, so the export of
/// any account that has been exported before holds such events; clients
/// cannot ingest that category, so the import must leave them out rather
/// than fail as a whole.
#[tokio::test]
async fn an_export_holding_export_records_still_imports() {
    let ws = Workspace::new();
    let data = ws.data_dir();
    let acme_ingest = create_token(&data, ACME, "ingest");
    let acme_read = create_token(&data, ACME, "read");
    let globex_ingest = create_token(&data, GLOBEX, "ingest");
    let globex_read = create_token(&data, GLOBEX, "read");
    let server = Server::start(&ws);
    for ev in varied_events().into_iter().take(12) {
        server.ingest(&acme_ingest, ACME, &ev).await;
    }
    let first = ws.path("first.jsonl");
    run_ok(&[
        "export",
        "--url",
        &server.base,
        "--token",
        &acme_read,
        "--account",
        ACME,
        "-o",
        first.to_str().unwrap(),
    ]);
    // The first export is recorded once it completes (12 events, two
    // "Token created" of the command line's tokens, the export).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.count(&acme_read, ACME).await < 15 {
        assert!(
            std::time::Instant::now() < deadline,
            "the export was not recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let second = ws.path("second.jsonl");
    run_ok(&[
        "export",
        "--url",
        &server.base,
        "--token",
        &acme_read,
        "--account",
        ACME,
        "-o",
        second.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&second).unwrap();
    assert_eq!(text.lines().count(), 15);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("\"category\":\"Audit Logs\""))
            .count(),
        3
    );

    let out = run(&[
        "import",
        "--url",
        &server.base,
        "--token",
        &globex_ingest,
        "--account",
        GLOBEX,
        second.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The 12 events, and globex's own two "Token created".
    assert_eq!(server.count(&globex_read, GLOBEX).await, 14);
}

#[test]
fn export_and_import_fail_loudly_without_a_server() {
    let ws = Workspace::new();
    let file = ws.path("x.jsonl");
    std::fs::write(&file, format!("{}\n", role_created(1))).unwrap();
    // Port 9 (discard) on localhost: nothing listens there.
    let url = "http://127.0.0.1:9";
    let out = run(&[
        "export",
        "--url",
        url,
        "--token",
        "alog_x",
        "--account",
        ACME,
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let out = run(&[
        "import",
        "--url",
        url,
        "--token",
        "alog_x",
        "--account",
        ACME,
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
}

/// The token events of an account's log, oldest first: `(event, token id,
/// actor id)`.
async fn token_events(server: &Server, read: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = server
        .list_all(read, ACME, 100)
        .await
        .iter()
        .filter(|r| r["event"].as_str().unwrap().starts_with("Token "))
        .map(|r| {
            (
                r["event"].as_str().unwrap().to_owned(),
                r["metadata"]["token_id"].as_str().unwrap().to_owned(),
                r["actor"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.reverse();
    out
}

/// `auditlog token create|list|revoke` on the data directory of a running
/// server: a new token works at once, a revoked one is refused within a
/// second or so, and the next server start records both in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_list_and_revoke_work_while_the_server_runs() {
    let ws = Workspace::new();
    let data = ws.data_dir();
    let dir = data.to_str().unwrap();
    let read = create_token(&data, ACME, "read");
    let server = Server::start(&ws);
    let events = token_events(&server, &read).await;
    assert_eq!(events.len(), 1, "made before the start: in the log at once");
    let read_id = events[0].1.clone();
    assert_eq!(events[0].2, "operator");

    // Issued while it runs, with an expiry.
    let (ingest, out) = ingest_token_with_ttl(dir, "90d");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let ingest_id = stderr
        .split_whitespace()
        .find(|w| w.starts_with("tok_"))
        .unwrap_or_else(|| panic!("the id on stderr: {stderr}"))
        .to_owned();
    server.ingest(&ingest, ACME, &role_created(1)).await;

    // Listed without secrets, as a table and as JSON.
    let table = run_ok(&["token", "list", "--data-dir", dir]);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains(&ingest_id) && table.contains(&read_id),
        "{table}"
    );
    let json_lines = run_ok(&[
        "token",
        "list",
        "--data-dir",
        dir,
        "--json",
        "--account",
        ACME,
    ]);
    assert!(!json_lines.contains("alog_"), "{json_lines}");
    let rows: Vec<Value> = json_lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["id"], json!(ingest_id));
    assert_eq!(rows[1]["status"], json!("active"));
    assert_eq!(rows[1]["role"], json!("ingest"));
    assert!(rows[1]["expires_at"].is_string(), "{}", rows[1]);
    assert!(rows[0]["expires_at"].is_null());
    assert!(
        run_ok(&[
            "token",
            "list",
            "--data-dir",
            dir,
            "--json",
            "--account",
            "*"
        ])
        .is_empty()
    );

    // Revoked while it runs: refused soon after, without a restart.
    run_ok(&["token", "revoke", "--data-dir", dir, &ingest_id]);
    let revoked_at = std::time::Instant::now();
    ingest_until_refused(&server, &ingest, revoked_at, 5, "a revoked token").await;
    eprintln!(
        "revoked on the command line: refused after {:?}",
        revoked_at.elapsed()
    );
    let row: Value = serde_json::from_str(
        run_ok(&["token", "list", "--data-dir", dir, "--json"])
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(row["status"], json!("revoked"));
    assert!(
        !run(&["token", "revoke", "--data-dir", dir, &ingest_id])
            .status
            .success()
    );
    assert!(
        !run(&["token", "revoke", "--data-dir", dir, "tok_nope"])
            .status
            .success()
    );

    // Both changes reach the log when the server next starts (the command
    // line cannot append while it runs), once.
    assert_eq!(token_events(&server, &read).await.len(), 1);
    let mut server = server;
    server.terminate();
    assert_eq!(
        server.wait_exit(std::time::Duration::from_secs(30)).code(),
        Some(0)
    );
    for _ in 0..2 {
        let server = Server::start(&ws);
        assert_eq!(
            token_events(&server, &read).await[1..],
            [
                (
                    "Token created".to_owned(),
                    ingest_id.clone(),
                    "operator".to_owned()
                ),
                (
                    "Token revoked".to_owned(),
                    ingest_id.clone(),
                    "operator".to_owned()
                ),
            ]
        );
    }

    // Bad expiries are refused before anything is stored.
    for args in [
        ["--ttl", "0s"],
        ["--ttl", "11y"],
        ["--ttl", "soon"],
        ["--expires-at", "2001-01-01T00:00:00Z"],
    ] {
        let mut all = vec![
            "token",
            "create",
            "--data-dir",
            dir,
            "--account",
            ACME,
            "--role",
            "read",
        ];
        all.extend(args);
        let out = run(&all);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty());
    }
    assert_eq!(
        run_ok(&["token", "list", "--data-dir", dir, "--json"])
            .lines()
            .count(),
        2
    );
}

/// A token made with `--ttl` works until then, answers 401 after, and the
/// running server records its expiry in the log by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_refused_after_its_ttl_and_the_expiry_is_logged() {
    let ws = Workspace::new();
    let data = ws.data_dir();
    let dir = data.to_str().unwrap();
    let read = create_token(&data, ACME, "read");
    let (ingest, _) = ingest_token_with_ttl(dir, "3s");
    let server = Server::start(&ws);
    let made = std::time::Instant::now();
    server.ingest(&ingest, ACME, &role_created(1)).await;
    // Refused once expired (generous: the clock is the system's).
    ingest_until_refused(&server, &ingest, made, 10, "an expired token").await;
    // The recorder runs every 5 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let names: Vec<String> = token_events(&server, &read)
            .await
            .into_iter()
            .map(|(name, _, actor)| format!("{name} by {actor}"))
            .collect();
        if names.len() == 3 {
            assert_eq!(
                names,
                [
                    "Token created by operator",
                    "Token created by operator",
                    "Token expired by auditlog"
                ]
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not recorded: {names:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Ingests with `token` until it is refused with 401; it must be within
/// `limit_secs` of `since` (each attempt until then is accepted).
async fn ingest_until_refused(
    server: &Server,
    token: &str,
    since: std::time::Instant,
    limit_secs: u64,
    what: &str,
) {
    loop {
        let res = server
            .post(
                token,
                &format!("/v1/accounts/{ACME}/events"),
                &role_created(2),
            )
            .await;
        if res.status() == reqwest::StatusCode::UNAUTHORIZED {
            return;
        }
        assert_eq!(res.status(), reqwest::StatusCode::CREATED);
        assert!(
            since.elapsed() < std::time::Duration::from_secs(limit_secs),
            "{what} still works after {limit_secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `auditlog token create` of an ingest token of ACME expiring after `ttl`:
/// the token, and the command's output (its stderr names the token id).
fn ingest_token_with_ttl(dir: &str, ttl: &str) -> (String, std::process::Output) {
    let out = run(&[
        "token",
        "create",
        "--data-dir",
        dir,
        "--account",
        ACME,
        "--role",
        "ingest",
        "--ttl",
        ttl,
    ]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    (token, out)
}
