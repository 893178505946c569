use portcullis::storage::entities::{audit_event, recovery_code, session, totp_credential};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use totp_rs::{Builder, Secret, Totp};

pub use crate::helpers::location;
use crate::helpers::{TestApp, TestDb, csrf_in, spawn_app, spawn_app_with};

pub const PW: &str = "violet anvil tramline";

/// The value of an element's text or a hidden input, found by a marker.
pub fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html.find(start).unwrap_or_else(|| panic!("{start} not in {html}")) + start.len();
    let j = html[i..].find(end).unwrap() + i;
    &html[i..j]
}

pub fn seed(secret_b32: &str) -> Vec<u8> {
    Secret::try_from_base32(secret_b32).unwrap().as_ref().to_vec()
}

/// An authenticator app: RFC 6238 defaults (SHA-1, 6 digits, 30 s).
pub fn totp(secret_b32: &str) -> Totp {
    Builder::new().with_secret(seed(secret_b32)).build().unwrap()
}

/// The code for `app`'s clock, shifted by `steps` × 30 s.
pub fn code_at(app: &TestApp, secret_b32: &str, steps: i64) -> String {
    let t = app.state.clock.now().timestamp() + steps * 30;
    totp(secret_b32).generate(t as u64).to_string()
}

/// Logs in with the password, enrols TOTP from the account page, and returns
/// the secret and the recovery codes. The browser stays logged in.
pub async fn enrol(app: &TestApp, b: &reqwest::Client, user: &str) -> (String, Vec<String>) {
    assert_eq!(app.login(b, user, PW).await.status(), 303);
    let page = b.get(app.url("/account/mfa")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<svg"), "an inline SVG QR code");
    assert!(page.contains(r#"autocomplete="one-time-code""#));
    assert!(page.contains(r#"href="/logout""#), "a way to log out");
    let secret = between(&page, r#"<code id="totp-secret">"#, "</code>").to_owned();
    let enrolment = between(&page, r#"name="enrolment" value=""#, "\"").to_owned();
    let code = code_at(app, &secret, 0);
    let r = b
        .post(app.url("/account/mfa"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("enrolment", enrolment.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let codes: Vec<String> =
        html.split("<li><code>").skip(1).map(|s| s.split("</code>").next().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 10, "{html}");
    for c in &codes {
        // 25 base32 characters: 125 bits (ASVS V6.5.2 wants ≥ 112 under a keyed hash).
        assert_eq!(c.replace('-', "").len(), 25, "{c}");
    }
    assert!(html.contains(r#"href="/logout""#), "a way to log out");
    (secret, codes)
}

pub async fn logout(app: &TestApp, b: &reqwest::Client) {
    let html = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    b.post(app.url("/logout")).form(&[("csrf", csrf_in(&html))]).send().await.unwrap();
}

/// Submits a code at the MFA step; the browser must be past the password.
pub async fn submit_code(app: &TestApp, b: &reqwest::Client, code: &str) -> reqwest::Response {
    let page = b.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    b.post(app.url("/login/mfa")).form(&[("csrf", csrf_in(&page).as_str()), ("code", code)]).send().await.unwrap()
}

#[tokio::test]
async fn a_user_enrols_totp_and_then_needs_a_code_to_log_in() {
    let app = spawn_app().await;
    let id = app.create_user("sara", PW, &[]).await;
    let b = app.browser();
    let (secret, _) = enrol(&app, &b, "sara").await;
    logout(&app, &b).await;

    let r = app.login(&b, "sara", PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login/mfa", "the password alone is not enough");
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 303, "no session yet");
    let page = b.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"autocomplete="one-time-code""#));

    let r = submit_code(&app, &b, "000000").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Login failed"));

    app.state.clock.advance(chrono::Duration::seconds(30));
    let r = submit_code(&app, &b, &code_at(&app, &secret, 0)).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/account");
    let s = session::Entity::find().filter(session::Column::UserId.eq(&id)).one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(s.amr, r#"["pwd","otp"]"#);
    assert_eq!(s.acr.as_deref(), Some("2"));
}

#[tokio::test]
async fn the_totp_secret_is_not_stored_in_plain_text() {
    let app = spawn_app().await;
    let id = app.create_user("tim", PW, &[]).await;
    let (secret, _) = enrol(&app, &app.browser(), "tim").await;
    let row = totp_credential::Entity::find_by_id(id.as_str()).one(&app.state.db).await.unwrap().unwrap();
    let raw = seed(&secret);
    assert!(!row.secret.windows(raw.len()).any(|w| w == raw.as_slice()), "raw seed in the row");
    assert!(!String::from_utf8_lossy(&row.secret).contains(&secret), "base32 seed in the row");
    assert!(row.secret.len() > raw.len() + 16, "an AEAD envelope");
}

#[tokio::test]
async fn a_code_is_accepted_once_with_one_step_of_skew() {
    let app = spawn_app().await;
    app.create_user("uma", PW, &[]).await;
    let b = app.browser();
    let (secret, _) = enrol(&app, &b, "uma").await;
    logout(&app, &b).await;
    app.state.clock.advance(chrono::Duration::seconds(90));

    // One step behind (a slow phone) is accepted...
    app.login(&b, "uma", PW).await;
    let behind = code_at(&app, &secret, -1);
    assert_eq!(submit_code(&app, &b, &behind).await.status(), 303);
    logout(&app, &b).await;
    // ...but not twice: the step is spent, here and on every other instance.
    let other = app.browser();
    app.login(&other, "uma", PW).await;
    assert!(submit_code(&app, &other, &behind).await.text().await.unwrap().contains("Login failed"));
    // Nor is a code two steps off.
    assert!(
        submit_code(&app, &other, &code_at(&app, &secret, -2)).await.text().await.unwrap().contains("Login failed")
    );
    assert!(submit_code(&app, &other, &code_at(&app, &secret, 2)).await.text().await.unwrap().contains("Login failed"));
    // One step ahead (a fast phone) is fine.
    assert_eq!(submit_code(&app, &other, &code_at(&app, &secret, 1)).await.status(), 303);
}

#[tokio::test]
async fn a_recovery_code_works_once_and_is_audited() {
    let app = spawn_app().await;
    let id = app.create_user("vic", PW, &[]).await;
    let b = app.browser();
    let (_, codes) = enrol(&app, &b, "vic").await;
    logout(&app, &b).await;

    app.login(&b, "vic", PW).await;
    let r = submit_code(&app, &b, &codes[3].to_uppercase()).await;
    assert_eq!(r.status(), 303, "recovery codes are case-insensitive");
    let html = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Recovery codes left: <strong>9</strong>"), "{html}");
    logout(&app, &b).await;

    app.login(&b, "vic", PW).await;
    assert!(submit_code(&app, &b, &codes[3]).await.text().await.unwrap().contains("Login failed"), "spent");
    let used = recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(&id))
        .filter(recovery_code::Column::UsedMs.is_not_null())
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(used, 1);
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq("mfa.recovery_code_used"))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn malformed_codes_are_a_plain_failure() {
    let app = spawn_app().await;
    app.create_user("walt", PW, &[]).await;
    let b = app.browser();
    let (secret, _) = enrol(&app, &b, "walt").await;
    logout(&app, &b).await;
    app.state.clock.advance(chrono::Duration::seconds(30));
    app.login(&b, "walt", PW).await;
    let good = code_at(&app, &secret, 0);
    let spaced = format!("{} {}", &good[..3], &good[3..]);
    for bad in [spaced.as_str(), "12345", "1234567", "abcdef", "１２３４５６"] {
        let r = submit_code(&app, &b, bad).await;
        assert_eq!(r.status(), 200, "{bad}");
        assert!(r.text().await.unwrap().contains("Login failed"), "{bad}");
    }
    // Five wrong codes end the challenge: back to the password.
    let r = b.get(app.url("/login/mfa")).send().await.unwrap();
    assert_eq!(location(&r), "/login");
}

#[tokio::test]
async fn wrong_codes_count_towards_the_account_lock() {
    let app = spawn_app_with(TestDb::new().await, |s| s.login_max_failures = 3).await;
    app.create_user("xena", PW, &[]).await;
    let b = app.browser();
    let (secret, _) = enrol(&app, &b, "xena").await;
    logout(&app, &b).await;
    let attacker = app.browser();
    app.login(&attacker, "xena", PW).await; // a stolen password
    for _ in 0..3 {
        submit_code(&app, &attacker, "000000").await;
    }
    // Locked now: the right password from a new browser fails...
    let fresh = app.browser();
    assert_eq!(app.login(&fresh, "xena", PW).await.status(), 200);
    // ...but the owner's browser, which completed a login before, still gets
    // in with password and code.
    app.state.clock.advance(chrono::Duration::seconds(30));
    assert_eq!(location(&app.login(&b, "xena", PW).await), "/login/mfa");
    assert_eq!(submit_code(&app, &b, &code_at(&app, &secret, 0)).await.status(), 303);
}

#[tokio::test]
async fn policy_forces_enrolment_at_login_for_admins() {
    let app = spawn_app().await;
    let id = app.create_user("yara", "violet anvil tramline 2", &["admin"]).await;
    let b = app.browser();
    let r = app.login(&b, "yara", "violet anvil tramline 2").await;
    assert_eq!(location(&r), "/login/enrol");
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 303, "no session before enrolment");
    let page = b.get(app.url("/login/enrol")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("requires two-step verification"));
    let secret = between(&page, r#"<code id="totp-secret">"#, "</code>").to_owned();
    let enrolment = between(&page, r#"name="enrolment" value=""#, "\"").to_owned();

    // A tampered enrolment reference is refused with a clear message.
    let code = code_at(&app, &secret, 0);
    let r = b
        .post(app.url("/login/enrol"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("enrolment", "forged"), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("out of date"));

    let r = b
        .post(app.url("/login/enrol"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("enrolment", enrolment.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("recovery-codes"));
    let s = session::Entity::find().filter(session::Column::UserId.eq(&id)).one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(s.amr, r#"["pwd","otp"]"#);
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 200);

    // The old form, submitted again, is stale: the enrolment it names is gone.
    let r = b
        .post(app.url("/account/mfa"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("enrolment", enrolment.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.status() == 200 || r.status() == 400);
}

#[tokio::test]
async fn turning_mfa_off_needs_the_password_and_admins_cannot() {
    let app = spawn_app().await;
    app.create_user("zed", PW, &[]).await;
    let b = app.browser();
    let (secret, _) = enrol(&app, &b, "zed").await;
    app.state.clock.advance(chrono::Duration::seconds(30)); // the enrolment spent this step's code
    let code = code_at(&app, &secret, 0);
    let html = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_in(&html);
    // Both factors are needed (ASVS V7.5.1): a wrong password, or the
    // password without a code, is refused.
    for form in [
        vec![("csrf", csrf.as_str()), ("reauth", "not my password"), ("reauth_code", code.as_str())],
        vec![("csrf", csrf.as_str()), ("reauth", PW)],
        vec![("csrf", csrf.as_str()), ("reauth", PW), ("reauth_code", "000000")],
    ] {
        let r = b.post(app.url("/account/mfa/disable")).form(&form).send().await.unwrap();
        assert!(r.text().await.unwrap().contains("was not correct"));
    }
    let r = b
        .post(app.url("/account/mfa/disable"))
        .form(&[("csrf", csrf.as_str()), ("reauth", PW), ("reauth_code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/account?m=mfa_disabled");
    logout(&app, &b).await;
    assert_eq!(location(&app.login(&b, "zed", PW).await), "/account", "no second step any more");
}

#[tokio::test]
async fn the_cli_resets_and_imports_totp() {
    let app = spawn_app().await;
    app.create_user("abby", PW, &[]).await;
    let b = app.browser();
    enrol(&app, &b, "abby").await;
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 200);

    let o = app.db.cli(&["user", "reset-mfa", "abby", "--json"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["mfa"], false);
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 303, "sessions ended");

    // A seed from a previous provider keeps working here.
    let seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let o = app.db.cli(&["user", "totp-import", "abby", "--secret-stdin", "--json"], Some(&format!("{seed}\n")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["recovery_codes"].as_array().unwrap().len(), 10);
    let bad = app.db.cli(&["user", "totp-import", "abby", "--secret-stdin"], Some("not base32!\n"));
    crate::helpers::assert_clean_failure(&bad, "base32");

    let b = app.browser();
    assert_eq!(location(&app.login(&b, "abby", PW).await), "/login/mfa");
    assert_eq!(submit_code(&app, &b, &code_at(&app, seed, 0)).await.status(), 303);
    let kinds: Vec<String> =
        audit_event::Entity::find().all(&app.state.db).await.unwrap().into_iter().map(|e| e.event_type).collect();
    assert!(kinds.iter().any(|k| k == "mfa.reset"));
    assert!(kinds.iter().filter(|k| *k == "mfa.enrolled").count() >= 2);
}
