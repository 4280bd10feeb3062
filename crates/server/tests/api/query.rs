//! Query semantics through the API: every time-range preset at fixed instants
//! (a DST day, a year boundary seen from two zones), every filter column,
//! operator and join, keyset pagination while events arrive, count and
//! histogram agreeing with the rows, the workflow view, and every bad
//! parameter answered with `400`.

use std::collections::{BTreeSet, HashSet};

use auditlog_store::Role;
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// One preset query and the range it must resolve to (`None`: unbounded).
struct Preset {
    query: &'static [(&'static str, &'static str)],
    preset: &'static str,
    tz: &'static str,
    from: Option<&'static str>,
    to: Option<&'static str>,
    /// Histogram buckets the auto width must give, when worth pinning.
    buckets: Option<usize>,
}

/// Ingests one event at every instant around every boundary of `cases`
/// (1 ms before and at it) plus `extra`, with the clock far ahead so none
/// is "in the future"; returns the instants.
async fn ingest_boundaries(
    app: &TestApp,
    token: &str,
    cases: &[Preset],
    extra: &[&str],
) -> Vec<Timestamp> {
    let mut instants = BTreeSet::new();
    for c in cases {
        for b in [c.from, c.to].into_iter().flatten() {
            let b = ts(b);
            instants.insert(b);
            instants.insert(b - SignedDuration::from_millis(1));
        }
    }
    instants.extend(extra.iter().map(|s| ts(s)));
    app.set_now("2100-01-01T00:00:00Z");
    let events: Vec<Value> = instants
        .iter()
        .map(|t| role_created_at(&t.to_string()))
        .collect();
    app.ingest_batch(token, ACME, &events).await;
    instants.into_iter().collect()
}

/// Checks each case's `range` echo, the events listed and counted, and that
/// the histogram's buckets start at `from` and add up to the count.
async fn check_presets(
    app: &TestApp,
    token: &str,
    cases: &[Preset],
    instants: &[Timestamp],
    now: &str,
) {
    let now = ts(now);
    let path = events_path(ACME);
    for c in cases {
        let q = qs(c.query);
        let what = format!("?{q}");
        let page = app
            .get_json(
                token,
                &format!("{path}?{}", qs(&[c.query, &[("limit", "1000")]].concat())),
            )
            .await;
        assert_eq!(
            page["range"],
            json!({"preset": c.preset, "from": c.from, "to": c.to, "tz": c.tz}),
            "{what}"
        );
        let inside =
            |t: &Timestamp| c.from.is_none_or(|f| ts(f) <= *t) && c.to.is_none_or(|e| *t < ts(e));
        let mut want: Vec<String> = instants
            .iter()
            .filter(|t| inside(t))
            .map(|t| canonical(&t.to_string()))
            .collect();
        want.reverse();
        let got: Vec<String> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["occurred_at"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(got, want, "events of {what}");
        assert_eq!(page["next_cursor"], Value::Null);
        let count = app.get_json(token, &format!("{path}/count?{q}")).await;
        assert_eq!(count["count"], json!(want.len()), "count of {what}");

        let hist = app.get_json(token, &format!("{path}/histogram?{q}")).await;
        let buckets = hist["buckets"].as_array().unwrap();
        let sum: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
        // An all-time histogram ends with the day holding now (the fixtures
        // reach further, as if the clock had gone back): only the events
        // before that day's end are in its buckets.
        let in_buckets = match c.to {
            Some(_) => want.len(),
            None => {
                assert_eq!(hist["bucket"], json!("day"), "{what}");
                let last = ts(buckets.last().unwrap()["start"].as_str().unwrap());
                let end = last
                    .in_tz(c.tz)
                    .and_then(|z| z.tomorrow())
                    .and_then(|z| z.start_of_day())
                    .unwrap()
                    .timestamp();
                assert!(
                    last <= now && now < end,
                    "the last bucket holds now: {what}"
                );
                want.iter().filter(|t| ts(t) < end).count()
            }
        };
        assert_eq!(sum, in_buckets as u64, "histogram of {what}: {hist}");
        if let Some(from) = c.from {
            assert_eq!(buckets[0]["start"], json!(from), "first bucket of {what}");
        }
        if let Some(n) = c.buckets {
            assert_eq!(buckets.len(), n, "buckets of {what}: {hist}");
        }
        let starts: Vec<Timestamp> = buckets
            .iter()
            .map(|b| ts(b["start"].as_str().unwrap()))
            .collect();
        assert!(starts.windows(2).all(|w| w[0] < w[1]), "ascending: {what}");
    }
}

/// 2026-03-29 is the day Paris moves from +01:00 to +02:00 (a 23-hour day),
/// a Sunday.
#[tokio::test]
async fn presets_on_the_paris_spring_dst_day() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    const P: &str = "Europe/Paris";
    let cases = [
        Preset {
            query: &[("range", "today"), ("tz", P)],
            preset: "today",
            tz: P,
            from: Some("2026-03-29T00:00:00+01:00"),
            to: Some("2026-03-30T00:00:00+02:00"),
            buckets: Some(23),
        },
        Preset {
            query: &[("range", "yesterday"), ("tz", P)],
            preset: "yesterday",
            tz: P,
            from: Some("2026-03-28T00:00:00+01:00"),
            to: Some("2026-03-29T00:00:00+01:00"),
            buckets: Some(24),
        },
        Preset {
            query: &[("range", "this_week"), ("tz", P)],
            preset: "this_week",
            tz: P,
            from: Some("2026-03-23T00:00:00+01:00"),
            to: Some("2026-03-30T00:00:00+02:00"),
            buckets: Some(7),
        },
        Preset {
            query: &[("range", "this_week"), ("tz", P), ("week_start", "sunday")],
            preset: "this_week",
            tz: P,
            from: Some("2026-03-29T00:00:00+01:00"),
            to: Some("2026-04-05T00:00:00+02:00"),
            buckets: Some(7),
        },
        Preset {
            query: &[("range", "this_month"), ("tz", P)],
            preset: "this_month",
            tz: P,
            from: Some("2026-03-01T00:00:00+01:00"),
            to: Some("2026-04-01T00:00:00+02:00"),
            buckets: Some(31),
        },
        Preset {
            query: &[("range", "last_month"), ("tz", P)],
            preset: "last_month",
            tz: P,
            from: Some("2026-02-01T00:00:00+01:00"),
            to: Some("2026-03-01T00:00:00+01:00"),
            buckets: Some(28),
        },
        Preset {
            query: &[("range", "last_30_days"), ("tz", P)],
            preset: "last_30_days",
            tz: P,
            from: Some("2026-02-28T00:00:00+01:00"),
            to: Some("2026-03-30T00:00:00+02:00"),
            buckets: Some(30),
        },
        // The default range is the last 30 days.
        Preset {
            query: &[("tz", P)],
            preset: "last_30_days",
            tz: P,
            from: Some("2026-02-28T00:00:00+01:00"),
            to: Some("2026-03-30T00:00:00+02:00"),
            buckets: Some(30),
        },
        Preset {
            query: &[("range", "last_90_days"), ("tz", P)],
            preset: "last_90_days",
            tz: P,
            from: Some("2025-12-30T00:00:00+01:00"),
            to: Some("2026-03-30T00:00:00+02:00"),
            buckets: Some(90),
        },
        Preset {
            query: &[("range", "this_year"), ("tz", P)],
            preset: "this_year",
            tz: P,
            from: Some("2026-01-01T00:00:00+01:00"),
            to: Some("2027-01-01T00:00:00+01:00"),
            buckets: Some(365),
        },
        Preset {
            query: &[("range", "last_year"), ("tz", P)],
            preset: "last_year",
            tz: P,
            from: Some("2025-01-01T00:00:00+01:00"),
            to: Some("2026-01-01T00:00:00+01:00"),
            buckets: Some(365),
        },
        Preset {
            query: &[
                ("range", "custom"),
                ("from", "2026-03-29"),
                ("to", "2026-03-29"),
                ("tz", P),
            ],
            preset: "custom",
            tz: P,
            from: Some("2026-03-29T00:00:00+01:00"),
            to: Some("2026-03-30T00:00:00+02:00"),
            buckets: Some(23),
        },
        // `to` defaults to today.
        Preset {
            query: &[("range", "custom"), ("from", "2026-03-28"), ("tz", P)],
            preset: "custom",
            tz: P,
            from: Some("2026-03-28T00:00:00+01:00"),
            to: Some("2026-03-30T00:00:00+02:00"),
            buckets: Some(47),
        },
        // The autumn change: a 25-hour day.
        Preset {
            query: &[
                ("range", "custom"),
                ("from", "2026-10-25"),
                ("to", "2026-10-25"),
                ("tz", P),
            ],
            preset: "custom",
            tz: P,
            from: Some("2026-10-25T00:00:00+02:00"),
            to: Some("2026-10-26T00:00:00+01:00"),
            buckets: Some(25),
        },
        Preset {
            query: &[("range", "all_time"), ("tz", P)],
            preset: "all_time",
            tz: P,
            from: None,
            to: None,
            buckets: None,
        },
    ];
    let instants = ingest_boundaries(
        &app,
        &token,
        &cases,
        &[
            "2026-03-29T01:59:59.999Z",
            "2026-03-29T10:00:00Z",
            "2024-06-01T00:00:00Z",
        ],
    )
    .await;
    // Noon in Paris, summer time already.
    let now = "2026-03-29T12:00:00+02:00";
    app.set_now(now);
    check_presets(&app, &read, &cases, &instants, now).await;
}

/// 2027-01-01 00:30 in Auckland (+13:00) is still 2026-12-31 in UTC: the
/// year, month, week and day all differ between the two viewers.
#[tokio::test]
async fn presets_across_the_new_year_in_auckland_and_utc() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    const A: &str = "Pacific/Auckland";
    let cases = [
        Preset {
            query: &[("range", "today"), ("tz", A)],
            preset: "today",
            tz: A,
            from: Some("2027-01-01T00:00:00+13:00"),
            to: Some("2027-01-02T00:00:00+13:00"),
            buckets: Some(24),
        },
        Preset {
            query: &[("range", "yesterday"), ("tz", A)],
            preset: "yesterday",
            tz: A,
            from: Some("2026-12-31T00:00:00+13:00"),
            to: Some("2027-01-01T00:00:00+13:00"),
            buckets: Some(24),
        },
        Preset {
            query: &[("range", "this_week"), ("tz", A)],
            preset: "this_week",
            tz: A,
            from: Some("2026-12-28T00:00:00+13:00"),
            to: Some("2027-01-04T00:00:00+13:00"),
            buckets: Some(7),
        },
        Preset {
            query: &[("range", "this_month"), ("tz", A)],
            preset: "this_month",
            tz: A,
            from: Some("2027-01-01T00:00:00+13:00"),
            to: Some("2027-02-01T00:00:00+13:00"),
            buckets: Some(31),
        },
        Preset {
            query: &[("range", "last_month"), ("tz", A)],
            preset: "last_month",
            tz: A,
            from: Some("2026-12-01T00:00:00+13:00"),
            to: Some("2027-01-01T00:00:00+13:00"),
            buckets: Some(31),
        },
        Preset {
            query: &[("range", "last_30_days"), ("tz", A)],
            preset: "last_30_days",
            tz: A,
            from: Some("2026-12-03T00:00:00+13:00"),
            to: Some("2027-01-02T00:00:00+13:00"),
            buckets: Some(30),
        },
        Preset {
            query: &[("range", "this_year"), ("tz", A)],
            preset: "this_year",
            tz: A,
            from: Some("2027-01-01T00:00:00+13:00"),
            to: Some("2028-01-01T00:00:00+13:00"),
            buckets: Some(365),
        },
        Preset {
            query: &[("range", "last_year"), ("tz", A)],
            preset: "last_year",
            tz: A,
            from: Some("2026-01-01T00:00:00+13:00"),
            to: Some("2027-01-01T00:00:00+13:00"),
            buckets: Some(365),
        },
        // The same instant seen from UTC (the default zone).
        Preset {
            query: &[("range", "today")],
            preset: "today",
            tz: "UTC",
            from: Some("2026-12-31T00:00:00+00:00"),
            to: Some("2027-01-01T00:00:00+00:00"),
            buckets: Some(24),
        },
        Preset {
            query: &[("range", "this_week"), ("tz", "UTC")],
            preset: "this_week",
            tz: "UTC",
            from: Some("2026-12-28T00:00:00+00:00"),
            to: Some("2027-01-04T00:00:00+00:00"),
            buckets: Some(7),
        },
        Preset {
            query: &[("range", "this_month")],
            preset: "this_month",
            tz: "UTC",
            from: Some("2026-12-01T00:00:00+00:00"),
            to: Some("2027-01-01T00:00:00+00:00"),
            buckets: Some(31),
        },
        Preset {
            query: &[("range", "this_year")],
            preset: "this_year",
            tz: "UTC",
            from: Some("2026-01-01T00:00:00+00:00"),
            to: Some("2027-01-01T00:00:00+00:00"),
            buckets: Some(365),
        },
        Preset {
            query: &[("range", "last_year")],
            preset: "last_year",
            tz: "UTC",
            from: Some("2025-01-01T00:00:00+00:00"),
            to: Some("2026-01-01T00:00:00+00:00"),
            buckets: Some(365),
        },
    ];
    let instants = ingest_boundaries(
        &app,
        &token,
        &cases,
        &["2026-12-31T11:30:00Z", "2026-07-01T00:00:00Z"],
    )
    .await;
    let now = "2027-01-01T00:30:00+13:00";
    app.set_now(now);
    check_presets(&app, &read, &cases, &instants, now).await;
}

#[tokio::test]
async fn hour_buckets_follow_the_viewers_clock_on_a_dst_day() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let at = [
        "2026-03-28T23:59:59.999+01:00", // yesterday: not counted
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T00:30:00+01:00",
        "2026-03-29T01:59:59.999+01:00",
        "2026-03-29T03:00:00+02:00", // the clock jumped from 02:00 to 03:00
        "2026-03-29T11:59:00+02:00",
    ];
    let events: Vec<Value> = at.iter().map(|t| role_created_at(t)).collect();
    app.ingest_batch(&token, ACME, &events).await;
    app.set_now("2026-03-29T12:00:00+02:00");

    let hist = app
        .get_json(
            &read,
            &format!(
                "{}/histogram?range=today&tz=Europe/Paris&bucket=hour",
                events_path(ACME)
            ),
        )
        .await;
    assert_eq!(hist["bucket"], json!("hour"));
    let mut want = vec![
        json!({"start": "2026-03-29T00:00:00+01:00", "count": 2}),
        json!({"start": "2026-03-29T01:00:00+01:00", "count": 1}),
        json!({"start": "2026-03-29T03:00:00+02:00", "count": 1}),
    ];
    for h in 4..24 {
        let count = if h == 11 { 1 } else { 0 };
        want.push(json!({"start": format!("2026-03-29T{h:02}:00:00+02:00"), "count": count}));
    }
    assert_eq!(hist["buckets"], Value::Array(want));

    // Day buckets of the week, aligned to Paris midnights (not UTC ones):
    // empty days are there with 0.
    let hist = app
        .get_json(
            &read,
            &format!(
                "{}/histogram?range=this_week&tz=Europe/Paris&bucket=day",
                events_path(ACME)
            ),
        )
        .await;
    assert_eq!(hist["bucket"], json!("day"));
    let starts: Vec<&str> = hist["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-03-23T00:00:00+01:00",
            "2026-03-24T00:00:00+01:00",
            "2026-03-25T00:00:00+01:00",
            "2026-03-26T00:00:00+01:00",
            "2026-03-27T00:00:00+01:00",
            "2026-03-28T00:00:00+01:00",
            "2026-03-29T00:00:00+01:00",
        ]
    );
    let counts: Vec<u64> = hist["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [0, 0, 0, 0, 0, 1, 5]);

    // The same events seen from New York fall on other days.
    let hist = app
        .get_json(
            &read,
            &format!(
                "{}/histogram?range=custom&from=2026-03-28&to=2026-03-29&tz=America/New_York",
                events_path(ACME)
            ),
        )
        .await;
    // Two days: auto picks hours (48 of them, New York changed earlier).
    assert_eq!(hist["bucket"], json!("hour"));
    assert_eq!(hist["buckets"].as_array().unwrap().len(), 48);
    assert_eq!(
        hist["buckets"][0]["start"],
        json!("2026-03-28T00:00:00-04:00")
    );
    let hist = app
        .get_json(
            &read,
            &format!(
                "{}/histogram?range=custom&from=2026-03-28&to=2026-03-29&tz=America/New_York&bucket=day",
                events_path(ACME)
            ),
        )
        .await;
    // New York is 5 to 6 hours behind Paris: all but the last event (05:59
    // there) happened on the evening of the 28th.
    assert_eq!(
        hist["buckets"],
        json!([
            {"start": "2026-03-28T00:00:00-04:00", "count": 5},
            {"start": "2026-03-29T00:00:00-04:00", "count": 1},
        ])
    );
}

#[tokio::test]
async fn all_time_histogram_starts_on_the_day_of_the_first_event() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    // An empty log has no buckets.
    let hist = app
        .get_json(
            &read,
            &format!("{}/histogram?range=all_time", events_path(ACME)),
        )
        .await;
    assert_eq!(hist["buckets"], json!([]));

    app.ingest_batch(
        &token,
        ACME,
        &[
            role_created_at("2026-11-20T23:30:00Z"),
            role_created_at("2026-11-24T10:00:00Z"),
            role_created_at("2026-11-25T11:00:00Z"),
        ],
    )
    .await;
    // Now is 2026-11-25T12:00Z. In Tokyo the first event is on the 21st.
    let hist = app
        .get_json(
            &read,
            &format!(
                "{}/histogram?range=all_time&tz=Asia/Tokyo",
                events_path(ACME)
            ),
        )
        .await;
    assert_eq!(hist["bucket"], json!("day"));
    assert_eq!(
        hist["buckets"],
        json!([
            {"start": "2026-11-21T00:00:00+09:00", "count": 1},
            {"start": "2026-11-22T00:00:00+09:00", "count": 0},
            {"start": "2026-11-23T00:00:00+09:00", "count": 0},
            {"start": "2026-11-24T00:00:00+09:00", "count": 1},
            {"start": "2026-11-25T00:00:00+09:00", "count": 1},
        ])
    );
}

/// Regression: the all-time histogram ended at `now`, so an event stamped a
/// few minutes ahead (which ingest allows) was listed and counted but fell
/// in no bucket.
#[tokio::test]
async fn all_time_histogram_counts_events_stamped_a_few_minutes_ahead() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    app.set_now("2026-11-25T12:59:00Z");
    app.ingest(&token, ACME, &role_created_at("2026-11-25T12:00:00Z"))
        .await;
    app.ingest(&token, ACME, &role_created_at("2026-11-25T13:02:00Z"))
        .await;
    let count = app
        .count(&read, &events_path(ACME), &[("range", "all_time")])
        .await;
    assert_eq!(count, 2);
    let hist = app
        .get_json(
            &read,
            &format!("{}/histogram?range=all_time", events_path(ACME)),
        )
        .await;
    let buckets = hist["buckets"].as_array().unwrap();
    let sum: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(sum, count, "{hist}");
    assert_eq!(buckets[0]["start"], json!("2026-11-25T12:00:00+00:00"));
}

/// The filter data set: a label for each event, and the event.
fn filter_events() -> Vec<(&'static str, Value)> {
    let mut e1 = role_created();
    e1["ip_address"] = json!("203.0.113.7");
    e1["description"] = json!("Jane created role Auditor");
    let mut e2 = json!({
        "level": "account", "category": "Roles", "event": "Role deleted",
        "actor": {"id": "u_2", "name": "John Roe"}, "ip_address": "2001:db8::1",
        "description": "John deleted role Viewer",
        "metadata": {"role_id": "r_2", "role_type": "custom"}
    });
    e2["occurred_at"] = json!("2026-11-25T10:00:00Z");
    let mut e3 = workflow_created("wf_1");
    e3["ip_address"] = json!("203.0.113.8");
    e3["description"] = json!("Jane created workflow Invoices");
    let mut e4 = workflow_event("wf_1");
    e4["actor"] = json!({"id": "u_3"});
    e4["ip_address"] = json!("198.51.100.1");
    e4["description"] = json!("Invited two users: a@x, b@y");
    let mut e5 = workflow_event("wf_2");
    e5["description"] = json!("John invited users");
    let e6 = json!({
        "level": "account", "category": "Login/Logout", "event": "Logout",
        "actor": {"id": "u_1", "name": "Jane Doe", "email": "jane@acme.example"},
        "ip_address": "203.0.113.7", "description": "Jane logged out"
    });
    let e7 = json!({
        "level": "workflow", "category": "User Management", "event": "Role changed",
        "actor": {"kind": "system", "id": "sys", "name": "Scheduler"}, "workflow_id": "wf_10",
        "description": "Scheduler changed a role"
    });
    let e8 = json!({
        "level": "account", "category": "Roles", "event": "Role changed",
        "actor": {"id": "u_1", "name": "  JANE DOE "}, "description": "Jane changed roles"
    });
    vec![
        ("E1", e1),
        ("E2", e2),
        ("E3", e3),
        ("E4", e4),
        ("E5", e5),
        ("E6", e6),
        ("E7", e7),
        ("E8", e8),
    ]
}

#[tokio::test]
async fn every_column_operator_and_join_selects_the_right_events() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let mut by_id = std::collections::HashMap::new();
    for (label, ev) in filter_events() {
        let rec = app.ingest(&token, ACME, &ev).await;
        by_id.insert(rec["id"].as_str().unwrap().to_owned(), label);
    }
    // (filters, join, labels expected)
    let cases: &[(&[&str], Option<&str>, &[&str])] = &[
        (&["event:eq:role created"], None, &["E1"]),
        (&["event:eq:  ROLE CREATED  "], None, &["E1"]),
        (
            &["event:ne:Role created"],
            None,
            &["E2", "E3", "E4", "E5", "E6", "E7", "E8"],
        ),
        (&["event:contains:role"], None, &["E1", "E2", "E7", "E8"]),
        (
            &["event:not_contains:ROLE"],
            None,
            &["E3", "E4", "E5", "E6"],
        ),
        (&["category:eq:roles"], None, &["E1", "E2", "E8"]),
        (&["category:eq:User Management"], None, &["E4", "E5", "E7"]),
        (
            &["category:ne:roles"],
            None,
            &["E3", "E4", "E5", "E6", "E7"],
        ),
        (&["category:contains:flow"], None, &["E3"]),
        (&["category:not_contains:o"], None, &["E4", "E5", "E7"]),
        (&["user:eq:jane doe"], None, &["E1", "E3", "E6", "E8"]),
        // Without a name, the user is shown (and matched) by id.
        (&["user:eq:U_3"], None, &["E4"]),
        (&["user:contains:ROE"], None, &["E2", "E5"]),
        (&["user:ne:Jane Doe"], None, &["E2", "E4", "E5", "E7"]),
        (&["user:not_contains:j"], None, &["E4", "E7"]),
        (&["user_id:eq:u_1"], None, &["E1", "E3", "E6", "E8"]),
        (&["user_id:ne:u_1"], None, &["E2", "E4", "E5", "E7"]),
        // The value keeps its colons.
        (&["ip_address:eq:2001:db8::1"], None, &["E2"]),
        (
            &["ip_address:contains:203.0.113."],
            None,
            &["E1", "E3", "E6"],
        ),
        (
            &["ip_address:not_contains:203.0.113."],
            None,
            &["E2", "E4", "E5", "E7", "E8"],
        ),
        (&["workflow_id:eq:wf_1"], None, &["E3", "E4"]),
        (&["workflow_id:contains:WF_1"], None, &["E3", "E4", "E7"]),
        // `ne` and `not_contains` keep events without the field.
        (
            &["workflow_id:ne:wf_1"],
            None,
            &["E1", "E2", "E5", "E6", "E7", "E8"],
        ),
        (
            &["workflow_id:not_contains:wf"],
            None,
            &["E1", "E2", "E6", "E8"],
        ),
        (&["level:eq:workflow"], None, &["E4", "E5", "E7"]),
        (
            &["level:ne:workflow"],
            None,
            &["E1", "E2", "E3", "E6", "E8"],
        ),
        (&["description:eq: jane LOGGED out"], None, &["E6"]),
        (
            &["description:ne:Jane logged out"],
            None,
            &["E1", "E2", "E3", "E4", "E5", "E7", "E8"],
        ),
        (&["description:contains:INVITED"], None, &["E4", "E5"]),
        (&["description:contains:users: a@x, b"], None, &["E4"]),
        (
            &["description:not_contains:jane"],
            None,
            &["E2", "E4", "E5", "E7"],
        ),
        (
            &["event:contains:role", "user:eq:jane doe"],
            Some("and"),
            &["E1", "E8"],
        ),
        (
            &["event:contains:role", "user:eq:jane doe"],
            None,
            &["E1", "E8"],
        ),
        (
            &["event:contains:role", "user:eq:jane doe"],
            Some("or"),
            &["E1", "E2", "E3", "E6", "E7", "E8"],
        ),
        (
            &["workflow_id:ne:wf_1", "level:eq:workflow"],
            Some("and"),
            &["E5", "E7"],
        ),
        (
            &["ip_address:eq:2001:db8::1", "user_id:eq:u_3"],
            Some("or"),
            &["E2", "E4"],
        ),
        (
            &["description:contains:logged", "level:eq:workflow"],
            Some("or"),
            &["E4", "E5", "E6", "E7"],
        ),
        (
            &["description:contains:jane", "category:eq:roles"],
            Some("and"),
            &["E1", "E8"],
        ),
        (
            &["description:contains:jane", "description:contains:role"],
            Some("and"),
            &["E1", "E8"],
        ),
        (
            &[
                "description:contains:invoices",
                "description:contains:viewer",
            ],
            Some("or"),
            &["E2", "E3"],
        ),
        (&["event:eq:nothing like it"], Some("or"), &[]),
        (
            &[],
            Some("or"),
            &["E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8"],
        ),
    ];
    let path = events_path(ACME);
    for (filters, join, want) in cases {
        let mut q: Vec<(&str, &str)> = vec![("range", "all_time")];
        q.extend(filters.iter().map(|f| ("filter", *f)));
        if let Some(j) = join {
            q.push(("join", j));
        }
        let got: BTreeSet<&str> = app
            .list_all(&read, &path, &q, 1000)
            .await
            .iter()
            .map(|r| by_id[r["id"].as_str().unwrap()])
            .collect();
        let want: BTreeSet<&str> = want.iter().copied().collect();
        assert_eq!(got, want, "filters {filters:?} join {join:?}");
        assert_eq!(
            app.count(&read, &path, &q).await,
            want.len() as u64,
            "count of {filters:?} {join:?}"
        );
    }
}

#[tokio::test]
async fn paging_visits_every_event_once_while_new_events_arrive() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    // 120 events, two per instant so that ties are broken by seq.
    let base = ts("2026-11-25T11:00:00Z");
    let events: Vec<Value> = (0..120)
        .map(|i| {
            let at = base - SignedDuration::from_secs(i / 2);
            role_created_at(&at.to_string())
        })
        .collect();
    let initial: HashSet<String> = ids(&app.ingest_batch(&token, ACME, &events).await)
        .into_iter()
        .collect();

    let path = events_path(ACME);
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = vec![("range", "all_time"), ("limit", "7")];
        if let Some(c) = &cursor {
            q.push(("cursor", c));
        }
        let page = app.get_json(&read, &format!("{path}?{}", qs(&q))).await;
        let rows = page["events"].as_array().unwrap();
        seen.extend(rows.iter().cloned());
        pages += 1;
        // Between pages: a newer event, one at the same instant as the
        // page's last row, and a backfilled older one.
        if let Some(last) = rows.last() {
            let at = last["occurred_at"].as_str().unwrap();
            app.ingest(&token, ACME, &role_created_at(at)).await;
            app.ingest(&token, ACME, &role_created()).await;
            app.ingest(&token, ACME, &role_created_at("2020-01-01T00:00:00Z"))
                .await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 200, "paging does not end");
    }
    let seen_ids = ids(&seen);
    let unique: HashSet<&String> = seen_ids.iter().collect();
    assert_eq!(unique.len(), seen_ids.len(), "an event was listed twice");
    for id in &initial {
        assert!(
            unique.contains(id),
            "event {id} present from the start was never listed"
        );
    }
    // Strictly descending on (occurred_at, seq) across every page.
    let keys: Vec<(Timestamp, u64)> = seen
        .iter()
        .map(|r| {
            (
                ts(r["occurred_at"].as_str().unwrap()),
                r["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] > w[1]),
        "not in (occurred_at, seq) descending order"
    );
}

#[tokio::test]
async fn count_is_the_number_of_rows_paged_through() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let mut events = Vec::new();
    for i in 0..150i64 {
        let at = ts("2026-11-25T11:00:00Z") - SignedDuration::from_hours(i * 5);
        let mut ev = if i % 3 == 0 {
            workflow_event("wf_1")
        } else {
            role_created()
        };
        ev["occurred_at"] = json!(at.to_string());
        events.push(ev);
    }
    app.ingest_batch(&token, ACME, &events).await;
    let path = events_path(ACME);
    let queries: &[&[(&str, &str)]] = &[
        &[("range", "all_time")],
        &[],
        &[("range", "last_90_days"), ("tz", "America/Los_Angeles")],
        &[("range", "this_month"), ("filter", "level:eq:workflow")],
        &[
            ("range", "all_time"),
            ("filter", "event:ne:Role created"),
            ("filter", "user:eq:Jane Doe"),
            ("join", "or"),
        ],
    ];
    for q in queries {
        let count = app.count(&read, &path, q).await;
        for limit in [1, 7, 1000] {
            let rows = app.list_all(&read, &path, q, limit).await;
            assert_eq!(rows.len() as u64, count, "{q:?} with limit {limit}");
        }
    }
}

#[tokio::test]
async fn a_cursor_only_works_for_the_account_and_query_that_issued_it() {
    let app = spawn_app().await;
    let platform = app.token("*", Role::Ingest).await;
    let reader = app.token("*", Role::Read).await;
    for account in [ACME, GLOBEX] {
        let events: Vec<Value> = (0..5).map(|_| workflow_event("wf_1")).collect();
        app.ingest_batch(&platform, account, &events).await;
    }
    let page = |account: &str, extra: &str| {
        format!("{}?range=all_time&limit=2{extra}", events_path(account))
    };
    let cursor_of = |v: Value| v["next_cursor"].as_str().unwrap().to_owned();
    let acme_cursor = cursor_of(app.get_json(&reader, &page(ACME, "")).await);

    // The same query, another page size: fine.
    let next = app
        .get_json(
            &reader,
            &format!(
                "{}?range=all_time&limit=3&cursor={acme_cursor}",
                events_path(ACME)
            ),
        )
        .await;
    assert_eq!(next["events"].as_array().unwrap().len(), 3);

    let foreign = [
        // Another account.
        page(GLOBEX, &format!("&cursor={acme_cursor}")),
        // Another filter, range or zone.
        page(
            ACME,
            &format!("&filter=level:eq:workflow&cursor={acme_cursor}"),
        ),
        format!(
            "{}?range=today&limit=2&cursor={acme_cursor}",
            events_path(ACME)
        ),
        page(ACME, &format!("&tz=Europe/Paris&cursor={acme_cursor}")),
        // The workflow view of the same account.
        format!(
            "/v1/accounts/{ACME}/workflows/wf_1/events?range=all_time&limit=2&cursor={acme_cursor}"
        ),
        // Not a cursor at all, or tampered with.
        page(ACME, "&cursor=garbage"),
        page(
            ACME,
            &format!("&cursor={}A", &acme_cursor[..acme_cursor.len() - 1]),
        ),
    ];
    for path in foreign {
        let p = problem(app.get(&reader, &path).await, StatusCode::BAD_REQUEST).await;
        assert!(
            p["detail"].as_str().unwrap().contains("cursor"),
            "{path}: {p}"
        );
    }
}

#[tokio::test]
async fn bad_query_parameters_are_400_naming_the_parameter_on_every_read_route() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    app.ingest(&token, ACME, &role_created()).await;
    // (query, text the detail must contain)
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("filter", "colour:eq:red")], "colour"),
        (&[("filter", "event:like:Role")], "like"),
        (&[("filter", "event")], "COLUMN:OP:VALUE"),
        (&[("filter", "event:eq")], "COLUMN:OP:VALUE"),
        (&[("filter", "event:contains: ")], "non-empty"),
        (&[("join", "xor")], "xor"),
        (&[("range", "forever")], "forever"),
        (&[("range", "Today")], "Today"),
        (&[("range", "custom")], "`from`"),
        (
            &[
                ("range", "custom"),
                ("from", "2026-03-02"),
                ("to", "2026-03-01"),
            ],
            "`from`",
        ),
        // `from` after today, `to` defaulting to today (2026-11-25).
        (&[("range", "custom"), ("from", "2026-11-26")], "`from`"),
        (&[("range", "today"), ("from", "2026-01-01")], "`from`"),
        (&[("range", "custom"), ("from", "2026-02-30")], "2026-02-30"),
        (&[("range", "custom"), ("from", "2026-13-01")], "2026-13-01"),
        (
            &[("range", "custom"), ("from", "10000-01-01")],
            "10000-01-01",
        ),
        (
            &[
                ("range", "custom"),
                ("from", "2026-01-01"),
                ("to", "2026-1-2"),
            ],
            "`to`",
        ),
        (
            &[("range", "custom"), ("from", "2026-01-01T00:00:00Z")],
            "`from`",
        ),
        (&[("tz", "Mars/Olympus_Mons")], "Mars/Olympus_Mons"),
        (&[("tz", "../../etc/passwd")], "`tz`"),
        (&[("tz", "")], "`tz`"),
        (&[("week_start", "tuesday")], "tuesday"),
        (&[("limit", "0")], "`limit`"),
        (&[("limit", "1001")], "`limit`"),
        (&[("limit", "-1")], "`limit`"),
        (&[("limit", "abc")], "`limit`"),
        (&[("limit", "1e3")], "`limit`"),
        (&[("limit", "")], "`limit`"),
        (&[("cursor", "not-a-cursor")], "`cursor`"),
        (&[("cursor", "")], "`cursor`"),
        (&[("fliter", "event:eq:Login")], "fliter"),
        (&[("range", "today"), ("range", "yesterday")], "`range`"),
        (&[("bucket", "fortnight")], "fortnight"),
        (&[("format", "xml")], "xml"),
    ];
    let routes = [
        events_path(ACME),
        format!("{}/count", events_path(ACME)),
        format!("{}/histogram", events_path(ACME)),
        format!("{}/export", events_path(ACME)),
        format!("/v1/accounts/{ACME}/workflows/wf_1/events"),
        format!("/v1/accounts/{ACME}/workflows/wf_1/events/export"),
    ];
    for (q, needle) in cases {
        for route in &routes {
            let path = format!("{route}?{}", qs(q));
            let res = app.get(&read, &path).await;
            assert_eq!(
                res.status(),
                StatusCode::BAD_REQUEST,
                "{path}: {}",
                res.text().await.unwrap()
            );
            let p = problem(res, StatusCode::BAD_REQUEST).await;
            let detail = p["detail"].as_str().unwrap();
            assert!(
                detail.contains(needle),
                "{path}: `{detail}` lacks `{needle}`"
            );
        }
    }
    // Percent-encoded bytes that are not UTF-8.
    for raw in [
        "filter=event:eq:%FF",
        "tz=Europe%2F%C3%28",
        "range=today%FE",
    ] {
        for route in &routes {
            let path = format!("{route}?{raw}");
            let res = app.get(&read, &path).await;
            assert_eq!(
                res.status(),
                StatusCode::BAD_REQUEST,
                "{path}: {}",
                res.text().await.unwrap()
            );
        }
    }
    // The edges of what is accepted.
    for q in [
        "limit=1",
        "limit=1000",
        "range=custom&from=0001-01-01&to=9999-12-28",
    ] {
        let res = app.get(&read, &format!("{}?{q}", events_path(ACME))).await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{q}: {}",
            res.text().await.unwrap()
        );
    }
    // No export was recorded for the rejected ones.
    assert_eq!(
        app.count(&read, &events_path(ACME), &[("range", "all_time")])
            .await,
        1
    );
}

#[tokio::test]
async fn a_workflow_view_holds_only_that_workflows_workflow_level_events() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    // Account-level events about wf_1 (shown in the account log only).
    app.ingest(&token, ACME, &workflow_created("wf_1")).await;
    let mut other = role_created();
    other["workflow_id"] = json!("wf_1");
    app.ingest(&token, ACME, &other).await;
    // Workflow-level events of wf_1, wf_2 and wf_10.
    let mut mine = Vec::new();
    for i in 0..4 {
        let mut ev = workflow_event("wf_1");
        ev["occurred_at"] = json!(format!("2026-11-2{}T10:00:00Z", i + 1));
        mine.push(app.ingest(&token, ACME, &ev).await);
    }
    app.ingest(&token, ACME, &workflow_event("wf_2")).await;
    app.ingest(&token, ACME, &workflow_event("wf_10")).await;
    // Another account's wf_1.
    let globex = app.token(GLOBEX, Role::Ingest).await;
    app.ingest(&globex, GLOBEX, &workflow_event("wf_1")).await;

    let wf = format!("/v1/accounts/{ACME}/workflows/wf_1/events");
    let q = [("range", "all_time")];
    let listed = app.list_all(&read, &wf, &q, 3).await;
    mine.sort_by(|a, b| b["occurred_at"].as_str().cmp(&a["occurred_at"].as_str()));
    assert_eq!(
        listed, mine,
        "exactly wf_1's workflow-level events, newest first, as full records"
    );
    assert_eq!(app.count(&read, &wf, &q).await, 4);
    let hist = app
        .get_json(&read, &format!("{wf}/histogram?range=all_time"))
        .await;
    let sum: u64 = hist["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 4);
    // Filters apply inside the view.
    assert_eq!(
        app.count(
            &read,
            &wf,
            &[("range", "all_time"), ("filter", "level:eq:account")]
        )
        .await,
        0
    );
    // The account log lists all eight of acme's.
    assert_eq!(app.count(&read, &events_path(ACME), &q).await, 8);
    // An unknown workflow is an empty view, not an error.
    assert_eq!(
        app.count(
            &read,
            &format!("/v1/accounts/{ACME}/workflows/nope/events"),
            &q
        )
        .await,
        0
    );
}

#[tokio::test]
async fn one_event_by_id_and_unknown_ids() {
    let app = spawn_app().await;
    let token = app.token(ACME, Role::Ingest).await;
    let read = app.token(ACME, Role::Read).await;
    let rec = app.ingest(&token, ACME, &role_created()).await;
    let id = rec["id"].as_str().unwrap();
    assert_eq!(
        app.get_json(&read, &format!("{}/{id}", events_path(ACME)))
            .await,
        rec
    );
    for bad in ["01JDX3Q6Z0M3A5V4S2R1N0P9QK", "not-an-id"] {
        let res = app
            .get(&read, &format!("{}/{bad}", events_path(ACME)))
            .await;
        problem(res, StatusCode::NOT_FOUND).await;
    }
}
