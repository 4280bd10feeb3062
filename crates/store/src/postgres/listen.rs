//! Token revocations made by other processes, pushed: a connection of its
//! own `LISTEN`s on [`TOKENS_CHANNEL`], which every revocation notifies in
//! its transaction (PostgreSQL delivers it at the commit). Each
//! notification bumps a counter the layer compares before it trusts its
//! token cache, so a revoked token stops working on every instance as soon
//! as the notification arrives, not after a poll or a cache expiry.
//!
//! While the listener is down (the database restarting) the counter is
//! bumped at every reconnection, since notifications may have been missed,
//! and the layer's once-a-second poll of the revoked count still runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel revocations notify.
pub(super) const TOKENS_CHANNEL: &str = "auditlog_tokens";

/// Starts the listener on `rt`; the counter it bumps.
pub(super) fn spawn(rt: &tokio::runtime::Handle, config: tokio_postgres::Config) -> Arc<AtomicU64> {
    let epoch = Arc::new(AtomicU64::new(0));
    rt.spawn(listen(config, epoch.clone()));
    epoch
}

async fn listen(config: tokio_postgres::Config, epoch: Arc<AtomicU64>) {
    loop {
        if let Ok((client, mut conn)) = config.connect(NoTls).await {
            let bump = epoch.clone();
            // Drives the connection, counting notifications; ends with it.
            let driver = tokio::spawn(async move {
                let mut messages = futures_util::stream::poll_fn(|cx| conn.poll_message(cx));
                while let Some(Ok(message)) = messages.next().await {
                    if let AsyncMessage::Notification(_) = message {
                        bump.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
            if client
                .batch_execute(&format!("LISTEN {TOKENS_CHANNEL}"))
                .await
                .is_ok()
            {
                // Revocations while no listener ran are unknown: forget.
                epoch.fetch_add(1, Ordering::SeqCst);
                let _ = driver.await;
            } else {
                driver.abort();
            }
            drop(client);
            tracing::warn!("token revocation listener lost its connection; reconnecting");
        }
        epoch.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
