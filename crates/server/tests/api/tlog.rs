//! Checkpoints on request (issue 11): `GET …/checkpoint` signs at most the
//! caller's own account's head, and still covers what was just ingested.
//! (No background signer runs in these tests, so whatever is signed was
//! signed by a request.)

use auditlog_core::record::AccountId;
use auditlog_store::Role;
use reqwest::StatusCode;

use crate::helpers::*;

async fn checkpoint_size(app: &TestApp, token: &str, account: &str) -> u64 {
    let res = app
        .get(token, &format!("/v1/accounts/{account}/checkpoint"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let note = res.text().await.unwrap();
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("not a checkpoint: {note}"))
}

#[tokio::test]
async fn a_checkpoint_request_signs_only_its_own_account() {
    let app = spawn_app().await;
    let platform = app.token("*", Role::Ingest).await;
    let acme_read = app.token(ACME, Role::Read).await;
    let globex_read = app.token(GLOBEX, Role::Read).await;
    let (acme, globex): (AccountId, AccountId) = (ACME.parse().unwrap(), GLOBEX.parse().unwrap());
    for _ in 0..3 {
        app.ingest(&platform, ACME, &role_created()).await;
    }
    for _ in 0..2 {
        app.ingest(&platform, GLOBEX, &role_created()).await;
    }

    // Right after the ingest, the checkpoint covers it.
    assert_eq!(checkpoint_size(&app, &acme_read, ACME).await, 3);
    // The other account's pending head was not signed by that request.
    assert_eq!(app.store.latest_checkpoint(&globex).await.unwrap(), None);
    assert_eq!(unsigned_size(&app, &globex).await, Some(2));
    assert_eq!(app.store.unsigned_head(&acme).await.unwrap(), None);

    // Each account's own request signs its own head.
    assert_eq!(checkpoint_size(&app, &globex_read, GLOBEX).await, 2);
    app.ingest(&platform, ACME, &role_created()).await;
    app.ingest(&platform, GLOBEX, &role_created()).await;
    assert_eq!(checkpoint_size(&app, &acme_read, ACME).await, 4);
    assert_eq!(unsigned_size(&app, &globex).await, Some(3));

    // The proof bundle of an event signs the same way: its account only.
    let rec = app.ingest(&platform, ACME, &role_created()).await;
    app.ingest(&platform, GLOBEX, &role_created()).await;
    let res = app
        .get(
            &acme_read,
            &format!(
                "/v1/accounts/{ACME}/events/{}/proof",
                rec["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(app.store.unsigned_head(&acme).await.unwrap(), None);
    assert_eq!(unsigned_size(&app, &globex).await, Some(4));
}

/// The size of an account's head that no checkpoint signs yet, if any.
async fn unsigned_size(app: &TestApp, account: &auditlog_core::record::AccountId) -> Option<u64> {
    app.store
        .unsigned_head(account)
        .await
        .unwrap()
        .map(|h| h.size)
}
