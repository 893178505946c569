//! Devices and service delegation (issue #21) through the real app: the
//! device authorization grant (RFC 8628) and token exchange (RFC 8693).

use portcullis::admin::clients::ClientSpec;
use serde_json::Value;

use crate::helpers::{TestApp, claims_of, csrf_in, location, spawn_app, spawn_replica};
use crate::oauth::{PW, register, token_req};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn tv() -> ClientSpec {
    ClientSpec {
        client_id: "tv".into(),
        name: Some("Living-room TV".into()),
        public: true,
        grants: vec!["device_code".into(), "refresh_token".into()],
        scopes: vec!["profile".into()],
        ..Default::default()
    }
}

async fn start(app: &TestApp, url: &str, client_id: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/device_authorization"))
        .header("User-Agent", "tv-app/1.0")
        .form(&[("client_id", client_id), ("scope", "openid profile")])
        .send()
        .await
        .unwrap();
    let _ = app;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn poll_at(url: &str, client_id: &str, device_code: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/token"))
        .form(&[("grant_type", DEVICE_GRANT), ("client_id", client_id), ("device_code", device_code)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn err(v: &(u16, Value)) -> (u16, Option<&str>) {
    (v.0, v.1["error"].as_str())
}

/// The signed-in person's browser answers the code: the confirmation page's
/// text and the answer's status.
async fn answer(app: &TestApp, b: &reqwest::Client, typed: &str, decision: &str) -> (String, u16) {
    let r = b.get(app.url(&format!("/device?user_code={typed}"))).send().await.unwrap();
    assert_eq!(r.status(), 200, "the confirmation page");
    let page = r.text().await.unwrap();
    let code = page.split(r#"name="user_code" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    let r = b
        .post(app.url("/device"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("user_code", code.as_str()), ("decision", decision)])
        .send()
        .await
        .unwrap();
    (page, r.status().as_u16())
}

fn wait(app: &TestApp, secs: i64) {
    app.state.clock.advance(chrono::Duration::seconds(secs));
}

#[tokio::test]
async fn a_tv_gets_tokens_once_after_its_user_approves_and_polling_too_fast_slows_it_down() {
    let app = spawn_app().await;
    let user_id = app.create_user("tom", PW, &[]).await;
    register(&app, tv()).await;
    let (status, d) = start(&app, &app.address, "tv").await;
    assert_eq!(status, 200, "{d}");
    let user_code = d["user_code"].as_str().unwrap().to_owned();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(user_code.replace('-', "").bytes().all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)), "{user_code}");
    assert_eq!(d["verification_uri"], app.url("/device"));
    assert_eq!(d["verification_uri_complete"], app.url(&format!("/device?user_code={user_code}")));
    assert_eq!(d["interval"], 5);
    // The verification_uri_complete as a QR code, for a device that shows images.
    let r = reqwest::get(app.url(&format!("/device/qr?user_code={user_code}"))).await.unwrap();
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.text().await.unwrap().contains("<svg"));
    assert_eq!(reqwest::get(app.url("/device/qr?user_code=AEIOU")).await.unwrap().status(), 400);
    let device_code = d["device_code"].as_str().unwrap().to_owned();

    assert_eq!(err(&poll_at(&app.address, "tv", &device_code).await), (400, Some("authorization_pending")));
    assert_eq!(err(&poll_at(&app.address, "tv", &device_code).await), (400, Some("slow_down")), "too soon");
    wait(&app, 6);
    assert_eq!(
        err(&poll_at(&app.address, "tv", &device_code).await),
        (400, Some("slow_down")),
        "the interval grew to 10 s"
    );
    wait(&app, 16);
    assert_eq!(err(&poll_at(&app.address, "tv", &device_code).await), (400, Some("authorization_pending")));
    // Another client cannot poll with it.
    register(&app, ClientSpec { client_id: "radio".into(), ..tv() }).await;
    assert_eq!(err(&poll_at(&app.address, "radio", &device_code).await).1, Some("invalid_grant"));

    // The person signs in and enters the code (lower case, as typed).
    let b = app.browser();
    let r = b.get(app.url("/device")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), location(&r).as_str()), (303, "/login"), "a session is needed");
    app.login(&b, "tom", PW).await;
    let r = b.get(app.url("/device?user_code=BCDF-GHJK")).send().await.unwrap();
    assert_eq!(r.status(), 400, "an unknown code");
    let (page, status) = answer(&app, &b, &user_code.to_lowercase(), "approve").await;
    assert_eq!(status, 200);
    assert!(page.contains("Living-room TV"), "the client is named");
    assert!(page.contains(&user_code), "the code is shown to compare");
    assert!(page.contains("127.0.0.1"), "where the device asked from");
    // Approved once only.
    let r = b.get(app.url(&format!("/device?user_code={user_code}"))).send().await.unwrap();
    assert_eq!(r.status(), 400);

    wait(&app, 16);
    let (status, t) = poll_at(&app.address, "tv", &device_code).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(claims_of(t["access_token"].as_str().unwrap())["sub"], user_id.as_str());
    assert!(t["refresh_token"].is_string());
    assert!(t["id_token"].is_string());
    wait(&app, 16);
    assert_eq!(err(&poll_at(&app.address, "tv", &device_code).await), (400, Some("invalid_grant")), "one issue");
}

#[tokio::test]
async fn one_approval_issues_one_token_across_instances_and_denials_and_expiry_are_final() {
    let app = spawn_app().await;
    app.create_user("tom", PW, &[]).await;
    register(&app, tv()).await;
    let replica = spawn_replica(&app, |_| {}).await;
    let b = app.browser();
    app.login(&b, "tom", PW).await;

    let (_, d) = start(&app, &app.address, "tv").await;
    let code = d["device_code"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &b, d["user_code"].as_str().unwrap(), "approve").await.1, 200);
    let (a, r) = tokio::join!(poll_at(&app.address, "tv", &code), poll_at(&replica.address, "tv", &code));
    let wins = [&a, &r].iter().filter(|x| x.0 == 200).count();
    assert_eq!(wins, 1, "exactly one token issue: {a:?} {r:?}");

    let (_, d) = start(&app, &replica.address, "tv").await;
    let code = d["device_code"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &b, d["user_code"].as_str().unwrap(), "deny").await.1, 200);
    assert_eq!(err(&poll_at(&replica.address, "tv", &code).await), (400, Some("access_denied")));

    let (_, d) = start(&app, &app.address, "tv").await;
    let code = d["device_code"].as_str().unwrap().to_owned();
    wait(&app, 601);
    assert_eq!(err(&poll_at(&app.address, "tv", &code).await), (400, Some("expired_token")));
    let r = b.get(app.url(&format!("/device?user_code={}", d["user_code"].as_str().unwrap()))).send().await.unwrap();
    assert_eq!(r.status(), 400, "an expired code cannot be approved");

    // A client not registered for the grant gets no codes.
    register(&app, ClientSpec { client_id: "web".into(), grants: vec!["refresh_token".into()], ..tv() }).await;
    let (status, e) = start(&app, &app.address, "web").await;
    assert_eq!((status, e["error"].as_str()), (400, Some("unauthorized_client")));

    // The CLI registers a device client by the contract's short name; discovery names the endpoint.
    let out = app.db.cli(&["client", "add", "cli-tool", "--public", "--grant", "device_code", "--json"], None);
    assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
    let shown: Value = serde_json::from_str(&crate::helpers::stdout(&out)).unwrap();
    assert_eq!(shown["client"]["grant_types"], serde_json::json!([DEVICE_GRANT]));
    let d: Value = reqwest::get(app.url("/.well-known/openid-configuration")).await.unwrap().json().await.unwrap();
    assert_eq!(d["device_authorization_endpoint"], app.url("/device_authorization"));
    assert!(d["grant_types_supported"].as_array().unwrap().iter().any(|g| g == DEVICE_GRANT));
}

#[tokio::test]
async fn guessing_user_codes_is_limited_and_an_mfa_client_needs_a_strong_sign_in() {
    let app = spawn_app().await;
    app.create_user("tom", PW, &[]).await;
    register(&app, ClientSpec { require_mfa: true, ..tv() }).await;
    let b = app.browser();
    app.login(&b, "tom", PW).await;
    let (_, d) = start(&app, &app.address, "tv").await;
    let (_, status) = answer(&app, &b, d["user_code"].as_str().unwrap(), "approve").await;
    assert_eq!(status, 403, "a password-only sign-in cannot approve for an MFA client");
    let code = d["device_code"].as_str().unwrap();
    assert_eq!(err(&poll_at(&app.address, "tv", code).await).1, Some("authorization_pending"));
    let mut last = 0;
    for i in 0..40 {
        let r = b.get(app.url(&format!("/device?user_code=BCDF{:04}", i))).send().await.unwrap();
        last = r.status().as_u16();
    }
    assert_eq!(last, 429, "too many lookups from one address");
}

/// A user's access token for `https://a.example`, obtained by `webapp` (and
/// webapp's secret).
async fn user_token(app: &TestApp) -> (String, String) {
    let secret =
        register(app, ClientSpec { resources: vec!["https://a.example".into()], ..crate::oauth::web_client("webapp") })
            .await
            .unwrap();
    let b = app.browser();
    let (code, verifier) = crate::oauth::get_code(app, &b, "webapp", "una", "&resource=https%3A%2F%2Fa.example").await;
    let (status, t) = crate::oauth::exchange(app, "webapp", &secret, &code, &verifier).await;
    assert_eq!(status, 200, "{t}");
    (t["access_token"].as_str().unwrap().to_owned(), secret)
}

async fn service(app: &TestApp, id: &str, resources: &[&str]) -> String {
    register(
        app,
        ClientSpec {
            client_id: id.into(),
            grants: vec!["token_exchange".into()],
            resources: resources.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn exchange(app: &TestApp, id: &str, secret: &str, subject: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("subject_token", subject),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
    ];
    form.extend_from_slice(extra);
    let (status, body, _) = token_req(app, Some((id, secret)), &form).await;
    (status, body)
}

#[tokio::test]
async fn a_service_exchanges_a_users_token_for_a_narrower_one_acting_for_the_user() {
    let app = spawn_app().await;
    let user_id = app.create_user("una", PW, &[]).await;
    let (subject, webapp_secret) = user_token(&app).await;
    let gw = service(&app, "gateway", &["https://a.example", "https://b.example"]).await;
    let (status, t) =
        exchange(&app, "gateway", &gw, &subject, &[("audience", "https://b.example"), ("scope", "openid")]).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    let c = claims_of(t["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], user_id.as_str());
    assert_eq!(c["aud"], "https://b.example");
    assert_eq!(c["client_id"], "gateway");
    assert_eq!(c["act"], serde_json::json!({ "sub": "gateway" }));
    assert_eq!(c["scope"], "openid");
    assert!(c["exp"].as_i64() <= claims_of(&subject)["exp"].as_i64(), "never outlives the subject token");

    // The next hop nests the chain.
    let hop = service(&app, "billing", &["https://b.example", "https://c.example"]).await;
    let (status, t2) =
        exchange(&app, "billing", &hop, t["access_token"].as_str().unwrap(), &[("resource", "https://c.example")])
            .await;
    assert_eq!(status, 200, "{t2}");
    let c2 = claims_of(t2["access_token"].as_str().unwrap());
    assert_eq!(c2["act"], serde_json::json!({ "sub": "billing", "act": { "sub": "gateway" } }));

    // Refusals.
    let (status, e) = exchange(&app, "gateway", &gw, &subject, &[("audience", "https://c.example")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_target")), "an unregistered audience");
    let (status, e) =
        exchange(&app, "gateway", &gw, &subject, &[("audience", "https://b.example"), ("scope", "openid email")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_scope")), "a wider scope");
    let nosy = service(&app, "nosy", &["https://b.example"]).await;
    let (status, e) = exchange(&app, "nosy", &nosy, &subject, &[("audience", "https://b.example")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "a token not sent to this service");
    let plain = register(
        &app,
        ClientSpec {
            client_id: "plain".into(),
            grants: vec!["client_credentials".into()],
            resources: vec!["https://a.example".into(), "https://b.example".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (status, e) = exchange(&app, "plain", &plain, &subject, &[("audience", "https://b.example")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("unauthorized_client")));
    let (status, e) = exchange(&app, "gateway", &gw, "not.a.token", &[("audience", "https://b.example")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));

    // Revoked, then expired: refused.
    // webapp revokes the user's token.
    let r = reqwest::Client::new()
        .post(app.url("/revoke"))
        .basic_auth("webapp", Some(&webapp_secret))
        .form(&[("token", subject.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, e) = exchange(&app, "gateway", &gw, &subject, &[("audience", "https://b.example")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "a revoked subject token");
    let fresh = {
        let b = app.browser();
        let secret = webapp_secret.clone();
        let (code, verifier) =
            crate::oauth::get_code(&app, &b, "webapp", "una", "&resource=https%3A%2F%2Fa.example").await;
        crate::oauth::exchange(&app, "webapp", &secret, &code, &verifier).await.1["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    wait(&app, 16 * 60);
    let (status, e) = exchange(&app, "gateway", &gw, &fresh, &[("audience", "https://b.example")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")), "an expired subject token");
}

#[tokio::test]
async fn a_protected_service_publishes_resource_metadata_and_points_every_401_at_it() {
    let app = spawn_app().await;
    let (base, _) = crate::relying::backend(&app, |c| {
        c.resource_metadata = Some(portcullis::verify::ResourceMetadata {
            scopes_supported: vec!["api:read".into()],
            resource_name: Some("Example API".into()),
        })
    })
    .await;
    let doc: Value =
        reqwest::get(format!("{base}/.well-known/oauth-protected-resource")).await.unwrap().json().await.unwrap();
    assert_eq!(doc["resource"], crate::relying::API);
    assert_eq!(doc["authorization_servers"], serde_json::json!([app.address]));
    assert_eq!(doc["scopes_supported"], serde_json::json!(["api:read"]));
    let r = reqwest::get(format!("{base}/me")).await.unwrap();
    assert_eq!(r.status(), 401);
    let www = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(www.contains(&format!("resource_metadata=\"{base}/.well-known/oauth-protected-resource\"")), "{www}");
    let r = reqwest::Client::new().get(format!("{base}/me")).bearer_auth("garbage").send().await.unwrap();
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\", error_description"));
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("resource_metadata="));
    // And from there the authorization server's metadata (RFC 8414).
    let asm: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        doc["authorization_servers"][0].as_str().unwrap()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(asm["issuer"], app.address.as_str());
    assert_eq!(asm["authorization_endpoint"], app.url("/authorize"));
    // A service without metadata publishes none.
    let (plain, _) = crate::relying::backend(&app, |_| {}).await;
    assert_eq!(reqwest::get(format!("{plain}/.well-known/oauth-protected-resource")).await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_device_outside_the_clients_network_gets_nothing_even_if_someone_inside_approves() {
    // Behind a proxy that names the client address (X-Forwarded-For).
    let app =
        crate::helpers::spawn_app_with(crate::helpers::TestDb::new().await, |s| s.trust_forwarded_for = true).await;
    app.create_user("tom", PW, &[]).await;
    register(&app, tv()).await;
    let policy = portcullis::policy::access::AccessPolicy::parse_json(r#"{"networks": ["10.0.0.0/8"]}"#).unwrap();
    portcullis::admin::clients::update(
        &app.state,
        &portcullis::admin::Actor::cli(),
        "tv",
        portcullis::admin::clients::ClientPatch { access_policy: Some(Some(policy)), ..Default::default() },
    )
    .await
    .unwrap();
    let start_from = |ip: &'static str| {
        reqwest::Client::new()
            .post(app.url("/device_authorization"))
            .header("X-Forwarded-For", ip)
            .form(&[("client_id", "tv"), ("scope", "openid")])
            .send()
    };
    let inside = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(
            [(reqwest::header::HeaderName::from_static("x-forwarded-for"), "10.1.2.3".parse().unwrap())]
                .into_iter()
                .collect(),
        )
        .build()
        .unwrap();
    app.login(&inside, "tom", PW).await;
    // An outsider's device, approved by a victim inside the network: refused.
    let d: Value = start_from("203.0.113.7").await.unwrap().json().await.unwrap();
    let (_, status) = answer(&app, &inside, d["user_code"].as_str().unwrap(), "approve").await;
    assert_eq!(status, 403);
    assert_eq!(
        err(&poll_at(&app.address, "tv", d["device_code"].as_str().unwrap()).await).1,
        Some("authorization_pending")
    );
    // A device inside: allowed.
    let d: Value = start_from("10.9.9.9").await.unwrap().json().await.unwrap();
    assert_eq!(answer(&app, &inside, d["user_code"].as_str().unwrap(), "approve").await.1, 200);
}

/// An approval whose record of the sign-in is missing (or damaged) issues
/// nothing: never tokens from "a sign-in just now, with no factor" — a
/// fresh auth_time would pass every login-age rule at each refresh.
#[tokio::test]
async fn an_approval_without_its_record_of_the_sign_in_issues_nothing() {
    use portcullis::storage::entities::device_code;
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = spawn_app().await;
    app.create_user("tom", PW, &[]).await;
    register(&app, tv()).await;
    let b = app.browser();
    app.login(&b, "tom", PW).await;
    let columns = [device_code::Column::AuthTime, device_code::Column::Amr];
    for (i, column) in columns.into_iter().enumerate() {
        let (_, d) = start(&app, &app.address, "tv").await;
        let (user_code, device_code) = (d["user_code"].as_str().unwrap(), d["device_code"].as_str().unwrap());
        assert_eq!(answer(&app, &b, user_code, "approve").await.1, 200);
        let value: sea_orm::Value = if i == 0 { Option::<i64>::None.into() } else { Option::<String>::None.into() };
        let changed = device_code::Entity::update_many()
            .col_expr(column, Expr::val(value))
            .filter(device_code::Column::Status.eq("approved"))
            .exec(&app.state.db)
            .await
            .unwrap();
        assert_eq!(changed.rows_affected, 1, "the approval was damaged");
        wait(&app, 6);
        let polled = poll_at(&app.address, "tv", device_code).await;
        assert_eq!(err(&polled), (400, Some("invalid_grant")), "{column:?}: {}", polled.1);
        wait(&app, 6);
        let again = poll_at(&app.address, "tv", device_code).await;
        assert_eq!(err(&again), (400, Some("invalid_grant")), "spent");
    }
}
