//! Portcullis and the example relying backend (verify/examples/relying_backend.rs),
//! run together.

use portcullis::admin::Actor;
use portcullis::admin::clients::ClientSpec;
use portcullis::verify::{Verifier, VerifierConfig};
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app};
use crate::oauth::{register, token_req};

#[allow(dead_code, clippy::unwrap_used)]
mod example {
    include!("../../verify/examples/relying_backend.rs");
}

pub const API: &str = "https://api.example.com";

pub async fn backend(app: &TestApp, tweak: impl FnOnce(&mut VerifierConfig)) -> (String, Verifier) {
    let mut config = VerifierConfig::new(app.address.clone(), API);
    tweak(&mut config);
    let verifier = Verifier::discover(config).await.unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let v = verifier.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(actix_web::web::Data::new(v.clone()))
            .configure(example::routes)
            .configure(portcullis::verify::metadata_routes)
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (base, verifier)
}

pub async fn service(app: &TestApp, id: &str, roles: &[&str]) -> String {
    for r in roles {
        let _ = portcullis::admin::roles::add(&app.state, &Actor::cli(), r, None).await;
    }
    register(
        app,
        ClientSpec {
            client_id: id.into(),
            grants: vec!["client_credentials".into()],
            roles: roles.iter().map(|r| r.to_string()).collect(),
            resources: vec![API.to_owned(), "https://other.example.com".to_owned()],
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

pub async fn token(app: &TestApp, id: &str, secret: &str, resource: &str) -> String {
    let (status, t, _) =
        token_req(app, Some((id, secret)), &[("grant_type", "client_credentials"), ("resource", resource)]).await;
    assert_eq!(status, 200, "{t}");
    t["access_token"].as_str().unwrap().to_owned()
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let www = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, www)
}

#[tokio::test]
async fn the_example_backend_accepts_good_tokens_and_refuses_the_rest_per_rfc_6750() {
    let app = spawn_app().await;
    let (base, _) = backend(&app, |_| {}).await;
    let billing = service(&app, "billing-svc", &["billing"]).await;
    let plain = service(&app, "plain-svc", &[]).await;
    let good = token(&app, "billing-svc", &billing, API).await;

    assert_eq!(get(&format!("{base}/public"), None).await.0, 200);
    assert_eq!(get(&format!("{base}/me"), Some(&good)).await.0, 200);
    assert_eq!(get(&format!("{base}/billing"), Some(&good)).await.0, 200);

    // RFC 6750 §3.1: no token at all, a challenge without an error code.
    let (s, www) = get(&format!("{base}/me"), None).await;
    // RFC 6750 §3.1 and RFC 9449 §7.1: both schemes offered, no error code.
    assert_eq!((s, www.as_str()), (401, "Bearer, DPoP algs=\"ES256 EdDSA PS256 RS256\""));

    // Every refusal says why, in the header and the body.
    let refused = |why: &str| format!("Bearer error=\"invalid_token\", error_description=\"{why}\"");

    // Missing role: 403 insufficient_scope.
    let no_role = token(&app, "plain-svc", &plain, API).await;
    let (s, www) = get(&format!("{base}/billing"), Some(&no_role)).await;
    assert_eq!(
        (s, www.as_str()),
        (
            403,
            "Bearer error=\"insufficient_scope\", error_description=\"the token lacks a role this resource requires\""
        )
    );

    // Another audience.
    let other = token(&app, "billing-svc", &billing, "https://other.example.com").await;
    assert_eq!(get(&format!("{base}/me"), Some(&other)).await, (401, refused("the token is not for this service")));

    // A tampered signature (and a tampered payload).
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let sig = parts[2].clone();
    parts[2] = format!("{}{}", if sig.starts_with('A') { "B" } else { "A" }, &sig[1..]);
    assert_eq!(
        get(&format!("{base}/me"), Some(&parts.join("."))).await,
        (401, refused("the token's signature does not verify"))
    );
    assert_eq!(get(&format!("{base}/me"), Some("not-a-jwt")).await, (401, refused("the token is malformed")));

    // Expired: issued by a provider clock two hours back.
    app.state.clock.advance(chrono::Duration::hours(-2));
    let expired = token(&app, "billing-svc", &billing, API).await;
    app.state.clock.advance(chrono::Duration::hours(2));
    assert_eq!(get(&format!("{base}/me"), Some(&expired)).await, (401, refused("the token has expired")));
    // The body carries the same.
    let body: Value = reqwest::Client::new()
        .get(format!("{base}/me"))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!({"error": "invalid_token", "error_description": "the token has expired"}));
}

#[tokio::test]
async fn a_key_rotation_is_picked_up_and_a_rotated_out_key_is_refused() {
    let app = spawn_app().await;
    // JWKS refetched on every unknown kid (no rate limit) and treated as stale at once.
    let (base, verifier) = backend(&app, |c| {
        c.min_refetch_interval = std::time::Duration::ZERO;
        c.jwks_ttl = std::time::Duration::ZERO;
    })
    .await;
    let secret = service(&app, "svc", &[]).await;
    let old = token(&app, "svc", &secret, API).await;
    assert_eq!(get(&format!("{base}/me"), Some(&old)).await.0, 200);

    portcullis::admin::keys::rotate(&app.state, &Actor::cli()).await.unwrap();
    app.state.reload_keys().await.unwrap();
    let new = token(&app, "svc", &secret, API).await;
    assert_eq!(get(&format!("{base}/me"), Some(&new)).await.0, 200, "the new key is fetched without a restart");
    assert_eq!(get(&format!("{base}/me"), Some(&old)).await.0, 200, "the old key is still published");

    // Once the provider withdraws the old key, its tokens stop working.
    app.state.clock.advance(chrono::Duration::milliseconds(app.state.settings.publish_retired_ms() + 1000));
    app.state.reload_keys().await.unwrap();
    assert_eq!(get(&format!("{base}/me"), Some(&old)).await.0, 401);
    assert!(verifier.jwks_fetches() >= 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_does_not_hammer_the_provider() {
    let app = spawn_app().await;
    let (base, verifier) = backend(&app, |c| c.min_refetch_interval = std::time::Duration::from_secs(60)).await;
    let secret = service(&app, "svc", &[]).await;
    let good = token(&app, "svc", &secret, API).await;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let before = verifier.jwks_fetches();
    for i in 0..20 {
        let header = b64.encode(format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"bogus-{i}"}}"#));
        let forged = format!("{header}.{}", good.split_once('.').unwrap().1);
        assert_eq!(get(&format!("{base}/me"), Some(&forged)).await.0, 401);
    }
    assert!(verifier.jwks_fetches() - before <= 1, "{} refetches", verifier.jwks_fetches() - before);
}

#[tokio::test]
async fn online_verification_sees_a_revocation_at_once() {
    let app = spawn_app().await;
    let rs_secret = service(&app, "resource-server", &[]).await;
    let (base, _) = backend(&app, |c| {
        c.introspection = Some(("resource-server".into(), rs_secret.clone()));
        c.introspection_cache = std::time::Duration::ZERO;
    })
    .await;
    let secret = service(&app, "caller", &[]).await;
    let t = token(&app, "caller", &secret, API).await;
    assert_eq!(get(&format!("{base}/me"), Some(&t)).await.0, 200);
    let r = reqwest::Client::new()
        .post(app.url("/revoke"))
        .basic_auth("caller", Some(&secret))
        .form(&[("token", &t)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        get(&format!("{base}/me"), Some(&t)).await,
        (401, "Bearer error=\"invalid_token\", error_description=\"the token has been revoked\"".to_owned())
    );
}
