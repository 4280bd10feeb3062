//! `auditlog`: the binary. Serves the API and dashboard, runs the demo,
//! issues tokens, moves JSONL in and out, and verifies exports offline. (The
//! benchmark is its own binary, `crates/bench`.)
//!
//! What it must never do: hold product rules (they are in the libraries) or
//! speak SQL (only `auditlog-store` does); it parses arguments, wires the
//! crates together, and turns their errors into messages and exit codes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

use auditlog_core::checkpoint::NoteSigner;
use auditlog_core::secret::ServerSecret;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use auditlog_core::index::IndexLimits;
use auditlog_core::record::{AccountId, Micros};
use auditlog_server::AppState;
use auditlog_store::layered::IndexOptions;
use auditlog_store::postgres::{PgOptions, PostgresStore};
use auditlog_store::sqlite::{SqliteOptions, SqliteStore};
use auditlog_store::{DynStore, Role, TokenScope};

mod demo;
mod migrate_cmd;
mod net_args;
mod transfer;
mod verify_cmd;

#[derive(Parser, Debug)]
#[command(
    name = "auditlog",
    version,
    about = "A tamper-evident audit log service"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "AUDITLOG_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API and the dashboard.
    Serve(ServeArgs),
    /// Serve a demo account filled with realistic events; prints the URL and a token.
    Demo(demo::DemoArgs),
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print the event catalog as JSON.
    Catalog,
    /// Download an account's events as JSONL from a running server.
    Export(transfer::ExportArgs),
    /// Upload JSONL events to a running server.
    Import(transfer::ImportArgs),
    /// Verify an export, a consistency proof or a proof bundle offline.
    Verify(verify_cmd::VerifyArgs),
    /// Copy the embedded store of a data directory into an empty PostgreSQL
    /// database (events, tokens, Merkle tiles, checkpoints, index segments),
    /// then check every account's tree head and latest checkpoint there.
    MigrateStore(migrate_cmd::MigrateArgs),
    /// Maintain the column index stored beside the log.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
}

#[derive(Subcommand, Debug)]
enum IndexCommand {
    /// Rebuild every account's index from its events, check it against the
    /// stored index segments, and store the rebuilt ones (the repair path;
    /// run it while the server is stopped). Exits 1 when a stored segment
    /// differed (it is repaired all the same).
    Rebuild {
        #[arg(long, default_value = "./data", env = "AUDITLOG_DATA_DIR")]
        data_dir: PathBuf,
        /// PostgreSQL URL (postgres://…) instead of the embedded store.
        #[arg(long, env = "AUDITLOG_DATABASE_URL")]
        database_url: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a token and print it on stdout (works while the server runs).
    Create {
        /// Account id, or `*` for a platform service acting for every account.
        #[arg(long, env = "AUDITLOG_ACCOUNT")]
        account: String,
        #[arg(long, value_enum, env = "AUDITLOG_ROLE")]
        role: RoleArg,
        /// Lifetime, e.g. `90d`, `12h` or `1h 30m` (default: never expires).
        #[arg(long, env = "AUDITLOG_TOKEN_TTL", conflicts_with = "expires_at")]
        ttl: Option<String>,
        /// Expiry instant, RFC 3339 (e.g. `2027-06-30T00:00:00Z`).
        #[arg(long, env = "AUDITLOG_TOKEN_EXPIRES_AT")]
        expires_at: Option<String>,
        #[command(flatten)]
        at: StoreArgs,
    },
    /// List tokens: ids, accounts, roles, status and times; never secrets
    /// (works while the server runs).
    List {
        /// Only this account's tokens (`*`: only platform tokens).
        #[arg(long, env = "AUDITLOG_ACCOUNT")]
        account: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: StoreArgs,
    },
    /// Revoke a token by id (works while the server runs: it refuses the
    /// token within a second and records the revocation in the log).
    Revoke {
        /// The token's id (`tok_…`, as `token list` shows it).
        id: String,
        #[command(flatten)]
        at: StoreArgs,
    },
}

/// Where the token commands find the store.
#[derive(Args, Debug, Clone)]
struct StoreArgs {
    #[arg(long, default_value = "./data", env = "AUDITLOG_DATA_DIR")]
    data_dir: PathBuf,
    /// PostgreSQL URL (postgres://…) instead of the embedded store.
    #[arg(long, env = "AUDITLOG_DATABASE_URL")]
    database_url: Option<String>,
}

impl StoreArgs {
    /// The store, for messages (never a URL's password).
    fn name(&self) -> String {
        match &self.database_url {
            Some(url) => format!("the database {}", redact_url(url)),
            None => self.data_dir.display().to_string(),
        }
    }

    fn create_token(&self, record: &auditlog_store::TokenRecord) -> auditlog_store::Result<()> {
        match &self.database_url {
            Some(url) => auditlog_store::postgres::create_token_offline(url, record),
            None => auditlog_store::sqlite::create_token_offline(&self.data_dir, record),
        }
    }

    fn list_tokens(&self) -> auditlog_store::Result<Vec<auditlog_store::TokenInfo>> {
        match &self.database_url {
            Some(url) => auditlog_store::postgres::list_tokens_offline(url),
            None => auditlog_store::sqlite::list_tokens_offline(&self.data_dir),
        }
    }

    fn revoke_token(&self, id: &str, now_us: i64) -> auditlog_store::Result<Option<bool>> {
        match &self.database_url {
            Some(url) => auditlog_store::postgres::revoke_token_offline(url, id, now_us),
            None => auditlog_store::sqlite::revoke_token_offline(&self.data_dir, id, now_us),
        }
    }
}

/// A database URL without its password (`postgres://user:secret@host/db`
/// or `password=secret` in a key-value string).
fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((creds, host)) = rest.rsplit_once('@') {
            let user = creds.split(':').next().unwrap_or("");
            return format!("{scheme}://{user}@{host}");
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=…"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoleArg {
    Ingest,
    Read,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Ingest => Role::Ingest,
            RoleArg::Read => Role::Read,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// Options shared by `serve` and `demo`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", env = "AUDITLOG_LISTEN")]
    pub listen: SocketAddr,
    /// Directory of the embedded store.
    #[arg(long, default_value = "./data", env = "AUDITLOG_DATA_DIR")]
    pub data_dir: PathBuf,
    /// PostgreSQL URL (postgres://… or `host=a,b dbname=… target_session_attrs=read-write`)
    /// instead of the embedded store. Any number of instances may serve
    /// one database; each needs the same --signing-key and --server-secret.
    #[arg(long, env = "AUDITLOG_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Start even if the PostgreSQL server runs with `fsync=off` or
    /// `synchronous_commit=off` (a crash could then lose acknowledged
    /// events).
    #[arg(long, env = "AUDITLOG_ALLOW_UNSAFE_DURABILITY")]
    pub allow_unsafe_durability: bool,
    /// A proxy whose X-Forwarded-For is believed (repeatable, CIDR).
    #[arg(
        long = "trusted-proxy",
        env = "AUDITLOG_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<IpNet>,
    /// Checkpoint origin prefix: an account's log is `<origin>/<account>`.
    #[arg(long, default_value = "auditlog.local", env = "AUDITLOG_ORIGIN")]
    pub origin: String,
    /// Signing key file (PRIVATE+KEY+… text). Default: created on first
    /// start in the data directory with mode 0600.
    #[arg(long, env = "AUDITLOG_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Server secret file (64 hex digits): keys the fingerprints of secrets
    /// found in events and authenticates cursors. Default: `server.key` in
    /// the data directory, created on first start with mode 0600. Every
    /// instance serving the same store needs the same one.
    #[arg(long, env = "AUDITLOG_SERVER_SECRET")]
    pub server_secret: Option<PathBuf>,
    /// Ingest bodies over 64 KiB read and parsed at once; more wait (up to
    /// 10 s, then 503). Bounds the memory ingest can take.
    #[arg(long, default_value_t = auditlog_server::DEFAULT_LARGE_BODIES, env = "AUDITLOG_MAX_LARGE_BODIES")]
    pub max_large_bodies: usize,
    #[command(flatten)]
    pub net: net_args::NetArgs,
    /// Distinct values per column (actor ids, names, IP addresses, workflow
    /// ids) each account's in-memory index holds. Past it, events are still
    /// stored, counted and exported; filters on that column read those
    /// events from disk (slower).
    #[arg(long, default_value_t = IndexLimits::DEFAULT.max_distinct, env = "AUDITLOG_INDEX_MAX_DISTINCT", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=2_000_000_000))]
    pub index_max_distinct: usize,
    /// The same cap in MiB of text per column (a value may be 1,024
    /// characters long).
    #[arg(long, default_value_t = IndexLimits::DEFAULT.max_distinct_bytes >> 20, env = "AUDITLOG_INDEX_MAX_DISTINCT_MIB", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 20))]
    pub index_max_distinct_mib: usize,
    /// MiB of the column index's sealed segments held in memory, across
    /// all accounts (least recently used evicted first; a query loads what
    /// it needs from the store). About 24 bytes an event: 512 MiB keeps
    /// ~22 million events warm.
    #[arg(long, default_value_t = auditlog_store::layered::DEFAULT_INDEX_MEMORY >> 20, env = "AUDITLOG_INDEX_MEMORY_MIB", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1 << 30))]
    pub index_memory: usize,
    /// MiB the open accounts may hold besides their segments: each one's
    /// newest events (up to 65,535, 22 bytes each), dictionaries, rollups
    /// (~3 MB a million events) and Merkle tree edge. Past it the least
    /// recently used idle accounts are closed, and opened again from the
    /// store when next used. The account used last stays open whatever
    /// its size.
    #[arg(long, default_value_t = auditlog_store::layered::DEFAULT_OPEN_ACCOUNTS_MEMORY >> 20, env = "AUDITLOG_OPEN_ACCOUNTS_MEMORY_MIB", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1 << 30))]
    pub open_accounts_memory: usize,
    /// Seconds one query (list, count, histogram, an export's walk to its
    /// next batch) may work before it is stopped with 503.
    #[arg(long, default_value_t = auditlog_server::DEFAULT_QUERY_TIMEOUT.as_secs(), env = "AUDITLOG_QUERY_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub query_timeout_secs: u64,
    /// Stored events one list, count or histogram may read to check a
    /// description filter (or a value past the index's distinct-value
    /// caps); past it the query answers 400 saying to narrow the time
    /// range. Exports are not capped (their slots bound them).
    #[arg(long, default_value_t = auditlog_server::DEFAULT_MAX_RECORD_READS, env = "AUDITLOG_QUERY_MAX_RECORD_READS", value_parser = clap::value_parser!(u64).range(1..))]
    pub query_max_record_reads: u64,
    /// Seconds an export waits for its client to read before dropping it.
    #[arg(long, default_value_t = auditlog_server::DEFAULT_EXPORT_SEND_TIMEOUT.as_secs(), env = "AUDITLOG_EXPORT_SEND_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub export_send_timeout_secs: u64,
    /// Exports running at once on the server (more answer 429).
    #[arg(long, default_value_t = auditlog_server::DEFAULT_MAX_EXPORTS, env = "AUDITLOG_MAX_EXPORTS")]
    pub max_exports: usize,
    /// Exports running at once per token (more answer 429).
    #[arg(long, default_value_t = auditlog_server::DEFAULT_MAX_EXPORTS_PER_TOKEN, env = "AUDITLOG_MAX_EXPORTS_PER_TOKEN")]
    pub max_exports_per_token: usize,
}

impl ServeArgs {
    /// The embedded store's options these arguments ask for.
    pub fn store_options(&self) -> SqliteOptions {
        SqliteOptions {
            index: IndexOptions {
                limits: IndexLimits {
                    max_distinct: self.index_max_distinct,
                    max_distinct_bytes: self.index_max_distinct_mib << 20,
                },
                memory: self.index_memory << 20,
                open_accounts_memory: self.open_accounts_memory << 20,
            },
            ..SqliteOptions::default()
        }
    }

    /// The PostgreSQL store's options these arguments ask for.
    pub fn pg_options(&self) -> PgOptions {
        PgOptions {
            index: self.store_options().index,
            allow_unsafe_durability: self.allow_unsafe_durability,
            ..PgOptions::default()
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUDITLOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only on a terminal: a log file or collector gets plain
    // `key=value` fields.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain on one line; no backtrace for users.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => runtime()?.block_on(serve(args, None, |_| {})),
        Command::Demo(args) => runtime()?.block_on(demo::run(args)),
        Command::Token { command } => token_command(command),
        Command::Catalog => {
            let c = auditlog_core::catalog::Catalog::get();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"levels": c.levels}))?
            );
            Ok(())
        }
        Command::Export(args) => runtime()?.block_on(transfer::export(args)),
        Command::Import(args) => runtime()?.block_on(transfer::import(args)),
        Command::Verify(args) => verify_cmd::run(args),
        Command::MigrateStore(args) => migrate_cmd::run(args),
        Command::Index {
            command:
                IndexCommand::Rebuild {
                    data_dir,
                    database_url,
                },
        } => runtime()?.block_on(index_rebuild(&data_dir, database_url)),
    }
}

async fn index_rebuild(data_dir: &Path, database_url: Option<String>) -> Result<()> {
    let r = match database_url {
        Some(url) => {
            let opts = PgOptions {
                allow_unsafe_durability: true,
                wake_on_appends: false,
                ..PgOptions::default()
            };
            let store = PostgresStore::open_async(url, opts)
                .await
                .context("opening the PostgreSQL store")?;
            store.rebuild_index().await?
        }
        None => {
            // It replaces stored segments: never under a running server.
            let _lock = lock_data_dir(data_dir)?;
            let store = SqliteStore::open(data_dir, SqliteOptions::default())
                .with_context(|| format!("opening the store in {}", data_dir.display()))?;
            store.rebuild_index().await?
        }
    };
    println!(
        "{} accounts, {} index segments rebuilt from the events: {} differed from the stored ones, {} were not stored, {} accounts' dictionaries differed",
        r.accounts, r.segments, r.differed, r.missing, r.dictionaries_differed
    );
    if r.differed > 0 || r.dictionaries_differed > 0 {
        bail!("the stored index did not match the events; it has been replaced by the rebuilt one");
    }
    Ok(())
}

fn token_command(command: TokenCommand) -> Result<()> {
    let now = jiff::Timestamp::now();
    let now_us = Micros::from_timestamp(now).0;
    match command {
        TokenCommand::Create {
            account,
            role,
            ttl,
            expires_at,
            at,
        } => {
            let scope = parse_scope(&account)?;
            let expires_at_us = expiry(now, ttl.as_deref(), expires_at.as_deref())?;
            let (secret, mut record) = auditlog_server::auth::new_token(scope, role.into(), now_us);
            record.expires_at_us = expires_at_us;
            at.create_token(&record)
                .with_context(|| format!("storing the token in {}", at.name()))?;
            eprintln!("created token {}", record.id);
            println!("{secret}");
            Ok(())
        }
        TokenCommand::List { account, json, at } => {
            let scope = account.as_deref().map(parse_scope).transpose()?;
            let tokens = at
                .list_tokens()
                .with_context(|| format!("reading the tokens in {}", at.name()))?;
            let time = |t: Option<i64>| t.map(|t| Micros(t).to_rfc3339());
            let rows: Vec<serde_json::Value> = tokens
                .iter()
                .filter(|t| scope.as_ref().is_none_or(|s| *s == t.scope))
                .map(|t| {
                    let status = if t.revoked_at_us.is_some() {
                        "revoked"
                    } else if t.expires_at_us.is_some_and(|e| e <= now_us) {
                        "expired"
                    } else {
                        "active"
                    };
                    serde_json::json!({
                        "id": t.id,
                        "account": t.scope.as_str(),
                        "role": t.role.as_str(),
                        "status": status,
                        "created_at": time(Some(t.created_at_us)),
                        "created_by": t.created_by.as_deref().unwrap_or("operator"),
                        "expires_at": time(t.expires_at_us),
                        "last_used_at": time(t.last_used_at_us),
                        "revoked_at": time(t.revoked_at_us),
                        "revoked_by": t.revoked_by.as_deref().map(|b| b.to_owned())
                            .or_else(|| t.revoked_at_us.map(|_| "operator".to_owned())),
                    })
                })
                .collect();
            if json {
                for r in &rows {
                    println!("{r}");
                }
            } else {
                let cols = [
                    "id",
                    "account",
                    "role",
                    "status",
                    "created_at",
                    "expires_at",
                    "last_used_at",
                ];
                let cell = |r: &serde_json::Value, c: &str| r[c].as_str().unwrap_or("-").to_owned();
                let widths: Vec<usize> = cols
                    .iter()
                    .map(|c| {
                        rows.iter()
                            .map(|r| cell(r, c).len())
                            .chain([c.len()])
                            .max()
                            .unwrap_or(0)
                    })
                    .collect();
                let line = |cells: Vec<String>| {
                    let padded: Vec<String> = cells
                        .iter()
                        .zip(&widths)
                        .map(|(c, w)| format!("{c:<w$}"))
                        .collect();
                    println!("{}", padded.join("  ").trim_end());
                };
                line(cols.iter().map(|c| c.to_uppercase()).collect());
                for r in &rows {
                    line(cols.iter().map(|c| cell(r, c)).collect());
                }
            }
            Ok(())
        }
        TokenCommand::Revoke { id, at } => {
            match at
                .revoke_token(&id, now_us)
                .with_context(|| format!("revoking the token in {}", at.name()))?
            {
                Some(true) => {
                    eprintln!("revoked token {id}");
                    Ok(())
                }
                Some(false) => bail!("token {id} was revoked before"),
                None => bail!(
                    "no token {id} in {} (`auditlog token list` shows them)",
                    at.name()
                ),
            }
        }
    }
}

/// The expiry of a new token from `--ttl` or `--expires-at`, within the
/// same bounds as the API's.
fn expiry(now: jiff::Timestamp, ttl: Option<&str>, at: Option<&str>) -> Result<Option<i64>> {
    let max = auditlog_server::MAX_TOKEN_TTL.as_secs() as i64;
    let secs = match (ttl, at) {
        (None, None) => return Ok(None),
        (Some(ttl), _) => {
            let span: jiff::Span = ttl.parse().with_context(|| {
                format!("--ttl `{ttl}`: expected a duration such as 90d, 12h or 1h 30m")
            })?;
            span.total((
                jiff::Unit::Second,
                jiff::SpanRelativeTo::days_are_24_hours(),
            ))
            .with_context(|| format!("--ttl `{ttl}`: use days, hours, minutes or seconds"))?
                as i64
        }
        (None, Some(at)) => {
            let at: jiff::Timestamp = at
                .parse()
                .with_context(|| format!("--expires-at `{at}`: expected an RFC 3339 instant"))?;
            at.as_second() - now.as_second()
        }
    };
    if !(1..=max).contains(&secs) {
        bail!(
            "the token must expire in the future and at most {} days from now",
            max / 86_400
        );
    }
    Ok(Some(Micros::from_timestamp(now).0 + secs * 1_000_000))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn parse_scope(account: &str) -> Result<TokenScope> {
    if account == "*" {
        Ok(TokenScope::All)
    } else {
        Ok(TokenScope::Account(AccountId::parse(account)?))
    }
}

/// Loads the signing key, creating it (mode 0600) on first start.
fn load_signing_key(args: &ServeArgs) -> Result<NoteSigner> {
    let path = args
        .signing_key
        .clone()
        .unwrap_or_else(|| args.data_dir.join("signing.key"));
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading signing key {}", path.display()))?;
        return NoteSigner::from_private_key_text(text.trim())
            .with_context(|| format!("parsing signing key {}", path.display()));
    }
    if args.signing_key.is_some() {
        bail!("signing key {} does not exist", path.display());
    }
    let seed: [u8; 32] = rand::random();
    let signer = NoteSigner::from_seed(&args.origin, &seed)?;
    write_private(&path, signer.to_private_key_text().as_bytes())?;
    tracing::info!(path = %path.display(), "created a new signing key");
    Ok(signer)
}

/// Loads the server secret, creating it (mode 0600) on first start.
pub fn load_server_secret(args: &ServeArgs) -> Result<ServerSecret> {
    let path = args
        .server_secret
        .clone()
        .unwrap_or_else(|| args.data_dir.join("server.key"));
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading server secret {}", path.display()))?;
        return ServerSecret::parse(&text)
            .with_context(|| format!("parsing server secret {}", path.display()));
    }
    if args.server_secret.is_some() {
        bail!("server secret {} does not exist", path.display());
    }
    let secret = ServerSecret::from_bytes(rand::random());
    write_private(&path, secret.to_text().as_bytes())?;
    tracing::info!(path = %path.display(), "created a new server secret");
    Ok(secret)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Takes `<data dir>/auditlog.lock` (an exclusive `flock`, released by the
/// kernel when the process ends, however it ends): held by `serve` on an
/// embedded store, by `migrate-store` on its source and by `index
/// rebuild`. Two servers
/// appending to one file would each trust its own in-memory trees, and a
/// migration must not miss what a server acknowledges during the copy.
/// The token commands do not take it: they work beside a running server.
pub fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("auditlog.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => bail!(
            "the store in {} is in use by another auditlog process (a server or a migration): stop it first",
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// Opens the store named by the options: PostgreSQL with
/// `--database-url`, else the embedded store in `--data-dir`.
pub async fn open_store(args: &ServeArgs) -> Result<DynStore> {
    if let Some(url) = &args.database_url {
        if args.allow_unsafe_durability {
            tracing::warn!(
                "--allow-unsafe-durability: if the database runs with fsync or synchronous_commit off, a crash may lose acknowledged events"
            );
        }
        let store = PostgresStore::open_async(url.clone(), args.pg_options())
            .await
            .with_context(|| format!("opening the store in the database {}", redact_url(url)))?;
        return Ok(Arc::new(store));
    }
    let store = SqliteStore::open(&args.data_dir, args.store_options())
        .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    Ok(Arc::new(store))
}

/// Runs the server until SIGTERM or Ctrl-C. `on_bound` is told the bound
/// address before the listening line (the demo prints its link there).
pub async fn serve(
    args: ServeArgs,
    store: Option<DynStore>,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<()> {
    let started = std::time::Instant::now();
    // Held until the process ends: one server per embedded store, and no
    // `migrate-store` copying it meanwhile.
    let _lock = match args.database_url {
        None => Some(lock_data_dir(&args.data_dir)?),
        Some(_) => None,
    };
    let store = match store {
        Some(s) => s,
        None => open_store(&args).await?,
    };
    let signer = load_signing_key(&args)?;
    let secret = load_server_secret(&args)?;
    let state = AppState::from(auditlog_server::SharedState {
        store,
        clock: auditlog_server::system_clock(),
        signer: Arc::new(signer),
        origin: args.origin.clone().into(),
        trusted_proxies: args.trusted_proxy.clone().into(),
        metrics: auditlog_server::install_metrics(),
        keys: auditlog_server::Keys::derive(&secret),
        large_bodies: Arc::new(tokio::sync::Semaphore::new(args.max_large_bodies.max(1))),
        limits: Arc::new(auditlog_server::limits::RequestLimits::new(
            args.net.limit_config(),
        )),
        reads: auditlog_server::ReadLimits::new(auditlog_server::ReadConfig {
            query_timeout: std::time::Duration::from_secs(args.query_timeout_secs),
            max_record_reads: args.query_max_record_reads,
            export_send_timeout: std::time::Duration::from_secs(args.export_send_timeout_secs),
            max_exports: args.max_exports,
            max_exports_per_token: args.max_exports_per_token,
        }),
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tokio::spawn(auditlog_server::run_checkpointer(state.clone()));
    // Token changes made on the command line (or while no server ran) are
    // in the log before the first request; expiries later within seconds.
    let all = auditlog_store::TokenChange::ALL;
    if let Err(e) = auditlog_server::record_token_changes(&state.store, state.now(), &all).await {
        tracing::warn!(error = %e, "recording token changes failed; retrying in the background");
    }
    tokio::spawn(auditlog_server::run_token_recorder(state.clone()));
    on_bound(addr);
    tracing::info!(%addr, data_dir = %args.data_dir.display(), startup_ms = started.elapsed().as_millis() as u64, "serving");
    println!("listening on http://{addr}");
    // A store that can no longer write (its writer thread died) is not
    // restarted in place: the process drains and exits non-zero, so that a
    // supervisor restarts it and the store rebuilds its state from the file.
    // Meanwhile `/readyz` fails and writes answer 503.
    let store = state.store.clone();
    let closing = state.store.clone();
    let failure = Arc::new(std::sync::Mutex::new(None));
    let failed = failure.clone();
    let shutdown = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            e = store.failed() => {
                tracing::error!(error = %e, "the store cannot write any more; shutting down");
                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        }
    };
    let conn_limits = args.net.conn_limits(&args.trusted_proxy);
    auditlog_server::serve_with(
        listener,
        auditlog_server::app(state),
        &conn_limits,
        shutdown,
    )
    .await?;
    if let Some(e) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
        bail!("{e}; exiting so that a supervisor restarts auditlog");
    }
    // After the last request: what lets the next start answer sooner.
    if let Err(e) = closing.close().await {
        tracing::warn!(error = %e, "closing the store failed; the next start reads more rows");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
