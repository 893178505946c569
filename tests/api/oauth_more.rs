//! Step-up to MFA, private_key_jwt, back-channel logout, UserInfo errors and
//! key rotation.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis::admin::Actor;
use portcullis::admin::clients::ClientSpec;
use serde_json::{Value, json};

use crate::helpers::{claims_of, csrf_in, location, spawn_app};
use crate::oauth::{CB, PW, exchange, get_code, register, token_req, urlencode, web_client};

#[tokio::test]
async fn a_client_that_requires_mfa_makes_a_password_only_session_step_up() {
    let app = spawn_app().await;
    app.create_user("hana", PW, &[]).await;
    let secret = register(&app, ClientSpec { require_mfa: true, ..web_client("bank") }).await.unwrap();
    let b = app.browser();
    // A password-only session, then TOTP set up from the account page.
    assert_eq!(app.login(&b, "hana", PW).await.status(), 303);
    let page = b.get(app.url("/account/mfa")).send().await.unwrap().text().await.unwrap();
    let secret_b32 = page.split(r#"<code id="totp-secret">"#).nth(1).unwrap().split('<').next().unwrap().to_owned();
    let enrolment = page.split(r#"name="enrolment" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(&secret_b32).unwrap().as_ref().to_vec())
        .build()
        .unwrap();
    let now = app.state.clock.now().timestamp() as u64;
    let code = totp.generate(now).to_string();
    b.post(app.url("/account/mfa"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("enrolment", &enrolment), ("code", &code)])
        .send()
        .await
        .unwrap();

    let ch = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=bank&redirect_uri={}&scope=openid&state=s&code_challenge={ch}&code_challenge_method=S256",
        urlencode(CB)
    ));
    let r = b.get(&url).send().await.unwrap();
    let to = location(&r);
    assert!(to.starts_with("/login?request="), "the password-only session must step up, got {to}");
    let html = b.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    let request = html.split(r#"name="request" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    let csp =
        b.get(app.url(&to)).send().await.unwrap().headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("form-action 'self' http://127.0.0.1:9"), "{csp}");
    let r = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf_in(&html).as_str()), ("username", "hana"), ("password", PW), ("request", &request)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/login/mfa");
    app.state.clock.advance(chrono::Duration::seconds(30));
    let mfa = b.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    let code = totp.generate(app.state.clock.now().timestamp() as u64).to_string();
    let r = b
        .post(app.url("/login/mfa"))
        .form(&[("csrf", csrf_in(&mfa).as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert!(location(&r).starts_with("/authorize/continue?request="));
    let r = b.get(app.url(&location(&r))).send().await.unwrap();
    let back = location(&r);
    assert!(back.starts_with(CB), "{back}");
    let code = url::Url::parse(&back).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let (_, t, _) = token_req(
        &app,
        Some(("bank", &secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        ],
    )
    .await;
    let id = claims_of(t["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["pwd", "otp"]));
    assert_eq!(id["acr"], "2");
}

#[tokio::test]
async fn a_stolen_password_alone_never_reaches_an_mfa_client() {
    let app = spawn_app().await;
    app.create_user("ivo", PW, &[]).await; // no TOTP yet
    register(&app, ClientSpec { require_mfa: true, ..web_client("bank") }).await;
    let b = app.browser();
    let ch = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=bank&redirect_uri={}&scope=openid&code_challenge={ch}&code_challenge_method=S256",
        urlencode(CB)
    ));
    let to = location(&b.get(&url).send().await.unwrap());
    let html = b.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    let request = html.split(r#"name="request" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    let r = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf_in(&html).as_str()), ("username", "ivo"), ("password", PW), ("request", &request)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/login/enrol", "the password leads only to setting up a second factor");
    assert_eq!(b.get(app.url(&format!("/authorize/continue?request={request}"))).send().await.unwrap().status(), 303);
    assert!(
        !location(&b.get(app.url(&format!("/authorize/continue?request={request}"))).send().await.unwrap())
            .starts_with(CB)
    );
}

#[tokio::test]
async fn private_key_jwt_authenticates_a_client_once_per_assertion() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let app = spawn_app().await;
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = kp.to_pkcs8v1().unwrap();
    let p = kp.public_key().as_ref();
    let jwk = json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..]) }] });
    register(
        &app,
        ClientSpec {
            client_id: "signer".into(),
            grants: vec!["client_credentials".into()],
            jwks: Some(jwk.to_string()),
            ..Default::default()
        },
    )
    .await;
    let now = app.state.clock.now().timestamp();
    let claims = json!({ "iss": "signer", "sub": "signer", "aud": app.url("/token"), "exp": now + 60, "iat": now, "jti": "one" });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let assertion =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref())).unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion.as_str()),
    ];
    let (status, t, _) = token_req(&app, None, &form).await;
    assert_eq!(status, 200, "{t}");
    let (status, e, _) = token_req(&app, None, &form).await;
    assert_eq!(status, 401, "a replayed assertion");
    assert_eq!(e["error"], "invalid_client");
    // Signed by another key: refused.
    let other = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap().to_pkcs8v1().unwrap();
    let claims = json!({ "iss": "signer", "sub": "signer", "aud": app.url("/token"), "exp": now + 60, "jti": "two" });
    let forged =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(other.as_ref())).unwrap();
    let (status, _, _) = token_req(&app, None, &[form[0], form[1], ("client_assertion", forged.as_str())]).await;
    assert_eq!(status, 401);
    // Not valid yet (nbf an hour ahead of the real clock jsonwebtoken checks against): refused.
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({ "iss": "signer", "sub": "signer", "aud": app.url("/token"), "exp": wall + 7200,
        "nbf": wall + 3600, "jti": "three" });
    let early =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref())).unwrap();
    let (status, e, _) = token_req(&app, None, &[form[0], form[1], ("client_assertion", early.as_str())]).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_client")), "an assertion used before its nbf");
}

/// Accepts one HTTP request on a loopback port and hands back its body.
fn one_request_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(i) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + len {
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                        let _ = tx.send(text[i + 4..].to_string());
                        break;
                    }
                }
            }
        }
    });
    (port, rx)
}

#[tokio::test]
async fn logging_out_notifies_clients_with_a_back_channel_logout_token() {
    let app = spawn_app().await;
    let user_id = app.create_user("jana", PW, &[]).await;
    let (port, rx) = one_request_server();
    register(
        &app,
        ClientSpec { backchannel_logout_uri: Some(format!("http://127.0.0.1:{port}/bc")), ..web_client("webapp") },
    )
    .await;
    let b = app.browser();
    get_code(&app, &b, "webapp", "jana", "").await;
    let html = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    b.post(app.url("/logout")).form(&[("csrf", csrf_in(&html))]).send().await.unwrap();
    let body = tokio::task::spawn_blocking(move || rx.recv_timeout(std::time::Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("a logout token");
    let token = body.strip_prefix("logout_token=").expect("form body");
    let v = portcullis::tokens::jwt::verify(&app.state.keyring(), token, Some("logout+jwt"))
        .expect("signed by the provider");
    assert_eq!(v.claims["sub"], user_id);
    assert_eq!(v.claims["aud"], "webapp");
    assert!(v.claims["sid"].is_string());
    assert!(v.claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(v.claims.get("nonce").is_none());
}

#[tokio::test]
async fn userinfo_wants_a_valid_bearer_token() {
    let app = spawn_app().await;
    app.create_user("kim", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let (code, verifier) = get_code(&app, &app.browser(), "webapp", "kim", "").await;
    let (_, t, _) = token_req(
        &app,
        Some(("webapp", &secret)),
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB), ("code_verifier", &verifier)],
    )
    .await;
    let at = t["access_token"].as_str().unwrap();
    let http = reqwest::Client::new();
    let r = http.get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // RFC 6750 §3.1: a request without a token gets a challenge but no error code.
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer") && !challenge.contains("error="), "{challenge}");
    let r = http.get(app.url("/userinfo")).bearer_auth("not-a-token").send().await.unwrap();
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer error=\"invalid_token\""));
    let r = http.post(app.url("/userinfo")).form(&[("access_token", at)]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["preferred_username"], "kim");
    // Revoked: refused.
    http.post(app.url("/revoke")).basic_auth("webapp", Some(&secret)).form(&[("token", at)]).send().await.unwrap();
    assert_eq!(http.get(app.url("/userinfo")).bearer_auth(at).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_key_rotation_publishes_new_keys_and_keeps_old_ones_until_their_tokens_expire() {
    let app = spawn_app().await;
    let secret = register(
        &app,
        ClientSpec { client_id: "svc".into(), grants: vec!["client_credentials".into()], ..Default::default() },
    )
    .await
    .unwrap();
    let (_, before, _) = token_req(&app, Some(("svc", &secret)), &[("grant_type", "client_credentials")]).await;
    let old_kid = app.state.keyring().active(portcullis::domain::SigningAlg::ES256).unwrap().kid.clone();
    portcullis::admin::keys::rotate(&app.state, &Actor::cli()).await.unwrap();
    app.state.reload_keys().await.unwrap();
    let new_kid = app.state.keyring().active(portcullis::domain::SigningAlg::ES256).unwrap().kid.clone();
    assert_ne!(old_kid, new_kid);
    let jwks: Value = reqwest::get(app.url("/jwks")).await.unwrap().json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()));
    // A token signed before the rotation still introspects as active.
    let intro = crate::oauth::introspect(&app, "svc", &secret, before["access_token"].as_str().unwrap()).await;
    assert_eq!(intro["active"], true);
    // Once every token it signed has expired, the old key is withdrawn.
    app.state.clock.advance(chrono::Duration::milliseconds(app.state.settings.publish_retired_ms() + 1000));
    app.state.reload_keys().await.unwrap();
    let jwks: Value = reqwest::get(app.url("/jwks")).await.unwrap().json().await.unwrap();
    assert!(!jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == old_kid.as_str()));
}

/// UserInfo answers only tokens meant for the client itself; a token minted
/// for another API (RFC 8707 resource) is that API's, not a key to UserInfo.
/// And an access token is not accepted as an `id_token_hint`.
#[tokio::test]
async fn userinfo_refuses_tokens_for_other_resources_and_access_tokens_are_no_id_token_hint() {
    let app = spawn_app().await;
    app.create_user("una", PW, &[]).await;
    let api = "https://api.example.com";
    let secret = register(&app, ClientSpec { resources: vec![api.into()], ..web_client("portal") }).await.unwrap();
    let mut tokens = Vec::new();
    for extra in [String::new(), format!("&resource={}", urlencode(api))] {
        let (code, verifier) = get_code(&app, &app.browser(), "portal", "una", &extra).await;
        let (s, t) = exchange(&app, "portal", &secret, &code, &verifier).await;
        assert_eq!(s, 200, "{t}");
        tokens.push(t);
    }
    let userinfo = |t: &str| reqwest::Client::new().get(app.url("/userinfo")).bearer_auth(t.to_owned()).send();
    let own = tokens[0]["access_token"].as_str().unwrap();
    assert_eq!(userinfo(own).await.unwrap().status(), 200);
    let other = tokens[1]["access_token"].as_str().unwrap();
    let r = userinfo(other).await.unwrap();
    assert_eq!(r.status(), 401, "a token for {api}");
    // id_token_hint: the ID token is accepted, the access token is not.
    let hint = |t: &str| {
        app.url(&format!(
            "/authorize?response_type=code&client_id=portal&redirect_uri={}&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&prompt=none&id_token_hint={t}",
            urlencode(CB)
        ))
    };
    let b = app.browser();
    let r = b.get(hint(own)).send().await.unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.contains("error=invalid_request"), "{to}");
    let r = b.get(hint(tokens[0]["id_token"].as_str().unwrap())).send().await.unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.contains("error=login_required"), "a valid hint, no session: {to}");
}

/// Ending a session from the account page ends it everywhere: the browser is
/// logged out and the refresh tokens granted from that session stop working.
#[tokio::test]
async fn ending_a_session_from_the_account_page_ends_its_refresh_tokens() {
    let app = spawn_app().await;
    app.create_user("wes", PW, &[]).await;
    let secret = register(&app, web_client("app")).await.unwrap();
    let laptop = app.browser();
    let (code, verifier) = get_code(&app, &laptop, "app", "wes", "").await;
    let (_, t) = exchange(&app, "app", &secret, &code, &verifier).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();

    let phone = app.browser();
    assert_eq!(app.login(&phone, "wes", PW).await.status(), 303);
    let page = phone.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    // The other session's id is in its "End" form.
    let other = page
        .split(r#"name="session" value=""#)
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(other.len(), 1, "one other session to end: {page}");
    let r = phone
        .post(app.url("/account/sessions/end"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("session", other[0].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(laptop.get(app.url("/account")).send().await.unwrap().status(), 303, "the laptop is logged out");
    let (s, e, _) =
        token_req(&app, Some(("app", &secret)), &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
}

/// Sessions ended by an administrator (or a credential change) are logged out
/// at the clients too, through the back channel.
#[tokio::test]
async fn an_administrator_ending_sessions_sends_back_channel_logouts() {
    let app = spawn_app().await;
    let user_id = app.create_user("kurt", PW, &[]).await;
    let (port, rx) = one_request_server();
    register(
        &app,
        ClientSpec { backchannel_logout_uri: Some(format!("http://127.0.0.1:{port}/bc")), ..web_client("webapp") },
    )
    .await;
    get_code(&app, &app.browser(), "webapp", "kurt", "").await;
    let ended = portcullis::admin::users::end_sessions(&app.state, &Actor::cli(), "kurt").await.unwrap();
    assert_eq!(ended, 1);
    let body = tokio::task::spawn_blocking(move || rx.recv_timeout(std::time::Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("a logout token");
    let token = body.strip_prefix("logout_token=").expect("form body");
    let v = portcullis::tokens::jwt::verify(&app.state.keyring(), token, Some("logout+jwt")).unwrap();
    assert_eq!(v.claims["sub"], user_id);
}

/// Every application that can still act for the user — first-party ones,
/// which never asked for consent, included — is listed on the account page
/// and can be cut off there.
#[tokio::test]
async fn a_first_party_apps_refresh_tokens_are_listed_and_withdrawn_on_the_account_page() {
    let app = spawn_app().await;
    app.create_user("lou", PW, &[]).await;
    let secret = register(&app, ClientSpec { name: Some("Team Wiki".into()), ..web_client("wiki") }).await.unwrap();
    let b = app.browser();
    let (code, verifier) = get_code(&app, &b, "wiki", "lou", "").await;
    let (_, t) = exchange(&app, "wiki", &secret, &code, &verifier).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Team Wiki") && page.contains(r#"name="client" value="wiki""#), "{page}");
    let r = b
        .post(app.url("/account/consents/revoke"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("client", "wiki")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (s, e, _) =
        token_req(&app, Some(("wiki", &secret)), &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("Team Wiki"), "no longer listed");
}

/// RFC 8414 (issue #21, part 1): authorization server metadata at
/// `/.well-known/oauth-authorization-server` is the OIDC discovery
/// document — the same bytes, so the two can never disagree — with the
/// fields RFC 8414 §2 requires and the issuer it was asked of (§3.3).
#[tokio::test]
async fn authorization_server_metadata_is_the_discovery_document() {
    let app = crate::helpers::spawn_app().await;
    let oidc = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap();
    let rfc8414 = reqwest::get(app.url("/.well-known/oauth-authorization-server")).await.unwrap();
    assert_eq!(rfc8414.status(), 200);
    assert!(rfc8414.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let (a, b) = (oidc.text().await.unwrap(), rfc8414.text().await.unwrap());
    assert_eq!(a, b, "one source for both");
    let m: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(m["issuer"], app.state.settings.issuer(), "the issuer the metadata was asked of");
    for field in ["authorization_endpoint", "token_endpoint", "jwks_uri", "response_types_supported"] {
        assert!(!m[field].is_null(), "{field} (RFC 8414 §2)");
    }
    assert!(m["code_challenge_methods_supported"].as_array().unwrap().iter().any(|v| v == "S256"));
}
