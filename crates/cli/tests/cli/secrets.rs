//! Issue 16: secrets never enter the log. Credentials sent in events — the
//! catalog's sensitive access token, a URL's password, a URL's secret query
//! parameter, a secret-named unknown key — reach no answer, no export, no
//! byte of the data directory and no line of the server's log, on every
//! ingest path (single, batch, NDJSON, `auditlog import`).

use serde_json::{Value, json};

use crate::helpers::*;

/// The secrets of one ingest path, each unique to it.
struct Secrets {
    token: String,
    password: String,
    query_token: String,
    unknown: String,
}

impl Secrets {
    fn new(tag: &str) -> Secrets {
        Secrets {
            token: format!("sk_live_{tag}Q9x7Lm2Pa4Zr8Kd7731"),
            password: format!("pw-{tag}-Hunter2Hunter2"),
            query_token: format!("qt_{tag}_Zz81Yy72Xx63"),
            unknown: format!("unk-{tag}-Vv55Ww44Uu33"),
        }
    }

    fn all(&self) -> [&str; 4] {
        [
            &self.token,
            &self.password,
            &self.query_token,
            &self.unknown,
        ]
    }

    fn event(&self) -> Value {
        json!({
            "level": "workflow",
            "category": "Workflow Management",
            "event": "API async enabled",
            "workflow_id": "wf_secret",
            "actor": {"kind": "user", "id": "u_1", "name": "Jane Doe"},
            "metadata": {
                "version_id": "v_3",
                "url": format!(
                    "https://svc:{}@hooks.example.com/run?token={}&region=eu",
                    self.password, self.query_token
                ),
                "access_token": self.token,
                "timeout": false,
                "API-Secret": self.unknown,
            }
        })
    }
}

fn assert_clean(what: &str, text: &str, secrets: &[&Secrets]) {
    for s in secrets {
        for secret in s.all() {
            assert!(!text.contains(secret), "{what} holds the secret {secret}");
        }
    }
}

#[tokio::test]
async fn secrets_are_fingerprinted_on_every_path_and_stored_nowhere() {
    let ws = Workspace::new();
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    // Debug logging: the log must stay clean even at its most talkative.
    let mut server = Server::start_with(&ws, &[], &[("AUDITLOG_LOG", "debug")]);

    let single = Secrets::new("single");
    let batch = Secrets::new("batch");
    let ndjson = Secrets::new("ndjson");
    let import = Secrets::new("import");
    let all = [&single, &batch, &ndjson, &import];
    let mut answers = String::new();

    let res = server
        .post(
            &ingest,
            &format!("/v1/accounts/{ACME}/events"),
            &single.event(),
        )
        .await;
    assert_eq!(res.status(), 201);
    let record: Value = res.json().await.unwrap();
    answers.push_str(&record.to_string());
    let access = record["metadata"]["access_token"].as_str().unwrap();
    assert!(
        access.starts_with("[REDACTED hmac-sha256:") && access.ends_with(" …7731]"),
        "{access}"
    );
    assert!(
        record["metadata"]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://svc:REDACTED-"),
        "{record}"
    );

    let res = server
        .post(
            &ingest,
            &format!("/v1/accounts/{ACME}/events/batch"),
            &json!({"events": [batch.event()]}),
        )
        .await;
    assert_eq!(res.status(), 201);
    answers.push_str(&res.text().await.unwrap());

    let res = server
        .client
        .post(server.url(&format!("/v1/accounts/{ACME}/events/batch")))
        .bearer_auth(&ingest)
        .header("content-type", "application/x-ndjson")
        .body(format!("{}\n", ndjson.event()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    answers.push_str(&res.text().await.unwrap());

    let file = ws.path("import.jsonl");
    std::fs::write(&file, format!("{}\n", import.event())).unwrap();
    let out = auditlog()
        .args(["import", "--url", &server.base, "--token", &ingest])
        .args(["--account", ACME])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every read path.
    // The log also holds the "Token created" events of the two tokens.
    let events: Vec<Value> = server
        .list_all(&read, ACME, 100)
        .await
        .into_iter()
        .filter(|e| e["category"] != "Audit Logs")
        .collect();
    assert_eq!(events.len(), 4);
    for e in &events {
        let id = e["id"].as_str().unwrap();
        let one = server
            .get_json(&read, &format!("/v1/accounts/{ACME}/events/{id}"))
            .await;
        answers.push_str(&one.to_string());
        let fp = one["metadata"]["access_token"].as_str().unwrap();
        assert!(fp.starts_with("[REDACTED hmac-sha256:"), "{fp}");
        let unknown = one["metadata"]["API-Secret"].as_str().unwrap();
        assert!(unknown.starts_with("[REDACTED hmac-sha256:"), "{unknown}");
        // The default description leaves the token out altogether (the
        // URL is in it, as stored: without its secrets).
        let description = one["description"].as_str().unwrap();
        assert!(!description.contains("Access token"), "{description}");
    }
    answers.push_str(&Value::Array(events).to_string());
    for path in [
        format!("/v1/accounts/{ACME}/workflows/wf_secret/events?range=all_time"),
        format!("/v1/accounts/{ACME}/events/export?range=all_time"),
        format!("/v1/accounts/{ACME}/events/export?range=all_time&format=jsonl"),
        format!("/v1/accounts/{ACME}/workflows/wf_secret/events/export?range=all_time"),
    ] {
        let res = server.get(&read, &path).await;
        assert_eq!(res.status(), 200, "{path}");
        answers.push_str(&res.text().await.unwrap());
    }
    assert_clean("the answers", &answers, &all);
    // The same secret under the same server key: the same fingerprint, so
    // a person holding the token can match it.
    let again = server
        .post(
            &ingest,
            &format!("/v1/accounts/{ACME}/events"),
            &single.event(),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        again["metadata"]["access_token"],
        record["metadata"]["access_token"]
    );

    // Not a byte of the data directory (database, WAL, keys) holds one.
    server.terminate();
    server.wait_exit(std::time::Duration::from_secs(30));
    for entry in std::fs::read_dir(ws.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for s in &all {
            for secret in s.all() {
                assert!(
                    memchr_find(&bytes, secret.as_bytes()).is_none(),
                    "{} holds the secret {secret}",
                    path.display()
                );
            }
        }
    }
    // Nor the server's log.
    let mut log = String::new();
    for entry in std::fs::read_dir(ws.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            log.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    assert!(
        log.contains("DEBUG") || log.contains("INFO"),
        "the log is empty"
    );
    assert_clean("the server's log", &log, &all);
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
