//! Measures what the wake-ups on appends (`PgOptions::wake_on_appends`)
//! save a read: two stores on one database, A appends a batch to an
//! account, and after a pause B counts the account (the first read after
//! the batch, which without wake-ups catches up on it). Alternates rounds
//! with B's wake-ups off and on, each on a fresh database; prints the
//! medians and 90th percentiles of B's read.
//!
//! ```sh
//! eval "$(bash scripts/postgres.sh)"
//! cargo run --release -p auditlog-store --example pg_wake_latency -- [batch] [reads] [pause_ms] [rounds]
//! ```

mod common;

use std::time::{Duration, Instant};

use auditlog_core::index::{Scope, TimeBounds};
use auditlog_core::query::Join;
use auditlog_core::record::AccountId;
use auditlog_store::postgres::{PgOptions, PostgresStore};
use auditlog_store::{QueryControl, Selection, Store};
use common::{admin, event};

fn round(server: &str, wake: bool, batch: usize, reads: usize, pause: Duration) -> Vec<f64> {
    let name = format!("auditlog_bench_{:08x}", rand::random::<u32>());
    admin(server, &format!("CREATE DATABASE {name}"));
    let url = format!("{}/{name}", &server[..server.rfind('/').unwrap()]);
    let a = PostgresStore::open(&url, PgOptions::default()).unwrap();
    let opts = PgOptions {
        wake_on_appends: wake,
        ..PgOptions::default()
    };
    let b = PostgresStore::open(&url, opts).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let account = AccountId::parse("acme").unwrap();
    let sel = Selection {
        scope: Scope::Account,
        bounds: TimeBounds::ALL,
        filters: Vec::new(),
        join: Join::And,
        control: QueryControl::default(),
    };
    let mut out = Vec::with_capacity(reads);
    rt.block_on(async {
        let mut n = 0;
        for i in 0..=reads {
            let events = (n..n + batch).map(event).collect();
            a.append(&account, events).await.unwrap();
            n += batch;
            tokio::time::sleep(pause).await;
            let start = Instant::now();
            let count = b.count(&account, &sel).await.unwrap();
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(count, n as u64);
            // The first read opens the account: not what is measured.
            if i > 0 {
                out.push(ms);
            }
        }
    });
    drop((a, b));
    drop(rt);
    admin(server, &format!("DROP DATABASE {name} WITH (FORCE)"));
    out
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let server = std::env::var("AUDITLOG_TEST_DATABASE_URL")
        .expect("set AUDITLOG_TEST_DATABASE_URL (scripts/postgres.sh)");
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let batch = args.first().copied().unwrap_or(500) as usize;
    let reads = args.get(1).copied().unwrap_or(200) as usize;
    let pause = Duration::from_millis(args.get(2).copied().unwrap_or(50));
    let rounds = args.get(3).copied().unwrap_or(3);
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        // Alternated, the first of each pair switching, so drift in the
        // machine's load falls on both.
        let order = if r % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for wake in order {
            let mut ms = round(&server, wake, batch, reads, pause);
            println!(
                "round {r} wake-ups {}: median {:.2} ms, p90 {:.2} ms",
                if wake { "on" } else { "off" },
                quantile(&mut ms, 0.5),
                quantile(&mut ms, 0.9)
            );
            if wake {
                on.extend(ms);
            } else {
                off.extend(ms);
            }
        }
    }
    let (m_off, m_on) = (quantile(&mut off, 0.5), quantile(&mut on, 0.5));
    println!(
        "first read on B after a batch of {batch} on A, {pause:?} later: \
         median {m_off:.2} ms without wake-ups, {m_on:.2} ms with (p90 {:.2} / {:.2} ms); \
         ratio {:.2}",
        quantile(&mut off, 0.9),
        quantile(&mut on, 0.9),
        m_off / m_on
    );
}
