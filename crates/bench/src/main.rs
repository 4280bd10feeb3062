//! `auditlog-bench`: the benchmark harness (issue 5). It measures a real
//! `auditlog serve` over HTTP against a plain SQLite table loaded with the
//! same rows in the same run, and reports every figure side by side.
//!
//! It is its own binary, not a subcommand of `auditlog`, so the product
//! carries neither the baseline's SQL nor the load generator; it talks to
//! auditlog only as a client would, through the binary and HTTP (see
//! [`server::Auditlog`] for how it finds the binary).
//!
//! The run, in order:
//! 1. [`dataset`]: seeded, realistic events written once to a file (90 % in
//!    one account, skewed event names, ~2,000 users, 400 days).
//! 2. auditlog ([`auditlog_run`], [`server`], [`client`]): start the binary on a fresh data
//!    directory; ingest in batches of 1,000 from a few clients, then the
//!    newest slice as single events from 64 clients; dashboard queries warm
//!    and cold (after a restart with the data files evicted from the page
//!    cache); CSV and JSONL exports; `auditlog verify` of the JSONL export;
//!    memory and disk.
//! 3. [`baseline_run`], [`baseline`]: the same rows into one SQLite table, the same loads,
//!    queries and export, in-process.
//! 4. [`report`]: a JSON result file and a Markdown table with ratios and
//!    the goals of the issue. Goals are reported, never asserted: the
//!    command exits 0 whether or not they are met, and fails only when
//!    something does not work.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;

use auditlog_core::record::Micros;

mod auditlog_run;
mod baseline;
mod baseline_run;
mod client;
mod dataset;
mod pg_baseline;
mod pg_run;
mod proc;
mod report;
mod server;
mod stats;

use client::Throughput;
use dataset::DatasetStats;
use stats::{Latency, Repeat};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmark auditlog against a plain SQLite baseline.
#[derive(Parser, Debug)]
#[command(name = "auditlog-bench", version)]
pub struct BenchArgs {
    /// The `auditlog` binary to measure [default: under cargo, built with
    /// `cargo build -p auditlog` in the bench's profile; otherwise the one
    /// beside this executable].
    #[arg(long, value_name = "PATH")]
    pub auditlog: Option<PathBuf>,
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
    /// Only the two ingest phases of auditlog (batches, then single
    /// events), with the server's CPU per event: no queries, exports,
    /// restarts or baseline. About a minute at 1M events, for comparing
    /// the ingest cost of two binaries; the JSON result holds the two
    /// throughputs only, and no Markdown table is written. With
    /// `--database-url`, then the batches into auditlog on PostgreSQL (one
    /// instance) and into the PostgreSQL baseline.
    #[arg(long)]
    pub ingest_only: bool,
    /// Parts of the run to leave out, e.g. `--skip baseline,cold,export`
    /// to measure only auditlog's warm queries at 10M events in minutes:
    /// `baseline` (no SQLite table, so counts are not cross-checked),
    /// `cold` (no restart before each query), `export` (no exports, no
    /// verify).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub skip: Vec<Skip>,
    /// An argument added to every `auditlog serve` the bench starts
    /// (repeatable), e.g. `--serve-arg=--index-memory=128` to measure a
    /// memory budget.
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
    /// A PostgreSQL server (postgres://…) to measure auditlog on as well,
    /// beside a plain-PostgreSQL baseline: the bench creates its own
    /// databases there and drops them afterwards.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// A part of the run `--skip` can leave out.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Skip {
    Baseline,
    Cold,
    Export,
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
    /// Parts left out (`--skip`).
    pub skip: Vec<Skip>,
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
            mode: match (args.ingest_only, args.quick) {
                (true, _) => "ingest-only",
                (false, true) => "quick",
                (false, false) => "full",
            },
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
            skip: args.skip.clone(),
        }
    }

    pub fn skips(&self, part: Skip) -> bool {
        self.skip.contains(&part)
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

/// The description needle of the `contains` shape: a city, in an eighth of
/// the people's descriptions (the same text in any case, so SQLite's `LIKE`
/// and auditlog's case-insensitive `contains` agree).
const DESCRIPTION_NEEDLE: &str = "Lagos";

/// The filter shapes: the seed's five, then the heavy-hitter shapes of
/// issue 13 on the dataset's busiest user (the service account, ~20 %),
/// busiest and rarest IP address and busiest workflow, and a description
/// filter (which reads every candidate's stored record).
fn shapes(ds: &DatasetStats) -> Vec<Shape> {
    let shape = |name: String, api: &[&str], join_or, sql: Option<&str>, params: &[&str]| Shape {
        name,
        api: api.iter().map(|s| (*s).to_owned()).collect(),
        join_or,
        sql: sql.map(str::to_owned),
        sql_params: params.iter().map(|s| (*s).to_owned()).collect(),
    };
    let (user, ip, rare_ip, wf) = (
        ds.busy_user.as_str(),
        ds.busy_ip.as_str(),
        ds.rare_ip.as_str(),
        ds.busy_workflow.as_str(),
    );
    let user_eq = format!("user:eq:{user}");
    let user_ne = format!("user:ne:{user}");
    let ip_eq = format!("ip_address:eq:{ip}");
    let rare_ip_eq = format!("ip_address:eq:{rare_ip}");
    let wf_eq = format!("workflow_id:eq:{wf}");
    let desc = format!("description:contains:{DESCRIPTION_NEEDLE}");
    let like = format!("%{DESCRIPTION_NEEDLE}%");
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
            format!("event = Login OR user = {user}"),
            &["event:eq:Login", &user_eq],
            true,
            Some("(event = ? OR user_name = ?)"),
            &["Login", user],
        ),
        shape(
            "event ≠ Login AND category ≠ Prompts".into(),
            &["event:ne:Login", "category:ne:Prompts"],
            false,
            Some("event != ? AND category != ?"),
            &["Login", "Prompts"],
        ),
        shape(
            format!("user = {user}"),
            &[&user_eq],
            false,
            Some("user_name = ?"),
            &[user],
        ),
        shape(
            format!("user ≠ {user}"),
            &[&user_ne],
            false,
            Some("user_name != ?"),
            &[user],
        ),
        shape(
            format!("ip = {ip}"),
            &[&ip_eq],
            false,
            Some("ip = ?"),
            &[ip],
        ),
        shape(
            format!("ip = {rare_ip} (rare)"),
            &[&rare_ip_eq],
            false,
            Some("ip = ?"),
            &[rare_ip],
        ),
        shape(
            format!("event = Role created OR user = {user}"),
            &["event:eq:Role created", &user_eq],
            true,
            Some("(event = ? OR user_name = ?)"),
            &["Role created", user],
        ),
        shape(
            format!("user = {user} AND event = Login"),
            &[&user_eq, "event:eq:Login"],
            false,
            Some("user_name = ? AND event = ?"),
            &[user, "Login"],
        ),
        shape(
            format!("ip = {ip} AND user ≠ {user}"),
            &[&ip_eq, &user_ne],
            false,
            Some("ip = ? AND user_name != ?"),
            &[ip, user],
        ),
        shape(
            format!("workflow = {wf}"),
            &[&wf_eq],
            false,
            Some("workflow_id = ?"),
            &[wf],
        ),
        shape(
            format!("description contains {DESCRIPTION_NEEDLE}"),
            &[&desc],
            false,
            Some("description LIKE ?"),
            &[&like],
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
    /// Every request was refused as too broad (400 `query-too-broad`: it
    /// would read more stored events than the server's cap): the times are
    /// those of the refusals, what such a query costs at most.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
    /// Why the query has no figures (e.g. stopped at the server's query
    /// deadline): reported, not raised, so one slow shape does not end
    /// the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    /// auditlog on PostgreSQL and its baseline (`--database-url`).
    pub postgres: Option<pg_run::PgResults>,
    pub total_secs: f64,
}

fn main() -> std::process::ExitCode {
    let args = BenchArgs::parse();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(args)));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain on one line, as `auditlog` prints it.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: BenchArgs) -> Result<()> {
    let cfg = Config::new(&args);
    let bin = server::Auditlog::locate(args.auditlog.clone())?;
    server::SERVE_ARGS.get_or_init(|| args.serve_args.clone());
    let root = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let work = tempfile::Builder::new()
        .prefix("auditlog-bench-")
        .tempdir_in(&root)
        .with_context(|| format!("creating a temporary directory in {}", root.display()))?;
    if args.ingest_only {
        let outcome = run_ingest_only(&bin, &cfg, work.path(), args.database_url.as_deref()).await;
        if args.keep {
            eprintln!("bench: kept {}", work.keep().display());
        }
        return write_json(&args.out, &outcome?);
    }
    let outcome = run_in(&bin, &cfg, work.path(), args.database_url.as_deref()).await;
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

fn write_json(out: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("bench: wrote {}", out.display());
    Ok(())
}

/// What `--ingest-only` measures.
#[derive(Debug, Clone, Serialize)]
struct IngestResults {
    started_at: String,
    config: Config,
    machine: proc::Machine,
    batch: Throughput,
    single: Throughput,
    /// With `--database-url`: the batches into auditlog on PostgreSQL and
    /// into the plain PostgreSQL baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres: Option<pg_run::PgIngest>,
}

/// The dataset, then [`auditlog_run::start_and_ingest`], then a stop; with
/// a `database_url`, then [`pg_run::ingest_only`].
async fn run_ingest_only(
    bin: &server::Auditlog,
    cfg: &Config,
    work: &Path,
    database_url: Option<&str>,
) -> Result<IngestResults> {
    let started_at = jiff::Timestamp::now().to_string();
    let machine = proc::Machine::probe();
    let data_path = work.join("dataset.tsv");
    let now_us = Micros::from_timestamp(jiff::Timestamp::now()).0;
    let (n, seed, p) = (cfg.events, cfg.seed, data_path.clone());
    tokio::task::spawn_blocking(move || dataset::generate(&p, n, seed, now_us)).await??;
    let batch_n = cfg.events - cfg.single_events;
    let http = client::http_client()?;
    let loaded = auditlog_run::start_and_ingest(bin, cfg, work, &data_path, batch_n, &http).await?;
    loaded.srv.stop().await?;
    let postgres = match database_url {
        Some(url) => {
            let admin = pg_baseline::PgAdmin::new(url).await?;
            Some(pg_run::ingest_only(bin, cfg, work, &data_path, batch_n, &admin).await?)
        }
        None => None,
    };
    Ok(IngestResults {
        started_at,
        config: cfg.clone(),
        machine,
        batch: loaded.batch,
        single: loaded.single,
        postgres,
    })
}

/// Progress on stderr; the table goes to stdout.
fn step(msg: impl std::fmt::Display) {
    eprintln!("bench: {msg}");
}

async fn run_in(
    bin: &server::Auditlog,
    cfg: &Config,
    work: &Path,
    database_url: Option<&str>,
) -> Result<Results> {
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
    let shapes = shapes(&ds);
    let batch_n = cfg.events - cfg.single_events;

    let a = auditlog_run::run_auditlog(bin, cfg, work, &data_path, batch_n, &ds, &shapes).await?;

    let b = if cfg.skips(Skip::Baseline) {
        None
    } else {
        step("baseline: loading the same rows into a plain SQLite table");
        let (cfg, data_path, shapes) = (cfg.clone(), data_path.clone(), shapes.clone());
        let path = work.join("baseline.db");
        Some(
            tokio::task::spawn_blocking(move || {
                baseline_run::run_baseline(&cfg, &path, &data_path, batch_n, &shapes)
            })
            .await??,
        )
    };

    let postgres = match database_url {
        Some(url) => {
            let admin = pg_baseline::PgAdmin::new(url).await?;
            Some(pg_run::run(bin, cfg, work, &data_path, batch_n, &ds, &shapes, &admin).await?)
        }
        None => None,
    };

    let mut queries = Vec::new();
    let mut count_mismatches = Vec::new();
    for (i, (shape, range, times)) in a.queries.into_iter().enumerate() {
        let base = b.as_ref().and_then(|b| b.queries.get(i).cloned());
        if let Some(bt) = &base
            && bt.error.is_none()
            && times.error.is_none()
            && !times.refused
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
        baseline_batch: b.as_ref().map(|b| b.batch.clone()),
        baseline_single: b.as_ref().map(|b| b.single.clone()),
        queries,
        export_csv: a.export_csv,
        export_jsonl: a.export_jsonl,
        baseline_export_csv: b.as_ref().map(|b| b.export_csv.clone()),
        verify: a.verify,
        auditlog_footprint: a.footprint,
        baseline_disk_bytes: b.as_ref().map(|b| b.disk_bytes),
        count_mismatches,
        postgres,
        total_secs: started.elapsed().as_secs_f64(),
    })
}

impl Results {
    /// The worst warm p95 and cold figures of the dashboard query (of the
    /// queries answered: a refusal as too broad is reported apart).
    fn worst_dashboard(&self) -> (f64, f64) {
        let answered = self.queries.iter().filter(|q| !q.auditlog.refused);
        answered.fold((0.0, 0.0), |(w, c), q| {
            (
                f64::max(w, q.auditlog.dashboard.p95_ms),
                f64::max(c, q.auditlog.dashboard_cold_ms),
            )
        })
    }
}
