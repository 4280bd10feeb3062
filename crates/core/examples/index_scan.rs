//! Measures column-index scans at a given size, including the heavy-hitter
//! shapes of issue 13: `cargo run --release -p
//! auditlog-core --example index_scan -- 10000000`. Prints medians.

use std::time::Instant;

use auditlog_core::catalog::Catalog;
use auditlog_core::index::{IndexRow, LogIndex, Scope, TimeBounds};
use auditlog_core::query::{Filter, Join};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let catalog = Catalog::get();
    let ids: Vec<_> = catalog.entries().map(|e| e.id).collect();
    // User 0 is a service account writing a fifth of the log from the
    // office's address, which also carries a quarter of everyone else's
    // events; one workflow takes half of the workflow events (issue 13's
    // heavy hitters, as the bench's dataset has them).
    let users: Vec<String> = (0..2000).map(|i| format!("user {i}")).collect();
    let ips: Vec<String> = (0..2000)
        .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
        .collect();
    let workflows: Vec<String> = (0..40).map(|i| format!("wf_{i:03}")).collect();
    let idx = LogIndex::default();
    let day = 86_400_000_000i64;
    let start = 1_699_920_000_000_000i64; // a UTC midnight
    let t0 = Instant::now();
    let mut x: u64 = 42;
    let mut rows = Vec::with_capacity(10_000);
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ev = if x % 10 < 7 {
            ids[0]
        } else {
            ids[(x % ids.len() as u64) as usize]
        };
        let t = start + (i as i64) * (400 * day / n as i64);
        let r = (x >> 20) % 100;
        let u = if r < 20 {
            0
        } else {
            1 + (x >> 32) as usize % (users.len() - 1)
        };
        let ip = if r < 20 || (x >> 44).is_multiple_of(4) {
            0
        } else {
            u
        };
        let wf = match (x >> 48) % 10 {
            0 => Some(0),
            1 => Some(1 + (x >> 52) as usize % 39),
            _ => None,
        };
        rows.push((t, ev, u, ip, wf));
        if rows.len() == 10_000 || i + 1 == n {
            idx.append(rows.iter().map(|&(t, ev, u, ip, wf)| IndexRow {
                occurred_at_us: t,
                event: ev,
                actor_id: &users[u],
                actor_name: Some(&users[u]),
                ip_address: Some(&ips[ip]),
                workflow_id: wf.map(|w| workflows[w].as_str()),
            }));
            rows.clear();
        }
    }
    println!("built {n} rows in {:.2?}", t0.elapsed());
    let end = start + 400 * day;
    let ranges = [
        ("all_time", TimeBounds::ALL),
        (
            "last_30_days",
            TimeBounds {
                start: Some(end - 30 * day),
                end: Some(end),
            },
        ),
    ];
    let f = |s: &str| Filter::parse(s).unwrap();
    let shapes: Vec<(&str, Vec<Filter>, Join)> = vec![
        ("user=heavy", vec![f("user:eq:user 0")], Join::And),
        ("user!=heavy", vec![f("user:ne:user 0")], Join::And),
        ("ip=heavy", vec![f("ip_address:eq:10.0.0.0")], Join::And),
        ("ip=rare", vec![f("ip_address:eq:10.0.3.7")], Join::And),
        (
            "event=rare OR user=heavy",
            vec![f("event:eq:Role created"), f("user:eq:user 0")],
            Join::Or,
        ),
        (
            "user=heavy AND event=Login",
            vec![f("user:eq:user 0"), f("event:eq:Login")],
            Join::And,
        ),
        (
            "ip=heavy AND user!=heavy",
            vec![f("ip_address:eq:10.0.0.0"), f("user:ne:user 0")],
            Join::And,
        ),
        (
            "workflow=heavy",
            vec![f("workflow_id:eq:wf_000")],
            Join::And,
        ),
        ("none", vec![], Join::And),
        (
            "event=rare",
            vec![Filter::parse("event:eq:Role created").unwrap()],
            Join::And,
        ),
        (
            "category!=common",
            vec![Filter::parse("category:ne:Login/Logout").unwrap()],
            Join::And,
        ),
        (
            "event=X OR user=Y",
            vec![
                Filter::parse("event:eq:Role created").unwrap(),
                Filter::parse("user:eq:user 7").unwrap(),
            ],
            Join::Or,
        ),
        (
            "event!=A AND category!=B",
            vec![
                Filter::parse("event:ne:Login").unwrap(),
                Filter::parse("category:ne:Prompts").unwrap(),
            ],
            Join::And,
        ),
    ];
    for (rname, bounds) in ranges {
        let lo = bounds.start.unwrap_or(start);
        let hi = bounds.end.unwrap_or(end);
        let edges: Vec<i64> = (0..=((hi - lo) / day)).map(|d| lo + d * day).collect();
        for (sname, filters, join) in &shapes {
            let mut times = [Vec::new(), Vec::new(), Vec::new()];
            for _ in 0..7 {
                let plan = idx.plan(filters, *join, &Scope::Account);
                let t = Instant::now();
                std::hint::black_box(idx.count(&plan, bounds, &mut |_| true));
                times[0].push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                std::hint::black_box(idx.histogram(&plan, bounds, &edges, &mut |_| true));
                times[1].push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                std::hint::black_box(plan.page(bounds, None, 50, &mut |_| true));
                times[2].push(t.elapsed().as_secs_f64() * 1e3);
            }
            let [c, h, p] = times.map(median);
            println!(
                "{rname:>13} {sname:<26} count {c:7.2} ms  histogram {h:7.2} ms  page {p:7.2} ms  sum {:7.2} ms",
                c + h + p
            );
        }
    }
    // The export's walk of every row against paging through them 1,000 at
    // a time (what exports did before), same plan, same run.
    let plan = idx.plan(&[], Join::And, &Scope::Account);
    let t = Instant::now();
    let (mut keys, mut walked) = (Vec::new(), 0usize);
    let mut walk = plan.export_keys(TimeBounds::ALL);
    while walk.next_batch(&mut |_| true, &mut keys) {
        walked += keys.len();
    }
    let walk_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (mut after, mut paged) = (None, 0usize);
    loop {
        let (rows, more) = plan.page(TimeBounds::ALL, after, 1000, &mut |_| true);
        paged += rows.len();
        match (more, rows.last()) {
            (true, Some(&last)) => after = Some(last),
            _ => break,
        }
    }
    let page_secs = t.elapsed().as_secs_f64();
    assert_eq!(walked, paged);
    println!(
        "export keys of {walked} rows: walk {:.0} ms ({:.1} M rows/s), 1,000-row pages {:.0} ms ({:.2} M rows/s): {:.0}x",
        walk_secs * 1e3,
        walked as f64 / walk_secs / 1e6,
        page_secs * 1e3,
        paged as f64 / page_secs / 1e6,
        page_secs / walk_secs
    );
}
