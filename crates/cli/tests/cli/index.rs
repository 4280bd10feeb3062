//! Issue 13: the column index is stored as segments beside the log. A
//! restart restores it from them (not from every event), a memory budget
//! of 1 MiB still answers every query exactly, and `auditlog index
//! rebuild` checks the stored segments against the events and repairs
//! them.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Events past two full index chunks (65,536 events each), a fifth of them
/// by one service account.
const N: usize = 2 * 65_536 + 1_000;

fn event(i: usize) -> Value {
    let user = if i.is_multiple_of(5) {
        "svc".to_owned()
    } else {
        format!("u{}", i % 17)
    };
    json!({
        "level": "account", "category": "Roles", "event": "Role created",
        "actor": {"kind": "user", "id": user},
        "ip_address": format!("10.0.{}.{}", i % 7, i % 3),
        "metadata": {"role_id": format!("r_{i}"), "role_type": "custom"},
        "occurred_at": "2026-01-01T00:00:00Z",
    })
}

/// Counts of a few filter shapes over all time, and the first page's ids.
async fn answers(server: &Server, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for q in [
        "",
        "&filter=user:eq:svc",
        "&filter=user:ne:svc",
        "&filter=user:eq:u3&filter=ip_address:eq:10.0.1.1&join=or",
    ] {
        let count = server
            .get_json(
                token,
                &format!("/v1/accounts/{ACME}/events/count?range=all_time{q}"),
            )
            .await;
        let page = server
            .get_json(
                token,
                &format!("/v1/accounts/{ACME}/events?range=all_time&limit=5{q}"),
            )
            .await;
        let ids: Vec<Value> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].clone())
            .collect();
        out.push(json!([count["count"], ids]));
    }
    out
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

fn rebuild(ws: &Workspace) -> (bool, String) {
    let dir = ws.data_dir();
    let out = run(&["index", "rebuild", "--data-dir", dir.to_str().unwrap()]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The first row of each stored index tail.
fn stored_tails(ws: &Workspace) -> Vec<i64> {
    let db = rusqlite::Connection::open(ws.data_dir().join("auditlog.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT first FROM index_tails ORDER BY account")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn segments_survive_restarts_and_rebuild_checks_them() {
    let ws = Workspace::new();
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    let args = ["--index-memory", "1"];
    let mut server = Server::start_with(&ws, &args, &[]);
    let events: Vec<Value> = (0..N).map(event).collect();
    for part in events.chunks(10_000) {
        let res = server.post_batch(&ingest, ACME, part).await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let expected = answers(&server, &read).await;
    assert!(expected[1][0].as_u64().unwrap() >= (N / 5) as u64);
    server.terminate();
    assert!(
        server
            .wait_exit(std::time::Duration::from_secs(30))
            .success()
    );
    // The clean shutdown stored the growing chunk after the two segments,
    // so that the restart does not read its rows.
    assert_eq!(stored_tails(&ws), [2 * 65_536]);

    // Restored from the segments: the same answers within 1 MiB of cache,
    // every sealed chunk loaded (and evicted) on demand.
    let mut server = Server::start_with(&ws, &args, &[]);
    assert_eq!(answers(&server, &read).await, expected);
    let text = server.get_text("/metrics").await;
    assert!(
        metric(&text, "auditlog_index_cache_loads_total") >= 2.0,
        "{text}"
    );
    assert!(metric(&text, "auditlog_index_cache_evictions_total") >= 1.0);
    assert!(metric(&text, "auditlog_index_cache_bytes") <= (1 << 20) as f64);
    // A rebuild replaces stored segments: refused under a running server.
    let (ok, out) = rebuild(&ws);
    assert!(
        !ok && out.contains("in use by another auditlog process"),
        "{out}"
    );
    server.terminate();
    assert!(
        server
            .wait_exit(std::time::Duration::from_secs(30))
            .success()
    );

    // The rebuild from the events agrees with what was stored; it drops
    // the stored tail with the segments.
    let (ok, out) = rebuild(&ws);
    assert!(ok, "{out}");
    assert_eq!(stored_tails(&ws), [] as [i64; 0]);
    assert!(out.contains("2 index segments rebuilt from the events: 0 differed from the stored ones, 0 were not stored"), "{out}");

    // A stored segment altered behind the store's back is found, and
    // replaced by the rebuilt one.
    let db = rusqlite::Connection::open(ws.data_dir().join("auditlog.db")).unwrap();
    let mut blob: Vec<u8> = db
        .query_row(
            "SELECT columns FROM index_segments WHERE segment = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let at = blob.len() / 3;
    blob[at] ^= 1;
    db.execute(
        "UPDATE index_segments SET columns = ?1 WHERE segment = 1",
        [&blob],
    )
    .unwrap();
    drop(db);
    let (ok, out) = rebuild(&ws);
    assert!(!ok);
    assert!(out.contains("1 differed"), "{out}");
    let (ok, out) = rebuild(&ws);
    assert!(ok, "{out}");

    let server = Server::start_with(&ws, &args, &[]);
    assert_eq!(answers(&server, &read).await, expected);
}
