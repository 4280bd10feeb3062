//! auditlog on PostgreSQL (`--database-url`): the same loads, queries and
//! exports as the embedded run, on `auditlog serve --database-url` with a
//! database of its own, then the ingest again with two instances on a
//! second database (the clients split across them), beside the plain
//! PostgreSQL baseline ([`crate::pg_baseline`]).
//!
//! "Cold" here is a new instance (a process that never saw the account:
//! its index comes from the segments stored in the database). The
//! database's own caches are not emptied: the PostgreSQL server is not the
//! bench's to restart.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::auditlog_run::{dashboard_queries, exports_unless_skipped};
use crate::client::{self, Api, Throughput};
use crate::dataset::{self, DatasetStats, MAIN_ACCOUNT};
use crate::pg_baseline::{self, PgAdmin, PgBaselineRun};
use crate::server::{Auditlog, Server};
use crate::{Config, ExportTimes, QueryTimes, Skip, VerifyTimes, ranges, step};

/// What auditlog on PostgreSQL measured.
#[derive(Debug, Clone, Serialize)]
pub struct PgAuditlogRun {
    pub batch: Throughput,
    pub single: Throughput,
    /// The batches again, two instances on one database.
    pub batch_two: Throughput,
    pub single_two: Throughput,
    pub queries: Vec<QueryTimes>,
    pub export_csv: ExportTimes,
    pub export_jsonl: ExportTimes,
    pub verify: VerifyTimes,
    pub disk_bytes: u64,
    /// Seconds from spawning an instance to `/readyz` on the loaded
    /// database (median, max over the cold starts).
    pub restart_secs_median: f64,
    pub restart_secs_max: f64,
}

/// Both PostgreSQL runs.
#[derive(Debug, Clone, Serialize)]
pub struct PgResults {
    pub auditlog: PgAuditlogRun,
    pub baseline: Option<PgBaselineRun>,
    /// (shape, range) whose counts differ between auditlog on PostgreSQL
    /// and the PostgreSQL baseline.
    pub count_mismatches: Vec<String>,
}

/// Creates `*` ingest and read tokens in the database.
async fn tokens(bin: &Auditlog, url: &str) -> Result<(String, String)> {
    let mut out = Vec::new();
    for role in ["ingest", "read"] {
        let t = bin
            .run(&[
                "token",
                "create",
                "--database-url",
                url,
                "--account",
                "*",
                "--role",
                role,
            ])
            .await?;
        out.push(t.trim().to_owned());
    }
    let read = out.pop().unwrap_or_default();
    Ok((out.pop().unwrap_or_default(), read))
}

/// Ingests the dataset into the instances `srvs`: the first `batch_n`
/// events in batches, the rest one per request, clients split evenly.
async fn ingest(
    cfg: &Config,
    data_path: &Path,
    batch_n: u64,
    http: &reqwest::Client,
    srvs: &[&Server],
    token: &str,
) -> Result<(Throughput, Throughput)> {
    let bases: Vec<&str> = srvs.iter().map(|s| s.base_url.as_str()).collect();
    let pids: Vec<u32> = srvs.iter().map(|s| s.pid).collect();
    let (batch, _) = client::ingest_batches(
        http,
        &bases,
        token,
        data_path,
        batch_n,
        cfg.batch_clients,
        &pids,
    )
    .await?;
    step(format_args!("  batches: {}", batch.summary()));
    let singles = dataset::Reader::open(&data_path.to_owned())?
        .skip(batch_n as usize)
        .collect::<Result<Vec<_>>>()?;
    let single = client::ingest_singles(&bases, token, singles, cfg.single_clients, &pids).await?;
    step(format_args!("  single events: {}", single.summary()));
    Ok((batch, single))
}

/// auditlog on PostgreSQL, then the PostgreSQL baseline; every database
/// the run created is dropped.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    bin: &Auditlog,
    cfg: &Config,
    work: &Path,
    data_path: &Path,
    batch_n: u64,
    ds: &DatasetStats,
    shapes: &[crate::Shape],
    admin: &PgAdmin,
) -> Result<PgResults> {
    let auditlog = run_auditlog(bin, cfg, work, data_path, batch_n, ds, shapes, admin).await;
    let _ = admin.drop("one").await;
    let _ = admin.drop("two").await;
    let auditlog = auditlog?;
    let baseline = if cfg.skips(Skip::Baseline) {
        None
    } else {
        step("PostgreSQL baseline: the same rows into a plain table with binary COPY");
        let b = pg_baseline::run(cfg, admin, data_path, batch_n, shapes).await;
        let _ = admin.drop("baseline").await;
        Some(b?)
    };
    let mut count_mismatches = Vec::new();
    if let Some(b) = &baseline {
        let names = shapes
            .iter()
            .flat_map(|s| ranges().into_iter().map(move |r| (s.name.clone(), r.name)));
        for ((shape, range), (a, b)) in names.zip(auditlog.queries.iter().zip(&b.queries)) {
            if a.error.is_none() && !a.refused && b.error.is_none() && a.matched != b.matched {
                count_mismatches.push(format!(
                    "{shape} / {range}: auditlog {} vs PostgreSQL baseline {}",
                    a.matched, b.matched
                ));
            }
        }
    }
    Ok(PgResults {
        auditlog,
        baseline,
        count_mismatches,
    })
}

/// What `--ingest-only --database-url` measures: batches into auditlog on
/// PostgreSQL (one instance) and into the plain PostgreSQL baseline.
#[derive(Debug, Clone, Serialize)]
pub struct PgIngest {
    pub auditlog_batch: Throughput,
    pub baseline_batch: Throughput,
}

/// The batch phase only, auditlog on PostgreSQL then the baseline, each in
/// a database of its own (dropped afterwards).
pub async fn ingest_only(
    bin: &Auditlog,
    cfg: &Config,
    work: &Path,
    data_path: &Path,
    batch_n: u64,
    admin: &PgAdmin,
) -> Result<PgIngest> {
    let http = client::http_client()?;
    step("auditlog on PostgreSQL: batches, one instance");
    let url = admin.create("one").await?;
    let batch = async {
        let (ingest_token, _) = tokens(bin, &url).await?;
        let keys = work.join("pg-keys");
        std::fs::create_dir_all(&keys)?;
        let args = ["--database-url".to_owned(), url.clone()];
        let srv = Server::start_with(bin, &keys, &args, &http).await?;
        let batch = client::ingest_batches(
            &http,
            &[srv.base_url.as_str()],
            &ingest_token,
            data_path,
            batch_n,
            cfg.batch_clients,
            &[srv.pid],
        )
        .await;
        srv.stop().await?;
        batch
    }
    .await;
    // Dropped whether or not the load went through.
    admin.drop("one").await?;
    let (auditlog_batch, _) = batch?;
    step(format_args!("  batches: {}", auditlog_batch.summary()));
    step("PostgreSQL baseline: batches with binary COPY");
    let url = admin.create("baseline").await?;
    let baseline_batch = async {
        let db = pg_baseline::connect(&url).await?;
        db.batch_execute(crate::baseline::SCHEMA).await?;
        pg_baseline::copy_batches(cfg, &url, data_path, batch_n).await
    }
    .await;
    admin.drop("baseline").await?;
    Ok(PgIngest {
        auditlog_batch,
        baseline_batch: baseline_batch?,
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_auditlog(
    bin: &Auditlog,
    cfg: &Config,
    work: &Path,
    data_path: &Path,
    batch_n: u64,
    ds: &DatasetStats,
    shapes: &[crate::Shape],
    admin: &PgAdmin,
) -> Result<PgAuditlogRun> {
    let http = client::http_client()?;

    // Two instances first (their database is dropped before the other's
    // is filled: one dataset on disk at a time).
    step("auditlog on PostgreSQL: ingest with two instances on one database");
    let url = admin.create("two").await?;
    let (ingest_token, _) = tokens(bin, &url).await?;
    let keys = work.join("pg-keys");
    std::fs::create_dir_all(&keys)?;
    let args = vec!["--database-url".to_owned(), url];
    let a = Server::start_with(bin, &keys, &args, &http).await?;
    let b = Server::start_with(bin, &keys, &args, &http).await?;
    let (batch_two, single_two) =
        ingest(cfg, data_path, batch_n, &http, &[&a, &b], &ingest_token).await?;
    a.stop().await?;
    b.stop().await?;
    admin.drop("two").await?;

    step("auditlog on PostgreSQL: one instance");
    let url = admin.create("one").await?;
    let (ingest_token, read_token) = tokens(bin, &url).await?;
    let args = vec!["--database-url".to_owned(), url];
    let srv = Server::start_with(bin, &keys, &args, &http).await?;
    let (batch, single) = ingest(cfg, data_path, batch_n, &http, &[&srv], &ingest_token).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let disk_bytes = admin.size("one").await?;

    let mut api = Api {
        client: http.clone(),
        base: srv.base_url.clone(),
        token: read_token,
        account: MAIN_ACCOUNT.to_owned(),
    };
    let (srv, queries, restarts) = dashboard_queries(
        "auditlog on PostgreSQL",
        cfg,
        &http,
        srv,
        &mut api,
        shapes,
        ds,
    )
    .await?;
    let queries = queries.into_iter().map(|(_, _, times)| times).collect();
    let (export_csv, export_jsonl, verify) =
        exports_unless_skipped(cfg, bin, srv, &api, work, ds).await?;
    admin.drop("one").await?;
    Ok(PgAuditlogRun {
        batch,
        single,
        batch_two,
        single_two,
        queries,
        export_csv,
        export_jsonl,
        verify,
        disk_bytes,
        restart_secs_median: restarts.get(restarts.len() / 2).copied().unwrap_or(0.0),
        restart_secs_max: restarts.last().copied().unwrap_or(0.0),
    })
}
