//! The admin API's first endpoints: who may call them, and how they answer.

use portcullis::admin::Actor;
use portcullis::admin::clients::ClientSpec;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::oauth::{register, token_req, urlencode};

pub async fn service_token(app: &TestApp, id: &str, roles: &[&str], resource: &str) -> String {
    for r in roles {
        let _ = portcullis::admin::roles::add(&app.state, &Actor::cli(), r, None).await;
    }
    let secret = register(
        app,
        ClientSpec {
            client_id: id.into(),
            grants: vec!["client_credentials".into()],
            roles: roles.iter().map(|r| r.to_string()).collect(),
            resources: vec![resource.to_owned()],
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
    crate::helpers::api(app, method, path, token, body).await
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
    let (s, _) = call(&app, "POST", "/admin/api/v1/users", Some(&admin), Some(json!(["ok", null]))).await;
    assert_eq!(s, 400, "a JSON array is not an object, even if serde could read it position by position");
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
    let endpoints = endpoints();
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
    crate::helpers::api(app, method, path, Some(token), body).await
}

/// Every admin endpoint with a concrete path, a body, and the permission it needs.
fn endpoints() -> Vec<(&'static str, &'static str, Option<Value>, &'static str)> {
    vec![
        ("GET", "/admin/api/v1/users", None, "users:read"),
        ("GET", "/admin/api/v1/users/zoe", None, "users:read"),
        ("GET", "/admin/api/v1/roles", None, "users:read"),
        ("POST", "/admin/api/v1/users/zoe/disable", None, "users:write"),
        ("POST", "/admin/api/v1/users/zoe/enable", None, "users:write"),
        ("PUT", "/admin/api/v1/users/zoe/attributes/department", Some(json!({ "value": "finance" })), "users:write"),
        ("POST", "/admin/api/v1/users/zoe/unlock", None, "users:credentials"),
        ("POST", "/admin/api/v1/users/zoe/reset-mfa", None, "users:credentials"),
        ("POST", "/admin/api/v1/users/zoe/reset-link", None, "users:credentials"),
        ("POST", "/admin/api/v1/users/zoe/invitation", None, "users:credentials"),
        ("GET", "/admin/api/v1/users/zoe/upstream", None, "users:read"),
        ("DELETE", "/admin/api/v1/users/zoe/upstream/corp", None, "users:credentials"),
        ("GET", "/admin/api/v1/users/zoe/passkeys", None, "users:read"),
        ("DELETE", "/admin/api/v1/users/zoe/passkeys/no-such-key", None, "users:credentials"),
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
        ("DELETE", "/admin/api/v1/sessions", None, "sessions:revoke"),
        ("GET", "/admin/api/v1/clients", None, "clients:read"),
        ("GET", "/admin/api/v1/clients/victim", None, "clients:read"),
        ("POST", "/admin/api/v1/clients/victim/rotate-secret", None, "clients:write"),
        ("GET", "/admin/api/v1/keys", None, "keys:rotate"),
        ("GET", "/admin/api/v1/audit", None, "audit:read"),
        ("GET", "/admin/api/v1/users/zoe/sessions", None, "users:read"),
        ("POST", "/admin/api/v1/users", Some(json!({ "username": "made-by-api" })), "users:write"),
        ("PATCH", "/admin/api/v1/users/zoe", Some(json!({ "name": "Zoe Q" })), "users:write"),
        (
            "POST",
            "/admin/api/v1/clients",
            Some(json!({ "client_id": "made-by-api", "grant_types": ["client_credentials"] })),
            "clients:write",
        ),
        ("PATCH", "/admin/api/v1/clients/victim", Some(json!({ "name": "Victim" })), "clients:write"),
        ("POST", "/admin/api/v1/keys/rotate", None, "keys:rotate"),
        ("POST", "/admin/api/v1/registration-tokens", None, "clients:write"),
        ("DELETE", "/admin/api/v1/clients/victim", None, "clients:write"),
        ("DELETE", "/admin/api/v1/users/zoe", None, "users:write"),
    ]
}

/// The OpenAPI path template of a concrete test path.
fn template(path: &str) -> String {
    path.replace("/users/zoe", "/users/{username}")
        .replace("/clients/victim", "/clients/{client_id}")
        .replace("/attributes/department", "/attributes/{key}")
        .replace("/roles/billing", "/roles/{role}")
        .replace("/passkeys/no-such-key", "/passkeys/{credential_id}")
        .replace("/upstream/corp", "/upstream/{provider}")
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_endpoints_of_the_permission_table() {
    let app = spawn_app().await;
    let resp = reqwest::get(app.url("/admin/api/openapi.json")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
            // Every operation says which permission it needs and how it fails.
            let op = &item[method];
            assert!(op["description"].as_str().unwrap_or_default().contains("Needs `"), "{method} {path}");
            assert!(op["responses"]["401"].is_object() && op["responses"]["403"].is_object(), "{method} {path}");
        }
    }
    documented.sort();
    let mut tested: Vec<(String, String)> =
        endpoints().into_iter().map(|(m, p, _, _)| (m.to_owned(), template(p))).collect();
    tested.sort();
    tested.dedup();
    assert_eq!(documented, tested);
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

#[tokio::test]
async fn clients_are_created_and_changed_over_the_api_with_before_and_after_in_the_audit_log() {
    let app = spawn_app().await;
    let aud = format!("{}/admin", app.address);
    let admin = service_token(&app, "ops", &["admin"], &aud).await;
    let writer = service_token(&app, "writer", &["clients:write"], &aud).await;
    let body = json!({ "client_id": "billing-app", "redirect_uris": ["https://billing.example.com/cb"],
        "access_policy": { "roles_any": ["finance"], "networks": ["10.1.0.0/16"] } });
    let (s, created) = call_any(&app, "POST", "/admin/api/v1/clients", &writer, Some(body)).await;
    assert_eq!(s, 201, "{created}");
    assert!(created["client_secret"].as_str().unwrap().len() >= 40);
    assert_eq!(created["access_policy"]["networks"][0], "10.1.0.0/16");
    // Giving a client roles hands it permissions: clients:write alone may not.
    let (s, _) = call_any(
        &app,
        "POST",
        "/admin/api/v1/clients",
        &writer,
        Some(json!({ "client_id": "sneaky", "grant_types": ["client_credentials"], "roles": ["admin"] })),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) =
        call_any(&app, "PATCH", "/admin/api/v1/clients/billing-app", &writer, Some(json!({ "roles": ["admin"] })))
            .await;
    assert_eq!(s, 403);
    // Bad input names the field, and changes nothing.
    for (patch, field) in [
        (json!({ "access_policy": { "networks": ["10.0.0.0/40"] } }), "access_policy.networks"),
        (json!({ "access_policy": { "attributes": { "no spaces": ["x"] } } }), "access_policy.attributes"),
        (json!({ "redirect_uris": ["not a url"] }), "redirect_uri"),
    ] {
        let (s, p) = call_any(&app, "PATCH", "/admin/api/v1/clients/billing-app", &admin, Some(patch)).await;
        assert_eq!((s, p["field"].as_str()), (400, Some(field)), "{p}");
    }
    let (s, _) =
        call_any(&app, "PATCH", "/admin/api/v1/clients/billing-app", &admin, Some(json!({ "colour": 1 }))).await;
    assert_eq!(s, 400, "unknown fields are refused");
    // A real change: the policy is replaced, the name set; the audit record has both sides.
    let (s, v) = call_any(
        &app,
        "PATCH",
        "/admin/api/v1/clients/billing-app",
        &admin,
        Some(json!({ "name": "Billing", "access_policy": { "mfa": true } })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["access_policy"], json!({ "mfa": true }));
    assert_eq!(v["redirect_uris"][0], "https://billing.example.com/cb", "absent fields are kept");
    let (_, audit) = call(&app, "GET", "/admin/api/v1/audit?type=client.updated", Some(&admin), None).await;
    let changes = &audit["items"][0]["detail"]["changes"];
    assert_eq!(changes["name"], json!({ "from": null, "to": "Billing" }));
    assert_eq!(changes["access_policy"]["to"], json!({ "mfa": true }));
    assert!(changes.get("redirect_uris").is_none(), "{changes}");
    // `null` clears the policy.
    let (_, v) =
        call_any(&app, "PATCH", "/admin/api/v1/clients/billing-app", &admin, Some(json!({ "access_policy": null })))
            .await;
    assert_eq!(v["access_policy"], Value::Null);
}

#[tokio::test]
async fn deleting_a_client_ends_its_tokens() {
    let app = spawn_app().await;
    let aud = format!("{}/admin", app.address);
    let admin = service_token(&app, "ops", &["admin"], &aud).await;
    let doomed = service_token(&app, "doomed", &["users:read"], &aud).await;
    assert_eq!(call(&app, "GET", "/admin/api/v1/users", Some(&doomed), None).await.0, 200);
    let (s, _) = call_any(&app, "DELETE", "/admin/api/v1/clients/doomed", &admin, None).await;
    assert_eq!(s, 204);
    assert_eq!(call(&app, "GET", "/admin/api/v1/users", Some(&doomed), None).await.0, 401);
    let (_, audit) = call(&app, "GET", "/admin/api/v1/audit?type=client.removed", Some(&admin), None).await;
    assert_eq!(audit["items"][0]["client_id"], "doomed");
}

#[tokio::test]
async fn users_are_updated_and_the_last_admin_cannot_be_removed_or_disabled() {
    let app = spawn_app().await;
    let aud = format!("{}/admin", app.address);
    let admin = service_token(&app, "ops", &["admin"], &aud).await;
    app.create_user("root", "violet anvil tramline", &["admin"]).await;
    let (s, v) = call_any(
        &app,
        "PATCH",
        "/admin/api/v1/users/root",
        &admin,
        Some(json!({ "email": "root@example.com", "name": "Root" })),
    )
    .await;
    assert_eq!((s, v["email"].as_str()), (200, Some("root@example.com")));
    let (s, p) = call_any(&app, "PATCH", "/admin/api/v1/users/root", &admin, Some(json!({ "email": "nope" }))).await;
    assert_eq!((s, p["field"].as_str()), (400, Some("email")));
    let (_, audit) = call(&app, "GET", "/admin/api/v1/audit?type=user.updated", Some(&admin), None).await;
    assert_eq!(audit["items"][0]["detail"]["changes"]["email"], json!({ "from": null, "to": "root@example.com" }));
    // The only administrator can neither be disabled nor lose the role…
    let (s, p) = call_any(&app, "POST", "/admin/api/v1/users/root/disable", &admin, None).await;
    assert_eq!(s, 400, "{p}");
    let (s, _) = call_any(&app, "DELETE", "/admin/api/v1/users/root/roles/admin", &admin, None).await;
    assert_eq!(s, 400);
    // …until there is another enabled one.
    app.create_user("second", "violet anvil tramline", &["admin"]).await;
    let (s, _) = call_any(&app, "POST", "/admin/api/v1/users/root/disable", &admin, None).await;
    assert_eq!(s, 200);
    let (s, _) = call_any(&app, "DELETE", "/admin/api/v1/users/second/roles/admin", &admin, None).await;
    assert_eq!(s, 400, "root is disabled, so second is the last enabled admin");
    // The audit log filters by time.
    let later = (app.state.clock.now() + chrono::Duration::seconds(1)).to_rfc3339();
    let (s, audit) =
        call(&app, "GET", &format!("/admin/api/v1/audit?since={}", urlencode(&later)), Some(&admin), None).await;
    assert_eq!((s, audit["items"].as_array().unwrap().len()), (200, 0));
    let (s, p) = call(&app, "GET", "/admin/api/v1/audit?since=yesterday", Some(&admin), None).await;
    assert_eq!((s, p["field"].as_str()), (400, Some("since")));
}

/// RFC 8707: a client gets tokens only for the resources registered for it;
/// above all, a client a user signs in to cannot mint admin-API tokens.
#[tokio::test]
async fn a_client_cannot_ask_for_a_resource_it_was_not_registered_for() {
    use crate::oauth::{CB, PW, walk, web_client};
    let app = spawn_app().await;
    let admin_aud = format!("{}/admin", app.address);
    app.create_user("root", PW, &["admin"]).await;
    let secret = register(
        &app,
        ClientSpec { grants: vec!["client_credentials".into()], client_id: "svc".into(), ..Default::default() },
    )
    .await
    .unwrap();
    let (s, t, _) =
        token_req(&app, Some(("svc", &secret)), &[("grant_type", "client_credentials"), ("resource", &admin_aud)])
            .await;
    assert_eq!((s, t["error"].as_str()), (400, Some("invalid_target")));
    // A relying party that an administrator logs in to: no admin audience either.
    register(&app, web_client("shop")).await;
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=shop&redirect_uri={}&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&resource={}",
        urlencode(CB),
        urlencode(&admin_aud)
    ));
    let back = walk(&app, &app.browser(), &url, "root", PW).await;
    assert!(back.contains("error=invalid_target") && !back.contains("code="), "{back}");
}

/// Concurrent administrative writes queue rather than fail (SQLite: write
/// transactions begin IMMEDIATE, so a read-then-write never hits a stale
/// snapshot; found by the DAST pass).
#[tokio::test]
async fn concurrent_admin_writes_all_succeed() {
    let app = spawn_app().await;
    let admin = service_token(&app, "ops", &["admin"], &format!("{}/admin", app.address)).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (url, admin) = (app.url("/admin/api/v1/users"), admin.clone());
        tasks.spawn(async move {
            let body = json!({ "username": format!("user{i}"), "email": format!("u{i}@example.com") });
            let r = reqwest::Client::new().post(url).bearer_auth(admin).json(&body).send().await.unwrap();
            r.status().as_u16()
        });
    }
    let statuses = tasks.join_all().await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
}

/// An administrator ending a user's sessions also ends the refresh tokens
/// granted from them; refused admin calls and failed client authentications
/// are in the audit log.
#[tokio::test]
async fn ending_sessions_ends_their_refresh_tokens_and_refusals_are_audited() {
    use crate::oauth::{PW, exchange, get_code, web_client};
    let app = spawn_app().await;
    let aud = format!("{}/admin", app.address);
    let admin = service_token(&app, "ops", &["admin"], &aud).await;
    let reader = service_token(&app, "reader", &["users:read"], &aud).await;
    app.create_user("vic", PW, &[]).await;
    let secret = register(&app, web_client("app")).await.unwrap();
    let (code, verifier) = get_code(&app, &app.browser(), "app", "vic", "").await;
    let (_, t) = exchange(&app, "app", &secret, &code, &verifier).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let (s, v) = call_any(&app, "DELETE", "/admin/api/v1/users/vic/sessions", &admin, None).await;
    assert_eq!((s, v["sessions_ended"].as_u64()), (200, Some(1)));
    let (s, e, _) =
        token_req(&app, Some(("app", &secret)), &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));

    // Refusals leave a trace: a 403, a 401, a failed client authentication.
    assert_eq!(call_any(&app, "POST", "/admin/api/v1/users/vic/disable", &reader, None).await.0, 403);
    assert_eq!(call(&app, "GET", "/admin/api/v1/users", Some("garbage"), None).await.0, 401);
    let (s, _, _) = token_req(&app, Some(("app", "wrong")), &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, 401);
    let (_, audit) = call(&app, "GET", "/admin/api/v1/audit?type=admin_api.forbidden", Some(&admin), None).await;
    assert_eq!(audit["items"][0]["actor"], "client:reader");
    assert_eq!(audit["items"][0]["detail"]["permission"], "users:write");
    for event in ["admin_api.unauthorized", "oauth.client_auth_failed"] {
        let (_, audit) = call(&app, "GET", &format!("/admin/api/v1/audit?type={event}"), Some(&admin), None).await;
        assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{event}");
    }
}

/// The services themselves demand the permission: an actor built from a
/// principal without it is refused before anything is written, whichever
/// door (API, pages, CLI) it came through.
#[tokio::test]
async fn the_admin_services_refuse_an_actor_without_the_permission() {
    use portcullis::admin::{AdminError, clients, roles, users};
    use portcullis::policy::{Permission, Principal};
    let app = spawn_app().await;
    app.create_user("zed", "violet anvil tramline", &[]).await;
    let reader = Principal {
        subject: "someone".into(),
        is_client: false,
        permissions: vec![Permission::UsersRead],
        roles: vec!["users:read".into()],
        auth_time: None,
    };
    let a = Actor::for_principal(&reader, None, None);
    let forbidden = |r: Result<(), AdminError>| assert!(matches!(r, Err(AdminError::Forbidden(_))), "{r:?}");
    let new = users::NewUser::parse("yves", None, None, &[], None).unwrap();
    forbidden(users::create(&app.state, &a, new).await.map(drop));
    forbidden(users::set_disabled(&app.state, &a, "zed", true).await.map(drop));
    forbidden(users::reset_mfa(&app.state, &a, "zed").await.map(drop));
    forbidden(users::end_sessions(&app.state, &a, "zed").await.map(drop));
    forbidden(roles::add(&app.state, &a, "sneaky", None).await.map(drop));
    let spec = ClientSpec { client_id: "x".into(), grants: vec!["client_credentials".into()], ..Default::default() };
    forbidden(clients::add(&app.state, &a, &spec).await.map(drop));
    forbidden(portcullis::admin::keys::rotate(&app.state, &a).await.map(drop));
    // Holding users:write is not enough to create a user with roles.
    let writer = Principal { permissions: vec![Permission::UsersWrite], ..reader };
    let w = Actor::for_principal(&writer, None, None);
    let with_role = users::NewUser::parse("yves", None, None, &["admin".into()], None).unwrap();
    forbidden(users::create(&app.state, &w, with_role).await.map(drop));
    assert!(users::show(&app.state, &portcullis::admin::Actor::cli(), "yves").await.is_err(), "nothing was written");
    assert!(!users::show(&app.state, &portcullis::admin::Actor::cli(), "zed").await.unwrap().disabled);
}

/// The emergency switch: every user's sessions and the refresh tokens granted
/// from them end at once; service clients' own tokens are not affected.
#[tokio::test]
async fn ending_every_session_logs_everyone_out() {
    use crate::oauth::{PW, exchange, get_code, web_client};
    let app = spawn_app().await;
    let admin = service_token(&app, "ops", &["admin"], &format!("{}/admin", app.address)).await;
    let secret = register(&app, web_client("app")).await.unwrap();
    let mut grants = Vec::new();
    for user in ["ann", "ben"] {
        app.create_user(user, PW, &[]).await;
        let b = app.browser();
        let (code, verifier) = get_code(&app, &b, "app", user, "").await;
        let (_, t) = exchange(&app, "app", &secret, &code, &verifier).await;
        grants.push((b, t["refresh_token"].as_str().unwrap().to_owned()));
    }
    let (s, v) = call_any(&app, "DELETE", "/admin/api/v1/sessions", &admin, None).await;
    assert_eq!((s, v["sessions_ended"].as_u64()), (200, Some(2)));
    for (browser, rt) in &grants {
        assert_eq!(browser.get(app.url("/account")).send().await.unwrap().status(), 303, "logged out");
        let (s, _, _) =
            token_req(&app, Some(("app", &secret)), &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
        assert_eq!(s, 400, "the refresh token ended with its session");
    }
    // The admin's own (client_credentials) token still works.
    assert_eq!(call(&app, "GET", "/admin/api/v1/users", Some(&admin), None).await.0, 200);
    let (_, audit) = call(&app, "GET", "/admin/api/v1/audit?type=sessions.revoked_all", Some(&admin), None).await;
    assert_eq!(audit["items"][0]["detail"]["sessions_ended"], 2);
}

/// Credential changes made with a user's token need that user's login to be
/// recent: an older one gets the RFC 9470 step-up challenge.
#[tokio::test]
async fn credential_changes_with_a_users_token_need_a_recent_login() {
    use crate::oauth::{PW, exchange, get_code_with_totp, web_client};
    let app = spawn_app().await;
    let aud = format!("{}/admin", app.address);
    portcullis::admin::roles::add(&app.state, &Actor::cli(), "users:credentials", None).await.unwrap();
    app.create_user("helpdesk", PW, &["users:credentials"]).await;
    app.create_user("victor", PW, &[]).await;
    // Admin-API tokens need a second factor: the helpdesk has an authenticator.
    const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let seed = secrecy::SecretString::from(SEED.to_owned());
    portcullis::admin::users::totp_import(&app.state, &Actor::cli(), "helpdesk", &seed).await.unwrap();
    let secret = register(&app, ClientSpec { resources: vec![aud.clone()], ..web_client("console") }).await.unwrap();
    let (code, verifier) = get_code_with_totp(
        &app,
        &app.browser(),
        "console",
        "helpdesk",
        &format!("&resource={}", urlencode(&aud)),
        Some(SEED),
    )
    .await;
    let (s, t) = exchange(&app, "console", &secret, &code, &verifier).await;
    assert_eq!(s, 200, "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();
    let unlock =
        || reqwest::Client::new().post(app.url("/admin/api/v1/users/victor/unlock")).bearer_auth(token.clone()).send();
    assert_eq!(unlock().await.unwrap().status(), 200, "a fresh login");
    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.admin_reauth_secs + 1));
    let r = unlock().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("insufficient_user_authentication") && challenge.contains("max_age=300"), "{challenge}");
    // Other refusals are unchanged: a missing permission is 403, not a step-up challenge.
    let r = reqwest::Client::new().get(app.url("/admin/api/v1/users")).bearer_auth(token.clone()).send().await;
    assert_eq!(r.unwrap().status(), 403, "users:credentials does not include users:read");
}
