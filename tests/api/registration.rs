//! Dynamic client registration (RFC 7591) and its management (RFC 7592),
//! through the real app: off by default, initial access tokens, the
//! registration policy's limits, the registration access token, expiry of
//! unused clients.

use portcullis::config::ClientRegistration;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, location, param, spawn_app, spawn_app_with};
use crate::oauth::{PW, urlencode};

const LOOPBACK: &str = "http://127.0.0.1:9/callback";

async fn register(app: &TestApp, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut r = reqwest::Client::new().post(app.url("/register")).json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

fn agent() -> Value {
    json!({
        "client_name": "Agent",
        "redirect_uris": [LOOPBACK],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid profile",
    })
}

async fn open_app() -> TestApp {
    spawn_app_with(TestDb::new().await, |s| s.client_registration = ClientRegistration::Open).await
}

#[tokio::test]
async fn registration_is_off_by_default_and_an_initial_access_token_works_once() {
    let app = spawn_app().await;
    let (status, e) = register(&app, None, &agent()).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_token")), "off by default: {e}");
    let d: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert!(d.get("registration_endpoint").is_none(), "not advertised while off");

    let app = spawn_app_with(TestDb::new().await, |s| s.client_registration = ClientRegistration::Token).await;
    let d: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["registration_endpoint"], app.url("/register"));
    let (status, _) = register(&app, None, &agent()).await;
    assert_eq!(status, 401, "a token is needed");
    let (status, _) = register(&app, Some("made-up"), &agent()).await;
    assert_eq!(status, 401, "an unknown token");
    let out = app.db.cli(&["registration-token", "create", "--json"], None);
    assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
    let token =
        serde_json::from_str::<Value>(&crate::helpers::stdout(&out)).unwrap()["token"].as_str().unwrap().to_owned();
    // A registration outside the policy does not spend it.
    let (status, _) = register(&app, Some(&token), &json!({ "redirect_uris": ["http://evil.example/cb"] })).await;
    assert_eq!(status, 400);
    let (status, reg) = register(&app, Some(&token), &agent()).await;
    assert_eq!(status, 201, "{reg}");
    assert!(reg["client_secret"].is_null(), "a public client");
    assert!(reg["registration_access_token"].is_string());
    let id = reg["client_id"].as_str().unwrap();
    assert_eq!(reg["registration_client_uri"], app.url(&format!("/register/{id}")));
    let (status, _) = register(&app, Some(&token), &agent()).await;
    assert_eq!(status, 401, "used once");

    // The registered client signs a user in — with a consent page (it is not first-party).
    app.create_user("ann", PW, &[]).await;
    let b = app.browser();
    app.login(&b, "ann", PW).await;
    let verifier = "v".repeat(50);
    let challenge = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
    );
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id={id}&redirect_uri={}&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(LOOPBACK)
    ));
    let r = b.get(url).send().await.unwrap();
    assert!(location(&r).starts_with("/consent"), "consent first: {}", location(&r));
    // The admin pages mark it.
    let out = app.db.cli(&["client", "show", id, "--json"], None);
    let shown: Value = serde_json::from_str(&crate::helpers::stdout(&out)).unwrap();
    assert!(shown["registered_ms"].is_i64(), "{shown}");
    assert_eq!(shown["first_party"], false);
    assert_eq!(shown["resources"], json!([]));
    let _ = param;
}

#[tokio::test]
async fn a_registration_outside_the_policy_is_refused_with_the_rfc_error() {
    let app = open_app().await;
    let with = |k: &str, v: Value| {
        let mut m = agent();
        m[k] = v;
        m
    };
    for (body, code, why) in [
        (with("grant_types", json!(["client_credentials"])), "invalid_client_metadata", "client_credentials"),
        (with("grant_types", json!(["password"])), "invalid_client_metadata", "password"),
        (with("redirect_uris", json!(["http://evil.example/cb"])), "invalid_redirect_uri", "plain http"),
        (with("redirect_uris", json!(["https://app.example/cb#frag"])), "invalid_redirect_uri", "a fragment"),
        (with("redirect_uris", json!([])), "invalid_redirect_uri", "none for the code grant"),
        (with("scope", json!("openid admin")), "invalid_client_metadata", "a scope not open to registration"),
        (with("response_types", json!(["token"])), "invalid_client_metadata", "implicit"),
        (with("jwks_uri", json!("https://app.example/jwks")), "invalid_client_metadata", "jwks_uri"),
        (with("token_endpoint_auth_method", json!("private_key_jwt")), "invalid_client_metadata", "no keys"),
        (with("token_endpoint_auth_method", json!("tls_client_auth")), "invalid_client_metadata", "mTLS"),
    ] {
        let (status, e) = register(&app, None, &body).await;
        assert_eq!((status, e["error"].as_str()), (400, Some(code)), "{why}: {e}");
    }
    // What it may not ask for is not given: roles, resources (the admin API's
    // audience), first-party status are ignored.
    let mut m = agent();
    m["resources"] = json!([app.state.admin_audience()]);
    m["roles"] = json!(["admin"]);
    m["first_party"] = json!(true);
    let (status, reg) = register(&app, None, &m).await;
    assert_eq!(status, 201, "{reg}");
    let out = app.db.cli(&["client", "show", reg["client_id"].as_str().unwrap(), "--json"], None);
    let shown: Value = serde_json::from_str(&crate::helpers::stdout(&out)).unwrap();
    assert_eq!((shown["resources"].clone(), shown["roles"].clone()), (json!([]), json!([])));
    assert_eq!(shown["first_party"], false);
    // A quota per address.
    let mut last = 0;
    for _ in 0..12 {
        last = register(&app, None, &agent()).await.0;
    }
    assert_eq!(last, 429, "registrations per address are limited");
}

#[tokio::test]
async fn a_registered_client_reads_updates_and_deletes_itself_with_its_registration_access_token() {
    let app = open_app().await;
    let mut m = agent();
    m["token_endpoint_auth_method"] = json!("client_secret_basic");
    m["redirect_uris"] = json!(["https://app.example/cb"]);
    let (status, reg) = register(&app, None, &m).await;
    assert_eq!(status, 201, "{reg}");
    let id = reg["client_id"].as_str().unwrap().to_owned();
    let secret = reg["client_secret"].as_str().expect("a confidential client gets a secret").to_owned();
    let rat = reg["registration_access_token"].as_str().unwrap().to_owned();
    let uri = reg["registration_client_uri"].as_str().unwrap().to_owned();
    // The secret authenticates it.
    let revoke = |s: &str| {
        reqwest::Client::new().post(app.url("/revoke")).basic_auth(&id, Some(s)).form(&[("token", "x")]).send()
    };
    assert_eq!(revoke(&secret).await.unwrap().status(), 200);
    assert_eq!(revoke("wrong").await.unwrap().status(), 401);

    let http = reqwest::Client::new();
    let r = http.get(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["redirect_uris"], json!(["https://app.example/cb"]));
    assert_eq!(got["token_endpoint_auth_method"], "client_secret_basic");
    assert!(got["client_secret"].is_null(), "the secret is never shown again");
    assert_eq!(http.get(&uri).bearer_auth("wrong").send().await.unwrap().status(), 401);
    assert_eq!(http.get(&uri).send().await.unwrap().status(), 401);
    // Another client's token does not open it.
    let (_, other) = register(&app, None, &agent()).await;
    let other_rat = other["registration_access_token"].as_str().unwrap();
    assert_eq!(http.get(&uri).bearer_auth(other_rat).send().await.unwrap().status(), 401);

    let mut update = m.clone();
    update["client_id"] = json!(id);
    update["redirect_uris"] = json!(["https://app.example/cb2"]);
    let r = http.put(&uri).bearer_auth(&rat).json(&update).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["redirect_uris"], json!(["https://app.example/cb2"]));
    let mut switch = update.clone();
    switch["token_endpoint_auth_method"] = json!("none");
    let r = http.put(&uri).bearer_auth(&rat).json(&switch).send().await.unwrap();
    assert_eq!(r.status(), 400, "public/confidential cannot change");

    assert_eq!(http.delete(&uri).bearer_auth(&rat).send().await.unwrap().status(), 204);
    assert_eq!(http.get(&uri).bearer_auth(&rat).send().await.unwrap().status(), 401);
    assert_eq!(revoke(&secret).await.unwrap().status(), 401, "gone");
}

#[tokio::test]
async fn unused_registered_clients_expire_and_used_ones_stay() {
    let app = open_app().await;
    let (_, unused) = register(&app, None, &agent()).await;
    let (_, used) = register(&app, None, &agent()).await;
    let used_id = used["client_id"].as_str().unwrap().to_owned();
    app.create_user("ann", PW, &[]).await;
    // Someone uses the second (a code is issued for it) after 20 days.
    app.state.clock.advance(chrono::Duration::days(20));
    let b = app.browser();
    let verifier = "v".repeat(50);
    let challenge = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
    );
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id={used_id}&redirect_uri={}&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(LOOPBACK)
    ));
    let back = crate::oauth::walk(&app, &b, &url, "ann", PW).await;
    assert!(back.contains("code="), "{back}");
    app.state.clock.advance(chrono::Duration::days(11));
    portcullis::storage::purge::purge_once(
        &app.state.db,
        &app.state.settings,
        &app.state.clock,
        app.state.master_key.audit_key(),
    )
    .await
    .unwrap();
    let shown = |id: &str| app.db.cli(&["client", "show", id], None).status.success();
    assert!(!shown(unused["client_id"].as_str().unwrap()), "unused for 31 days: expired");
    assert!(shown(&used_id), "used 11 days ago: kept");
    let events = app.db.cli(&["audit", "verify"], None);
    assert!(events.status.success());
}
