//! The OAuth 2.0 / OIDC flows, driven by the `openidconnect` crate as a real
//! relying party, plus direct HTTP tests of the error paths.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use portcullis::admin::Actor;
use portcullis::admin::clients::{ClientSpec, add};
use serde_json::Value;

use crate::helpers::{TestApp, csrf_in, location, spawn_app};

pub const PW: &str = "violet anvil tramline";
pub const CB: &str = "http://127.0.0.1:9/callback";

pub async fn register(app: &TestApp, spec: ClientSpec) -> Option<String> {
    use secrecy::ExposeSecret;
    add(&app.state, &Actor::cli(), &spec).await.unwrap().secret.map(|s| s.expose_secret().to_owned())
}

pub fn web_client(id: &str) -> ClientSpec {
    ClientSpec {
        client_id: id.into(),
        redirect_uris: vec![CB.into()],
        // Standard claim scopes are registered per client (ASVS V10.4.11).
        scopes: ["profile", "email", "address", "phone", "roles"].map(String::from).to_vec(),
        post_logout_redirect_uris: vec!["http://127.0.0.1:9/bye".into()],
        first_party: true,
        ..Default::default()
    }
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// A browser walks an authorization URL through login (and consent, approving)
/// and returns the redirect back to the client.
pub async fn walk(app: &TestApp, b: &reqwest::Client, auth_url: &str, user: &str, password: &str) -> String {
    walk_with_totp(app, b, auth_url, user, password, None).await
}

/// `walk`, answering the second step with a code of `totp_secret` (base32).
pub async fn walk_with_totp(
    app: &TestApp,
    b: &reqwest::Client,
    auth_url: &str,
    user: &str,
    password: &str,
    totp_secret: Option<&str>,
) -> String {
    let mut next = auth_url.to_owned();
    for _ in 0..8 {
        if next.starts_with(CB) || next.starts_with("http://127.0.0.1:9/") {
            return next;
        }
        let url = if next.starts_with('/') { app.url(&next) } else { next.clone() };
        let r = b.get(&url).send().await.unwrap();
        if r.status().is_redirection() {
            next = location(&r);
            continue;
        }
        let path = url::Url::parse(&url).unwrap().path().to_owned();
        let html = r.text().await.unwrap();
        let csrf = csrf_in(&html);
        let r = match path.as_str() {
            "/login" => {
                let request =
                    html.split(r#"name="request" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
                b.post(app.url("/login"))
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("username", user),
                        ("password", password),
                        ("request", request.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap()
            }
            "/login/mfa" if totp_secret.is_some() => {
                let code = crate::mfa::code_at(app, totp_secret.unwrap_or_default(), 0);
                b.post(app.url("/login/mfa"))
                    .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
                    .send()
                    .await
                    .unwrap()
            }
            "/consent" => {
                let request =
                    html.split(r#"name="request" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
                b.post(app.url("/consent"))
                    .form(&[("csrf", csrf.as_str()), ("request", request.as_str()), ("decision", "approve")])
                    .send()
                    .await
                    .unwrap()
            }
            other => panic!("unexpected page {other}: {html}"),
        };
        assert!(r.status().is_redirection(), "{} at {path}: {}", r.status(), r.text().await.unwrap());
        next = location(&r);
    }
    panic!("too many steps");
}

pub async fn rp(app: &TestApp, id: &str, secret: Option<String>) -> (CoreProviderMetadata, reqwest_rp::Client) {
    let http = reqwest_rp::ClientBuilder::new().redirect(reqwest_rp::redirect::Policy::none()).build().unwrap();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(app.address.clone()).unwrap(), &http).await.unwrap();
    let _ = (id, secret);
    (meta, http)
}

use openidconnect::reqwest as reqwest_rp;

#[tokio::test]
async fn a_relying_party_logs_a_user_in_with_code_and_pkce_and_refreshes() {
    let app = spawn_app().await;
    let user_id = app.create_user("alice", PW, &[]).await;
    portcullis::admin::users::set_attribute(&app.state, &Actor::cli(), "alice", "department", "finance").await.unwrap();
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let (meta, http) = rp(&app, "webapp", Some(secret.clone())).await;
    let client =
        CoreClient::from_provider_metadata(meta, ClientId::new("webapp".into()), Some(ClientSecret::new(secret)))
            .set_redirect_uri(RedirectUrl::new(CB.into()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf_state, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("roles".into()))
        .set_pkce_challenge(challenge)
        .url();
    let back = walk(&app, &app.browser(), auth_url.as_str(), "alice", PW).await;
    let q = query(&back);
    assert_eq!(q["state"], *csrf_state.secret());
    assert_eq!(q["iss"], app.address, "RFC 9207");

    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).expect("a valid RS256 ID token");
    assert_eq!(claims.subject().as_str(), user_id, "sub is the user's UUID, not the username");
    assert_eq!(claims.preferred_username().unwrap().as_str(), "alice");
    assert!(claims.auth_time().is_some());
    let at_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&at_hash));

    // The access token is an RFC 9068 JWT with the roles claim.
    let at = tokens.access_token().secret();
    let header: Value = serde_json::from_slice(&base64_url(at.split('.').next().unwrap())).unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let body: Value = serde_json::from_slice(&base64_url(at.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(body["client_id"], "webapp");
    assert!(body["roles"].is_array());
    assert!(body["jti"].is_string());

    let info: CoreUserInfoClaims =
        client.user_info(tokens.access_token().clone(), None).unwrap().request_async(&http).await.unwrap();
    assert_eq!(info.subject().as_str(), user_id);

    let refreshed =
        client.exchange_refresh_token(tokens.refresh_token().unwrap()).unwrap().request_async(&http).await.unwrap();
    assert_ne!(refreshed.refresh_token().unwrap().secret(), tokens.refresh_token().unwrap().secret(), "rotated");
    assert_ne!(refreshed.access_token().secret(), tokens.access_token().secret());
}

pub fn base64_url(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

#[tokio::test]
async fn an_es256_relying_party_validates_its_id_token() {
    let app = spawn_app().await;
    app.create_user("bob", PW, &[]).await;
    let secret =
        register(&app, ClientSpec { id_token_alg: Some("ES256".into()), ..web_client("es-app") }).await.unwrap();
    let (meta, http) = rp(&app, "es-app", None).await;
    let client =
        CoreClient::from_provider_metadata(meta, ClientId::new("es-app".into()), Some(ClientSecret::new(secret)))
            .set_redirect_uri(RedirectUrl::new(CB.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let back = walk(&app, &app.browser(), auth_url.as_str(), "bob", PW).await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(query(&back)["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let v = client.id_token_verifier().set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let id = tokens.id_token().unwrap();
    assert_eq!(id.signing_alg().unwrap(), &CoreJwsSigningAlgorithm::EcdsaP256Sha256);
    id.claims(&v, &nonce).expect("a valid ES256 ID token");
}

/// A raw token request.
pub async fn token_req(
    app: &TestApp,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = reqwest::Client::new().post(app.url("/token")).form(form);
    if let Some((id, s)) = auth {
        r = r.basic_auth(id, Some(s));
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

/// Exchanges a code from `get_code` at the token endpoint: (status, body).
pub async fn exchange(app: &TestApp, client_id: &str, secret: &str, code: &str, verifier: &str) -> (u16, Value) {
    let form =
        [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB), ("code_verifier", verifier)];
    let (status, body, _) = token_req(app, Some((client_id, secret)), &form).await;
    (status, body)
}

/// Runs the flow by hand; returns (code, verifier).
pub async fn get_code(
    app: &TestApp,
    b: &reqwest::Client,
    client_id: &str,
    user: &str,
    extra: &str,
) -> (String, String) {
    get_code_with_totp(app, b, client_id, user, extra, None).await
}

/// `get_code` for a user who answers the second step with `totp_secret`.
pub async fn get_code_with_totp(
    app: &TestApp,
    b: &reqwest::Client,
    client_id: &str,
    user: &str,
    extra: &str,
    totp_secret: Option<&str>,
) -> (String, String) {
    let verifier = "a".repeat(43) + "verifier-for-tests";
    use base64::Engine;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20profile&state=xyz&nonce=n1&code_challenge={challenge}&code_challenge_method=S256{extra}",
        urlencode(CB)
    ));
    let back = walk_with_totp(app, b, &url, user, PW, totp_secret).await;
    (query(&back)["code"].clone(), verifier)
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn a_code_works_once_and_its_replay_revokes_what_it_issued() {
    let app = spawn_app().await;
    app.create_user("carl", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let (code, verifier) = get_code(&app, &app.browser(), "webapp", "carl", "").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, first, headers) = token_req(&app, Some(("webapp", &secret)), &form).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(headers["cache-control"], "no-store");
    let (status, second, _) = token_req(&app, Some(("webapp", &secret)), &form).await;
    assert_eq!(status, 400);
    assert_eq!(second["error"], "invalid_grant");
    // What the first exchange issued is dead now.
    let refresh = first["refresh_token"].as_str().unwrap();
    let (_, r, _) =
        token_req(&app, Some(("webapp", &secret)), &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await;
    assert_eq!(r["error"], "invalid_grant");
    let intro = introspect(&app, "webapp", &secret, first["access_token"].as_str().unwrap()).await;
    assert_eq!(intro["active"], false);
}

pub async fn introspect(app: &TestApp, id: &str, secret: &str, token: &str) -> Value {
    reqwest::Client::new()
        .post(app.url("/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_ends_the_family() {
    let app = spawn_app().await;
    app.create_user("dora", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let (code, verifier) = get_code(&app, &app.browser(), "webapp", "dora", "").await;
    let (_, t, _) = token_req(
        &app,
        Some(("webapp", &secret)),
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB), ("code_verifier", &verifier)],
    )
    .await;
    let r1 = t["refresh_token"].as_str().unwrap().to_owned();
    let (status, t2, _) = token_req(
        &app,
        Some(("webapp", &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &r1), ("scope", "openid")],
    )
    .await;
    assert_eq!(status, 200, "{t2}");
    assert_eq!(t2["scope"], "openid", "narrowed");
    let r2 = t2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    // Widening is refused.
    let (_, w, _) = token_req(
        &app,
        Some(("webapp", &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", &r2), ("scope", "openid email")],
    )
    .await;
    assert_eq!(w["error"], "invalid_scope");
    assert_eq!(w["error_description"], "a refresh may only narrow the original scope: email", "names the scope");

    // After the grace period, the old token comes back: theft. The family ends.
    app.state.clock.advance(chrono::Duration::seconds(11));
    let (_, reuse, _) =
        token_req(&app, Some(("webapp", &secret)), &[("grant_type", "refresh_token"), ("refresh_token", &r1)]).await;
    assert_eq!(reuse["error"], "invalid_grant");
    let (_, after, _) =
        token_req(&app, Some(("webapp", &secret)), &[("grant_type", "refresh_token"), ("refresh_token", &r2)]).await;
    assert_eq!(after["error"], "invalid_grant", "the legitimate token died with its family");
}

#[tokio::test]
async fn a_service_gets_a_client_credentials_token_with_its_roles_and_can_revoke_it() {
    let app = spawn_app().await;
    portcullis::admin::roles::add(&app.state, &Actor::cli(), "billing", None).await.unwrap();
    let secret = register(
        &app,
        ClientSpec {
            client_id: "worker".into(),
            grants: vec!["client_credentials".into()],
            scopes: vec!["api:read".into()],
            roles: vec!["billing".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (status, t, _) =
        token_req(&app, Some(("worker", &secret)), &[("grant_type", "client_credentials"), ("scope", "api:read")])
            .await;
    assert_eq!(status, 200, "{t}");
    assert!(t.get("refresh_token").is_none());
    let at = t["access_token"].as_str().unwrap();
    let intro = introspect(&app, "worker", &secret, at).await;
    assert_eq!(intro["active"], true);
    assert_eq!(intro["sub"], "worker");
    assert_eq!(intro["roles"], serde_json::json!(["billing"]));
    assert_eq!(intro["scope"], "api:read");

    let r = reqwest::Client::new()
        .post(app.url("/revoke"))
        .basic_auth("worker", Some(&secret))
        .form(&[("token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(&app, "worker", &secret, at).await["active"], false);

    // client_secret_post works too; a wrong secret is invalid_client.
    let (status, _, _) = token_req(
        &app,
        None,
        &[("grant_type", "client_credentials"), ("client_id", "worker"), ("client_secret", &secret)],
    )
    .await;
    assert_eq!(status, 200);
    let (status, e, h) = token_req(&app, Some(("worker", "wrong")), &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 401);
    assert_eq!(e["error"], "invalid_client");
    assert!(h["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let (_, e, _) =
        token_req(&app, Some(("worker", &secret)), &[("grant_type", "client_credentials"), ("scope", "admin:all")])
            .await;
    assert_eq!(e["error"], "invalid_scope");
    assert_eq!(e["error_description"], "not allowed for this client: admin:all", "names the scope");
}

#[tokio::test]
async fn the_authorization_endpoint_never_redirects_to_an_unregistered_uri_and_uses_rfc_error_codes() {
    let app = spawn_app().await;
    register(&app, web_client("webapp")).await;
    let b = app.browser();
    let base =
        format!("/authorize?response_type=code&client_id=webapp&redirect_uri={}&scope=openid&state=s1", urlencode(CB));
    let ch = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    for (url, why) in [
        (
            "/authorize?response_type=code&client_id=nobody&redirect_uri=http%3A%2F%2Fevil.example%2F&scope=openid"
                .to_owned(),
            "unknown client",
        ),
        (
            format!(
                "/authorize?response_type=code&client_id=webapp&redirect_uri={}&scope=openid",
                urlencode("http://127.0.0.1:9/other")
            ),
            "unregistered",
        ),
        ("/authorize?response_type=code&client_id=webapp&scope=openid".to_owned(), "missing redirect_uri"),
        (format!("{base}&client_id=webapp"), "repeated parameter"),
    ] {
        let r = b.get(app.url(&url)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{why}");
        assert!(r.headers().get("location").is_none(), "{why}: never redirected");
    }
    let cases = [
        (
            format!("{base}&code_challenge={ch}&code_challenge_method=S256&response_type=token")
                .replace("response_type=code&", ""),
            "unsupported_response_type",
        ),
        (base.clone(), "invalid_request"), // PKCE required
        (format!("{base}&code_challenge={ch}&code_challenge_method=plain"), "invalid_request"), // plain refused
        (
            format!("{base}&code_challenge={ch}&code_challenge_method=S256&scope=openid%20nope")
                .replace("scope=openid&", ""),
            "invalid_scope",
        ),
        (format!("{base}&code_challenge={ch}&code_challenge_method=S256&prompt=none"), "login_required"),
        (format!("{base}&code_challenge={ch}&code_challenge_method=S256&max_age=x"), "invalid_request"),
    ];
    for (url, code) in cases {
        let r = b.get(app.url(&url)).send().await.unwrap();
        assert_eq!(r.status(), 302, "{url}");
        let q = query(&location(&r));
        assert_eq!(q["error"], code, "{url}");
        assert_eq!(q["state"], "s1");
        assert!(location(&r).starts_with(CB));
    }
}

#[tokio::test]
async fn the_token_endpoint_refuses_bad_grants_with_rfc_errors() {
    let app = spawn_app().await;
    app.create_user("erin", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let other = register(&app, web_client("other")).await.unwrap();
    let b = app.browser();
    let (code, verifier) = get_code(&app, &b, "webapp", "erin", "").await;
    let auth = Some(("webapp", secret.as_str()));
    let ok = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", verifier.as_str()),
    ];

    let mut wrong_verifier = ok;
    wrong_verifier[3] = ("code_verifier", "b234567890123456789012345678901234567890123456");
    assert_eq!(token_req(&app, auth, &wrong_verifier).await.1["error"], "invalid_grant");
    // (the failed attempts above did not consume the code: verification comes after claiming, so use a fresh one)
    let (code, verifier) = get_code(&app, &b, "webapp", "erin", "").await;
    let ok = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", verifier.as_str()),
    ];
    let mut wrong_uri = ok;
    wrong_uri[2] = ("redirect_uri", "http://127.0.0.1:9/other");
    assert_eq!(token_req(&app, auth, &wrong_uri).await.1["error"], "invalid_grant");
    let (code, verifier) = get_code(&app, &b, "webapp", "erin", "").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", verifier.as_str()),
    ];
    assert_eq!(
        token_req(&app, Some(("other", &other)), &form).await.1["error"],
        "invalid_grant",
        "another client's code"
    );
    let (code, verifier) = get_code(&app, &b, "webapp", "erin", "").await;
    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.code_ttl_secs + 1));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", verifier.as_str()),
    ];
    assert_eq!(token_req(&app, auth, &form).await.1["error"], "invalid_grant", "expired");

    assert_eq!(token_req(&app, auth, &[("grant_type", "password")]).await.1["error"], "unsupported_grant_type");
    assert_eq!(token_req(&app, auth, &[]).await.1["error"], "invalid_request");
    assert_eq!(token_req(&app, auth, &[("grant_type", "authorization_code")]).await.1["error"], "invalid_request");
    assert_eq!(
        token_req(&app, auth, &[("grant_type", "client_credentials"), ("grant_type", "client_credentials")]).await.1["error"],
        "invalid_request",
        "repeated parameter"
    );
    // Two authentication methods at once.
    let (_, e, _) = token_req(
        &app,
        auth,
        &[("grant_type", "client_credentials"), ("client_secret", &secret), ("client_id", "webapp")],
    )
    .await;
    assert_eq!(e["error"], "invalid_request");
}

#[tokio::test]
async fn forged_tokens_are_inactive_at_introspection() {
    let app = spawn_app().await;
    let secret = register(
        &app,
        ClientSpec { client_id: "rs".into(), grants: vec!["client_credentials".into()], ..Default::default() },
    )
    .await
    .unwrap();
    use base64::Engine;
    let e = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims =
        serde_json::json!({ "iss": app.address, "sub": "x", "exp": 9_999_999_999i64, "jti": "j", "client_id": "rs" });
    let none = format!("{}.{}.", e(&serde_json::json!({ "alg": "none", "typ": "at+jwt" })), e(&claims));
    let unknown =
        format!("{}.{}.c2ln", e(&serde_json::json!({ "alg": "ES256", "kid": "nope", "typ": "at+jwt" })), e(&claims));
    let kid = app.state.keyring().active(portcullis::domain::SigningAlg::ES256).unwrap().kid.clone();
    let hs = format!("{}.{}.c2ln", e(&serde_json::json!({ "alg": "HS256", "kid": kid, "typ": "at+jwt" })), e(&claims));
    for t in [none.as_str(), unknown.as_str(), hs.as_str(), "garbage", "a.b.c"] {
        assert_eq!(introspect(&app, "rs", &secret, t).await["active"], false, "{t}");
    }
}

#[tokio::test]
async fn a_third_party_client_asks_for_consent_once_and_a_denial_goes_back_as_access_denied() {
    let app = spawn_app().await;
    app.create_user("fay", PW, &[]).await;
    register(&app, ClientSpec { first_party: false, ..web_client("third") }).await;
    let b = app.browser();
    let ch = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=third&redirect_uri={}&scope=openid%20email&state=s&code_challenge={ch}&code_challenge_method=S256",
        urlencode(CB)
    ));
    // Log in, then deny at the consent page.
    let r = b.get(&url).send().await.unwrap();
    let login = app.url(&location(&r));
    let html = b.get(&login).send().await.unwrap().text().await.unwrap();
    let request = html.split(r#"name="request" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    let r = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf_in(&html).as_str()), ("username", "fay"), ("password", PW), ("request", &request)])
        .send()
        .await
        .unwrap();
    let r = b.get(app.url(&location(&r))).send().await.unwrap();
    assert!(location(&r).starts_with("/consent"));
    let html = b.get(app.url(&location(&r))).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"name="decision" value="approve""#) && html.contains(r#"name="decision" value="deny""#));
    // What is granted, to whom, where the user goes back, and for how long.
    assert!(html.contains("Your email address") && html.contains("127.0.0.1"), "{html}");
    assert!(html.contains("up to 30 days"), "the refresh-token lifetime: {html}");
    assert!(html.contains(r#"href="/logout""#), "a way to log out");
    let r = b
        .post(app.url("/consent"))
        .form(&[("csrf", csrf_in(&html).as_str()), ("request", &request), ("decision", "deny")])
        .send()
        .await
        .unwrap();
    assert_eq!(query(&location(&r))["error"], "access_denied");
    // Approve on a second try; a third request needs no consent page.
    let back = walk(&app, &b, &url, "fay", PW).await;
    assert!(query(&back).contains_key("code"));
    let r = b.get(&url).send().await.unwrap();
    assert!(location(&r).starts_with(CB), "consent remembered: {}", location(&r));

    // Withdrawn from the account page: the next request asks again.
    let html = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("third"), "the account page lists the client");
    let r = b
        .post(app.url("/account/consents/revoke"))
        .form(&[("csrf", csrf_in(&html).as_str()), ("client", "third")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/account?m=consent_revoked");
    let r = b.get(&url).send().await.unwrap();
    assert!(location(&r).starts_with("/consent"), "consent asked again: {}", location(&r));
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_and_returns_only_to_registered_uris() {
    let app = spawn_app().await;
    app.create_user("gus", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let b = app.browser();
    let (code, verifier) = get_code(&app, &b, "webapp", "gus", "").await;
    let (_, t, _) = token_req(
        &app,
        Some(("webapp", &secret)),
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CB), ("code_verifier", &verifier)],
    )
    .await;
    let id_token = t["id_token"].as_str().unwrap();
    let r = b
        .get(app.url(&format!(
            "/end_session?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye1",
            urlencode("http://evil.example/")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "unregistered post-logout URI: an error page, no redirect");
    assert!(r.headers().get("location").is_none());
    let r = b
        .get(app.url(&format!(
            "/end_session?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye1",
            urlencode("http://127.0.0.1:9/bye")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "http://127.0.0.1:9/bye?state=bye1");
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 303, "logged out");
    // Its refresh tokens ended with the session.
    let (_, e, _) = token_req(
        &app,
        Some(("webapp", &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(e["error"], "invalid_grant");
}

#[tokio::test]
async fn discovery_and_jwks_describe_the_provider() {
    let app = spawn_app().await;
    let d: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["issuer"], app.address);
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    for k in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "end_session_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ] {
        assert!(d[k].as_str().unwrap().starts_with(&app.address), "{k}");
    }
    let jwks: Value = reqwest::get(d["jwks_uri"].as_str().unwrap()).await.unwrap().json().await.unwrap();
    let algs: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["alg"].as_str().unwrap()).collect();
    for a in ["RS256", "ES256", "EdDSA"] {
        assert!(algs.contains(&a));
    }
    assert!(jwks["keys"].as_array().unwrap().iter().all(|k| k.get("d").is_none()), "public keys only");
    let _ = AccessToken::new(String::new());
    let _ = RefreshToken::new(String::new());
}
