//! Token administration (issue 11): listing without secrets, revocation of
//! any token (`*` ones by a `*` admin) effective on the next request,
//! expiry (401 once past), "last used", and every change recorded as an
//! "Audit Logs" event in the account's log.

use auditlog_store::{Revocation, Role, TokenChange, TokenScope};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn tokens_path(account: &str) -> String {
    format!("/v1/accounts/{account}/tokens")
}

async fn issue(app: &TestApp, admin: &str, account: &str, body: Value) -> Value {
    let res = app.post_json(admin, &tokens_path(account), &body).await;
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn revoke(app: &TestApp, admin: &str, account: &str, id: &str) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("{}/{id}", tokens_path(account))))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
}

/// The account's "Audit Logs" token events, oldest first.
async fn token_events(app: &TestApp, read: &str, account: &str) -> Vec<Value> {
    let mut events = app
        .list_all(
            read,
            &events_path(account),
            &[("range", "all_time"), ("filter", "category:eq:Audit Logs")],
            100,
        )
        .await;
    events.retain(|e| e["event"].as_str().unwrap().starts_with("Token "));
    events.reverse();
    events
}

#[tokio::test]
async fn tokens_are_listed_with_times_and_never_secrets() {
    let app = spawn_app().await;
    let (admin, admin_id) = app.token_with_id(ACME, Role::Admin).await;
    let read = issue(&app, &admin, ACME, json!({"role": "read"})).await;
    let ingest = issue(&app, &admin, ACME, json!({"role": "ingest", "ttl": 3600})).await;
    assert_eq!(
        ingest["expires_at"],
        json!(canonical("2026-11-25T13:00:00Z"))
    );
    let dated = issue(
        &app,
        &admin,
        ACME,
        json!({"role": "admin", "expires_at": "2027-01-01T00:00:00+01:00"}),
    )
    .await;
    assert_eq!(
        dated["expires_at"],
        json!(canonical("2026-12-31T23:00:00Z"))
    );
    app.token(GLOBEX, Role::Read).await;
    app.token("*", Role::Ingest).await;
    let gone = issue(&app, &admin, ACME, json!({"role": "read"})).await;
    assert_eq!(
        revoke(&app, &admin, ACME, gone["id"].as_str().unwrap())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    // A use shows as "last used" (written off the request path).
    app.get_json(read["token"].as_str().unwrap(), "/v1/whoami")
        .await;
    let listed = eventually("last_used_at of the read token", || async {
        let list = app.get_json(&admin, &tokens_path(ACME)).await;
        let read_entry = list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == read["id"])
            .cloned()
            .unwrap();
        (read_entry["last_used_at"] == json!(canonical(DEFAULT_NOW))).then_some(list)
    })
    .await;
    let text = listed.to_string();
    for t in [&read, &ingest, &dated, &gone] {
        assert!(
            !text.contains(t["token"].as_str().unwrap()),
            "a secret is listed: {text}"
        );
    }
    assert!(!text.contains("hash") && !text.contains("alog_"), "{text}");
    let tokens = listed["tokens"].as_array().unwrap();
    let ids: Vec<&str> = tokens.iter().map(|t| t["id"].as_str().unwrap()).collect();
    // The account's live tokens, oldest first: no other account's, no `*`
    // one (an account admin is not the platform's), no revoked one.
    assert_eq!(
        ids,
        [
            admin_id.as_str(),
            read["id"].as_str().unwrap(),
            ingest["id"].as_str().unwrap(),
            dated["id"].as_str().unwrap()
        ]
    );
    assert_eq!(
        tokens[2],
        json!({
            "id": ingest["id"],
            "account": ACME,
            "role": "ingest",
            "created_at": canonical(DEFAULT_NOW),
            "created_by": admin_id,
            "expires_at": canonical("2026-11-25T13:00:00Z"),
            "expired": false,
            "last_used_at": null,
        })
    );
    // The test harness's token was made by an operator, not a token.
    assert_eq!(tokens[0]["created_by"], json!("operator"));

    // Admins only; another account's list is 404.
    problem(
        app.get(read["token"].as_str().unwrap(), &tokens_path(ACME))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        app.get(&admin, &tokens_path(GLOBEX)).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // A `*` admin sees the account's tokens and the `*` ones.
    let platform_admin = app.token("*", Role::Admin).await;
    let list = app.get_json(&platform_admin, &tokens_path(ACME)).await;
    let accounts: Vec<&str> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["account"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, [ACME, ACME, ACME, ACME, "*", "*"]);
}

#[tokio::test]
async fn a_revoked_token_fails_on_the_very_next_request() {
    let app = spawn_app().await;
    let admin = app.token(ACME, Role::Admin).await;
    let issued = issue(&app, &admin, ACME, json!({"role": "read"})).await;
    let secret = issued["token"].as_str().unwrap();
    // Used, so it sits in the store's token cache (30 s).
    for _ in 0..3 {
        app.get_json(secret, "/v1/whoami").await;
    }
    assert_eq!(
        revoke(&app, &admin, ACME, issued["id"].as_str().unwrap())
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    problem(
        app.get(secret, "/v1/whoami").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn platform_tokens_are_revoked_by_platform_admins_only() {
    let app = spawn_app().await;
    let (star, star_id) = app.token_with_id("*", Role::Ingest).await;
    let acme_admin = app.token(ACME, Role::Admin).await;
    let (star_admin, star_admin_id) = app.token_with_id("*", Role::Admin).await;
    let read = app.token(ACME, Role::Read).await;
    app.ingest(&star, ACME, &role_created()).await;

    // An account's admin cannot revoke a `*` token: 404, as for any token
    // that is not theirs.
    problem(
        revoke(&app, &acme_admin, ACME, &star_id).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.ingest(&star, ACME, &role_created()).await;

    // A `*` admin can, through any account's path; that account's log
    // records it.
    assert_eq!(
        revoke(&app, &star_admin, ACME, &star_id).await.status(),
        StatusCode::NO_CONTENT
    );
    problem(
        app.post_json(&star, &events_path(GLOBEX), &role_created())
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let events = token_events(&app, &read, ACME).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event"], json!("Token revoked"));
    assert_eq!(
        events[0]["metadata"],
        json!({"token_id": star_id, "role": "ingest", "scope": "*", "revoked_by": star_admin_id})
    );
    assert_eq!(
        events[0]["actor"],
        json!({"kind": "app", "id": star_admin_id, "name": null, "email": null})
    );
    // A `*` admin can also revoke itself; afterwards it is refused.
    assert_eq!(
        revoke(&app, &star_admin, GLOBEX, &star_admin_id)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    problem(
        app.get(&star_admin, "/v1/whoami").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn expired_tokens_answer_401_and_the_expiry_is_recorded() {
    let app = spawn_app().await;
    let (admin, admin_id) = app.token_with_id(ACME, Role::Admin).await;
    let read = app.token(ACME, Role::Read).await;
    let issued = issue(&app, &admin, ACME, json!({"role": "ingest", "ttl": 60})).await;
    let secret = issued["token"].as_str().unwrap();
    let id = issued["id"].as_str().unwrap();
    app.ingest(secret, ACME, &role_created()).await;
    app.set_now("2026-11-25T12:00:59Z");
    app.ingest(secret, ACME, &role_created()).await;
    app.set_now("2026-11-25T12:01:00Z");
    problem(
        app.post_json(secret, &events_path(ACME), &role_created())
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Listed as expired until revoked.
    let list = app.get_json(&admin, &tokens_path(ACME)).await;
    let entry = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(id))
        .unwrap()
        .clone();
    assert_eq!(entry["expired"], json!(true));

    // The running server's recorder logs the expiry, once; the tokens the
    // harness put straight in the store wait for a server start (which
    // records every kind).
    let now = ts("2026-11-25T12:01:00Z");
    let record = |changes: &'static [TokenChange]| {
        auditlog_server::record_token_changes(&app.store, now, changes)
    };
    assert_eq!(record(&[TokenChange::Expired]).await.unwrap(), 1);
    assert_eq!(record(&[TokenChange::Expired]).await.unwrap(), 0);
    assert_eq!(record(&TokenChange::ALL).await.unwrap(), 2);
    assert_eq!(record(&TokenChange::ALL).await.unwrap(), 0);
    let events = token_events(&app, &read, ACME).await;
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Token created",
            "Token created",
            "Token created",
            "Token expired"
        ],
        "{events:?}"
    );
    let created = events
        .iter()
        .find(|e| e["metadata"]["token_id"] == json!(id))
        .unwrap();
    assert_eq!(
        created["metadata"],
        json!({"token_id": id, "role": "ingest", "scope": ACME, "created_by": admin_id,
               "expires_at": canonical("2026-11-25T12:01:00Z")})
    );
    assert_eq!(created["actor"]["id"], json!(admin_id));
    assert_eq!(created["occurred_at"], json!(canonical(DEFAULT_NOW)));
    let expired = &events[3];
    assert_eq!(
        expired["metadata"],
        json!({"token_id": id, "role": "ingest", "scope": ACME,
               "expires_at": canonical("2026-11-25T12:01:00Z")})
    );
    assert_eq!(expired["actor"]["kind"], json!("system"));
    assert_eq!(
        expired["occurred_at"],
        json!(canonical("2026-11-25T12:01:00Z"))
    );
    assert_eq!(expired["category"], json!("Audit Logs"));
}

#[tokio::test]
async fn issuing_checks_role_expiry_and_the_live_token_cap() {
    let app = spawn_app().await;
    let admin = app.token(ACME, Role::Admin).await;
    let path = tokens_path(ACME);
    for body in [
        json!({"role": "read", "ttl": 0}),
        json!({"role": "read", "ttl": -5}),
        json!({"role": "read", "ttl": 1.5}),
        json!({"role": "read", "ttl": "1h"}),
        json!({"role": "read", "ttl": 316_224_001u64}),
        json!({"role": "read", "expires_at": DEFAULT_NOW}),
        json!({"role": "read", "expires_at": "2020-01-01T00:00:00Z"}),
        json!({"role": "read", "expires_at": "2040-01-01T00:00:00Z"}),
        json!({"role": "read", "expires_at": "tomorrow"}),
        json!({"role": "read", "ttl": 60, "expires_at": "2027-01-01T00:00:00Z"}),
        json!({"role": "read", "scope": "*"}),
    ] {
        problem(
            app.post_json(&admin, &path, &body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    // The longest lifetime is accepted.
    issue(
        &app,
        &admin,
        ACME,
        json!({"role": "read", "ttl": 316_224_000u64}),
    )
    .await;

    // Past MAX_LIVE_TOKENS_PER_ACCOUNT live tokens: 409 until one is
    // revoked.
    let creations = (0..998).map(|_| app.token_with_id(ACME, Role::Read));
    let ids: Vec<(String, String)> = futures_util::future::join_all(creations).await;
    let res = app.post_json(&admin, &path, &json!({"role": "read"})).await;
    let p = problem(res, StatusCode::CONFLICT).await;
    assert!(p["detail"].as_str().unwrap().contains("1000"), "{p}");
    assert!(
        app.store
            .revoke_token(Revocation::new(
                &TokenScope::Account(ACME.parse().unwrap()),
                &ids[0].1,
                None,
                None,
                0
            ))
            .await
            .unwrap()
    );
    issue(&app, &admin, ACME, json!({"role": "read"})).await;
}
