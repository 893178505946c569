//! The database budget of the hot paths (#22): how many SQL statements one
//! request sends, counted by the server itself (`storage::statements`, read
//! from `portcullis_db_statements_total` by route on `/metrics`). Each
//! number is the budget stated in docs/PERFORMANCE.md; a change that adds a
//! statement to one of these paths fails here and has to say why (and move
//! the number in both places).
//!
//! Paths served from memory (discovery, JWKS, client_credentials,
//! introspection, UserInfo) must send none once their caches are warm: each
//! is measured as the fewest statements of three requests in a row, so a
//! cache that happens to expire between two requests does not fail the test
//! but a statement on every request does.

use serde_json::json;

use crate::helpers::{TestApp, TestDb, spawn_app_at_localhost};
use crate::oauth::{PW, exchange, get_code, introspect, register, token_req, web_client};
use crate::passkeys::{enrol, host, password_session, passwordless_finish, passwordless_start};

/// Statements sent so far by requests matched to `route`.
async fn statements(app: &TestApp, route: &str) -> u64 {
    let text = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    let series = format!("portcullis_db_statements_total{{route=\"{route}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(series.as_str())).map_or(0, |n| n.trim().parse().unwrap())
}

/// The statements one call of `request` sent to `route`.
async fn cost<F, Fut>(app: &TestApp, route: &str, request: F) -> u64
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let before = statements(app, route).await;
    request().await;
    statements(app, route).await - before
}

/// The fewest statements of three calls of `request` in a row (warm caches).
async fn warm_cost<F, Fut>(app: &TestApp, route: &str, request: F) -> u64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut fewest = u64::MAX;
    for _ in 0..3 {
        fewest = fewest.min(cost(app, route, &request).await);
    }
    fewest
}

async fn get_ok(app: &TestApp, path: &str) {
    let r = reqwest::get(app.url(path)).await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
}

#[tokio::test]
async fn each_hot_path_sends_no_more_statements_than_its_budget() {
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("budget", PW, &[]).await;
    let service = register(
        &app,
        portcullis::admin::clients::ClientSpec {
            client_id: "svc".into(),
            grants: vec!["client_credentials".into()],
            scopes: vec!["api:read".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let secret = register(&app, web_client("webapp")).await.unwrap();

    let mut seen = Vec::new();
    // Documents.
    let discovery =
        warm_cost(&app, "/.well-known/openid-configuration", || get_ok(&app, "/.well-known/openid-configuration"))
            .await;
    seen.push(("discovery", discovery));
    let jwks = warm_cost(&app, "/jwks", || get_ok(&app, "/jwks")).await;
    seen.push(("jwks", jwks));

    // client_credentials, and introspection of what it issued.
    let issue = || async {
        let (status, body, _) =
            token_req(&app, Some(("svc", &service)), &[("grant_type", "client_credentials"), ("scope", "api:read")])
                .await;
        assert_eq!(status, 200, "{body}");
    };
    seen.push(("client_credentials", warm_cost(&app, "/token", issue).await));
    let (_, body, _) =
        token_req(&app, Some(("svc", &service)), &[("grant_type", "client_credentials"), ("scope", "api:read")]).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let introspect = || async {
        let v = introspect(&app, "svc", &service, &token).await;
        assert_eq!(v["active"], true, "{v}");
    };
    seen.push(("introspection", warm_cost(&app, "/introspect", introspect).await));

    // Password login (the POST; the form's GET is a page).
    let b = app.browser();
    let csrf = app.csrf_from(&b, "/login").await;
    let login = cost(&app, "/login", || async {
        let r = b
            .post(app.url("/login"))
            .form(&[("csrf", csrf.as_str()), ("username", "budget"), ("password", PW)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
    })
    .await;
    seen.push(("password login", login));

    // Code exchange, UserInfo, refresh. The client is in the client cache,
    // as it is on a busy server (a refused request authenticates it first).
    let (code, verifier) = get_code(&app, &app.browser(), "webapp", "budget", "").await;
    let (status, _, _) =
        token_req(&app, Some(("webapp", &secret)), &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
    assert_eq!(status, 400);
    let mut tokens = json!(null);
    let exchange_cost = cost(&app, "/token", || async {
        let (status, body) = exchange(&app, "webapp", &secret, &code, &verifier).await;
        assert_eq!(status, 200, "{body}");
        tokens = body;
    })
    .await;
    seen.push(("code exchange", exchange_cost));
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let userinfo = || async {
        let r = reqwest::Client::new().get(app.url("/userinfo")).bearer_auth(&access).send().await.unwrap();
        assert_eq!(r.status(), 200);
    };
    seen.push(("userinfo", warm_cost(&app, "/userinfo", userinfo).await));
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = cost(&app, "/token", || async {
        let (status, body, _) = token_req(
            &app,
            Some(("webapp", &secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())],
        )
        .await;
        assert_eq!(status, 200, "{body}");
    })
    .await;
    seen.push(("refresh", refresh));

    // Passwordless passkey login: the start and the finish.
    let enrolled = password_session(&app, "budget").await;
    let mut key = enrol(&app, &enrolled, "Laptop").await;
    let (pb, pcsrf, options) = passwordless_start(&app).await;
    let credential = key.assert(&options, &host(&app));
    let finish = cost(&app, "/login/passkey/finish", || async {
        let answer = passwordless_finish(&app, &pb, &pcsrf, credential).await;
        assert_eq!(answer["location"], "/account", "{answer}");
    })
    .await;
    seen.push(("passkey login (finish)", finish));
    let start = cost(&app, "/login/passkey/start", || async {
        let _ = passwordless_start(&app).await;
    })
    .await;
    seen.push(("passkey login (start)", start));

    // The budgets (docs/PERFORMANCE.md, "Database budget per request").
    let budget = [
        ("discovery", 0),
        ("jwks", 0),
        ("client_credentials", 0),
        ("introspection", 0),
        ("password login", 13),
        ("code exchange", 8),
        ("userinfo", 0),
        ("refresh", 6),
        ("passkey login (finish)", 11),
        ("passkey login (start)", 2),
    ];
    assert_eq!(seen, budget, "statements per request, measured (left) against the budget (right)");
}
