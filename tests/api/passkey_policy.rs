//! Attacks on the rules around passkeys: once a passkey makes an account
//! phishing-resistant, nothing weaker — an older session, a token or refresh
//! token from an older login, a recovery code, a borrowed session, or the
//! password alone where passkeys are off — administers, refreshes, or plants
//! a new factor.

use portcullis::admin::Actor;
use serde_json::json;

use crate::helpers::{TestDb, spawn_app_at_localhost};
use portcullis::admin::clients::ClientSpec;

use crate::oauth::{exchange, get_code_with_totp, register, token_req, urlencode, web_client};
use crate::passkeys::{enrol, host, passwordless_finish, passwordless_start, post_json};

const PW: &str = "violet anvil tramline";
const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// An administrator signed in with password and TOTP adds a passkey: from
/// then on the admin pages, the admin API and refresh refuse everything that
/// came from the weaker login, and name what is needed.
#[tokio::test]
async fn once_an_admin_has_a_passkey_nothing_weaker_administers() {
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    let aud = format!("{}/admin", app.address);
    app.create_user("ada", PW, &["admin"]).await;
    portcullis::admin::users::totp_import(&app.state, &Actor::cli(), "ada", &SEED.to_owned().into()).await.unwrap();
    let secret = register(&app, ClientSpec { resources: vec![aud.clone()], ..web_client("console") }).await.unwrap();
    let b = app.browser();
    let extra = format!("&resource={}", urlencode(&aud));
    let (code, verifier) = get_code_with_totp(&app, &b, "console", "ada", &extra, Some(SEED)).await;
    let (s, t) = exchange(&app, "console", &secret, &code, &verifier).await;
    assert_eq!(s, 200, "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    let users = || reqwest::Client::new().get(app.url("/admin/api/v1/users")).bearer_auth(token.clone()).send();
    assert_eq!(users().await.unwrap().status(), 200, "password and TOTP administer an account without a passkey");
    assert_eq!(b.get(app.url("/admin/users")).send().await.unwrap().status(), 200);

    enrol(&app, &b, "Admin key").await;

    let page = b.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!(page.status(), 403, "the TOTP session no longer administers");
    assert!(page.text().await.unwrap().contains("Passkey needed"));
    let r = users().await.unwrap();
    assert_eq!(r.status(), 401, "nor does its token");
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.contains("insufficient_user_authentication") && challenge.contains("acr_values=\"phr\""),
        "{challenge}"
    );
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    let (s, body, _) = token_req(&app, Some(("console", &secret)), &form).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")), "nor its refresh token: {body}");
}

/// A borrowed or old session of a passkey-only account cannot set up an
/// authenticator app of its own (it would be a second way in that skips the
/// passkey); a fresh passkey sign-in can.
#[tokio::test]
async fn a_weaker_or_old_session_cannot_plant_totp_on_a_passkey_account() {
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("pia", PW, &[]).await;
    let attacker = crate::passkeys::password_session(&app, "pia").await;
    let owner = crate::passkeys::password_session(&app, "pia").await;
    let mut key = enrol(&app, &owner, "Pia's key").await;

    let page = attacker.get(app.url("/account/mfa")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("totp-secret"), "no secret for a password-only session of a passkey account");
    assert!(page.contains("sign in again"), "{page}");
    let csrf = app.csrf_from(&attacker, "/account").await;
    let r = attacker
        .post(app.url("/account/mfa"))
        .form(&[("csrf", csrf.as_str()), ("enrolment", "x"), ("code", "123456")])
        .send()
        .await
        .unwrap();
    assert!(!r.text().await.unwrap().contains("Your recovery codes"));

    // The owner's fresh passkey sign-in may; the same session grown old may not.
    let (b, csrf, options) = passwordless_start(&app).await;
    let cred = key.assert(&options, &host(&app));
    assert_eq!(passwordless_finish(&app, &b, &csrf, cred).await["location"], "/account");
    let page = b.get(app.url("/account/mfa")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("totp-secret"), "a fresh passkey session sets up TOTP");
    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.admin_reauth_secs + 1));
    let page = b.get(app.url("/account/mfa")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("totp-secret"), "an old one does not");
    assert!(!portcullis::authn::mfa::has_totp(&app.state.db, &user_id(&app, "pia").await).await.unwrap());
}

async fn user_id(app: &crate::helpers::TestApp, username: &str) -> String {
    portcullis::admin::users::show(&app.state, &Actor::cli(), username).await.unwrap().id
}

/// Where passkeys are off (an instance whose issuer is an IP address), an
/// account with a passkey still has to prove a second factor: the password
/// alone does not reach a TOTP set-up. With recovery codes it signs in;
/// without, the page says to ask an administrator.
#[tokio::test]
async fn with_passkeys_off_the_password_alone_does_not_replace_the_passkey() {
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    // The same database behind an instance without passkeys.
    let off = crate::helpers::spawn_replica(&app, |s| s.issuer = s.issuer.replace("localhost", "127.0.0.1")).await;
    assert!(off.state.webauthn.is_none());
    app.create_user("ola", PW, &[]).await;
    let owner = crate::passkeys::password_session(&app, "ola").await;
    let csrf = app.csrf_from(&owner, "/account").await;
    let (_, options) = post_json(&owner, &app, "/account/passkeys/start", json!({ "csrf": csrf })).await;
    let (_, response) = crate::passkeys::SoftKey::register(&options, &host(&app));
    let (_, done) = post_json(
        &owner,
        &app,
        "/account/passkeys/finish",
        json!({ "csrf": csrf, "name": "Key", "credential": response }),
    )
    .await;
    let codes: Vec<String> = serde_json::from_value(done["recovery_codes"].clone()).expect("recovery codes");

    let base = off.address.clone();
    let login = |b: reqwest::Client| {
        let base = base.clone();
        async move {
            let page = b.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
            let csrf = crate::helpers::csrf_in(&page);
            let r = b
                .post(format!("{base}/login"))
                .form(&[("csrf", csrf.as_str()), ("username", "ola"), ("password", PW)])
                .send()
                .await
                .unwrap();
            (b, r.headers()["location"].to_str().unwrap().to_owned())
        }
    };
    let (b, to) = login(app.browser()).await;
    assert_eq!(to, "/login/mfa", "the passkey's account must prove a second factor");
    let enrol_page = b.get(format!("{}/login/enrol", off.address)).send().await.unwrap();
    assert_eq!(enrol_page.status(), 303, "no TOTP set-up after the password alone");
    let page = b.get(format!("{}/login/mfa", off.address)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("recovery code") && !page.contains("passkey-verify"), "{page}");
    let csrf = crate::helpers::csrf_in(&page);
    let r = b
        .post(format!("{}/login/mfa", off.address))
        .form(&[("csrf", csrf.as_str()), ("code", codes[0].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/account", "a recovery code signs in");

    // Without recovery codes left, nothing gets through, and the page says so.
    let id = user_id(&app, "ola").await;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    portcullis::storage::entities::recovery_code::Entity::delete_many()
        .filter(portcullis::storage::entities::recovery_code::Column::UserId.eq(id.as_str()))
        .exec(&app.state.db)
        .await
        .unwrap();
    let (b, to) = login(app.browser()).await;
    assert_eq!(to, "/login/mfa");
    let page = b.get(format!("{}/login/mfa", off.address)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Ask an administrator"), "{page}");
    assert!(!portcullis::authn::mfa::has_totp(&app.state.db, &id).await.unwrap());
}

/// An administrator sees a user's passkeys on the user's page and removes a
/// lost one there (users:credentials, audited, the user's sessions ended);
/// a reader sees them without the button.
#[tokio::test]
async fn an_administrator_sees_and_removes_a_users_passkey_on_the_admin_pages() {
    use base64::Engine;
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("kim", PW, &[]).await;
    let owner = crate::passkeys::password_session(&app, "kim").await;
    let mut key = enrol(&app, &owner, "Kim phone").await;
    let admin = crate::admin_pages::logged_in(&app, "root", &["admin"]).await;
    let reader = crate::admin_pages::logged_in(&app, "reader", &["users:read"]).await;

    let page = reader.get(app.url("/admin/users/kim")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Kim phone") && page.contains("device-bound"), "{page}");
    assert!(!page.contains("passkey-remove"), "users:read lists, it does not remove");
    let page = admin.get(app.url("/admin/users/kim")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("passkey-remove"));

    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&key.id);
    let r = crate::admin_pages::act(&app, &reader, "kim", "passkey-remove", &[("credential", &id)]).await;
    assert_eq!(r.status(), 403, "the reader's form post is refused too");
    assert_eq!(crate::passkeys::count_keys(&app, "kim").await, 1);
    let r = crate::admin_pages::act(&app, &admin, "kim", "passkey-remove", &[("credential", &id)]).await;
    assert_eq!(crate::helpers::location(&r), "/admin/users/kim?m=passkey-remove");
    assert_eq!(crate::passkeys::count_keys(&app, "kim").await, 0);
    assert!(!crate::passkeys::signed_in(&app, &owner).await, "the user's sessions ended");
    let (b, csrf, options) = passwordless_start(&app).await;
    let cred = key.assert(&options, &host(&app));
    assert_eq!(passwordless_finish(&app, &b, &csrf, cred).await, json!({ "error": "Login failed" }));
    let again = crate::admin_pages::act(&app, &admin, "kim", "passkey-remove", &[("credential", &id)]).await;
    assert_eq!(again.status(), 404);
    assert!(again.text().await.unwrap().contains("no longer registered"));
    let removed = crate::passkeys::audit_reasons(&app, "passkey.removed").await;
    assert_eq!(removed, ["success:"]);
}

/// An administrator whose sign-ins need a passkey confirms credential
/// changes with the password and the passkey (a code would make a session
/// too weak for the admin pages), and lands back where they were.
#[tokio::test]
async fn an_administrator_with_a_passkey_confirms_credential_changes_with_it() {
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("bob", PW, &[]).await;
    let first = crate::admin_pages::logged_in(&app, "ada", &["admin"]).await;
    let mut key = enrol(&app, &first, "Ada key").await;
    let (b, csrf, options) = passwordless_start(&app).await;
    let cred = key.assert(&options, &host(&app));
    assert_eq!(passwordless_finish(&app, &b, &csrf, cred).await["location"], "/account");
    assert_eq!(b.get(app.url("/admin/users/bob")).send().await.unwrap().status(), 200);

    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.admin_reauth_secs + 1));
    let r = crate::admin_pages::act(&app, &b, "bob", "unlock", &[]).await;
    let to = crate::helpers::location(&r);
    assert!(to.starts_with("/admin/reauth?next="), "{to}");
    let page = b.get(app.url(&to)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Continue with your passkey") && !page.contains("name=\"code\""), "{page}");
    let csrf = crate::helpers::csrf_in(&page);
    let r = b
        .post(app.url("/admin/reauth"))
        .form(&[("csrf", csrf.as_str()), ("password", PW), ("next", "/admin/users/bob")])
        .send()
        .await
        .unwrap();
    assert_eq!(crate::helpers::location(&r), "/login/mfa", "the password, then the passkey");
    let csrf = crate::passkeys::data_csrf(&app, &b, "/login/mfa").await;
    let (_, options) = post_json(&b, &app, "/login/mfa/passkey/start", json!({ "csrf": csrf })).await;
    let cred = key.assert(&options, &host(&app));
    let (_, answer) =
        post_json(&b, &app, "/login/mfa/passkey/finish", json!({ "csrf": csrf, "credential": cred })).await;
    assert_eq!(answer["location"], "/admin/users/bob?m=reauth", "{answer}");
    let r = crate::admin_pages::act(&app, &b, "bob", "unlock", &[]).await;
    assert_eq!(
        crate::helpers::location(&r),
        "/admin/users/bob?m=unlock",
        "a fresh passkey sign-in changes credentials"
    );
}

/// Anyone whose account has a passkey and who signs in with a recovery code
/// has lost the key: the code leads to adding a new passkey (offered with
/// TOTP where no passkey is required), not to a session that could neither
/// add nor remove one.
#[tokio::test]
async fn a_recovery_code_of_an_account_with_a_passkey_leads_to_a_new_key() {
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    app.create_user("lou", PW, &[]).await;
    let owner = crate::passkeys::password_session(&app, "lou").await;
    let csrf = app.csrf_from(&owner, "/account").await;
    let (_, options) = post_json(&owner, &app, "/account/passkeys/start", json!({ "csrf": csrf })).await;
    let (_, response) = crate::passkeys::SoftKey::register(&options, &host(&app));
    let (_, done) = post_json(
        &owner,
        &app,
        "/account/passkeys/finish",
        json!({ "csrf": csrf, "name": "Lost", "credential": response }),
    )
    .await;
    let codes: Vec<String> = serde_json::from_value(done["recovery_codes"].clone()).expect("recovery codes");
    let b = app.browser();
    let csrf = app.csrf_from(&b, "/login").await;
    let r = b
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("username", "lou"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login/mfa");
    let csrf = app.csrf_from(&b, "/login/mfa").await;
    let r = b.post(app.url("/login/mfa")).form(&[("csrf", csrf.as_str()), ("code", codes[0].as_str())]).send().await;
    assert_eq!(r.unwrap().headers()["location"], "/login/enrol");
    assert!(!crate::passkeys::signed_in(&app, &b).await);
    let page = b.get(app.url("/login/enrol")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("passkey-add"), "a new passkey is offered");
    assert!(!page.contains("totp-secret"), "and only a passkey: a recovery code must not set up an app");
    let csrf = crate::passkeys::data_csrf(&app, &b, "/login/enrol").await;
    let r = b
        .post(app.url("/login/enrol"))
        .form(&[("csrf", csrf.as_str()), ("enrolment", "x"), ("code", "123456")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login");
    let id = user_id(&app, "lou").await;
    assert!(!portcullis::authn::mfa::has_totp(&app.state.db, &id).await.unwrap());
}

/// Password, TOTP code and session (all phishable) must not mint recovery
/// codes or move the app on an account that has a passkey — a recovery code
/// would lead to a passkey of the attacker's, who could then remove the
/// owner's. Nor can a holder of users:credentials remove their own passkey
/// or authenticator through the admin pages.
#[tokio::test]
async fn phishable_factors_cannot_mint_recovery_codes_on_a_passkey_account() {
    let app = spawn_app_at_localhost(TestDb::new().await).await;
    // A helpdesk member with TOTP, then a passkey added from that session.
    let b = crate::admin_pages::logged_in(&app, "hal", &["users:credentials", "users:read"]).await;
    enrol(&app, &b, "Hal key").await;
    // The phisher's session: password and a TOTP code.
    let phisher = app.browser();
    let r = app.login(&phisher, "hal", PW).await;
    assert_eq!(crate::helpers::location(&r), "/login/mfa");
    let code = crate::mfa::code_at(&app, SEED, 1); // step 0 was spent by the owner's login
    let r = crate::mfa::submit_code(&app, &phisher, &code).await;
    assert_eq!(crate::helpers::location(&r), "/account");
    let csrf = app.csrf_from(&phisher, "/account").await;
    let next = crate::mfa::code_at(&app, SEED, -1);
    for path in ["/account/mfa/recovery", "/account/mfa/disable", "/account/mfa"] {
        let r = phisher
            .post(app.url(path))
            .form(&[("csrf", csrf.as_str()), ("reauth", PW), ("reauth_code", next.as_str())])
            .send()
            .await
            .unwrap();
        let page = r.text().await.unwrap();
        assert!(page.contains("sign in again with it"), "{path}: {page}");
        assert!(!page.contains("recovery-codes") && !page.contains("totp-secret"), "{path}");
    }
    let id = user_id(&app, "hal").await;
    assert!(portcullis::authn::mfa::has_totp(&app.state.db, &id).await.unwrap());

    // Their own factors through the admin pages: refused.
    let creds = portcullis::admin::users::passkeys(&app.state, &Actor::cli(), "hal").await.unwrap();
    let credential = creds[0].credential_id.clone();
    let r = crate::admin_pages::act(&app, &b, "hal", "passkey-remove", &[("credential", &credential)]).await;
    assert_eq!(r.status(), 403);
    let r = crate::admin_pages::act(&app, &b, "hal", "reset-mfa", &[]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(crate::passkeys::count_keys(&app, "hal").await, 1);
    assert!(portcullis::authn::mfa::has_totp(&app.state.db, &id).await.unwrap());
}

/// A set-up challenge for an account without factors is kept by someone who
/// knows the password; the owner then sets up a passkey. The kept challenge
/// is dead: it adds neither a passkey nor an app.
#[tokio::test]
async fn a_set_up_kept_from_before_the_owner_enrolled_is_dead() {
    let mut app = crate::helpers::spawn_app_with(TestDb::new().await, |s| {
        s.issuer = s.issuer.replace("127.0.0.1", "localhost");
        s.mfa_required = true;
    })
    .await;
    app.address = app.address.replace("127.0.0.1", "localhost");
    app.create_user("eve_target", PW, &[]).await;
    let attacker = app.browser();
    let r = app.login(&attacker, "eve_target", PW).await;
    assert_eq!(crate::helpers::location(&r), "/login/enrol");
    let csrf = crate::passkeys::data_csrf(&app, &attacker, "/login/enrol").await;

    // The owner signs in and adds a passkey at the same step.
    let owner = app.browser();
    let r = app.login(&owner, "eve_target", PW).await;
    assert_eq!(crate::helpers::location(&r), "/login/enrol");
    let csrf_o = crate::passkeys::data_csrf(&app, &owner, "/login/enrol").await;
    let (_, options) = post_json(&owner, &app, "/login/enrol/passkey/start", json!({ "csrf": csrf_o })).await;
    let (_, response) = crate::passkeys::SoftKey::register(&options, &host(&app));
    let (_, answer) = post_json(
        &owner,
        &app,
        "/login/enrol/passkey/finish",
        json!({ "csrf": csrf_o, "name": "Owner", "credential": response }),
    )
    .await;
    assert_eq!(answer["location"], "/login/mfa", "{answer}");

    let r = attacker.get(app.url("/login/enrol")).send().await.unwrap();
    assert_eq!(crate::helpers::location(&r), "/login", "the kept set-up is dead");
    let (_, refused) = post_json(&attacker, &app, "/login/enrol/passkey/start", json!({ "csrf": csrf })).await;
    assert!(refused["publicKey"].is_null(), "{refused}");
    let r = attacker
        .post(app.url("/login/enrol"))
        .form(&[("csrf", csrf.as_str()), ("enrolment", "x"), ("code", "123456")])
        .send()
        .await
        .unwrap();
    assert_eq!(crate::helpers::location(&r), "/login");
    assert_eq!(crate::passkeys::count_keys(&app, "eve_target").await, 1);
}

/// A role that needs passkeys, an account that has only TOTP (enrolled before
/// the rule): the password and a valid code must lead to adding a passkey,
/// never to a finished sign-in at acr 2.
#[tokio::test]
async fn where_a_role_needs_a_passkey_a_code_leads_to_adding_one() {
    use portcullis::admin::Actor;
    const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let mut app = crate::helpers::spawn_app_with(crate::helpers::TestDb::new().await, |s| {
        s.issuer = s.issuer.replace("127.0.0.1", "localhost");
        s.passkey_required_roles = vec!["staff".into()];
    })
    .await;
    app.address = app.address.replace("127.0.0.1", "localhost");
    portcullis::admin::roles::add(&app.state, &Actor::cli(), "staff", None).await.unwrap();
    app.create_user("ola", "violet anvil tramline", &["staff"]).await;
    portcullis::admin::users::totp_import(&app.state, &Actor::cli(), "ola", &SEED.to_owned().into()).await.unwrap();
    let b = app.browser();
    let r = app.login(&b, "ola", "violet anvil tramline").await;
    assert_eq!(r.headers()["location"], "/login/mfa");
    let csrf = app.csrf_from(&b, "/login/mfa").await;
    let code = crate::mfa::code_at(&app, SEED, 0);
    let r =
        b.post(app.url("/login/mfa")).form(&[("csrf", csrf.as_str()), ("code", code.as_str())]).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/login/enrol", "the code leads to adding the passkey the role needs");
    assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), 303, "not signed in yet");
}
