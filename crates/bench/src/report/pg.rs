//! The PostgreSQL section of the report (`--database-url`): auditlog on
//! PostgreSQL with one and two instances, beside the plain-PostgreSQL
//! baseline (binary `COPY`) and the embedded store of the same run, and
//! the goals of issue 14.

use std::fmt::Write;

use super::{int, mark, mib, ms, p50_p95, ratio};
use crate::Results;
use crate::client::Throughput;
use crate::pg_run::PgResults;

fn rate(t: &Throughput) -> String {
    format!("{} events/s", int(t.events_per_sec.round() as u64))
}

pub(super) fn section(o: &mut String, r: &Results, pg: &PgResults) {
    let a = &pg.auditlog;
    let b = pg.baseline.as_ref();
    let _ = writeln!(o, "### PostgreSQL (issue 14)\n");
    let _ = writeln!(
        o,
        "auditlog serving a database of the same PostgreSQL server as the baseline, same machine \
         and run. **PostgreSQL baseline**: the SQLite baseline's table (text columns) and four \
         B-tree indexes, batches as one binary `COPY` of 1,000 rows each (one transaction) from \
         {} connections, single events as one `INSERT` each from {} connections; queries are the \
         SQLite baseline's SQL on three connections at once. Cold: auditlog — a new instance that \
         never saw the account (its index from the segments in the database); baseline — new \
         connections. Neither empties PostgreSQL's shared buffers or the page cache (the server is \
         shared, not the bench's to restart). Ratios above 1 favour auditlog on PostgreSQL.\n",
        r.config.batch_clients, r.config.single_clients
    );
    let _ = writeln!(
        o,
        "| ingest | auditlog on PostgreSQL, 1 instance | 2 instances | PostgreSQL baseline | embedded auditlog | 1 instance ÷ baseline | 2 instances ÷ baseline | 1 instance ÷ embedded |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, one, two, base, emb) in [
        (
            "batches of 1,000",
            &a.batch,
            &a.batch_two,
            b.map(|b| &b.batch),
            &r.batch,
        ),
        (
            "single events",
            &a.single,
            &a.single_two,
            b.map(|b| &b.single),
            &r.single,
        ),
    ] {
        let bv = base.map_or(0.0, |b| b.events_per_sec);
        let _ = writeln!(
            o,
            "| {name} | {} (p99 {} ms) | {} (p99 {} ms) | {} | {} | {} | {} | {} |",
            rate(one),
            ms(one.latency.p99_ms),
            rate(two),
            ms(two.latency.p99_ms),
            base.map_or("—".into(), rate),
            rate(emb),
            ratio(one.events_per_sec, bv),
            ratio(two.events_per_sec, bv),
            ratio(one.events_per_sec, emb.events_per_sec),
        );
    }
    let _ = writeln!(o);

    let _ = writeln!(
        o,
        "| filter | range | matches | on PostgreSQL warm p50 / p95 | cold | PostgreSQL baseline warm | baseline cold | embedded warm | embedded cold | p95 ÷ baseline |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (mut warm, mut cold) = (0.0f64, 0.0f64);
    for (i, q) in r.queries.iter().enumerate() {
        let Some(p) = a.queries.get(i) else { break };
        if !p.refused {
            warm = warm.max(p.dashboard.p95_ms);
            cold = cold.max(p.dashboard_cold_ms);
        }
        let base = b.and_then(|b| b.queries.get(i));
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            q.shape,
            q.range,
            if p.refused {
                "—".to_owned()
            } else {
                int(p.matched)
            },
            if p.error.is_some() {
                "failed (see the JSON)".to_owned()
            } else if p.refused {
                format!("refused as too broad: {}", p50_p95(&p.dashboard))
            } else {
                p50_p95(&p.dashboard)
            },
            ms(p.dashboard_cold_ms),
            base.map_or("—".into(), |b| p50_p95(&b.dashboard)),
            base.map_or("—".into(), |b| ms(b.dashboard_cold_ms)),
            p50_p95(&q.auditlog.dashboard),
            ms(q.auditlog.dashboard_cold_ms),
            base.map_or("—".into(), |b| ratio(
                b.dashboard.p95_ms,
                p.dashboard.p95_ms
            )),
        );
    }
    let _ = writeln!(o);

    let emb = &r.auditlog_footprint;
    let _ = writeln!(
        o,
        "| | auditlog on PostgreSQL | PostgreSQL baseline | embedded auditlog |\n|---|---:|---:|---:|"
    );
    let _ = writeln!(
        o,
        "| CSV export | {} rows/s | {} | {} rows/s |",
        int(a.export_csv.rows_per_sec.round() as u64),
        b.map_or("—".into(), |b| format!(
            "{} rows/s",
            int(b.export_csv.rows_per_sec.round() as u64)
        )),
        int(r.export_csv.rows_per_sec.round() as u64),
    );
    let _ = writeln!(
        o,
        "| JSONL export | {} rows/s | — | {} rows/s |",
        int(a.export_jsonl.rows_per_sec.round() as u64),
        int(r.export_jsonl.rows_per_sec.round() as u64),
    );
    let _ = writeln!(
        o,
        "| verify of the JSONL export | {} | — | {} |",
        if a.verify.available {
            format!("{} records/s", int(a.verify.records_per_sec.round() as u64))
        } else {
            a.verify.error.clone().unwrap_or_default()
        },
        if r.verify.available {
            format!("{} records/s", int(r.verify.records_per_sec.round() as u64))
        } else {
            "—".into()
        },
    );
    let _ = writeln!(
        o,
        "| start to `/readyz` on the loaded store: median / max | {:.2} / {:.2} s | — | {:.2} / {:.2} s |",
        a.restart_secs_median, a.restart_secs_max, emb.restart_secs_median, emb.restart_secs_max
    );
    let _ = writeln!(
        o,
        "| disk | {} | {} | {} |\n",
        mib(a.disk_bytes),
        b.map_or("—".into(), |b| mib(b.disk_bytes)),
        mib(emb.disk_bytes)
    );

    let base_batch = b.map_or(0.0, |b| b.batch.events_per_sec);
    let goals = [
        (
            "ingest (batches), 1 instance ÷ PostgreSQL COPY baseline",
            "≥ 2×",
            ratio(a.batch.events_per_sec, base_batch),
            base_batch > 0.0 && a.batch.events_per_sec >= 2.0 * base_batch,
        ),
        (
            "ingest (batches), 2 instances ÷ PostgreSQL COPY baseline",
            "≥ 2×",
            ratio(a.batch_two.events_per_sec, base_batch),
            base_batch > 0.0 && a.batch_two.events_per_sec >= 2.0 * base_batch,
        ),
        (
            "dashboard query on PostgreSQL, warm p95 (worst shape and range)",
            "≤ 50 ms",
            format!("{} ms", ms(warm)),
            warm <= 50.0,
        ),
        (
            "dashboard query on PostgreSQL, cold on a new instance (worst)",
            "≤ 500 ms",
            format!("{} ms", ms(cold)),
            cold <= 500.0,
        ),
    ];
    let met = goals.iter().filter(|g| g.3).count();
    let _ = writeln!(
        o,
        "#### Goals of issue 14: {met} of {} met (set for 10M events)\n",
        goals.len()
    );
    let _ = writeln!(
        o,
        "| goal | target | measured | met |\n|---|---|---:|:---:|"
    );
    for (name, target, measured, ok) in goals {
        let _ = writeln!(o, "| {name} | {target} | {measured} | {} |", mark(ok));
    }
    let _ = writeln!(o);
    if b.is_some() {
        if pg.count_mismatches.is_empty() {
            let _ = writeln!(
                o,
                "Counts: auditlog on PostgreSQL and the PostgreSQL baseline agree on every filter shape and range.\n"
            );
        } else {
            let _ = writeln!(o, "Counts that differ on PostgreSQL:");
            for c in &pg.count_mismatches {
                let _ = writeln!(o, "- {c}");
            }
            let _ = writeln!(o);
        }
    }
}
