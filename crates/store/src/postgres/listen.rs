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
//! - [`APPENDS_CHANNEL`]: every group commit that appended rows notifies it
//!   once per appended account, the account's name as the payload (see
//!   `writer.rs`). Each one is handed to the layer's wake-up
//!   ([`LogBackend::on_appends`](crate::backend::LogBackend::on_appends)),
//!   which pulls the rows into the account's index if it is open here.
//!   These are hints: one lost while the listener reconnects costs the next
//!   read the catch-up it pays without them (every read still compares the
//!   committed size with its index), never a stale answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use auditlog_core::record::AccountId;
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::backend::AppendWake;

/// The channel revocations notify.
pub(super) const TOKENS_CHANNEL: &str = "auditlog_tokens";

/// The channel appends notify (payload: the account's name).
pub(super) const APPENDS_CHANNEL: &str = "auditlog_appends";

/// Where notifications go; each `None` is not listened for.
pub(super) struct Listeners {
    /// Bumped by each revocation notified.
    pub(super) revocations: Option<Arc<AtomicU64>>,
    /// Called with each appended account, once the layer set it.
    pub(super) appends: Option<Arc<OnceLock<AppendWake>>>,
}

/// Starts the listener on `rt`.
pub(super) fn spawn(
    rt: &tokio::runtime::Handle,
    config: tokio_postgres::Config,
    listeners: Listeners,
) {
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
        let mut sql = String::new();
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
                let _ = driver.await;
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
