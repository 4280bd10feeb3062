//! Idempotency keys (issue 11): the same key with the same event returns
//! the first record (200; `{id, seq}` of the first in a batch), the same key
//! with a different event is `409` and reveals nothing of the stored record;
//! fields left to server defaults (`occurred_at`, `ip_address`) do not make
//! a retry a conflict.

use auditlog_store::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn keyed(key: &str) -> Value {
    let mut ev = role_created();
    ev["idempotency_key"] = json!(key);
    ev
}

async fn conflict(res: reqwest::Response, key: &str) {
    let p = problem(res, StatusCode::CONFLICT).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("`{key}`")), "names the key: {p}");
    // Nothing of the first record: not its id, actor, metadata or time.
    for secret in ["r_9", "Jane", "u_1", "01", "seq"] {
        assert!(!p.to_string().contains(secret), "reveals `{secret}`: {p}");
    }
}

#[tokio::test]
async fn a_key_reused_with_another_body_is_409_and_stores_nothing() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let path = events_path(ACME);
    let first = app.ingest(&token, ACME, &keyed("k-1")).await;

    let mut changed = keyed("k-1");
    changed["metadata"]["role_id"] = json!("r_other");
    conflict(app.post_json(&token, &path, &changed).await, "k-1").await;
    let mut changed = keyed("k-1");
    changed["occurred_at"] = json!("2026-11-25T11:00:00Z");
    conflict(app.post_json(&token, &path, &changed).await, "k-1").await;
    let mut changed = keyed("k-1");
    changed["description"] = json!("another description");
    conflict(app.post_json(&token, &path, &changed).await, "k-1").await;

    // The same body still replays the first record.
    let retry = app.post_json(&token, &path, &keyed("k-1")).await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    assert_eq!(app.count(&read, &path, &[("range", "all_time")]).await, 1);
}

/// A retry that left `occurred_at` (and `ip_address`) to the server comes
/// later, maybe through another address: the same event.
#[tokio::test]
async fn a_retry_relying_on_server_defaults_is_the_same_event() {
    let app = spawn_app_with(AppOptions {
        trusted_proxies: vec!["127.0.0.0/8"],
        ..AppOptions::default()
    })
    .await;
    let token = app.token(ACME, Role::Ingest).await;
    let path = events_path(ACME);
    let send = |forwarded: &'static str| {
        app.client
            .post(app.url(&path))
            .bearer_auth(&token)
            .header("x-forwarded-for", forwarded)
            .json(&keyed("k-default"))
            .send()
    };
    let first = send("198.51.100.1").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["ip_address"], json!("198.51.100.1"));
    assert_eq!(first["occurred_at"], json!(canonical(DEFAULT_NOW)));

    app.set_now("2026-11-25T12:00:30Z");
    let retry = send("198.51.100.2").await.unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.json::<Value>().await.unwrap(), first);

    // Stating a time states the event's time: another time, another event;
    // the first one's time, the same event.
    let mut explicit = keyed("k-default");
    explicit["occurred_at"] = json!("2026-11-25T12:00:30Z");
    conflict(app.post_json(&token, &path, &explicit).await, "k-default").await;
    explicit["occurred_at"] = json!(DEFAULT_NOW);
    explicit["ip_address"] = json!("198.51.100.1");
    let res = app.post_json(&token, &path, &explicit).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn batches_replay_the_first_records_and_refuse_conflicts_whole() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let batch_path = format!("{}/batch", events_path(ACME));
    let events = [keyed("b-1"), role_created(), keyed("b-2")];
    let first = app.ingest_batch(&token, ACME, &events).await;

    // The same batch again: `{id, seq}` of the first records; the unkeyed
    // item is new.
    let again = app.ingest_batch(&token, ACME, &events).await;
    assert_eq!(again[0], first[0]);
    assert_eq!(again[2], first[2]);
    assert_eq!(again[1]["seq"], json!(3));

    // One item reuses a key with another event: the whole batch is 409 and
    // nothing of it is stored.
    let mut changed = keyed("b-2");
    changed["actor"]["id"] = json!("u_other");
    let res = app
        .post_json(
            &token,
            &batch_path,
            &json!({"events": [role_created(), keyed("b-new"), changed]}),
        )
        .await;
    conflict(res, "b-2").await;
    assert_eq!(
        app.count(&read, &events_path(ACME), &[("range", "all_time")])
            .await,
        4
    );

    // Within one batch: the same event twice is one record…
    let dup = app
        .ingest_batch(&token, ACME, &[keyed("b-3"), keyed("b-3")])
        .await;
    assert_eq!(dup[0], dup[1]);
    // …two different events under one key are a conflict.
    let mut other = keyed("b-4");
    other["metadata"]["role_type"] = json!("system");
    let res = app
        .post_json(
            &token,
            &batch_path,
            &json!({"events": [keyed("b-4"), other]}),
        )
        .await;
    conflict(res, "b-4").await;
    assert_eq!(
        app.count(&read, &events_path(ACME), &[("range", "all_time")])
            .await,
        5
    );
}
