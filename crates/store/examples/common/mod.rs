//! What the PostgreSQL examples share: the events they ingest and the
//! statements they run on the server's maintenance database.

use std::collections::BTreeMap;

use auditlog_core::catalog::{Catalog, Level};
use auditlog_core::record::{Actor, ActorKind, Micros};
use auditlog_core::validate::{Defaulted, ValidEvent};

/// The `i`-th event: a login by one of 500 users, a millisecond apart.
pub fn event(i: usize) -> ValidEvent {
    let id = Catalog::get()
        .find(Level::Account, "Login/Logout", "Login")
        .expect("in catalog");
    ValidEvent {
        event_id: id,
        level: Level::Account,
        category: "Login/Logout".into(),
        event: "Login".into(),
        occurred_at: Micros(1_764_000_000_000_000 + i as i64 * 1000),
        actor: Actor {
            kind: ActorKind::User,
            id: format!("user_{}", i % 500),
            name: Some(format!("User {}", i % 500)),
            email: Some(format!("user{}@example.com", i % 500)),
        },
        ip_address: Some(format!("203.0.113.{}", i % 250)),
        workflow_id: None,
        description: format!("User {} logged in", i % 500),
        metadata: BTreeMap::from([("attempt".into(), serde_json::json!(i % 3))]),
        idempotency_key: None,
        defaulted: Defaulted::default(),
    }
}

/// Runs `sql` on the server's maintenance database.
pub fn admin(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
    });
}
