//! Ingest: one event, JSON and NDJSON batches, idempotency, all-or-nothing,
//! size limits, every validation rejection with its path, and where
//! `ip_address` comes from.

use auditlog_core::record::{Micros, RecordBody};
use auditlog_store::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn is_hex64(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Regression (issue 12): the store read the system clock for
/// `recorded_at` and the time part of the id, so the pinned clock of these
/// tests never reached them; one injected clock now serves both layers.
#[tokio::test]
async fn recorded_at_and_the_id_time_come_from_the_store_clock() {
    let mut app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let later = "2026-11-25T12:34:56.789Z";
    for (at, restart) in [(DEFAULT_NOW, false), (later, false), (later, true)] {
        if restart {
            // The restarted store keeps the test's clock.
            app.restart().await;
        }
        app.set_now(at);
        let rec = app.ingest(&token, ACME, &role_created()).await;
        assert_eq!(rec["recorded_at"], json!(canonical(at)), "{rec}");
        let id: ulid::Ulid = rec["id"].as_str().expect("id").parse().expect("a ULID");
        let ms = ts(at).as_millisecond();
        assert_eq!(
            id.timestamp_ms(),
            u64::try_from(ms).expect("after 1970"),
            "{rec}"
        );
    }
}

#[tokio::test]
async fn ingest_returns_201_with_the_record_and_server_assigned_fields() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;

    let mut ev = role_created();
    ev["description"] = json!("Jane created the custom role Auditor");
    let rec = app.ingest(&token, ACME, &ev).await;

    let id = rec["id"].as_str().expect("id");
    assert_eq!(id.len(), 26, "a ULID: {rec}");
    assert!(id.parse::<ulid::Ulid>().is_ok(), "a ULID: {id}");
    assert_eq!(rec["seq"], json!(0));
    assert_eq!(rec["account_id"], json!(ACME));
    assert_eq!(rec["level"], json!("account"));
    assert_eq!(rec["category"], json!("Roles"));
    assert_eq!(rec["event"], json!("Role created"));
    // occurred_at defaults to the (pinned) now.
    assert_eq!(rec["occurred_at"], json!(canonical(DEFAULT_NOW)));
    assert!(Micros::parse_rfc3339(rec["recorded_at"].as_str().expect("recorded_at")).is_ok());
    assert_eq!(
        rec["actor"],
        json!({"kind": "user", "id": "u_1", "name": "Jane Doe", "email": "jane@acme.example"})
    );
    assert_eq!(rec["ip_address"], json!("127.0.0.1"), "the TCP peer");
    assert_eq!(rec["workflow_id"], Value::Null);
    assert_eq!(
        rec["description"],
        json!("Jane created the custom role Auditor")
    );
    assert_eq!(
        rec["metadata"],
        json!({"role_id": "r_9", "role_type": "custom"})
    );
    assert!(is_hex64(&rec["leaf_hash"]), "{rec}");

    // The leaf hash commits to the record without it (RFC 9162 leaf).
    let body: RecordBody = serde_json::from_value(rec.clone()).expect("record body");
    assert_eq!(
        hex::encode(body.compute_leaf_hash()),
        rec["leaf_hash"].as_str().unwrap()
    );

    // The same record, byte for byte, by id.
    let got = app
        .get_json(&read, &format!("{}/{id}", events_path(ACME)))
        .await;
    assert_eq!(got, rec);
}

#[tokio::test]
async fn description_defaults_to_a_sentence_from_the_catalog() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let rec = app.ingest(&token, ACME, &role_created()).await;
    assert_eq!(
        rec["description"],
        json!("Jane Doe created the custom role r_9")
    );
    // Names are matched ignoring case and stored in their catalog spelling.
    let mut ev = role_created();
    ev["category"] = json!(" roles ");
    ev["event"] = json!("ROLE created");
    let rec = app.ingest(&token, ACME, &ev).await;
    assert_eq!(
        (rec["category"].as_str(), rec["event"].as_str()),
        (Some("Roles"), Some("Role created"))
    );
}

#[tokio::test]
async fn seq_counts_from_zero_in_each_account() {
    let app = spawn_app().await;
    let platform = app.token("*", Role::Ingest).await;
    for want in 0..3 {
        assert_eq!(
            app.ingest(&platform, ACME, &role_created()).await["seq"],
            json!(want)
        );
    }
    assert_eq!(
        app.ingest(&platform, GLOBEX, &role_created()).await["seq"],
        json!(0)
    );
    let records = app
        .ingest_batch(&platform, ACME, &[role_created(), role_created()])
        .await;
    let seqs: Vec<&Value> = records.iter().map(|r| &r["seq"]).collect();
    assert_eq!(seqs, [&json!(3), &json!(4)]);
}

#[tokio::test]
async fn retry_with_the_same_idempotency_key_returns_the_first_record_with_200() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let path = events_path(ACME);
    let mut ev = role_created();
    ev["idempotency_key"] = json!("req-42");

    let first = app.post_json(&token, &path, &ev).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();

    let retry = app.post_json(&token, &path, &ev).await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(retry.json::<Value>().await.unwrap(), first);

    // A body that changed is another event: 409, never a second record
    // (see idempotency.rs).
    let mut changed = ev.clone();
    changed["metadata"]["role_id"] = json!("r_other");
    let again = app.post_json(&token, &path, &changed).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    // In a batch too: the retried item maps to the first record.
    let records = app
        .ingest_batch(&token, ACME, &[ev.clone(), role_created()])
        .await;
    assert_eq!(records[0], json!({"id": first["id"], "seq": first["seq"]}));
    assert_eq!(records[1]["seq"], json!(1));

    assert_eq!(app.count(&read, &path, &[("range", "all_time")]).await, 2);
}

#[tokio::test]
async fn a_key_repeated_inside_one_batch_stores_one_record() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let mut ev = role_created();
    ev["idempotency_key"] = json!("dup");
    let records = app
        .ingest_batch(&token, ACME, &[ev.clone(), role_created(), ev])
        .await;
    assert_eq!(records.len(), 3, "one result per input item");
    assert_eq!(records[0], records[2]);
    assert_eq!(records[0]["seq"], json!(0));
    assert_eq!(records[1]["seq"], json!(1));
    assert_eq!(
        app.count(&read, &events_path(ACME), &[("range", "all_time")])
            .await,
        2
    );
}

#[tokio::test]
async fn concurrent_retries_with_one_key_store_exactly_one_record() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let path = events_path(ACME);
    let mut ev = role_created();
    ev["idempotency_key"] = json!("racy");
    let sends = (0..12).map(|_| {
        let req = app
            .client
            .post(app.url(&path))
            .bearer_auth(&token)
            .json(&ev);
        async move {
            let res = req.send().await.expect("POST");
            let status = res.status();
            (status, res.json::<Value>().await.expect("record"))
        }
    });
    let results = futures_util::future::join_all(sends).await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(s, _)| *s == StatusCode::CREATED || *s == StatusCode::OK)
    );
    let first = &results[0].1;
    assert!(
        results.iter().all(|(_, r)| r == first),
        "all answers are the same record"
    );
    assert_eq!(app.count(&read, &path, &[("range", "all_time")]).await, 1);
}

#[tokio::test]
async fn idempotency_keys_belong_to_one_account() {
    let app = spawn_app().await;
    let platform = app.token("*", Role::Ingest).await;
    let mut ev = role_created();
    ev["idempotency_key"] = json!("same-key");
    let a = app.ingest(&platform, ACME, &ev).await;
    // 201 in another account: a key never returns another tenant's record.
    let b = app.ingest(&platform, GLOBEX, &ev).await;
    assert_ne!(a["id"], b["id"]);
    assert_eq!(b["account_id"], json!(GLOBEX));
}

#[tokio::test]
async fn a_batch_with_one_bad_event_is_rejected_whole() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let mut events: Vec<Value> = (0..5).map(|_| role_created()).collect();
    events[3]["metadata"] = json!({"role_id": "r_1"});
    let res = app
        .post_json(
            &token,
            &format!("{}/batch", events_path(ACME)),
            &json!({ "events": events }),
        )
        .await;
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(error_paths(&p), ["events[3].metadata.role_type"]);
    assert_eq!(
        app.count(&read, &events_path(ACME), &[("range", "all_time")])
            .await,
        0
    );

    // Every bad item is named, not only the first.
    events[1]["actor"] = json!({"kind": "robot", "id": "u_1"});
    let res = app
        .post_json(
            &token,
            &format!("{}/batch", events_path(ACME)),
            &json!({ "events": events }),
        )
        .await;
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        error_paths(&p),
        ["events[1].actor.kind", "events[3].metadata.role_type"]
    );
    assert_eq!(
        app.count(&read, &events_path(ACME), &[("range", "all_time")])
            .await,
        0
    );

    // Fixed, the same batch goes in whole, in order.
    events[1] = role_created();
    events[3] = role_created();
    let records = app.ingest_batch(&token, ACME, &events).await;
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    for r in &records {
        let id = r["id"].as_str().unwrap();
        let got = app
            .get_json(&read, &format!("{}/{id}", events_path(ACME)))
            .await;
        assert_eq!(got["seq"], r["seq"]);
    }
}

#[tokio::test]
async fn an_empty_batch_is_rejected() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let res = app
        .post_json(
            &token,
            &format!("{}/batch", events_path(ACME)),
            &json!({"events": []}),
        )
        .await;
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(error_paths(&p), ["events"]);
}

#[tokio::test]
async fn ndjson_batch() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let path = format!("{}/batch", events_path(ACME));
    let mut second = workflow_event("wf_1");
    second["occurred_at"] = json!("2026-11-25T11:00:00Z");
    // CRLF line ends, a blank line and a trailing newline are all fine.
    let body = format!("{}\r\n\n{}\n{}\n", role_created(), second, role_created());
    let res = app
        .post_raw(&token, &path, "application/x-ndjson", body)
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    let records = v["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    let id = records[1]["id"].as_str().unwrap();
    let rec = app
        .get_json(&read, &format!("{}/{id}", events_path(ACME)))
        .await;
    assert_eq!(rec["workflow_id"], json!("wf_1"));
    assert_eq!(rec["seq"], json!(1));

    // A line that is not JSON is a 400 naming the line; nothing is stored.
    let body = format!("{}\n{{\"level\": \n{}\n", role_created(), role_created());
    let res = app
        .post_raw(&token, &path, "application/x-ndjson", body)
        .await;
    let p = problem(res, StatusCode::BAD_REQUEST).await;
    assert!(p["detail"].as_str().unwrap().contains("line 2"), "{p}");
    // A bad event on line 3 is a 422 at events[2]; nothing is stored.
    let body = format!(
        "{}\n{}\n{}\n",
        role_created(),
        role_created(),
        json!({"level": "account"})
    );
    let res = app
        .post_raw(&token, &path, "application/x-ndjson", body)
        .await;
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        error_paths(&p).iter().all(|p| p.starts_with("events[2]")),
        "{p}"
    );
    assert_eq!(
        app.count(&read, &events_path(ACME), &[("range", "all_time")])
            .await,
        3
    );
}

#[tokio::test]
async fn a_batch_in_another_content_type_is_415() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let res = app
        .post_raw(
            &token,
            &format!("{}/batch", events_path(ACME)),
            "text/plain",
            role_created().to_string(),
        )
        .await;
    problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
}

#[tokio::test]
async fn a_body_over_10_mib_is_413_and_stores_nothing() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    const MIB: usize = 1024 * 1024;

    // One event whose description alone passes the limit: 413, not 422.
    let mut ev = role_created();
    ev["description"] = json!("x".repeat(10 * MIB + 1));
    let res = app.post_json(&token, &events_path(ACME), &ev).await;
    problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;

    // A batch of 5,000 valid events (well under the count limit) that is
    // over the byte limit.
    let mut ev = role_created();
    ev["description"] = json!("d".repeat(2200));
    let events: Vec<Value> = (0..5000).map(|_| ev.clone()).collect();
    let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
    assert!(body.len() > 10 * MIB);
    let path = format!("{}/batch", events_path(ACME));
    let res = app.post_raw(&token, &path, "application/json", body).await;
    problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;

    // The same over NDJSON.
    let mut body = Vec::new();
    for e in &events {
        serde_json::to_writer(&mut body, e).unwrap();
        body.push(b'\n');
    }
    let res = app
        .post_raw(&token, &path, "application/x-ndjson", body)
        .await;
    problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;

    assert_eq!(
        app.count(&read, &events_path(ACME), &[("range", "all_time")])
            .await,
        0
    );
}

#[tokio::test]
async fn a_batch_of_10000_events_is_accepted_and_10001_is_413() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let path = format!("{}/batch", events_path(ACME));
    let events: Vec<Value> = (0..10_001).map(|_| role_created()).collect();

    let res = app
        .post_json(&token, &path, &json!({ "events": events }))
        .await;
    problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    let mut ndjson = Vec::new();
    for e in &events {
        serde_json::to_writer(&mut ndjson, e).unwrap();
        ndjson.push(b'\n');
    }
    let res = app
        .post_raw(&token, &path, "application/x-ndjson", ndjson)
        .await;
    problem(res, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(
        app.count(&read, &events_path(ACME), &[("range", "all_time")])
            .await,
        0
    );

    let records = app.ingest_batch(&token, ACME, &events[..10_000]).await;
    assert_eq!(records.len(), 10_000);
    assert_eq!(records[9_999]["seq"], json!(9_999));
    assert_eq!(
        app.count(&read, &events_path(ACME), &[("range", "all_time")])
            .await,
        10_000
    );
}

/// A change to a valid event, and the path (relative to the event) of the
/// problem it must cause.
struct Bad {
    name: &'static str,
    event: Value,
    path: &'static str,
    message_has: &'static str,
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

fn bad_events() -> Vec<Bad> {
    let rc = role_created;
    let many_keys: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
    let mut many = rc();
    many["metadata"] = Value::Object(many_keys);
    many["metadata"]["role_id"] = json!("r");
    many["metadata"]["role_type"] = json!("t");
    let long_key = "k".repeat(65);
    let mut long_key_ev = rc();
    long_key_ev["metadata"][&long_key] = json!(1);
    let fine_tuning = json!({
        "level": "account", "category": "Models", "event": "Model fine-tuning",
        "actor": {"id": "u_1"},
        "metadata": {
            "model_id": "m", "model_name": "n", "model_type": "t", "hardware_type": "h",
            "training_method": "lora", "no_of_epochs": "ten", "batch_size": 8,
            "learning_rate": 0.001, "training_dataset": "a", "test_dataset": "b",
            "weights_and_biases": "w"
        }
    });
    let async_enabled = json!({
        "level": "workflow", "category": "Workflow Management", "event": "API async enabled",
        "actor": {"id": "u_1"}, "workflow_id": "wf_1",
        "metadata": {"version_id": "v1", "url": "https://x", "access_token": "t", "timeout": "yes"}
    });
    let mut nested = rc();
    nested["metadata"]["extra"] = json!({"a": 1});
    let mut long_value = rc();
    long_value["metadata"]["note"] = json!("v".repeat(1025));
    vec![
        Bad {
            name: "missing level",
            event: without(rc(), "level"),
            path: "level",
            message_has: "required",
        },
        Bad {
            name: "unknown level",
            event: with(rc(), "level", json!("galaxy")),
            path: "level",
            message_has: "galaxy",
        },
        Bad {
            name: "missing category",
            event: without(rc(), "category"),
            path: "category",
            message_has: "required",
        },
        Bad {
            name: "missing event",
            event: without(rc(), "event"),
            path: "event",
            message_has: "required",
        },
        Bad {
            name: "near-miss event",
            event: with(rc(), "event", json!("Role craeted")),
            path: "event",
            message_has: "did you mean `Role created`",
        },
        Bad {
            name: "near-miss category",
            event: with(rc(), "category", json!("Rolse")),
            path: "category",
            message_has: "did you mean `Roles`",
        },
        Bad {
            name: "event of another level",
            event: with(rc(), "level", json!("workflow")),
            path: "category",
            message_has: "unknown workflow category",
        },
        Bad {
            name: "missing actor",
            event: without(rc(), "actor"),
            path: "actor",
            message_has: "required",
        },
        Bad {
            name: "unknown actor kind",
            event: with(rc(), "actor", json!({"kind": "robot", "id": "u"})),
            path: "actor.kind",
            message_has: "user, app, system",
        },
        Bad {
            name: "actor without id",
            event: with(rc(), "actor", json!({"name": "Jane"})),
            path: "actor.id",
            message_has: "required",
        },
        Bad {
            name: "invalid ip",
            event: with(rc(), "ip_address", json!("999.1.1.1")),
            path: "ip_address",
            message_has: "not an IPv4 or IPv6 address",
        },
        Bad {
            name: "workflow-level event without workflow_id",
            event: without(workflow_event("wf"), "workflow_id"),
            path: "workflow_id",
            message_has: "workflow-level",
        },
        Bad {
            name: "Workflows category without workflow_id",
            event: without(workflow_created("wf"), "workflow_id"),
            path: "workflow_id",
            message_has: "Workflows",
        },
        Bad {
            name: "login without email",
            event: json!({
                "level": "account", "category": "Login/Logout", "event": "Login",
                "actor": {"id": "u_1"}, "metadata": {"login_method": "sso"}
            }),
            path: "actor.email",
            message_has: "required",
        },
        Bad {
            name: "missing required metadata",
            event: with(rc(), "metadata", json!({"role_id": "r_1"})),
            path: "metadata.role_type",
            message_has: "Role Type",
        },
        Bad {
            name: "string field given a number",
            event: with(
                rc(),
                "metadata",
                json!({"role_id": 5, "role_type": "custom"}),
            ),
            path: "metadata.role_id",
            message_has: "a string",
        },
        Bad {
            name: "number field given a string",
            event: fine_tuning,
            path: "metadata.no_of_epochs",
            message_has: "a number",
        },
        Bad {
            name: "boolean field given a string",
            event: async_enabled,
            path: "metadata.timeout",
            message_has: "a boolean",
        },
        Bad {
            name: "nested metadata",
            event: nested,
            path: "metadata.extra",
            message_has: "string, number, boolean or null",
        },
        Bad {
            name: "65 metadata keys",
            event: many,
            path: "metadata",
            message_has: "at most 64",
        },
        Bad {
            name: "metadata key of 65 characters",
            event: long_key_ev,
            path: Box::leak(format!("metadata.{long_key}").into_boxed_str()),
            message_has: "64",
        },
        Bad {
            name: "metadata string of 1,025 characters",
            event: long_value,
            path: "metadata.note",
            message_has: "1024",
        },
        Bad {
            name: "description of 4,097 characters",
            event: with(rc(), "description", json!("é".repeat(4097))),
            path: "description",
            message_has: "4096",
        },
        Bad {
            name: "NUL in a string",
            event: with(rc(), "description", json!("a\u{0}b")),
            path: "description",
            message_has: "NUL",
        },
        Bad {
            name: "idempotency key of 129 characters",
            event: with(rc(), "idempotency_key", json!("i".repeat(129))),
            path: "idempotency_key",
            message_has: "128",
        },
        Bad {
            name: "server-assigned seq",
            event: with(rc(), "seq", json!(3)),
            path: "seq",
            message_has: "assigned by the server",
        },
        Bad {
            name: "server-assigned id",
            event: with(rc(), "id", json!("x")),
            path: "id",
            message_has: "assigned by the server",
        },
        Bad {
            name: "unknown field",
            event: with(rc(), "colour", json!("red")),
            path: "colour",
            message_has: "unknown field",
        },
        Bad {
            name: "occurred_at not RFC 3339",
            event: with(rc(), "occurred_at", json!("yesterday")),
            path: "occurred_at",
            message_has: "RFC 3339",
        },
        Bad {
            name: "occurred_at more than 5 minutes ahead",
            event: with(rc(), "occurred_at", json!("2026-11-25T12:05:00.001Z")),
            path: "occurred_at",
            message_has: "future",
        },
        Bad {
            name: "the reserved Audit Logs category",
            event: json!({
                "level": "account", "category": "Audit Logs", "event": "Audit logs exported",
                "actor": {"id": "u_1"},
                "metadata": {"token_id": "t", "format": "csv", "range": "r", "filters": "", "row_count": 1}
            }),
            path: "category",
            message_has: "cannot be ingested",
        },
        Bad {
            name: "the reserved category in another spelling",
            event: json!({
                "level": "account", "category": " audit LOGS ", "event": "Audit logs exported",
                "actor": {"id": "u_1"}
            }),
            path: "category",
            message_has: "cannot be ingested",
        },
    ]
}

#[tokio::test]
async fn every_rejection_is_422_with_its_path_alone_and_in_a_batch() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let batch_path = format!("{}/batch", events_path(ACME));
    for bad in bad_events() {
        let res = app.post_json(&token, &events_path(ACME), &bad.event).await;
        let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            error_paths(&p).contains(&bad.path.to_owned()),
            "{}: {p}",
            bad.name
        );
        let msg = error_message(&p, bad.path);
        assert!(
            msg.contains(bad.message_has),
            "{}: `{msg}` lacks `{}`",
            bad.name,
            bad.message_has
        );

        // Fourth of five in a batch: the path names the item.
        let mut events: Vec<Value> = (0..5).map(|_| role_created()).collect();
        events[3] = bad.event.clone();
        let res = app
            .post_json(&token, &batch_path, &json!({ "events": events }))
            .await;
        let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        let want = format!("events[3].{}", bad.path);
        assert!(error_paths(&p).contains(&want), "{}: {p}", bad.name);
        assert!(
            error_paths(&p).iter().all(|p| p.starts_with("events[3]")),
            "{}: {p}",
            bad.name
        );
    }
    // Nothing of any of them was stored.
    assert_eq!(
        app.count(&read, &events_path(ACME), &[("range", "all_time")])
            .await,
        0
    );
}

#[tokio::test]
async fn an_item_that_is_not_an_object_is_named_by_its_index() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let res = app
        .post_json(
            &token,
            &format!("{}/batch", events_path(ACME)),
            &json!({"events": [role_created(), 42]}),
        )
        .await;
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(error_paths(&p), ["events[1]"]);
}

#[tokio::test]
async fn occurred_at_may_be_up_to_5_minutes_ahead_and_keeps_milliseconds() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let rec = app
        .ingest(&token, ACME, &role_created_at("2026-11-25T12:05:00Z"))
        .await;
    assert_eq!(rec["occurred_at"], json!("2026-11-25T12:05:00.000Z"));
    // Any offset is accepted; finer than milliseconds is truncated.
    let rec = app
        .ingest(
            &token,
            ACME,
            &role_created_at("2026-11-25T13:00:00.123999+01:00"),
        )
        .await;
    assert_eq!(rec["occurred_at"], json!("2026-11-25T12:00:00.123Z"));
    let rec = app
        .ingest(&token, ACME, &role_created_at("1999-12-31T23:59:59.999Z"))
        .await;
    assert_eq!(rec["occurred_at"], json!("1999-12-31T23:59:59.999Z"));
}

#[tokio::test]
async fn malformed_json_and_invalid_utf8_are_400() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let one = events_path(ACME);
    let batch = format!("{one}/batch");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (&one, b"{\"level\": ".to_vec()),
        (&one, b"".to_vec()),
        (&one, b"{\"level\": \"account\"} trailing".to_vec()),
        (&one, b"{\"level\": \"acc\xff\xfeount\"}".to_vec()),
        (&batch, b"[1, 2".to_vec()),
        (&batch, b"{\"events\": \"\xff\"}".to_vec()),
        (&batch, b"[]".to_vec()),
        (&batch, b"{\"events\": {}}".to_vec()),
        (&batch, b"{\"events\": [], \"extra\": 1}".to_vec()),
    ];
    for (path, body) in cases {
        let res = app
            .post_raw(&token, path, "application/json", body.clone())
            .await;
        let p = problem(res, StatusCode::BAD_REQUEST).await;
        assert!(
            !p["detail"].as_str().unwrap().is_empty(),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    // A batch of another shape is told what the shape is (these bodies take
    // the slow path, parsed as a `Value` after the typed read fails).
    for (body, says) in [
        (&b"[]"[..], "the body must be an object {\"events\": [...]}"),
        (b"{\"events\": {}}", "`events` must be an array of events"),
        (
            b"{\"events\": [], \"extra\": 1}",
            "unknown field `extra` in the batch",
        ),
        (b"{\"events\": [1, 2", "the body is not valid JSON"),
    ] {
        let res = app
            .post_raw(&token, &batch, "application/json", body.to_vec())
            .await;
        let p = problem(res, StatusCode::BAD_REQUEST).await;
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{detail}");
    }
    // Invalid UTF-8 inside an NDJSON line too.
    let res = app
        .post_raw(
            &token,
            &batch,
            "application/x-ndjson",
            b"{\"level\": \"\xc3\x28\"}\n".to_vec(),
        )
        .await;
    problem(res, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.count(&read, &one, &[("range", "all_time")]).await, 0);
}

#[tokio::test]
async fn ip_address_is_the_peer_or_an_explicit_valid_address() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    // Without a trusted proxy, X-Forwarded-For is whatever the client
    // wrote: it is ignored.
    let res = app
        .client
        .post(app.url(&events_path(ACME)))
        .bearer_auth(&token)
        .header("x-forwarded-for", "198.51.100.7")
        .json(&role_created())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(
        res.json::<Value>().await.unwrap()["ip_address"],
        json!("127.0.0.1")
    );
    // An explicit address is kept (in its normal form).
    let rec = app
        .ingest(
            &token,
            ACME,
            &with(role_created(), "ip_address", json!(" 2001:DB8::0:1 ")),
        )
        .await;
    assert_eq!(rec["ip_address"], json!("2001:db8::1"));
    let rec = app
        .ingest(
            &token,
            ACME,
            &with(role_created(), "ip_address", json!("203.0.113.7")),
        )
        .await;
    assert_eq!(rec["ip_address"], json!("203.0.113.7"));
}

#[tokio::test]
async fn behind_a_trusted_proxy_ip_address_is_the_right_most_untrusted_hop() {
    let app = spawn_app_with(AppOptions {
        trusted_proxies: vec!["127.0.0.0/8", "10.0.0.0/8"],
        ..AppOptions::default()
    })
    .await;
    let token = app.token(ACME, Role::Ingest).await;
    // (X-Forwarded-For header lines, expected ip_address)
    let cases: &[(&[&str], &str)] = &[
        // The left part is the client's own claim; the proxy appended the
        // address it saw.
        (&["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
        // Through two trusted proxies.
        (&["6.6.6.6, 198.51.100.7, 10.1.2.3"], "198.51.100.7"),
        (&["  203.0.113.9  "], "203.0.113.9"),
        (&["2001:db8::7, 10.0.0.1"], "2001:db8::7"),
        // Only trusted hops: the left-most of them is the best we know.
        (&["10.0.0.2, 10.0.0.3"], "10.0.0.2"),
        // No header: the proxy itself.
        (&[], "127.0.0.1"),
        // A proxy that appends its own header line instead of joining:
        // the lines are one list (RFC 9110 §5.3), so the client's line
        // must not win.
        (&["6.6.6.6", "198.51.100.7"], "198.51.100.7"),
    ];
    for (lines, want) in cases {
        let mut req = app
            .client
            .post(app.url(&events_path(ACME)))
            .bearer_auth(&token)
            .json(&role_created());
        for line in *lines {
            req = req.header("x-forwarded-for", *line);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let rec: Value = res.json().await.unwrap();
        assert_eq!(rec["ip_address"], json!(want), "X-Forwarded-For: {lines:?}");
    }
}
