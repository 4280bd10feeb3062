//! The one race of closing that the conformance suite cannot stage from
//! outside: an open held up between reading the store and handing its
//! state to the writer.

use std::collections::BTreeMap;

use auditlog_core::catalog::{Catalog, Level};
use auditlog_core::record::{AccountId, Actor, ActorKind, Micros};
use auditlog_core::validate::{Defaulted, ValidEvent};

use crate::Store;
use crate::layered::IndexOptions;
use crate::layered::open::open_account;
use crate::layered::write::Op;
use crate::sqlite::{SqliteOptions, SqliteStore};

fn login(t_ms: i64) -> ValidEvent {
    let id = Catalog::get()
        .find(Level::Account, "Login/Logout", "Login")
        .expect("in catalog");
    ValidEvent {
        event_id: id,
        level: Level::Account,
        category: "Login/Logout".into(),
        event: "Login".into(),
        occurred_at: Micros(t_ms * 1000),
        actor: Actor {
            kind: ActorKind::User,
            id: "u1".into(),
            name: Some("Jane".into()),
            email: None,
        },
        ip_address: None,
        workflow_id: None,
        description: "login".into(),
        metadata: BTreeMap::new(),
        idempotency_key: None,
        defaulted: Defaulted::default(),
    }
}

/// A caller opens an account, reads the store, and goes away before its
/// state reaches the writer (its `Adopt` still queued). Meanwhile the
/// account is opened by another caller, written to, and closed. The stale
/// state, one event behind the log, is refused: adopted, it would hand
/// the next write a `seq` the log already has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_read_before_a_close_is_never_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = (
        AccountId::parse("x").unwrap(),
        AccountId::parse("y").unwrap(),
    );
    {
        let s = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
        s.append(&x, vec![login(1), login(2)]).await.unwrap();
        s.append(&y, vec![login(1)]).await.unwrap();
    }
    let opts = SqliteOptions {
        index: IndexOptions {
            open_accounts_memory: 0,
            ..IndexOptions::default()
        },
        ..SqliteOptions::default()
    };
    let s = SqliteStore::open(dir.path(), opts).unwrap();
    let slot = s.shared.slot(&x).unwrap();
    let closes = slot.closes();
    let (backend, shared, name, key) = (s.backend.clone(), s.shared.clone(), x.clone(), slot.key);
    let mut stale =
        tokio::task::spawn_blocking(move || open_account(&backend, &shared, &name, key))
            .await
            .unwrap()
            .unwrap();
    stale.closes = closes;
    // Opened, written to, and closed (opening `y` closes it).
    assert_eq!(
        s.append(&x, vec![login(3)]).await.unwrap()[0]
            .record
            .body
            .seq,
        2
    );
    s.tree_head(&y).await.unwrap();
    for _ in 0..1_000 {
        if slot.closes() > closes {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(slot.closes(), closes + 1, "x was closed");
    let adopted = s
        .send(|reply| Op::Adopt {
            account: x.clone(),
            opened: Box::new(stale),
            reply,
        })
        .await
        .unwrap();
    assert!(adopted.is_none(), "a stale state was adopted");
    // The account goes on from its log.
    assert_eq!(
        s.append(&x, vec![login(4)]).await.unwrap()[0]
            .record
            .body
            .seq,
        3
    );
    assert_eq!(s.tree_head(&x).await.unwrap().size, 4);
}
