use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_and_readyz_answer_200() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn readyz_answers_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.state.db.clone().close().await.unwrap();
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_a_request_id() {
    let app = spawn_app().await;
    for path in ["/healthz", "/", "/no/such/page", "/static/portcullis.css"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        let h = r.headers();
        let csp = h.get("content-security-policy").unwrap_or_else(|| panic!("CSP on {path}")).to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("object-src 'none'") && csp.contains("base-uri 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h.get("x-request-id").is_some(), "{path}: request id");
        // The issuer here is plain http on loopback: no HSTS.
        assert!(h.get("strict-transport-security").is_none(), "{path}");
    }
}

/// An API client gets JSON; a browser (it asks for HTML) a page with the
/// site's layout; the admin API stays JSON whatever the `Accept`.
#[tokio::test]
async fn an_unknown_route_is_a_plain_404_without_internals() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/does-not-exist")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body = r.text().await.unwrap();
    assert_eq!(body, r#"{"error":"not found"}"#);
    let browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let r = app.http.get(app.url("/does-not-exist")).header("accept", browser_accept).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(page.contains("<title>") && page.contains("Page not found") && page.contains("lang=\"en\""), "{page}");
    let r = app.http.get(app.url("/admin/api/v1/nothing-here")).header("accept", browser_accept).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(!r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
}

#[tokio::test]
async fn the_home_page_renders_the_base_layout_without_inline_script() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("/static/portcullis.css"));
    assert!(!html.contains("<script"), "pages work without JavaScript");
    assert!(!html.contains("style="), "no inline styles (CSP has no unsafe-inline)");
}

/// The fixed documents are answered before the middleware stack
/// (`web::documents`) and, for a path the router only matches once decoded,
/// by the route table: the same bytes and headers either way; other methods
/// get the table's 405.
#[tokio::test]
async fn the_fixed_documents_are_the_same_whichever_way_they_are_reached() {
    let app = spawn_app().await;
    for (literal, encoded) in [
        ("/jwks", "/%6Awks"),
        ("/.well-known/openid-configuration", "/.well-known/openid%2Dconfiguration"),
        ("/.well-known/oauth-authorization-server", "/.well-known/oauth%2Dauthorization-server"),
    ] {
        let a = app.http.get(app.url(literal)).send().await.unwrap();
        let b = app.http.get(app.url(encoded)).send().await.unwrap();
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200), "{literal}");
        for h in ["content-type", "cache-control", "access-control-allow-origin", "content-security-policy"] {
            assert_eq!(a.headers().get(h), b.headers().get(h), "{literal}: {h}");
        }
        assert!(a.headers().get("x-request-id").is_some() && b.headers().get("x-request-id").is_some());
        assert_eq!(a.bytes().await.unwrap(), b.bytes().await.unwrap(), "{literal}");
        let r = app.http.post(app.url(literal)).send().await.unwrap();
        assert_eq!(r.status(), 405, "{literal}");
    }
}

/// One request, one instant (`clock::request_scope`): a password login reads
/// the time before the argon2 check (its audit record) and after it (the
/// session), and both carry the same instant, on the real clock.
#[tokio::test]
async fn a_request_sees_one_instant_however_long_it_takes() {
    use portcullis::storage::entities::{audit_event, session};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let db = crate::helpers::TestDb::new().await;
    let app = crate::helpers::spawn_app_on_clock(db, portcullis::clock::Clock::System, |_| {}).await;
    app.create_user("ida", "violet anvil tramline", &[]).await;
    let r = app.login(&app.browser(), "ida", "violet anvil tramline").await;
    assert_eq!(r.status(), 303);
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq("login.password"))
        .filter(audit_event::Column::Outcome.eq("success"))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    let s = session::Entity::find().one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(audited.at, s.created_at, "the audit record and the session it made");
    assert_eq!(s.auth_time, s.created_at.timestamp());
}

/// Every state-changing form of the account pages takes `SignedInForm`: no
/// session sends the browser to the login page, and a session with a forged
/// CSRF token gets the expired-form page — whatever the form, before it
/// does anything.
#[tokio::test]
async fn every_account_form_needs_the_session_and_then_its_csrf_token() {
    const FORMS: [&str; 13] = [
        "/account/password",
        "/account/sessions/end",
        "/account/consents/revoke",
        "/account/profile",
        "/account/email",
        "/account/email/verify",
        "/account/mfa",
        "/account/mfa/disable",
        "/account/mfa/recovery",
        "/account/passkeys/rename",
        "/account/passkeys/remove",
        "/account/upstream/corp/link",
        "/account/upstream/corp/unlink",
    ];
    let app = spawn_app().await;
    app.create_user("ida", "violet anvil tramline", &[]).await;
    let signed_in = app.browser();
    assert_eq!(app.login(&signed_in, "ida", "violet anvil tramline").await.status(), 303);
    // Every field any of these forms requires, so that each form reads and
    // the refusal is the guard's, not the form parser's.
    let fields = [
        ("csrf", "forged"),
        ("current_password", "violet anvil tramline"),
        ("new_password", "another fine passphrase"),
        ("password", "violet anvil tramline"),
        ("session", "x"),
        ("client", "x"),
        ("new_email", "ida@example.com"),
        ("id", "x"),
        ("name", "x"),
    ];
    for path in FORMS {
        let anonymous = app.browser().post(app.url(path)).form(&fields).send().await.unwrap();
        assert_eq!(anonymous.status(), 303, "{path}");
        let to = anonymous.headers()["location"].to_str().unwrap().to_owned();
        assert!(to.starts_with("/login"), "{path}: {to}");
        let forged = signed_in.post(app.url(path)).form(&fields).send().await.unwrap();
        assert_eq!(forged.status(), 400, "{path}");
        assert!(forged.text().await.unwrap().contains("This form has expired"), "{path}");
    }
}

/// Every page that needs a session takes it before its handler runs: a
/// browser without one is sent to the login page and brought back after it
/// (the next-page cookie names the page); a browser whose session ended is
/// told so; a signed-in browser gets the page.
#[tokio::test]
async fn every_signed_in_page_sends_a_browser_without_a_session_to_the_login_page() {
    const PAGES: [&str; 3] = ["/account", "/account/mfa", "/device"];
    let app = spawn_app().await;
    app.create_user("ida", "violet anvil tramline", &[]).await;
    let signed_in = app.browser();
    assert_eq!(app.login(&signed_in, "ida", "violet anvil tramline").await.status(), 303);
    let ended = app.browser();
    app.login(&ended, "ida", "violet anvil tramline").await;
    let csrf = app.csrf_from(&ended, "/account").await;
    let r = ended.post(app.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    for path in PAGES {
        let anonymous = app.browser().get(app.url(path)).send().await.unwrap();
        assert_eq!(
            (anonymous.status().as_u16(), crate::helpers::location(&anonymous).as_str()),
            (303, "/login"),
            "{path}"
        );
        let next = anonymous
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|c| c.contains(&format!("={}", path.replace('/', "%2F"))) || c.contains(&format!("={path}")));
        assert!(next, "{path}: the login brings the browser back here");
        let r = ended.get(app.url(path)).send().await.unwrap();
        assert!(crate::helpers::location(&r).starts_with("/login"), "{path}");
        assert_eq!(signed_in.get(app.url(path)).send().await.unwrap().status(), 200, "{path}");
    }
}
