//! End-to-end in Debian's headless Chromium (tests/browser, playwright-core).
//! Needs `chromium` and `npm ci --prefix tests/browser`; without them the test
//! says so and passes, unless PORTCULLIS_BROWSER_TESTS=1 (as in CI) makes them
//! mandatory.

use std::path::Path;

use portcullis::clock::Clock;

use crate::helpers::{TestDb, spawn_app, spawn_app_on_clock};

fn browser_ready() -> Result<(), String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!("no Chromium at {chromium} (apt-get install chromium)"));
    }
    if !Path::new("tests/browser/node_modules/playwright-core").exists() {
        return Err("playwright-core is not installed (npm ci --prefix tests/browser)".into());
    }
    Ok(())
}

async fn run_script(script: &str, base: &str, user: &str, password: &str) {
    run_script_with(script, base, user, password, &[]).await
}

async fn run_script_with(script: &str, base: &str, user: &str, password: &str, env: &[(&str, &str)]) {
    if let Err(why) = browser_ready() {
        assert!(std::env::var("PORTCULLIS_BROWSER_TESTS").as_deref() != Ok("1"), "browser test required: {why}");
        eprintln!("SKIPPED browser test {script}: {why}");
        return;
    }
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg("--test").arg(format!("tests/browser/{script}"));
    cmd.env("BASE_URL", base).env("PC_USER", user).env("PC_PASSWORD", password);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("# pass 1"), "{stdout}");
}

#[tokio::test]
async fn a_person_logs_in_and_out_in_a_real_browser() {
    let app = spawn_app().await;
    app.create_user("rosa", "violet anvil tramline", &[]).await;
    run_script("login.test.mjs", &app.address, "rosa", "violet anvil tramline").await;
}

#[tokio::test]
async fn a_person_enrols_totp_and_logs_in_with_a_code_in_a_real_browser() {
    let app = spawn_app_on_clock(TestDb::new().await, Clock::System, |_| {}).await;
    app.create_user("sven", "violet anvil tramline", &[]).await;
    run_script("mfa.test.mjs", &app.address, "sven", "violet anvil tramline").await;
}

#[tokio::test]
async fn an_administrator_manages_users_in_a_real_browser() {
    use portcullis::admin::Actor;
    const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let app = spawn_app_on_clock(TestDb::new().await, Clock::System, |_| {}).await;
    app.create_user("ada", "violet anvil tramline", &["admin"]).await;
    portcullis::admin::users::totp_import(&app.state, &Actor::cli(), "ada", &secrecy::SecretString::from(SEED))
        .await
        .unwrap();
    for (name, email, display) in [
        ("bruno", "bruno@example.com", "Bruno Alves"),
        ("chiara", "chiara@example.com", "Chiara Rossi"),
        ("dmitri", "dmitri@example.com", "Dmitri Volkov"),
        ("mallory", "mallory@example.com", "Mallory Quinn"),
    ] {
        let new = portcullis::admin::users::NewUser::parse(name, Some(email), Some(display), &[], None).unwrap();
        portcullis::admin::users::create(&app.state, &Actor::cli(), new).await.unwrap();
    }
    run_script_with("admin.test.mjs", &app.address, "ada", "violet anvil tramline", &[("PC_SEED", SEED)]).await;
}

/// Every page, light and dark, through axe-core (WCAG 2.2 AA rules), and a
/// keyboard-only login.
#[tokio::test]
async fn every_page_is_accessible_in_a_real_browser() {
    use portcullis::admin::Actor;
    const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let mail = crate::mailbox::Mailbox::start().await;
    let app = spawn_app_on_clock(TestDb::new().await, Clock::System, |s| {
        mail.configure(s);
        s.registration = portcullis::config::Registration::Open;
        // A provider for the "Sign in with …" button and the account page's
        // linking form (never reached here).
        s.upstream = vec![portcullis::config::UpstreamProvider {
            id: "corp".into(),
            name: "Corp SSO".into(),
            issuer: "http://127.0.0.1:9".into(),
            client_id: "portcullis".into(),
            client_secret_file: None,
            client_secret_env: None,
            scopes: vec!["email".into()],
            create_accounts: false,
            trust_mfa: false,
            mfa_acr_values: Vec::new(),
            groups_claim: None,
            role_rules: Vec::new(),
        }];
    })
    .await;
    app.create_user("ada", "violet anvil tramline", &["admin"]).await;
    portcullis::admin::users::totp_import(&app.state, &Actor::cli(), "ada", &secrecy::SecretString::from(SEED))
        .await
        .unwrap();
    let new =
        portcullis::admin::users::NewUser::parse("bruno", Some("bruno@example.com"), Some("Bruno Alves"), &[], None)
            .unwrap();
    portcullis::admin::users::create(&app.state, &Actor::cli(), new).await.unwrap();
    // The lifecycle pages behind links: an invitation and an address check.
    let invite = portcullis::lifecycle::Purpose::Invite;
    let invitation = portcullis::lifecycle::recovery::issue(&app.state, &Actor::cli(), "bruno", invite, false)
        .await
        .unwrap()
        .url
        .unwrap();
    let bruno = portcullis::storage::users::by_key(&app.state.db, "bruno").await.unwrap().unwrap();
    let to = portcullis::domain::Email::parse("bruno@example.com").unwrap();
    portcullis::lifecycle::email::request_verification(&app.state, &bruno, &to, Default::default()).await.unwrap();
    let verify = mail.wait_for("bruno@example.com", 1).await[0].link(&app.url("/email/verify"));
    crate::oauth::register(&app, crate::oauth::web_client("shop")).await;
    let third = portcullis::admin::clients::ClientSpec { first_party: false, ..crate::oauth::web_client("partner") };
    crate::oauth::register(&app, third).await;
    let consent = format!(
        "/authorize?response_type=code&client_id=partner&redirect_uri={}&scope=openid%20profile&state=s&code_challenge={}&code_challenge_method=S256",
        crate::oauth::urlencode(crate::oauth::CB),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    run_script_with(
        "a11y.test.mjs",
        &app.address,
        "ada",
        "violet anvil tramline",
        &[
            ("PC_SEED", SEED),
            ("PC_TARGET", "bruno"),
            ("PC_CLIENT", "shop"),
            ("PC_CONSENT", &consent),
            ("PC_INVITATION", &invitation),
            ("PC_VERIFY", &verify),
        ],
    )
    .await;
}

/// A sample relying party: one page with a sign-in link (authorization code +
/// PKCE S256, state and nonce kept server-side), and a callback that exchanges
/// the code and greets the user by the ID token's claims.
mod sample_client {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use actix_web::{App, HttpResponse, HttpServer, web};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[derive(Clone)]
    pub struct Rp {
        pub issuer: String,
        pub client_id: String,
        pub secret: String,
        pub base: String,
        /// `acr_values` to send, if any.
        pub acr_values: Option<String>,
        pending: Arc<Mutex<HashMap<String, String>>>,
    }

    async fn home(rp: web::Data<Rp>) -> HttpResponse {
        let state = URL_SAFE_NO_PAD.encode(portcullis::crypto::random_bytes(16).unwrap());
        let verifier = URL_SAFE_NO_PAD.encode(portcullis::crypto::random_bytes(32).unwrap());
        let challenge =
            URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
        rp.pending.lock().unwrap().insert(state.clone(), verifier);
        let mut url = url::Url::parse(&format!("{}/authorize", rp.issuer)).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &rp.client_id)
            .append_pair("redirect_uri", &format!("{}/callback", rp.base))
            .append_pair("scope", "openid profile")
            .append_pair("state", &state)
            .append_pair("nonce", "sample-nonce")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(acr) = &rp.acr_values {
            url.query_pairs_mut().append_pair("acr_values", acr);
        }
        HttpResponse::Ok().content_type("text/html").body(format!(
            "<!doctype html><link rel=\"icon\" href=\"data:,\"><title>Sample app</title><h1>Sample app</h1><a id=\"signin\" href=\"{}\">Sign in with Portcullis</a>",
            url.as_str().replace('&', "&amp;")
        ))
    }

    async fn callback(rp: web::Data<Rp>, q: web::Query<HashMap<String, String>>) -> HttpResponse {
        let Some(verifier) = q.get("state").and_then(|s| rp.pending.lock().unwrap().remove(s)) else {
            return HttpResponse::BadRequest().body("unknown state");
        };
        let Some(code) = q.get("code") else {
            return HttpResponse::BadRequest().body(format!("error: {:?}", q.get("error")));
        };
        let t: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/token", rp.issuer))
            .basic_auth(&rp.client_id, Some(&rp.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", &format!("{}/callback", rp.base)),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = t["id_token"].as_str().unwrap_or_default();
        let claims: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD.decode(id.split('.').nth(1).unwrap_or_default()).unwrap_or_default(),
        )
        .unwrap_or_default();
        if claims["nonce"] != "sample-nonce" || claims["aud"] != rp.client_id.as_str() {
            return HttpResponse::BadRequest().body("bad ID token");
        }
        let acr = match (&rp.acr_values, claims["acr"].as_str()) {
            (Some(_), Some(a)) => format!(" (acr {a})"),
            _ => String::new(),
        };
        HttpResponse::Ok().content_type("text/html").body(format!(
            "<!doctype html><link rel=\"icon\" href=\"data:,\"><title>Sample app</title><p id=\"greeting\">Signed in as {}{acr}</p>",
            claims["preferred_username"].as_str().unwrap_or("?")
        ))
    }

    /// Starts the sample client on a free port; returns its base URL.
    pub fn start(issuer: &str, client_id: &str, secret: &str, listener: std::net::TcpListener) -> String {
        start_with(issuer, client_id, secret, listener, None)
    }

    /// `start`, sending `acr_values` and showing the ID token's `acr`.
    pub fn start_with(
        issuer: &str,
        client_id: &str,
        secret: &str,
        listener: std::net::TcpListener,
        acr_values: Option<&str>,
    ) -> String {
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let rp = Rp {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
            base: base.clone(),
            acr_values: acr_values.map(str::to_owned),
            pending: Default::default(),
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(rp.clone()))
                .route("/", web::get().to(home))
                .route("/callback", web::get().to(callback))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        base
    }
}

#[tokio::test]
async fn a_person_signs_in_to_a_sample_app_through_portcullis_in_a_real_browser() {
    use secrecy::ExposeSecret;
    let app = spawn_app().await;
    app.create_user("tess", "violet anvil tramline", &[]).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let spec = portcullis::admin::clients::ClientSpec {
        client_id: "sample".into(),
        name: Some("Sample app".into()),
        redirect_uris: vec![format!("{base}/callback")],
        scopes: vec!["profile".into()],
        first_party: true,
        ..Default::default()
    };
    let created = portcullis::admin::clients::add(&app.state, &portcullis::admin::Actor::cli(), &spec).await.unwrap();
    let secret = created.secret.unwrap().expose_secret().to_owned();
    let client_base = sample_client::start(&app.address, "sample", &secret, listener);
    if browser_ready().is_ok() {
        let out = tokio::process::Command::new("node")
            .arg("--test")
            .arg("tests/browser/oidc.test.mjs")
            .env("CLIENT_URL", &client_base)
            .env("PC_USER", "tess")
            .env("PC_PASSWORD", "violet anvil tramline")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "browser test failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("# pass 1"), "{stdout}");
    } else {
        run_script("oidc.test.mjs", &app.address, "tess", "violet anvil tramline").await; // reports the skip
    }
}

#[tokio::test]
async fn a_person_uses_passkeys_in_a_real_browser() {
    use secrecy::ExposeSecret;
    // WebAuthn needs a domain name: the issuer is http://localhost:PORT.
    let app = crate::helpers::spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("pax", "violet anvil tramline", &[]).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rp_base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let spec = portcullis::admin::clients::ClientSpec {
        client_id: "sample".into(),
        name: Some("Sample app".into()),
        redirect_uris: vec![format!("{rp_base}/callback")],
        scopes: vec!["profile".into()],
        first_party: true,
        ..Default::default()
    };
    let created = portcullis::admin::clients::add(&app.state, &portcullis::admin::Actor::cli(), &spec).await.unwrap();
    let secret = created.secret.unwrap().expose_secret().to_owned();
    let client_base = sample_client::start_with(&app.address, "sample", &secret, listener, Some("phr"));
    let shots = std::env::var("SCREENSHOT_DIR").unwrap_or_default();
    let mut env = vec![("PC_APP_URL", client_base.as_str())];
    if !shots.is_empty() {
        env.push(("SCREENSHOT_DIR", shots.as_str()));
    }
    run_script_with("passkey.test.mjs", &app.address, "pax", "violet anvil tramline", &env).await;
}

/// #18 in a real browser: invitation → password → passkey enrolment at the
/// first sign-in (a role requires it) → signed in to a sample app; then
/// "Forgot password?" → the mailed link → new password → sign-in that still
/// asks for the passkey.
#[tokio::test]
async fn a_person_is_invited_enrols_a_passkey_and_recovers_a_password_in_a_real_browser() {
    use secrecy::ExposeSecret;
    let mail = crate::mailbox::Mailbox::start().await;
    let db = TestDb::new().await;
    let mut app = spawn_app_on_clock(db, Clock::System, |s| {
        s.issuer = s.issuer.replace("127.0.0.1", "localhost");
        s.passkey_required_roles = vec!["staff".into()];
        mail.configure(s);
    })
    .await;
    app.address = app.address.replace("127.0.0.1", "localhost");
    let cli = portcullis::admin::Actor::cli();
    portcullis::admin::roles::add(&app.state, &cli, "staff", None).await.unwrap();
    let new = portcullis::admin::users::NewUser::parse("ivy", Some("ivy@example.com"), None, &["staff".into()], None)
        .unwrap();
    portcullis::admin::users::create(&app.state, &cli, new).await.unwrap();
    let invite = portcullis::lifecycle::Purpose::Invite;
    portcullis::lifecycle::recovery::issue(&app.state, &cli, "ivy", invite, true).await.unwrap();
    let invitation = mail.wait_for("ivy@example.com", 1).await[0].link(&app.url("/invitation"));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rp_base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let spec = portcullis::admin::clients::ClientSpec {
        client_id: "sample".into(),
        name: Some("Sample app".into()),
        redirect_uris: vec![format!("{rp_base}/callback")],
        scopes: vec!["profile".into()],
        first_party: true,
        ..Default::default()
    };
    let created = portcullis::admin::clients::add(&app.state, &cli, &spec).await.unwrap();
    let secret = created.secret.unwrap().expose_secret().to_owned();
    let client_base = sample_client::start(&app.address, "sample", &secret, listener);
    let dir = mail.dir().display().to_string();
    let env =
        [("PC_APP_URL", client_base.as_str()), ("PC_INVITATION", invitation.as_str()), ("PC_MAIL_DIR", dir.as_str())];
    run_script_with("lifecycle.test.mjs", &app.address, "ivy", "", &env).await;
}

#[tokio::test]
async fn a_person_approves_a_device_code_in_a_real_browser_while_the_device_polls() {
    let app = spawn_app_on_clock(TestDb::new().await, Clock::System, |_| {}).await;
    app.create_user("tara", "violet anvil tramline", &[]).await;
    let spec = portcullis::admin::clients::ClientSpec {
        client_id: "tv".into(),
        name: Some("Living-room TV".into()),
        public: true,
        grants: vec!["device_code".into(), "refresh_token".into()],
        scopes: vec!["profile".into()],
        ..Default::default()
    };
    portcullis::admin::clients::add(&app.state, &portcullis::admin::Actor::cli(), &spec).await.unwrap();
    run_script("device.test.mjs", &app.address, "tara", "violet anvil tramline").await;
}

/// A minimal MCP server (Streamable HTTP, JSON responses) whose one tool
/// tells the caller who the token says they are; every request needs a
/// Portcullis access token for this server (portcullis-verify).
mod mcp_server {
    use actix_web::{HttpResponse, web};
    use portcullis::verify::Authenticated;
    use serde_json::{Value, json};

    async fn rpc(user: Authenticated, body: web::Json<Value>) -> HttpResponse {
        let id = body.get("id").cloned();
        let result = match body["method"].as_str().unwrap_or_default() {
            "initialize" => json!({
                "protocolVersion": body["params"]["protocolVersion"],
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "portcullis-test-mcp", "version": "1.0.0" },
            }),
            "tools/list" => json!({ "tools": [{
                "name": "whoami",
                "description": "Who the access token says you are",
                "inputSchema": { "type": "object", "properties": {} },
            }] }),
            "tools/call" => json!({ "content": [{ "type": "text", "text": format!("sub={}", user.sub) }] }),
            _ if id.is_none() => return HttpResponse::Accepted().finish(), // notifications
            other => {
                return HttpResponse::Ok().json(json!({ "jsonrpc": "2.0", "id": id,
                    "error": { "code": -32601, "message": format!("no method {other}") } }));
            }
        };
        HttpResponse::Ok().json(json!({ "jsonrpc": "2.0", "id": id, "result": result }))
    }

    pub fn routes(cfg: &mut web::ServiceConfig) {
        cfg.route("/mcp", web::post().to(rpc))
            .route("/mcp", web::get().to(|| async { HttpResponse::MethodNotAllowed().finish() }))
            .configure(portcullis::verify::metadata_routes);
    }
}

#[tokio::test]
async fn an_mcp_client_finds_portcullis_registers_signs_in_and_calls_a_tool() {
    use portcullis::verify::{ResourceMetadata, Verifier, VerifierConfig};
    if let Err(why) = browser_ready() {
        assert!(std::env::var("PORTCULLIS_BROWSER_TESTS").as_deref() != Ok("1"), "MCP test required: {why}");
        eprintln!("SKIPPED MCP test: {why}");
        return;
    }
    assert!(
        Path::new("tests/mcp/node_modules/@modelcontextprotocol/sdk").exists()
            || std::env::var("PORTCULLIS_BROWSER_TESTS").as_deref() != Ok("1"),
        "the MCP SDK is not installed (npm ci --prefix tests/mcp)"
    );
    if !Path::new("tests/mcp/node_modules/@modelcontextprotocol/sdk").exists() {
        eprintln!("SKIPPED MCP test: npm ci --prefix tests/mcp");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mcp_url = format!("http://127.0.0.1:{}/mcp", listener.local_addr().unwrap().port());
    let resource = mcp_url.clone();
    let app = spawn_app_on_clock(TestDb::new().await, Clock::System, move |s| {
        s.client_registration = portcullis::config::ClientRegistration::Open;
        s.registration_resources = vec![resource];
    })
    .await;
    let user_id = app.create_user("mia", "violet anvil tramline", &[]).await;
    let mut config = VerifierConfig::new(app.address.clone(), mcp_url.clone());
    config.resource_metadata = Some(ResourceMetadata {
        scopes_supported: vec!["openid".into(), "profile".into()],
        resource_name: Some("Test MCP server".into()),
    });
    let verifier = Verifier::discover(config).await.unwrap();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().app_data(actix_web::web::Data::new(verifier.clone())).configure(mcp_server::routes)
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);

    let out = tokio::process::Command::new("node")
        .arg("--test")
        .arg("--test-reporter=tap")
        .arg("tests/mcp/mcp.test.mjs")
        .env("MCP_URL", &mcp_url)
        .env("PC_USER", "mia")
        .env("PC_PASSWORD", "violet anvil tramline")
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "MCP test failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.trim_start().starts_with("# {") || l.trim_start().starts_with('{'));
    let seen: serde_json::Value =
        serde_json::from_str(line.expect("the script's report").trim_start().trim_start_matches("# ")).unwrap();
    assert_eq!(seen["text"], format!("sub={user_id}"), "the tool saw the signed-in user");
    assert_eq!(seen["tools"], serde_json::json!(["whoami"]));
    let client_id = seen["client_id"].as_str().unwrap();
    assert!(client_id.starts_with("dyn-"), "a dynamically registered client: {client_id}");
    let claims = crate::helpers::claims_of(seen["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], mcp_url.as_str(), "a token for this MCP server only (RFC 8707)");
    assert_eq!(claims["client_id"], client_id);
}
