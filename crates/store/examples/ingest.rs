//! Profiles the ingest path below HTTP: JSON parse + validation, then
//! `Store::append` in batches. `cargo run --release -p auditlog-store
//! --example ingest -- 200000`.

use std::sync::Arc;
use std::time::Instant;

use auditlog_core::catalog::Catalog;
use auditlog_core::record::{AccountId, Micros};
use auditlog_core::validate::{IngestContext, validate_event};
use auditlog_store::Store;
use auditlog_store::sqlite::{SqliteOptions, SqliteStore};

// The binary's allocator, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let bodies: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            serde_json::to_vec(&serde_json::json!({
                "level": "account", "category": "Login/Logout", "event": "Login",
                "occurred_at": Micros(1_760_000_000_000_000 + i as i64 * 1000).to_rfc3339(),
                "actor": {"kind": "user", "id": format!("u_{}", i % 2000), "name": format!("User {}", i % 2000), "email": format!("u{}@example.com", i % 2000)},
                "ip_address": "203.0.113.7",
                "description": format!("User {} signed in with SSO from the office network, session {i} started on the web console", i % 2000),
                "metadata": {"login_method": "sso", "session": format!("s_{i}"), "agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/130"}
            }))
            .unwrap()
        })
        .collect();
    let catalog = Catalog::get();
    let redactor = auditlog_core::redact::Redactor::new([1; 32]);
    let ctx = IngestContext {
        now: Micros(1_770_000_000_000_000),
        client_ip: None,
        redactor: &redactor,
    };
    let t = Instant::now();
    let parsed: Vec<serde_json::Value> = bodies
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    println!(
        "parse alone: {:.0} events/s",
        n as f64 / t.elapsed().as_secs_f64()
    );
    drop(parsed);
    let t = Instant::now();
    let mut events = Vec::with_capacity(n);
    for b in &bodies {
        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
        let mut errors = auditlog_core::validate::Problems::new();
        events.push(validate_event(catalog, v, "", &ctx, &mut errors).unwrap());
    }
    let parse = t.elapsed();
    println!(
        "parse+validate: {:.0} events/s",
        n as f64 / parse.as_secs_f64()
    );

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let account = AccountId::parse("acme").unwrap();
    let mut batches = Vec::new();
    let mut it = events.into_iter().peekable();
    while it.peek().is_some() {
        batches.push(it.by_ref().take(1000).collect::<Vec<_>>());
    }
    let t = Instant::now();
    // Two concurrent producers, as two HTTP workers would be.
    let mut handles = Vec::new();
    let per = batches.len().div_ceil(2);
    let mut it = batches.into_iter();
    for _ in 0..2 {
        let mine: Vec<_> = it.by_ref().take(per).collect();
        let store = store.clone();
        let account = account.clone();
        handles.push(tokio::spawn(async move {
            for b in mine {
                store.append(&account, b).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let append = t.elapsed();
    println!(
        "append (batches of 1000): {:.0} events/s",
        n as f64 / append.as_secs_f64()
    );

    // Single events from 64 concurrent producers: group commit at work.
    let singles: Vec<_> = (0..20_000)
        .map(|i| {
            let v: serde_json::Value = serde_json::from_slice(&bodies[i % bodies.len()]).unwrap();
            let mut errors = auditlog_core::validate::Problems::new();
            validate_event(catalog, v, "", &ctx, &mut errors).unwrap()
        })
        .collect();
    let t = Instant::now();
    let mut handles = Vec::new();
    let mut it = singles.into_iter();
    for _ in 0..64 {
        let mine: Vec<_> = it.by_ref().take(20_000 / 64 + 1).collect();
        let store = store.clone();
        let account = account.clone();
        handles.push(tokio::spawn(async move {
            for e in mine {
                store.append(&account, vec![e]).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    println!(
        "append (single events, 64 producers): {:.0} events/s",
        20_000.0 / t.elapsed().as_secs_f64()
    );
    let size: u64 = store.size_bytes().await.unwrap();
    println!("bytes on disk per event: {:.0}", size as f64 / n as f64);
}
