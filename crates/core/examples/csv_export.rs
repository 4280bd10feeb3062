//! Measures the CSV encoder of exports against the encoder it replaced
//! (a `serde_json` view, `format!` for the time, the `csv` crate), in the
//! same run on the same records: `cargo run --release -p auditlog-core
//! --example csv_export -- 200000`. Prints medians of alternating runs and
//! checks that both write the same bytes.

use std::borrow::Cow;
use std::time::Instant;

use auditlog_core::catalog::Catalog;
use auditlog_core::export::{CSV_HEADER, CsvEncoder, format_in_zone, guard_formula};
use auditlog_core::record::{Actor, ActorKind, Micros, RecordBody};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The old encoder, as it was.
#[derive(serde::Deserialize)]
struct CsvView<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    category: Cow<'a, str>,
    occurred_at: Micros,
    #[serde(borrow)]
    actor: ActorView<'a>,
    #[serde(borrow)]
    ip_address: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Cow<'a, str>,
}

#[derive(serde::Deserialize)]
struct ActorView<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

/// Encodes every batch; returns the bytes when `keep`, else drops them.
fn old_encode(batches: &[Vec<String>], tz: &jiff::tz::TimeZone, keep: bool) -> Vec<u8> {
    let writer = || {
        csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(Vec::with_capacity(64 * 1024))
    };
    let mut w = writer();
    let _ = w.write_record(CSV_HEADER);
    let mut all = Vec::new();
    for batch in batches {
        for c in batch {
            let r: CsvView<'_> = serde_json::from_str(c).expect("canonical");
            let user = r.actor.name.as_deref().unwrap_or(&r.actor.id);
            let when = format_in_zone(r.occurred_at, tz);
            let row = [
                guard_formula(&when),
                guard_formula(&r.event),
                guard_formula(&r.category),
                guard_formula(&r.description),
                guard_formula(user),
                guard_formula(r.ip_address.as_deref().unwrap_or("")),
            ];
            let _ = w.write_record(row.iter().map(|c| c.as_bytes()));
        }
        let bytes = std::mem::replace(&mut w, writer())
            .into_inner()
            .unwrap_or_default();
        if keep {
            all.extend_from_slice(&bytes);
        }
        std::hint::black_box(bytes);
    }
    all
}

fn new_encode(batches: &[Vec<String>], tz: &jiff::tz::TimeZone, keep: bool) -> Vec<u8> {
    let mut enc = CsvEncoder::new(tz.clone());
    let mut all = Vec::new();
    for batch in batches {
        for c in batch {
            enc.push_canonical(c.as_bytes()).expect("canonical");
        }
        let bytes = enc.take();
        if keep {
            all.extend_from_slice(&bytes);
        }
        std::hint::black_box(bytes);
    }
    all
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let catalog = Catalog::get();
    let entries: Vec<_> = catalog.entries().collect();
    let mut x: u64 = 42;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Newest first, a few per second, like an export of a busy log.
    let newest = Micros::parse_rfc3339("2026-11-25T10:00:00Z")
        .expect("valid")
        .0;
    let records: Vec<String> = (0..n)
        .map(|i| {
            let e = &entries[(next() % entries.len() as u64) as usize];
            let user = next() % 2000;
            let t = Micros(newest - (i as i64) * 250_000 - (next() % 1000) as i64 * 1000);
            let mut metadata = std::collections::BTreeMap::new();
            metadata.insert(
                "role_id".to_owned(),
                format!("role_{}", next() % 500).into(),
            );
            metadata.insert(
                "resource".to_owned(),
                format!("/v1/things/{}", next()).into(),
            );
            metadata.insert("attempt".to_owned(), (next() % 5).into());
            let body = RecordBody {
                id: format!("01JDX3Q6Z0M3A5V4S2R{:07}", i),
                seq: (n - i) as u64,
                account_id: "acme".into(),
                level: e.level,
                category: e.category.to_owned(),
                event: e.event.name.to_owned(),
                occurred_at: t,
                recorded_at: t,
                actor: Actor {
                    kind: ActorKind::User,
                    id: format!("usr_{user:06}"),
                    name: Some(format!("User Number {user}")),
                    email: Some(format!("user{user}@example.com")),
                },
                ip_address: Some(format!(
                    "10.{}.{}.{}",
                    next() % 256,
                    next() % 256,
                    next() % 256
                )),
                workflow_id: None,
                description: format!(
                    "User Number {user} did {} on resource {} from the dashboard",
                    e.event.name,
                    next() % 100_000
                ),
                metadata,
            };
            String::from_utf8(body.canonical_bytes()).expect("utf-8")
        })
        .collect();
    let batches: Vec<Vec<String>> = records.chunks(1000).map(|c| c.to_vec()).collect();
    let avg = records.iter().map(String::len).sum::<usize>() / n;
    for zone in ["Europe/Paris", "UTC"] {
        let tz = jiff::tz::TimeZone::get(zone).expect("zone");
        assert!(
            old_encode(&batches, &tz, true) == new_encode(&batches, &tz, true),
            "the encoders disagree"
        );
        let (mut olds, mut news) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            let t = Instant::now();
            std::hint::black_box(old_encode(&batches, &tz, false));
            olds.push(n as f64 / t.elapsed().as_secs_f64());
            let t = Instant::now();
            std::hint::black_box(new_encode(&batches, &tz, false));
            news.push(n as f64 / t.elapsed().as_secs_f64());
        }
        let (o, nw) = (median(olds), median(news));
        println!(
            "{zone}: {n} records of {avg} bytes, one thread: old {:.0} rows/s, new {:.0} rows/s, {:.2}x",
            o,
            nw,
            nw / o
        );
    }
}
