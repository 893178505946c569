use std::time::{Duration, Instant};

use portcullis::storage::entities::{audit_event, login_throttle, session, user};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use crate::helpers::{TestDb, csrf_in, spawn_app, spawn_app_with};

const PW: &str = "violet anvil tramline";

fn location(r: &reqwest::Response) -> &str {
    r.headers().get("location").map(|v| v.to_str().unwrap()).unwrap_or("")
}

fn set_cookie<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
}

#[tokio::test]
async fn the_login_page_has_the_contract_fields_and_a_csrf_token() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csrf_cookie = set_cookie(&r, "portcullis_csrf").expect("a CSRF cookie").to_owned();
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"), "{csrf_cookie}");
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"autocomplete="username""#));
    assert!(html.contains(r#"autocomplete="current-password""#));
    assert_eq!(html.matches(r#"type="submit""#).count(), 1, "one submit button");
    assert!(csrf_in(&html).starts_with("hmac-sha256$"), "the field is a MAC of the cookie, not the cookie");
    assert!(!html.contains("Login failed"));
}

#[tokio::test]
async fn a_user_logs_in_lands_on_the_account_page_and_logs_out() {
    let app = spawn_app().await;
    let user_id = app.create_user("grace", PW, &[]).await;
    let b = app.browser();

    let r = app.login(&b, "grace", PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/account");
    let cookie = set_cookie(&r, "portcullis_session").expect("session cookie").to_owned();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(!cookie.contains("Max-Age") && !cookie.contains("Expires"), "a browser-session cookie: {cookie}");

    let r = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("grace"));
    assert!(html.contains(r#"autocomplete="new-password""#));
    assert!(html.contains("this browser"));

    // The session row stores a hash of the cookie, never the cookie.
    let rows = session::Entity::find().filter(session::Column::UserId.eq(&user_id)).all(&app.state.db).await.unwrap();
    assert_eq!(rows.len(), 1);
    let cookie_value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert!(!rows[0].token_hash.contains(cookie_value));
    assert_eq!(rows[0].amr, r#"["pwd"]"#);

    let csrf = csrf_in(&html);
    let r = b.post(app.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login?m=logged_out");
    let r = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!(r.status(), 303, "logged out");
    assert_eq!(session::Entity::find().count(&app.state.db).await.unwrap(), 0);

    let kinds: Vec<String> =
        audit_event::Entity::find().all(&app.state.db).await.unwrap().into_iter().map(|e| e.event_type).collect();
    for k in ["login.password", "session.created", "logout"] {
        assert!(kinds.iter().any(|e| e == k), "{k} not audited: {kinds:?}");
    }
}

#[tokio::test]
async fn every_kind_of_failed_login_gives_the_same_page() {
    let app = spawn_app_with(TestDb::new().await, |s| s.login_max_failures = 3).await;
    app.create_user("heidi", PW, &[]).await;
    app.create_user("ivan", PW, &[]).await;
    app.create_user("locked", PW, &[]).await;
    portcullis::admin::users::set_disabled(&app.state, &portcullis::admin::Actor::cli(), "ivan", true).await.unwrap();
    let b = app.browser();
    for _ in 0..3 {
        app.login(&b, "locked", "wrong password!").await;
    }

    let mut pages = Vec::new();
    for (user, pw) in [
        ("nobody-here", PW),             // unknown user
        ("heidi", "not her password"),   // wrong password
        ("ivan", PW),                    // disabled account, right password
        ("locked", PW),                  // locked account, right password
        (&"x".repeat(2000) as &str, PW), // over-long input
    ] {
        let r = app.login(&b, user, pw).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(body.contains("Login failed"), "{user}");
        pages.push((user.chars().take(12).collect::<String>(), status, body));
    }
    for (user, status, body) in &pages[1..] {
        assert_eq!(*status, pages[0].1, "status for {user}");
        assert_eq!(*body, pages[0].2, "body for {user} differs from the unknown-user body");
    }

    // Only the audit log knows why.
    let reasons: Vec<String> = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq("login.password"))
        .order_by_asc(audit_event::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.detail).unwrap()["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        &reasons[reasons.len() - 5..],
        ["unknown_user", "bad_password", "disabled", "locked", "malformed_input"]
    );
}

/// The response time must not tell whether a username exists: verify against
/// a dummy hash for unknown users. Medians of interleaved samples, compared
/// within one run (machines here are shared and noisy).
#[tokio::test]
async fn unknown_users_and_wrong_passwords_take_the_same_time() {
    let app = spawn_app_with(TestDb::new().await, |s| {
        s.login_max_failures = 10_000;
        s.login_ip_max_attempts = 10_000;
    })
    .await;
    app.create_user("judy", PW, &[]).await;
    let b = app.browser();
    let csrf = app.csrf_from(&b, "/login").await;
    let attempt = |user: &'static str| {
        let b = b.clone();
        let url = app.url("/login");
        let csrf = csrf.clone();
        async move {
            let start = Instant::now();
            let r = b
                .post(url)
                .form(&[("csrf", csrf.as_str()), ("username", user), ("password", "wrong-password")])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap();
            start.elapsed()
        }
    };
    fn median(mut v: Vec<Duration>) -> f64 {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    }
    // Warm up both paths.
    attempt("judy").await;
    attempt("no-such-user").await;
    let mut last = (0.0, 0.0);
    for _round in 0..3 {
        let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
        for i in 0..21 {
            if i % 2 == 0 {
                unknown.push(attempt("no-such-user").await);
                wrong.push(attempt("judy").await);
            } else {
                wrong.push(attempt("judy").await);
                unknown.push(attempt("no-such-user").await);
            }
        }
        let (u, w) = (median(unknown), median(wrong));
        last = (u, w);
        if (u - w).abs() / w.max(u) <= 0.10 {
            return;
        }
    }
    panic!(
        "medians differ by more than 10% in every round: unknown {:.2} ms, wrong password {:.2} ms",
        last.0 * 1e3,
        last.1 * 1e3
    );
}

#[tokio::test]
async fn fifty_concurrent_wrong_passwords_lock_the_account_while_healthz_stays_prompt() {
    let app = spawn_app().await;
    app.create_user("karl", PW, &[]).await;
    let b = app.browser();
    let csrf = app.csrf_from(&b, "/login").await;
    let health = reqwest::Client::new();
    let probe = |n: usize| {
        let health = health.clone();
        let url = app.url("/healthz");
        async move {
            let mut v = Vec::new();
            for _ in 0..n {
                let t = Instant::now();
                assert_eq!(health.get(&url).send().await.unwrap().status(), 200);
                v.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            v.sort();
            v[v.len() / 2]
        }
    };
    let idle = probe(20).await;

    let t = Instant::now();
    let mut attempts = Vec::new();
    for _ in 0..50 {
        let b = b.clone();
        let url = app.url("/login");
        let csrf = csrf.clone();
        attempts.push(tokio::spawn(async move {
            let r = b
                .post(url)
                .form(&[("csrf", csrf.as_str()), ("username", "karl"), ("password", "guess-guess")])
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        }));
    }
    let under_load = probe(20).await;
    for a in attempts {
        let (status, body) = a.await.unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("Login failed"));
    }
    let flood = t.elapsed();

    // Locked, and the lock held: at most `login_max_failures` passwords were
    // actually checked; the rest were refused as locked.
    let row = login_throttle::Entity::find_by_id("karl").one(&app.state.db).await.unwrap().unwrap();
    assert!(row.locked_until_ms.unwrap() > app.state.clock.now().timestamp_millis());
    let checked = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq("login.password"))
        .filter(audit_event::Column::Detail.contains("bad_password"))
        .count(&app.state.db)
        .await
        .unwrap();
    assert!(checked <= 5, "{checked} passwords were checked past the limit");
    // A correct password is refused now too (same generic page).
    let r = app.login(&app.browser(), "karl", PW).await;
    assert!(r.text().await.unwrap().contains("Login failed"));

    // /healthz stayed prompt: its median under the flood is a small fraction of
    // the flood itself and within a generous multiple of its idle latency.
    println!("healthz idle {idle:?}, under load {under_load:?}, flood {flood:?}");
    assert!(under_load < flood / 10, "healthz {under_load:?} vs flood {flood:?}");
    assert!(under_load < idle * 50 + Duration::from_millis(20), "healthz {under_load:?} vs idle {idle:?}");
}

#[tokio::test]
async fn a_trusted_browser_gets_past_a_lock_that_others_caused() {
    let app = spawn_app_with(TestDb::new().await, |s| s.login_max_failures = 3).await;
    app.create_user("lena", PW, &[]).await;
    let own = app.browser();
    let r = app.login(&own, "lena", PW).await;
    assert_eq!(r.status(), 303);
    assert!(set_cookie(&r, "portcullis_device").is_some(), "a device cookie after success");
    let html = own.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    own.post(app.url("/logout")).form(&[("csrf", csrf_in(&html))]).send().await.unwrap();

    let attacker = app.browser();
    for _ in 0..5 {
        app.login(&attacker, "lena", "guessing").await;
    }
    let r = app.login(&app.browser(), "lena", PW).await;
    assert_eq!(r.status(), 200, "a new browser is locked out");
    let r = app.login(&own, "lena", PW).await;
    assert_eq!(r.status(), 303, "the user's own browser still gets in");
    assert_eq!(location(&r), "/account");
}

#[tokio::test]
async fn the_cli_unlocks_a_locked_account() {
    let app = spawn_app_with(TestDb::new().await, |s| s.login_max_failures = 2).await;
    app.create_user("mona", PW, &[]).await;
    for _ in 0..3 {
        app.login(&app.browser(), "mona", "nope nope").await;
    }
    let shown = app.db.cli(&["user", "show", "mona", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(v["locked_until_ms"].is_i64(), "{v}");
    let o = app.db.cli(&["user", "unlock", "mona", "--json"], None);
    assert!(o.status.success());
    let r = app.login(&app.browser(), "mona", PW).await;
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn too_many_attempts_from_one_address_get_429() {
    let app = spawn_app_with(TestDb::new().await, |s| s.login_ip_max_attempts = 3).await;
    let b = app.browser();
    for _ in 0..3 {
        assert_eq!(app.login(&b, "someone", "whatever1").await.status(), 200);
    }
    let r = app.login(&b, "someone", "whatever1").await;
    assert_eq!(r.status(), 429);
    assert!(!r.text().await.unwrap().contains("Login failed"));
}

#[tokio::test]
async fn forged_stale_or_malformed_forms_are_refused_without_writes() {
    let app = spawn_app().await;
    app.create_user("nina", PW, &[]).await;
    let b = app.browser();
    let csrf = app.csrf_from(&b, "/login").await;
    let post = |body: Vec<u8>| {
        let b = b.clone();
        let url = app.url("/login");
        async move {
            b.post(url).header("content-type", "application/x-www-form-urlencoded").body(body).send().await.unwrap()
        }
    };
    // No CSRF token, a wrong one, a cross-origin post.
    let r = post(format!("username=nina&password={PW}").into_bytes()).await;
    assert_eq!(r.status(), 400);
    let r = post(format!("csrf={}&username=nina&password=x", "A".repeat(43)).into_bytes()).await;
    assert_eq!(r.status(), 400);
    let r = b
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("username", "nina"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Invalid UTF-8, a duplicated field, a missing field.
    let mut raw = format!("csrf={csrf}&username=").into_bytes();
    raw.extend_from_slice(&[0xff, 0xfe]);
    raw.extend_from_slice(b"&password=x");
    let r = post(raw).await;
    assert_eq!(r.status(), 400);
    let r = post(format!("csrf={csrf}&username=nina&username=x&password=x").into_bytes()).await;
    assert_eq!(r.status(), 400);
    let r = post(format!("csrf={csrf}&username=nina").into_bytes()).await;
    assert_eq!(r.status(), 400);
    // An HTML payload as username: a generic failure, nothing reflected.
    let r = app.login(&b, "<script>alert(1)</script>", PW).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("Login failed") && !body.contains("<script>alert"));
    // A replayed form from before a login is stale once the login rotated the token.
    let old = app.csrf_from(&b, "/login").await;
    assert_eq!(app.login(&b, "nina", PW).await.status(), 303);
    let r = b.post(app.url("/logout")).form(&[("csrf", old.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 400);

    assert_eq!(user::Entity::find().count(&app.state.db).await.unwrap(), 1);
    assert_eq!(session::Entity::find().count(&app.state.db).await.unwrap(), 1, "only the one real login");
}

#[tokio::test]
async fn logging_in_again_replaces_the_session_id() {
    let app = spawn_app().await;
    app.create_user("omar", PW, &[]).await;
    let b = app.browser();
    let first = app.login(&b, "omar", PW).await;
    let c1 = set_cookie(&first, "portcullis_session").unwrap().split(';').next().unwrap().to_owned();
    // Visiting /login with a live session goes to the account page...
    let r = b.get(app.url("/login")).send().await.unwrap();
    assert_eq!(location(&r), "/account");
    // ...and an explicit new login issues a new id and ends the old session.
    let csrf = csrf_in(&b.get(app.url("/account")).send().await.unwrap().text().await.unwrap());
    let r = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("username", "omar"), ("password", PW)])
        .send()
        .await
        .unwrap();
    let c2 = set_cookie(&r, "portcullis_session").unwrap().split(';').next().unwrap().to_owned();
    assert_ne!(c1, c2);
    assert_eq!(session::Entity::find().count(&app.state.db).await.unwrap(), 1);
}

#[tokio::test]
async fn sessions_end_after_the_idle_limit() {
    let app = spawn_app().await;
    app.create_user("pia", PW, &[]).await;
    let b = app.browser();
    app.login(&b, "pia", PW).await;
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 200);
    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.session_idle_secs + 1));
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 303);
    assert_eq!(session::Entity::find().count(&app.state.db).await.unwrap(), 0, "deleted on sight");
}

#[tokio::test]
async fn changing_the_password_applies_the_policy_and_ends_other_sessions() {
    let app = spawn_app().await;
    app.create_user("quinn", PW, &[]).await;
    let (laptop, phone) = (app.browser(), app.browser());
    app.login(&laptop, "quinn", PW).await;
    app.login(&phone, "quinn", PW).await;
    let change = |current: &'static str, new: &'static str| {
        let laptop = laptop.clone();
        let url = app.url("/account/password");
        let page = app.url("/account");
        async move {
            let csrf = csrf_in(&laptop.get(page).send().await.unwrap().text().await.unwrap());
            laptop
                .post(url)
                .form(&[("csrf", csrf.as_str()), ("current_password", current), ("new_password", new)])
                .send()
                .await
                .unwrap()
        }
    };
    let r = change("wrong current", "a brand new passphrase").await;
    assert!(r.text().await.unwrap().contains("The current password is not correct."));
    let r = change(PW, "password1").await;
    assert!(r.text().await.unwrap().contains("commonly used"));
    let r = change(PW, "short").await;
    assert!(r.text().await.unwrap().contains("at least 8 characters"));
    let r = change(PW, "a brand new passphrase").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/account?m=password_changed");

    assert_eq!(laptop.get(app.url("/account")).send().await.unwrap().status(), 200, "this session stays");
    assert_eq!(phone.get(app.url("/account")).send().await.unwrap().status(), 303, "the other one ended");
    assert_eq!(app.login(&app.browser(), "quinn", PW).await.status(), 200, "old password refused");
    assert_eq!(app.login(&app.browser(), "quinn", "a brand new passphrase").await.status(), 303);
}
