//! The Merkle log across a crash: checkpoints taken before a SIGKILL are
//! consistent with those after the restart, and `auditlog verify` says so
//! from files alone; a full export verifies against the newest checkpoint.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ACME, Server, Workspace, create_token, role_created, run};

/// [`Server::checkpoint`] of ACME.
pub async fn checkpoint(server: &Server, token: &str) -> String {
    server.checkpoint(token, ACME).await
}

pub fn size_of(note: &str) -> u64 {
    note.lines()
        .nth(1)
        .expect("size line")
        .parse()
        .expect("size")
}

/// Runs `auditlog verify` with `args`; returns (success, stdout + stderr).
pub fn verify(args: &[&str]) -> (bool, String) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let out = run(&all);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_before_and_after_a_sigkill_are_consistent() {
    let ws = Workspace::new();
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    let mut server = Server::start(&ws);
    let key = server
        .client
        .get(server.url("/v1/public-key"))
        .send()
        .await
        .expect("public key")
        .text()
        .await
        .expect("key text");
    std::fs::write(ws.path("key.txt"), &key).expect("write key");

    let batch: Vec<Value> = (0..300).map(role_created).collect();
    let res = server.post_batch(&ingest, ACME, &batch).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let before = checkpoint(&server, &read).await;
    // The batch and the two tokens' "Token created" events.
    assert_eq!(size_of(&before), 302);

    // Writers keep ingesting while the server is killed mid-stream.
    let base = server.base.clone();
    let client = server.client.clone();
    let writer_token = ingest.clone();
    let writer = tokio::spawn(async move {
        for round in 0.. {
            let events: Vec<Value> = (0..50)
                .map(|i| role_created(1000 + round * 50 + i))
                .collect();
            let sent = client
                .post(format!("{base}/v1/accounts/{ACME}/events/batch"))
                .bearer_auth(&writer_token)
                .json(&json!({ "events": events }))
                .send()
                .await;
            if sent.is_err() {
                return round;
            }
        }
        unreachable!()
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mid = checkpoint(&server, &read).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill();
    let rounds = writer.await.expect("writer");
    assert!(rounds > 0, "the writer got some batches in before the kill");

    let server = Server::start(&ws);
    let after = checkpoint(&server, &read).await;
    assert!(size_of(&after) >= size_of(&mid));
    std::fs::write(ws.path("before.txt"), &before).expect("write");
    std::fs::write(ws.path("mid.txt"), &mid).expect("write");
    std::fs::write(ws.path("after.txt"), &after).expect("write");

    for (old, name) in [(&before, "before.txt"), (&mid, "mid.txt")] {
        let proof = server
            .get_json(
                &read,
                &format!(
                    "/v1/accounts/{ACME}/proof/consistency?from={}&to={}",
                    size_of(old),
                    size_of(&after)
                ),
            )
            .await;
        let proof_file = ws.path(&format!("proof-{name}.json"));
        std::fs::write(&proof_file, proof.to_string()).expect("write proof");
        let (ok, text) = verify(&[
            "--checkpoint",
            ws.path(name).to_str().unwrap(),
            "--checkpoint",
            ws.path("after.txt").to_str().unwrap(),
            "--proof",
            proof_file.to_str().unwrap(),
            "--public-key",
            ws.path("key.txt").to_str().unwrap(),
        ]);
        assert!(ok, "{name} → after: {text}");
        assert!(text.contains("OK: the log of size"), "{text}");
    }

    // The whole log verifies against the checkpoint after the restart, and
    // one edited byte is found and named.
    let export = server
        .get(
            &read,
            &format!("/v1/accounts/{ACME}/events/export?format=jsonl&range=all_time"),
        )
        .await
        .text()
        .await
        .expect("export");
    std::fs::write(ws.path("export.jsonl"), &export).expect("write export");
    let args = |export: &str| {
        vec![
            "--export".to_owned(),
            ws.path(export).to_str().unwrap().to_owned(),
            "--checkpoint".to_owned(),
            ws.path("after.txt").to_str().unwrap().to_owned(),
            "--public-key".to_owned(),
            ws.path("key.txt").to_str().unwrap().to_owned(),
        ]
    };
    let a = args("export.jsonl");
    let (ok, text) = verify(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("OK: {} records verified", size_of(&after))),
        "{text}"
    );
    let tampered = export.replacen("role 7\"", "role 8\"", 1);
    assert_ne!(tampered, export, "the edit applies");
    std::fs::write(ws.path("tampered.jsonl"), tampered).expect("write");
    let a = args("tampered.jsonl");
    let (ok, text) = verify(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok, "a tampered export must fail: {text}");
    assert!(text.contains("was edited"), "{text}");

    // A proof bundle for one event verifies alone.
    let first = export.lines().next().expect("a line");
    let id = serde_json::from_str::<Value>(first).expect("record")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let text = verify_proof(&ws, &server, &read, ACME, &id).await;
    assert!(text.contains(&format!("OK: event {id}")), "{text}");
}

/// Fetches the proof bundle of event `id` of `account` and checks it with
/// `auditlog verify --proof` against the public key in the workspace's
/// `key.txt`; returns what verify printed.
pub async fn verify_proof(
    ws: &Workspace,
    server: &Server,
    token: &str,
    account: &str,
    id: &str,
) -> String {
    let bundle = server
        .get(token, &format!("/v1/accounts/{account}/events/{id}/proof"))
        .await
        .text()
        .await
        .expect("bundle");
    std::fs::write(ws.path("bundle.json"), &bundle).expect("write bundle");
    let (ok, text) = verify(&[
        "--proof",
        ws.path("bundle.json").to_str().unwrap(),
        "--public-key",
        ws.path("key.txt").to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    text
}
