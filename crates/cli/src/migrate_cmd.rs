//! `auditlog migrate-store`: copies the embedded store of a data directory
//! into an empty PostgreSQL database, bit for bit, then opens the database
//! as a store and checks every account's tree head and latest checkpoint
//! against the source (`auditlog_store::migrate` has the rules).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use auditlog_store::migrate::{self, Copied, CopyProgress};
use auditlog_store::postgres::{PgBackend, PgOptions, PostgresStore};
use auditlog_store::sqlite::{DB_FILE, SqliteBackend, SqliteOptions};

use crate::redact_url;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The data directory of the embedded store to copy (refused while a
    /// server runs on it; none can start until the copy is done).
    #[arg(long)]
    pub from: PathBuf,
    /// The PostgreSQL database to copy into (postgres://… or `host=… dbname=…`).
    /// It must be empty: the copy refuses a database that holds an account
    /// or a token, and writes all or nothing.
    #[arg(long)]
    pub to: String,
    /// Copy even if the PostgreSQL server runs with `fsync=off` or
    /// `synchronous_commit=off`.
    #[arg(long)]
    pub allow_unsafe_durability: bool,
}

/// The progress bar on stderr (hidden when stderr is not a terminal).
struct Bar(indicatif::ProgressBar);

impl CopyProgress for Bar {
    fn phase(&mut self, name: &str, total: Option<u64>) {
        match total {
            Some(total) => {
                self.0.set_length(total);
                self.0.set_position(0);
                self.0.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg:>12} {bar:40} {pos}/{len} ({per_sec}, {eta})",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
            }
            None => self.0.set_style(
                indicatif::ProgressStyle::with_template("{msg:>12} {spinner}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            ),
        }
        self.0.set_message(name.to_owned());
        self.0.tick();
    }

    fn advance(&mut self, n: u64) {
        self.0.inc(n);
    }
}

pub fn run(args: MigrateArgs) -> Result<()> {
    let started = std::time::Instant::now();
    if !args.from.join(DB_FILE).is_file() {
        bail!(
            "no store in {}: {} is missing",
            args.from.display(),
            args.from.join(DB_FILE).display()
        );
    }
    // A server on the directory would go on acknowledging events the copy
    // never sees: refuse while one runs (and keep one from starting).
    let _lock = crate::lock_data_dir(&args.from)?;
    let target_name = format!("the database {}", redact_url(&args.to));
    let opts = PgOptions {
        allow_unsafe_durability: args.allow_unsafe_durability,
        listen_for_revocations: false,
        wake_on_appends: false,
        pool_size: 2,
        ..PgOptions::default()
    };
    let source = SqliteBackend::open(&args.from, SqliteOptions::default())
        .with_context(|| format!("opening the store in {}", args.from.display()))?;
    // Held until the check is done: nothing is written to the source
    // meanwhile (see `SqliteBackend::dump`).
    let mut dump = source.dump().with_context(|| {
        format!(
            "locking the store in {} (is a server still writing to it?)",
            args.from.display()
        )
    })?;
    let copied = {
        let target = PgBackend::open(&args.to, opts.clone())
            .with_context(|| format!("opening {target_name}"))?;
        let mut load = target
            .bulk_load()
            .with_context(|| format!("preparing {target_name}"))?;
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        let mut bar = Bar(bar);
        let copied = migrate::copy(&mut dump, &mut load, &mut bar)
            .with_context(|| format!("copying into {target_name} (nothing was committed)"))?;
        bar.0.finish_and_clear();
        copied
    };
    let copy_secs = started.elapsed().as_secs_f64();

    // The check reads the target as a server would: a fresh open rebuilds
    // each account's tree from the copied tiles and leaf hashes.
    let store = PostgresStore::open(&args.to, opts)
        .with_context(|| format!("opening {target_name} to check the copy"))?;
    let differences = crate::runtime()?.block_on(migrate::verify(&store, &copied))?;
    drop(store);
    drop(dump);
    print_summary(&args.from, &target_name, &copied, copy_secs);
    if !differences.is_empty() {
        for d in &differences {
            eprintln!("difference in account {}: {}", d.account, d.what);
        }
        bail!(
            "the copy in {target_name} differs from the source in {} places; do not switch to it",
            differences.len()
        );
    }
    keys_advice(&args.from);
    Ok(())
}

fn print_summary(from: &Path, target: &str, c: &Copied, secs: f64) {
    let signed = c
        .accounts
        .iter()
        .filter(|a| a.latest_checkpoint.is_some())
        .count();
    println!(
        "copied {} accounts, {} events, {} tiles, {} checkpoints, {} index segments and {} tokens \
         from {} into {target} in {secs:.1} s",
        c.accounts.len(),
        c.events,
        c.tiles,
        c.checkpoints,
        c.index_segments,
        c.tokens,
        from.display(),
    );
    println!(
        "verified: {} tree heads equal, {signed} latest checkpoints equal",
        c.accounts.len()
    );
}

/// The signing key and the server secret are files, not part of the store:
/// the copy does not move them (a database is no place for a private key),
/// but every instance on the database needs the very ones the embedded
/// server used, or new checkpoints would not verify with the published key
/// and cursors and fingerprints would change.
fn keys_advice(from: &Path) {
    let key = from.join("signing.key");
    let secret = from.join("server.key");
    if key.is_file() && secret.is_file() {
        println!(
            "start every instance with --signing-key {} --server-secret {} \
             (copy both files to each machine, mode 0600): the log's checkpoints are signed \
             with that key, and the secret keys its fingerprints and cursors",
            key.display(),
            secret.display()
        );
    } else {
        println!(
            "start every instance with the --signing-key and --server-secret the embedded \
             server used (they are not in {}): the log's checkpoints are signed with that key, \
             and the secret keys its fingerprints and cursors",
            from.display()
        );
    }
}
