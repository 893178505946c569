//! The recipes of docs/RELYING.md for services in other languages — a Node
//! service with `jose` (tests/recipes/node) and a Python service with PyJWT
//! (tests/recipes/python) — run against the real provider: they accept its
//! access tokens and refuse the rest, saying why, as portcullis-verify does.
//! Needs `npm ci --prefix tests/recipes/node` and a Python with
//! `tests/recipes/python/requirements.txt` (PORTCULLIS_RECIPE_PYTHON, default
//! target/recipes-venv/bin/python); without them the test says so and passes,
//! unless PORTCULLIS_BROWSER_TESTS=1 (as in CI) makes it mandatory.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::spawn_app;
use crate::oauth::register;
use crate::relying::{API, service, token};

fn python() -> String {
    std::env::var("PORTCULLIS_RECIPE_PYTHON").unwrap_or_else(|_| "target/recipes-venv/bin/python".into())
}

fn ready() -> Result<(), String> {
    if !Path::new("tests/recipes/node/node_modules/jose").exists() {
        return Err("jose is not installed (npm ci --prefix tests/recipes/node)".into());
    }
    if !Path::new(&python()).exists() {
        return Err(format!(
            "no Python at {} (python3 -m venv target/recipes-venv && target/recipes-venv/bin/pip install -r tests/recipes/python/requirements.txt)",
            python()
        ));
    }
    Ok(())
}

/// Starts a recipe service and returns its base URL once it listens.
async fn start(program: &str, script: &str, issuer: &str) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(program)
        .arg(script)
        .env("ISSUER", issuer)
        .env("AUDIENCE", API)
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {program} {script}: {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{script} did not start"))
        .unwrap()
        .unwrap_or_default();
    let port = first.strip_prefix("listening on ").unwrap_or_else(|| panic!("{script} said {first:?}"));
    (child, format!("http://127.0.0.1:{port}"))
}

async fn get(url: &str, token: Option<&str>) -> (u16, String, serde_json::Value) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let www = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, www, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn recipes_in_node_and_python_verify_portcullis_tokens() {
    if let Err(why) = ready() {
        assert!(std::env::var("PORTCULLIS_BROWSER_TESTS").as_deref() != Ok("1"), "recipe test required: {why}");
        eprintln!("SKIPPED recipe test: {why}");
        return;
    }
    let app = spawn_app().await;
    let billing = service(&app, "billing-svc", &["billing"]).await;
    let plain = service(&app, "plain-svc", &[]).await;
    let good = token(&app, "billing-svc", &billing, API).await;
    let plain = token(&app, "plain-svc", &plain, API).await;
    let other = token(&app, "billing-svc", &billing, "https://other.example.com").await;
    app.state.clock.advance(chrono::Duration::hours(-2));
    let expired = token(&app, "billing-svc", &billing, API).await;
    app.state.clock.advance(chrono::Duration::hours(2));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let sig = parts[2].clone();
    parts[2] = format!("{}{}", if sig.starts_with('A') { "B" } else { "A" }, &sig[1..]);
    let tampered = parts.join(".");
    // An ID token is signed by the same keys but is not an access token.
    let id_token = {
        app.create_user("ivy", crate::oauth::PW, &[]).await;
        let web = register(&app, crate::oauth::web_client("webapp")).await.unwrap();
        let b = app.browser();
        let (code, verifier) = crate::oauth::get_code(&app, &b, "webapp", "ivy", "").await;
        let (status, t) = crate::oauth::exchange(&app, "webapp", &web, &code, &verifier).await;
        assert_eq!(status, 200, "{t}");
        t["id_token"].as_str().unwrap().to_owned()
    };

    for (program, script) in
        [("node", "tests/recipes/node/service.mjs"), (python().as_str(), "tests/recipes/python/service.py")]
    {
        let (_child, base) = start(program, script, &app.address).await;
        let (s, _, body) = get(&format!("{base}/me"), Some(&good)).await;
        assert_eq!(s, 200, "{script}: {body}");
        assert_eq!(body["sub"], "billing-svc", "{script}");
        assert_eq!(get(&format!("{base}/billing"), Some(&good)).await.0, 200, "{script}");
        assert_eq!(get(&format!("{base}/me"), None).await.0, 401, "{script}");
        assert_eq!(get(&format!("{base}/me"), None).await.1, "Bearer", "{script}");
        let refused = |why: &str| format!("Bearer error=\"invalid_token\", error_description=\"{why}\"");
        for (token, why) in [
            (&expired, "the token has expired"),
            (&other, "the token is not for this service"),
            (&tampered, "the token's signature does not verify"),
            (&id_token, "the token is not an access token (typ at+jwt)"),
        ] {
            let (s, www, body) = get(&format!("{base}/me"), Some(token)).await;
            assert_eq!((s, www), (401, refused(why)), "{script}: {why}");
            assert_eq!(body["error_description"], why, "{script}");
        }
        let (s, www, _) = get(&format!("{base}/billing"), Some(&plain)).await;
        assert_eq!(s, 403, "{script}");
        assert!(www.starts_with("Bearer error=\"insufficient_scope\""), "{script}: {www}");
    }
}

/// The full FAPI 2.0 flow driven by an independent, certified relying-party
/// library: openid-client 6 (tests/rp/node/fapi2.mjs) — discovery, PAR with
/// private_key_jwt and a DPoP proof, login, the code exchange with PKCE and
/// DPoP (the library answers our `use_dpop_nonce` itself), UserInfo with the
/// bound token, a refresh — against a client held to `--profile fapi2`.
#[tokio::test]
async fn openid_client_runs_the_fapi2_flow() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    if !Path::new("tests/rp/node/node_modules/openid-client").exists() {
        let why = "openid-client is not installed (npm ci --prefix tests/rp/node)";
        assert!(std::env::var("PORTCULLIS_BROWSER_TESTS").as_deref() != Ok("1"), "RP test required: {why}");
        eprintln!("SKIPPED openid-client test: {why}");
        return;
    }
    let app = crate::helpers::spawn_app_on_clock(
        crate::helpers::TestDb::new().await,
        portcullis::clock::Clock::System,
        |_| {},
    )
    .await;
    let user_id = app.create_user("fiona", crate::oauth::PW, &[]).await;
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let p = kp.public_key().as_ref().to_vec();
    let jwks = serde_json::json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "rp1", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..]) }] });
    register(
        &app,
        portcullis::admin::clients::ClientSpec {
            client_id: "fapi-rp".into(),
            redirect_uris: vec![crate::oauth::CB.into()],
            scopes: vec!["profile".into()],
            first_party: true,
            profile: Some("fapi2".into()),
            jwks: Some(jwks.to_string()),
            ..Default::default()
        },
    )
    .await;
    let out = tokio::process::Command::new("node")
        .arg("tests/rp/node/fapi2.mjs")
        .env("ISSUER", &app.address)
        .env("CLIENT_ID", "fapi-rp")
        .env("CLIENT_KID", "rp1")
        .env("CLIENT_KEY_PKCS8", STANDARD.encode(kp.to_pkcs8v1().unwrap().as_ref()))
        .env("REDIRECT_URI", crate::oauth::CB)
        .env("PC_USER", "fiona")
        .env("PC_PASSWORD", crate::oauth::PW)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "openid-client failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert!(seen["token_type"].as_str().unwrap().eq_ignore_ascii_case("dpop"), "{seen}");
    assert!(seen["refreshed_token_type"].as_str().unwrap().eq_ignore_ascii_case("dpop"), "{seen}");
    let first = crate::helpers::claims_of(seen["access_token"].as_str().unwrap());
    let refreshed = crate::helpers::claims_of(seen["refreshed_access_token"].as_str().unwrap());
    let jkt = first["cnf"]["jkt"].as_str().expect("the access token is bound");
    assert_eq!(refreshed["cnf"]["jkt"], jkt, "the refreshed token is bound to the same key");
    assert_eq!(seen["id_token_sub"], user_id.as_str());
    assert_eq!(seen["userinfo_sub"], user_id.as_str());
    assert_eq!(seen["userinfo_username"], "fiona");
    assert_eq!(seen["bearer_status"], 401, "the bound token as a plain bearer token");
}
