//! Issue 11, against the real binary: what a hostile ingest client can make
//! the server spend. Each attack of the issue is replayed and its bound
//! asserted (peak memory from `/proc/<pid>/status`, the size of the answer,
//! other requests still served).

use std::time::Instant;

use serde_json::{Value, json};

use crate::helpers::*;

/// Peak resident memory of a process, in bytes (`VmHWM`).
fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line");
    kb * 1024
}

/// The memory bound the README promises for these attacks: peak RSS at
/// most this much above the server's steady state.
const ATTACK_MEMORY_BOUND: u64 = 512 * 1024 * 1024;

/// A body just under the 10 MiB limit: `prefix`, then `item` repeated with
/// commas, then `suffix`.
fn filled(prefix: &str, item: &str, suffix: &str) -> Vec<u8> {
    let budget = 10 * 1024 * 1024 - prefix.len() - suffix.len() - 16;
    let n = budget / (item.len() + 1);
    let mut body = Vec::with_capacity(budget + prefix.len() + suffix.len());
    body.extend_from_slice(prefix.as_bytes());
    for i in 0..n {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item.as_bytes());
    }
    body.extend_from_slice(suffix.as_bytes());
    body
}

async fn post_raw(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let res = client
        .post(url)
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// Regression (issue 11): four concurrent 10 MiB bodies of `[0,0,0,…]`
/// drove the peak RSS to 8.8 GB. Now items are counted while parsed, junk
/// keys and nested metadata are never built, and at most a few large bodies
/// are parsed at once; every answer is small.
#[tokio::test]
async fn huge_bodies_cost_bounded_memory_and_small_answers() {
    let ws = Workspace::new();
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    let server = Server::start(&ws);
    let batch = format!("/v1/accounts/{ACME}/events/batch");
    // Steady state: the server has answered a few ordinary requests.
    for n in 0..20 {
        server.ingest(&ingest, ACME, &role_created(n)).await;
    }
    let base = vm_hwm(server.pid());

    let zeros = filled("{\"events\":[", "0", "]}");
    let junk_keys = {
        let mut i = 0;
        let mut body = b"{\"events\":[{".to_vec();
        while body.len() < 10 * 1024 * 1024 - 64 {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(format!("\"k{i}\":0").as_bytes());
            i += 1;
        }
        body.extend_from_slice(b"}]}");
        body
    };
    let nested_metadata = filled(
        "{\"level\":\"account\",\"category\":\"Roles\",\"event\":\"Role created\",\"actor\":{\"id\":\"u\"},\"metadata\":{\"role_id\":\"r\",\"role_type\":\"c\",\"x\":[",
        "[0]",
        "]}}",
    );
    let ndjson_lines = "{}\n".repeat(10_001).into_bytes();
    // 10,000 events with 1,000-character near-miss names: no "did you
    // mean" is computed for them, and the error list is capped.
    let long_names = {
        let name = format!("Role creat{}", "e".repeat(990));
        let event = json!({"level": "account", "category": "Roles", "event": name,
                           "actor": {"id": "u"}});
        let events: Vec<Value> = (0..8_000).map(|_| event.clone()).collect();
        serde_json::to_vec(&json!({ "events": events })).unwrap()
    };
    let started = Instant::now();
    let mut attacks = Vec::new();
    for _ in 0..4 {
        for (body, path, ct, want) in [
            (zeros.clone(), batch.clone(), "application/json", 413),
            (junk_keys.clone(), batch.clone(), "application/json", 422),
            (
                nested_metadata.clone(),
                format!("/v1/accounts/{ACME}/events"),
                "application/json",
                422,
            ),
            (
                ndjson_lines.clone(),
                batch.clone(),
                "application/x-ndjson",
                413,
            ),
            (long_names.clone(), batch.clone(), "application/json", 422),
        ] {
            let client = server.client.clone();
            let url = server.url(&path);
            let token = ingest.clone();
            attacks.push(tokio::spawn(async move {
                let (status, text) = post_raw(&client, &url, &token, ct, body).await;
                (status, want, text.len())
            }));
        }
    }
    // Meanwhile an ordinary request is still served.
    let res = server
        .get(
            &read,
            &format!("/v1/accounts/{ACME}/events/count?range=all_time"),
        )
        .await;
    assert_eq!(res.status(), 200);
    for attack in attacks {
        let (status, want, answer_len) = attack.await.unwrap();
        assert_eq!(status, want);
        assert!(answer_len < 64 * 1024, "an answer of {answer_len} bytes");
    }
    let elapsed = started.elapsed();
    let peak = vm_hwm(server.pid()).saturating_sub(base);
    eprintln!(
        "20 hostile bodies answered in {:.1} s; peak RSS {} MiB above the steady state",
        elapsed.as_secs_f64(),
        peak / (1024 * 1024)
    );
    assert!(
        peak < ATTACK_MEMORY_BOUND,
        "peak RSS grew by {} MiB",
        peak / (1024 * 1024)
    );
    // Nothing of it was stored (beside the 20 events, the log holds the
    // "Token created" events of the two tokens).
    let stored = server
        .get_json(
            &read,
            &format!("/v1/accounts/{ACME}/events/count?range=all_time&filter=category:eq:Roles"),
        )
        .await;
    assert_eq!(stored["count"], 20);
}

/// Regression (issue 11): an event dated in year -1 was stored and broke
/// the account's list for good; one dated 1970 made the all-time
/// histogram answer 400.
#[tokio::test]
async fn old_times_cannot_poison_an_account() {
    let ws = Workspace::new();
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    let server = Server::start(&ws);
    let path = format!("/v1/accounts/{ACME}/events");
    let mut event = role_created(1);
    event["occurred_at"] = json!("-000001-01-01T00:00:00Z");
    let res = server.post(&ingest, &path, &event).await;
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["errors"][0]["path"], "occurred_at");
    event["occurred_at"] = json!("1970-01-01T00:00:00Z");
    assert_eq!(server.post(&ingest, &path, &event).await.status(), 201);
    server.ingest(&ingest, ACME, &role_created(2)).await;

    // Only the account's Roles events (the log also holds the "Token
    // created" events of the two tokens).
    let roles = "filter=category:eq:Roles";
    let list = server
        .get_json(&read, &format!("{path}?range=all_time&{roles}"))
        .await;
    assert_eq!(list["events"].as_array().unwrap().len(), 2);
    let histogram = server
        .get_json(&read, &format!("{path}/histogram?range=all_time&{roles}"))
        .await;
    assert_eq!(histogram["bucket"], "month");
    let total: u64 = histogram["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 2);
    // Other widths on request.
    for bucket in ["week", "year"] {
        let h = server
            .get_json(
                &read,
                &format!("{path}/histogram?range=all_time&bucket={bucket}"),
            )
            .await;
        assert_eq!(h["bucket"], bucket);
    }
}
