//! Operating Portcullis (issue #17, first part): metrics, diagnosable refusals,
//! settings that name roles.

use portcullis::storage::entities::audit_event;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;

use crate::helpers::{TestDb, spawn_app, spawn_app_with};
use crate::oauth::{CB, register, token_req, urlencode, web_client};

/// `/metrics` (CONTRACTS: Prometheus text) counts requests by route pattern,
/// logins by outcome and tokens by grant; it answers loopback, or a caller
/// with `metrics_token`, and nobody relayed by a proxy without it.
#[tokio::test]
async fn metrics_count_requests_logins_and_tokens_for_loopback_or_a_token() {
    let app = spawn_app_with(TestDb::new().await, |s| {
        s.metrics_token = Some(secrecy::SecretString::from("scrape-me-please-0123456789".to_owned()));
    })
    .await;
    app.create_user("una", "violet anvil tramline", &[]).await;
    let secret = register(
        &app,
        portcullis::admin::clients::ClientSpec {
            client_id: "svc".into(),
            grants: vec!["client_credentials".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    reqwest::get(app.url("/healthz")).await.unwrap();
    reqwest::get(app.url("/admin/users/nobody%3Fsecret=1")).await.unwrap();
    app.login(&app.browser(), "una", "wrong password entirely").await;
    app.login(&app.browser(), "una", "violet anvil tramline").await;
    let (s, _, _) = token_req(&app, Some(("svc", &secret)), &[("grant_type", "client_credentials")]).await;
    assert_eq!(s, 200);
    // An account locked by repeated failures: one lockout, then "locked".
    app.create_user("lock-me", "violet anvil tramline", &[]).await;
    for _ in 0..app.state.settings.login_max_failures + 1 {
        app.login(&app.browser(), "lock-me", "wrong password entirely").await;
    }

    // (A deliverer reports its sink's lag from its start; none is configured here.)
    app.state.metrics.audit_stream("siem", 0, 0);
    let r = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for line in [
        r#"portcullis_http_requests_total{method="GET",route="/healthz",status="200"} 1"#,
        r#"portcullis_logins_total{method="password",result="failure"} 6"#,
        r#"portcullis_account_lockouts_total 1"#,
        r#"portcullis_logins_total{method="password",result="locked"} 1"#,
        r#"portcullis_logins_total{method="password",result="success"} 1"#,
        r#"portcullis_tokens_issued_total{grant="client_credentials"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(text.contains("portcullis_http_request_duration_seconds_bucket{le="), "a latency histogram");
    // The Grafana dashboard (docs/) asks only for series that exist.
    let dashboard =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard).unwrap();
    let mut asked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("portcullis_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                let base =
                    ["_total", "_bucket"].iter().fold(name.clone(), |n, s| n.strip_suffix(s).unwrap_or(&n).to_owned());
                assert!(
                    text.contains(&format!("# TYPE {base} ")),
                    "the dashboard asks for {name}, which /metrics lacks"
                );
                asked += 1;
            }
        }
    }
    assert!(asked >= 10);
    assert!(text.contains(r#"route="/admin/users/{username}""#), "route patterns, not paths");
    assert!(!text.contains("nobody") && !text.contains("secret=1"), "no user input in labels");

    // Through a proxy on the same host: refused without the token, served with it.
    let relayed = reqwest::Client::new().get(app.url("/metrics")).header("x-forwarded-for", "203.0.113.9");
    assert_eq!(relayed.send().await.unwrap().status(), 403);
    let with_token = reqwest::Client::new()
        .get(app.url("/metrics"))
        .header("x-forwarded-for", "203.0.113.9")
        .bearer_auth("scrape-me-please-0123456789");
    assert_eq!(with_token.send().await.unwrap().status(), 200);
}

/// A refused authorization request tells the browser little and the
/// operator everything: the audit record has the client, the reason, and the
/// received against the registered redirect URIs.
#[tokio::test]
async fn a_refused_authorization_request_is_audited_for_the_operator() {
    let app = spawn_app().await;
    register(&app, web_client("webapp")).await;
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=webapp&redirect_uri={}&scope=openid",
        urlencode("https://typo.example.com/cb")
    ));
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(!page.contains(CB) && !page.contains("typo.example.com"), "nothing registered is echoed");
    let e = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq("oauth.authorize_refused"))
        .order_by_desc(audit_event::Column::Id)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("an audit record");
    assert_eq!(e.client_id.as_deref(), Some("webapp"));
    let d: Value = serde_json::from_str(&e.detail).unwrap();
    assert_eq!(d["redirect_uri"], "https://typo.example.com/cb");
    assert_eq!(d["registered_redirect_uris"], serde_json::json!([CB]));
    assert!(d["reason"].as_str().unwrap().contains("not registered"));
}

/// `mfa_required_roles = ["admn"]` would exempt administrators from the
/// second factor: a near miss of an existing role is refused with the right
/// name; a role that does not exist yet is only warned about.
#[tokio::test]
async fn a_typo_in_a_setting_that_names_roles_is_refused() {
    let db = TestDb::new().await;
    let mut settings = db.settings();
    settings.mfa_required_roles = vec!["admn".into()];
    let e = portcullis::state::AppState::build(settings, portcullis::clock::Clock::System).await.unwrap_err();
    assert!(e.to_string().contains(r#"did you mean "admin"?"#), "{e}");
    let mut settings = db.settings();
    settings.mfa_required_roles = vec!["admin".into(), "treasury".into()];
    assert!(portcullis::state::AppState::build(settings, portcullis::clock::Clock::System).await.is_ok());
}

/// CONTRACTS `client update`: each option given replaces that field, the
/// rest stay; bad input is one line and writes nothing; `client delete` is
/// `client remove`.
#[tokio::test]
async fn the_cli_updates_clients_field_by_field_and_deletes_them() {
    let db = TestDb::new().await;
    let add = db.cli(
        &[
            "client",
            "add",
            "webapp",
            "--redirect-uri",
            "https://app.example.com/cb",
            "--scope",
            "profile",
            "--first-party",
        ],
        None,
    );
    assert!(add.status.success(), "{}", crate::helpers::stderr(&add));
    let out = db.cli(
        &[
            "client",
            "update",
            "webapp",
            "--name",
            "Web app",
            "--scope",
            "email",
            "--scope",
            "profile",
            "--first-party=false",
            "--json",
        ],
        None,
    );
    assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "Web app");
    assert_eq!(v["first_party"], false);
    assert_eq!(v["scopes"], serde_json::json!(["email", "profile"]));
    assert_eq!(v["redirect_uris"], serde_json::json!(["https://app.example.com/cb"]), "untouched");

    let bad = db.cli(&["client", "update", "webapp", "--redirect-uri", "http://evil.example/cb"], None);
    crate::helpers::assert_clean_failure(&bad, "redirect_uri");
    let show: Value = serde_json::from_slice(&db.cli(&["client", "show", "webapp", "--json"], None).stdout).unwrap();
    assert_eq!(show["redirect_uris"], serde_json::json!(["https://app.example.com/cb"]), "nothing written");
    let missing = db.cli(&["client", "update", "nobody", "--name", "x"], None);
    crate::helpers::assert_clean_failure(&missing, "does not exist");

    assert!(db.cli(&["client", "delete", "webapp"], None).status.success());
    let list = db.cli(&["client", "list", "--json"], None);
    assert!(!crate::helpers::stdout(&list).contains("webapp"));
}

/// Erasure (GDPR art. 17; CONTRACTS `user delete`): sessions and tokens end,
/// the account is gone, the audit trail keeps the events under a pseudonym
/// and names the person nowhere; the last administrator stays.
#[tokio::test]
async fn erasing_a_user_ends_their_access_and_pseudonymises_the_audit_trail() {
    use crate::oauth::{PW, exchange, get_code};
    let app = spawn_app().await;
    app.create_user("boss", "violet anvil tramline 2", &["admin"]).await;
    let id = app.create_user("gone", PW, &[]).await;
    let secret = register(&app, web_client("webapp")).await.unwrap();
    let b = app.browser();
    let (code, verifier) = get_code(&app, &b, "webapp", "gone", "").await;
    let (_, t) = exchange(&app, "webapp", &secret, &code, &verifier).await;
    app.login(&app.browser(), "gone", "a wrong password").await; // an audit record naming "gone"

    let writer = {
        let aud = format!("{}/admin", app.address);
        let _ = portcullis::admin::roles::add(&app.state, &portcullis::admin::Actor::cli(), "users:write", None).await;
        let s = register(
            &app,
            portcullis::admin::clients::ClientSpec {
                client_id: "ops".into(),
                grants: vec!["client_credentials".into()],
                roles: vec!["users:write".into()],
                resources: vec![aud.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let (_, v, _) =
            token_req(&app, Some(("ops", &s)), &[("grant_type", "client_credentials"), ("resource", &aud)]).await;
        v["access_token"].as_str().unwrap().to_owned()
    };
    // The trail is sealed into the hash chain before the erasure rewrites it.
    let key = app.state.master_key.audit_key();
    let (sealed, _) = portcullis::storage::audit_chain::seal(&app.state.db, key).await.unwrap();
    assert!(sealed > 0);
    let r =
        reqwest::Client::new().delete(app.url("/admin/api/v1/users/gone")).bearer_auth(&writer).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The chain still holds: the rewritten records are counted as redacted.
    portcullis::storage::audit_chain::seal(&app.state.db, key).await.unwrap();
    match portcullis::storage::audit_chain::verify(&app.state.db, key).await.unwrap() {
        portcullis::storage::audit_chain::Verdict::Intact { redacted, .. } => assert!(redacted > 0),
        broken => panic!("erasure broke the chain: {broken:?}"),
    }
    let pseudonym = r.json::<Value>().await.unwrap()["pseudonym"].as_str().unwrap().to_owned();

    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 303, "the session ended");
    let (s, _, _) = token_req(
        &app,
        Some(("webapp", &secret)),
        &[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(s, 400, "the refresh token ended");
    assert!(portcullis::admin::users::show(&app.state, &portcullis::admin::Actor::cli(), "gone").await.is_err());
    let events = audit_event::Entity::find().all(&app.state.db).await.unwrap();
    for e in &events {
        let row = format!("{:?} {:?} {}", e.user_id, e.actor, e.detail);
        assert!(!row.contains(&id) && !row.contains("\"username\":\"gone\""), "the trail still names them: {row}");
    }
    assert!(
        events.iter().any(|e| e.user_id.as_deref() == Some(pseudonym.as_str()) && e.event_type == "login.password")
    );
    assert!(events.iter().any(|e| e.event_type == "user.deleted"));
    // (user.deleted itself carries the administrator's address.)
    for e in
        events.iter().filter(|e| e.user_id.as_deref() == Some(pseudonym.as_str()) && e.event_type != "user.deleted")
    {
        assert!(e.ip.is_none() && e.user_agent.is_none(), "addresses and browsers go too: {e:?}");
    }

    // The CLI does the same; the last administrator cannot be erased.
    app.create_user("temp", PW, &[]).await;
    assert!(app.db.cli(&["user", "delete", "temp"], None).status.success());
    crate::helpers::assert_clean_failure(&app.db.cli(&["user", "delete", "boss"], None), "last enabled administrator");
}
