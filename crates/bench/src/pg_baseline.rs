//! PostgreSQL for the bench (`--database-url`): the databases it creates
//! and drops on that server ([`PgAdmin`]), and the plain-PostgreSQL
//! baseline — the SQLite baseline's table, indexes and SQL
//! ([`crate::baseline`]) on PostgreSQL, loaded with binary `COPY`.
//!
//! Like the SQLite baseline, deliberately plain: the server's settings as
//! they are, no `ANALYZE` beyond autovacuum's, no covering or partial
//! indexes. Batches are one `COPY` of 1,000 rows each (its own
//! transaction: one commit, as auditlog's batch request), sent from as many
//! connections as auditlog has batch clients; single events are one
//! `INSERT` each (autocommit) from as many connections as auditlog has
//! single-event clients.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use crate::baseline::{self, BaselineRow};
use crate::client::{self, Throughput};
use crate::dataset::{self, MAIN_ACCOUNT};
use crate::stats::Latency;
use crate::{Config, ExportTimes, QueryTimes, Range, Shape, Skip, proc, ranges, step};

/// The PostgreSQL server the bench measures on: it creates a database of
/// its own for each part of the run and drops it afterwards.
#[derive(Debug, Clone)]
pub struct PgAdmin {
    url: String,
    prefix: String,
}

/// `url` with its database replaced by `name` (`postgres://…/db?…` or a
/// `key=value` string, where a later `dbname` wins).
pub fn with_dbname(url: &str, name: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (path, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
        let authority = path.split('/').next().unwrap_or_default();
        format!("{scheme}://{authority}/{name}{query}")
    } else {
        format!("{url} dbname={name}")
    }
}

pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(conn);
    Ok(client)
}

impl PgAdmin {
    pub async fn new(url: &str) -> Result<PgAdmin> {
        connect(url).await?;
        Ok(PgAdmin {
            url: url.to_owned(),
            prefix: format!("auditlog_bench_{}", std::process::id()),
        })
    }

    /// Creates (anew) the database of `part`; its URL.
    pub async fn create(&self, part: &str) -> Result<String> {
        let name = format!("{}_{part}", self.prefix);
        let admin = connect(&self.url).await?;
        // Two statements: neither may run inside a transaction block,
        // which one multi-statement string would be.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin
                .batch_execute(&sql)
                .await
                .with_context(|| format!("creating the database {name}"))?;
        }
        Ok(with_dbname(&self.url, &name))
    }

    /// Bytes the database of `part` takes.
    pub async fn size(&self, part: &str) -> Result<u64> {
        let admin = connect(&self.url).await?;
        let row = admin
            .query_one(
                "SELECT pg_database_size($1)",
                &[&format!("{}_{part}", self.prefix)],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    pub async fn drop(&self, part: &str) -> Result<()> {
        let admin = connect(&self.url).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {}_{part} WITH (FORCE)",
                self.prefix
            ))
            .await
            .context("dropping a bench database")
    }
}

/// What the PostgreSQL baseline measured.
#[derive(Debug, Clone, Serialize)]
pub struct PgBaselineRun {
    pub batch: Throughput,
    pub single: Throughput,
    pub queries: Vec<QueryTimes>,
    pub export_csv: ExportTimes,
    pub disk_bytes: u64,
}

const COLUMNS: &str = "account, occurred_at, level, category, event, user_id, user_name, ip, \
     workflow_id, description, metadata";

/// A batch of rows as one binary `COPY` body.
fn copy_body(rows: &[BaselineRow]) -> Bytes {
    let mut out = BytesMut::with_capacity(rows.len() * 600);
    out.put_slice(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
    let text = |out: &mut BytesMut, s: Option<&str>| match s {
        Some(s) => {
            out.put_i32(s.len() as i32);
            out.put_slice(s.as_bytes());
        }
        None => out.put_i32(-1),
    };
    for r in rows {
        out.put_i16(11);
        for s in [
            Some(r.account.as_str()),
            Some(&r.occurred_at),
            Some(&r.level),
            Some(&r.category),
            Some(&r.event),
            Some(&r.user_id),
            r.user_name.as_deref(),
            r.ip.as_deref(),
            r.workflow_id.as_deref(),
            Some(&r.description),
            Some(&r.metadata),
        ] {
            text(&mut out, s);
        }
    }
    out.put_i16(-1);
    out.freeze()
}

/// The baseline, start to finish, in a database of its own.
pub async fn run(
    cfg: &Config,
    admin: &PgAdmin,
    data_path: &std::path::Path,
    batch_n: u64,
    shapes: &[Shape],
) -> Result<PgBaselineRun> {
    let url = admin.create("baseline").await?;
    let db = connect(&url).await?;
    db.batch_execute(baseline::SCHEMA).await?;
    let batch = copy_batches(cfg, &url, data_path, batch_n).await?;

    let singles = dataset::Reader::open(&data_path.to_owned())?
        .skip(batch_n as usize)
        .map(|item| item.and_then(|(a, j)| BaselineRow::from_ingest(&a, &j)))
        .collect::<Result<Vec<_>>>()?;
    let single = insert_singles(&url, singles, cfg.single_clients).await?;
    step(format_args!(
        "  PostgreSQL baseline: {:.0} events/s with one INSERT per event from {} connections",
        single.events_per_sec, cfg.single_clients
    ));
    db.batch_execute("VACUUM ANALYZE baseline_events").await?;
    let disk_bytes = admin.size("baseline").await?;

    step("PostgreSQL baseline: warm dashboard queries");
    let rep = cfg.repeat();
    let mut conns = [
        connect(&url).await?,
        connect(&url).await?,
        connect(&url).await?,
    ];
    let mut queries = Vec::new();
    for shape in shapes {
        for range in &ranges() {
            let c = &conns;
            let dashboard = rep
                .run(|| async move { dashboard(c, shape, range).await.map(drop) })
                .await?;
            let c = &conns[0];
            let count = rep
                .run(|| async move { count(c, shape, range).await.map(drop) })
                .await?;
            let histogram = rep
                .run(|| async move { histogram(c, shape, range).await.map(drop) })
                .await?;
            let first_page = rep
                .run(|| async move { first_page(c, shape, range).await.map(drop) })
                .await?;
            queries.push(QueryTimes {
                dashboard,
                dashboard_cold_ms: 0.0,
                count,
                histogram,
                first_page,
                matched: count_of(c, shape, range).await?,
                refused: false,
                error: None,
            });
        }
    }
    if !cfg.skips(Skip::Cold) {
        // Fresh connections (a new backend process each, with empty
        // caches of its own). PostgreSQL's shared buffers and the page
        // cache are not emptied: the server is not the bench's to restart.
        step("PostgreSQL baseline: cold dashboard queries (fresh connections)");
        let mut i = 0;
        for shape in shapes {
            for range in ranges() {
                conns = [
                    connect(&url).await?,
                    connect(&url).await?,
                    connect(&url).await?,
                ];
                let t = Instant::now();
                dashboard(&conns, shape, &range).await?;
                queries[i].dashboard_cold_ms = t.elapsed().as_secs_f64() * 1000.0;
                i += 1;
            }
        }
    }

    step("PostgreSQL baseline: CSV export of everything");
    let t = Instant::now();
    let (rows, bytes) = export_csv(&conns[0]).await?;
    let secs = t.elapsed().as_secs_f64();
    step(format_args!(
        "  PostgreSQL baseline: {:.0} rows/s",
        rows as f64 / secs
    ));
    drop(conns);
    drop(db);
    admin.drop("baseline").await?;
    Ok(PgBaselineRun {
        batch,
        single,
        queries,
        export_csv: ExportTimes {
            rows,
            bytes,
            secs,
            rows_per_sec: rows as f64 / secs,
            rss_before: None,
            rss_peak: None,
        },
        disk_bytes,
    })
}

/// The first `batch_n` rows of the dataset into the baseline's table (in
/// database `url`, schema made) as 1,000-row binary `COPY`s from
/// `cfg.batch_clients` connections.
pub async fn copy_batches(
    cfg: &Config,
    url: &str,
    data_path: &std::path::Path,
    batch_n: u64,
) -> Result<Throughput> {
    // A reader thread parses the dataset into COPY bodies, as auditlog's
    // client reads it into request bodies; the connections send them.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(cfg.batch_clients * 2);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let path = data_path.to_owned();
    let cpu0 = proc::cpu_secs(None);
    let started = Instant::now();
    let reader = tokio::task::spawn_blocking(move || -> Result<u64> {
        let mut reader = dataset::Reader::open(&path)?;
        let (mut left, mut requests) = (batch_n, 0);
        let mut rows = Vec::with_capacity(client::BATCH);
        while left > 0 {
            rows.clear();
            for item in reader.by_ref().take(client::BATCH.min(left as usize)) {
                let (account, json) = item?;
                rows.push(BaselineRow::from_ingest(&account, &json)?);
            }
            left -= rows.len() as u64;
            requests += 1;
            if tx.blocking_send(copy_body(&rows)).is_err() {
                anyhow::bail!("the baseline's connections stopped");
            }
        }
        Ok(requests)
    });
    let mut workers = Vec::new();
    for _ in 0..cfg.batch_clients {
        let (rx, conn) = (rx.clone(), connect(url).await?);
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let next = rx.lock().await.recv().await;
                let Some(body) = next else { break };
                let t = Instant::now();
                let sink = conn
                    .copy_in(&format!(
                        "COPY baseline_events ({COLUMNS}) FROM STDIN (FORMAT binary)"
                    ))
                    .await?;
                futures_util::pin_mut!(sink);
                sink.send(body).await?;
                sink.finish().await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await??);
    }
    let requests = reader.await??;
    let secs = started.elapsed().as_secs_f64();
    let batch = Throughput {
        events: batch_n,
        requests,
        clients: cfg.batch_clients,
        secs,
        events_per_sec: batch_n as f64 / secs,
        latency: Latency::of(samples),
        server_cpu_secs: None,
        client_cpu_secs: proc::cpu_secs(None) - cpu0,
    };
    step(format_args!(
        "  PostgreSQL baseline: {:.0} events/s in 1,000-row COPYs from {} connections",
        batch.events_per_sec, cfg.batch_clients
    ));

    Ok(batch)
}

/// One `INSERT` per row (autocommit) from `clients` connections.
async fn insert_singles(url: &str, rows: Vec<BaselineRow>, clients: usize) -> Result<Throughput> {
    let n = rows.len();
    let rows = Arc::new(rows);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu0 = proc::cpu_secs(None);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (rows, next, conn) = (rows.clone(), next.clone(), connect(url).await?);
        workers.push(tokio::spawn(async move {
            let stmt = conn
                .prepare(&format!(
                    "INSERT INTO baseline_events ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .await?;
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(r) = rows.get(i) else { break };
                let t = Instant::now();
                conn.execute(
                    &stmt,
                    &[
                        &r.account,
                        &r.occurred_at,
                        &r.level,
                        &r.category,
                        &r.event,
                        &r.user_id,
                        &r.user_name,
                        &r.ip,
                        &r.workflow_id,
                        &r.description,
                        &r.metadata,
                    ],
                )
                .await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut samples = Vec::with_capacity(n);
    for w in workers {
        samples.extend(w.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Throughput {
        events: n as u64,
        requests: n as u64,
        clients,
        secs,
        events_per_sec: n as f64 / secs.max(f64::MIN_POSITIVE),
        latency: Latency::of(samples),
        server_cpu_secs: None,
        client_cpu_secs: proc::cpu_secs(None) - cpu0,
    })
}

/// The SQLite baseline's WHERE clause with PostgreSQL's `$n` parameters.
fn selection(shape: &Shape, range: &Range) -> (String, Vec<String>) {
    let (sql, params) = baseline::selection(MAIN_ACCOUNT, shape, range);
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(ch);
        }
    }
    (out, params)
}

fn params(p: &[String]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|s| s as &(dyn ToSql + Sync)).collect()
}

async fn count_of(c: &tokio_postgres::Client, shape: &Shape, range: &Range) -> Result<u64> {
    let (w, p) = selection(shape, range);
    let row = c
        .query_one(
            &format!("SELECT count(*) FROM baseline_events WHERE {w}"),
            &params(&p),
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

async fn count(c: &tokio_postgres::Client, shape: &Shape, range: &Range) -> Result<u64> {
    count_of(c, shape, range).await
}

async fn histogram(c: &tokio_postgres::Client, shape: &Shape, range: &Range) -> Result<usize> {
    let (w, p) = selection(shape, range);
    let rows = c
        .query(
            &format!(
                "SELECT substr(occurred_at, 1, 10) AS day, count(*) FROM baseline_events \
                 WHERE {w} GROUP BY day ORDER BY day"
            ),
            &params(&p),
        )
        .await?;
    Ok(rows.len())
}

async fn first_page(c: &tokio_postgres::Client, shape: &Shape, range: &Range) -> Result<usize> {
    let (w, p) = selection(shape, range);
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM baseline_events WHERE {w} \
                 ORDER BY occurred_at DESC LIMIT 50"
            ),
            &params(&p),
        )
        .await?;
    let mut bytes = 0usize;
    for r in &rows {
        for i in 0..11 {
            bytes += r.get::<_, Option<&str>>(i).map_or(0, str::len);
        }
    }
    std::hint::black_box(bytes);
    Ok(rows.len())
}

/// Count, histogram and first page at once on three connections.
async fn dashboard(
    conns: &[tokio_postgres::Client; 3],
    shape: &Shape,
    range: &Range,
) -> Result<u64> {
    let (n, h, p) = tokio::join!(
        count(&conns[0], shape, range),
        histogram(&conns[1], shape, range),
        first_page(&conns[2], shape, range)
    );
    h?;
    p?;
    n
}

/// Every row of the main account, newest first, as CSV with auditlog's
/// columns (thrown away, counted); (rows, bytes).
async fn export_csv(c: &tokio_postgres::Client) -> Result<(u64, u64)> {
    let stream = c
        .query_raw(
            "SELECT occurred_at, event, category, description, user_name, user_id, ip \
             FROM baseline_events WHERE account = $1 ORDER BY occurred_at DESC",
            [MAIN_ACCOUNT],
        )
        .await?;
    futures_util::pin_mut!(stream);
    let mut bytes =
        b"Date and Time,Event Name,Event Category,Description,User/App Name,IP Address\r\n".len()
            as u64;
    let (mut n, mut line) = (0u64, String::with_capacity(512));
    while let Some(r) = stream.next().await {
        let r = r?;
        line.clear();
        let user: &str = match r.get::<_, Option<&str>>(4) {
            Some(name) => name,
            None => r.get(5),
        };
        let cells = [
            r.get::<_, &str>(0),
            r.get(1),
            r.get(2),
            r.get(3),
            user,
            r.get::<_, Option<&str>>(6).unwrap_or(""),
        ];
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            baseline::push_csv_cell(&mut line, cell);
        }
        line.push_str("\r\n");
        bytes += line.len() as u64;
        n += 1;
    }
    Ok((n, bytes))
}

#[cfg(test)]
mod tests {
    use super::with_dbname;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        let u = |url| with_dbname(url, "b");
        assert_eq!(u("postgres://p@h:5/postgres"), "postgres://p@h:5/b");
        assert_eq!(u("postgres://p@h:5"), "postgres://p@h:5/b");
        assert_eq!(
            u("postgres://p@h/x?sslmode=disable"),
            "postgres://p@h/b?sslmode=disable"
        );
        assert_eq!(u("host=h user=p"), "host=h user=p dbname=b");
    }
}
