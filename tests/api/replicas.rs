//! Two instances on one database (PostgreSQL in CI's second run; SQLite in
//! the first): everything that matters is shared through the database.

use std::time::Duration;

use portcullis::admin::Actor;
use serde_json::Value;

use crate::helpers::{TestDb, csrf_in, spawn_app_with, spawn_replica};
use crate::oauth::{CB, PW, get_code, register, token_req, web_client};

#[tokio::test]
async fn two_instances_share_sessions_codes_refresh_families_locks_totp_steps_and_keys() {
    let a = spawn_app_with(TestDb::new().await, |s| {
        s.login_max_failures = 3;
        s.key_refresh_secs = 1;
    })
    .await;
    let b = spawn_replica(&a, |_| {}).await;
    a.create_user("nora", PW, &[]).await;
    let secret = register(&a, web_client("webapp")).await.unwrap();

    // A login on A is an SSO session on B (cookies are per host, not per port).
    let browser = a.browser();
    assert_eq!(a.login(&browser, "nora", PW).await.status(), 303);
    assert_eq!(browser.get(b.url("/account")).send().await.unwrap().status(), 200);

    // A code issued by A is redeemed once on B and refused on A.
    let (code, verifier) = get_code(&a, &browser, "webapp", "nora", "").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", verifier.as_str()),
    ];
    let on_b = reqwest::Client::new()
        .post(b.url("/token"))
        .basic_auth("webapp", Some(&secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(on_b.status(), 200);
    let (status, e, _) = token_req(&a, Some(("webapp", &secret)), &form).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));

    // A refresh family rotated on A detects reuse on B.
    let (code, verifier) = get_code(&a, &browser, "webapp", "nora", "").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", verifier.as_str()),
    ];
    let (_, tokens, _) = token_req(&a, Some(("webapp", &secret)), &form).await;
    let r1 = tokens["refresh_token"].as_str().unwrap();
    let (status, _, _) =
        token_req(&a, Some(("webapp", &secret)), &[("grant_type", "refresh_token"), ("refresh_token", r1)]).await;
    assert_eq!(status, 200);
    b.state.clock.advance(chrono::Duration::seconds(11));
    let reuse: Value = reqwest::Client::new()
        .post(b.url("/token"))
        .basic_auth("webapp", Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", r1)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reuse["error"], "invalid_grant");

    // A lock counted on A holds on B.
    a.create_user("otto", PW, &[]).await;
    for _ in 0..3 {
        a.login(&a.browser(), "otto", "wrong wrong").await;
    }
    let fresh = a.browser();
    let page = fresh.get(b.url("/login")).send().await.unwrap().text().await.unwrap();
    let r = fresh
        .post(b.url("/login"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("username", "otto"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "locked on B too");

    // A TOTP step used on A is refused on B.
    let id = a.create_user("pia", PW, &[]).await;
    let seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    portcullis::admin::users::totp_import(
        &a.state,
        &Actor::cli(),
        "pia",
        &secrecy::SecretString::from(seed.to_owned()),
    )
    .await
    .unwrap();
    let now = a.state.clock.now();
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(seed).unwrap().as_ref().to_vec())
        .build()
        .unwrap();
    let code = totp.generate(now.timestamp() as u64).to_string();
    assert_eq!(
        portcullis::authn::mfa::verify_code(&a.state, &id, &code, now).await.unwrap(),
        portcullis::authn::mfa::CodeCheck::Totp
    );
    assert_eq!(
        portcullis::authn::mfa::verify_code(&b.state, &id, &code, now).await.unwrap(),
        portcullis::authn::mfa::CodeCheck::Invalid
    );

    // A key rotation on A is served in B's JWKS within key_refresh_secs.
    portcullis::admin::keys::rotate(&a.state, &Actor::cli()).await.unwrap();
    a.state.reload_keys().await.unwrap();
    let new_kid = a.state.keyring().active(portcullis::domain::SigningAlg::ES256).unwrap().kid.clone();
    let mut seen = false;
    for _ in 0..50 {
        let jwks: Value = reqwest::get(b.url("/jwks")).await.unwrap().json().await.unwrap();
        if jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == new_kid.as_str()) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "B did not pick up the rotation within 5 s");
}
