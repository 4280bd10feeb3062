//! Access control on every route: `401` without a live token, `403` for the
//! wrong role, `404` (never `403`, never a byte of data) for another
//! account; tenant isolation of the data itself; tokens issued and revoked
//! through the API.

use auditlog_store::{Revocation, Role, TokenScope};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// An authenticated route: method, path (with `{account}`), the role that
/// may use it, and a body.
struct Route {
    method: Method,
    path: &'static str,
    role: Role,
    body: Option<Value>,
}

/// Every `/v1` route that takes an account. `{id}` is an event id of the
/// account, `{token}` a token id of it.
fn account_routes() -> Vec<Route> {
    let r = |method: Method, path: &'static str, role: Role, body: Option<Value>| Route {
        method,
        path,
        role,
        body,
    };
    vec![
        r(
            Method::POST,
            "/v1/accounts/{account}/events",
            Role::Ingest,
            Some(role_created()),
        ),
        r(
            Method::POST,
            "/v1/accounts/{account}/events/batch",
            Role::Ingest,
            Some(json!({"events": [role_created()]})),
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/events?range=all_time",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/events/count?range=all_time",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/events/histogram?range=all_time",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/events/export?range=all_time",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/events/export?range=all_time&format=jsonl",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/events/{id}",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/workflows/wf_1/events?range=all_time",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/workflows/wf_1/events/count?range=all_time",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/workflows/wf_1/events/histogram?range=all_time",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/workflows/wf_1/events/export?range=all_time",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/suggestions?column=user",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/checkpoint",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/proof/inclusion?seq=0&size=2",
            Role::Read,
            None,
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/proof/consistency?from=1&to=2",
            Role::Read,
            None,
        ),
        r(
            Method::POST,
            "/v1/accounts/{account}/tokens",
            Role::Admin,
            Some(json!({"role": "read"})),
        ),
        r(
            Method::GET,
            "/v1/accounts/{account}/tokens",
            Role::Admin,
            None,
        ),
        r(
            Method::DELETE,
            "/v1/accounts/{account}/tokens/{token}",
            Role::Admin,
            None,
        ),
    ]
}

/// An account with data: two events (one of workflow wf_1), and a read
/// token to revoke. Returns `(event id, that token's id)`.
async fn seed(app: &TestApp, account: &str) -> (String, String) {
    let (_, id, token_id) = seed_with_secret(app, account).await;
    (id, token_id)
}

/// [`seed`], also returning the read token's secret first.
async fn seed_with_secret(app: &TestApp, account: &str) -> (String, String, String) {
    let ingest = app.token(account, Role::Ingest).await;
    let mut ev = role_created();
    ev["description"] = json!(format!("secret of {account}"));
    ev["actor"]["name"] = json!(format!("User of {account}"));
    let rec = app.ingest(&ingest, account, &ev).await;
    app.ingest(&ingest, account, &workflow_event("wf_1")).await;
    let (secret, token_id) = app.token_with_id(account, Role::Read).await;
    (secret, rec["id"].as_str().unwrap().to_owned(), token_id)
}

fn fill(path: &str, account: &str, id: &str, token: &str) -> String {
    path.replace("{account}", account)
        .replace("{id}", id)
        .replace("{token}", token)
}

async fn call(
    app: &TestApp,
    method: &Method,
    path: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method.clone(), app.url(path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn every_v1_route_but_the_public_key_needs_a_live_token() {
    let app = spawn_app().await;
    let (id, token_id) = seed(&app, ACME).await;
    let (revoked, revoked_id) = app.token_with_id(ACME, Role::Admin).await;
    assert!(
        app.store
            .revoke_token(Revocation::new(
                &TokenScope::Account(ACME.parse().unwrap()),
                &revoked_id,
                None,
                None,
                0
            ))
            .await
            .unwrap()
    );

    let mut routes: Vec<(Method, String, Option<Value>)> = account_routes()
        .into_iter()
        .map(|r| (r.method, fill(r.path, ACME, &id, &token_id), r.body))
        .collect();
    routes.push((Method::GET, "/v1/catalog".into(), None));
    routes.push((Method::GET, "/v1/whoami".into(), None));

    let bad_auth: Vec<Option<String>> = vec![
        None,
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some("Bearer alog_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
        Some("Bearer not-even-a-token".into()),
        Some(format!("Bearer {}", "x".repeat(5000))),
        Some(format!("Basic {}", revoked.clone())),
        Some(format!("Bearer {revoked}")),
        Some(format!("Bearer {revoked}x")),
    ];
    for (method, path, body) in &routes {
        for auth in &bad_auth {
            let res = call(&app, method, path, auth.as_deref(), body.as_ref()).await;
            assert_eq!(
                res.headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap()),
                Some("Bearer"),
                "{method} {path} with {auth:?}"
            );
            let p = problem(res, StatusCode::UNAUTHORIZED).await;
            assert!(!p.to_string().contains("secret of"), "{p}");
        }
    }
    // The verifier key is public.
    let res = app
        .client
        .get(app.url("/v1/public-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().starts_with("auditlog.test+"));
}

#[tokio::test]
async fn a_token_without_the_role_gets_403_on_every_route() {
    let app = spawn_app().await;
    let (id, token_id) = seed(&app, ACME).await;
    let tokens = [
        (Role::Ingest, app.token(ACME, Role::Ingest).await),
        (Role::Read, app.token(ACME, Role::Read).await),
        (Role::Admin, app.token(ACME, Role::Admin).await),
    ];
    for route in account_routes() {
        let path = fill(route.path, ACME, &id, &token_id);
        for (role, token) in &tokens {
            // Admin is read plus tokens; ingest is only ingest.
            let allowed = match route.role {
                Role::Ingest => *role == Role::Ingest,
                Role::Read => matches!(role, Role::Read | Role::Admin),
                Role::Admin => *role == Role::Admin,
            };
            if allowed {
                continue;
            }
            let res = call(
                &app,
                &route.method,
                &path,
                Some(&format!("Bearer {token}")),
                route.body.as_ref(),
            )
            .await;
            let p = problem(res, StatusCode::FORBIDDEN).await;
            assert!(
                p["detail"].as_str().unwrap().contains(role.as_str()),
                "{} {path}: {p}",
                route.method
            );
        }
    }
    // The allowed ones work, so the 403s above were about the role.
    let read = &tokens[1].1;
    app.get_json(
        read,
        &fill("/v1/accounts/{account}/events/{id}", ACME, &id, ""),
    )
    .await;
}

#[tokio::test]
async fn another_accounts_routes_are_404_whatever_the_role() {
    let app = spawn_app().await;
    let (globex_secret, globex_id, globex_token_id) = seed_with_secret(&app, GLOBEX).await;
    seed(&app, ACME).await;
    let acme_tokens = [
        app.token(ACME, Role::Ingest).await,
        app.token(ACME, Role::Read).await,
        app.token(ACME, Role::Admin).await,
    ];
    let mut not_found_details = std::collections::BTreeSet::new();
    for route in account_routes() {
        for account in [GLOBEX, "nobody", "Not-An-Account"] {
            let path = fill(route.path, account, &globex_id, &globex_token_id);
            for token in &acme_tokens {
                let res = call(
                    &app,
                    &route.method,
                    &path,
                    Some(&format!("Bearer {token}")),
                    route.body.as_ref(),
                )
                .await;
                let p = problem(res, StatusCode::NOT_FOUND).await;
                let text = p.to_string();
                assert!(
                    !text.contains("globex") && !text.contains(&globex_id),
                    "{path}: {text}"
                );
                not_found_details.insert(p["detail"].as_str().unwrap().to_owned());
            }
        }
    }
    // An account that exists for someone else answers exactly like one that
    // does not exist.
    assert_eq!(not_found_details.len(), 1, "{not_found_details:?}");

    // Nothing was written to globex (not even an export record), and its
    // token was not revoked.
    assert_eq!(
        app.count(
            &globex_secret,
            &events_path(GLOBEX),
            &[("range", "all_time")]
        )
        .await,
        2
    );
}

#[tokio::test]
async fn each_account_sees_only_its_own_data() {
    let app = spawn_app().await;
    let platform = app.token("*", Role::Ingest).await;
    let mut acme_ids = Vec::new();
    for i in 0..3 {
        let mut ev = role_created();
        ev["actor"]["name"] = json!(format!("Acme user {i}"));
        ev["description"] = json!("acme business");
        acme_ids.push(
            app.ingest(&platform, ACME, &ev).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut globex_ids = Vec::new();
    for i in 0..5 {
        let mut ev = workflow_event("wf_1");
        ev["actor"]["name"] = json!(format!("Globex user {i}"));
        ev["description"] = json!("globex business");
        globex_ids.push(
            app.ingest(&platform, GLOBEX, &ev).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let read = app.token(ACME, Role::Read).await;
    let all = [("range", "all_time")];

    let listed = app.list_all(&read, &events_path(ACME), &all, 2).await;
    let mut got = ids(&listed);
    got.sort();
    acme_ids.sort();
    assert_eq!(got, acme_ids);
    assert!(listed.iter().all(|r| r["account_id"] == ACME));
    assert_eq!(app.count(&read, &events_path(ACME), &all).await, 3);
    assert_eq!(
        app.count(
            &read,
            &format!("/v1/accounts/{ACME}/workflows/wf_1/events"),
            &all
        )
        .await,
        0
    );
    let hist = app
        .get_json(
            &read,
            &format!("{}/histogram?range=all_time", events_path(ACME)),
        )
        .await;
    let sum: u64 = hist["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 3);
    let names = app
        .get_json(
            &read,
            &format!("/v1/accounts/{ACME}/suggestions?column=user&q=user"),
        )
        .await;
    assert_eq!(
        names["values"],
        json!(["Acme user 0", "Acme user 1", "Acme user 2"])
    );
    // A globex id under acme is simply not there.
    for id in &globex_ids {
        problem(
            app.get(&read, &format!("{}/{id}", events_path(ACME))).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    // The checkpoint and proofs cover acme's three events only.
    let note = app
        .get(&read, &format!("/v1/accounts/{ACME}/checkpoint"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(note.lines().nth(1), Some("3"), "{note}");
    let res = app
        .get(
            &read,
            &format!("/v1/accounts/{ACME}/proof/inclusion?seq=3&size=4"),
        )
        .await;
    problem(res, StatusCode::BAD_REQUEST).await;
    let res = app
        .get(
            &read,
            &format!("/v1/accounts/{ACME}/proof/consistency?from=3&to=5"),
        )
        .await;
    problem(res, StatusCode::BAD_REQUEST).await;
    // Last, as it records an export event in acme.
    let res = app
        .get(
            &read,
            &format!("{}/export?range=all_time", events_path(ACME)),
        )
        .await;
    let csv = res.text().await.unwrap();
    assert_eq!(csv.lines().count(), 4);
    assert!(!csv.contains("globex") && !csv.contains("Globex"), "{csv}");
}

#[tokio::test]
async fn a_platform_token_works_for_every_account() {
    let app = spawn_app().await;
    let platform = app.token("*", Role::Ingest).await;
    let platform_read = app.token("*", Role::Read).await;
    for account in [ACME, GLOBEX, "initech"] {
        app.ingest(&platform, account, &role_created()).await;
        assert_eq!(
            app.count(
                &platform_read,
                &events_path(account),
                &[("range", "all_time")]
            )
            .await,
            1
        );
    }
    let who = app.get_json(&platform, "/v1/whoami").await;
    assert_eq!(who["account"], json!("*"));
    assert_eq!(who["role"], json!("ingest"));
}

#[tokio::test]
async fn tokens_are_issued_and_revoked_through_the_api() {
    let app = spawn_app().await;
    seed(&app, ACME).await;
    let (admin, admin_id) = app.token_with_id(ACME, Role::Admin).await;
    let tokens = format!("/v1/accounts/{ACME}/tokens");

    let res = app
        .post_json(&admin, &tokens, &json!({"role": "read"}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let issued: Value = res.json().await.unwrap();
    let secret = issued["token"].as_str().unwrap().to_owned();
    let id = issued["id"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("alog_") && secret.len() >= "alog_".len() + 43,
        "≥ 256 bits: {secret}"
    );
    assert_eq!(issued["account"], json!(ACME));
    assert_eq!(issued["role"], json!("read"));
    assert_ne!(id, admin_id);
    assert!(
        !secret.contains(&id),
        "the id reveals nothing of the secret"
    );

    // It works, with exactly its role.
    let who = app.get_json(&secret, "/v1/whoami").await;
    assert_eq!(
        who,
        json!({"token_id": id, "account": ACME, "role": "read"})
    );
    // The two seeded events and the "Token created" of this token.
    assert_eq!(
        app.count(&secret, &events_path(ACME), &[("range", "all_time")])
            .await,
        3
    );
    problem(
        app.post_json(&secret, &events_path(ACME), &role_created())
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        app.post_json(&secret, &tokens, &json!({"role": "admin"}))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // Secrets are unique.
    let other: Value = app
        .post_json(&admin, &tokens, &json!({"role": "ingest"}))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(other["token"], issued["token"]);
    app.ingest(other["token"].as_str().unwrap(), ACME, &role_created())
        .await;

    // Another account's admin cannot revoke it.
    let globex_admin = app.token(GLOBEX, Role::Admin).await;
    let res = app
        .client
        .delete(app.url(&format!("/v1/accounts/{GLOBEX}/tokens/{id}")))
        .bearer_auth(&globex_admin)
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND).await;
    app.get_json(&secret, "/v1/whoami").await;

    // Revoked: 204, then 401 everywhere, and a second revoke is 404.
    let revoke = || {
        app.client
            .delete(app.url(&format!("{tokens}/{id}")))
            .bearer_auth(&admin)
            .send()
    };
    let res = revoke().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    problem(
        app.get(&secret, "/v1/whoami").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        app.get(&secret, &format!("{}?range=all_time", events_path(ACME)))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(revoke().await.unwrap(), StatusCode::NOT_FOUND).await;
    // The admin token itself is unaffected.
    app.get_json(&admin, "/v1/whoami").await;

    // Bad requests.
    for body in [
        json!({"role": "superuser"}),
        json!({}),
        json!({"role": "READ"}),
        json!([1]),
    ] {
        problem(
            app.post_json(&admin, &tokens, &body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let res = app
        .post_raw(&admin, &tokens, "application/json", "{not json")
        .await;
    problem(res, StatusCode::BAD_REQUEST).await;
    // A token issued for acme cannot reach globex.
    let res = app
        .get(
            other["token"].as_str().unwrap(),
            &format!("{}?range=all_time", events_path(GLOBEX)),
        )
        .await;
    problem(res, StatusCode::NOT_FOUND).await;
}

/// The typed query extractors (issue 12) keep what the hand-written loops
/// answered: a bad query is judged only after the token's access to the
/// account (`404` for another account, `403` for the wrong role, then
/// `400`), and each endpoint's `400` says the same words as before.
#[tokio::test]
async fn a_bad_query_is_judged_after_access_and_in_the_same_words() {
    let app = spawn_app().await;
    let read = app.token(ACME, Role::Read).await;
    let ingest = app.token(ACME, Role::Ingest).await;
    let cases = [
        (
            "suggestions?column=user&x=1",
            "unknown parameter `x`; accepted: column, q",
        ),
        (
            "suggestions?column=actor",
            "invalid `column`: `actor`; accepted: user (event and category names come from /v1/catalog)",
        ),
        ("suggestions?q=a", "`column` is required; accepted: user"),
        (
            "proof/inclusion?seq=x&bogus=1",
            "invalid `seq`: `x` is not a non-negative integer",
        ),
        (
            "proof/inclusion?bogus=1&seq=x",
            "unknown parameter `bogus`; accepted: seq, size",
        ),
        (
            "proof/inclusion?seq=1",
            "`seq` and `size` are both required",
        ),
        (
            "proof/consistency?from=1&size=2",
            "unknown parameter `size`; accepted: from, to",
        ),
        (
            "events?range=today&range=today",
            "invalid `range`: given more than once; only `filter` may repeat",
        ),
        (
            "events/count?filter=user%3Aeq%3A%FF",
            "the query string is not UTF-8 once percent-decoded",
        ),
    ];
    for (path, detail) in cases {
        let own = app.get(&read, &format!("/v1/accounts/{ACME}/{path}")).await;
        let p = problem(own, StatusCode::BAD_REQUEST).await;
        assert_eq!(p["detail"], detail, "{path}");
        let other = app
            .get(&read, &format!("/v1/accounts/{GLOBEX}/{path}"))
            .await;
        problem(other, StatusCode::NOT_FOUND).await;
        let wrong_role = app
            .get(&ingest, &format!("/v1/accounts/{ACME}/{path}"))
            .await;
        problem(wrong_role, StatusCode::FORBIDDEN).await;
    }
}
