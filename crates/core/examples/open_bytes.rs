//! Checks `LogIndex::open_bytes` (the estimate the store bounds open
//! accounts by) against what indexes really take: `cargo run --release -p
//! auditlog-core --example open_bytes`. Each shape builds `copies` indexes
//! (so that the process's resident memory, read from `/proc/self/status`,
//! measures them rather than the allocator's noise) and prints, per index,
//! the resident growth, the estimate and their ratio.

use auditlog_core::catalog::Catalog;
use auditlog_core::index::{IndexLimits, IndexRow, LogIndex};

/// Resident memory of this process now (`VmRSS`), in bytes.
fn rss() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    let kb: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

/// Builds `copies` indexes of `n` rows over `days` days with `users`
/// distinct actors and addresses each, and prints what one took against
/// its estimate.
fn shape(name: &str, copies: usize, n: usize, days: i64, users: usize, id_len: usize) {
    let names: Vec<String> = (0..users)
        .map(|i| format!("{i:08}{}", "u".repeat(id_len.saturating_sub(8))))
        .collect();
    let ips: Vec<String> = (0..users)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    let before = rss();
    let held: Vec<LogIndex> = (0..copies)
        .map(|c| build(c, n, days, &names, &ips))
        .collect();
    let real = (rss() - before) / copies as i64;
    let estimate = held[0].open_bytes();
    println!(
        "{name}: {n} rows, {days} days, {users} actors: resident {} KiB, estimated {} KiB ({:.2}×)",
        real >> 10,
        estimate >> 10,
        estimate as f64 / real as f64
    );
    // Kept: memory they freed would be reused by the next shape's
    // indexes, and the resident growth would not show them.
    std::mem::forget(held);
}

/// One index (values of copy `c` distinct from the other copies').
fn build(c: usize, n: usize, days: i64, names: &[String], ips: &[String]) -> LogIndex {
    let ids: Vec<_> = Catalog::get().entries().map(|e| e.id).take(12).collect();
    let users = names.len();
    let names: Vec<String> = names.iter().map(|s| format!("{c:04}{s}")).collect();
    let idx = LogIndex::new(IndexLimits::DEFAULT);
    let span = days * 86_400_000_000;
    let mut x: u64 = 7;
    for part in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let rows: Vec<(i64, usize, usize)> = part
            .iter()
            .map(|&i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let t = 1_700_000_000_000_000 + i as i64 * (span / n as i64);
                (
                    t,
                    (x % ids.len() as u64) as usize,
                    (x >> 20) as usize % users,
                )
            })
            .collect();
        idx.append(rows.iter().map(|&(t, e, u)| IndexRow {
            occurred_at_us: t,
            event: ids[e],
            actor_id: &names[u],
            actor_name: None,
            ip_address: Some(&ips[u]),
            workflow_id: None,
        }));
    }
    idx
}

fn main() {
    shape("one row", 20_000, 1, 1, 1, 8);
    shape("small account", 2_000, 200, 30, 20, 16);
    shape("distinct actors", 200, 1_000, 1, 1_000, 64);
    shape("tail", 100, 60_000, 30, 500, 16);
    shape("rollups", 4, 1_000_000, 400, 2_000, 16);
}
