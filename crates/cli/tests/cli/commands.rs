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
    assert_eq!(events.len(), 92);
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
        [("account", "Audit Logs", "Audit logs exported")]
    );
    let account = events.iter().filter(|(l, _, _)| *l == "account").count();
    assert_eq!(account, 57 + 1);
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
    assert_eq!(original.len(), 40);

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
    let imported = server.list_all(&globex_read, GLOBEX, 1000).await;
    assert_eq!(imported.len(), original.len());
    let mut want: Vec<Value> = original.iter().map(portable).collect();
    let mut got: Vec<Value> = imported.iter().map(portable).collect();
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
    assert_eq!(server.count(&globex_read, GLOBEX).await, 40);
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
    // The first export is recorded once it completes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.count(&acme_read, ACME).await < 13 {
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
    assert_eq!(text.lines().count(), 13);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("\"category\":\"Audit Logs\""))
            .count(),
        1
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
    assert_eq!(server.count(&globex_read, GLOBEX).await, 12);
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
