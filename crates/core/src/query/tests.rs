//! Tests of query parsing and semantics, across its submodules.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::civil::{Date, date};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use proptest::prelude::*;

use super::parse::parse_tz;
use super::*;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

fn spec(preset: RangePreset, tz: &str) -> RangeSpec {
    let (tz, tz_name) = parse_tz(tz).expect("test zone");
    RangeSpec {
        preset,
        tz,
        tz_name,
        ..RangeSpec::default()
    }
}

/// Resolves and renders both ends in the zone, for readable assertions.
fn resolved(spec: &RangeSpec, now: &str) -> (String, String) {
    let range = spec.resolve(ts(now)).expect("resolve");
    let echo = range.to_json_echo(spec);
    (
        echo["from"].as_str().expect("from").to_owned(),
        echo["to"].as_str().expect("to").to_owned(),
    )
}

fn check(preset: RangePreset, tz: &str, now: &str, from: &str, to: &str) {
    assert_eq!(
        resolved(&spec(preset, tz), now),
        (from.to_owned(), to.to_owned()),
        "{preset} in {tz} at {now}"
    );
}

fn hours(range: &ResolvedRange) -> i64 {
    let (Some(start), Some(end)) = (range.start, range.end) else {
        panic!("unbounded range");
    };
    (end.as_second() - start.as_second()) / 3600
}

fn parse_err(items: &[(&str, &str)]) -> ParseQueryError {
    parse_query(&pairs(items)).expect_err("should be rejected")
}

#[test]
fn wire_names_round_trip_and_labels_match_the_seed() {
    for preset in RangePreset::ALL {
        assert_eq!(preset.as_str().parse::<RangePreset>(), Ok(*preset));
    }
    let labels: Vec<&str> = RangePreset::ALL.iter().map(|p| p.label()).collect();
    assert_eq!(
        labels,
        [
            "All Time",
            "Today",
            "Yesterday",
            "This Week",
            "This Month",
            "Last Month",
            "Last 30 Days",
            "Last 90 Days",
            "This Year",
            "Last Year",
            "Custom"
        ]
    );
    assert_eq!(RangePreset::default(), RangePreset::Last30Days);
    assert_eq!(Op::Eq.label(), "Is Equal To");
    assert_eq!(Op::Ne.label(), "Is Not Equal To");
    assert_eq!(Op::NotContains.label(), "Does Not Contain");
    for column in Column::ALL {
        assert_eq!(column.as_str().parse::<Column>(), Ok(*column));
    }
}

#[test]
fn presets_in_utc() {
    let now = "2026-05-20T13:45:00Z"; // a Wednesday
    let z = "+00:00";
    let c = |p, from: &str, to: &str| {
        check(
            p,
            "UTC",
            now,
            &format!("{from}T00:00:00{z}"),
            &format!("{to}T00:00:00{z}"),
        )
    };
    c(RangePreset::Today, "2026-05-20", "2026-05-21");
    c(RangePreset::Yesterday, "2026-05-19", "2026-05-20");
    c(RangePreset::ThisWeek, "2026-05-18", "2026-05-25");
    c(RangePreset::ThisMonth, "2026-05-01", "2026-06-01");
    c(RangePreset::LastMonth, "2026-04-01", "2026-05-01");
    c(RangePreset::Last30Days, "2026-04-21", "2026-05-21");
    c(RangePreset::Last90Days, "2026-02-20", "2026-05-21");
    c(RangePreset::ThisYear, "2026-01-01", "2027-01-01");
    c(RangePreset::LastYear, "2025-01-01", "2026-01-01");
    let all = spec(RangePreset::AllTime, "UTC").resolve(ts(now)).unwrap();
    assert_eq!(
        all,
        ResolvedRange {
            start: None,
            end: None
        }
    );
    assert!(all.contains(ts("1970-01-01T00:00:00Z")));
}

#[test]
fn today_on_paris_dst_days_lasts_23_and_25_hours() {
    check(
        RangePreset::Today,
        "Europe/Paris",
        "2026-03-29T12:00:00Z",
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    );
    let spring = spec(RangePreset::Today, "Europe/Paris")
        .resolve(ts("2026-03-29T12:00:00Z"))
        .unwrap();
    assert_eq!(hours(&spring), 23);
    check(
        RangePreset::Today,
        "Europe/Paris",
        "2026-10-25T12:00:00Z",
        "2026-10-25T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    );
    let autumn = spec(RangePreset::Today, "Europe/Paris")
        .resolve(ts("2026-10-25T12:00:00Z"))
        .unwrap();
    assert_eq!(hours(&autumn), 25);
    check(
        RangePreset::Yesterday,
        "Europe/Paris",
        "2026-10-26T08:00:00Z",
        "2026-10-25T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    );
}

#[test]
fn presets_in_new_york_across_dst() {
    // 2026-03-08 and 2026-11-01 are New York's DST days.
    check(
        RangePreset::Today,
        "America/New_York",
        "2026-03-08T15:00:00Z",
        "2026-03-08T00:00:00-05:00",
        "2026-03-09T00:00:00-04:00",
    );
    check(
        RangePreset::ThisMonth,
        "America/New_York",
        "2026-11-15T15:00:00Z",
        "2026-11-01T00:00:00-04:00",
        "2026-12-01T00:00:00-05:00",
    );
    // 03:30 UTC on 1 Nov is still 31 October in New York.
    check(
        RangePreset::Today,
        "America/New_York",
        "2026-11-01T03:30:00Z",
        "2026-10-31T00:00:00-04:00",
        "2026-11-01T00:00:00-04:00",
    );
    check(
        RangePreset::Last30Days,
        "America/New_York",
        "2026-03-20T12:00:00Z",
        "2026-02-19T00:00:00-05:00",
        "2026-03-21T00:00:00-04:00",
    );
}

#[test]
fn zone_where_midnight_is_skipped_starts_the_day_at_the_jump() {
    // Sao Paulo jumped from 00:00 to 01:00 on 2018-11-04.
    check(
        RangePreset::Today,
        "America/Sao_Paulo",
        "2018-11-04T15:00:00Z",
        "2018-11-04T01:00:00-02:00",
        "2018-11-05T00:00:00-02:00",
    );
}

#[test]
fn year_boundary_in_both_directions() {
    // Already 2027 in Paris while UTC is still in 2026.
    let now = "2026-12-31T23:30:00Z";
    check(
        RangePreset::ThisYear,
        "Europe/Paris",
        now,
        "2027-01-01T00:00:00+01:00",
        "2028-01-01T00:00:00+01:00",
    );
    check(
        RangePreset::LastYear,
        "Europe/Paris",
        now,
        "2026-01-01T00:00:00+01:00",
        "2027-01-01T00:00:00+01:00",
    );
    check(
        RangePreset::Yesterday,
        "Europe/Paris",
        now,
        "2026-12-31T00:00:00+01:00",
        "2027-01-01T00:00:00+01:00",
    );
    check(
        RangePreset::ThisYear,
        "UTC",
        now,
        "2026-01-01T00:00:00+00:00",
        "2027-01-01T00:00:00+00:00",
    );
    // Already 2027 in UTC while New York is still in 2026.
    let now = "2027-01-01T00:30:00Z";
    check(
        RangePreset::ThisYear,
        "America/New_York",
        now,
        "2026-01-01T00:00:00-05:00",
        "2027-01-01T00:00:00-05:00",
    );
    check(
        RangePreset::LastMonth,
        "America/New_York",
        now,
        "2026-11-01T00:00:00-04:00",
        "2026-12-01T00:00:00-05:00",
    );
    check(
        RangePreset::ThisYear,
        "UTC",
        now,
        "2027-01-01T00:00:00+00:00",
        "2028-01-01T00:00:00+00:00",
    );
}

#[test]
fn leap_years() {
    check(
        RangePreset::Today,
        "UTC",
        "2028-02-29T10:00:00Z",
        "2028-02-29T00:00:00+00:00",
        "2028-03-01T00:00:00+00:00",
    );
    check(
        RangePreset::LastMonth,
        "UTC",
        "2028-03-31T10:00:00Z",
        "2028-02-01T00:00:00+00:00",
        "2028-03-01T00:00:00+00:00",
    );
    check(
        RangePreset::ThisMonth,
        "UTC",
        "2028-02-10T10:00:00Z",
        "2028-02-01T00:00:00+00:00",
        "2028-03-01T00:00:00+00:00",
    );
    check(
        RangePreset::Last30Days,
        "UTC",
        "2028-03-15T10:00:00Z",
        "2028-02-15T00:00:00+00:00",
        "2028-03-16T00:00:00+00:00",
    );
    check(
        RangePreset::LastYear,
        "UTC",
        "2029-02-28T10:00:00Z",
        "2028-01-01T00:00:00+00:00",
        "2029-01-01T00:00:00+00:00",
    );
}

#[test]
fn this_week_with_monday_and_sunday_starts() {
    let week = |now: &str, week_start| {
        let mut s = spec(RangePreset::ThisWeek, "UTC");
        s.week_start = week_start;
        resolved(&s, now)
    };
    let range = |from: &str, to: &str| {
        (
            format!("{from}T00:00:00+00:00"),
            format!("{to}T00:00:00+00:00"),
        )
    };
    // 2026-05-17 is a Sunday, 2026-05-18 a Monday.
    let sunday = "2026-05-17T12:00:00Z";
    let monday = "2026-05-18T12:00:00Z";
    assert_eq!(
        week(sunday, WeekStart::Monday),
        range("2026-05-11", "2026-05-18")
    );
    assert_eq!(
        week(sunday, WeekStart::Sunday),
        range("2026-05-17", "2026-05-24")
    );
    assert_eq!(
        week(monday, WeekStart::Monday),
        range("2026-05-18", "2026-05-25")
    );
    assert_eq!(
        week(monday, WeekStart::Sunday),
        range("2026-05-17", "2026-05-24")
    );
    // A week spanning Paris' spring change lasts 7 days minus an hour.
    let mut s = spec(RangePreset::ThisWeek, "Europe/Paris");
    s.week_start = WeekStart::Monday;
    let r = s.resolve(ts("2026-03-27T12:00:00Z")).unwrap();
    assert_eq!(hours(&r), 7 * 24 - 1);
}

#[test]
fn last_30_days_is_30_calendar_days_including_today() {
    for (tz, now) in [
        ("UTC", "2026-05-20T23:59:59Z"),
        ("Europe/Paris", "2026-04-10T08:00:00Z"),
        ("America/New_York", "2026-11-20T08:00:00Z"),
    ] {
        let s = spec(RangePreset::Last30Days, tz);
        let r = s.resolve(ts(now)).unwrap();
        let (start, end) = (r.start.unwrap(), r.end.unwrap());
        let first = s.tz.to_datetime(start).date();
        let after = s.tz.to_datetime(end).date();
        assert_eq!(first.until(after).unwrap().get_days(), 30, "{tz}");
        assert!(r.contains(ts(now)));
    }
    let s = spec(RangePreset::Last90Days, "UTC");
    let r = s.resolve(ts("2026-05-20T10:00:00Z")).unwrap();
    assert_eq!(hours(&r), 90 * 24);
}

#[test]
fn custom_with_and_without_to() {
    let q = parse_query(&pairs(&[
        ("range", "custom"),
        ("from", "2026-03-01"),
        ("to", "2026-03-31"),
        ("tz", "Europe/Paris"),
    ]))
    .unwrap();
    assert_eq!(
        resolved(&q.range, "2026-06-01T00:00:00Z"),
        (
            "2026-03-01T00:00:00+01:00".to_owned(),
            "2026-04-01T00:00:00+02:00".to_owned()
        )
    );
    // Without `to`, the range ends with today in the viewer's zone.
    let q = parse_query(&pairs(&[
        ("range", "custom"),
        ("from", "2026-03-01"),
        ("tz", "America/New_York"),
    ]))
    .unwrap();
    assert_eq!(
        resolved(&q.range, "2026-03-10T02:00:00Z"),
        (
            "2026-03-01T00:00:00-05:00".to_owned(),
            "2026-03-10T00:00:00-04:00".to_owned()
        )
    );
    // A single day.
    let q = parse_query(&pairs(&[
        ("range", "custom"),
        ("from", "2026-03-01"),
        ("to", "2026-03-01"),
    ]))
    .unwrap();
    assert_eq!(
        hours(&q.range.resolve(ts("2026-06-01T00:00:00Z")).unwrap()),
        24
    );
    // `from` after today (with `to` defaulted) is an error at resolve time.
    let q = parse_query(&pairs(&[("range", "custom"), ("from", "2026-07-01")])).unwrap();
    let err = q.range.resolve(ts("2026-06-01T00:00:00Z")).unwrap_err();
    assert_eq!(err.param, "from");
    assert!(err.message.contains("after today"), "{err}");
}

#[test]
fn echo_has_the_spec_shape() {
    let q = parse_query(&pairs(&[("tz", "europe/paris")])).unwrap();
    let r = q.range.resolve(ts("2026-11-15T10:00:00Z")).unwrap();
    assert_eq!(
        r.to_json_echo(&q.range),
        serde_json::json!({
            "preset": "last_30_days",
            "from": "2026-10-17T00:00:00+02:00",
            "to": "2026-11-16T00:00:00+01:00",
            "tz": "Europe/Paris",
        })
    );
    let all = spec(RangePreset::AllTime, "UTC");
    let r = all.resolve(ts("2026-11-15T10:00:00Z")).unwrap();
    assert_eq!(
        r.to_json_echo(&all),
        serde_json::json!({"preset": "all_time", "from": null, "to": null, "tz": "UTC"})
    );
}

#[test]
fn skipped_day_gives_an_empty_range_not_an_error() {
    // Pacific/Apia went from 2011-12-29 straight to 2011-12-31.
    let r = spec(RangePreset::Yesterday, "Pacific/Apia")
        .resolve(ts("2011-12-30T12:00:00Z"))
        .unwrap();
    assert_eq!(r.start, r.end);
}

#[test]
fn defaults() {
    let q = parse_query(&[]).unwrap();
    assert_eq!(q, Query::default());
    assert_eq!(q.range.preset, RangePreset::Last30Days);
    assert_eq!(q.range.tz_name, "UTC");
    assert_eq!(q.limit, 50);
    assert_eq!(q.join, Join::And);
    assert_eq!(q.bucket, Bucket::Auto);
    assert_eq!(q.format, ExportFormat::Csv);
}

#[test]
fn full_query_parses() {
    let q = parse_query(&pairs(&[
        ("range", "this_week"),
        ("tz", "America/New_York"),
        ("week_start", "sunday"),
        ("filter", "event:eq:Role created"),
        ("filter", "user:ne:Jane Doe"),
        ("join", "or"),
        ("limit", "1000"),
        ("cursor", "abc"),
        ("bucket", "hour"),
        ("format", "jsonl"),
    ]))
    .unwrap();
    assert_eq!(q.range.preset, RangePreset::ThisWeek);
    assert_eq!(q.range.week_start, WeekStart::Sunday);
    assert_eq!(q.filters.len(), 2);
    assert_eq!(q.join, Join::Or);
    assert_eq!(q.limit, 1000);
    assert_eq!(q.cursor.as_deref(), Some("abc"));
    assert_eq!(q.bucket, Bucket::Hour);
    assert_eq!(q.format, ExportFormat::Jsonl);
}

/// Splits `a=1&b=2` into pairs (no percent-decoding: tests only).
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (pair.to_owned(), String::new()),
        })
        .collect()
}

#[test]
fn every_bad_input_names_its_parameter() {
    // (query string, parameter blamed, part of the message)
    let cases = [
        (
            "fliter=x",
            "fliter",
            "unknown parameter; accepted: range, from",
        ),
        ("range=last_week", "range", "unknown range `last_week`"),
        ("range=", "range", "unknown range"),
        ("range=Today", "range", "unknown range"),
        (
            "week_start=friday",
            "week_start",
            "accepted: monday, sunday",
        ),
        ("join=xor", "join", "unknown join `xor`; accepted: and, or"),
        ("bucket=minute", "bucket", "unknown bucket"),
        ("format=xml", "format", "unknown format"),
        (
            "filter=foo:eq:x",
            "filter",
            "unknown column `foo`; accepted: event, category, user, user_id",
        ),
        ("filter=event:like:x", "filter", "unknown operator `like`"),
        ("filter=event:eq", "filter", "COLUMN:OP:VALUE"),
        ("filter=", "filter", "COLUMN:OP:VALUE"),
        ("filter=event:contains:  ", "filter", "non-empty value"),
        ("filter=event:not_contains:", "filter", "non-empty value"),
        ("from=2026-01-01", "from", "range=custom"),
        ("range=today&to=2026-01-01", "to", "range=custom"),
        ("range=custom", "from", "needs `from`"),
        ("range=custom&to=2026-01-01", "from", "needs `from`"),
        (
            "range=custom&from=2026-02-02&to=2026-02-01",
            "from",
            "after `to`",
        ),
        ("range=custom&from=2026-02-30", "from", "no such day"),
        ("range=custom&from=2027-02-29", "from", "no such day"),
        ("range=custom&from=2026-13-01", "from", "no such month"),
        ("range=custom&from=2026-00-10", "from", "no such month"),
        ("range=custom&from=10000-01-01", "from", "YYYY-MM-DD"),
        ("range=custom&from=2026-1-01", "from", "YYYY-MM-DD"),
        ("range=custom&from=2026-01-01T00:00", "from", "YYYY-MM-DD"),
        ("range=custom&from=２０２６-01-01", "from", "YYYY-MM-DD"),
        (
            "range=custom&from=2026-01-01&to=2026-04-31",
            "to",
            "no such day",
        ),
        ("tz=Mars/Olympus_Mons", "tz", "unknown time zone"),
        ("tz=../../etc/passwd", "tz", "unknown time zone"),
        ("tz=Etc/Unknown", "tz", "unknown time zone"),
        ("tz=", "tz", "unknown time zone"),
        ("limit=0", "limit", "from 1 to 1000"),
        ("limit=1001", "limit", "from 1 to 1000"),
        ("limit=-1", "limit", "from 1 to 1000"),
        ("limit=+5", "limit", "from 1 to 1000"),
        ("limit=ten", "limit", "from 1 to 1000"),
        ("limit=99999999999", "limit", "from 1 to 1000"),
        ("cursor=", "cursor", "empty"),
        ("range=today&range=today", "range", "more than once"),
    ];
    for (query, param, fragment) in cases {
        let err = parse_query(&query_pairs(query)).expect_err(query);
        assert_eq!(err.param, param, "{query}: {err}");
        assert!(err.message.contains(fragment), "{query}: {err}");
        assert!(err.to_string().starts_with(&format!("invalid `{param}`: ")));
    }
}

#[test]
fn error_messages_do_not_echo_huge_input() {
    let huge = "x".repeat(10_000);
    let err = parse_err(&[("range", &huge)]);
    assert!(err.message.len() < 300, "{}", err.message.len());
}

#[test]
fn too_many_filters_or_too_long_values_are_refused() {
    let many: Vec<(String, String)> = (0..=MAX_FILTERS)
        .map(|i| ("filter".to_owned(), format!("event:eq:{i}")))
        .collect();
    assert_eq!(parse_query(&many).unwrap_err().param, "filter");
    let long = format!(
        "description:contains:{}",
        "a".repeat(MAX_FILTER_VALUE_CHARS + 1)
    );
    assert_eq!(Filter::parse(&long).unwrap_err().param, "filter");
}

#[test]
fn filter_splits_at_the_first_two_colons() {
    let f = Filter::parse("description:contains:a:b:c").unwrap();
    assert_eq!(f.column, Column::Description);
    assert_eq!(f.op, Op::Contains);
    assert_eq!(f.value, "a:b:c");
    assert_eq!(f.to_wire(), "description:contains:a:b:c");
    assert_eq!(Filter::parse(&f.to_wire()).unwrap(), f);
    let ip = Filter::parse("ip_address:eq:2001:db8::1").unwrap();
    assert_eq!(ip.value, "2001:db8::1");
    let empty = Filter::parse("workflow_id:eq:").unwrap();
    assert_eq!(empty.value, "");
}

#[test]
fn matching_ignores_case_and_surrounding_white_space() {
    let f = Filter::parse("event:eq:  Role Created ").unwrap();
    assert_eq!(f.needle(), "role created");
    assert!(f.matches(Some("Role created")));
    assert!(f.matches(Some(" ROLE CREATED\t")));
    assert!(!f.matches(Some("Role created!")));
    assert!(!f.matches(None));
    // Unicode case folding, not just ASCII.
    let f = Filter::parse("user:eq:ÉLODIE").unwrap();
    assert!(f.matches(Some("élodie")));
    let f = Filter::parse("description:contains:JANE").unwrap();
    assert!(f.matches(Some("Jane Doe created the role")));
    assert!(!f.matches(None));
}

#[test]
fn negative_operators_keep_absent_fields() {
    assert!(op_matches(Op::Ne, None, "wf_1"));
    assert!(op_matches(Op::NotContains, None, "wf"));
    assert!(!op_matches(Op::Eq, None, "wf_1"));
    assert!(!op_matches(Op::Contains, None, "wf"));
    assert!(!op_matches(Op::Ne, Some(" WF_1 "), "wf_1"));
    assert!(op_matches(Op::Ne, Some("wf_2"), "wf_1"));
    assert!(!op_matches(Op::NotContains, Some("my wf"), "wf"));
    // An empty value tests presence.
    assert!(op_matches(Op::Eq, None, ""));
    assert!(op_matches(Op::Eq, Some("  "), ""));
    assert!(!op_matches(Op::Eq, Some("wf_1"), ""));
    assert!(op_matches(Op::Ne, Some("wf_1"), ""));
    assert!(!op_matches(Op::Ne, None, ""));
}

#[test]
fn matcher_applies_one_join_to_the_whole_set() {
    let filters = [
        Filter::parse("event:eq:Role created").unwrap(),
        Filter::parse("user:eq:jane doe").unwrap(),
    ];
    let row = |column| match column {
        Column::Event => Some("Role created"),
        Column::User => Some("John Roe"),
        _ => None,
    };
    assert!(!Matcher::new(&filters, Join::And).matches(row));
    assert!(Matcher::new(&filters, Join::Or).matches(row));
    assert!(Matcher::new(&[], Join::Or).matches(row));
    assert!(Matcher::new(&[], Join::And).matches(row));
}

fn query(items: &[(&str, &str)]) -> Query {
    parse_query(&pairs(items)).unwrap()
}

static KEY: CursorKey = CursorKey([1; 32]);

#[test]
fn cursor_round_trips() {
    let q = query(&[("filter", "event:eq:Login")]);
    let c = RowKey {
        occurred_at_us: 1_780_000_000_123_456,
        seq: 42,
    };
    let s = q.encode_cursor(&KEY, c, "acme", "");
    assert_eq!(s.len(), 43);
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let mut next = q.clone();
    next.cursor = Some(s.clone());
    assert_eq!(next.decode_cursor(&KEY, "acme", ""), Ok(Some(c)));
    assert_eq!(q.decode_cursor(&KEY, "acme", ""), Ok(None));
    // Another server's key: refused.
    let other = CursorKey::new([2; 32]);
    assert!(next.decode_cursor(&other, "acme", "").is_err());
    // Negative times (before 1970) and extreme values survive too.
    let edge = RowKey {
        occurred_at_us: -1,
        seq: u64::MAX,
    };
    let fp = q.fingerprint("acme", "");
    assert_eq!(
        RowKey::from_cursor(&edge.to_cursor(&KEY, &fp), &KEY, &fp),
        Ok(edge)
    );
}

/// Cursors handed out stay valid across releases: the bytes of a cursor are
/// pinned (computed apart from this code, with Python's `hmac`, from the
/// format `RowKey::to_cursor` documents).
#[test]
fn cursor_wire_format_is_pinned() {
    let fp = [7; 32];
    let key = RowKey {
        occurred_at_us: 1_780_000_000_123_456,
        seq: 42,
    };
    let s = "AAZS5ou1IkAAAAAAAAAAKp4kvrEQRS7UFXpJpwWttDA";
    assert_eq!(key.to_cursor(&KEY, &fp), s);
    assert_eq!(RowKey::from_cursor(s, &KEY, &fp), Ok(key));
    let edge = RowKey {
        occurred_at_us: -1,
        seq: u64::MAX,
    };
    assert_eq!(
        edge.to_cursor(&KEY, &fp),
        "_____________________3IBVUkuFWAwyZ-SQQzC7s0"
    );
}

#[test]
fn cursor_is_refused_elsewhere_and_when_garbled() {
    let q = query(&[("filter", "event:eq:Login")]);
    let c = RowKey {
        occurred_at_us: 1_780_000_000_123_456,
        seq: 42,
    };
    let s = q.encode_cursor(&KEY, c, "acme", "");
    let refused = |q: &Query, account: &str, scope: &str, s: &str| {
        let mut q = q.clone();
        q.cursor = Some(s.to_owned());
        let err = q.decode_cursor(&KEY, account, scope).unwrap_err();
        assert_eq!(err.param, "cursor");
        assert_eq!(
            err.message,
            "cursor was not issued for this account and query"
        );
    };
    refused(&q, "other", "", &s);
    refused(&q, "acme", "wf_1", &s);
    refused(&query(&[("filter", "event:eq:Logout")]), "acme", "", &s);
    refused(&query(&[]), "acme", "", &s);
    refused(
        &query(&[("filter", "event:eq:Login"), ("range", "today")]),
        "acme",
        "",
        &s,
    );
    refused(
        &query(&[("filter", "event:eq:Login"), ("tz", "Europe/Paris")]),
        "acme",
        "",
        &s,
    );
    refused(&q, "acme", "", "garbage");
    refused(&q, "acme", "", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    refused(&q, "acme", "", &format!("{s}AA"));
    refused(&q, "acme", "", &s[..42]);
    refused(&q, "acme", "", "");
    // A forged position: seq edited, tag kept.
    let mut bytes = URL_SAFE_NO_PAD.decode(&s).unwrap();
    bytes[15] ^= 1;
    refused(&q, "acme", "", &URL_SAFE_NO_PAD.encode(&bytes));
}

#[test]
fn fingerprint_ignores_paging_and_equivalent_spellings() {
    let base = query(&[
        ("filter", "event:eq:Login"),
        ("filter", "user:ne:Jane"),
        ("join", "or"),
        ("tz", "Europe/Paris"),
    ]);
    let same = query(&[
        ("tz", "europe/paris"),
        ("filter", "user:ne:  JANE "),
        ("filter", "event:eq:login"),
        ("join", "or"),
        ("limit", "7"),
        ("cursor", "x"),
        ("bucket", "day"),
        ("format", "jsonl"),
    ]);
    assert_eq!(base.fingerprint("acme", ""), same.fingerprint("acme", ""));
    let and = query(&[
        ("filter", "event:eq:Login"),
        ("filter", "user:ne:Jane"),
        ("tz", "Europe/Paris"),
    ]);
    assert_ne!(base.fingerprint("acme", ""), and.fingerprint("acme", ""));
    // With a single filter the join cannot matter.
    assert_eq!(
        query(&[("filter", "event:eq:Login"), ("join", "or")]).fingerprint("a", ""),
        query(&[("filter", "event:eq:Login")]).fingerprint("a", "")
    );
    // Field boundaries are unambiguous.
    assert_ne!(base.fingerprint("ab", "c"), base.fingerprint("a", "bc"));
}

#[test]
fn auto_bucket_is_hour_up_to_two_days() {
    let range = |s: &str, e: &str| ResolvedRange {
        start: Some(ts(s)),
        end: Some(ts(e)),
    };
    let day = range("2026-05-20T00:00:00Z", "2026-05-21T00:00:00Z");
    let two = range("2026-05-20T00:00:00Z", "2026-05-22T00:00:00Z");
    let three = range("2026-05-20T00:00:00Z", "2026-05-23T00:00:00Z");
    assert_eq!(Bucket::Auto.resolve(&day), Bucket::Hour);
    assert_eq!(Bucket::Auto.resolve(&two), Bucket::Hour);
    assert_eq!(Bucket::Auto.resolve(&three), Bucket::Day);
    assert_eq!(Bucket::Hour.resolve(&three), Bucket::Hour);
    assert_eq!(Bucket::Day.resolve(&day), Bucket::Day);
    let all = ResolvedRange {
        start: None,
        end: None,
    };
    assert_eq!(Bucket::Auto.resolve(&all), Bucket::Day);
    // Two Paris days including the 25-hour one are still "two days".
    let mut s = spec(RangePreset::Custom, "Europe/Paris");
    s.from = Some(date(2026, 10, 24));
    s.to = Some(date(2026, 10, 25));
    let r = s.resolve(ts("2026-11-01T00:00:00Z")).unwrap();
    assert_eq!(hours(&r), 49);
    assert_eq!(Bucket::Auto.resolve(&r), Bucket::Hour);
}

/// Regression: one event dated 1970 made the all-time histogram answer
/// 400 ("needs more than 20000 day buckets"); auto now widens the
/// bucket with the span, and every span ingest accepts fits.
#[test]
fn auto_bucket_widens_with_the_span() {
    let range = |s: &str, e: &str| ResolvedRange {
        start: Some(ts(s)),
        end: Some(ts(e)),
    };
    let cases = [
        ("2025-01-01T00:00:00Z", Bucket::Day),
        ("2020-01-01T00:00:00Z", Bucket::Week),
        ("1990-01-01T00:00:00Z", Bucket::Month),
        ("1970-01-01T00:00:00Z", Bucket::Month),
        ("1900-01-01T00:00:00Z", Bucket::Year),
    ];
    for (from, want) in cases {
        let r = range(from, "2026-12-02T00:00:00Z");
        assert_eq!(Bucket::Auto.resolve(&r), want, "{from}");
        let b = bucket_bounds(
            r.start.unwrap(),
            r.end.unwrap(),
            Bucket::Auto,
            &TimeZone::get("America/New_York").unwrap(),
            WeekStart::Monday,
        )
        .unwrap();
        assert!(b.len() <= 1_300, "{from}: {} buckets", b.len());
        assert!(b[0] <= r.start.unwrap() && *b.last().unwrap() >= r.end.unwrap());
    }
}

#[test]
fn week_month_and_year_buckets_follow_the_calendar() {
    let tz = TimeZone::get("Europe/Paris").unwrap();
    let start = ts("2026-03-04T12:00:00Z"); // a Wednesday
    let end = ts("2026-04-02T00:00:00Z");
    let weeks = bucket_bounds(start, end, Bucket::Week, &tz, WeekStart::Monday).unwrap();
    assert_eq!(
        rendered(&weeks[..2], &tz),
        ["2026-03-02T00:00:00+01:00", "2026-03-09T00:00:00+01:00"]
    );
    // The week of the DST change is 167 hours long, and still one bucket.
    assert!(rendered(&weeks, &tz).contains(&"2026-03-30T00:00:00+02:00".to_owned()));
    let sundays = bucket_bounds(start, end, Bucket::Week, &tz, WeekStart::Sunday).unwrap();
    assert_eq!(rendered(&sundays[..1], &tz), ["2026-03-01T00:00:00+01:00"]);
    let months = bucket_bounds(start, end, Bucket::Month, &tz, WeekStart::Monday).unwrap();
    assert_eq!(
        rendered(&months, &tz),
        [
            "2026-03-01T00:00:00+01:00",
            "2026-04-01T00:00:00+02:00",
            "2026-05-01T00:00:00+02:00"
        ]
    );
    let years = bucket_bounds(start, end, Bucket::Year, &tz, WeekStart::Monday).unwrap();
    assert_eq!(
        rendered(&years, &tz),
        ["2026-01-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00"]
    );
}

fn rendered(bounds: &[Timestamp], tz: &TimeZone) -> Vec<String> {
    bounds
        .iter()
        .map(|t| t.display_with_offset(tz.to_offset(*t)).to_string())
        .collect()
}

#[test]
fn day_buckets_over_dst_changes_are_23_and_25_hours() {
    let tz = TimeZone::get("Europe/Paris").unwrap();
    let b = bucket_bounds(
        ts("2026-03-28T10:00:00Z"),
        ts("2026-03-30T12:00:00Z"),
        Bucket::Day,
        &tz,
        WeekStart::Monday,
    )
    .unwrap();
    assert_eq!(
        rendered(&b, &tz),
        [
            "2026-03-28T00:00:00+01:00",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00",
            "2026-03-31T00:00:00+02:00",
        ]
    );
    assert_eq!(b[2].as_second() - b[1].as_second(), 23 * 3600);
    let b = bucket_bounds(
        ts("2026-10-24T22:00:00Z"),
        ts("2026-10-25T23:00:00Z"),
        Bucket::Day,
        &tz,
        WeekStart::Monday,
    )
    .unwrap();
    assert_eq!(
        rendered(&b, &tz),
        ["2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"]
    );
    assert_eq!(b[1].as_second() - b[0].as_second(), 25 * 3600);
}

#[test]
fn hour_buckets_skip_and_repeat_hours_with_the_clock() {
    let tz = TimeZone::get("Europe/Paris").unwrap();
    // Spring: 02:00 does not exist.
    let b = bucket_bounds(
        ts("2026-03-29T00:30:00Z"),
        ts("2026-03-29T02:00:00Z"),
        Bucket::Hour,
        &tz,
        WeekStart::Monday,
    )
    .unwrap();
    assert_eq!(
        rendered(&b, &tz),
        [
            "2026-03-29T01:00:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T04:00:00+02:00",
        ]
    );
    // Autumn: 02:00 happens twice.
    let b = bucket_bounds(
        ts("2026-10-24T23:10:00Z"),
        ts("2026-10-25T02:00:00Z"),
        Bucket::Hour,
        &tz,
        WeekStart::Monday,
    )
    .unwrap();
    assert_eq!(
        rendered(&b, &tz),
        [
            "2026-10-25T01:00:00+02:00",
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ]
    );
    // Starting inside the second 02:00 floors to the second 02:00.
    let b = bucket_bounds(
        ts("2026-10-25T01:30:00Z"),
        ts("2026-10-25T01:45:00Z"),
        Bucket::Hour,
        &tz,
        WeekStart::Monday,
    )
    .unwrap();
    assert_eq!(
        rendered(&b, &tz),
        ["2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]
    );
    // A whole 25-hour day has 25 hour buckets, a 23-hour one 23.
    for (day, n) in [("2026-10-25", 25), ("2026-03-29", 23)] {
        let mut s = spec(RangePreset::Custom, "Europe/Paris");
        let d: Date = day.parse().unwrap();
        s.from = Some(d);
        s.to = Some(d);
        let r = s.resolve(ts("2027-01-01T00:00:00Z")).unwrap();
        let b = bucket_bounds(
            r.start.unwrap(),
            r.end.unwrap(),
            Bucket::Auto,
            &tz,
            WeekStart::Monday,
        )
        .unwrap();
        assert_eq!(b.len(), n + 1, "{day}");
        assert_eq!(b.last(), r.end.as_ref());
    }
}

#[test]
fn hour_buckets_follow_half_hour_zones() {
    let tz = TimeZone::get("Asia/Kolkata").unwrap();
    let b = bucket_bounds(
        ts("2026-05-20T00:00:00Z"),
        ts("2026-05-20T01:00:00Z"),
        Bucket::Hour,
        &tz,
        WeekStart::Monday,
    )
    .unwrap();
    assert_eq!(
        rendered(&b, &tz),
        [
            "2026-05-20T05:00:00+05:30",
            "2026-05-20T06:00:00+05:30",
            "2026-05-20T07:00:00+05:30",
        ]
    );
}

#[test]
fn bucket_bounds_edges() {
    let t = ts("2026-05-20T00:00:00Z");
    assert_eq!(
        bucket_bounds(t, t, Bucket::Day, &TimeZone::UTC, WeekStart::Monday),
        Ok(vec![])
    );
    let far = ts("2026-05-20T00:00:00Z")
        .checked_add(jiff::SignedDuration::from_hours(20_001))
        .unwrap();
    let err = bucket_bounds(t, far, Bucket::Hour, &TimeZone::UTC, WeekStart::Monday).unwrap_err();
    assert_eq!(err.param, "bucket");
    let exactly = ts("2026-05-20T00:00:00Z")
        .checked_add(jiff::SignedDuration::from_hours(20_000))
        .unwrap();
    let b = bucket_bounds(t, exactly, Bucket::Hour, &TimeZone::UTC, WeekStart::Monday).unwrap();
    assert_eq!(b.len(), MAX_BUCKETS + 1);
    // Apia's skipped day has no bucket.
    let apia = TimeZone::get("Pacific/Apia").unwrap();
    let b = bucket_bounds(
        ts("2011-12-29T12:00:00Z"),
        ts("2011-12-30T12:00:00Z"),
        Bucket::Day,
        &apia,
        WeekStart::Monday,
    )
    .unwrap();
    let days: Vec<Date> = b.iter().map(|t| apia.to_datetime(*t).date()).collect();
    assert_eq!(
        days,
        [date(2011, 12, 29), date(2011, 12, 31), date(2012, 1, 1)]
    );
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever a client puts in the query string, parsing answers a
    /// query or an error naming a parameter; it never panics, and a
    /// parsed range resolves or errs without panicking either.
    #[test]
    fn query_parsing_never_panics(
        pairs in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "filter", "join", "range", "from", "to", "tz", "week_start",
                    "limit", "cursor", "bucket", "format", "other",
                ]),
                prop_oneof![
                    "[a-z_:]{0,24}",
                    "(event|category|user|user_id|ip_address|workflow_id|level|description|x):(eq|ne|contains|not_contains|x):.{0,12}",
                    "[0-9-]{0,12}",
                    "(all_time|today|custom|last_30_days|this_week)",
                    "(UTC|Europe/Paris|Etc/GMT\\+12|../etc|\\PC{0,8})",
                    "\\PC{0,40}",
                ],
            ),
            0..8,
        ),
        secs in 0i64..4_102_444_800,
    ) {
        let pairs: Vec<(String, String)> =
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        if let Ok(q) = parse_query(&pairs) {
            let now = Timestamp::from_second(secs).unwrap();
            if let Ok(r) = q.range.resolve(now)
                && let (Some(start), Some(end)) = (r.start, r.end)
            {
                let _ = bucket_bounds(start, end, q.bucket, &q.range.tz, q.range.week_start);
            }
        }
    }

    #[test]
    fn resolve_gives_start_before_end(
        secs in 0i64..4_102_444_800,
        zone in 0..ZONES.len(),
        preset in 0..RangePreset::ALL.len(),
        back in 0i32..400,
        sunday in any::<bool>(),
    ) {
        let now = Timestamp::from_second(secs).unwrap();
        let mut s = spec(RangePreset::ALL[preset], ZONES[zone]);
        s.week_start = if sunday { WeekStart::Sunday } else { WeekStart::Monday };
        if s.preset == RangePreset::Custom {
            let today = now.to_zoned_datetime(s.tz.clone()).date();
            s.from = Some(today.checked_sub(back.days()).unwrap());
        }
        let r = s.resolve(now).unwrap();
        match (r.start, r.end) {
            (None, None) => prop_assert_eq!(s.preset, RangePreset::AllTime),
            (Some(start), Some(end)) => {
                prop_assert!(start < end);
                // Every preset except the past ones contains `now`.
                if !matches!(
                    s.preset,
                    RangePreset::Yesterday | RangePreset::LastMonth | RangePreset::LastYear
                ) {
                    prop_assert!(r.contains(now));
                } else {
                    prop_assert!(end <= now);
                }
            }
            _ => prop_assert!(false, "half-bounded range"),
        }
    }

    #[test]
    fn bucket_bounds_are_ascending_and_cover_the_range(
        secs in 0i64..4_102_444_800,
        span in 1i64..(5 * 86_400),
        zone in 0..ZONES.len(),
        hourly in any::<bool>(),
    ) {
        let tz = TimeZone::get(ZONES[zone]).unwrap();
        let start = Timestamp::from_second(secs).unwrap();
        let end = Timestamp::from_second(secs + span).unwrap();
        let bucket = if hourly { Bucket::Hour } else { Bucket::Day };
        let b = bucket_bounds(start, end, bucket, &tz, WeekStart::Monday).unwrap();
        prop_assert!(b.len() >= 2);
        prop_assert!(b[0] <= start);
        prop_assert!(*b.last().unwrap() >= end);
        prop_assert!(b[b.len() - 2] < end);
        for w in b.windows(2) {
            prop_assert!(w[0] < w[1]);
            let len = w[1].as_second() - w[0].as_second();
            if hourly {
                prop_assert!(len <= 2 * 3600, "hour bucket of {}s", len);
            } else {
                prop_assert!((22 * 3600..=26 * 3600).contains(&len), "day bucket of {}s", len);
            }
        }
        if !hourly {
            for t in &b {
                // Day buckets start on a day's first instant.
                let dt = tz.to_datetime(*t);
                let before = tz.to_datetime(t.checked_sub(jiff::SignedDuration::from_secs(1)).unwrap());
                prop_assert!(before.date() < dt.date());
            }
        }
    }
}
