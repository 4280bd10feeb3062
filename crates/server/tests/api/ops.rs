//! Operations: health, readiness, metrics, the OpenAPI document, the
//! catalog, unknown routes, signed checkpoints with their proofs, and a
//! restart that keeps every record, key, token and tree intact.

use auditlog_core::checkpoint::{NoteVerifier, open_note};
use auditlog_core::merkle::{Hash, verify_consistency, verify_inclusion};
use auditlog_store::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap().trim(), "ok");
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap().trim(), "ready");
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_request_counters() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    app.client.get(app.url("/healthz")).send().await.unwrap();
    app.ingest(&token, ACME, &role_created()).await;
    let res = app
        .client
        .get(app.url(&events_path(ACME)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ctype = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let text = res.text().await.unwrap();
    assert!(
        text.contains("# TYPE auditlog_http_requests_total counter"),
        "{text}"
    );
    // A counter line per (method, route, status), the route as matched.
    let counter = |route: &str, method: &str, status: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with("auditlog_http_requests_total{"))
            .filter(|l| {
                l.contains(&format!("route=\"{route}\""))
                    && l.contains(&format!("method=\"{method}\""))
                    && l.contains(&format!("status=\"{status}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
            .sum()
    };
    assert!(counter("/healthz", "GET", "200") >= 1, "{text}");
    assert!(
        counter("/v1/accounts/{account}/events", "POST", "201") >= 1,
        "{text}"
    );
    assert!(
        counter("/v1/accounts/{account}/events", "GET", "401") >= 1,
        "{text}"
    );
    assert!(text.contains("auditlog_events_ingested_total"), "{text}");
    // Every sample line is `name{labels} value` or `name value`.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
    }
}

#[tokio::test]
async fn openapi_json_describes_the_v1_api() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = serde_json::from_str(&res.text().await.unwrap()).expect("valid JSON");
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "an OpenAPI 3.1 document: {doc}");
    let paths = doc["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("no paths: {doc}"));
    for p in [
        "/v1/catalog",
        "/v1/accounts/{account}/events",
        "/v1/accounts/{account}/events/batch",
        "/v1/accounts/{account}/events/count",
        "/v1/accounts/{account}/events/histogram",
        "/v1/accounts/{account}/events/export",
        "/v1/accounts/{account}/events/{id}",
        "/v1/accounts/{account}/checkpoint",
        "/v1/accounts/{account}/tokens",
    ] {
        assert!(paths.contains_key(p), "{p} is not described");
    }
}

#[tokio::test]
async fn the_catalog_lists_every_event_with_its_fields() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Read).await;
    let cat = app.get_json(&token, "/v1/catalog").await;
    let mut n = 0;
    let mut seed = 0;
    for level in cat["levels"].as_array().unwrap() {
        for c in level["categories"].as_array().unwrap() {
            for e in c["events"].as_array().unwrap() {
                n += 1;
                if e["source"] == "seed" {
                    seed += 1;
                }
                for f in e["fields"].as_array().unwrap() {
                    assert!(
                        ["string", "number", "boolean"].contains(&f["type"].as_str().unwrap()),
                        "{f}"
                    );
                    assert!(
                        f["key"].is_string()
                            && f["label"].is_string()
                            && f["required"].is_boolean()
                    );
                }
            }
        }
    }
    assert_eq!((n, seed), (95, 91));
}

#[tokio::test]
async fn unknown_routes_are_404_problems() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Read).await;
    for path in ["/nope", "/v1/nope", "/v1/accounts/acme/nope"] {
        problem(app.get(&token, path).await, StatusCode::NOT_FOUND).await;
    }
}

fn hash_of(hex_str: &str) -> Hash {
    let mut h = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut h).expect("64 hex");
    h
}

/// The account's checkpoint, opened with the server's public key.
async fn checkpoint(app: &TestApp, token: &str) -> auditlog_core::checkpoint::Checkpoint {
    let key = app
        .client
        .get(app.url("/v1/public-key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let verifier = NoteVerifier::parse(&key).expect("verifier key");
    let res = app
        .get(token, &format!("/v1/accounts/{ACME}/checkpoint"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let note = res.text().await.unwrap();
    let cp = open_note(&note, &verifier).expect("a valid signed checkpoint");
    assert_eq!(cp.origin, "auditlog.test/acme");
    cp
}

async fn proof(app: &TestApp, token: &str, path: &str) -> Vec<Hash> {
    let v = app.get_json(token, path).await;
    v["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hash_of(h.as_str().unwrap()))
        .collect()
}

/// Checks the checkpoint covers `records` (all of the log) and that every
/// record's inclusion proof verifies against it.
async fn check_tree(
    app: &TestApp,
    token: &str,
    records: &[Value],
) -> auditlog_core::checkpoint::Checkpoint {
    let cp = checkpoint(app, token).await;
    assert_eq!(cp.size, records.len() as u64);
    for r in records {
        let seq = r["seq"].as_u64().unwrap();
        let p = proof(
            app,
            token,
            &format!(
                "/v1/accounts/{ACME}/proof/inclusion?seq={seq}&size={}",
                cp.size
            ),
        )
        .await;
        verify_inclusion(
            &hash_of(r["leaf_hash"].as_str().unwrap()),
            seq,
            cp.size,
            &p,
            &cp.root,
        )
        .unwrap_or_else(|e| panic!("inclusion of {seq}: {e}"));
    }
    cp
}

#[tokio::test]
async fn checkpoints_are_signed_and_proofs_verify() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    problem(
        app.get(&read, &format!("/v1/accounts/{ACME}/checkpoint"))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let events: Vec<Value> = (0..13).map(|_| role_created()).collect();
    app.ingest_batch(&token, ACME, &events).await;
    let records = app
        .list_all(&read, &events_path(ACME), &[("range", "all_time")], 1000)
        .await;
    let old = check_tree(&app, &read, &records).await;

    let events: Vec<Value> = (0..9).map(|_| workflow_event("wf_1")).collect();
    app.ingest_batch(&token, ACME, &events).await;
    let records = app
        .list_all(&read, &events_path(ACME), &[("range", "all_time")], 1000)
        .await;
    let new = check_tree(&app, &read, &records).await;
    let p = proof(
        &app,
        &read,
        &format!(
            "/v1/accounts/{ACME}/proof/consistency?from={}&to={}",
            old.size, new.size
        ),
    )
    .await;
    verify_consistency(old.size, new.size, &old.root, &new.root, &p).expect("consistent");

    for bad in [
        "seq=22&size=22",
        "seq=0&size=23",
        "seq=-1&size=2",
        "seq=0",
        "seq=0&size=1&x=1",
    ] {
        let res = app
            .get(&read, &format!("/v1/accounts/{ACME}/proof/inclusion?{bad}"))
            .await;
        problem(res, StatusCode::BAD_REQUEST).await;
    }
    for bad in ["from=5&to=4", "from=1&to=23", "to=3"] {
        let res = app
            .get(
                &read,
                &format!("/v1/accounts/{ACME}/proof/consistency?{bad}"),
            )
            .await;
        problem(res, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn a_restart_keeps_records_keys_tokens_and_the_tree() {
    let mut app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let mut keyed = role_created();
    keyed["idempotency_key"] = json!("before-restart");
    let first = app.ingest(&token, ACME, &keyed).await;
    let events: Vec<Value> = (0..20)
        .map(|i| {
            let mut ev = if i % 2 == 0 {
                workflow_event("wf_1")
            } else {
                role_created()
            };
            ev["occurred_at"] = json!(format!("2026-11-{:02}T08:00:00Z", i + 1));
            ev
        })
        .collect();
    app.ingest_batch(&token, ACME, &events).await;
    app.ingest(
        &app.token(GLOBEX, Role::Ingest).await,
        GLOBEX,
        &role_created(),
    )
    .await;
    let before = app
        .list_all(&read, &events_path(ACME), &[("range", "all_time")], 1000)
        .await;
    let cp_before = check_tree(&app, &read, &before).await;

    app.restart().await;

    // The same records, byte for byte, found the same ways.
    let after = app
        .list_all(&read, &events_path(ACME), &[("range", "all_time")], 7)
        .await;
    assert_eq!(after, before);
    let wf = app
        .list_all(
            &read,
            &format!("/v1/accounts/{ACME}/workflows/wf_1/events"),
            &[("range", "all_time")],
            1000,
        )
        .await;
    assert_eq!(wf.len(), 10);
    assert_eq!(
        app.count(
            &read,
            &events_path(ACME),
            &[("range", "all_time"), ("filter", "user:eq:jane doe")]
        )
        .await,
        11
    );
    // The idempotency key still holds.
    let res = app.post_json(&token, &events_path(ACME), &keyed).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), first);
    // seq goes on without a gap, in each account.
    assert_eq!(
        app.ingest(&token, ACME, &role_created()).await["seq"],
        json!(21)
    );
    let globex = app.token(GLOBEX, Role::Ingest).await;
    assert_eq!(
        app.ingest(&globex, GLOBEX, &role_created()).await["seq"],
        json!(1)
    );
    // The tree was restored: the new checkpoint extends the old one.
    let all = app
        .list_all(&read, &events_path(ACME), &[("range", "all_time")], 1000)
        .await;
    let cp_after = check_tree(&app, &read, &all).await;
    let p = proof(
        &app,
        &read,
        &format!(
            "/v1/accounts/{ACME}/proof/consistency?from={}&to={}",
            cp_before.size, cp_after.size
        ),
    )
    .await;
    verify_consistency(
        cp_before.size,
        cp_after.size,
        &cp_before.root,
        &cp_after.root,
        &p,
    )
    .expect("consistent");
}
