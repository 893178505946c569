//! The admin API's first endpoints: who may call them, and how they answer.

use portcullis::admin::Actor;
use portcullis::admin::clients::ClientSpec;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::oauth::{register, token_req};

async fn service_token(app: &TestApp, id: &str, roles: &[&str], resource: &str) -> String {
    for r in roles {
        let _ = portcullis::admin::roles::add(&app.state, &Actor::cli(), r, None).await;
    }
    let secret = register(
        app,
        ClientSpec {
            client_id: id.into(),
            grants: vec!["client_credentials".into()],
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (_, t, _) =
        token_req(app, Some((id, &secret)), &[("grant_type", "client_credentials"), ("resource", resource)]).await;
    t["access_token"].as_str().unwrap().to_owned()
}

async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut r = match method {
        "POST" => http.post(app.url(path)),
        _ => http.get(app.url(path)),
    };
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b.to_string());
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_permission_admits_exactly_its_endpoints() {
    let app = spawn_app().await;
    app.create_user("zoe", "violet anvil tramline", &[]).await;
    let admin_aud = format!("{}/admin", app.address);
    let admin = service_token(&app, "ops", &["admin"], &admin_aud).await;
    let reader = service_token(&app, "reader", &["users:read"], &admin_aud).await;
    let auditor = service_token(&app, "auditor", &["audit:read"], &admin_aud).await;
    let nobody = service_token(&app, "nobody", &[], &admin_aud).await;
    let wrong_aud = service_token(&app, "elsewhere", &["admin"], "https://api.example.com").await;
    let new_user = json!({ "username": "yann", "email": "yann@example.com" });

    // (token, list users, get user, create user, audit)
    let table: [(&str, &str, [u16; 4]); 5] = [
        ("admin", &admin, [200, 200, 201, 200]),
        ("users:read", &reader, [200, 200, 403, 403]),
        ("audit:read", &auditor, [403, 403, 403, 200]),
        ("no role", &nobody, [403, 403, 403, 403]),
        ("other audience", &wrong_aud, [401, 401, 401, 401]),
    ];
    for (who, token, expected) in table {
        let got = [
            call(&app, "GET", "/admin/api/v1/users", Some(token), None).await.0,
            call(&app, "GET", "/admin/api/v1/users/zoe", Some(token), None).await.0,
            call(&app, "POST", "/admin/api/v1/users", Some(token), Some(new_user.clone())).await.0,
            call(&app, "GET", "/admin/api/v1/audit", Some(token), None).await.0,
        ];
        assert_eq!(got, expected, "{who}");
    }
    assert_eq!(call(&app, "GET", "/admin/api/v1/users", None, None).await.0, 401);
}

#[tokio::test]
async fn bad_bodies_get_a_problem_naming_the_field() {
    let app = spawn_app().await;
    let admin = service_token(&app, "ops", &["admin"], &format!("{}/admin", app.address)).await;
    let (s, p) = call(&app, "POST", "/admin/api/v1/users", Some(&admin), Some(json!({ "username": "a b" }))).await;
    assert_eq!((s, p["field"].as_str()), (400, Some("username")));
    let (s, p) =
        call(&app, "POST", "/admin/api/v1/users", Some(&admin), Some(json!({ "username": "ok", "password": "short" })))
            .await;
    assert_eq!((s, p["field"].as_str()), (400, Some("password")));
    let (s, _) =
        call(&app, "POST", "/admin/api/v1/users", Some(&admin), Some(json!({ "username": "ok", "isAdmin": true })))
            .await;
    assert_eq!(s, 400, "unknown fields are refused");
    let (s, _) = call(&app, "POST", "/admin/api/v1/users", Some(&admin), Some(json!({ "username": "ok" }))).await;
    assert_eq!(s, 201);
    let (s, p) = call(&app, "POST", "/admin/api/v1/users", Some(&admin), Some(json!({ "username": "OK" }))).await;
    assert_eq!((s, p["title"].as_str()), (409, Some("Already exists")));
    let (s, p) = call(&app, "GET", "/admin/api/v1/users?per_page=1000", Some(&admin), None).await;
    assert_eq!((s, p["field"].as_str()), (400, Some("per_page")));
    let (s, p) = call(&app, "GET", "/admin/api/v1/users?search=o", Some(&admin), None).await;
    assert_eq!(s, 200);
    assert_eq!(p["total"], 1);
    // The creation was audited with the calling client as the actor.
    let (_, audit) = call(&app, "GET", "/admin/api/v1/audit?type=user.created", Some(&admin), None).await;
    assert_eq!(audit["items"][0]["actor"], "client:ops");
}

/// Every endpoint × every permission: allowed exactly when the endpoint's
/// permission is held (or `admin`).
#[tokio::test]
async fn the_permission_table_holds_for_every_endpoint() {
    let app = spawn_app().await;
    app.create_user("zoe", "violet anvil tramline", &[]).await;
    portcullis::admin::roles::add(&app.state, &Actor::cli(), "billing", None).await.unwrap();
    register(
        &app,
        ClientSpec { client_id: "victim".into(), grants: vec!["client_credentials".into()], ..Default::default() },
    )
    .await;
    let aud = format!("{}/admin", app.address);
    let endpoints: Vec<(&str, &str, Option<Value>, &str)> = vec![
        ("GET", "/admin/api/v1/users", None, "users:read"),
        ("GET", "/admin/api/v1/users/zoe", None, "users:read"),
        ("GET", "/admin/api/v1/roles", None, "users:read"),
        ("POST", "/admin/api/v1/users/zoe/disable", None, "users:write"),
        ("POST", "/admin/api/v1/users/zoe/enable", None, "users:write"),
        ("PUT", "/admin/api/v1/users/zoe/attributes/department", Some(json!({ "value": "finance" })), "users:write"),
        ("POST", "/admin/api/v1/users/zoe/unlock", None, "users:credentials"),
        ("POST", "/admin/api/v1/users/zoe/reset-mfa", None, "users:credentials"),
        (
            "POST",
            "/admin/api/v1/users/zoe/password",
            Some(json!({ "password": "another fine passphrase" })),
            "users:credentials",
        ),
        ("POST", "/admin/api/v1/users/zoe/roles", Some(json!({ "role": "billing" })), "roles:write"),
        ("DELETE", "/admin/api/v1/users/zoe/roles/billing", None, "roles:write"),
        ("POST", "/admin/api/v1/roles", Some(json!({ "name": "ops-team" })), "roles:write"),
        ("DELETE", "/admin/api/v1/users/zoe/sessions", None, "sessions:revoke"),
        ("GET", "/admin/api/v1/clients", None, "clients:read"),
        ("GET", "/admin/api/v1/clients/victim", None, "clients:read"),
        ("POST", "/admin/api/v1/clients/victim/rotate-secret", None, "clients:write"),
        ("GET", "/admin/api/v1/keys", None, "keys:rotate"),
        ("GET", "/admin/api/v1/audit", None, "audit:read"),
    ];
    let permissions = [
        "users:read",
        "users:write",
        "users:credentials",
        "clients:read",
        "clients:write",
        "roles:write",
        "keys:rotate",
        "audit:read",
        "sessions:revoke",
    ];
    for perm in permissions {
        let token = service_token(&app, &format!("holder-{}", perm.replace(':', "-")), &[perm], &aud).await;
        for (method, path, body, needed) in &endpoints {
            let (status, _) = call_any(&app, method, path, &token, body.clone()).await;
            if perm == *needed {
                assert!(status != 401 && status != 403, "{perm} should reach {method} {path}, got {status}");
            } else {
                assert_eq!(status, 403, "{perm} must not reach {method} {path}");
            }
        }
    }
}

async fn call_any(app: &TestApp, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut r = match method {
        "POST" => http.post(app.url(path)),
        "PUT" => http.put(app.url(path)),
        "DELETE" => http.delete(app.url(path)),
        _ => http.get(app.url(path)),
    }
    .bearer_auth(token);
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b.to_string());
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}
