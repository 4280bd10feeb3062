//! `auditlog export` and `auditlog import`: JSONL to and from a running
//! server over the public API, with a progress bar.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use futures_util::StreamExt;
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Server URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "AUDITLOG_URL")]
    pub url: String,
    /// A token with the read role.
    #[arg(long, env = "AUDITLOG_TOKEN")]
    pub token: String,
    #[arg(long, env = "AUDITLOG_ACCOUNT")]
    pub account: String,
    /// Time range preset (all_time by default: the whole log).
    #[arg(long, default_value = "all_time", env = "AUDITLOG_RANGE")]
    pub range: String,
    /// Filters `COLUMN:OP:VALUE` (repeatable; the variable takes one).
    #[arg(long, env = "AUDITLOG_FILTER")]
    pub filter: Vec<String>,
    /// Output file (stdout when absent).
    #[arg(long, short, env = "AUDITLOG_OUTPUT")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "AUDITLOG_URL")]
    pub url: String,
    /// A token with the ingest role.
    #[arg(long, env = "AUDITLOG_TOKEN")]
    pub token: String,
    #[arg(long, env = "AUDITLOG_ACCOUNT")]
    pub account: String,
    /// JSONL file of records (an export) or of ingest bodies.
    #[arg(env = "AUDITLOG_IMPORT_FILE")]
    pub file: PathBuf,
    /// Events per request.
    #[arg(long, default_value_t = 1000, env = "AUDITLOG_BATCH")]
    pub batch: usize,
}

pub async fn export(args: ExportArgs) -> Result<()> {
    let mut query: Vec<(&str, &str)> = vec![("format", "jsonl"), ("range", &args.range)];
    for f in &args.filter {
        query.push(("filter", f));
    }
    let qs: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&query)
        .finish();
    let url = format!(
        "{}/v1/accounts/{}/events/export?{qs}",
        args.url.trim_end_matches('/'),
        args.account
    );
    let res = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&args.token)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !res.status().is_success() {
        let status = res.status();
        bail!(
            "export failed: {status}: {}",
            res.text().await.unwrap_or_default()
        );
    }
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} exported {human_pos} records ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("reading the export")?;
        progress.inc(chunk.iter().filter(|b| **b == b'\n').count() as u64);
        out.write_all(&chunk)?;
    }
    out.flush()?;
    progress.finish_and_clear();
    eprintln!("exported {} records", progress.position());
    Ok(())
}

/// Turns an exported record into an ingest body; ingest bodies pass through.
/// The original id becomes the idempotency key, so an interrupted import can
/// simply be run again.
fn to_ingest_body(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        if let Some(id) = obj.remove("id") {
            obj.entry("idempotency_key").or_insert(id);
        }
        for k in ["seq", "account_id", "recorded_at", "leaf_hash"] {
            obj.remove(k);
        }
    }
    v
}

pub async fn import(args: ImportArgs) -> Result<()> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = indicatif::ProgressBar::new(total);
    progress.set_style(
        indicatif::ProgressStyle::with_template("importing {bar:40} {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let client = reqwest::Client::new();
    let url = format!(
        "{}/v1/accounts/{}/events/batch",
        args.url.trim_end_matches('/'),
        args.account
    );
    let mut batch = Vec::with_capacity(args.batch);
    let mut sent = 0usize;
    let mut skipped = 0usize;
    let reader = std::io::BufReader::new(file);
    let flush = |batch: Vec<Value>| {
        let client = client.clone();
        let url = url.clone();
        let token = args.token.clone();
        async move {
            let res = client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({ "events": batch }))
                .send()
                .await
                .with_context(|| format!("POST {url}"))?;
            if !res.status().is_success() {
                let status = res.status();
                bail!(
                    "import failed: {status}: {}",
                    res.text().await.unwrap_or_default()
                );
            }
            Ok(())
        }
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        progress.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(&line).with_context(|| format!("line {} is not JSON", i + 1))?;
        // The server records its own exports; those records describe reads
        // of the source log and cannot (and need not) be ingested again.
        if v.get("category").and_then(Value::as_str)
            == Some(auditlog_core::validate::RESERVED_CATEGORY)
        {
            skipped += 1;
            continue;
        }
        batch.push(to_ingest_body(v));
        if batch.len() == args.batch {
            sent += batch.len();
            flush(std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        sent += batch.len();
        flush(batch).await?;
    }
    progress.finish_and_clear();
    eprintln!("imported {sent} events");
    if skipped > 0 {
        eprintln!(
            "skipped {skipped} `{}` records (the source server's own export records)",
            auditlog_core::validate::RESERVED_CATEGORY
        );
    }
    Ok(())
}
