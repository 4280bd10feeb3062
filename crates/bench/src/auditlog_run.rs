//! The auditlog side of a run: a real `auditlog serve` on a fresh data
//! directory, loaded over HTTP (batches, then single events from 64
//! clients), its dashboard queries warm and cold, both exports, `auditlog
//! verify` of the JSONL export, and its memory and disk.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::client::{self, Api, Throughput};
use crate::dataset::{self, DatasetStats, MAIN_ACCOUNT};
use crate::server::{self, Auditlog};
use crate::stats::Repeat;
use crate::{
    Config, ExportTimes, Footprint, QueryTimes, Range, Shape, Skip, VerifyTimes, proc, ranges, step,
};

pub struct AuditlogRun {
    pub batch: Throughput,
    pub single: Throughput,
    pub queries: Vec<(String, String, QueryTimes)>,
    pub export_csv: ExportTimes,
    pub export_jsonl: ExportTimes,
    pub verify: VerifyTimes,
    pub footprint: Footprint,
}

/// A server just loaded with the dataset, and what loading it measured.
pub struct Loaded {
    pub srv: server::Server,
    pub batch: Throughput,
    pub single: Throughput,
    pub rss_idle: proc::Rss,
    pub read_token: String,
}

/// Starts the binary on a fresh data directory under `work` and ingests
/// the dataset: the first `batch_n` events in batches, the rest one per
/// request. The `--ingest-only` mode stops here.
pub async fn start_and_ingest(
    bin: &Auditlog,
    cfg: &Config,
    work: &Path,
    data_path: &Path,
    batch_n: u64,
    http: &reqwest::Client,
) -> Result<Loaded> {
    let data_dir = work.join("auditlog-data");
    std::fs::create_dir_all(&data_dir)?;
    let ingest_token = bin.create_token(&data_dir, "*", "ingest").await?;
    // A `*` read token: a token of the main account would add its "Token
    // created" event to that log, and the counts are compared with the
    // baseline's.
    let read_token = bin.create_token(&data_dir, "*", "read").await?;
    let srv = server::Server::start(bin, &data_dir, http).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = proc::rss(srv.pid).unwrap_or_default();
    step(format_args!(
        "auditlog: serving on {} (pid {})",
        srv.base_url, srv.pid
    ));

    step(format_args!(
        "auditlog: ingesting {batch_n} events in batches of {} from {} clients",
        client::BATCH,
        cfg.batch_clients
    ));
    let (batch, _) = client::ingest_batches(
        http,
        &[&srv.base_url],
        &ingest_token,
        data_path,
        batch_n,
        cfg.batch_clients,
        &[srv.pid],
    )
    .await?;
    step(format_args!("  {}", batch.summary()));
    step(format_args!(
        "auditlog: ingesting {} events one per request from {} clients",
        cfg.single_events, cfg.single_clients
    ));
    let singles = dataset::Reader::open(&data_path.to_owned())?
        .skip(batch_n as usize)
        .collect::<Result<Vec<_>>>()?;
    let single = client::ingest_singles(
        &[&srv.base_url],
        &ingest_token,
        singles,
        cfg.single_clients,
        &[srv.pid],
    )
    .await?;
    step(format_args!("  {}", single.summary()));
    Ok(Loaded {
        srv,
        batch,
        single,
        rss_idle,
        read_token,
    })
}

pub async fn run_auditlog(
    bin: &Auditlog,
    cfg: &Config,
    work: &Path,
    data_path: &Path,
    batch_n: u64,
    ds: &DatasetStats,
    shapes: &[Shape],
) -> Result<AuditlogRun> {
    let http = client::http_client()?;
    let loaded = start_and_ingest(bin, cfg, work, data_path, batch_n, &http).await?;
    let Loaded {
        srv,
        batch,
        single,
        rss_idle,
        read_token,
    } = loaded;
    let data_dir = work.join("auditlog-data");
    // The RSS of a server holding the log, not of one still busy with the
    // last requests: the allocator (mimalloc) returns freed memory to the
    // system 1 s after it was freed, so wait past that. Sampled at 1 s it
    // read ~15 % higher at 3M events, at 2 s already below glibc's.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_loaded = proc::rss(srv.pid).unwrap_or_default();
    let disk_bytes = proc::dir_size(&data_dir);

    let mut api = Api {
        client: http.clone(),
        base: srv.base_url.clone(),
        token: read_token,
        account: MAIN_ACCOUNT.to_owned(),
    };
    let (srv, queries, restarts) =
        dashboard_queries("auditlog", cfg, &http, srv, &mut api, shapes, ds).await?;
    let rss_restarted = proc::rss(srv.pid).unwrap_or_default();

    let (export_csv, export_jsonl, verify) =
        exports_unless_skipped(cfg, bin, srv, &api, work, ds).await?;

    let median = restarts.get(restarts.len() / 2).copied().unwrap_or(0.0);
    Ok(AuditlogRun {
        batch,
        single,
        queries,
        export_csv,
        export_jsonl,
        verify,
        footprint: Footprint {
            rss_idle,
            rss_loaded,
            rss_restarted,
            rss_growth_per_event_bytes: rss_loaded.total.saturating_sub(rss_idle.total) as f64
                / cfg.events as f64,
            anon_growth_per_event_bytes: rss_loaded.anon.saturating_sub(rss_idle.anon) as f64
                / cfg.events as f64,
            disk_bytes,
            disk_per_event_bytes: disk_bytes as f64 / cfg.events as f64,
            restart_secs_median: median,
            restart_secs_max: restarts.last().copied().unwrap_or(0.0),
        },
    })
}

/// Checks that the server holds every event of the main account, then
/// times the dashboard's queries of every shape and range warm and, unless
/// skipped, cold (a restart with evicted files before each, `srv` replaced):
/// the times per (shape, range) and the restart times, sorted. `label`
/// names the store in the progress lines.
pub(crate) async fn dashboard_queries(
    label: &str,
    cfg: &Config,
    http: &reqwest::Client,
    mut srv: server::Server,
    api: &mut Api,
    shapes: &[Shape],
    ds: &DatasetStats,
) -> Result<(server::Server, Vec<(String, String, QueryTimes)>, Vec<f64>)> {
    let all = api.count(&shapes[0], &ranges()[1]).await?;
    anyhow::ensure!(
        all == ds.main_account_events,
        "{label} holds {all} events of {MAIN_ACCOUNT} but {} were sent",
        ds.main_account_events
    );
    step(format_args!("{label}: warm dashboard queries"));
    let rep = cfg.repeat();
    let mut queries = Vec::new();
    for shape in shapes {
        for range in &ranges() {
            let times = match warm_queries(api, rep, shape, range).await {
                Ok(t) => t,
                Err(e) => {
                    step(format_args!("  {} / {}: {e:#}", shape.name, range.name));
                    QueryTimes {
                        error: Some(format!("{e:#}")),
                        ..QueryTimes::default()
                    }
                }
            };
            queries.push((shape.name.clone(), range.name.to_owned(), times));
        }
    }
    let mut restarts = Vec::new();
    if !cfg.skips(Skip::Cold) {
        step(format_args!(
            "{label}: cold dashboard queries (a fresh server, files evicted, before each)"
        ));
        let mut i = 0;
        for shape in shapes {
            for range in ranges() {
                srv = srv.restart_cold(http).await?;
                restarts.push(srv.start_secs);
                api.base.clone_from(&srv.base_url);
                let t = Instant::now();
                match api.dashboard(shape, &range).await {
                    Ok(_) => queries[i].2.dashboard_cold_ms = t.elapsed().as_secs_f64() * 1000.0,
                    Err(e) if queries[i].2.refused && client::too_broad(&e) => {
                        queries[i].2.dashboard_cold_ms = t.elapsed().as_secs_f64() * 1000.0;
                    }
                    Err(e) => step(format_args!("  {} / {}: {e:#}", shape.name, range.name)),
                }
                i += 1;
            }
        }
    }
    restarts.sort_by(f64::total_cmp);
    Ok((srv, queries, restarts))
}

/// The exports and `verify` (which stop `srv`), or only the stop with
/// `--skip export`.
pub(crate) async fn exports_unless_skipped(
    cfg: &Config,
    bin: &Auditlog,
    srv: server::Server,
    api: &Api,
    work: &Path,
    ds: &DatasetStats,
) -> Result<(ExportTimes, ExportTimes, VerifyTimes)> {
    if cfg.skips(Skip::Export) {
        srv.stop().await?;
        let skipped = VerifyTimes {
            error: Some("skipped (--skip export)".into()),
            ..VerifyTimes::default()
        };
        return Ok((ExportTimes::default(), ExportTimes::default(), skipped));
    }
    exports(bin, srv, api, work, ds).await
}

/// Count, histogram and first page of one shape and range, together and
/// one at a time.
pub(crate) async fn warm_queries(
    api: &Api,
    rep: Repeat,
    shape: &Shape,
    range: &Range,
) -> Result<QueryTimes> {
    // A query the server refuses as too broad is timed as refused: how
    // long the refusal takes is what the cap bounds.
    let refused = match api.dashboard(shape, range).await {
        Err(e) if client::too_broad(&e) => true,
        other => other.map(drop).map(|()| false)?,
    };
    let answered = |r: Result<()>| match r {
        Err(e) if refused && client::too_broad(&e) => Ok(()),
        r => r,
    };
    let dashboard = rep
        .run(|| async move { answered(api.dashboard(shape, range).await.map(drop)) })
        .await?;
    let count = rep
        .run(|| async move { answered(api.count(shape, range).await.map(drop)) })
        .await?;
    let histogram = rep
        .run(|| async move { answered(api.histogram(shape, range).await.map(drop)) })
        .await?;
    let first_page = rep
        .run(|| async move { answered(api.first_page(shape, range).await.map(drop)) })
        .await?;
    let matched = if refused {
        0
    } else {
        api.count(shape, range).await?
    };
    Ok(QueryTimes {
        dashboard,
        dashboard_cold_ms: 0.0,
        count,
        histogram,
        first_page,
        matched,
        refused,
        error: None,
    })
}

/// The CSV and JSONL exports, then `auditlog verify` of the JSONL one
/// (the server is stopped before it).
pub(crate) async fn exports(
    bin: &Auditlog,
    srv: server::Server,
    api: &Api,
    work: &Path,
    ds: &DatasetStats,
) -> Result<(ExportTimes, ExportTimes, VerifyTimes)> {
    step("auditlog: CSV export of everything");
    let export_csv = timed_export(api, srv.pid, "csv", None).await?;
    step(format_args!("  {:.0} rows/s", export_csv.rows_per_sec));

    // The checkpoint is taken before the JSONL export, so the export holds
    // every record it covers (plus the "Audit logs exported" event of the
    // CSV export, which verify reports as not covered yet, or covers).
    let checkpoint = wait_for_checkpoint(api, ds.main_account_events).await?;
    step("auditlog: JSONL export of everything");
    let jsonl_path = work.join("export.jsonl");
    let export_jsonl = timed_export(api, srv.pid, "jsonl", Some(&jsonl_path)).await?;
    let public_key = api.text("/v1/public-key", false).await?;
    srv.stop().await?;
    // Verify reads a file at rest: flush the export just written first, so
    // the timing is not the kernel's write-back of gigabytes competing with
    // the reads (at 10M events, 6 GB written at ~500 MB/s just before).
    std::fs::File::open(&jsonl_path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("flush {}", jsonl_path.display()))?;

    step("auditlog: verify of the JSONL export");
    let verify = run_verify(
        bin,
        work,
        &jsonl_path,
        &checkpoint,
        &public_key,
        export_jsonl.rows,
    )
    .await;
    let _ = std::fs::remove_file(&jsonl_path);
    Ok((export_csv, export_jsonl, verify))
}

/// Runs an all-time export while sampling the server's memory.
async fn timed_export(
    api: &Api,
    pid: u32,
    format: &str,
    save: Option<&PathBuf>,
) -> Result<ExportTimes> {
    let before = proc::rss(pid);
    let sampler = proc::RssSampler::start(pid);
    let t = Instant::now();
    let (lines, bytes) = api.export(format, save).await?;
    let secs = t.elapsed().as_secs_f64();
    let peak = sampler.finish(pid).await;
    let rows = if format == "csv" {
        lines.saturating_sub(1)
    } else {
        lines
    };
    Ok(ExportTimes {
        rows,
        bytes,
        secs,
        rows_per_sec: rows as f64 / secs,
        rss_before: before,
        rss_peak: Some(peak),
    })
}

/// The latest checkpoint once it covers at least `size` events (the
/// checkpointer signs twice a second; the endpoint also signs on demand).
async fn wait_for_checkpoint(api: &Api, size: u64) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let note = api
            .text(&format!("/v1/accounts/{}/checkpoint", api.account), true)
            .await?;
        let covered = note
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if covered >= size {
            return Ok(note);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the checkpoint covers {covered} events after a minute, {size} expected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Times `auditlog verify --export … --checkpoint … --public-key …`; a
/// failure (including "not implemented yet") is reported, not raised.
async fn run_verify(
    bin: &Auditlog,
    work: &Path,
    export: &Path,
    checkpoint: &str,
    key: &str,
    records: u64,
) -> VerifyTimes {
    let cp = work.join("checkpoint.txt");
    let kp = work.join("public-key.txt");
    if let Err(e) = std::fs::write(&cp, checkpoint).and_then(|()| std::fs::write(&kp, key)) {
        return VerifyTimes {
            error: Some(format!("could not write the inputs: {e}")),
            ..VerifyTimes::default()
        };
    }
    let (e, c, k) = (
        export.to_string_lossy(),
        cp.to_string_lossy(),
        kp.to_string_lossy(),
    );
    let t = Instant::now();
    let out = bin
        .run(&[
            "verify",
            "--export",
            &e,
            "--checkpoint",
            &c,
            "--public-key",
            &k,
        ])
        .await;
    let secs = t.elapsed().as_secs_f64();
    match out {
        Ok(_) => VerifyTimes {
            available: true,
            records,
            secs,
            records_per_sec: records as f64 / secs,
            error: None,
        },
        Err(err) => VerifyTimes {
            error: Some(format!("{err:#}")),
            ..VerifyTimes::default()
        },
    }
}
