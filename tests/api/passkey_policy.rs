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
