//! What other processes did, pushed by the database: one connection of its
//! own `LISTEN`s on two channels.
//!
//! - [`TOKENS_CHANNEL`]: every revocation notifies it in its transaction
//!   (PostgreSQL delivers it at the commit). Each notification bumps a
//!   counter the layer compares before it trusts its token cache, so a
//!   revoked token stops working on every instance as soon as the
//!   notification arrives, not after a poll or a cache expiry. While the
//!   listener is down (the database restarting) the counter is bumped at
//!   every reconnection, since notifications may have been missed, and the
//!   layer's once-a-second poll of the revoked count still runs.
//! - [`APPENDS_CHANNEL`]: each account a group commit appended to is
//!   notified once, its name as the payload, by the same connection
//!   ([`Announce`]). Each notification is handed to the layer's wake-up
//!   ([`LogBackend::on_appends`](crate::backend::LogBackend::on_appends)),
//!   which pulls the rows into the account's index if it is open here.
//!   These are hints: one lost while the listener reconnects (or to a crash
//!   between a commit and its announcement) costs the next read the
//!   catch-up it pays without them (every read still compares the
//!   committed size with its index), never a stale answer.
//!
//! Why appends are not notified inside the group's transaction, as
//! revocations are: PostgreSQL serializes every transaction that notified,
//! cluster-wide, with a lock held until after its commit record is flushed
//! (`PreCommit_Notify` in `async.c`: it keeps the queue in commit order).
//! In the group's transaction, every group commit of every account and
//! instance would wait for the others' flushes: the global lock across
//! accounts the design avoids. Instead the writer hands the committed
//! accounts to [`Announce`], and this connection notifies them in a
//! transaction of its own with `synchronous_commit` off (a hint needs no
//! durability), so the lock is held for a moment, off the acknowledgement
//! path, and announcements that pile up meanwhile go out together.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use auditlog_core::record::AccountId;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::backend::AppendWake;

/// The listening connection's `application_name`: how `pg_stat_activity`
/// tells it from the pools' connections (`auditlog`).
pub(super) const APPLICATION_NAME: &str = "auditlog listener";

/// The channel revocations notify.
pub(super) const TOKENS_CHANNEL: &str = "auditlog_tokens";

/// The channel appends notify (payload: the account's name).
pub(super) const APPENDS_CHANNEL: &str = "auditlog_appends";

/// One notification per account, its name as the payload (at most 63
/// bytes: far below PostgreSQL's 8,000).
const NOTIFY_APPENDS: &str =
    "SELECT pg_notify($1, name) FROM accounts WHERE account_id = ANY($2::int8[])";

/// Where notifications go; each `None` is not listened for.
pub(super) struct Listeners {
    /// Bumped by each revocation notified.
    pub(super) revocations: Option<Arc<AtomicU64>>,
    /// Called with each appended account, once the layer set it.
    pub(super) appends: Option<Arc<OnceLock<AppendWake>>>,
    /// This process's committed appends, to announce.
    pub(super) announce: Arc<Announce>,
}

/// The accounts this process's writer committed rows to and the listener's
/// connection has not announced yet: a set, so however fast groups commit,
/// what waits is at most one entry per account.
#[derive(Default)]
pub(super) struct Announce {
    keys: Mutex<BTreeSet<i64>>,
    ready: tokio::sync::Notify,
}

impl Announce {
    /// Queues the accounts of a committed group (called by the writer;
    /// never waits for the database).
    pub(super) fn push(&self, keys: impl IntoIterator<Item = i64>) {
        let mut pending = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let before = pending.len();
        pending.extend(keys);
        if pending.len() > before {
            drop(pending);
            self.ready.notify_one();
        }
    }

    fn take(&self) -> Vec<i64> {
        let mut pending = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *pending).into_iter().collect()
    }

    /// Notifies the queued accounts as they come, until the connection
    /// fails.
    async fn run(&self, client: &tokio_postgres::Client) {
        let Ok(notify) = client.prepare(NOTIFY_APPENDS).await else {
            return;
        };
        loop {
            let keys = self.take();
            if !keys.is_empty()
                && client
                    .execute(&notify, &[&APPENDS_CHANNEL, &keys])
                    .await
                    .is_err()
            {
                return;
            }
            // A push while the notification ran left a permit: no wait.
            self.ready.notified().await;
        }
    }
}

/// Starts the listener on `rt`.
pub(super) fn spawn(
    rt: &tokio::runtime::Handle,
    mut config: tokio_postgres::Config,
    listeners: Listeners,
) {
    config.application_name(APPLICATION_NAME);
    rt.spawn(listen(config, Arc::new(listeners)));
}

impl Listeners {
    fn bump_revocations(&self) {
        if let Some(epoch) = &self.revocations {
            epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn deliver(&self, channel: &str, payload: &str) {
        match channel {
            TOKENS_CHANNEL => self.bump_revocations(),
            APPENDS_CHANNEL => {
                let wake = self.appends.as_ref().and_then(|w| w.get());
                // A name that does not parse was not written by auditlog:
                // nothing of ours to wake.
                if let (Some(wake), Ok(account)) = (wake, AccountId::parse(payload)) {
                    wake(&account);
                }
            }
            _ => {}
        }
    }

    fn statement(&self) -> String {
        // The connection's own transactions only notify: hints, which need
        // no flush to disk before they are sent (see the module doc).
        let mut sql = String::from("SET synchronous_commit = off;");
        if self.revocations.is_some() {
            sql.push_str(&format!("LISTEN {TOKENS_CHANNEL};"));
        }
        if self.appends.is_some() {
            sql.push_str(&format!("LISTEN {APPENDS_CHANNEL};"));
        }
        sql
    }
}

async fn listen(config: tokio_postgres::Config, listeners: Arc<Listeners>) {
    loop {
        if let Ok((client, mut conn)) = config.connect(NoTls).await {
            let to = listeners.clone();
            // Drives the connection, delivering notifications; ends with it.
            let driver = tokio::spawn(async move {
                let mut messages = futures_util::stream::poll_fn(|cx| conn.poll_message(cx));
                while let Some(Ok(message)) = messages.next().await {
                    if let AsyncMessage::Notification(n) = message {
                        to.deliver(n.channel(), n.payload());
                    }
                }
            });
            if client.batch_execute(&listeners.statement()).await.is_ok() {
                // Revocations while no listener ran are unknown: forget.
                listeners.bump_revocations();
                // Until the connection ends (either side notices).
                let announcing = std::pin::pin!(listeners.announce.run(&client));
                let _ = futures_util::future::select(driver, announcing).await;
            } else {
                driver.abort();
            }
            drop(client);
            tracing::warn!("notification listener lost its connection; reconnecting");
        }
        listeners.bump_revocations();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
