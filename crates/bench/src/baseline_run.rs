//! The baseline side of a run: the same rows into one plain SQLite table,
//! in this process, with the same loads, queries and export.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::baseline::{self, Baseline, BaselineRow};
use crate::client::{self, Throughput};
use crate::dataset::{self, MAIN_ACCOUNT};
use crate::stats::Latency;
use crate::{Config, ExportTimes, QueryTimes, Range, Shape, Skip, proc, ranges, step};

pub struct BaselineRun {
    pub batch: Throughput,
    pub single: Throughput,
    pub queries: Vec<QueryTimes>,
    pub export_csv: ExportTimes,
    pub disk_bytes: u64,
}

/// The baseline, start to finish (blocking: SQLite in this thread).
pub fn run_baseline(
    cfg: &Config,
    path: &Path,
    data_path: &Path,
    batch_n: u64,
    shapes: &[Shape],
) -> Result<BaselineRun> {
    let mut db = Baseline::create(path)?;

    // Rows are parsed outside the timed transactions: only SQLite's work is
    // measured, which favours the baseline.
    let cpu0 = proc::cpu_secs(None);
    let mut reader = dataset::Reader::open(&data_path.to_owned())?;
    let mut tx_times = Vec::new();
    let mut rows = Vec::with_capacity(client::BATCH);
    let mut left = batch_n;
    while left > 0 {
        rows.clear();
        for item in reader.by_ref().take(client::BATCH.min(left as usize)) {
            let (account, json) = item?;
            rows.push(BaselineRow::from_ingest(&account, &json)?);
        }
        left -= rows.len() as u64;
        tx_times.push(db.insert_transaction(&rows)?);
    }
    let secs: f64 = tx_times.iter().map(Duration::as_secs_f64).sum();
    let batch = Throughput {
        events: batch_n,
        requests: tx_times.len() as u64,
        clients: 1,
        secs,
        events_per_sec: batch_n as f64 / secs,
        latency: Latency::of(tx_times),
        server_cpu_secs: None,
        client_cpu_secs: proc::cpu_secs(None) - cpu0,
    };
    step(format_args!(
        "  baseline: {:.0} events/s in 1,000-row transactions",
        batch.events_per_sec
    ));

    let singles = reader
        .map(|item| item.and_then(|(a, j)| BaselineRow::from_ingest(&a, &j)))
        .collect::<Result<Vec<_>>>()?;
    let cpu0 = proc::cpu_secs(None);
    let mut times = Vec::with_capacity(singles.len());
    for r in &singles {
        times.push(db.insert_one(r)?);
    }
    let secs: f64 = times.iter().map(Duration::as_secs_f64).sum();
    let single = Throughput {
        events: singles.len() as u64,
        requests: singles.len() as u64,
        clients: 1,
        secs,
        events_per_sec: singles.len() as f64 / secs,
        latency: Latency::of(times),
        server_cpu_secs: None,
        client_cpu_secs: proc::cpu_secs(None) - cpu0,
    };
    step(format_args!(
        "  baseline: {:.0} events/s with one commit per event",
        single.events_per_sec
    ));
    db.checkpoint()?;
    let disk_bytes = db.size_bytes();

    step("baseline: warm dashboard queries");
    let rep = cfg.repeat();
    let mut conns = [db.reader()?, db.reader()?, db.reader()?];
    let acct = MAIN_ACCOUNT;
    let mut queries = Vec::new();
    for shape in shapes {
        for range in ranges() {
            let dashboard =
                rep.run_blocking(|| baseline_dashboard(&mut conns, shape, &range).map(drop))?;
            let c = &conns[0];
            let count = rep.run_blocking(|| baseline::count(c, acct, shape, &range).map(drop))?;
            let histogram =
                rep.run_blocking(|| baseline::histogram(c, acct, shape, &range).map(drop))?;
            let first_page =
                rep.run_blocking(|| baseline::first_page(c, acct, shape, &range).map(drop))?;
            let matched = baseline::count(c, acct, shape, &range)?;
            queries.push(QueryTimes {
                dashboard,
                dashboard_cold_ms: 0.0,
                count,
                histogram,
                first_page,
                matched,
                refused: false,
                error: None,
            });
        }
    }

    if !cfg.skips(Skip::Cold) {
        step("baseline: cold dashboard queries (fresh connections, evicted files)");
        let mut i = 0;
        for shape in shapes {
            for range in ranges() {
                drop(conns);
                proc::evict(&db.files());
                conns = [db.reader()?, db.reader()?, db.reader()?];
                let t = Instant::now();
                baseline_dashboard(&mut conns, shape, &range)?;
                queries[i].dashboard_cold_ms = t.elapsed().as_secs_f64() * 1000.0;
                i += 1;
            }
        }
    }

    step("baseline: CSV export of everything");
    let t = Instant::now();
    let mut sink = std::io::BufWriter::with_capacity(1 << 16, CountingSink::default());
    let rows_out = baseline::export_csv(&conns[0], acct, &mut sink)?;
    let secs = t.elapsed().as_secs_f64();
    let bytes = sink.get_ref().0;
    step(format_args!(
        "  baseline: {:.0} rows/s",
        rows_out as f64 / secs
    ));
    drop(conns);
    drop(db);
    Ok(BaselineRun {
        batch,
        single,
        queries,
        export_csv: ExportTimes {
            rows: rows_out,
            bytes,
            secs,
            rows_per_sec: rows_out as f64 / secs,
            rss_before: None,
            rss_peak: None,
        },
        disk_bytes,
    })
}

/// Count, histogram and first page on three connections in three threads,
/// as a dashboard backend on the baseline would issue them; returns the
/// count.
fn baseline_dashboard(
    conns: &mut [rusqlite::Connection; 3],
    shape: &Shape,
    range: &Range,
) -> Result<u64> {
    let [c0, c1, c2] = conns;
    let acct = MAIN_ACCOUNT;
    std::thread::scope(|s| {
        let h = s.spawn(move || baseline::histogram(c1, acct, shape, range));
        let p = s.spawn(move || baseline::first_page(c2, acct, shape, range));
        let count = baseline::count(c0, acct, shape, range);
        h.join()
            .map_err(|_| anyhow::anyhow!("histogram thread panicked"))??;
        p.join()
            .map_err(|_| anyhow::anyhow!("page thread panicked"))??;
        count
    })
}

/// Counts bytes and throws them away: where the baseline's CSV goes, as the
/// bench's HTTP client throws auditlog's away.
#[derive(Debug, Default)]
struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
