//! What the in-memory caches of the hot paths must never do (#22): answer
//! from memory after the truth changed. Each test first makes the cache hold
//! the entry (and checks that it does), then changes the truth and asks again.

use chrono::Utc;
use portcullis::admin::Actor;
use portcullis::admin::clients::ClientSpec;
use portcullis::clock::Clock;
use serde_json::Value;

use crate::helpers::{TestApp, TestDb, spawn_app, spawn_app_on_clock};
use crate::oauth::{CB, PW, exchange, introspect, register, token_req, urlencode, walk, web_client};

/// A code for uma with `scope` (and its PKCE verifier).
async fn code_for(app: &TestApp, scope: &str) -> (String, String) {
    use base64::Engine;
    let verifier = "v".repeat(50);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=webapp&redirect_uri={}&scope={}&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(CB),
        urlencode(scope)
    ));
    let back = walk(app, &app.browser(), &url, "uma", PW).await;
    let code = url::Url::parse(&back).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    (code, verifier)
}

async fn service_token(app: &TestApp, secret: &str) -> String {
    let (status, body, _) =
        token_req(app, Some(("svc", secret)), &[("grant_type", "client_credentials"), ("scope", "api:read")]).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

fn service() -> ClientSpec {
    ClientSpec {
        client_id: "svc".into(),
        grants: vec!["client_credentials".into()],
        scopes: vec!["api:read".into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_token_checked_before_is_still_refused_once_revoked_or_expired() {
    let clock = Clock::fixed(Utc::now());
    let app = spawn_app_on_clock(TestDb::new().await, clock.clone(), |_| {}).await;
    let secret = register(&app, service()).await.unwrap();

    // Revoked after its signature was checked (and remembered).
    let revoked = service_token(&app, &secret).await;
    assert_eq!(introspect(&app, "svc", &secret, &revoked).await["active"], true);
    assert!(!app.state.verified.is_empty(), "the check is answered from memory from now on");
    let r = reqwest::Client::new()
        .post(app.url("/revoke"))
        .basic_auth("svc", Some(&secret))
        .form(&[("token", revoked.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(&app, "svc", &secret, &revoked).await, serde_json::json!({ "active": false }));

    // Expired after it was remembered.
    let expiring = service_token(&app, &secret).await;
    assert_eq!(introspect(&app, "svc", &secret, &expiring).await["active"], true);
    clock.advance(chrono::Duration::seconds(app.state.settings.access_token_ttl_secs + 1));
    assert_eq!(introspect(&app, "svc", &secret, &expiring).await["active"], false);
}

#[tokio::test]
async fn userinfo_from_memory_follows_the_user_and_the_client_at_once() {
    let app = spawn_app().await;
    portcullis::admin::roles::add(&app.state, &Actor::cli(), "staff", None).await.unwrap();
    app.create_user("uma", PW, &["staff"]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let token = |scope: &'static str| {
        let app = &app;
        let secret = secret.clone();
        async move {
            let (code, verifier) = code_for(app, scope).await;
            let (status, body) = exchange(app, "webapp", &secret, &code, &verifier).await;
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let userinfo = |t: String| {
        let app = &app;
        async move {
            let r = reqwest::Client::new().get(app.url("/userinfo")).bearer_auth(t).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let t = token("openid roles").await;
    let (status, claims) = userinfo(t.clone()).await;
    assert_eq!((status, &claims["roles"]), (200, &serde_json::json!(["staff"])), "{claims}");

    // A role taken away shows at once, not after the cache's lifetime.
    portcullis::admin::users::revoke(&app.state, &Actor::cli(), "uma", "staff").await.unwrap();
    let (_, claims) = userinfo(t.clone()).await;
    assert_eq!(claims["roles"], serde_json::json!([]), "{claims}");

    // A disabled user's token stops working at once.
    portcullis::admin::users::set_disabled(&app.state, &Actor::cli(), "uma", true).await.unwrap();
    assert_eq!(userinfo(t.clone()).await.0, 401);
    portcullis::admin::users::set_disabled(&app.state, &Actor::cli(), "uma", false).await.unwrap();

    // A deleted client's tokens die with it, also once checked before.
    let t = token("openid profile").await;
    assert_eq!(userinfo(t.clone()).await.0, 200);
    portcullis::admin::clients::remove(&app.state, &Actor::cli(), "webapp").await.unwrap();
    assert_eq!(userinfo(t).await.0, 401);
}

/// The other changes of a user UserInfo reports: a new name shows at once,
/// and an erased user's token is refused at once (the cached row would
/// otherwise still answer with the erased person's data).
#[tokio::test]
async fn userinfo_from_memory_follows_a_profile_change_and_an_erasure_at_once() {
    let app = spawn_app().await;
    app.create_user("uma", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let (code, verifier) = code_for(&app, "openid profile").await;
    let (status, body) = exchange(&app, "webapp", &secret, &code, &verifier).await;
    assert_eq!(status, 200, "{body}");
    let t = body["access_token"].as_str().unwrap().to_owned();
    let userinfo = || async {
        let r = reqwest::Client::new().get(app.url("/userinfo")).bearer_auth(&t).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    assert_eq!(userinfo().await.0, 200);

    let patch = portcullis::admin::users::ProfilePatch { name: Some(Some("Uma Ulm".into())), ..Default::default() };
    portcullis::admin::users::update_profile(&app.state, &Actor::cli(), "uma", patch).await.unwrap();
    let (status, claims) = userinfo().await;
    assert_eq!((status, &claims["name"]), (200, &serde_json::json!("Uma Ulm")), "{claims}");

    portcullis::admin::users::delete(&app.state, &Actor::cli(), "uma").await.unwrap();
    let (status, claims) = userinfo().await;
    assert_eq!(status, 401, "{claims}");
}

/// Other instances pull revocations by `revoked_ms` with a few seconds of
/// overlap, so a revocation is stamped when it is written, not with the
/// instant its request began (a slow request would otherwise write a time
/// older than the overlap, and another instance that pulled meanwhile would
/// never load it).
#[tokio::test]
async fn a_revocation_is_stamped_when_written_not_when_its_request_began() {
    use portcullis::storage::entities::revoked_token;
    use sea_orm::EntityTrait;
    let app = spawn_app().await;
    let began = app.state.clock.now();
    portcullis::clock::request_scope(&app.state.clock, async {
        app.state.clock.advance(chrono::Duration::seconds(30));
        assert_eq!(app.state.clock.now(), began, "inside the request: its instant");
        let expires = (began + chrono::Duration::minutes(15)).timestamp_millis();
        portcullis::oauth::grants::revoke_jti(&app.state, "slow-request-jti", expires).await.unwrap();
    })
    .await;
    let row = revoked_token::Entity::find_by_id("slow-request-jti").one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(row.revoked_ms, (began + chrono::Duration::seconds(30)).timestamp_millis());
}
