//! `auditlog serve` and `auditlog token create`: ready when it says so,
//! tokens issued while it runs, graceful shutdown on SIGTERM, and a restart
//! that keeps every event, key, token and the signing key.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn serve_answers_as_soon_as_it_prints_its_address() {
    let ws = Workspace::new();
    let server = Server::start(&ws);
    for path in ["/healthz", "/readyz"] {
        let res = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    // Tokens made while the server runs work at once.
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    assert_ne!(ingest, read);
    let rec = server.ingest(&ingest, ACME, &role_created(1)).await;
    // (Tokens made while it runs are recorded at the next start.)
    assert_eq!(rec["seq"], json!(0));
    assert_eq!(server.count(&read, ACME).await, 1);
    let who = server.get_json(&read, "/v1/whoami").await;
    assert_eq!(
        (who["account"].as_str(), who["role"].as_str()),
        (Some(ACME), Some("read"))
    );
    // The roles are the ones asked for.
    let res = server
        .post(
            &read,
            &format!("/v1/accounts/{ACME}/events"),
            &role_created(2),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A platform token.
    let platform = create_token(&ws.data_dir(), "*", "ingest");
    server.ingest(&platform, GLOBEX, &role_created(3)).await;
}

#[test]
fn token_create_refuses_bad_input() {
    let ws = Workspace::new();
    let dir = ws.data_dir();
    let dir = dir.to_str().unwrap();
    for args in [
        [
            "token",
            "create",
            "--data-dir",
            dir,
            "--account",
            "Not Valid",
            "--role",
            "read",
        ],
        [
            "token",
            "create",
            "--data-dir",
            dir,
            "--account",
            ACME,
            "--role",
            "superuser",
        ],
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.stdout.is_empty(), "no token printed for {args:?}");
    }
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_and_exits_0() {
    let ws = Workspace::new();
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    let mut server = Server::start(&ws);

    // A batch whose body arrives in two parts, SIGTERM in between: the
    // server has accepted it and must answer it before exiting.
    let events: Vec<Value> = (0..200).map(role_created).collect();
    let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    tx.send(Ok(first.to_vec())).await.unwrap();
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let request = server
        .client
        .post(server.url(&format!("/v1/accounts/{ACME}/events/batch")))
        .bearer_auth(&ingest)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(Ok(rest.to_vec())).await.unwrap();
    drop(tx);
    let res = in_flight
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(res.status(), StatusCode::CREATED);
    let records: Value = res.json().await.unwrap();
    assert_eq!(records["records"].as_array().unwrap().len(), 200);

    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "exit status {status}");
    // It no longer listens.
    assert!(
        server
            .client
            .get(server.url("/healthz"))
            .send()
            .await
            .is_err()
    );

    // What it acknowledged is there after a restart.
    let server = Server::start(&ws);
    // And the two tokens' "Token created" events.
    assert_eq!(server.count(&read, ACME).await, 202);
}

#[tokio::test]
async fn a_restart_keeps_events_keys_tokens_and_the_signing_key() {
    let ws = Workspace::new();
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    let mut server = Server::start(&ws);
    let mut keyed = role_created(0);
    keyed["idempotency_key"] = json!("k-0");
    let first = server.ingest(&ingest, ACME, &keyed).await;
    let events: Vec<Value> = (1..40).map(role_created).collect();
    let res = server.post_batch(&ingest, ACME, &events).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let before = server.list_all(&read, ACME, 1000).await;
    // 40 events and the two tokens' "Token created".
    assert_eq!(before.len(), 42);
    let key = server
        .client
        .get(server.url("/v1/public-key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let checkpoint = server
        .get(&read, &format!("/v1/accounts/{ACME}/checkpoint"))
        .await;
    assert_eq!(checkpoint.status(), StatusCode::OK);
    let checkpoint = checkpoint.text().await.unwrap();

    server.terminate();
    assert_eq!(server.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let server = Server::start(&ws);

    // The same records byte for byte, the same key, the same checkpoint.
    assert_eq!(server.list_all(&read, ACME, 9).await, before);
    let key_after = server
        .client
        .get(server.url("/v1/public-key"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        key_after, key,
        "the signing key persists in the data directory"
    );
    let after = server
        .get(&read, &format!("/v1/accounts/{ACME}/checkpoint"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(after, checkpoint);
    // The idempotency key still answers with the first record.
    let res = server
        .post(&ingest, &format!("/v1/accounts/{ACME}/events"), &keyed)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), first);
    // seq goes on.
    assert_eq!(
        server.ingest(&ingest, ACME, &role_created(40)).await["seq"],
        json!(42)
    );
}
