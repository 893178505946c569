//! The second factor: guessing it, and planting it.

use portcullis::storage::entities::session;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::helpers::{TestApp, csrf_in, spawn_app};
use crate::mfa::{PW, between, code_at, enrol, location, logout, submit_code};

async fn sessions_of(app: &TestApp, user_id: &str) -> u64 {
    session::Entity::find().filter(session::Column::UserId.eq(user_id)).count(&app.state.db).await.unwrap()
}

/// Item 1: a correct password used to clear the failure count, so "password,
/// one wrong code" repeated for ever never locked anything (≈ 400 guesses per
/// 5 minutes). Now wrong codes count on their own counter that only a correct
/// second factor clears: after five of them the right code is refused too.
#[tokio::test]
async fn totp_guessing_locks_the_second_factor_whatever_the_password_does() {
    let app = spawn_app().await;
    let id = app.create_user("vera", PW, &[]).await;
    let owner = app.browser();
    let (secret, _) = enrol(&app, &owner, "vera").await;
    logout(&app, &owner).await;
    app.state.clock.advance(chrono::Duration::seconds(30));

    let attacker = app.browser();
    for round in 0..6 {
        // A stolen password: the password step succeeds every time...
        assert_eq!(location(&app.login(&attacker, "vera", PW).await), "/login/mfa", "round {round}");
        // ...and one wrong code follows.
        let r = submit_code(&app, &attacker, "000000").await;
        assert!(r.text().await.unwrap().contains("Login failed"));
    }
    // The attacker's next guess happens to be right: refused all the same.
    assert_eq!(location(&app.login(&attacker, "vera", PW).await), "/login/mfa");
    let r = submit_code(&app, &attacker, &code_at(&app, &secret, 0)).await;
    assert_eq!(r.status(), 200, "no session for a locked second factor");
    assert_eq!(sessions_of(&app, &id).await, 0);

    // The count of wrong codes does not fade with time: a quarter of an hour
    // later, one more wrong code locks again at once.
    app.state.clock.advance(chrono::Duration::minutes(16));
    assert_eq!(location(&app.login(&attacker, "vera", PW).await), "/login/mfa");
    submit_code(&app, &attacker, "000000").await;
    assert_eq!(location(&app.login(&attacker, "vera", PW).await), "/login/mfa");
    assert_eq!(submit_code(&app, &attacker, &code_at(&app, &secret, 0)).await.status(), 200, "still locked");
    assert_eq!(sessions_of(&app, &id).await, 0);

    // The lock is a lock, not a ban: later the right code works again.
    app.state.clock.advance(chrono::Duration::hours(2));
    let b = app.browser();
    assert_eq!(location(&app.login(&b, "vera", PW).await), "/login/mfa");
    assert_eq!(submit_code(&app, &b, &code_at(&app, &secret, 0)).await.status(), 303);
}

/// Item 1, on the account page: with a borrowed session and the password,
/// each form re-checked the password (clearing the count) before the code.
#[tokio::test]
async fn the_account_mfa_forms_count_wrong_codes_on_the_same_counter() {
    let app = spawn_app().await;
    app.create_user("wes", PW, &[]).await;
    let b = app.browser();
    let (secret, _) = enrol(&app, &b, "wes").await;
    app.state.clock.advance(chrono::Duration::seconds(30));
    let html = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_in(&html);
    for _ in 0..6 {
        let form = [("csrf", csrf.as_str()), ("reauth", PW), ("reauth_code", "000000")];
        let r = b.post(app.url("/account/mfa/disable")).form(&form).send().await.unwrap();
        assert!(r.text().await.unwrap().contains("was not correct"));
    }
    let right = code_at(&app, &secret, 0);
    let form = [("csrf", csrf.as_str()), ("reauth", PW), ("reauth_code", right.as_str())];
    let r = b.post(app.url("/account/mfa/disable")).form(&form).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("was not correct"), "the right code is refused while locked");
    assert!(
        portcullis::authn::mfa::has_totp(
            &app.state.db,
            &portcullis::admin::users::show(&app.state, &portcullis::admin::Actor::cli(), "wes").await.unwrap().id
        )
        .await
        .unwrap()
    );
}

/// Item 2: a pending enrolment belonged to the user and was shown to any of
/// their sessions, so whoever knew the password of a not-yet-enrolled
/// administrator could note the secret first and pass MFA later.
#[tokio::test]
async fn a_totp_secret_cannot_be_planted_before_the_owner_enrols() {
    let app = spawn_app().await;
    let id = app.create_user("root", "violet anvil tramline 2", &["admin"]).await;
    let pw = "violet anvil tramline 2";

    // The attacker starts the enrolment and notes the secret.
    let attacker = app.browser();
    assert_eq!(location(&app.login(&attacker, "root", pw).await), "/login/enrol");
    let attacker_page = attacker.get(app.url("/login/enrol")).send().await.unwrap().text().await.unwrap();
    let page = attacker_page.clone();
    let planted = between(&page, r#"<code id="totp-secret">"#, "</code>").to_owned();
    let planted_id = between(&page, r#"name="enrolment" value=""#, "\"").to_owned();

    // The real administrator logs in and sees a secret of their own.
    let owner = app.browser();
    assert_eq!(location(&app.login(&owner, "root", pw).await), "/login/enrol");
    let page = owner.get(app.url("/login/enrol")).send().await.unwrap().text().await.unwrap();
    let mine = between(&page, r#"<code id="totp-secret">"#, "</code>").to_owned();
    let mine_id = between(&page, r#"name="enrolment" value=""#, "\"").to_owned();
    assert_ne!(planted, mine, "a pending secret is never shown to another login");

    // The attacker cannot confirm the owner's enrolment from their login...
    let again = attacker.get(app.url("/login/mfa")).send().await.unwrap();
    assert_eq!(again.status(), 303, "the attacker's challenge is for enrolment, not a code");
    let code = code_at(&app, &mine, 0);
    let theirs = [("csrf", csrf_in(&attacker_page)), ("enrolment", mine_id.clone()), ("code", code.clone())];
    let r = attacker.post(app.url("/login/enrol")).form(&theirs).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("out of date"), "bound to the login that started it");
    // ...nor their own, replaced one.
    let stale = [("csrf", csrf_in(&attacker_page)), ("enrolment", planted_id), ("code", code_at(&app, &planted, 0))];
    let r = attacker.post(app.url("/login/enrol")).form(&stale).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("out of date"));

    // The owner enrols.
    let form = [("csrf", csrf_in(&page)), ("enrolment", mine_id), ("code", code)];
    let r = owner.post(app.url("/login/enrol")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("recovery-codes"));
    logout(&app, &owner).await;
    assert_eq!(sessions_of(&app, &id).await, 0);

    // With the password and the noted secret, the attacker gets nowhere.
    app.state.clock.advance(chrono::Duration::seconds(30));
    let attacker = app.browser();
    assert_eq!(location(&app.login(&attacker, "root", pw).await), "/login/mfa");
    let r = submit_code(&app, &attacker, &code_at(&app, &planted, 0)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(sessions_of(&app, &id).await, 0);
}

/// Item 2: a borrowed session could open "Move to a new device" and read a
/// new secret without proving anything.
#[tokio::test]
async fn moving_to_a_new_device_needs_the_password_and_a_code_before_any_secret_is_shown() {
    let app = spawn_app().await;
    app.create_user("xia", PW, &[]).await;
    let b = app.browser();
    let (secret, _) = enrol(&app, &b, "xia").await;
    app.state.clock.advance(chrono::Duration::seconds(30));

    let page = b.get(app.url("/account/mfa")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("totp-secret"), "no secret for a session alone");
    assert!(page.contains(r#"name="reauth""#));
    // Without the code: still nothing.
    let r = b.post(app.url("/account/mfa")).form(&[("csrf", csrf_in(&page).as_str()), ("reauth", PW)]).send();
    let html = r.await.unwrap().text().await.unwrap();
    assert!(!html.contains("totp-secret") && html.contains("was not correct"));
    // With both: the new secret, confirmed by a code from it.
    let code = code_at(&app, &secret, 0);
    let form = [("csrf", csrf_in(&page)), ("reauth", PW.to_owned()), ("reauth_code", code)];
    let html = b.post(app.url("/account/mfa")).form(&form).send().await.unwrap().text().await.unwrap();
    let new_secret = between(&html, r#"<code id="totp-secret">"#, "</code>").to_owned();
    let enrolment = between(&html, r#"name="enrolment" value=""#, "\"").to_owned();
    assert_ne!(new_secret, secret);
    // Reloading the page never shows that pending secret again.
    let reload = b.get(app.url("/account/mfa")).send().await.unwrap().text().await.unwrap();
    assert!(!reload.contains(&new_secret));
    let new_code = code_at(&app, &new_secret, 0);
    let form = [("csrf", csrf_in(&html)), ("enrolment", enrolment), ("code", new_code)];
    let r = b.post(app.url("/account/mfa")).form(&form).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("recovery-codes"));
}
