//! Measures how the PostgreSQL writer should send a group's rows: binary
//! `COPY` or one `INSERT … SELECT FROM unnest(arrays)` (see
//! `postgres::BatchWrite`). Each round opens a store on a fresh database
//! and ingests the same events through the whole store (group commit,
//! canonical JSON, tree), alternating the two ways; prints each round's
//! rate and the medians.
//!
//! ```sh
//! eval "$(bash scripts/postgres.sh)"
//! cargo run --release -p auditlog-store --example pg_batch_write -- [events] [batch] [rounds]
//! ```

mod common;

use std::sync::Arc;
use std::time::Instant;

use auditlog_core::record::AccountId;
use auditlog_store::Store;
use auditlog_store::postgres::{BatchWrite, PgOptions, PostgresStore};
use common::{admin, event};

fn round(server: &str, mode: BatchWrite, n: usize, batch: usize) -> f64 {
    let name = format!("auditlog_bench_{:08x}", rand::random::<u32>());
    admin(server, &format!("CREATE DATABASE {name}"));
    let url = format!("{}/{name}", &server[..server.rfind('/').unwrap()]);
    let store = Arc::new(
        PostgresStore::open(
            &url,
            PgOptions {
                batch_write: mode,
                ..PgOptions::default()
            },
        )
        .unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let clients = 8;
    let per_client = n / clients;
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let store = store.clone();
                tokio::spawn(async move {
                    let account = AccountId::parse(&format!("acct{}", c % 4)).unwrap();
                    for b in (0..per_client).step_by(batch) {
                        let events = (b..(b + batch).min(per_client))
                            .map(|i| event(c * per_client + i))
                            .collect();
                        store.append(&account, events).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let rate = (per_client * clients) as f64 / start.elapsed().as_secs_f64();
    drop(store);
    drop(rt);
    admin(server, &format!("DROP DATABASE {name} WITH (FORCE)"));
    rate
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let server = std::env::var("AUDITLOG_TEST_DATABASE_URL")
        .expect("set AUDITLOG_TEST_DATABASE_URL (scripts/postgres.sh)");
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let n = args.first().copied().unwrap_or(200_000);
    let batch = args.get(1).copied().unwrap_or(500);
    let rounds = args.get(2).copied().unwrap_or(3);
    let (mut copy, mut insert) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        // Alternated, the first of each pair switching, so drift in the
        // machine's load falls on both.
        let order = if r % 2 == 0 {
            [BatchWrite::Copy, BatchWrite::Insert]
        } else {
            [BatchWrite::Insert, BatchWrite::Copy]
        };
        for mode in order {
            let rate = round(&server, mode, n, batch);
            println!("round {r} {mode:?}: {rate:.0} events/s");
            match mode {
                BatchWrite::Copy => copy.push(rate),
                BatchWrite::Insert => insert.push(rate),
            }
        }
    }
    let (c, i) = (median(copy), median(insert));
    println!(
        "median of {rounds}: COPY {c:.0} events/s, INSERT {i:.0} events/s, COPY/INSERT {:.2}",
        c / i
    );
}
