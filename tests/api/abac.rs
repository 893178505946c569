//! Client access policies (ABAC): evaluated at the authorize step and at every
//! refresh; refusals reach the client as `access_denied` (authorize) or
//! `invalid_grant` (refresh) and are audited with the rule that failed.

use portcullis::admin::Actor;
use portcullis::admin::clients::{ClientPatch, ClientSpec, update};
use portcullis::policy::access::AccessPolicy;
use portcullis::storage::entities::audit_event;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app};
use crate::oauth::{CB, PW, register, token_req, urlencode, walk, web_client};

fn policy(json: &str) -> Option<AccessPolicy> {
    Some(AccessPolicy::parse_json(json).unwrap())
}

async fn set_policy(app: &TestApp, client_id: &str, json: &str) {
    let patch = ClientPatch { access_policy: Some(policy(json)), ..Default::default() };
    update(&app.state, &Actor::cli(), client_id, patch).await.unwrap();
}

fn authorize_url(app: &TestApp, client_id: &str, extra: &str) -> String {
    let ch = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    app.url(&format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=xyz&code_challenge={ch}&code_challenge_method=S256{extra}",
        urlencode(CB)
    ))
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// The last audit event of a type: (user id, detail).
async fn last_event(app: &TestApp, event: &str) -> Option<(Option<String>, Value)> {
    audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq(event))
        .order_by_desc(audit_event::Column::Id)
        .one(&app.state.db)
        .await
        .unwrap()
        .map(|e| (e.user_id, serde_json::from_str(&e.detail).unwrap()))
}

/// Logs `user` in through the client and exchanges the code: the refresh token.
async fn tokens_for(app: &TestApp, client_id: &str, secret: &str, user: &str) -> String {
    let back = walk(app, &app.browser(), &authorize_url(app, client_id, ""), user, PW).await;
    let q = query(&back);
    let code = q.get("code").unwrap_or_else(|| panic!("{user} should be admitted: {back}"));
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
    ];
    let (s, t, _) = token_req(app, Some((client_id, secret)), &form).await;
    assert_eq!(s, 200, "{t}");
    t["refresh_token"].as_str().unwrap().to_owned()
}

async fn refresh(app: &TestApp, client_id: &str, secret: &str, token: &str) -> (u16, Value) {
    let (s, v, _) =
        token_req(app, Some((client_id, secret)), &[("grant_type", "refresh_token"), ("refresh_token", token)]).await;
    (s, v)
}

#[tokio::test]
async fn roles_and_attributes_admit_the_right_users_at_authorize_and_at_refresh() {
    let app = spawn_app().await;
    portcullis::admin::roles::add(&app.state, &Actor::cli(), "finance", None).await.unwrap();
    let alice = app.create_user("alice", PW, &["finance"]).await;
    portcullis::admin::users::set_attribute(&app.state, &Actor::cli(), "alice", "department", "finance").await.unwrap();
    let bob = app.create_user("bob", PW, &["finance"]).await; // right role, wrong department
    let carol = app.create_user("carol", PW, &[]).await; // no role
    let spec = ClientSpec {
        access_policy: policy(r#"{"roles_any":["finance"],"attributes":{"department":["finance"]}}"#),
        ..web_client("ledger")
    };
    let secret = register(&app, spec).await.unwrap();

    // Alice is admitted and gets tokens.
    let rt = tokens_for(&app, "ledger", &secret, "alice").await;

    // Bob and Carol are sent back to the client with access_denied (and the
    // client's state), and the audit log says which rule refused them.
    for (user, id, rule) in [("bob", &bob, "attribute"), ("carol", &carol, "role")] {
        let back = walk(&app, &app.browser(), &authorize_url(&app, "ledger", ""), user, PW).await;
        let q = query(&back);
        assert_eq!(q.get("error").map(String::as_str), Some("access_denied"), "{user}: {back}");
        assert_eq!(q.get("state").map(String::as_str), Some("xyz"));
        assert!(!q.contains_key("code"));
        let (uid, detail) = last_event(&app, "oauth.authorize_denied").await.unwrap();
        assert_eq!(uid.as_deref(), Some(id.as_str()));
        assert_eq!(detail["rule"], rule, "{user}");
    }

    // Alice refreshes while the policy admits her…
    let (s, t) = refresh(&app, "ledger", &secret, &rt).await;
    assert_eq!(s, 200, "{t}");
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    // …loses the role: the next refresh is refused, audited, and the token is not consumed…
    portcullis::admin::users::revoke(&app.state, &Actor::cli(), "alice", "finance").await.unwrap();
    let (s, t) = refresh(&app, "ledger", &secret, &rt).await;
    assert_eq!((s, t["error"].as_str()), (400, Some("invalid_grant")), "{t}");
    let (uid, detail) = last_event(&app, "oauth.refresh_denied").await.unwrap();
    assert_eq!((uid.as_deref(), detail["rule"].as_str()), (Some(alice.as_str()), Some("role")));
    // …and gets it back: the same token works again (it was never rotated).
    portcullis::admin::users::grant(&app.state, &Actor::cli(), "alice", "finance").await.unwrap();
    assert_eq!(refresh(&app, "ledger", &secret, &rt).await.0, 200);
}

#[tokio::test]
async fn networks_are_matched_against_the_caller_address() {
    let app = spawn_app().await;
    app.create_user("dan", PW, &[]).await;
    let secret = register(
        &app,
        ClientSpec { access_policy: policy(r#"{"networks":["127.0.0.0/8"]}"#), ..web_client("intranet") },
    )
    .await
    .unwrap();
    // Tests connect from 127.0.0.1: inside.
    let rt = tokens_for(&app, "intranet", &secret, "dan").await;
    // Only an office network elsewhere: the same user is refused at both steps.
    set_policy(&app, "intranet", r#"{"networks":["10.0.0.0/8","2001:db8::/32"]}"#).await;
    let (s, t) = refresh(&app, "intranet", &secret, &rt).await;
    assert_eq!((s, t["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(last_event(&app, "oauth.refresh_denied").await.unwrap().1["rule"], "network");
    let back = walk(&app, &app.browser(), &authorize_url(&app, "intranet", ""), "dan", PW).await;
    assert_eq!(query(&back)["error"], "access_denied");
    assert_eq!(last_event(&app, "oauth.authorize_denied").await.unwrap().1["rule"], "network");
}

#[tokio::test]
async fn mfa_and_authentication_age_make_the_user_log_in_again_or_refuse_the_refresh() {
    let app = spawn_app().await;
    app.create_user("erin", PW, &[]).await;
    let secret = register(&app, web_client("vault")).await.unwrap();
    let rt = tokens_for(&app, "vault", &secret, "erin").await; // password only

    // Requiring MFA: the password-only grant can no longer refresh…
    set_policy(&app, "vault", r#"{"mfa":true}"#).await;
    let (s, t) = refresh(&app, "vault", &secret, &rt).await;
    assert_eq!((s, t["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(last_event(&app, "oauth.refresh_denied").await.unwrap().1["rule"], "mfa");
    // …and the password-only session is sent to step up at authorize.
    let b = app.browser();
    assert_eq!(app.login(&b, "erin", PW).await.status(), 303);
    let r = b.get(authorize_url(&app, "vault", "")).send().await.unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/login?request="), "step-up expected, got {to}");

    // A maximum authentication age: fresh logins pass, old ones must log in
    // again (prompt=none gets login_required) and cannot refresh.
    set_policy(&app, "vault", r#"{"max_auth_age":600}"#).await;
    let b = app.browser();
    assert_eq!(app.login(&b, "erin", PW).await.status(), 303);
    let r = b.get(authorize_url(&app, "vault", "&prompt=none")).send().await.unwrap();
    assert!(query(r.headers()["location"].to_str().unwrap()).contains_key("code"));
    let (s, _) = refresh(&app, "vault", &secret, &rt).await;
    assert_eq!(s, 200, "a 0-second-old login is within 600 s");
    app.state.clock.advance(chrono::Duration::seconds(601));
    let r = b.get(authorize_url(&app, "vault", "&prompt=none")).send().await.unwrap();
    assert_eq!(query(r.headers()["location"].to_str().unwrap())["error"], "login_required");
}

#[tokio::test]
async fn refresh_after_max_auth_age_is_refused() {
    let app = spawn_app().await;
    app.create_user("fay", PW, &[]).await;
    let secret = register(&app, ClientSpec { access_policy: policy(r#"{"max_auth_age":600}"#), ..web_client("desk") })
        .await
        .unwrap();
    let rt = tokens_for(&app, "desk", &secret, "fay").await;
    app.state.clock.advance(chrono::Duration::seconds(300));
    let (s, t) = refresh(&app, "desk", &secret, &rt).await;
    assert_eq!(s, 200, "{t}");
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    app.state.clock.advance(chrono::Duration::seconds(301));
    let (s, t) = refresh(&app, "desk", &secret, &rt).await;
    assert_eq!((s, t["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(last_event(&app, "oauth.refresh_denied").await.unwrap().1["rule"], "auth_age");
}

/// A policy requiring MFA sends a user who has no authenticator to set one up
/// (never round in circles back to the login page).
#[tokio::test]
async fn a_policy_requiring_mfa_sends_a_user_without_totp_to_enrol() {
    let app = spawn_app().await;
    app.create_user("gus", PW, &[]).await;
    register(&app, ClientSpec { access_policy: policy(r#"{"mfa":true}"#), ..web_client("bank") }).await;
    let b = app.browser();
    let r = b.get(authorize_url(&app, "bank", "")).send().await.unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/login?request="), "{to}");
    let page = b.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    let request = to.trim_start_matches("/login?request=");
    let r = b
        .post(app.url("/login"))
        .form(&[
            ("csrf", crate::helpers::csrf_in(&page).as_str()),
            ("username", "gus"),
            ("password", PW),
            ("request", request),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login/enrol");
}

/// A stored policy that no longer parses (edited by hand in the database)
/// denies everyone: fail closed.
/// A stored access policy that no longer parses (edited by hand) is an error
/// everywhere it is read: the client cannot start a sign-in, its refresh
/// tokens stop working, and an unrelated change to it is refused — with an
/// audit record naming the field and the stored text untouched — so the
/// damage can never be written back as "no policy" (which admits everyone).
/// A change that sets a new policy repairs it.
#[tokio::test]
async fn an_unreadable_stored_policy_is_an_error_everywhere_and_is_never_written_back_as_none() {
    use portcullis::admin::AdminError;
    use portcullis::storage::entities::client;
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let app = spawn_app().await;
    app.create_user("hal", PW, &[]).await;
    let secret = register(&app, web_client("odd")).await.unwrap();
    let refresh_token = tokens_for(&app, "odd", &secret, "hal").await;

    let damaged = r#"{"roles_any": "not a list"}"#;
    let c = client::Entity::find_by_id("odd").one(&app.state.db).await.unwrap().unwrap();
    let mut am = c.into_active_model();
    am.access_policy = Set(Some(damaged.into()));
    am.update(&app.state.db).await.unwrap();
    app.state.clients.invalidate("odd");

    // /authorize: a page, never a code.
    let r = app.browser().get(authorize_url(&app, "odd", "")).send().await.unwrap();
    assert!(r.headers().get("location").is_none(), "no redirect to the client");
    assert!(r.text().await.unwrap().contains("registration cannot be used"));
    // Refresh: refused.
    let (s, body) = refresh(&app, "odd", &secret, &refresh_token).await;
    assert_ne!(s, 200, "{body}");
    assert!(body.get("access_token").is_none());

    // An unrelated change is refused, names the field, and leaves the text.
    let rename = ClientPatch { name: Some(Some("Odd".into())), ..Default::default() };
    match update(&app.state, &Actor::cli(), "odd", rename).await {
        Err(AdminError::Damaged(d)) => assert_eq!(d.field, "access_policy"),
        other => panic!("expected a refusal naming the damaged field, got {other:?}"),
    }
    let stored = client::Entity::find_by_id("odd").one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(stored.access_policy.as_deref(), Some(damaged));
    assert_eq!(stored.name, None);
    let (_, detail) = last_event(&app, "client.update_refused").await.expect("the refusal is audited");
    assert_eq!(detail["field"], "access_policy");
    // Through the admin API the same refusal is a problem naming the field.
    let view = portcullis::admin::clients::show(&app.state, &Actor::cli(), "odd").await;
    assert!(matches!(view, Err(AdminError::Damaged(_))), "reads do not hide it either");

    // Setting a new policy repairs the client.
    set_policy(&app, "odd", r#"{"roles_any": ["staff"]}"#).await;
    let stored = client::Entity::find_by_id("odd").one(&app.state.db).await.unwrap().unwrap();
    assert!(stored.access_policy.unwrap().contains("staff"));
    let back = walk(&app, &app.browser(), &authorize_url(&app, "odd", ""), "hal", PW).await;
    assert_eq!(query(&back)["error"], "access_denied", "hal is not staff");
}

/// Reads are behind a capability too: an actor without `users:read` or
/// `clients:read` is refused by the read services themselves, whichever
/// surface calls them.
#[tokio::test]
async fn read_services_refuse_an_actor_without_the_read_permission() {
    use portcullis::admin::AdminError;
    use portcullis::policy::Permission;
    let app = spawn_app().await;
    app.create_user("hal", PW, &[]).await;
    register(&app, web_client("app")).await;
    let rotator = Actor::system("test", Permission::KeysRotate);
    assert!(matches!(portcullis::admin::users::show(&app.state, &rotator, "hal").await, Err(AdminError::Forbidden(_))));
    assert!(matches!(portcullis::admin::users::list(&app.state, &rotator).await, Err(AdminError::Forbidden(_))));
    assert!(matches!(
        portcullis::admin::clients::show(&app.state, &rotator, "app").await,
        Err(AdminError::Forbidden(_))
    ));
    assert!(matches!(portcullis::admin::clients::list(&app.state, &rotator).await, Err(AdminError::Forbidden(_))));
    assert!(matches!(portcullis::admin::roles::list(&app.state, &rotator).await, Err(AdminError::Forbidden(_))));
    let everything = portcullis::storage::audit::Filter::default();
    assert!(matches!(portcullis::admin::audit_events(&rotator, &everything), Err(AdminError::Forbidden(_))));
    let reader = Actor::system("test", Permission::UsersRead);
    assert_eq!(portcullis::admin::users::show(&app.state, &reader, "hal").await.unwrap().username, "hal");
    assert!(!portcullis::admin::roles::list(&app.state, &reader).await.unwrap().is_empty());
    assert!(matches!(portcullis::admin::audit_events(&reader, &everything), Err(AdminError::Forbidden(_))));
    let auditor = Actor::system("test", Permission::AuditRead);
    assert!(portcullis::admin::audit_events(&auditor, &everything).is_ok());
}

/// An actor who does not control a client (it holds a role the actor lacks)
/// learns nothing from trying to change it — not even that a stored field is
/// damaged, or which: the refusal is the dominance refusal, and no
/// `client.update_refused` record is written for it.
#[tokio::test]
async fn a_damaged_client_is_refused_as_any_other_to_an_actor_who_does_not_control_it() {
    use portcullis::admin::AdminError;
    use portcullis::policy::Permission;
    use portcullis::storage::entities::client;
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let app = spawn_app().await;
    portcullis::admin::roles::add(&app.state, &Actor::cli(), "users:read", None).await.unwrap();
    let spec = ClientSpec { roles: vec!["users:read".into()], ..web_client("held") };
    register(&app, spec).await;
    let c = client::Entity::find_by_id("held").one(&app.state.db).await.unwrap().unwrap();
    let mut am = c.into_active_model();
    am.access_policy = Set(Some("[1]".into()));
    am.update(&app.state.db).await.unwrap();

    let writer = Actor::system("test", Permission::ClientsWrite);
    let rename = ClientPatch { name: Some(Some("x".into())), ..Default::default() };
    let e = update(&app.state, &writer, "held", rename).await.unwrap_err();
    assert!(matches!(e, AdminError::ForbiddenTarget(_)), "{e:?}");
    assert!(last_event(&app, "client.update_refused").await.is_none());
}
