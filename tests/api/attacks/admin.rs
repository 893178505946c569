//! Narrow administrative permissions stay narrow (items 3–5).

use portcullis::admin::Actor;
use portcullis::admin::clients::ClientSpec;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::oauth::{register, token_req};

const ADMIN_PW: &str = "violet anvil tramline 2";

fn admin_aud(app: &TestApp) -> String {
    format!("{}/admin", app.address)
}

/// A service client holding exactly `roles`, and its admin-API token.
async fn operator(app: &TestApp, id: &str, roles: &[&str]) -> String {
    for r in roles {
        let _ = portcullis::admin::roles::add(&app.state, &Actor::cli(), r, None).await;
    }
    let aud = admin_aud(app);
    let spec = ClientSpec {
        client_id: id.into(),
        grants: vec!["client_credentials".into()],
        roles: roles.iter().map(|r| r.to_string()).collect(),
        resources: vec![aud.clone()],
        ..Default::default()
    };
    let secret = register(app, spec).await.unwrap();
    client_token(app, id, &secret, &aud).await.unwrap()
}

async fn client_token(app: &TestApp, id: &str, secret: &str, resource: &str) -> Option<String> {
    let (_, t, _) =
        token_req(app, Some((id, secret)), &[("grant_type", "client_credentials"), ("resource", resource)]).await;
    t["access_token"].as_str().map(str::to_owned)
}

async fn call(app: &TestApp, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    crate::helpers::api(app, method, path, Some(token), body).await
}

/// Item 3: `clients:write` rotated the secret of a client holding `admin`
/// (or added its own key, or a redirect URI), and with that client's
/// tokens granted itself everything.
#[tokio::test]
async fn clients_write_cannot_take_over_a_client_that_holds_more() {
    let app = spawn_app().await;
    let aud = admin_aud(&app);
    let root_secret = register(
        &app,
        ClientSpec {
            client_id: "root-svc".into(),
            grants: vec!["client_credentials".into()],
            roles: vec!["admin".into()],
            resources: vec![aud.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let token = operator(&app, "deployer", &["clients:write"]).await;

    let attempts = [
        ("POST", "/admin/api/v1/clients/root-svc/rotate-secret", None),
        (
            "PATCH",
            "/admin/api/v1/clients/root-svc",
            Some(json!({ "jwks": { "keys": [{ "kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" }] } })),
        ),
        ("PATCH", "/admin/api/v1/clients/root-svc", Some(json!({ "name": "harmless rename" }))),
        ("DELETE", "/admin/api/v1/clients/root-svc", None),
        (
            "POST",
            "/admin/api/v1/clients",
            Some(json!({ "client_id": "mine", "grant_types": ["client_credentials"],
            "resources": [aud.clone()] })),
        ),
    ];
    for (method, path, body) in attempts {
        let (status, problem) = call(&app, method, path, &token, body).await;
        assert_eq!(status, 403, "{method} {path}: {problem}");
    }
    // The client is untouched: its own secret still works, nobody else's does.
    assert!(client_token(&app, "root-svc", &root_secret, &aud).await.is_some());

    // A client holding nothing more than the operator is still theirs to manage.
    register(
        &app,
        ClientSpec { client_id: "plain".into(), grants: vec!["client_credentials".into()], ..Default::default() },
    )
    .await;
    let (status, body) = call(&app, "POST", "/admin/api/v1/clients/plain/rotate-secret", &token, None).await;
    assert_eq!(status, 200, "{body}");
}

/// Item 4: `users:credentials` reset an administrator's password and MFA and
/// logged in as them; `roles:write` granted `admin` to anyone.
#[tokio::test]
async fn narrow_user_permissions_cannot_act_on_an_administrator_or_hand_out_more() {
    let app = spawn_app().await;
    app.create_user("boss", ADMIN_PW, &["admin"]).await;
    app.create_user("temp", "violet anvil tramline", &[]).await;
    let helpdesk = operator(&app, "helpdesk", &["users:credentials"]).await;
    for (method, path, body) in [
        ("POST", "/admin/api/v1/users/boss/password", Some(json!({ "password": "the attacker's passphrase" }))),
        ("POST", "/admin/api/v1/users/boss/reset-mfa", None),
        ("POST", "/admin/api/v1/users/boss/unlock", None),
    ] {
        let (status, problem) = call(&app, method, path, &helpdesk, body).await;
        assert_eq!(status, 403, "{method} {path}: {problem}");
    }
    // The administrator's password still works; the attacker's does not.
    let b = app.browser();
    assert_eq!(app.login(&b, "boss", "the attacker's passphrase").await.status(), 200);
    // The helpdesk still does its job for ordinary users.
    let body = json!({ "password": "a brand new passphrase" });
    assert_eq!(call(&app, "POST", "/admin/api/v1/users/temp/password", &helpdesk, Some(body)).await.0, 204);

    let granter = operator(&app, "granter", &["roles:write"]).await;
    for target in ["temp", "boss"] {
        let (status, problem) = call(
            &app,
            "POST",
            &format!("/admin/api/v1/users/{target}/roles"),
            &granter,
            Some(json!({ "role": "admin" })),
        )
        .await;
        assert_eq!(status, 403, "granting admin to {target}: {problem}");
    }
    let (status, problem) =
        call(&app, "POST", "/admin/api/v1/users/temp/roles", &granter, Some(json!({ "role": "users:credentials" })))
            .await;
    assert_eq!(status, 403, "a permission the granter lacks: {problem}");
    let (status, _) =
        call(&app, "POST", "/admin/api/v1/users/temp/roles", &granter, Some(json!({ "role": "roles:write" }))).await;
    assert_eq!(status, 200, "a permission the granter holds");

    let writer = operator(&app, "writer", &["users:write"]).await;
    let body = json!({ "username": "boss2", "password": "a password the writer knows" });
    let (status, problem) = call(&app, "POST", "/admin/api/v1/users", &writer, Some(body)).await;
    assert_eq!(status, 403, "a password is a credential: users:write alone cannot set one ({problem})");
    let (status, _) =
        call(&app, "PATCH", "/admin/api/v1/users/boss", &writer, Some(json!({ "email": "evil@example.com" }))).await;
    assert_eq!(status, 403, "no changing an administrator's email (a later reset would go there)");
}

/// Item 5: a user whose roles the MFA policy does not cover got admin-API
/// tokens from a password-only login; the admin pages refused them.
#[tokio::test]
async fn a_password_only_login_never_gets_to_administer() {
    let app = spawn_app().await;
    portcullis::admin::roles::add(&app.state, &Actor::cli(), "users:credentials", None).await.unwrap();
    app.create_user("desk", "violet anvil tramline", &["users:credentials"]).await;
    app.create_user("someone", "violet anvil tramline", &[]).await;
    let aud = admin_aud(&app);
    let secret = register(
        &app,
        ClientSpec { resources: vec![aud.clone()], scopes: vec![], ..crate::oauth::web_client("console") },
    )
    .await
    .unwrap();
    // The authorization request for admin-API tokens sends a password-only
    // login to set up a second factor; no code comes back.
    let b = app.browser();
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=console&redirect_uri={}&scope=openid&state=s&code_challenge={}&code_challenge_method=S256&resource={}",
        crate::oauth::urlencode(crate::oauth::CB),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        crate::oauth::urlencode(&aud)
    ));
    let r = b.get(&url).send().await.unwrap();
    let to_login = r.headers()["location"].to_str().unwrap().to_owned();
    let page = b.get(app.url(&to_login)).send().await.unwrap().text().await.unwrap();
    let request = page.split(r#"name="request" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    let csrf = crate::helpers::csrf_in(&page);
    let r = b
        .post(app.url("/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "desk"),
            ("password", "violet anvil tramline"),
            ("request", &request),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login/enrol", "a second factor first");
    let _ = secret;

    // And a password-only token, however obtained, is refused by the API.
    let id = portcullis::admin::users::show(&app.state, &portcullis::admin::Actor::cli(), "desk").await.unwrap().id;
    let user = portcullis::storage::users::by_id(&app.state.db, &id).await.unwrap().unwrap();
    let client =
        std::sync::Arc::new(portcullis::storage::clients::find(&app.state.db, "console").await.unwrap().unwrap());
    let g = portcullis::oauth::grants::UserGrant {
        user,
        client,
        scope: vec!["openid".into()],
        nonce: None,
        auth_time: app.state.clock.now().timestamp(),
        amr: vec!["pwd".into()],
        acr: Some("1".into()),
        sid: None,
        resource: Some(aud.clone()),
        claims: None,
        dpop_jkt: None,
    };
    let issued = portcullis::oauth::grants::issue_for_user(&app.state, &app.state.db, &g).await.unwrap();
    let body = json!({ "password": "a brand new passphrase" });
    let (status, problem) =
        call(&app, "POST", "/admin/api/v1/users/someone/password", &issued.access_token, Some(body)).await;
    assert_eq!(status, 401, "{problem}");
}

/// Item 15: `%` and `_` in the admin user search matched everything (a
/// LIKE pattern built from the search text).
#[tokio::test]
async fn the_user_search_matches_its_text_literally() {
    let app = spawn_app().await;
    app.create_user("al_x", "violet anvil tramline", &[]).await;
    app.create_user("alex", "violet anvil tramline", &[]).await;
    let reader = operator(&app, "reader", &["users:read"]).await;
    let names = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap().to_owned()).collect()
    };
    let (_, v) = call(&app, "GET", "/admin/api/v1/users?search=_", &reader, None).await;
    assert_eq!(names(&v), vec!["al_x"]);
    let (_, v) = call(&app, "GET", "/admin/api/v1/users?search=%25", &reader, None).await;
    assert!(names(&v).is_empty(), "{v}");
    let (_, v) = call(&app, "GET", "/admin/api/v1/users?search=al", &reader, None).await;
    assert_eq!(names(&v), vec!["al_x", "alex"]);
}
