//! Passkeys through the real app, driven by a software authenticator
//! (tests/support/softkey.rs: ES256 with aws-lc-rs, attestation "none"): it
//! can do what a browser would not let an attacker do — replay an assertion,
//! sign for another origin or RP id, skip user verification, send a counter
//! that goes backwards — so each refusal is tested end to end.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

pub use crate::softkey::{Ceremony, SoftKey, sha256};

use crate::helpers::{TestApp, TestDb, spawn_app_at_localhost};

const PW: &str = "violet anvil tramline";

// ------------------------------------------------------------- the browser

pub fn host(app: &TestApp) -> Ceremony<'_> {
    Ceremony { origin: &app.address, rp_id: "localhost", user_verified: true }
}

pub async fn post_json(browser: &reqwest::Client, app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    post_to(browser, &app.address, path, body).await
}

pub async fn post_to(browser: &reqwest::Client, base: &str, path: &str, body: Value) -> (u16, Value) {
    let r = browser.post(format!("{base}{path}")).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Signs in with the password (landing on /account) in a fresh browser.
pub async fn password_session(app: &TestApp, username: &str) -> reqwest::Client {
    let b = app.browser();
    let csrf = app.csrf_from(&b, "/login").await;
    let r = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("username", username), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    b
}

/// Adds a passkey from the account page of a signed-in browser.
pub async fn enrol(app: &TestApp, b: &reqwest::Client, name: &str) -> SoftKey {
    let csrf = app.csrf_from(b, "/account").await;
    let (status, options) = post_json(b, app, "/account/passkeys/start", json!({ "csrf": csrf })).await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(options["publicKey"]["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(options["publicKey"]["authenticatorSelection"]["residentKey"], "preferred");
    assert_eq!(options["publicKey"]["attestation"], "none");
    let (key, response) = SoftKey::register(&options, &host(app));
    let (status, done) =
        post_json(b, app, "/account/passkeys/finish", json!({ "csrf": csrf, "name": name, "credential": response }))
            .await;
    assert_eq!((status, done["location"].as_str()), (200, Some("/account?m=passkey_added")), "{done}");
    key
}

/// Starts a passwordless sign-in in a fresh browser: (browser, csrf, options).
pub async fn passwordless_start(app: &TestApp) -> (reqwest::Client, String, Value) {
    let b = app.browser();
    let csrf = app.csrf_from(&b, "/login").await;
    let (status, options) = post_json(&b, app, "/login/passkey/start", json!({ "csrf": csrf })).await;
    assert_eq!(status, 200, "{options}");
    (b, csrf, options)
}

pub async fn passwordless_finish(app: &TestApp, b: &reqwest::Client, csrf: &str, credential: Value) -> Value {
    let (status, answer) =
        post_json(b, app, "/login/passkey/finish", json!({ "csrf": csrf, "credential": credential })).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// The CSRF token a passkey page gives its script (`data-csrf`).
pub async fn data_csrf(app: &TestApp, b: &reqwest::Client, path: &str) -> String {
    let page = b.get(app.url(path)).send().await.unwrap().text().await.unwrap();
    let at = page.find("data-csrf=\"").expect("a passkey page") + "data-csrf=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}

pub async fn signed_in(app: &TestApp, b: &reqwest::Client) -> bool {
    b.get(app.url("/account")).send().await.unwrap().status() == 200
}

pub async fn audit_reasons(app: &TestApp, event: &str) -> Vec<String> {
    use portcullis::storage::entities::audit_event;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq(event))
        .order_by_asc(audit_event::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let d: Value = serde_json::from_str(&e.detail).unwrap_or_default();
            format!("{}:{}", e.outcome, d["reason"].as_str().unwrap_or(""))
        })
        .collect()
}

#[tokio::test]
async fn a_passkey_signs_in_without_a_password_and_nothing_else_does() {
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("pia", PW, &[]).await;
    let b = password_session(&app, "pia").await;
    let mut key = enrol(&app, &b, "Laptop").await;
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Laptop") && page.contains("device-bound"), "the account page lists the passkey");

    // The start says nothing about accounts: no allowCredentials.
    let (b1, csrf, options) = passwordless_start(&app).await;
    assert!(options["publicKey"]["allowCredentials"].as_array().is_none_or(Vec::is_empty), "{options}");
    let good = key.assert(&options, &host(&app));
    // Sent twice at once into its ceremony: one wins, the replay fails with
    // the words of a password failure.
    let (first, second) = tokio::join!(
        passwordless_finish(&app, &b1, &csrf, good.clone()),
        passwordless_finish(&app, &b1, &csrf, good.clone())
    );
    let mut answers = [first, second];
    answers.sort_by_key(|a| a["location"].is_null());
    assert_eq!(answers[0]["location"], "/account", "{answers:?}");
    assert_eq!(answers[1], json!({ "error": "Login failed" }), "{answers:?}");
    assert!(signed_in(&app, &b1).await);

    // Replayed into a new ceremony (the challenge differs).
    let (b2, csrf2, _) = passwordless_start(&app).await;
    let replay_new = passwordless_finish(&app, &b2, &csrf2, good).await;
    assert_eq!(replay_new, json!({ "error": "Login failed" }));
    assert!(!signed_in(&app, &b2).await);

    // A phishing site's origin, another RP id, no user verification.
    let wrong_origin = Ceremony { origin: "http://evil.localhost:1", ..host(&app) };
    let wrong_rp = Ceremony { rp_id: "evil.example", ..host(&app) };
    let no_uv = Ceremony { user_verified: false, ..host(&app) };
    for bad in [wrong_origin, wrong_rp, no_uv] {
        let (b, csrf, options) = passwordless_start(&app).await;
        let cred = key.assert(&options, &bad);
        assert_eq!(passwordless_finish(&app, &b, &csrf, cred).await, json!({ "error": "Login failed" }));
        assert!(!signed_in(&app, &b).await);
    }

    // A cloned authenticator: its counter is behind the stored one.
    let (b3, csrf3, options) = passwordless_start(&app).await;
    let ok = key.assert(&options, &host(&app));
    assert_eq!(passwordless_finish(&app, &b3, &csrf3, ok).await["location"], "/account");
    key.counter -= 3;
    let (b4, csrf4, options) = passwordless_start(&app).await;
    let cloned = key.assert(&options, &host(&app));
    assert_eq!(passwordless_finish(&app, &b4, &csrf4, cloned).await, json!({ "error": "Login failed" }));
    assert!(!signed_in(&app, &b4).await);

    let mut reasons = audit_reasons(&app, "login.passkey").await;
    reasons[..2].sort(); // the two racing finishes, in either order
    assert_eq!(
        reasons,
        [
            "failure:no_ceremony",
            "success:",
            "failure:invalid",
            "failure:invalid",
            "failure:invalid",
            "failure:user_not_verified",
            "success:",
            "failure:counter_regressed",
        ],
        "each refusal is audited with its reason"
    );
    assert_eq!(audit_reasons(&app, "passkey.cloned").await.len(), 1);
}

#[tokio::test]
async fn a_passkey_is_the_second_factor_after_the_password() {
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("oli", PW, &[]).await;
    let b = password_session(&app, "oli").await;
    let mut key = enrol(&app, &b, "Key").await;

    // The password alone no longer completes a login: the passkey step follows.
    let b2 = app.browser();
    let csrf = app.csrf_from(&b2, "/login").await;
    let r = b2
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("username", "oli"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login/mfa");
    assert!(!signed_in(&app, &b2).await);
    let csrf = data_csrf(&app, &b2, "/login/mfa").await;
    let (_, options) = post_json(&b2, &app, "/login/mfa/passkey/start", json!({ "csrf": csrf })).await;
    let allowed = options["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed.len(), 1, "after the password, the user's own keys are named");
    // Someone else's key is not this user's second factor.
    let other_app_user = app.create_user("eve", PW, &[]).await;
    let _ = other_app_user;
    let be = password_session(&app, "eve").await;
    let mut eves = enrol(&app, &be, "Eve's").await;
    let wrong = eves.assert(&options, &host(&app));
    let (_, answer) =
        post_json(&b2, &app, "/login/mfa/passkey/finish", json!({ "csrf": csrf, "credential": wrong })).await;
    assert_eq!(answer, json!({ "error": "Login failed" }));
    let (_, options) = post_json(&b2, &app, "/login/mfa/passkey/start", json!({ "csrf": csrf })).await;
    let cred = key.assert(&options, &host(&app));
    let (_, answer) =
        post_json(&b2, &app, "/login/mfa/passkey/finish", json!({ "csrf": csrf, "credential": cred })).await;
    assert_eq!(answer["location"], "/account", "{answer}");
    assert!(signed_in(&app, &b2).await);
    use portcullis::storage::entities::{session, user};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let oli = user::Entity::find().filter(user::Column::Username.eq("oli")).one(&app.state.db).await.unwrap().unwrap();
    let s = session::Entity::find()
        .filter(session::Column::UserId.eq(oli.id))
        .order_by_desc(session::Column::AuthTime)
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(s.len(), 2, "the enrolling session and this one");
    let newest = s.iter().find(|s| s.acr.as_deref() == Some("phr")).expect("a phr session");
    assert_eq!(newest.amr, r#"["pwd","hwk","user","mfa"]"#);
}

#[tokio::test]
async fn removing_a_passkey_needs_the_password_and_a_passkey_session_and_ends_other_sessions() {
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("rui", PW, &[]).await;
    let b = password_session(&app, "rui").await;
    let mut key = enrol(&app, &b, "Phone").await;
    let (other, csrf_o, options) = passwordless_start(&app).await;
    let cred = key.assert(&options, &host(&app));
    assert_eq!(passwordless_finish(&app, &other, &csrf_o, cred).await["location"], "/account");
    let id = B64.encode(&key.id);

    let csrf = app.csrf_from(&other, "/account").await;
    let wrong = other
        .post(app.url("/account/passkeys/remove"))
        .form(&[("csrf", csrf.as_str()), ("id", id.as_str()), ("current_password", "not the password")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 200);
    assert!(wrong.text().await.unwrap().contains("The current password is not correct."));
    assert!(signed_in(&app, &b).await, "a wrong password removes nothing");
    // The password session (a borrowed one, or a phished password) cannot
    // strip the passkey, even with the right password.
    let csrf_b = app.csrf_from(&b, "/account").await;
    let weaker = b
        .post(app.url("/account/passkeys/remove"))
        .form(&[("csrf", csrf_b.as_str()), ("id", id.as_str()), ("current_password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(weaker.status(), 200);
    assert!(weaker.text().await.unwrap().contains("sign in again with a passkey"));
    assert_eq!(count_keys(&app, "rui").await, 1);
    let r = other
        .post(app.url("/account/passkeys/remove"))
        .form(&[("csrf", csrf.as_str()), ("id", id.as_str()), ("current_password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/account?m=passkey_removed");
    assert!(!signed_in(&app, &b).await, "the other session ended");
    assert!(signed_in(&app, &other).await, "the session that removed it goes on");

    let (b2, csrf2, options) = passwordless_start(&app).await;
    let cred = key.assert(&options, &host(&app));
    assert_eq!(passwordless_finish(&app, &b2, &csrf2, cred).await, json!({ "error": "Login failed" }));
}

#[tokio::test]
async fn an_administrator_lists_and_revokes_a_users_passkey() {
    use portcullis::admin::Actor;
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("ida", PW, &[]).await;
    let b = password_session(&app, "ida").await;
    let mut key = enrol(&app, &b, "Yubikey").await;
    let listed = portcullis::admin::users::passkeys(&app.state, &Actor::cli(), "ida").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].name.as_str(), listed[0].kind), ("Yubikey", "hwk"));
    portcullis::admin::users::remove_passkey(&app.state, &Actor::cli(), "ida", &listed[0].credential_id).await.unwrap();
    assert!(!signed_in(&app, &b).await, "the user's sessions ended");
    let (b2, csrf2, options) = passwordless_start(&app).await;
    let cred = key.assert(&options, &host(&app));
    assert_eq!(passwordless_finish(&app, &b2, &csrf2, cred).await, json!({ "error": "Login failed" }));
    let again =
        portcullis::admin::users::remove_passkey(&app.state, &Actor::cli(), "ida", &listed[0].credential_id).await;
    assert!(matches!(again, Err(portcullis::admin::AdminError::NotFound { .. })));
    assert_eq!(audit_reasons(&app, "passkey.removed").await, ["success:"]);
}

#[tokio::test]
async fn two_instances_finish_each_others_ceremonies() {
    let a = spawn_app_at_localhost(TestDb::new().await).await;
    let replica = crate::helpers::spawn_replica(&a, |_| {}).await;
    let other = replica.address.replace("127.0.0.1", "localhost");
    a.create_user("mo", PW, &[]).await;
    // Registration started on one instance, finished on the other.
    let browser = password_session(&a, "mo").await;
    let csrf = a.csrf_from(&browser, "/account").await;
    let (_, options) = post_json(&browser, &a, "/account/passkeys/start", json!({ "csrf": csrf })).await;
    let (mut key, response) = SoftKey::register(&options, &host(&a));
    let (status, done) = post_to(
        &browser,
        &other,
        "/account/passkeys/finish",
        json!({ "csrf": csrf, "name": "Desk", "credential": response }),
    )
    .await;
    assert_eq!((status, done["location"].as_str()), (200, Some("/account?m=passkey_added")), "{done}");
    // A passwordless sign-in started on the second, finished on the first.
    let fresh = a.browser();
    let csrf = a.csrf_from(&fresh, "/login").await;
    let (_, options) = post_to(&fresh, &other, "/login/passkey/start", json!({ "csrf": csrf })).await;
    let cred = key.assert(&options, &host(&a));
    // Finished on both at once: exactly one instance accepts it.
    let body = json!({ "csrf": csrf, "credential": cred });
    let (on_a, on_other) = tokio::join!(
        post_to(&fresh, &a.address, "/login/passkey/finish", body.clone()),
        post_to(&fresh, &other, "/login/passkey/finish", body.clone())
    );
    let wins = [&on_a.1, &on_other.1].iter().filter(|v| v["location"] == "/account").count();
    let losses = [&on_a.1, &on_other.1].iter().filter(|v| **v == &json!({ "error": "Login failed" })).count();
    assert_eq!((wins, losses), (1, 1), "{on_a:?} {on_other:?}");
    assert!(signed_in(&a, &fresh).await);
}

/// An attacker with someone's session (a stolen cookie, or one opened with
/// the password before the owner added a second factor) must not plant a
/// passkey of their own: adding one needs a recent sign-in at least as
/// strong as the account's factors.
#[tokio::test]
async fn an_old_or_weaker_session_cannot_add_a_passkey() {
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("sam", PW, &[]).await;
    // The attacker's password-only session, opened before the owner's passkey.
    let attacker = password_session(&app, "sam").await;
    let owner = password_session(&app, "sam").await;
    let mut key = enrol(&app, &owner, "Owner's key").await;

    let csrf = app.csrf_from(&attacker, "/account").await;
    let (status, refused) = post_json(&attacker, &app, "/account/passkeys/start", json!({ "csrf": csrf })).await;
    assert_eq!(status, 200);
    assert!(refused["publicKey"].is_null(), "a password-only session cannot add to a passkey account: {refused}");
    assert!(refused["error"].as_str().unwrap().contains("sign in again"), "{refused}");

    // A passkey session that is no longer recent is refused too.
    let (b, csrf_b, options) = passwordless_start(&app).await;
    let cred = key.assert(&options, &host(&app));
    assert_eq!(passwordless_finish(&app, &b, &csrf_b, cred).await["location"], "/account");
    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.admin_reauth_secs + 1));
    let csrf = app.csrf_from(&b, "/account").await;
    let (_, stale) = post_json(&b, &app, "/account/passkeys/start", json!({ "csrf": csrf })).await;
    assert!(stale["publicKey"].is_null(), "{stale}");
    assert_eq!(crate::passkeys::count_keys(&app, "sam").await, 1, "nothing was added");
}

pub async fn count_keys(app: &TestApp, username: &str) -> usize {
    portcullis::admin::users::passkeys(&app.state, &portcullis::admin::Actor::cli(), username).await.unwrap().len()
}

/// A clone of the key answers a second-factor ceremony that was started
/// before the real key signed in again: the counter it carries is not newer
/// than the stored one, whatever the ceremony's own copy said.
#[tokio::test]
async fn a_clone_cannot_answer_a_ceremony_held_open_while_the_key_was_used() {
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("kit", PW, &[]).await;
    let b = password_session(&app, "kit").await;
    let mut key = enrol(&app, &b, "Key").await;
    // The attacker (with the password) opens the passkey step and waits.
    let attacker = app.browser();
    let csrf = app.csrf_from(&attacker, "/login").await;
    attacker
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("username", "kit"), ("password", PW)])
        .send()
        .await
        .unwrap();
    let csrf = data_csrf(&app, &attacker, "/login/mfa").await;
    let (_, held) = post_json(&attacker, &app, "/login/mfa/passkey/start", json!({ "csrf": csrf })).await;
    // The owner signs in with the real key meanwhile.
    let (owner, csrf_o, options) = passwordless_start(&app).await;
    let cred = key.assert(&options, &host(&app));
    assert_eq!(passwordless_finish(&app, &owner, &csrf_o, cred).await["location"], "/account");
    // The clone still has the counter the owner just used.
    key.counter -= 1;
    let cloned = key.assert(&held, &host(&app));
    let (_, answer) =
        post_json(&attacker, &app, "/login/mfa/passkey/finish", json!({ "csrf": csrf, "credential": cloned })).await;
    assert_eq!(answer, json!({ "error": "Login failed" }));
    assert!(!signed_in(&app, &attacker).await);
    assert_eq!(audit_reasons(&app, "passkey.cloned").await.len(), 1);
}

/// Where a sign-in needs the passkey (an administrator who has one), a TOTP
/// code does not stand in for it; a recovery code lets a person who lost the
/// key go on — to add a new passkey and sign with it, never to a session
/// without one.
#[tokio::test]
async fn where_the_passkey_is_needed_a_totp_code_is_not_enough() {
    use portcullis::admin::Actor;
    const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("ada", PW, &["admin"]).await;
    let recovery =
        portcullis::admin::users::totp_import(&app.state, &Actor::cli(), "ada", &SEED.to_owned().into()).await.unwrap();
    // Password and code: a session strong enough to add the passkey.
    let b = app.browser();
    let csrf = app.csrf_from(&b, "/login").await;
    let r = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("username", "ada"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login/mfa");
    let csrf = app.csrf_from(&b, "/login/mfa").await;
    let code = crate::mfa::code_at(&app, SEED, 0);
    let r =
        b.post(app.url("/login/mfa")).form(&[("csrf", csrf.as_str()), ("code", code.as_str())]).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/account");
    enrol(&app, &b, "Admin key").await;

    let try_code = |code: String| {
        let app = &app;
        async move {
            let b = app.browser();
            let csrf = app.csrf_from(&b, "/login").await;
            b.post(app.url("/login"))
                .form(&[("csrf", csrf.as_str()), ("username", "ada"), ("password", PW)])
                .send()
                .await
                .unwrap();
            let csrf = app.csrf_from(&b, "/login/mfa").await;
            let r = b
                .post(app.url("/login/mfa"))
                .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            (status, body, signed_in(app, &b).await)
        }
    };
    let (status, body, in_) = try_code(crate::mfa::code_at(&app, SEED, 1)).await;
    assert_eq!(status, 200);
    assert!(body.contains("Login failed") && !in_, "a TOTP code is refused where the passkey is needed");

    // The key is lost: a recovery code leads to adding a new one.
    let b = app.browser();
    let csrf = app.csrf_from(&b, "/login").await;
    b.post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("username", "ada"), ("password", PW)])
        .send()
        .await
        .unwrap();
    let csrf = app.csrf_from(&b, "/login/mfa").await;
    let r = b
        .post(app.url("/login/mfa"))
        .form(&[("csrf", csrf.as_str()), ("code", recovery[0].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login/enrol", "the recovery code leads to a new passkey");
    assert!(!signed_in(&app, &b).await, "and not to a session without one");
    let csrf = data_csrf(&app, &b, "/login/enrol").await;
    let (_, options) = post_json(&b, &app, "/login/enrol/passkey/start", json!({ "csrf": csrf })).await;
    let (mut new_key, response) = SoftKey::register(&options, &host(&app));
    let (_, answer) = post_json(
        &b,
        &app,
        "/login/enrol/passkey/finish",
        json!({ "csrf": csrf, "name": "New key", "credential": response }),
    )
    .await;
    assert_eq!(answer["location"], "/login/mfa", "{answer}");
    assert!(answer["recovery_codes"].is_null(), "the account still has recovery codes: none issued");
    let csrf = data_csrf(&app, &b, "/login/mfa").await;
    let (_, options) = post_json(&b, &app, "/login/mfa/passkey/start", json!({ "csrf": csrf })).await;
    let cred = new_key.assert(&options, &host(&app));
    let (_, answer) =
        post_json(&b, &app, "/login/mfa/passkey/finish", json!({ "csrf": csrf, "credential": cred })).await;
    assert_eq!(answer["location"], "/account", "{answer}");
    assert_eq!(
        b.get(app.url("/admin/users")).send().await.unwrap().status(),
        200,
        "with the new passkey, the admin pages"
    );
}

/// A session signed in with the password alone is sent back to sign in when
/// a client asks for `acr_values=phr`, and the passkey sign-in that follows
/// gives an ID token with `acr` `phr`.
#[tokio::test]
async fn a_request_for_phr_steps_a_password_session_up_to_the_passkey() {
    use crate::oauth::{CB, exchange, register, urlencode, web_client};
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("lea", PW, &[]).await;
    let secret = register(&app, web_client("stepup")).await.unwrap();
    let b = password_session(&app, "lea").await;
    let mut key = enrol(&app, &b, "Key").await;
    let verifier = "v".repeat(43);
    let challenge = B64.encode(sha256(verifier.as_bytes()));
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id=stepup&redirect_uri={}&scope=openid&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256&acr_values=phr",
        urlencode(CB)
    ));
    let r = b.get(&url).send().await.unwrap();
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/login?request="), "step-up, not a code: {to}");
    let request = to.trim_start_matches("/login?request=").to_owned();
    let csrf = data_csrf(&app, &b, &to).await;
    let (_, options) = post_json(&b, &app, "/login/passkey/start", json!({ "csrf": csrf, "request": request })).await;
    let cred = key.assert(&options, &host(&app));
    let (_, answer) =
        post_json(&b, &app, "/login/passkey/finish", json!({ "csrf": csrf, "request": request, "credential": cred }))
            .await;
    let next = answer["location"].as_str().unwrap().to_owned();
    let back = b.get(app.url(&next)).send().await.unwrap().headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with(CB), "{back}");
    let code = crate::helpers::param(&back, "code").unwrap();
    let (status, tokens) = exchange(&app, "stepup", &secret, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let id = crate::helpers::claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "phr");
    assert_eq!(id["amr"], json!(["hwk", "user", "mfa"]));
}

/// A role that must use passkeys: its holder without any factor adds one at
/// login, cannot finish with a TOTP enrolment instead, and the new key must
/// then sign the login (a registration with attestation "none" proves
/// nothing about holding the key).
#[tokio::test]
async fn a_role_that_needs_passkeys_enrols_one_at_login_and_then_uses_it() {
    let mut app = crate::helpers::spawn_app_with(TestDb::new().await, |s| {
        s.issuer = s.issuer.replace("127.0.0.1", "localhost");
        s.passkey_required_roles = vec!["ops".into()];
    })
    .await;
    app.address = app.address.replace("127.0.0.1", "localhost");
    portcullis::admin::roles::add(&app.state, &portcullis::admin::Actor::cli(), "ops", None).await.unwrap();
    app.create_user("ops1", PW, &["ops"]).await;
    let b = app.browser();
    let csrf = app.csrf_from(&b, "/login").await;
    let r = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("username", "ops1"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login/enrol");
    let page = b.get(app.url("/login/enrol")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("totp-secret"), "no TOTP offered where a passkey is required");
    let csrf = data_csrf(&app, &b, "/login/enrol").await;
    let r = b
        .post(app.url("/login/enrol"))
        .form(&[("csrf", csrf.as_str()), ("enrolment", "x"), ("code", "123456")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login/enrol", "a TOTP confirmation cannot finish this login");
    assert!(!signed_in(&app, &b).await);

    let (_, options) = post_json(&b, &app, "/login/enrol/passkey/start", json!({ "csrf": csrf })).await;
    let (mut key, response) = SoftKey::register(&options, &host(&app));
    let (_, answer) = post_json(
        &b,
        &app,
        "/login/enrol/passkey/finish",
        json!({ "csrf": csrf, "name": "Ops key", "credential": response }),
    )
    .await;
    assert_eq!(answer["location"], "/login/mfa", "{answer}");
    let codes = answer["recovery_codes"].as_array().expect("a first factor comes with recovery codes");
    assert_eq!(codes.len(), 10);
    assert!(!signed_in(&app, &b).await, "registering is not signing in");
    let csrf = data_csrf(&app, &b, "/login/mfa").await;
    let (_, options) = post_json(&b, &app, "/login/mfa/passkey/start", json!({ "csrf": csrf })).await;
    let cred = key.assert(&options, &host(&app));
    let (_, answer) =
        post_json(&b, &app, "/login/mfa/passkey/finish", json!({ "csrf": csrf, "credential": cred })).await;
    assert_eq!(answer["location"], "/account", "{answer}");
    assert!(signed_in(&app, &b).await);
}
