//! `auditlog bench`: the benchmark harness (issue 5). It measures a real
//! `auditlog serve` over HTTP against a plain SQLite table loaded with the
//! same rows in the same run, and reports every figure side by side.
//!
//! The run, in order:
//! 1. [`dataset`]: seeded, realistic events written once to a file (90 % in
//!    one account, skewed event names, ~2,000 users, 400 days).
//! 2. auditlog ([`server`], [`client`]): start the binary on a fresh data
//!    directory; ingest in batches of 1,000 from a few clients, then the
//!    newest slice as single events from 64 clients; dashboard queries warm
//!    and cold (after a restart with the data files evicted from the page
//!    cache); CSV and JSONL exports; `auditlog verify` of the JSONL export;
//!    memory and disk.
//! 3. [`baseline`]: the same rows into one SQLite table, the same loads,
//!    queries and export, in-process.
//! 4. [`report`]: a JSON result file and a Markdown table with ratios and
//!    the goals of the issue. Goals are reported, never asserted: the
//!    command exits 0 whether or not they are met, and fails only when
//!    something does not work.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use auditlog_core::record::Micros;

mod baseline;
mod client;
mod dataset;
mod proc;
mod report;
mod server;
mod stats;

use client::{Api, Throughput};
use dataset::{DatasetStats, MAIN_ACCOUNT};
use stats::{Latency, Repeat};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// About 100k events, a few minutes: the CI mode.
    #[arg(long)]
    pub quick: bool,
    /// Events in the dataset [default: 10,000,000; 100,000 with --quick].
    #[arg(long)]
    pub events: Option<u64>,
    /// Where to write the JSON result (a Markdown copy goes beside it).
    #[arg(long, default_value = "target/bench/results.json")]
    pub out: PathBuf,
    /// Seed of the dataset.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Of those events, how many (the newest) are sent one per request from
    /// 64 clients [default: 200,000; 20,000 with --quick].
    #[arg(long)]
    pub single_events: Option<u64>,
    /// Concurrent clients sending batches of 1,000.
    #[arg(long, default_value_t = 4)]
    pub batch_clients: usize,
    /// Warm repetitions per query [default: 30; 5 with --quick].
    #[arg(long)]
    pub repeat: Option<usize>,
    /// Directory for the run's temporary files (dataset, both databases);
    /// the disk it is on is the disk measured [default: the system temp dir].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the temporary files (their path is printed).
    #[arg(long)]
    pub keep: bool,
}

/// Clients sending single events, as the issue asks.
const SINGLE_CLIENTS: usize = 64;

/// The run's settings after defaults.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub mode: &'static str,
    pub events: u64,
    pub single_events: u64,
    pub batch_clients: usize,
    pub single_clients: usize,
    pub seed: u64,
    pub repeat: usize,
    /// Most seconds one warm measurement may repeat for.
    pub budget_secs: f64,
    pub build: &'static str,
}

impl Config {
    fn new(args: &BenchArgs) -> Config {
        let events = args
            .events
            .unwrap_or(if args.quick { 100_000 } else { 10_000_000 })
            .max(1_000);
        let single = args
            .single_events
            .unwrap_or(if args.quick { 20_000 } else { 200_000 })
            .min(events / 2);
        Config {
            mode: if args.quick { "quick" } else { "full" },
            events,
            single_events: single,
            batch_clients: args.batch_clients.max(1),
            single_clients: SINGLE_CLIENTS,
            seed: args.seed,
            repeat: args
                .repeat
                .unwrap_or(if args.quick { 5 } else { 30 })
                .max(1),
            budget_secs: if args.quick { 3.0 } else { 20.0 },
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        }
    }

    fn repeat(&self) -> Repeat {
        Repeat {
            reps: self.repeat,
            budget: Duration::from_secs_f64(self.budget_secs),
        }
    }
}

/// A dashboard filter shape, as the API and as SQL.
#[derive(Debug, Clone, Serialize)]
pub struct Shape {
    pub name: String,
    /// `filter` parameters of the API.
    pub api: Vec<String>,
    pub join_or: bool,
    /// The baseline's WHERE fragment (`?` parameters), `None` for no filter.
    #[serde(skip)]
    pub sql: Option<String>,
    #[serde(skip)]
    pub sql_params: Vec<String>,
}

/// The seed's filter shapes; `user` is the busiest user name of the data.
fn shapes(busy_user: &str) -> Vec<Shape> {
    let shape = |name: String, api: &[&str], join_or, sql: Option<&str>, params: &[&str]| Shape {
        name,
        api: api.iter().map(|s| (*s).to_owned()).collect(),
        join_or,
        sql: sql.map(str::to_owned),
        sql_params: params.iter().map(|s| (*s).to_owned()).collect(),
    };
    let user_filter = format!("user:eq:{busy_user}");
    vec![
        shape("none".into(), &[], false, None, &[]),
        shape(
            "event = Role created".into(),
            &["event:eq:Role created"],
            false,
            Some("event = ?"),
            &["Role created"],
        ),
        shape(
            "category ≠ Login/Logout".into(),
            &["category:ne:Login/Logout"],
            false,
            Some("category != ?"),
            &["Login/Logout"],
        ),
        shape(
            format!("event = Login OR user = {busy_user}"),
            &["event:eq:Login", &user_filter],
            true,
            Some("(event = ? OR user_name = ?)"),
            &["Login", busy_user],
        ),
        shape(
            "event ≠ Login AND category ≠ Prompts".into(),
            &["event:ne:Login", "category:ne:Prompts"],
            false,
            Some("event != ? AND category != ?"),
            &["Login", "Prompts"],
        ),
    ]
}

/// A time range: the API's preset and, for the baseline, its UTC bounds as
/// the stored text (`None` for all time).
#[derive(Debug, Clone)]
pub struct Range {
    pub name: &'static str,
    pub bounds_text: Option<(String, String)>,
}

/// The two ranges, resolved now in UTC as the server does for `tz=UTC`:
/// last 30 days is `[today − 29 days, tomorrow)`.
fn ranges() -> Vec<Range> {
    let now_us = Micros::from_timestamp(jiff::Timestamp::now()).0;
    let day_us = 86_400_000_000;
    let today = now_us.div_euclid(day_us) * day_us;
    vec![
        Range {
            name: "last_30_days",
            bounds_text: Some((
                Micros(today - 29 * day_us).to_rfc3339(),
                Micros(today + day_us).to_rfc3339(),
            )),
        },
        Range {
            name: "all_time",
            bounds_text: None,
        },
    ]
}

/// Timings of one (shape, range) on one system.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueryTimes {
    /// Count, histogram and first page issued together, concurrently.
    pub dashboard: Latency,
    /// The same, first query after a restart with the files evicted from the
    /// page cache.
    pub dashboard_cold_ms: f64,
    pub count: Latency,
    pub histogram: Latency,
    pub first_page: Latency,
    /// The exact count returned.
    pub matched: u64,
}

/// One (shape, range) row of the query table.
#[derive(Debug, Clone, Serialize)]
pub struct QueryRow {
    pub shape: String,
    pub range: String,
    pub auditlog: QueryTimes,
    pub baseline: Option<QueryTimes>,
}

/// An export measurement.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportTimes {
    pub rows: u64,
    pub bytes: u64,
    pub secs: f64,
    pub rows_per_sec: f64,
    /// Resident memory of the server just before the export (auditlog).
    pub rss_before: Option<proc::Rss>,
    /// Peak resident memory of the server during the export (auditlog).
    pub rss_peak: Option<proc::Rss>,
}

impl ExportTimes {
    /// Peak minus before, in bytes: total and anonymous.
    pub fn rss_growth(&self) -> Option<(i64, i64)> {
        let (b, p) = (self.rss_before?, self.rss_peak?);
        Some((
            p.total as i64 - b.total as i64,
            p.anon as i64 - b.anon as i64,
        ))
    }
}

/// `auditlog verify` of the JSONL export.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyTimes {
    pub available: bool,
    pub records: u64,
    pub secs: f64,
    pub records_per_sec: f64,
    /// Why verification did not run or failed.
    pub error: Option<String>,
}

/// Memory and disk.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Footprint {
    pub rss_idle: proc::Rss,
    pub rss_loaded: proc::Rss,
    /// After a restart (the index rebuilt from disk) and the cold queries.
    pub rss_restarted: proc::Rss,
    /// (RSS after loading − idle) ÷ events.
    pub rss_growth_per_event_bytes: f64,
    /// The same for anonymous memory only.
    pub anon_growth_per_event_bytes: f64,
    pub disk_bytes: u64,
    pub disk_per_event_bytes: f64,
    /// Seconds from spawning the server to `/readyz` on the loaded data, per
    /// restart (median).
    pub restart_secs_median: f64,
    pub restart_secs_max: f64,
}

/// Everything one run measured; the JSON result file.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub started_at: String,
    pub config: Config,
    pub machine: proc::Machine,
    pub dataset: DatasetStats,
    pub batch: Throughput,
    pub single: Throughput,
    pub baseline_batch: Option<Throughput>,
    pub baseline_single: Option<Throughput>,
    pub queries: Vec<QueryRow>,
    pub export_csv: ExportTimes,
    pub export_jsonl: ExportTimes,
    pub baseline_export_csv: Option<ExportTimes>,
    pub verify: VerifyTimes,
    pub auditlog_footprint: Footprint,
    pub baseline_disk_bytes: Option<u64>,
    /// (shape, range) whose counts differ between auditlog and the baseline.
    pub count_mismatches: Vec<String>,
    pub total_secs: f64,
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let cfg = Config::new(&args);
    let root = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let work = tempfile::Builder::new()
        .prefix("auditlog-bench-")
        .tempdir_in(&root)
        .with_context(|| format!("creating a temporary directory in {}", root.display()))?;
    let outcome = run_in(&cfg, work.path()).await;
    if args.keep {
        let kept = work.keep();
        eprintln!("bench: kept {}", kept.display());
    }
    let results = outcome?;
    let markdown = report::markdown(&results);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let md_path = args.out.with_extension("md");
    std::fs::write(&md_path, &markdown)
        .with_context(|| format!("writing {}", md_path.display()))?;
    println!("{markdown}");
    eprintln!(
        "bench: wrote {} and {}",
        args.out.display(),
        md_path.display()
    );
    Ok(())
}

/// Progress on stderr; the table goes to stdout.
fn step(msg: impl std::fmt::Display) {
    eprintln!("bench: {msg}");
}

async fn run_in(cfg: &Config, work: &Path) -> Result<Results> {
    let started = Instant::now();
    let started_at = jiff::Timestamp::now().to_string();
    let machine = proc::Machine::probe();
    step(format_args!(
        "{} run, {} events ({} single), {} build, {} × {}",
        cfg.mode, cfg.events, cfg.single_events, cfg.build, machine.cpus, machine.cpu_model
    ));
    if cfg.build == "debug" {
        step("this is a debug build: figures are not representative (use --release)");
    }

    let data_path = work.join("dataset.tsv");
    step(format_args!(
        "generating the dataset into {}",
        data_path.display()
    ));
    let now_us = Micros::from_timestamp(jiff::Timestamp::now()).0;
    let (n, seed, p) = (cfg.events, cfg.seed, data_path.clone());
    let ds = tokio::task::spawn_blocking(move || dataset::generate(&p, n, seed, now_us)).await??;
    step(format_args!(
        "generated {} events ({} MB) in {:.1} s",
        ds.events,
        ds.file_bytes / 1_000_000,
        ds.generate_secs
    ));
    let shapes = shapes(&ds.busy_user);
    let batch_n = cfg.events - cfg.single_events;

    let a = run_auditlog(cfg, work, &data_path, batch_n, &ds, &shapes).await?;

    step("baseline: loading the same rows into a plain SQLite table");
    let b = {
        let (cfg, data_path, shapes) = (cfg.clone(), data_path.clone(), shapes.clone());
        let path = work.join("baseline.db");
        tokio::task::spawn_blocking(move || run_baseline(&cfg, &path, &data_path, batch_n, &shapes))
            .await??
    };

    let mut queries = Vec::new();
    let mut count_mismatches = Vec::new();
    for (i, (shape, range, times)) in a.queries.into_iter().enumerate() {
        let base = b.queries.get(i).cloned();
        if let Some(bt) = &base
            && bt.matched != times.matched
        {
            count_mismatches.push(format!(
                "{shape} / {range}: auditlog {} vs baseline {}",
                times.matched, bt.matched
            ));
        }
        queries.push(QueryRow {
            shape,
            range,
            auditlog: times,
            baseline: base,
        });
    }
    Ok(Results {
        started_at,
        config: cfg.clone(),
        machine,
        dataset: ds,
        batch: a.batch,
        single: a.single,
        baseline_batch: Some(b.batch),
        baseline_single: Some(b.single),
        queries,
        export_csv: a.export_csv,
        export_jsonl: a.export_jsonl,
        baseline_export_csv: Some(b.export_csv),
        verify: a.verify,
        auditlog_footprint: a.footprint,
        baseline_disk_bytes: Some(b.disk_bytes),
        count_mismatches,
        total_secs: started.elapsed().as_secs_f64(),
    })
}

struct AuditlogRun {
    batch: Throughput,
    single: Throughput,
    queries: Vec<(String, String, QueryTimes)>,
    export_csv: ExportTimes,
    export_jsonl: ExportTimes,
    verify: VerifyTimes,
    footprint: Footprint,
}

async fn run_auditlog(
    cfg: &Config,
    work: &Path,
    data_path: &Path,
    batch_n: u64,
    ds: &DatasetStats,
    shapes: &[Shape],
) -> Result<AuditlogRun> {
    let data_dir = work.join("auditlog-data");
    std::fs::create_dir_all(&data_dir)?;
    let ingest_token = server::create_token(&data_dir, "*", "ingest").await?;
    // A `*` read token: a token of the main account would add its "Token
    // created" event to that log, and the counts are compared with the
    // baseline's.
    let read_token = server::create_token(&data_dir, "*", "read").await?;
    let http = client::http_client()?;
    let mut srv = server::Server::start(&data_dir, &http).await?;
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
        &srv.base_url,
        &ingest_token,
        data_path,
        batch_n,
        cfg.batch_clients,
        srv.pid,
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
        &srv.base_url,
        &ingest_token,
        singles,
        cfg.single_clients,
        srv.pid,
    )
    .await?;
    step(format_args!("  {}", single.summary()));
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
    let all = api.count(&shapes[0], &ranges()[1]).await?;
    anyhow::ensure!(
        all == ds.main_account_events,
        "auditlog holds {all} events of {MAIN_ACCOUNT} but {} were sent",
        ds.main_account_events
    );

    step("auditlog: warm dashboard queries");
    let rep = cfg.repeat();
    let mut queries = Vec::new();
    for shape in shapes {
        for range in &ranges() {
            let api = &api;
            let dashboard = rep
                .run(|| async move { api.dashboard(shape, range).await.map(drop) })
                .await?;
            let count = rep
                .run(|| async move { api.count(shape, range).await.map(drop) })
                .await?;
            let histogram = rep
                .run(|| async move { api.histogram(shape, range).await.map(drop) })
                .await?;
            let first_page = rep
                .run(|| async move { api.first_page(shape, range).await.map(drop) })
                .await?;
            let matched = api.count(shape, range).await?;
            queries.push((
                shape.name.clone(),
                range.name.to_owned(),
                QueryTimes {
                    dashboard,
                    dashboard_cold_ms: 0.0,
                    count,
                    histogram,
                    first_page,
                    matched,
                },
            ));
        }
    }

    step("auditlog: cold dashboard queries (a restart with evicted files before each)");
    let mut restarts = Vec::new();
    let mut i = 0;
    for shape in shapes {
        for range in ranges() {
            srv = srv.restart_cold(&http).await?;
            restarts.push(srv.start_secs);
            api.base.clone_from(&srv.base_url);
            let t = Instant::now();
            api.dashboard(shape, &range).await?;
            queries[i].2.dashboard_cold_ms = t.elapsed().as_secs_f64() * 1000.0;
            i += 1;
        }
    }
    let rss_restarted = proc::rss(srv.pid).unwrap_or_default();
    restarts.sort_by(f64::total_cmp);

    step("auditlog: CSV export of everything");
    let export_csv = timed_export(&api, srv.pid, "csv", None).await?;
    step(format_args!("  {:.0} rows/s", export_csv.rows_per_sec));

    // The checkpoint is taken before the JSONL export, so the export holds
    // every record it covers (plus the "Audit logs exported" event of the
    // CSV export, which verify reports as not covered yet, or covers).
    let checkpoint = wait_for_checkpoint(&api, ds.main_account_events).await?;
    step("auditlog: JSONL export of everything");
    let jsonl_path = work.join("export.jsonl");
    let export_jsonl = timed_export(&api, srv.pid, "jsonl", Some(&jsonl_path)).await?;
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
        work,
        &jsonl_path,
        &checkpoint,
        &public_key,
        export_jsonl.rows,
    )
    .await;
    let _ = std::fs::remove_file(&jsonl_path);

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
    let out = server::run_self(&[
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

struct BaselineRun {
    batch: Throughput,
    single: Throughput,
    queries: Vec<QueryTimes>,
    export_csv: ExportTimes,
    disk_bytes: u64,
}

/// The baseline, start to finish (blocking: SQLite in this thread).
fn run_baseline(
    cfg: &Config,
    path: &Path,
    data_path: &Path,
    batch_n: u64,
    shapes: &[Shape],
) -> Result<BaselineRun> {
    use baseline::{Baseline, BaselineRow};
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
            });
        }
    }

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

impl Results {
    /// The worst warm p95 and cold figures of the dashboard query.
    fn worst_dashboard(&self) -> (f64, f64) {
        self.queries.iter().fold((0.0, 0.0), |(w, c), q| {
            (
                f64::max(w, q.auditlog.dashboard.p95_ms),
                f64::max(c, q.auditlog.dashboard_cold_ms),
            )
        })
    }
}
