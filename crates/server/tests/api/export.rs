//! Export: the CSV's exact header, file name, CRLF rows and escaping
//! (round-tripped through a CSV parser), the formula-injection guard, JSONL
//! records, streaming many rows, and the "Audit logs exported" event each
//! export leaves behind.

use auditlog_core::record::RecordBody;
use auditlog_store::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const HEADER: &str =
    "Date and Time,Event Name,Event Category,Description,User/App Name,IP Address\r\n";

/// Downloads an export: `(status, headers, body)`.
async fn download(
    app: &TestApp,
    token: &str,
    path: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let res = app.get(token, path).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.bytes().await.expect("export body").to_vec();
    (status, headers, body)
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Parses a CSV export strictly (every row six fields), header included.
fn parse_csv(body: &[u8]) -> Vec<Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(body);
    rdr.records()
        .map(|r| r.expect("valid CSV").iter().map(str::to_owned).collect())
        .collect()
}

/// The "Audit logs exported" events of the account, newest first.
async fn export_events(app: &TestApp, token: &str, account: &str) -> Vec<Value> {
    let q = [("range", "all_time"), ("filter", "category:eq:Audit Logs")];
    app.list_all(token, &events_path(account), &q, 1000).await
}

/// Waits until the account has `n` export events; returns them.
async fn wait_for_export_events(app: &TestApp, token: &str, account: &str, n: usize) -> Vec<Value> {
    eventually("the export to be recorded", || async {
        let got = export_events(app, token, account).await;
        assert!(got.len() <= n, "more export events than exports: {got:?}");
        (got.len() == n).then_some(got)
    })
    .await
}

#[tokio::test]
async fn csv_export_has_the_exact_header_file_name_and_escaped_rows() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let tricky = [
        "He said \"hi\", then left",
        "two\r\nlines\nand a bare LF",
        "comma, semicolon; and \"quotes\"",
        "  leading and trailing spaces  ",
        "unicode: Zoë — 東京 — 🎉",
        "a=b, with = inside is not a formula",
    ];
    for (i, d) in tricky.iter().enumerate() {
        let mut ev = role_created_at(&format!("2026-07-0{}T10:00:00.{i:03}Z", i + 1));
        ev["description"] = json!(d);
        ev["ip_address"] = json!("2001:db8::1");
        app.ingest(&token, ACME, &ev).await;
    }
    // Winter time, and an actor without a name (shown by id).
    let mut winter = workflow_event("wf_1");
    winter["occurred_at"] = json!("2026-01-15T08:30:00.250Z");
    winter["actor"] = json!({"kind": "app", "id": "svc-billing"});
    winter["description"] = json!("plain");
    app.ingest(&token, ACME, &winter).await;

    let (status, headers, body) = download(
        &app,
        &read,
        &format!(
            "{}/export?range=all_time&tz=Europe/Paris",
            events_path(ACME)
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "text/csv; charset=utf-8");
    assert_eq!(
        header(&headers, "content-disposition"),
        "attachment; filename=\"Account_Audit_Logs.csv\""
    );
    let text = String::from_utf8(body.clone()).expect("UTF-8");
    assert!(
        text.starts_with(HEADER),
        "header: {:?}",
        &text[..HEADER.len().min(text.len())]
    );
    assert!(text.ends_with("\r\n"));

    let rows = parse_csv(&body);
    assert_eq!(rows[0], HEADER.trim_end().split(',').collect::<Vec<_>>());
    let rows = &rows[1..];
    assert_eq!(rows.len(), tricky.len() + 1);
    // Newest first; times in Paris with milliseconds and the offset of
    // their own date.
    for (row, (i, d)) in rows.iter().zip(tricky.iter().enumerate().rev()) {
        assert_eq!(row[0], format!("2026-07-0{}T12:00:00.{i:03}+02:00", i + 1));
        assert_eq!(row[1], "Role created");
        assert_eq!(row[2], "Roles");
        assert_eq!(row[3], *d, "the description round-trips exactly");
        assert_eq!(row[4], "Jane Doe");
        assert_eq!(row[5], "2001:db8::1");
    }
    let last = rows.last().unwrap();
    assert_eq!(
        last,
        &[
            "2026-01-15T09:30:00.250+01:00",
            "Invited users",
            "User Management",
            "plain",
            "svc-billing",
            "127.0.0.1"
        ]
    );

    // Records end in CRLF, even the ones holding line breaks: the raw text
    // has exactly as many CRLFs outside quotes as rows (plus the header).
    let mut in_quotes = false;
    let mut terminators = 0;
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' if !in_quotes => {
                assert_eq!(bytes[i - 1], b'\r', "a bare LF ends a record at byte {i}");
                terminators += 1;
            }
            _ => {}
        }
    }
    assert_eq!(terminators, rows.len() + 1);
}

#[tokio::test]
async fn cells_that_start_like_a_formula_are_neutralised_and_nothing_else_is() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    // (description, user name, expected description cell, expected name cell)
    let cases = [
        (
            "=1+2",
            "=HYPERLINK(\"http://evil\")",
            "'=1+2",
            "'=HYPERLINK(\"http://evil\")",
        ),
        ("+1", "+Bob", "'+1", "'+Bob"),
        ("-2+3", "-Alice", "'-2+3", "'-Alice"),
        ("@SUM(A1:A9)", "@admin", "'@SUM(A1:A9)", "'@admin"),
        ("\tcmd", "\tTabby", "'\tcmd", "'\tTabby"),
        ("\rcmd", "\rCarriage", "'\rcmd", "'\rCarriage"),
        (" =not first", "Jane = Doe", " =not first", "Jane = Doe"),
        ("'already quoted", "O'Brien", "'already quoted", "O'Brien"),
    ];
    for (i, (desc, name, _, _)) in cases.iter().enumerate() {
        let mut ev = role_created_at(&format!("2026-11-0{}T00:00:00Z", i + 1));
        ev["description"] = json!(desc);
        ev["actor"] = json!({"id": format!("u_{i}"), "name": name});
        app.ingest(&token, ACME, &ev).await;
    }
    // A name-less actor whose id starts with `-`.
    let mut ev = role_created_at("2026-10-01T00:00:00Z");
    ev["actor"] = json!({"kind": "app", "id": "-svc"});
    ev["description"] = json!("by id");
    app.ingest(&token, ACME, &ev).await;

    let (status, _, body) = download(
        &app,
        &read,
        &format!("{}/export?range=all_time", events_path(ACME)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rows = parse_csv(&body);
    let rows = &rows[1..];
    assert_eq!(rows.len(), cases.len() + 1);
    for (row, (_, _, want_desc, want_name)) in rows.iter().zip(cases.iter().rev()) {
        assert_eq!(row[3], *want_desc);
        assert_eq!(row[4], *want_name);
    }
    assert_eq!(rows.last().unwrap()[4], "'-svc");
    // The stored records are untouched: only the CSV cell is guarded.
    let q = [("range", "all_time"), ("filter", "category:ne:Audit Logs")];
    let stored = app.list_all(&read, &events_path(ACME), &q, 100).await;
    assert_eq!(stored[0]["description"], json!(cases.last().unwrap().0));
    assert!(stored.iter().any(|r| r["description"] == json!("=1+2")));
}

#[tokio::test]
async fn jsonl_export_is_one_full_record_per_line() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let mut events = Vec::new();
    for i in 0..25 {
        let mut ev = if i % 2 == 0 {
            role_created()
        } else {
            workflow_event("wf_1")
        };
        ev["occurred_at"] = json!(format!("2026-11-{:02}T10:00:00Z", i + 1));
        ev["description"] = json!(format!("line {i} with \"quotes\"\nand a newline"));
        events.push(ev);
    }
    app.ingest_batch(&token, ACME, &events).await;
    let listed = app
        .list_all(&read, &events_path(ACME), &[("range", "all_time")], 1000)
        .await;

    let (status, headers, body) = download(
        &app,
        &read,
        &format!("{}/export?range=all_time&format=jsonl", events_path(ACME)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "application/x-ndjson");
    let text = String::from_utf8(body).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 25);
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    // The same records as the list, in the same (newest first) order.
    assert_eq!(records, listed);
    for (line, rec) in lines.iter().zip(&records) {
        let body: RecordBody = serde_json::from_value(rec.clone()).unwrap();
        // The line is the canonical record with its leaf hash spliced in,
        // so a verifier can hash it without re-serializing.
        let canonical = String::from_utf8(body.canonical_bytes()).unwrap();
        let leaf = hex::encode(body.compute_leaf_hash());
        assert_eq!(
            *line,
            format!(
                "{},\"leaf_hash\":\"{leaf}\"}}",
                &canonical[..canonical.len() - 1]
            )
        );
    }
}

#[tokio::test]
async fn an_export_has_the_same_rows_as_the_view_it_exports() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let mut events = Vec::new();
    for i in 0..60i64 {
        let mut ev = match i % 3 {
            0 => role_created(),
            1 => workflow_event(if i % 2 == 0 { "wf_1" } else { "wf_2" }),
            _ => workflow_created("wf_1"),
        };
        let at = ts("2026-11-25T11:00:00Z") - jiff::SignedDuration::from_hours(i * 13);
        ev["occurred_at"] = json!(at.to_string());
        events.push(ev);
    }
    app.ingest_batch(&token, ACME, &events).await;
    let views: &[&[(&str, &str)]] = &[
        &[("range", "last_30_days"), ("tz", "Asia/Kolkata")],
        &[
            ("range", "all_time"),
            ("filter", "workflow_id:eq:wf_1"),
            ("filter", "level:eq:workflow"),
            ("join", "or"),
        ],
        &[("range", "this_month"), ("filter", "event:ne:Role created")],
    ];
    // Each export adds its own record (at now, inside some of these
    // views) once it completes: wait for it before listing again.
    let mut exports = 0;
    for q in views {
        wait_for_export_events(&app, &read, ACME, exports).await;
        let listed = app.list_all(&read, &events_path(ACME), q, 1000).await;
        let mut jq = q.to_vec();
        jq.push(("format", "jsonl"));
        let (_, _, body) = download(
            &app,
            &read,
            &format!("{}/export?{}", events_path(ACME), qs(&jq)),
        )
        .await;
        let exported: Vec<Value> = String::from_utf8(body)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(ids(&exported), ids(&listed), "{q:?}");
        exports += 1;
        wait_for_export_events(&app, &read, ACME, exports).await;
        let listed = app.list_all(&read, &events_path(ACME), q, 1000).await;
        let (_, _, body) = download(
            &app,
            &read,
            &format!("{}/export?{}", events_path(ACME), qs(q)),
        )
        .await;
        exports += 1;
        let rows = parse_csv(&body);
        assert_eq!(rows.len(), listed.len() + 1, "CSV of {q:?}");
        let descriptions: Vec<&str> = rows[1..].iter().map(|r| r[3].as_str()).collect();
        let listed_descriptions: Vec<&str> = listed
            .iter()
            .map(|r| r["description"].as_str().unwrap())
            .collect();
        assert_eq!(descriptions, listed_descriptions, "CSV of {q:?}");
    }
}

#[tokio::test]
async fn a_large_export_streams_every_row_once() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let n = 2500;
    let events: Vec<Value> = (0..n)
        .map(|i| {
            let mut ev = role_created_at("2026-11-20T10:00:00Z");
            ev["description"] = json!(format!("row {i}"));
            ev
        })
        .collect();
    app.ingest_batch(&token, ACME, &events).await;
    let (status, _, body) = download(
        &app,
        &read,
        &format!("{}/export?range=all_time", events_path(ACME)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rows = parse_csv(&body);
    assert_eq!(rows.len(), n + 1);
    let mut descs: Vec<&str> = rows[1..].iter().map(|r| r[3].as_str()).collect();
    // Same instant for all: newest first means highest seq first.
    assert_eq!(descs[0], format!("row {}", n - 1));
    assert_eq!(descs[n - 1], "row 0");
    descs.sort_unstable();
    descs.dedup();
    assert_eq!(descs.len(), n);
}

#[tokio::test]
async fn each_export_is_recorded_after_it_completes_and_not_in_itself() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let (read, read_id) = app.token_with_id(ACME, Role::Read).await;
    for i in 0..3 {
        app.ingest(
            &token,
            ACME,
            &role_created_at(&format!("2026-11-2{i}T10:00:00Z")),
        )
        .await;
    }
    app.ingest(&token, ACME, &workflow_event("wf_1")).await;

    let path = format!(
        "{}/export?{}",
        events_path(ACME),
        qs(&[
            ("range", "last_30_days"),
            ("filter", "event:eq:Role created"),
            ("tz", "Europe/Paris")
        ])
    );
    let (status, _, body) = download(&app, &read, &path).await;
    assert_eq!(status, StatusCode::OK);
    let rows = parse_csv(&body);
    assert_eq!(rows.len(), 1 + 3);
    assert!(rows.iter().all(|r| r[2] != "Audit Logs"));

    let recorded = wait_for_export_events(&app, &read, ACME, 1).await;
    let e = &recorded[0];
    assert_eq!(e["level"], json!("account"));
    assert_eq!(e["category"], json!("Audit Logs"));
    assert_eq!(e["event"], json!("Audit logs exported"));
    assert_eq!(e["occurred_at"], json!(canonical(DEFAULT_NOW)));
    assert_eq!(e["actor"]["id"], json!(read_id));
    let m = &e["metadata"];
    assert_eq!(m["token_id"], json!(read_id));
    assert_eq!(m["format"], json!("csv"));
    assert_eq!(m["row_count"], json!(3));
    assert_eq!(m["filters"], json!("event:eq:Role created"));
    let range = m["range"].as_str().unwrap();
    assert!(
        range.contains("last_30_days") && range.contains("Europe/Paris"),
        "{range}"
    );
    // The token's id, never its secret.
    let whole = e.to_string();
    assert!(!whole.contains(&read), "the secret leaked: {whole}");
    assert!(
        !whole.contains(&read["alog_".len()..]),
        "the secret leaked: {whole}"
    );

    // The next export includes the first one's record, and records itself.
    let (_, _, body) = download(
        &app,
        &read,
        &format!("{}/export?range=all_time&format=jsonl", events_path(ACME)),
    )
    .await;
    let lines: Vec<Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["category"] == "Audit Logs")
            .count(),
        1
    );
    let recorded = wait_for_export_events(&app, &read, ACME, 2).await;
    let newest = recorded
        .iter()
        .max_by_key(|r| r["seq"].as_u64().unwrap())
        .unwrap();
    assert_eq!(newest["metadata"]["format"], json!("jsonl"));
    assert_eq!(newest["metadata"]["row_count"], json!(5));
    assert_eq!(newest["metadata"]["filters"], json!(""));

    // An empty export still has its header and is recorded with 0 rows.
    let (status, _, body) = download(
        &app,
        &read,
        &format!(
            "{}/export?range=today&filter=user:eq:nobody",
            events_path(ACME)
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, HEADER.as_bytes());
    let recorded = wait_for_export_events(&app, &read, ACME, 3).await;
    let newest = recorded
        .iter()
        .max_by_key(|r| r["seq"].as_u64().unwrap())
        .unwrap();
    assert_eq!(newest["metadata"]["row_count"], json!(0));
}

#[tokio::test]
async fn a_workflow_export_is_named_for_the_workflow_and_holds_only_its_events() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let mut mine = workflow_event("wf_1");
    mine["description"] = json!("mine");
    app.ingest(&token, ACME, &mine).await;
    app.ingest(&token, ACME, &workflow_event("wf_2")).await;
    app.ingest(&token, ACME, &workflow_created("wf_1")).await;
    let (status, headers, body) = download(
        &app,
        &read,
        &format!("/v1/accounts/{ACME}/workflows/wf_1/events/export?range=all_time"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "content-disposition"),
        "attachment; filename=\"Workflow_Audit_Logs.csv\""
    );
    let rows = parse_csv(&body);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][3], "mine");
    assert_eq!(rows[1][1], "Invited users");
}
