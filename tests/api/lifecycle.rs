//! Account lifecycle (#18) end to end through the real app and a real SMTP
//! server (tests/api/mailbox.rs): invitations, reset links, "Forgot
//! password?", e-mail verification and sign-up — each link read from the
//! mail that carried it, followed as a browser does, and attacked: used
//! twice, after expiry, after a newer one, by someone probing for accounts.

use portcullis::storage::entities::{account_link, refresh_family, session, user};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::helpers::{TestApp, TestDb, csrf_in, location, spawn_app_with, stdout};
use crate::mailbox::Mailbox;
use crate::mfa::{PW, code_at, enrol, logout, submit_code};

const NEW_PW: &str = "copper lantern meadow";

async fn app_with_mail(adjust: impl FnOnce(&mut portcullis::config::Settings)) -> (TestApp, Mailbox) {
    let mail = Mailbox::start().await;
    let app = spawn_app_with(TestDb::new().await, |s| {
        mail.configure(s);
        adjust(s);
    })
    .await;
    (app, mail)
}

/// An administrator sets the address (unverified).
async fn set_email(app: &TestApp, username: &str, email: &str) {
    let patch = portcullis::admin::users::ProfilePatch { email: Some(Some(email.into())), ..Default::default() };
    portcullis::admin::users::update_profile(&app.state, &portcullis::admin::Actor::cli(), username, patch)
        .await
        .unwrap();
}

/// An address the person proved (as following a verification link does).
async fn set_verified_email(app: &TestApp, username: &str, email: &str) {
    set_email(app, username, email).await;
    user::Entity::update_many()
        .col_expr(user::Column::EmailVerified, sea_orm::sea_query::Expr::val(true))
        .filter(user::Column::Username.eq(username))
        .exec(&app.state.db)
        .await
        .unwrap();
}

/// Opens a set-password link (invitation or reset) in `b` and submits
/// `password`; returns the response to the POST.
pub async fn set_password_through(b: &reqwest::Client, link: &str, password: &str) -> reqwest::Response {
    let page = b.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200, "the link's page opens");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"autocomplete="new-password""#), "{html}");
    let token = crate::mfa::between(&html, r#"name="token" value=""#, "\"").to_owned();
    let action = if link.contains("/invitation") { "/invitation" } else { "/password/reset" };
    let base = &link[..link.find(action).unwrap()];
    b.post(format!("{base}{action}"))
        .form(&[("csrf", csrf_in(&html).as_str()), ("token", token.as_str()), ("new_password", password)])
        .send()
        .await
        .unwrap()
}

async fn user_row(app: &TestApp, name: &str) -> user::Model {
    user::Entity::find().filter(user::Column::Username.eq(name)).one(&app.state.db).await.unwrap().unwrap()
}

#[tokio::test]
async fn an_invitation_mailed_by_the_cli_activates_the_account_once() {
    let (app, mail) = app_with_mail(|_| {}).await;
    let env: Vec<(String, String)> = [mail.env(), vec![("PORTCULLIS_ISSUER".into(), app.address.clone())]].concat();
    let o = app.db.cli_env(&["user", "add", "nina", "--email", "nina@example.com"], None, &env);
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("portcullis user invite nina"));
    // Without a password the account cannot sign in.
    let b = app.browser();
    assert!(app.login(&b, "nina", NEW_PW).await.text().await.unwrap().contains("Login failed"));

    // Printed: the operator hands it over.
    let o = app.db.cli_env(&["--json", "user", "invite", "nina"], None, &env);
    assert!(o.status.success(), "{o:?}");
    let printed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let printed_url = printed["url"].as_str().unwrap().to_owned();
    assert!(printed_url.starts_with(&app.url("/invitation?token=")), "{printed_url}");
    // Mailed: only the mail holds the link (which is what lets its use prove
    // the address); the older, printed one dies.
    let o = app.db.cli_env(&["--json", "user", "invite", "nina", "--send"], None, &env);
    assert!(o.status.success(), "{o:?}");
    let printed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(printed["url"].is_null(), "a mailed link is not also shown: {printed}");
    assert_eq!(printed["sent_to"], "nina@example.com");
    let got = mail.wait_for("nina@example.com", 1).await;
    let url = got[0].link(&app.url("/invitation"));
    assert!(got[0].html.contains(&url.replace('&', "&amp;")), "the HTML part too");
    assert_eq!(b.get(&printed_url).send().await.unwrap().status(), 400, "a newer invitation kills the older");

    // Only a hash is stored: the token is nowhere in the database.
    let token = url.split("token=").nth(1).unwrap();
    let rows = account_link::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows.iter().all(|r| !r.id_hash.contains(token) && r.id_hash.starts_with("hmac-sha256$")));

    // A GET changes nothing (mail scanners open links).
    assert_eq!(b.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(account_link::Entity::find().count(&app.state.db).await.unwrap(), 1);

    let r = set_password_through(&app.browser(), &url, NEW_PW).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login?m=account_activated");
    assert_eq!(app.login(&b, "nina", NEW_PW).await.status(), 303, "the new password signs in");
    let u = user_row(&app, "nina").await;
    assert!(u.email_verified, "following a link mailed to the address proves it");

    // Used: the link is dead, for GET and for POST.
    let again = app.browser().get(&url).send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("no longer works"));
    let page_token = token.to_owned();
    let b2 = app.browser();
    let csrf = app.csrf_from(&b2, "/login").await;
    let r = b2
        .post(app.url("/invitation"))
        .form(&[("csrf", csrf.as_str()), ("token", page_token.as_str()), ("new_password", "another fine passphrase")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a used invitation sets no password");
    assert_eq!(app.login(&app.browser(), "nina", NEW_PW).await.status(), 303, "the password is still the first one");

    // An account with a password gets a reset link, not an invitation.
    let o = app.db.cli_env(&["user", "invite", "nina"], None, &env);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("reset-link"), "{o:?}");
    let audit = portcullis::storage::entities::audit_event::Entity::find()
        .filter(
            portcullis::storage::entities::audit_event::Column::EventType
                .is_in(["user.invitation_created", "user.activated"]),
        )
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(audit, 3, "two made, one used: all audited");
}

#[tokio::test]
async fn links_die_on_expiry_and_when_a_newer_one_is_made() {
    let (app, _mail) = app_with_mail(|_| {}).await;
    let o = app.db.cli(&["user", "add", "omar"], None);
    assert!(o.status.success());
    let actor = portcullis::admin::Actor::cli();
    let invite = portcullis::lifecycle::Purpose::Invite;
    let first = portcullis::lifecycle::recovery::issue(&app.state, &actor, "omar", invite, false).await.unwrap();
    let second = portcullis::lifecycle::recovery::issue(&app.state, &actor, "omar", invite, false).await.unwrap();
    let b = app.browser();
    assert_eq!(
        b.get(first.url.clone().unwrap()).send().await.unwrap().status(),
        400,
        "a newer invitation kills the older"
    );
    assert_eq!(b.get(second.url.clone().unwrap()).send().await.unwrap().status(), 200);
    // Open the form, then let the link expire before submitting.
    let html = b.get(second.url.clone().unwrap()).send().await.unwrap().text().await.unwrap();
    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.invitation_ttl_secs + 1));
    let url = second.url.clone().unwrap();
    let token = url.split("token=").nth(1).unwrap();
    let r = b
        .post(app.url("/invitation"))
        .form(&[("csrf", csrf_in(&html).as_str()), ("token", token), ("new_password", NEW_PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "an expired link sets no password");
    assert!(r.text().await.unwrap().contains("no longer works"));
    let creds = portcullis::storage::entities::password_credential::Entity::find().count(&app.state.db).await.unwrap();
    assert_eq!(creds, 0);
}

/// POSTs the "Forgot password?" form in a fresh browser; returns status and
/// the page without its CSRF token.
async fn forgot(app: &TestApp, who: &str) -> (u16, String) {
    let b = app.browser();
    let csrf = app.csrf_from(&b, "/forgot").await;
    let r = b.post(app.url("/forgot")).form(&[("csrf", csrf.as_str()), ("who", who)]).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn forgot_password_answers_the_same_for_everyone_and_mails_only_a_real_account() {
    let (app, mail) = app_with_mail(|_| {}).await;
    app.create_user("pia", PW, &[]).await;
    set_verified_email(&app, "pia", "pia@example.com").await;
    app.create_user("quinn", PW, &[]).await;
    set_verified_email(&app, "quinn", "quinn@example.com").await;
    portcullis::admin::users::set_disabled(&app.state, &portcullis::admin::Actor::cli(), "quinn", true).await.unwrap();
    app.create_user("noaddr", PW, &[]).await;

    let login = app.browser().get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(login.contains(r#"href="/forgot""#), "the login page offers it when mail is on");

    let by_name = forgot(&app, "pia").await;
    let by_address = forgot(&app, "PIA@example.com").await;
    let unknown = forgot(&app, "nobody").await;
    let unknown_address = forgot(&app, "nobody@example.com").await;
    let disabled = forgot(&app, "quinn").await;
    let no_address = forgot(&app, "noaddr").await;
    assert_eq!(by_name.0, 200);
    for other in [&by_address, &unknown, &unknown_address, &disabled, &no_address] {
        assert_eq!(&by_name, other, "the same status and words whether or not the account exists");
    }
    let got = mail.wait_for("pia@example.com", 2).await;
    assert!(got.iter().all(|m| m.subject.contains("Reset")));
    // Let any mail still in flight arrive, then check nobody else got one.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(mail.all().len(), 2, "{:?}", mail.all().iter().map(|m| &m.to).collect::<Vec<_>>());
    assert!(mail.to("quinn@example.com").is_empty(), "a disabled account gets nothing");
    // The later request's link replaced the earlier one: one of the two lives.
    let mut live = 0;
    for m in &got {
        live +=
            usize::from(app.browser().get(m.link(&app.url("/password/reset"))).send().await.unwrap().status() == 200);
    }
    assert_eq!(live, 1);
    // An address an administrator typed (not proved) gets no reset link: it
    // could be anyone's, e.g. that of an administrator without the right to
    // set passwords who typed their own.
    app.create_user("unproved", PW, &[]).await;
    set_email(&app, "unproved", "someone@attacker.example").await;
    assert_eq!(forgot(&app, "unproved").await, by_name);
    assert_eq!(forgot(&app, "someone@attacker.example").await, by_name);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(mail.to("someone@attacker.example").is_empty());
}

#[tokio::test]
async fn the_forgot_page_does_not_wait_for_the_mail() {
    // An SMTP server that accepts connections and never answers: a page that
    // sent the mail before answering would hang for the SMTP timeout; the
    // page for an account must take no longer than for nobody.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = hung.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            held.push(s);
        }
    });
    let app = spawn_app_with(TestDb::new().await, |s| {
        s.mail_from = Some("id@example.com".into());
        s.smtp_host = Some("127.0.0.1".into());
        s.smtp_port = Some(port);
        s.smtp_tls = portcullis::config::SmtpTls::None;
    })
    .await;
    app.create_user("rita", PW, &[]).await;
    set_verified_email(&app, "rita", "rita@example.com").await;
    let timed = |who: &'static str| {
        let app = &app;
        async move {
            let start = std::time::Instant::now();
            let (status, _) = forgot(app, who).await;
            assert_eq!(status, 200);
            start.elapsed()
        }
    };
    let mut nobody = Vec::new();
    let mut rita = Vec::new();
    for _ in 0..3 {
        nobody.push(timed("nobody").await);
        rita.push(timed("rita").await);
    }
    nobody.sort();
    rita.sort();
    // Medians; a hung send would make rita's thousands of times slower.
    assert!(rita[1] < nobody[1] * 50, "rita {:?} vs nobody {:?}", rita, nobody);
}

#[tokio::test]
async fn a_reset_ends_every_session_keeps_the_second_factor_and_tells_the_person() {
    let (app, mail) = app_with_mail(|_| {}).await;
    let id = app.create_user("sam", PW, &[]).await;
    set_verified_email(&app, "sam", "sam@example.com").await;
    // Sam has TOTP and a signed-in browser (the attacker's, say).
    let old = app.browser();
    let (secret, _) = enrol(&app, &old, "sam").await;
    assert_eq!(old.get(app.url("/account")).send().await.unwrap().status(), 200);
    // An application holds a refresh token of the account (a code of the
    // next time step: the enrolment's code is spent).
    app.state.clock.advance(chrono::Duration::seconds(30));
    let secret_app = crate::oauth::register(&app, crate::oauth::web_client("app1")).await.unwrap();
    let (code, verifier) =
        crate::oauth::get_code_with_totp(&app, &app.browser(), "app1", "sam", "", Some(&secret)).await;
    let (status, tokens) = crate::oauth::exchange(&app, "app1", &secret_app, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let (status, _) = forgot(&app, "sam").await;
    assert_eq!(status, 200);
    let link = mail.wait_for("sam@example.com", 1).await[0].link(&app.url("/password/reset"));
    let r = set_password_through(&app.browser(), &link, NEW_PW).await;
    assert_eq!(location(&r), "/login?m=password_reset");

    // Every session ended.
    assert_eq!(
        session::Entity::find().filter(session::Column::UserId.eq(id.as_str())).count(&app.state.db).await.unwrap(),
        0
    );
    assert_eq!(old.get(app.url("/account")).send().await.unwrap().status(), 303, "the old browser is signed out");
    let live = refresh_family::Entity::find()
        .filter(refresh_family::Column::UserId.eq(id.as_str()))
        .filter(refresh_family::Column::RevokedMs.is_null())
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(live, 0, "every refresh family ended");
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    let (status, body, _) = crate::oauth::token_req(&app, Some(("app1", &secret_app)), &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the application's refresh token is dead"
    );
    // The old password no longer works; the new one needs the code still.
    let b = app.browser();
    assert!(app.login(&b, "sam", PW).await.text().await.unwrap().contains("Login failed"));
    app.state.clock.advance(chrono::Duration::seconds(30));
    let r = app.login(&b, "sam", NEW_PW).await;
    assert_eq!(location(&r), "/login/mfa", "a reset does not bypass the second factor");
    assert_eq!(location(&submit_code(&app, &b, &code_at(&app, &secret, 0)).await), "/account");
    // Told by mail.
    let got = mail.wait_for("sam@example.com", 2).await;
    assert!(got[1].subject.contains("was changed"), "{:?}", got[1].subject);
    logout(&app, &b).await;
    // The link is single-use.
    let again = set_password_through_dead(&app, &link).await;
    assert_eq!(again, 400);
}

async fn set_password_through_dead(app: &TestApp, link: &str) -> u16 {
    app.browser().get(link).send().await.unwrap().status().as_u16()
}

/// Opens a confirmation link (address or sign-up) and presses its button.
async fn confirm_through(b: &reqwest::Client, link: &str, action: &str) -> reqwest::Response {
    let page = b.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200, "the link's page opens");
    let html = page.text().await.unwrap();
    let token = crate::mfa::between(&html, r#"name="token" value=""#, "\"").to_owned();
    let base = &link[..link.find(action).unwrap()];
    b.post(format!("{base}{action}"))
        .form(&[("csrf", csrf_in(&html).as_str()), ("token", token.as_str())])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_address_is_verified_only_by_following_a_link_sent_to_it() {
    let (app, mail) = app_with_mail(|_| {}).await;
    let id = app.create_user("tess", PW, &[]).await;
    set_email(&app, "tess", "tess@example.com").await;
    assert!(!user_row(&app, "tess").await.email_verified, "an address an administrator typed is not verified");

    let b = app.browser();
    assert_eq!(app.login(&b, "tess", PW).await.status(), 303);
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("not confirmed"), "the account page says so");
    let csrf = csrf_in(&page);

    // A change needs the password again.
    let r = b
        .post(app.url("/account/email"))
        .form(&[("csrf", csrf.as_str()), ("new_email", "evil@attacker.example"), ("current_password", "wrong one")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(mail.to("evil@attacker.example").is_empty(), "no link without re-authentication");

    let r = b
        .post(app.url("/account/email"))
        .form(&[("csrf", csrf.as_str()), ("new_email", "tess@new.example"), ("current_password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/account?m=email_sent");
    let link = mail.wait_for("tess@new.example", 1).await[0].link(&app.url("/email/verify"));
    let told = mail.wait_for("tess@example.com", 1).await;
    assert!(told[0].subject.contains("change"), "the old address is told: {:?}", told[0].subject);
    assert!(!told[0].text.contains("tess@new.example"), "…without the whole new address");
    let u = user_row(&app, "tess").await;
    assert_eq!(u.email.as_deref(), Some("tess@example.com"), "nothing changes before the link is followed");

    // Follow it (in another browser: the link alone proves the address).
    let r = confirm_through(&app.browser(), &link, "/email/verify").await;
    assert_eq!(r.status(), 200);
    let u = user_row(&app, "tess").await;
    assert_eq!((u.email.as_deref(), u.email_verified), (Some("tess@new.example"), true));
    // The claim follows the column.
    let view = portcullis::admin::users::show(&app.state, &portcullis::admin::Actor::cli(), "tess").await.unwrap();
    assert!(view.email_verified);
    // Single use.
    assert_eq!(app.browser().get(&link).send().await.unwrap().status(), 400);
    // An administrator's change makes it unverified again.
    set_email(&app, "tess", "tess@other.example").await;
    assert!(!user_row(&app, "tess").await.email_verified);
    let events = portcullis::storage::entities::audit_event::Entity::find()
        .filter(portcullis::storage::entities::audit_event::Column::UserId.eq(id.as_str()))
        .filter(portcullis::storage::entities::audit_event::Column::EventType.eq("user.email_verified"))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(events, 1);
}

#[tokio::test]
async fn sign_up_is_off_by_default() {
    let (app, _mail) = app_with_mail(|_| {}).await;
    assert_eq!(app.browser().get(app.url("/signup")).send().await.unwrap().status(), 404);
    let login = app.browser().get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(!login.contains(r#"href="/signup""#));
}

#[tokio::test]
async fn open_sign_up_verifies_the_address_before_the_account_exists() {
    let (app, mail) = app_with_mail(|s| {
        s.registration = portcullis::config::Registration::Open;
        s.registration_email_domains = vec!["example.com".into()];
    })
    .await;
    app.create_user("taken", PW, &[]).await;
    set_email(&app, "taken", "owner@example.com").await;
    let login = app.browser().get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(login.contains(r#"href="/signup""#), "the login page offers sign-up when it is open");

    let signup = |username: &'static str, email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let b = app.browser();
            let csrf = app.csrf_from(&b, "/signup").await;
            let r = b
                .post(app.url("/signup"))
                .form(&[("csrf", csrf.as_str()), ("username", username), ("email", email), ("new_password", password)])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, html) = signup("uma", "uma@elsewhere.org", NEW_PW).await;
    assert_eq!(status, 400);
    assert!(html.contains("example.com only"), "{html}");
    let (status, html) = signup("uma", "uma@example.com", "password").await;
    assert_eq!(status, 400, "the password policy applies: {html}");
    let (status, _) = signup("taken", "x@example.com", NEW_PW).await;
    assert_eq!(status, 400, "a taken username is said");

    let (ok_status, ok_page) = signup("uma", "uma@example.com", NEW_PW).await;
    let (dup_status, dup_page) = signup("someone", "owner@example.com", NEW_PW).await;
    assert_eq!((ok_status, dup_status), (200, 200));
    let said = |html: &str| crate::mfa::between(html, r#"<p role="status">"#, "</p>").to_owned();
    assert_eq!(said(&ok_page), said(&dup_page), "a registered address is not revealed by the page");
    let notice = mail.wait_for("owner@example.com", 1).await;
    assert!(notice[0].subject.contains("already have"), "{:?}", notice[0].subject);
    assert!(
        user::Entity::find().filter(user::Column::Username.eq("someone")).one(&app.state.db).await.unwrap().is_none()
    );

    // Before the link is followed there is no account.
    let link = mail.wait_for("uma@example.com", 1).await[0].link(&app.url("/signup/confirm"));
    assert!(app.login(&app.browser(), "uma", NEW_PW).await.text().await.unwrap().contains("Login failed"));
    let r = confirm_through(&app.browser(), &link, "/signup/confirm").await;
    assert_eq!(location(&r), "/login?m=account_created");
    let u = user_row(&app, "uma").await;
    assert_eq!((u.email.as_deref(), u.email_verified), (Some("uma@example.com"), true));
    assert_eq!(app.login(&app.browser(), "uma", NEW_PW).await.status(), 303);
    assert_eq!(app.browser().get(&link).send().await.unwrap().status(), 400, "single use");
}

#[tokio::test]
async fn mail_to_one_address_is_limited() {
    let (app, mail) = app_with_mail(|s| s.mail_max_per_address = 3).await;
    app.create_user("vera", PW, &[]).await;
    set_verified_email(&app, "vera", "vera@example.com").await;
    for _ in 0..6 {
        assert_eq!(forgot(&app, "vera").await.0, 200);
    }
    let got = mail.wait_for("vera@example.com", 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(mail.to("vera@example.com").len(), 3, "at most mail_max_per_address mails per window");
    // Requests over the limit did not kill the newest link. Each request is
    // handled after its page answers, so the three mails may arrive in any
    // order: exactly one of them (the newest) still works.
    let mut live = 0;
    for m in &got {
        let status = app.browser().get(m.link(&app.url("/password/reset"))).send().await.unwrap().status();
        live += usize::from(status == 200);
    }
    assert_eq!(live, 1, "the newest link sent survives the requests over the limit");
    let limited = portcullis::storage::entities::audit_event::Entity::find()
        .filter(portcullis::storage::entities::audit_event::Column::Outcome.eq("mail_limited"))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(limited, 3, "each dropped mail is audited");
    // A new window sends again.
    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.mail_window_secs + 1));
    assert_eq!(forgot(&app, "vera").await.0, 200);
    mail.wait_for("vera@example.com", 4).await;
}

#[tokio::test]
async fn the_admin_api_makes_links_with_users_credentials_and_a_recent_login() {
    let (app, mail) = app_with_mail(|_| {}).await;
    let o = app.db.cli(&["user", "add", "wes", "--email", "wes@example.com"], None);
    assert!(o.status.success());
    let aud = format!("{}/admin", app.address);
    let admin = crate::admin_api::service_token(&app, "ops", &["users:credentials"], &aud).await;
    let body = serde_json::json!({ "send": true });
    let (status, body) =
        crate::helpers::api(&app, "POST", "/admin/api/v1/users/wes/invitation", Some(&admin), Some(body)).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["url"].is_null() && body["sent_to"] == "wes@example.com", "{body}");
    assert!(mail.wait_for("wes@example.com", 1).await[0].link(&app.url("/invitation")).contains("token="));
    let (status, body) =
        crate::helpers::api(&app, "POST", "/admin/api/v1/users/wes/reset-link", Some(&admin), None).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["sent_to"].is_null() && body["url"].as_str().is_some(), "printed only: {body}");
    // Without the permission: refused.
    let reader = crate::admin_api::service_token(&app, "reader", &["users:read"], &aud).await;
    let (status, _) =
        crate::helpers::api(&app, "POST", "/admin/api/v1/users/wes/reset-link", Some(&reader), None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_administrator_makes_and_mails_a_link_from_the_user_page() {
    let (app, mail) = app_with_mail(|_| {}).await;
    let o = app.db.cli(&["user", "add", "xena", "--email", "xena@example.com"], None);
    assert!(o.status.success());
    let admin = crate::admin_pages::logged_in(&app, "root", &["admin"]).await;
    let page = admin.get(app.url("/admin/users/xena")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"/admin/users/xena/invite""#), "an account without a password gets an invitation button");
    // Shown once, for the administrator to hand over.
    let r = crate::admin_pages::act(&app, &admin, "xena", "invite", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store", "the page showing the link is not cached");
    let html = r.text().await.unwrap();
    let shown = crate::mfa::between(&html, "): ", "</p>").to_owned();
    assert!(shown.starts_with(&app.url("/invitation?token=")), "{shown}");
    // Mailed: the page says where, not what.
    let r = crate::admin_pages::act(&app, &admin, "xena", "invite", &[("send", "1")]).await;
    let html = r.text().await.unwrap();
    assert!(html.contains("was mailed to xena@example.com") && !html.contains("/invitation?token="), "{html}");
    let mailed = mail.wait_for("xena@example.com", 1).await[0].link(&app.url("/invitation"));
    assert_eq!(app.browser().get(&shown).send().await.unwrap().status(), 400, "the newer link replaced the shown one");
    assert_eq!(location(&set_password_through(&app.browser(), &mailed, NEW_PW).await), "/login?m=account_activated");
    assert!(user_row(&app, "xena").await.email_verified, "a mailed invitation, used, proves the address");
    // Now it has a password: the button makes a reset link instead.
    let page = admin.get(app.url("/admin/users/xena")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"/admin/users/xena/reset-link""#) && !page.contains(r#"/admin/users/xena/invite""#));
}

#[tokio::test]
async fn a_link_cannot_reach_further_than_the_account_did_when_it_was_made() {
    // A helpdesk administrator makes a reset link for a plain user and keeps
    // it; the user is made an administrator; the link must not set their
    // password any more (no escalation through a link made earlier).
    let (app, _mail) = app_with_mail(|_| {}).await;
    app.create_user("yuri", PW, &[]).await;
    let cli = portcullis::admin::Actor::cli();
    let reset = portcullis::lifecycle::Purpose::Reset;
    let kept = portcullis::lifecycle::recovery::issue(&app.state, &cli, "yuri", reset, false).await.unwrap();
    portcullis::admin::users::grant(&app.state, &cli, "yuri", "admin").await.unwrap();
    let r = set_password_through_form(&app, &kept.url.unwrap(), NEW_PW).await;
    assert_eq!(r, 400, "the link died when the account gained permissions");
    assert!(app.login(&app.browser(), "yuri", NEW_PW).await.text().await.unwrap().contains("Login failed"));
}

/// Opens a set-password link and submits it; the status of the POST (or of
/// the GET, if the link's page no longer opens).
async fn set_password_through_form(app: &TestApp, link: &str, password: &str) -> u16 {
    let b = app.browser();
    let page = b.get(link).send().await.unwrap();
    if page.status() != 200 {
        return page.status().as_u16();
    }
    set_password_through(&b, link, password).await.status().as_u16()
}

#[tokio::test]
async fn outstanding_links_die_with_the_old_password_and_with_the_account() {
    let (app, mail) = app_with_mail(|_| {}).await;
    let cli = portcullis::admin::Actor::cli();
    let invite = portcullis::lifecycle::Purpose::Invite;
    // An invitation nobody used, then the password is set another way.
    app.db.cli(&["user", "add", "zara"], None);
    let invitation = portcullis::lifecycle::recovery::issue(&app.state, &cli, "zara", invite, false).await.unwrap();
    portcullis::admin::users::set_password(&app.state, &cli, "zara", &secrecy::SecretString::from(PW.to_owned()))
        .await
        .unwrap();
    assert_eq!(set_password_through_form(&app, &invitation.url.unwrap(), NEW_PW).await, 400);

    // A phisher with the password and a session asks to move the address to
    // theirs; the owner resets the password; the pending change dies.
    set_verified_email(&app, "zara", "zara@example.com").await;
    let phisher = app.browser();
    assert_eq!(app.login(&phisher, "zara", PW).await.status(), 303);
    let page = phisher.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let form =
        [("csrf", csrf_in(&page)), ("new_email", "evil@attacker.example".into()), ("current_password", PW.into())];
    assert_eq!(
        location(&phisher.post(app.url("/account/email")).form(&form).send().await.unwrap()),
        "/account?m=email_sent"
    );
    let pending = mail.wait_for("evil@attacker.example", 1).await[0].link(&app.url("/email/verify"));
    assert_eq!(forgot(&app, "zara").await.0, 200);
    let reset = mail.wait_for("zara@example.com", 2).await.into_iter().find(|m| m.subject.contains("Reset")).unwrap();
    assert_eq!(set_password_through_form(&app, &reset.link(&app.url("/password/reset")), NEW_PW).await, 303);
    assert_eq!(app.browser().get(&pending).send().await.unwrap().status(), 400, "the pending change died");
    assert_eq!(user_row(&app, "zara").await.email.as_deref(), Some("zara@example.com"));

    // Disabling an account kills its links.
    let reset = portcullis::lifecycle::Purpose::Reset;
    let link = portcullis::lifecycle::recovery::issue(&app.state, &cli, "zara", reset, false).await.unwrap();
    portcullis::admin::users::set_disabled(&app.state, &cli, "zara", true).await.unwrap();
    assert_eq!(app.browser().get(link.url.unwrap()).send().await.unwrap().status(), 400);
}

#[tokio::test]
async fn a_username_cannot_pass_for_someone_elses_address() {
    let (app, mail) = app_with_mail(|s| s.registration = portcullis::config::Registration::Open).await;
    app.create_user("alice", PW, &[]).await;
    set_verified_email(&app, "alice", "alice@corp.example").await;
    // Sign-up refuses a username that is an address other than the one given.
    let b = app.browser();
    let csrf = app.csrf_from(&b, "/signup").await;
    let form = [
        ("csrf", csrf.as_str()),
        ("username", "alice@corp.example"),
        ("email", "mallory@example.com"),
        ("new_password", NEW_PW),
    ];
    let r = b.post(app.url("/signup")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // An account made some other way with such a name still does not catch
    // Alice's reset: an input with @ is an address first.
    app.create_user("alice@corp.example", PW, &[]).await;
    set_verified_email(&app, "alice@corp.example", "mallory@example.com").await;
    assert_eq!(forgot(&app, "alice@corp.example").await.0, 200);
    mail.wait_for("alice@corp.example", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(mail.to("mallory@example.com").is_empty());
}

/// Makes a private CA and a certificate for `localhost` signed by it.
fn private_ca(dir: &std::path::Path) -> bool {
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    run(&[&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Test CA"]]
        .concat())
        && run(&[&["req"][..], &ec, &["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost"]].concat())
        && run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ])
}

#[tokio::test]
async fn mail_goes_over_starttls_only_to_a_server_whose_certificate_is_trusted() {
    let certs = tempfile::tempdir().unwrap();
    let required = std::env::var("PORTCULLIS_BROWSER_TESTS").as_deref() == Ok("1");
    if !private_ca(certs.path()) {
        assert!(!required, "openssl is needed to make the test certificates");
        eprintln!("SKIPPED: no openssl");
        return;
    }
    let Some(mail) = Mailbox::start_starttls(&certs.path().join("leaf.pem"), &certs.path().join("leaf.key")).await
    else {
        eprintln!("SKIPPED: no SMTP server (tests/mail/requirements.txt)");
        return;
    };
    let port = mail.port().unwrap();
    let tls = |ca: Option<std::path::PathBuf>| {
        move |s: &mut portcullis::config::Settings| {
            s.mail_from = Some("Portcullis <id@example.com>".into());
            s.smtp_host = Some("localhost".into());
            s.smtp_port = Some(port);
            s.smtp_tls = portcullis::config::SmtpTls::Starttls;
            s.smtp_ca_file = ca;
        }
    };
    let cli = portcullis::admin::Actor::cli();
    let reset = portcullis::lifecycle::Purpose::Reset;
    // Trusting the private CA: the mail goes, over TLS (the server takes
    // no mail before STARTTLS).
    let app = spawn_app_with(TestDb::new().await, tls(Some(certs.path().join("ca.pem")))).await;
    app.create_user("uri", PW, &[]).await;
    set_email(&app, "uri", "uri@example.com").await;
    let sent = portcullis::lifecycle::recovery::issue(&app.state, &cli, "uri", reset, true).await.unwrap();
    assert_eq!(sent.sent_to.as_deref(), Some("uri@example.com"));
    assert_eq!(mail.wait_for("uri@example.com", 1).await.len(), 1);
    // Not trusting it: nothing is sent, and the administrator is told.
    let app = spawn_app_with(TestDb::new().await, tls(None)).await;
    app.create_user("vic", PW, &[]).await;
    set_email(&app, "vic", "vic@example.com").await;
    let refused = portcullis::lifecycle::recovery::issue(&app.state, &cli, "vic", reset, true).await.unwrap_err();
    assert!(refused.to_string().contains("not mailed"), "{refused}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(mail.to("vic@example.com").is_empty());
}
