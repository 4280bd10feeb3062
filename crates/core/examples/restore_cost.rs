//! What opening a big account costs as its log grows, without a store of
//! that size: `cargo run --release -p auditlog-core --example restore_cost
//! -- 10000000 100000000`. For each size it fills a paged index with rows
//! shaped like the bench's big account (400 days, 2,000 users with one
//! writing a fifth of the log, 40 events, one address per user), keeps
//! only the segments' summaries (what an open reads), then restores an
//! index from them five times and prints the median time, the summaries'
//! bytes and the restored index's estimated memory. The store's open adds
//! reading those bytes and the rows after the last segment.

use std::time::Instant;

use auditlog_core::catalog::Catalog;
use auditlog_core::index::{IndexLimits, IndexRow, LogIndex, SegmentCache, SegmentSource};

/// Keeps nothing but what the restore asks for: no columns (the example
/// never queries), no rows (every chunk is sealed).
struct Summaries;

impl SegmentSource for Summaries {
    fn columns(&self, _no: u32) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
    fn rows(
        &self,
        _from: u64,
        _to: u64,
        _visit: &mut dyn FnMut(IndexRow<'_>),
    ) -> Result<(), String> {
        Ok(())
    }
    fn repaired(&self, _no: u32, _why: &str, _columns: Vec<u8>) {}
}

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number of rows"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000_000]
    } else {
        sizes
    };
    for n in sizes {
        measure(n);
    }
}

fn measure(n: u64) {
    let ids: Vec<_> = Catalog::get().entries().map(|e| e.id).take(40).collect();
    let users: Vec<String> = (0..2_000)
        .map(|i| format!("user-{i:05}@example.com"))
        .collect();
    let ips: Vec<String> = (0..2_000)
        .map(|i| format!("10.0.{}.{}", i >> 8, i & 255))
        .collect();
    let limits = IndexLimits::DEFAULT;
    let idx = LogIndex::paged(limits, SegmentCache::new(0), Box::new(Summaries));
    let mut summaries: Vec<(u32, Vec<u8>)> = Vec::new();
    let span: i64 = 400 * 86_400_000_000;
    let start: i64 = 1_760_000_000_000_000;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let built = Instant::now();
    let mut i = 0u64;
    while i < n {
        let part = (n - i).min(10_000);
        let rows: Vec<(i64, usize, usize)> = (i..i + part)
            .map(|k| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let t = start + (k as i128 * span as i128 / n as i128) as i64;
                // A fifth by one service account, the rest spread.
                let user = if x.is_multiple_of(5) {
                    0
                } else {
                    (x >> 8) as usize % users.len()
                };
                (t, (x >> 32) as usize % ids.len(), user)
            })
            .collect();
        idx.append(rows.iter().map(|&(t, e, u)| IndexRow {
            occurred_at_us: t,
            event: ids[e],
            actor_id: &users[u],
            actor_name: None,
            ip_address: Some(&ips[u]),
            workflow_id: None,
        }));
        let sealed = idx.unsealed();
        summaries.extend(sealed.iter().map(|s| (s.no, s.summary.clone())));
        idx.mark_sealed(sealed);
        i += part;
    }
    let bytes: usize = summaries.iter().map(|(_, s)| s.len()).sum();
    drop(idx);
    eprintln!(
        "{n} rows: built in {:.1} s; restoring",
        built.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    let mut open_bytes = 0;
    for _ in 0..5 {
        let input = summaries.clone();
        let t = Instant::now();
        let restored = LogIndex::restore(limits, SegmentCache::new(0), Box::new(Summaries), input);
        times.push(t.elapsed().as_secs_f64());
        assert_eq!(restored.problem, None);
        open_bytes = restored.index.open_bytes();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{n} rows: {} segments, summaries {:.1} MB ({} B each), restore median {:.3} s (min {:.3}, max {:.3}), restored index ~{:.1} MiB",
        summaries.len(),
        bytes as f64 / 1e6,
        bytes / summaries.len().max(1),
        times[2],
        times[0],
        times[4],
        open_bytes as f64 / (1 << 20) as f64
    );
}
