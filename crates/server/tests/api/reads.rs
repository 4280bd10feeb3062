//! Bounds on reads (issue 11): the export caps (429 + Retry-After), the
//! send deadline that drops a client who reads nothing, partial exports
//! still recorded, the query deadline (503), one tenant's slow query not
//! delaying another's ingest, and a writer thread that dies.

use std::time::{Duration, Instant};

use auditlog_core::catalog::Catalog;
use auditlog_core::record::{AccountId, Micros};
use auditlog_core::validate::{IngestContext, validate_event};
use auditlog_server::ReadConfig;
use auditlog_store::Role;
use auditlog_store::sqlite::Fault;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Appends `n` events straight into the store (much faster than HTTP), in
/// batches; each has a description of about `desc_chars` characters.
async fn seed(app: &TestApp, account: &str, n: usize, desc_chars: usize) {
    let account = AccountId::parse(account).unwrap();
    let keys = auditlog_server::Keys::derive(&test_secret());
    let ctx = IngestContext {
        now: Micros::from_timestamp(ts(DEFAULT_NOW)),
        client_ip: None,
        redactor: &keys.redactor,
    };
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..n.min(i + 2000))
            .map(|j| {
                let mut body = role_created();
                body["occurred_at"] = json!(format!("2026-11-2{}T10:00:00Z", j % 5));
                body["description"] = json!(format!("seeded event {j} {}", "x".repeat(desc_chars)));
                let mut errors = auditlog_core::validate::Problems::new();
                validate_event(Catalog::get(), body, "", &ctx, &mut errors)
                    .unwrap_or_else(|| panic!("seed event invalid: {:?}", errors.into_list()))
            })
            .collect();
        i += batch.len();
        app.store.append(&account, batch).await.expect("seed");
    }
}

fn export_path(account: &str) -> String {
    format!(
        "{}/export?range=all_time&format=jsonl",
        events_path(account)
    )
}

/// The "Audit logs exported" records of the account, newest first.
async fn export_records(app: &TestApp, token: &str, account: &str) -> Vec<Value> {
    let q = [
        ("range", "all_time"),
        ("filter", "event:eq:Audit logs exported"),
    ];
    app.list_all(token, &events_path(account), &q, 1000).await
}

fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds")
}

/// Rows of the export, each about 1.2 kB of JSONL: enough that an unread
/// export cannot fit in the socket buffers and the channels, so it stays
/// open until its client reads or goes.
const BIG: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exports_past_the_caps_answer_429_and_a_slot_frees_when_its_client_goes() {
    let app = spawn_app_with(AppOptions {
        reads: ReadConfig {
            max_exports: 3,
            max_exports_per_token: 2,
            ..ReadConfig::default()
        },
        ..AppOptions::default()
    })
    .await;
    seed(&app, ACME, BIG, 1000).await;
    let a = app.token(ACME, Role::Read).await;
    let b = app.token(ACME, Role::Admin).await;

    // Two unread exports of token A: its cap.
    let a1 = app.get(&a, &export_path(ACME)).await;
    let a2 = app.get(&a, &export_path(ACME)).await;
    assert_eq!((a1.status(), a2.status()), (StatusCode::OK, StatusCode::OK));
    let refused = app.get(&a, &export_path(ACME)).await;
    assert_eq!(retry_after(&refused), 10);
    let p = problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("this token already runs 2 exports"),
        "{detail}"
    );

    // Token B takes the last slot of the server; then the server is full.
    let b1 = app.get(&b, &export_path(ACME)).await;
    assert_eq!(b1.status(), StatusCode::OK);
    let refused = app.get(&b, &export_path(ACME)).await;
    let p = problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("the server already runs 3 exports"),
        "{detail}"
    );

    // Everything else is still answered while the exports sit unread.
    let list = app.get(&a, &events_path(ACME)).await;
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(app.count(&a, &events_path(ACME), &[]).await, BIG as u64);

    // A's client goes away: its slot frees and A may export again.
    drop(a1);
    eventually("the slot of a gone client to free", || async {
        let res = app.get(&a, &export_path(ACME)).await;
        (res.status() == StatusCode::OK).then_some(res)
    })
    .await;

    // The gone client's export is recorded, as partial, with what went out.
    let records = eventually("the partial export to be recorded", || async {
        let r = export_records(&app, &b, ACME).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    let m = &records[0]["metadata"];
    assert_eq!(m["status"], "partial", "{m}");
    assert_eq!(m["stop_reason"], "client_gone", "{m}");
    let rows = m["row_count"].as_u64().unwrap();
    assert!(
        rows < BIG as u64,
        "{rows} rows of {BIG} went to a client that read none"
    );
    drop((a2, b1));
}

/// The send deadline: a client that reads nothing is dropped, its export
/// recorded as partial, its slot freed; what it reads afterwards ends in an
/// error, never in a clean end that would pass for a whole export.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unread_export_is_dropped_at_the_send_deadline_and_recorded_as_partial() {
    let app = spawn_app_with(AppOptions {
        reads: ReadConfig {
            export_send_timeout: Duration::from_secs(1),
            max_exports_per_token: 1,
            ..ReadConfig::default()
        },
        ..AppOptions::default()
    })
    .await;
    seed(&app, ACME, BIG, 1000).await;
    let token = app.token(ACME, Role::Admin).await;
    let started = Instant::now();
    let stalled = app.get(&token, &export_path(ACME)).await;
    assert_eq!(stalled.status(), StatusCode::OK);
    let records = eventually("the stalled export to be dropped", || async {
        let r = export_records(&app, &token, ACME).await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    let dropped_after = started.elapsed();
    let m = &records[0]["metadata"];
    assert_eq!(
        (&m["status"], &m["stop_reason"]),
        (&json!("partial"), &json!("send_deadline")),
        "{m}"
    );
    assert!(m["row_count"].as_u64().unwrap() < BIG as u64, "{m}");
    let description = records[0]["description"].as_str().unwrap();
    assert!(description.starts_with("Partial export: "), "{description}");
    eprintln!(
        "an unread export was dropped {dropped_after:?} after it started (send deadline 1 s)"
    );
    // The slot is free again (this token may run one at a time).
    let next = app.get(&token, &export_path(ACME)).await;
    assert_eq!(next.status(), StatusCode::OK);
    drop(next);
    // The stalled client gets what was buffered, then an error.
    assert!(
        stalled.bytes().await.is_err(),
        "a cut export must not end like a whole one"
    );
}

/// The query deadline: past it, a list, a count, a histogram answer 503
/// with a message saying what happened and what to do. A deadline of zero
/// has always passed, which makes this deterministic.
#[tokio::test]
async fn a_query_past_its_deadline_answers_503_with_a_clear_message() {
    let app = spawn_app_with(AppOptions {
        reads: ReadConfig {
            query_timeout: Duration::ZERO,
            ..ReadConfig::default()
        },
        ..AppOptions::default()
    })
    .await;
    seed(&app, ACME, 100, 10).await;
    let token = app.token(ACME, Role::Read).await;
    let q = qs(&[
        ("range", "all_time"),
        ("filter", "description:contains:nothing like this"),
    ]);
    for path in [
        format!("{}?{q}", events_path(ACME)),
        format!("{}/count?{q}", events_path(ACME)),
        format!("{}/histogram?{q}", events_path(ACME)),
    ] {
        let res = app.get(&token, &path).await;
        assert!(res.headers().contains_key("retry-after"), "{path}");
        let p = problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.contains("deadline") && detail.contains("narrow the time range"),
            "{path}: {detail}"
        );
    }
}

/// The cap on records read (`--query-max-record-reads`): a description
/// filter that would read more stored events than the cap answers `400`
/// with its own problem type and a message saying what was exceeded and
/// what to do; a narrower range, or another filter that leaves fewer
/// candidates, is answered; an export is not capped.
#[tokio::test]
async fn a_description_filter_past_the_record_read_cap_answers_400_saying_to_narrow_it() {
    let app = spawn_app_with(AppOptions {
        reads: ReadConfig {
            max_record_reads: 50,
            ..ReadConfig::default()
        },
        ..AppOptions::default()
    })
    .await;
    // 100 events over five days (20 a day, 2026-11-20 … 24).
    seed(&app, ACME, 100, 10).await;
    let token = app.token(ACME, Role::Read).await;
    let all_time = qs(&[
        ("range", "all_time"),
        ("filter", "description:contains:seeded event 7"),
    ]);
    for path in [
        format!("{}?{all_time}", events_path(ACME)),
        format!("{}/count?{all_time}", events_path(ACME)),
        format!("{}/histogram?{all_time}", events_path(ACME)),
    ] {
        let res = app.get(&token, &path).await;
        assert!(!res.headers().contains_key("retry-after"), "{path}");
        let p = problem(res, StatusCode::BAD_REQUEST).await;
        assert_eq!(
            p["type"], "https://auditlog.dev/problems/query-too-broad",
            "{path}"
        );
        assert_eq!(
            p["detail"],
            "this query was stopped after reading 50 stored events, its limit: \
             a description filter (or a filter on a value the index does not hold) \
             is checked by reading each event it could match; \
             narrow the time range, or add a filter on event, category, user or IP address",
            "{path}"
        );
    }
    // One day holds 20 events: within the cap.
    let one_day = qs(&[
        ("range", "custom"),
        ("from", "2026-11-22"),
        ("to", "2026-11-22"),
        ("tz", "UTC"),
        ("filter", "description:contains:seeded event 7"),
    ]);
    let n = app.count(&token, &events_path(ACME), &[]).await;
    assert_eq!(n, 100);
    let res = app
        .get(&token, &format!("{}/count?{one_day}", events_path(ACME)))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // Events 7, 72 and 77 fall on the 22nd (j % 5 == 2).
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["count"], 3, "{body}");
    // An AND with an event filter the index decides leaves no candidate.
    let narrowed = qs(&[
        ("range", "all_time"),
        ("filter", "description:contains:seeded event 7"),
        ("filter", "event:eq:Login"),
    ]);
    let res = app
        .get(&token, &format!("{}/count?{narrowed}", events_path(ACME)))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // An export reads every row it sends anyway: not capped.
    let res = app
        .get(
            &token,
            &format!("{}/export?{all_time}&format=jsonl", events_path(ACME)),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let lines = res.text().await.unwrap();
    // 7 and 70 … 79.
    assert_eq!(lines.lines().count(), 11, "{lines}");
}

/// One tenant's slow query (a description filter reads every candidate
/// record) never delays another tenant's ingest: ingest on globex is
/// answered again and again while the query over acme runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_description_query_does_not_delay_ingest_of_another_account() {
    let app = spawn_app().await;
    seed(&app, ACME, 150_000, 10).await;
    let reader = app.token(ACME, Role::Read).await;
    let ingest = app.token(GLOBEX, Role::Ingest).await;
    let q = qs(&[
        ("range", "all_time"),
        ("filter", "description:contains:nothing like this"),
    ]);
    let url = app.url(&format!("{}/count?{q}", events_path(ACME)));
    let client = app.client.clone();
    let started = Instant::now();
    let query = tokio::spawn(async move {
        let res = client.get(url).bearer_auth(reader).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["count"], 0);
        started.elapsed()
    });
    let mut during = 0;
    while !query.is_finished() {
        app.ingest(&ingest, GLOBEX, &role_created()).await;
        if !query.is_finished() {
            during += 1;
        }
    }
    let took = query.await.unwrap();
    eprintln!(
        "{during} ingests on globex were answered during a {took:?} description query on acme"
    );
    assert!(
        during >= 3,
        "only {during} ingests answered during the {took:?} query"
    );
}

/// A writer thread that dies: the batch in hand and everything queued get
/// 503 at once (no request hangs), later writes too, `/readyz` fails, the
/// store reports it (the binary exits on that), and reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_writer_fails_readyz_and_ingest_with_503_and_nothing_hangs() {
    let app = spawn_app_with(AppOptions {
        fault: Some(Fault::WriterPanicAfter(0)),
        ..AppOptions::default()
    })
    .await;
    let ingest = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    // The fault counts only groups that append events (creating the two
    // tokens does not): the first of these appends finds the writer
    // panicking, the rest are queued behind it or come after.
    let mut pending = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = app.url(&events_path(ACME));
        let token = ingest.clone();
        pending.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&role_created())
                .send()
                .await
                .unwrap()
        }));
    }
    for p in pending {
        let res = tokio::time::timeout(Duration::from_secs(10), p)
            .await
            .expect("an ingest hung after the writer died")
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().contains_key("retry-after"));
    }
    let failed = tokio::time::timeout(Duration::from_secs(10), app.store.failed())
        .await
        .expect("the store reports its dead writer");
    assert!(failed.message.contains("injected fault"), "{failed}");
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    let p = problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(p["detail"].as_str().unwrap().contains("writer died"), "{p}");
    let res = app
        .post_json(&ingest, &events_path(ACME), &role_created())
        .await;
    let p = problem(res, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        p["detail"].as_str().unwrap().contains("writer stopped"),
        "{p}"
    );
    // Reads still work (nothing was written).
    assert_eq!(app.count(&read, &events_path(ACME), &[]).await, 0);
}

/// The value of a counter in `/metrics` (0 when absent).
async fn counter(app: &TestApp, line_start: &str) -> u64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(line_start))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// A query whose client goes away stops working: the handler's future is
/// dropped, its guard cancels the query, and the store's scan gives up at
/// its next description read (counted as a stopped query).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_stops_when_its_client_goes_away() {
    let app = spawn_app().await;
    seed(&app, ACME, 150_000, 10).await;
    let token = app.token(ACME, Role::Read).await;
    let metric = "auditlog_queries_stopped_total{reason=\"cancelled\"}";
    let before = counter(&app, metric).await;
    let q = qs(&[
        ("range", "all_time"),
        ("filter", "description:contains:nothing like this"),
    ]);
    // A client that gives up long before a scan of 150,000 records ends.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let res = impatient
        .get(app.url(&format!("{}/count?{q}", events_path(ACME))))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(res.is_err(), "the scan ended before the client gave up");
    eventually("the abandoned query to stop", || async {
        (counter(&app, metric).await > before).then_some(())
    })
    .await;
}
