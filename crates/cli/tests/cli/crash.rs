//! The crash test: concurrent writers ingest with idempotency keys, the
//! server is killed with SIGKILL mid-stream and restarted, every request
//! that was not acknowledged is retried with its key; then every
//! acknowledged event is there exactly once and `seq` has no gap.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const WRITERS: usize = 4;
const REQUESTS_PER_WRITER: usize = 150;
/// Events acknowledged before the kill.
const KILL_AFTER: usize = 150;

/// One request of a writer: a single event, or a batch of three.
#[derive(Clone, Debug)]
struct Request {
    keys: Vec<String>,
}

impl Request {
    fn plan(writer: usize) -> Vec<Request> {
        (0..REQUESTS_PER_WRITER)
            .map(|i| {
                let n = if i % 4 == 3 { 3 } else { 1 };
                Request {
                    keys: (0..n).map(|j| format!("w{writer}-r{i}-e{j}")).collect(),
                }
            })
            .collect()
    }

    /// The event of a key: its description is the key, so records can be
    /// traced back to the request that wrote them.
    fn event(key: &str) -> Value {
        json!({
            "level": "account",
            "category": "Roles",
            "event": "Role edited",
            "actor": {"id": "u_crash", "name": "Crash Tester"},
            "metadata": {"role_id": key},
            "description": key,
            "idempotency_key": key,
        })
    }

    /// Sends the request; `Ok((status, [(key, id, seq)]))`, or `Err` when
    /// no answer came (the server died).
    async fn send(
        &self,
        client: &reqwest::Client,
        base: &str,
        token: &str,
    ) -> Result<(StatusCode, Vec<(String, String, u64)>), reqwest::Error> {
        let res = if self.keys.len() == 1 {
            client
                .post(format!("{base}/v1/accounts/{ACME}/events"))
                .bearer_auth(token)
                .json(&Request::event(&self.keys[0]))
                .send()
                .await?
        } else {
            let events: Vec<Value> = self.keys.iter().map(|k| Request::event(k)).collect();
            client
                .post(format!("{base}/v1/accounts/{ACME}/events/batch"))
                .bearer_auth(token)
                .json(&json!({ "events": events }))
                .send()
                .await?
        };
        let status = res.status();
        let body: Value = res.json().await?;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status}: {body}"
        );
        let acks = if self.keys.len() == 1 {
            vec![(
                self.keys[0].clone(),
                body["id"].as_str().unwrap().to_owned(),
                body["seq"].as_u64().unwrap(),
            )]
        } else {
            let records = body["records"].as_array().unwrap();
            assert_eq!(records.len(), self.keys.len());
            self.keys
                .iter()
                .zip(records)
                .map(|(k, r)| {
                    (
                        k.clone(),
                        r["id"].as_str().unwrap().to_owned(),
                        r["seq"].as_u64().unwrap(),
                    )
                })
                .collect()
        };
        Ok((status, acks))
    }
}

/// What became of each request of one writer.
#[derive(Default, Debug)]
struct Progress {
    /// Acknowledged requests, by index.
    acked: BTreeMap<usize, Vec<(String, String, u64)>>,
    /// The request that was sent but got no answer, if any.
    in_doubt: Option<usize>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_stream_loses_no_acknowledged_event_and_duplicates_none() {
    let ws = Workspace::new();
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    let mut server = Server::start(&ws);

    let plans: Vec<Vec<Request>> = (0..WRITERS).map(Request::plan).collect();
    let progress: Vec<Arc<Mutex<Progress>>> = (0..WRITERS).map(|_| Arc::default()).collect();
    let acked_events = Arc::new(Mutex::new(0usize));
    let mut writers = Vec::new();
    for (plan, progress) in plans.iter().cloned().zip(progress.iter().cloned()) {
        let base = server.base.clone();
        let token = ingest.clone();
        let acked_events = acked_events.clone();
        // A client per writer: each has its own connection.
        let client = reqwest::Client::new();
        writers.push(tokio::spawn(async move {
            for (i, req) in plan.iter().enumerate() {
                match req.send(&client, &base, &token).await {
                    Ok((status, acks)) => {
                        assert_eq!(
                            status,
                            StatusCode::CREATED,
                            "first attempt of {:?}",
                            req.keys
                        );
                        *acked_events.lock().unwrap() += acks.len();
                        progress.lock().unwrap().acked.insert(i, acks);
                    }
                    Err(_) => {
                        progress.lock().unwrap().in_doubt = Some(i);
                        return;
                    }
                }
            }
        }));
    }
    // Kill when enough is acknowledged, while the writers are busy.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while *acked_events.lock().unwrap() < KILL_AFTER {
        assert!(std::time::Instant::now() < deadline, "writers too slow");
        assert!(
            !writers.iter().all(|w| w.is_finished()),
            "writers stopped before the kill"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill();
    for w in writers {
        w.await.expect("writer task");
    }
    let total_events: usize = plans.iter().flatten().map(|r| r.keys.len()).sum();
    let acked_before: usize = *acked_events.lock().unwrap();
    assert!(
        acked_before < total_events,
        "the kill came after everything was acknowledged"
    );
    let in_doubt = progress
        .iter()
        .filter(|p| p.lock().unwrap().in_doubt.is_some())
        .count();
    assert!(in_doubt > 0, "no request was in flight at the kill");

    // Restart; retry everything not acknowledged, with the same keys, and
    // some acknowledged requests too: none may be stored twice.
    let server = Server::start(&ws);
    let client = reqwest::Client::new();
    let mut expected: HashMap<String, (String, u64)> = HashMap::new();
    let mut doubtful_found = 0;
    for (plan, progress) in plans.iter().zip(&progress) {
        let (acked, in_doubt) = {
            let p = progress.lock().unwrap();
            (p.acked.clone(), p.in_doubt)
        };
        for acks in acked.values() {
            for (k, id, seq) in acks {
                expected.insert(k.clone(), (id.clone(), *seq));
            }
        }
        for (i, req) in plan
            .iter()
            .enumerate()
            .filter(|(i, _)| !acked.contains_key(i))
        {
            let (status, acks) = req
                .send(&client, &server.base, &ingest)
                .await
                .expect("retry answered");
            if req.keys.len() == 1 {
                if in_doubt == Some(i) {
                    doubtful_found += usize::from(status == StatusCode::OK);
                } else {
                    // Never sent before: it cannot exist yet.
                    assert_eq!(status, StatusCode::CREATED, "{:?}", req.keys);
                }
            }
            for (k, id, seq) in acks {
                expected.insert(k, (id, seq));
            }
        }
        for i in acked.keys().copied().step_by(7) {
            let req = &plan[i];
            let (status, acks) = req
                .send(&client, &server.base, &ingest)
                .await
                .expect("retry answered");
            if req.keys.len() == 1 {
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "a retry of an acknowledged request is 200"
                );
            }
            for (k, id, seq) in acks {
                assert_eq!(
                    expected[&k],
                    (id, seq),
                    "a retry of {k} returned another record"
                );
            }
        }
    }
    assert_eq!(expected.len(), total_events);
    eprintln!(
        "crash test: {acked_before} of {total_events} events acknowledged before SIGKILL, \
         {in_doubt} requests in doubt, {doubtful_found} of them found stored"
    );

    // Every event exactly once, with the id and seq it was acknowledged
    // with, and seq exactly 0..n.
    let all = server.list_all(&read, ACME, 97).await;
    // The log also holds the "Token created" events of the two tokens made
    // on the command line, recorded when the server first started.
    const TOKEN_EVENTS: usize = 2;
    let records: Vec<Value> = all
        .iter()
        .filter(|r| r["category"] != "Audit Logs")
        .cloned()
        .collect();
    assert_eq!(all.len(), records.len() + TOKEN_EVENTS);
    assert_eq!(records.len(), total_events, "events lost or duplicated");
    assert_acknowledged(&records, &expected);
    let seqs: BTreeSet<u64> = all.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let total = total_events + TOKEN_EVENTS;
    assert_eq!(
        seqs,
        (0..total as u64).collect::<BTreeSet<u64>>(),
        "seq has gaps"
    );
    assert_eq!(server.count(&read, ACME).await, total as u64);
    // The tree was restored with the log: the checkpoint covers it all.
    let note = server.checkpoint(&read, ACME).await;
    assert_eq!(
        note.lines().nth(1),
        Some(total.to_string().as_str()),
        "{note}"
    );
}

/// Rounds of the repeated crash test.
const ROUNDS: usize = 20;
/// Concurrent writers in each round.
const ROUND_WRITERS: usize = 16;
/// Most requests one writer sends in a round (the kill comes first).
const ROUND_REQUESTS: usize = 200;

/// SIGKILL at a different moment in each of 20 rounds under 16 concurrent
/// writers (single events and batches): after every restart the requests
/// left in doubt are retried with their keys, and at the end every
/// acknowledged event is stored exactly once with the id and seq it was
/// acknowledged with, seqs are dense, and the tree covers the whole log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_any_moment_under_16_writers_for_20_rounds_loses_no_acknowledged_event() {
    let ws = Workspace::new();
    let ingest = create_token(&ws.data_dir(), ACME, "ingest");
    let read = create_token(&ws.data_dir(), ACME, "read");
    let mut expected: HashMap<String, (String, u64)> = HashMap::new();
    let mut in_doubt: Vec<Request> = Vec::new();
    let record = |expected: &mut HashMap<String, (String, u64)>,
                  acks: Vec<(String, String, u64)>| {
        for (k, id, seq) in acks {
            if let Some(prev) = expected.get(&k) {
                assert_eq!(
                    prev,
                    &(id.clone(), seq),
                    "{k} acknowledged twice, differently"
                );
            }
            expected.insert(k, (id, seq));
        }
    };
    // A fixed LCG: the kill moments differ between rounds, not between runs.
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut killed_after = Vec::new();
    for round in 0..ROUNDS {
        let mut server = Server::start(&ws);
        let client = reqwest::Client::new();
        for req in in_doubt.drain(..) {
            let (_, acks) = req
                .send(&client, &server.base, &ingest)
                .await
                .expect("retry answered");
            record(&mut expected, acks);
        }
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let kill_at = ((rng >> 33) % 400) as usize;
        let acked_events = Arc::new(Mutex::new(0usize));
        let mut writers = Vec::new();
        for w in 0..ROUND_WRITERS {
            let base = server.base.clone();
            let token = ingest.clone();
            let acked_events = acked_events.clone();
            let client = reqwest::Client::new();
            writers.push(tokio::spawn(async move {
                let mut acks_of_writer = Vec::new();
                for i in 0..ROUND_REQUESTS {
                    let n = if i % 4 == 3 { 3 } else { 1 };
                    let req = Request {
                        keys: (0..n).map(|j| format!("k{round}-w{w}-r{i}-e{j}")).collect(),
                    };
                    match req.send(&client, &base, &token).await {
                        Ok((status, acks)) => {
                            assert_eq!(status, StatusCode::CREATED, "{:?}", req.keys);
                            *acked_events.lock().unwrap() += acks.len();
                            acks_of_writer.extend(acks);
                        }
                        Err(_) => return (acks_of_writer, Some(req)),
                    }
                }
                (acks_of_writer, None)
            }));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while *acked_events.lock().unwrap() < kill_at && !writers.iter().all(|w| w.is_finished()) {
            assert!(std::time::Instant::now() < deadline, "writers too slow");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.kill();
        killed_after.push(*acked_events.lock().unwrap());
        for w in writers {
            let (acks, doubt) = w.await.expect("writer task");
            record(&mut expected, acks);
            in_doubt.extend(doubt);
        }
    }
    let server = Server::start(&ws);
    let client = reqwest::Client::new();
    for req in in_doubt.drain(..) {
        let (_, acks) = req
            .send(&client, &server.base, &ingest)
            .await
            .expect("retry answered");
        record(&mut expected, acks);
    }
    eprintln!(
        "crash rounds: {} events acknowledged in {ROUNDS} rounds of {ROUND_WRITERS} writers; \
         killed after {killed_after:?} acknowledged events",
        expected.len()
    );
    let records = server.list_all(&read, ACME, 1000).await;
    assert_acknowledged(&records, &expected);
    let seqs: BTreeSet<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (0..records.len() as u64).collect::<BTreeSet<u64>>(),
        "seq has gaps"
    );
    let note = server.checkpoint(&read, ACME).await;
    assert_eq!(
        note.lines().nth(1),
        Some(records.len().to_string().as_str()),
        "{note}"
    );
}

/// Every record stored once, and every acknowledged event among them with
/// the id and seq it was acknowledged with (events are told apart by their
/// description).
fn assert_acknowledged(records: &[Value], expected: &HashMap<String, (String, u64)>) {
    let mut by_key: HashMap<&str, &Value> = HashMap::new();
    for r in records {
        let key = r["description"].as_str().unwrap();
        assert!(by_key.insert(key, r).is_none(), "{key} stored twice");
    }
    for (key, (id, seq)) in expected {
        let r = by_key
            .get(key.as_str())
            .unwrap_or_else(|| panic!("acknowledged {key} is missing"));
        assert_eq!(
            (r["id"].as_str().unwrap(), r["seq"].as_u64().unwrap()),
            (id.as_str(), *seq),
            "{key}"
        );
    }
}
