//! `auditlog demo`: a demo account with realistic events of every catalog
//! entry over the last 400 days, then the server, with a link that fills in
//! the sign-in form.

use anyhow::Result;
use clap::Args;

use auditlog_core::catalog::Catalog;
use auditlog_core::datagen::Generator;
use auditlog_core::record::{AccountId, Micros};
use auditlog_core::validate::{IngestContext, Problems, validate_event};
use auditlog_store::{DynStore, Role, TokenScope};

use crate::ServeArgs;

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Demo account id.
    #[arg(long, default_value = "demo", env = "AUDITLOG_DEMO_ACCOUNT")]
    pub account: String,
    /// Number of events to generate (when the account is empty).
    #[arg(long, default_value_t = 120_000, env = "AUDITLOG_DEMO_EVENTS")]
    pub events: usize,
}

const DAYS: i64 = 400;

pub async fn run(args: DemoArgs) -> Result<()> {
    let account = AccountId::parse(&args.account)?;
    let store = crate::open_store(&args.serve).await?;
    if store.tree_head(&account).await?.size == 0 {
        // The server's own key, so the demo's fingerprints are the ones
        // the server would have made.
        let keys = auditlog_server::Keys::derive(&crate::load_server_secret(&args.serve)?);
        fill(&store, &account, args.events, &keys.redactor).await?;
    } else {
        eprintln!("account `{account}` already has events; serving them");
    }
    let now = Micros::from_timestamp(jiff::Timestamp::now()).0;
    let (secret, record) =
        auditlog_server::auth::new_token(TokenScope::Account(account.clone()), Role::Admin, now);
    store.create_token(record).await?;
    let (ingest_secret, ingest) =
        auditlog_server::auth::new_token(TokenScope::Account(account.clone()), Role::Ingest, now);
    store.create_token(ingest).await?;
    println!("demo account: {account}");
    println!("admin token:  {secret}");
    println!("ingest token: {ingest_secret}");
    crate::serve(args.serve, Some(store), move |addr| {
        // The fragment is never sent to the server, so the token stays out
        // of every access log. The link only fills in the Token field: the
        // page shows which account it is for and waits for Sign in.
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            addr.ip().to_string()
        };
        println!(
            "dashboard:    http://{host}:{}/#token={secret}  (fills in the token: check the account, then press Sign in)",
            addr.port()
        );
    })
    .await
}

/// Generates `n` events over the last 400 days, plus one of every catalog
/// entry in the last day, oldest first, validated like any ingest.
async fn fill(
    store: &DynStore,
    account: &AccountId,
    n: usize,
    redactor: &auditlog_core::redact::Redactor,
) -> Result<()> {
    let now = Micros::from_timestamp(jiff::Timestamp::now());
    let start = now.0 - DAYS * 86_400_000_000;
    let mut g = Generator::new(2026, 2000);
    let mut times: Vec<i64> = (0..n)
        .map(|_| g.instant(start, now.0 - 3_600_000_000))
        .collect();
    times.sort_unstable();
    let catalog = Catalog::get();
    let ctx = IngestContext {
        now,
        client_ip: None,
        redactor,
    };
    let progress = indicatif::ProgressBar::new(n as u64 + catalog.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "generating demo events {bar:40} {pos}/{len} ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut bodies: Vec<serde_json::Value> = times
        .iter()
        .map(|t| g.event(&Micros(*t).to_rfc3339()))
        .collect();
    for (i, e) in catalog.entries().enumerate() {
        if e.category == auditlog_core::validate::RESERVED_CATEGORY {
            continue;
        }
        let t = Micros(now.0 - 3_500_000_000 + i as i64 * 30_000_000);
        bodies.push(g.event_of(&e, &t.to_rfc3339()));
    }
    let total = bodies.len();
    let mut bodies = bodies.into_iter().peekable();
    while bodies.peek().is_some() {
        let mut errors = Problems::new();
        let events: Vec<_> = bodies
            .by_ref()
            .take(5000)
            .filter_map(|b| validate_event(catalog, b, "", &ctx, &mut errors))
            .collect();
        anyhow::ensure!(
            errors.is_empty(),
            "generated an invalid event: {:?}",
            errors.into_list()
        );
        progress.inc(events.len() as u64);
        store.append(account, events).await?;
    }
    progress.finish_and_clear();
    eprintln!("generated {total} demo events");
    Ok(())
}
