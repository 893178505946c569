//! OpenID Connect behaviours the certification plans exercise (issue #15);
//! docs/CONFORMANCE.md maps each plan module to a test.

use portcullis::admin::clients::ClientSpec;
use serde_json::Value;

use crate::helpers::{TestApp, claims_of, csrf_in, location, param, spawn_app};
use crate::oauth::{CB, PW, exchange, register, urlencode, web_client};

/// RFC 7636 Appendix B's verifier and its S256 challenge.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub fn authorize_url(app: &TestApp, client: &str, extra: &str) -> String {
    app.url(&format!(
        "/authorize?response_type=code&client_id={client}&redirect_uri={}&scope=openid&state=s1&nonce=n1&code_challenge={CHALLENGE}&code_challenge_method=S256{extra}",
        urlencode(CB)
    ))
}

/// Posts the login form of an authorization request's login page.
async fn login_for(app: &TestApp, b: &reqwest::Client, login_path: &str, user: &str) -> reqwest::Response {
    let page = b.get(app.url(login_path)).send().await.unwrap().text().await.unwrap();
    let request = page.split(r#"name="request" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    b.post(app.url("/login"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("username", user), ("password", PW), ("request", &request)])
        .send()
        .await
        .unwrap()
}

/// Defect 1 (`oidcc-prompt-login`, `oidcc-max-age-1`): a login completed in
/// the same second as the request was sent back to the login page for ever
/// (whole-second `auth_time` against a millisecond creation time).
#[tokio::test]
async fn prompt_login_and_max_age_zero_are_answered_by_a_login_in_the_same_second() {
    let app = spawn_app().await;
    app.create_user("ivy", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let b = app.browser();
    assert_eq!(app.login(&b, "ivy", PW).await.status(), 303);
    for extra in ["&prompt=login", "&max_age=0"] {
        app.state.clock.advance(chrono::Duration::milliseconds(1500));
        // The existing session is not enough...
        let to = location(&b.get(authorize_url(&app, "webapp", extra)).send().await.unwrap());
        assert!(to.starts_with("/login?request="), "{extra}: {to}");
        // ...a login for this request, at the same instant, is.
        let r = login_for(&app, &b, &to, "ivy").await;
        let cont = location(&r);
        assert!(cont.starts_with("/authorize/continue"), "{extra}: {cont}");
        let back = location(&b.get(app.url(&cont)).send().await.unwrap());
        assert!(back.starts_with(CB), "{extra}: no loop back to the login page, got {back}");
        let code = param(&back, "code").unwrap();
        let (status, t) = exchange(&app, "webapp", &secret, &code, VERIFIER).await;
        assert_eq!(status, 200, "{t}");
        let auth_time = claims_of(t["id_token"].as_str().unwrap())["auth_time"].as_i64().unwrap();
        assert_eq!(auth_time, app.state.clock.now().timestamp(), "the new login's time");
    }
}

/// Defect 3 (`oidcc-rp-initiated-logout-no-params`,
/// `…-no-post-logout-redirect-uri`, `…-only-state`): logging out without a
/// return address showed the login form; now a signed-out page.
#[tokio::test]
async fn logging_out_without_a_return_address_shows_a_signed_out_page() {
    let app = spawn_app().await;
    app.create_user("jon", PW, &[]).await;
    let b = app.browser();
    app.login(&b, "jon", PW).await;
    // No hint naming the session: the person confirms (a forged link must not
    // sign anyone out silently), then sees where they are.
    let confirm = b.get(app.url("/end_session")).send().await.unwrap().text().await.unwrap();
    assert!(confirm.contains("Log out now?"));
    let r = b.post(app.url("/end_session")).form(&[("csrf", csrf_in(&confirm))]).send().await.unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains("You are signed out"), "{page}");
    for query in ["", "?state=only-state"] {
        let r = b.get(app.url(&format!("/end_session{query}"))).send().await.unwrap();
        let page = r.text().await.unwrap();
        assert!(page.contains("You are signed out"), "{query}: {page}");
        assert!(page.contains(r#"href="/login""#));
        assert!(!page.contains(r#"name="password""#), "not the login form");
    }
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 303, "signed out");
}

/// Feature 8 (`oidcc-login-hint`, `oidcc-ui-locales`, `oidcc-claims-locales`,
/// `oidcc-display-*`): hints pre-fill or are ignored, never an error.
#[tokio::test]
async fn hints_prefill_the_username_and_unknown_hints_are_ignored() {
    let app = spawn_app().await;
    register(&app, ClientSpec { ..web_client("webapp") }).await;
    let b = app.browser();
    let to = location(
        &b.get(authorize_url(&app, "webapp", "&login_hint=kim&ui_locales=se&claims_locales=se&display=popup"))
            .send()
            .await
            .unwrap(),
    );
    assert!(to.starts_with("/login?request="), "{to}");
    let page = b.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"value="kim""#), "pre-filled");
    let to = location(&b.get(authorize_url(&app, "webapp", "&login_hint=%3Cscript%3E")).send().await.unwrap());
    let page = b.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("<script>") && !page.contains("&lt;script"), "an impossible username is not reflected");
}

/// The hidden fields of a form_post page, and its form's action.
fn form_post_fields(html: &str) -> (String, std::collections::HashMap<String, String>) {
    let action = html.split(r#"<form method="post" action=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    let fields = html
        .split(r#"<input type="hidden" name=""#)
        .skip(1)
        .map(|chunk| {
            let name = chunk.split('"').next().unwrap().to_owned();
            let value = chunk.split(r#"value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
            (name, value.replace("&#x2f;", "/").replace("&#47;", "/").replace("&amp;", "&").replace("&#58;", ":"))
        })
        .collect();
    (action, fields)
}

/// Feature 4 (`oidcc-formpost-basic-certification-test-plan`): the response
/// — code or error — comes back as an auto-submitting form, with a visible
/// button without JavaScript, a CSP nonce, and `no-store`; the
/// `openidconnect` crate completes the flow from the posted code.
#[tokio::test]
async fn form_post_answers_with_an_auto_submitting_form_the_openidconnect_crate_completes() {
    use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
    use openidconnect::{
        AuthorizationCode, ClientId, ClientSecret, CsrfToken, Nonce, PkceCodeChallenge, RedirectUrl, TokenResponse,
    };
    let app = spawn_app().await;
    let user_id = app.create_user("lea", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let discovery: Value =
        reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert!(discovery["response_modes_supported"].as_array().unwrap().iter().any(|m| m == "form_post"));

    let (meta, http) = crate::oauth::rp(&app, "webapp", None).await;
    let client =
        CoreClient::from_provider_metadata(meta, ClientId::new("webapp".into()), Some(ClientSecret::new(secret)))
            .set_redirect_uri(RedirectUrl::new(CB.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf_state, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .add_extra_param("response_mode", "form_post")
        .url();

    // An error travels the same way: prompt=none without a session.
    let b = app.browser();
    let r = b.get(format!("{auth_url}&prompt=none")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (action, fields) = form_post_fields(&r.text().await.unwrap());
    assert_eq!(action, CB);
    assert_eq!(fields["error"], "login_required");
    assert!(!fields.contains_key("code"));

    // Signed in, the code is posted.
    app.login(&b, "lea", PW).await;
    let r = b.get(auth_url.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 200, "a page, not a redirect");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let html = r.text().await.unwrap();
    let nonce_in_csp = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap().to_owned();
    assert!(html.contains(&format!(r#"<script nonce="{nonce_in_csp}">"#)), "the one script carries the nonce");
    assert!(csp.contains("form-action 'self' http://127.0.0.1:9"), "{csp}");
    assert!(html.contains("<noscript>") && html.contains(r#"<button type="submit">"#), "works without JavaScript");
    let (action, fields) = form_post_fields(&html);
    assert_eq!(action, CB);
    assert_eq!(&fields["state"], csrf_state.secret());
    assert_eq!(fields["iss"], app.address);
    let tokens = client
        .exchange_code(AuthorizationCode::new(fields["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let claims = tokens.id_token().unwrap().claims(&client.id_token_verifier(), &nonce).unwrap();
    assert_eq!(claims.subject().as_str(), user_id);

    // Any other response mode is refused at the client.
    let back = location(&b.get(authorize_url(&app, "webapp", "&response_mode=fragment")).send().await.unwrap());
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{back}");
}

/// Walks a request for a user with a session through to the code.
async fn code_for(b: &reqwest::Client, url: &str) -> String {
    let back = location(&b.get(url).send().await.unwrap());
    param(&back, "code").unwrap_or_else(|| panic!("no code: {back}"))
}

/// Defect 2 (`oidcc-ensure-request-with-acr-values-succeeds`): `acr_values`
/// is a preference in order, not a demand for the strongest value listed.
#[tokio::test]
async fn acr_values_are_a_preference_and_only_an_essential_acr_is_a_demand() {
    let app = spawn_app().await;
    app.create_user("max", PW, &[]).await; // no second factor
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let b = app.browser();
    app.login(&b, "max", PW).await;
    // "1 2": the first value this user can meet. No push into enrolment.
    let code = code_for(&b, &authorize_url(&app, "webapp", "&acr_values=1%202")).await;
    let (_, t) = exchange(&app, "webapp", &secret, &code, VERIFIER).await;
    assert_eq!(claims_of(t["id_token"].as_str().unwrap())["acr"], "1", "the acr achieved");
    // "2" alone, for a user without a second factor: still only a wish.
    code_for(&b, &authorize_url(&app, "webapp", "&acr_values=2")).await;

    // Essential, through the claims parameter: a demand.
    let essential = urlencode(r#"{"id_token":{"acr":{"essential":true,"values":["2"]}}}"#);
    let to = location(&b.get(authorize_url(&app, "webapp", &format!("&claims={essential}"))).send().await.unwrap());
    assert!(to.starts_with("/login?request="), "{to}");
    let r = login_for(&app, &b, &to, "max").await;
    assert_eq!(location(&r), "/login/enrol", "meeting acr 2 means setting up a second factor");
    // An essential value nobody can meet ends at the client, not in a dead end.
    let impossible = urlencode(r#"{"id_token":{"acr":{"essential":true,"values":["urn:example:loa:4"]}}}"#);
    let back = location(&b.get(authorize_url(&app, "webapp", &format!("&claims={impossible}"))).send().await.unwrap());
    assert_eq!(param(&back, "error").as_deref(), Some("unmet_authentication_requirements"), "{back}");

    // A user with a second factor but a password-only session steps up for "2".
    crate::mfa::enrol(&app, &app.browser(), "max").await;
    let b2 = app.browser();
    app.login(&b2, "max", PW).await; // now asks for the code...
    let to = location(&b2.get(authorize_url(&app, "webapp", "&acr_values=2")).send().await.unwrap());
    assert!(to.starts_with("/login?request="), "no session yet, so a login: {to}");
}

/// Feature 5 (`oidcc-claims-essential`): claims asked for by name are
/// released where asked (ID token or UserInfo), and counted by consent.
#[tokio::test]
async fn the_claims_parameter_puts_claims_where_they_are_asked_for() {
    let app = spawn_app().await;
    app.create_user("nia", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    portcullis::admin::users::update_profile(
        &app.state,
        &portcullis::admin::Actor::cli(),
        "nia",
        portcullis::admin::users::ProfilePatch {
            email: Some(Some("nia@example.com".into())),
            name: Some(Some("Nia Long".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let b = app.browser();
    app.login(&b, "nia", PW).await;
    let claims = urlencode(r#"{"userinfo":{"email":null},"id_token":{"name":{"essential":true}}}"#);
    let code = code_for(&b, &authorize_url(&app, "webapp", &format!("&claims={claims}"))).await;
    let (_, t) = exchange(&app, "webapp", &secret, &code, VERIFIER).await;
    let id = claims_of(t["id_token"].as_str().unwrap());
    assert_eq!(id["name"], "Nia Long", "asked for in the ID token");
    assert!(id.get("email").is_none(), "asked for in UserInfo only");
    let info: Value = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "nia@example.com");
    assert!(info.get("name").is_none(), "scope openid alone, name not asked for in UserInfo");

    // A third-party client: the consent page names what the claims reveal.
    register(&app, ClientSpec { first_party: false, ..web_client("thirdparty") }).await;
    let url = authorize_url(&app, "thirdparty", &format!("&claims={claims}"));
    let to = location(&b.get(url).send().await.unwrap());
    assert!(to.starts_with("/consent?request="), "{to}");
    let page = b.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Your email address") && page.contains("Your name"), "{page}");

    // Malformed: invalid_request at the client.
    let back = location(&b.get(authorize_url(&app, "webapp", "&claims=%5B1%5D")).send().await.unwrap());
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"));
}

/// A client with an ES256 key registered; returns its PKCS#8 key.
async fn signing_client(app: &TestApp, id: &str) -> (String, Vec<u8>) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let p = kp.public_key().as_ref();
    let jwk = serde_json::json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "rk", "alg": "ES256", "use": "sig",
        "x": b64.encode(&p[1..33]), "y": b64.encode(&p[33..]) }] });
    let secret = register(app, ClientSpec { jwks: Some(jwk.to_string()), ..web_client(id) }).await.unwrap();
    (secret, kp.to_pkcs8v1().unwrap().as_ref().to_vec())
}

fn sign(key: &[u8], claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("rk".into());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ec_der(key)).unwrap()
}

/// Feature 7 (OIDC Core §6.1, RFC 9101): a signed request object; the
/// parameters inside win; unsigned, mis-addressed, foreign-signed or replayed
/// objects are `invalid_request_object`.
#[tokio::test]
async fn signed_request_objects_are_honoured_and_bad_ones_refused() {
    let app = spawn_app().await;
    app.create_user("ola", PW, &[]).await;
    let (secret, key) = signing_client(&app, "jar").await;
    let discovery: Value =
        reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(discovery["request_parameter_supported"], true);
    let algs = discovery["request_object_signing_alg_values_supported"].as_array().unwrap();
    assert!(algs.iter().any(|a| a == "ES256") && !algs.iter().any(|a| a == "none"));

    let b = app.browser();
    app.login(&b, "ola", PW).await;
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let object = |jti: &str, aud: &str| {
        serde_json::json!({ "iss": "jar", "aud": aud, "exp": wall + 300, "jti": jti, "client_id": "jar",
            "response_type": "code", "redirect_uri": CB, "scope": "openid profile", "state": "inside",
            "nonce": "n-inside", "code_challenge": CHALLENGE, "code_challenge_method": "S256" })
    };
    let outer = |jwt: &str| {
        app.url(&format!(
            "/authorize?client_id=jar&response_type=code&scope=openid&state=outside&redirect_uri={}&request={jwt}",
            urlencode(CB)
        ))
    };
    let good = sign(&key, &object("one", &app.address));
    let back = location(&b.get(outer(&good)).send().await.unwrap());
    assert_eq!(param(&back, "state").as_deref(), Some("inside"), "the object's parameters win: {back}");
    let (status, t) = exchange(&app, "jar", &secret, &param(&back, "code").unwrap(), VERIFIER).await;
    assert_eq!(status, 200, "{t}");
    let id = claims_of(t["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-inside");
    assert_eq!(t["scope"], "openid profile");

    // Replayed (same jti), addressed elsewhere, signed by someone else, unsigned.
    let other_key = {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap().to_pkcs8v1().unwrap().as_ref().to_vec()
    };
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.", b64.encode(r#"{"alg":"none"}"#), b64.encode(object("four", &app.address).to_string()))
    };
    for (what, jwt) in [
        ("replayed", good.clone()),
        ("for another audience", sign(&key, &object("two", "https://elsewhere.example"))),
        ("signed by another key", sign(&other_key, &object("three", &app.address))),
        ("unsigned", unsigned),
        (
            "without exp",
            sign(&key, &{
                let mut o = object("five", &app.address);
                o.as_object_mut().unwrap().remove("exp");
                o
            }),
        ),
        (
            "shaped like a client assertion",
            sign(&key, &{
                let mut o = object("six", &app.address);
                o["sub"] = "jar".into();
                o
            }),
        ),
    ] {
        let back = location(&b.get(outer(&jwt)).send().await.unwrap());
        assert_eq!(param(&back, "error").as_deref(), Some("invalid_request_object"), "{what}: {back}");
        assert_eq!(param(&back, "state").as_deref(), Some("outside"), "{what}");
        assert!(param(&back, "code").is_none());
    }
    // …and a signed authorization request is never accepted as a client
    // assertion (RFC 9101 §10.8).
    let mut o = object("seven", &format!("{}/token", app.address));
    o["sub"] = "jar".into();
    let assertion = sign(&key, &o);
    let (status, e, _) = crate::oauth::token_req(
        &app,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", CB),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_client")));
}

/// Feature 6 (`oidcc-scope-address`, `oidcc-scope-phone`, `oidcc-scope-all`,
/// ASVS V10.4.11): address and phone claims from the user's profile, and the
/// standard claim scopes granted only to clients registered for them.
#[tokio::test]
async fn address_and_phone_scopes_release_the_profile_and_standard_scopes_are_registered_per_client() {
    use portcullis::admin::users::ProfilePatch;
    let app = spawn_app().await;
    app.create_user("pia", PW, &[]).await;
    let address = portcullis::domain::Address {
        street_address: Some("Oudegracht 1".into()),
        locality: Some("Utrecht".into()),
        postal_code: Some("3511 AA".into()),
        country: Some("NL".into()),
        ..Default::default()
    };
    let patch = ProfilePatch {
        phone_number: Some(Some("+31 30 000 0000".into())),
        address: Some(Some(address)),
        ..Default::default()
    };
    portcullis::admin::users::update_profile(&app.state, &portcullis::admin::Actor::cli(), "pia", patch).await.unwrap();
    let bad = ProfilePatch { phone_number: Some(Some("call me".into())), ..Default::default() };
    let e = portcullis::admin::users::update_profile(&app.state, &portcullis::admin::Actor::cli(), "pia", bad).await;
    assert!(e.unwrap_err().to_string().starts_with("phone_number:"));

    let discovery: Value =
        reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    for s in ["openid", "profile", "email", "address", "phone"] {
        assert!(discovery["scopes_supported"].as_array().unwrap().iter().any(|x| x == s), "{s}");
    }
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let b = app.browser();
    app.login(&b, "pia", PW).await;
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=webapp&redirect_uri={}&scope=openid%20address%20phone&code_challenge={CHALLENGE}&code_challenge_method=S256",
        urlencode(CB)
    ));
    let code = code_for(&b, &url).await;
    let (_, t) = exchange(&app, "webapp", &secret, &code, VERIFIER).await;
    let info: Value = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["phone_number"], "+31 30 000 0000");
    assert_eq!(info["phone_number_verified"], false);
    assert_eq!(info["address"]["locality"], "Utrecht");
    assert!(info.get("email").is_none(), "no email scope, no email");

    // A client registered without a standard scope cannot ask for it.
    register(&app, ClientSpec { scopes: vec![], ..web_client("narrow") }).await;
    let back = location(
        &b.get(authorize_url(&app, "narrow", "").replace("scope=openid", "scope=openid%20email")).send().await.unwrap(),
    );
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_scope"), "{back}");
    assert_eq!(param(&back, "error_description").as_deref(), Some("not allowed for this client: email"), "{back}");
    code_for(&b, &authorize_url(&app, "narrow", "")).await; // openid alone is every client's
    // Nor by naming its claims in the claims parameter.
    let narrow_secret = {
        let c = portcullis::admin::clients::rotate_secret(&app.state, &portcullis::admin::Actor::cli(), "narrow").await;
        use secrecy::ExposeSecret;
        c.unwrap().secret.unwrap().expose_secret().to_owned()
    };
    let asked = urlencode(r#"{"userinfo":{"email":null,"phone_number":null},"id_token":{"roles":null}}"#);
    let code = code_for(&b, &authorize_url(&app, "narrow", &format!("&claims={asked}"))).await;
    let (_, t) = exchange(&app, "narrow", &narrow_secret, &code, VERIFIER).await;
    assert!(claims_of(t["id_token"].as_str().unwrap()).get("roles").is_none());
    let info: Value = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(info.get("email").is_none() && info.get("phone_number").is_none(), "{info}");
}

/// The upgrade keeps existing clients working: those registered before
/// standard scopes became per-client get `profile`, `email` and `roles`.
#[tokio::test]
async fn clients_registered_before_the_upgrade_keep_their_standard_scopes() {
    use migration::MigratorTrait;
    use portcullis::storage::entities::client;
    use sea_orm::{EntityTrait, Set};
    let db = crate::helpers::TestDb::new().await;
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    migration::Migrator::up(&conn, Some(9)).await.unwrap();
    let now = chrono::Utc::now();
    let legacy = client::ActiveModel {
        client_id: Set("legacy".into()),
        name: Set(None),
        public: Set(false),
        secret_hash: Set(None),
        redirect_uris: Set(format!("[\"{CB}\"]")),
        post_logout_redirect_uris: Set("[]".into()),
        grant_types: Set("[\"authorization_code\"]".into()),
        scopes: Set("[\"api:read\"]".into()),
        first_party: Set(true),
        pkce_required: Set(true),
        id_token_alg: Set("RS256".into()),
        require_mfa: Set(false),
        backchannel_logout_uri: Set(None),
        jwks: Set(None),
        access_policy: Set(None),
        resources: Set(None),
        refresh_grace_secs: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        // (A column of a later migration.)
        managed_by: sea_orm::ActiveValue::NotSet,
        profile: sea_orm::ActiveValue::NotSet,
        dpop_bound: sea_orm::ActiveValue::NotSet,
        require_par: sea_orm::ActiveValue::NotSet,
        registered_ms: sea_orm::ActiveValue::NotSet,
        registration_token_hash: sea_orm::ActiveValue::NotSet,
        last_used_ms: sea_orm::ActiveValue::NotSet,
    };
    client::Entity::insert(legacy).exec_without_returning(&conn).await.unwrap();
    migration::Migrator::up(&conn, None).await.unwrap();
    let row = client::Entity::find_by_id("legacy").one(&conn).await.unwrap().unwrap();
    let scopes: Vec<String> = serde_json::from_str(&row.scopes).unwrap();
    assert_eq!(scopes, ["api:read", "profile", "email", "roles"]);
}

async fn userinfo(app: &TestApp, method: &str, token: &str) -> (u16, Value) {
    let http = reqwest::Client::new();
    let r = match method {
        "GET" => http.get(app.url("/userinfo")).bearer_auth(token),
        "POST header" => http.post(app.url("/userinfo")).bearer_auth(token),
        _ => http.post(app.url("/userinfo")).form(&[("access_token", token)]),
    };
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The Basic OP modules not covered by a test of their own: each step names
/// the module (docs/CONFORMANCE.md).
#[tokio::test]
async fn the_basic_op_plan_modules_pass_end_to_end() {
    let app = spawn_app().await;
    let sub = app.create_user("quin", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let secret2 = register(&app, web_client("other")).await.unwrap();
    let b = app.browser();

    // oidcc-response-type-missing
    let url = authorize_url(&app, "webapp", "").replace("response_type=code&", "");
    let back = location(&b.get(url).send().await.unwrap());
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("s1"));
    assert!(param(&back, "code").is_none());

    // oidcc-prompt-none-not-logged-in
    let back = location(&b.get(authorize_url(&app, "webapp", "&prompt=none")).send().await.unwrap());
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&back, "state").as_deref(), Some("s1"));
    app.login(&b, "quin", PW).await;

    // oidcc-ensure-request-without-nonce-succeeds-for-code-flow, oidcc-ensure-request-with-unknown-parameter-succeeds,
    // oidcc-display-page
    let url = authorize_url(&app, "webapp", "&extra=foobar&display=page").replace("&nonce=n1", "");
    let code = code_for(&b, &url).await;
    // oidcc-server-client-secret-post
    let (status, first, _) = crate::oauth::token_req(
        &app,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
            ("client_id", "webapp"),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let id1 = claims_of(first["id_token"].as_str().unwrap());
    assert!(id1.get("nonce").is_none());
    let at = first["access_token"].as_str().unwrap();
    // oidcc-userinfo-get, -post-header, -post-body
    for method in ["GET", "POST header", "POST body"] {
        let (s, v) = userinfo(&app, method, at).await;
        assert_eq!((s, v["sub"].as_str()), (200, Some(sub.as_str())), "{method}");
    }

    // oidcc-prompt-none-logged-in, oidcc-id-token-hint: same sub and auth_time, no login.
    let hint = first["id_token"].as_str().unwrap();
    let code = code_for(&b, &authorize_url(&app, "webapp", &format!("&prompt=none&id_token_hint={hint}"))).await;
    let (_, t) = exchange(&app, "webapp", &secret, &code, VERIFIER).await;
    let id2 = claims_of(t["id_token"].as_str().unwrap());
    assert_eq!((id2["sub"].clone(), id2["auth_time"].clone()), (id1["sub"].clone(), id1["auth_time"].clone()));

    // oidcc-max-age-10000: no new login, auth_time present and unchanged.
    app.state.clock.advance(chrono::Duration::seconds(5));
    let code = code_for(&b, &authorize_url(&app, "webapp", "&max_age=10000")).await;
    let (_, t) = exchange(&app, "webapp", &secret, &code, VERIFIER).await;
    assert_eq!(claims_of(t["id_token"].as_str().unwrap())["auth_time"], id1["auth_time"]);

    // oidcc-scope-all and oidcc-alternate-happy-flow (scopes in another order, parameters reordered).
    let url = app.url(&format!(
        "/authorize?scope=phone%20address%20email%20profile%20openid&code_challenge_method=S256&code_challenge={CHALLENGE}&redirect_uri={}&client_id=webapp&response_type=code&state=s2",
        urlencode(CB)
    ));
    let code = code_for(&b, &url).await;
    let (_, t) = exchange(&app, "webapp", &secret, &code, VERIFIER).await;
    let (s, v) = userinfo(&app, "GET", t["access_token"].as_str().unwrap()).await;
    assert_eq!((s, v["preferred_username"].as_str()), (200, Some("quin")));

    // oidcc-ensure-post-request-succeeds: the authorization request as a form POST.
    let form = [
        ("response_type", "code"),
        ("client_id", "webapp"),
        ("redirect_uri", CB),
        ("scope", "openid"),
        ("state", "posted"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let back = location(&b.post(app.url("/authorize")).form(&form).send().await.unwrap());
    assert_eq!(param(&back, "state").as_deref(), Some("posted"));
    assert!(param(&back, "code").is_some());

    // oidcc-refresh-token: a refresh keeps sub and auth_time; another client's refresh token is invalid_grant.
    let rt = t["refresh_token"].as_str().unwrap();
    let (s, r, _) = crate::oauth::token_req(
        &app,
        Some(("webapp", &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let id3 = claims_of(r["id_token"].as_str().unwrap());
    assert_eq!((id3["sub"].clone(), id3["auth_time"].clone()), (id1["sub"].clone(), id1["auth_time"].clone()));
    let (s, e, _) = crate::oauth::token_req(
        &app,
        Some(("other", &secret2)),
        &[("grant_type", "refresh_token"), ("refresh_token", r["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
}

/// The RP-Initiated Logout OP modules that must not redirect, and
/// `oidcc-rp-initiated-logout-no-state`.
#[tokio::test]
async fn rp_initiated_logout_refuses_what_the_plan_refuses() {
    let app = spawn_app().await;
    app.create_user("rae", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let b = app.browser();
    app.login(&b, "rae", PW).await;
    let code = code_for(&b, &authorize_url(&app, "webapp", "")).await;
    let (_, t) = exchange(&app, "webapp", &secret, &code, VERIFIER).await;
    let id_token = t["id_token"].as_str().unwrap().to_owned();
    let bye = "http://127.0.0.1:9/bye";
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = id_token.split('.').nth(1).unwrap();
        format!("{}.{payload}.", b64.encode(r#"{"alg":"none"}"#))
    };
    let foreign = {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap().to_pkcs8v1().unwrap();
        let claims =
            serde_json::json!({ "iss": "webapp", "aud": app.address, "sub": "SubjectID", "exp": 4_000_000_000i64 });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            &claims,
            &jsonwebtoken::EncodingKey::from_ec_der(key.as_ref()),
        )
        .unwrap()
    };
    for (module, query) in [
        (
            "bad-post-logout-redirect-uri",
            format!(
                "id_token_hint={id_token}&post_logout_redirect_uri={}&state=x",
                urlencode("http://127.0.0.1:9/elsewhere")
            ),
        ),
        (
            "modified-id-token-hint",
            format!("id_token_hint={unsigned}&post_logout_redirect_uri={}&state=x", urlencode(bye)),
        ),
        ("no-id-token-hint", format!("post_logout_redirect_uri={}&state=x", urlencode(bye))),
        (
            "query-added-to-post-logout-redirect-uri",
            format!(
                "id_token_hint={id_token}&post_logout_redirect_uri={}&state=x",
                urlencode(&format!("{bye}?foo=bar"))
            ),
        ),
        ("bad-id-token-hint", format!("id_token_hint={foreign}&post_logout_redirect_uri={}&state=x", urlencode(bye))),
    ] {
        let r = b.get(app.url(&format!("/end_session?{query}"))).send().await.unwrap();
        assert!(!r.status().is_redirection(), "{module}: must not redirect");
    }
    // no-state: back to the registered address without a state.
    let r = b
        .get(app.url(&format!("/end_session?id_token_hint={id_token}&post_logout_redirect_uri={}", urlencode(bye))))
        .send()
        .await
        .unwrap();
    let back = location(&r);
    assert!(back.starts_with(bye) && param(&back, "state").is_none(), "{back}");
    // …and the session is gone: prompt=none answers login_required.
    let back = location(&b.get(authorize_url(&app, "webapp", "&prompt=none")).send().await.unwrap());
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"));
}

/// Feature 6: the person edits their own name, phone and address on
/// /account; an operator uses `portcullis user update`.
#[tokio::test]
async fn people_edit_their_contact_details_and_operators_use_the_cli() {
    let app = spawn_app().await;
    app.create_user("sam", PW, &[]).await;
    let b = app.browser();
    app.login(&b, "sam", PW).await;
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"autocomplete="tel""#) && page.contains(r#"autocomplete="postal-code""#));
    let csrf = csrf_in(&page);
    let bad = [("csrf", csrf.as_str()), ("name", "Sam"), ("phone", "call me maybe")];
    let r = b.post(app.url("/account/profile")).form(&bad).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("phone_number"));
    let good = [
        ("csrf", csrf.as_str()),
        ("name", "Sam Lee"),
        ("phone", "+44 20 0000 0000"),
        ("street_address", "1 High St"),
        ("locality", "London"),
        ("region", ""),
        ("postal_code", "N1 1AA"),
        ("country", "GB"),
    ];
    let r = b.post(app.url("/account/profile")).form(&good).send().await.unwrap();
    assert_eq!(location(&r), "/account?m=profile_saved");
    let view = portcullis::admin::users::show(&app.state, &portcullis::admin::Actor::cli(), "sam").await.unwrap();
    assert_eq!(view.phone_number.as_deref(), Some("+44 20 0000 0000"));
    assert_eq!(view.address.unwrap().locality.as_deref(), Some("London"));
    // Without a CSRF token nothing changes.
    let forged = [("csrf", "forged"), ("name", "Mallory")];
    b.post(app.url("/account/profile")).form(&forged).send().await.unwrap();
    assert_eq!(
        portcullis::admin::users::show(&app.state, &portcullis::admin::Actor::cli(), "sam")
            .await
            .unwrap()
            .name
            .as_deref(),
        Some("Sam Lee")
    );

    let out = app.db.cli(&["user", "update", "sam", "--phone", "", "--address", r#"{"country":"IE"}"#, "--json"], None);
    assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["phone_number"].is_null(), "an empty value clears");
    assert_eq!(v["address"]["country"], "IE");
    let out = app.db.cli(&["user", "update", "sam", "--address", "{\"planet\":\"Mars\"}"], None);
    crate::helpers::assert_clean_failure(&out, "address");
}
