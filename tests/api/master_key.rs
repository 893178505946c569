//! Master-key rotation (issue #19, part 5; ASVS V11.2.2): interrupted half
//! way, the instances that hold the new key with the old one as second key
//! read every secret; resumed from the CLI, it completes, and then the new
//! key alone opens everything — TOTP seeds (a login with a code), signing
//! keys (a token signed before still verifies), the keyed hashes (a client
//! secret, a session made before) — while the old key alone is refused.

use base64::Engine;
use portcullis::admin::Actor;
use portcullis::admin::master_key::rotate;
use portcullis::crypto::MasterKey;
use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::{Replica, TestApp, csrf_in, location, spawn_app, spawn_replica};
use crate::mfa::{PW, code_at, enrol, logout};
use crate::oauth::{register, token_req};

fn new_key() -> String {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Password, then a TOTP code, at `base`; true when it lands signed in.
async fn totp_login(base: &str, user: &str, code: &str) -> bool {
    let b = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = b.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_in(&page)), ("username", user.to_owned()), ("password", PW.to_owned())];
    let r = b.post(format!("{base}/login")).form(&form).send().await.unwrap();
    if r.status() != 303 || !location(&r).contains("/login/mfa") {
        return false;
    }
    let page = b.get(format!("{base}/login/mfa")).send().await.unwrap().text().await.unwrap();
    let r = b.post(format!("{base}/login/mfa")).form(&[("csrf", csrf_in(&page).as_str()), ("code", code)]).send();
    let r = r.await.unwrap();
    r.status() == 303 && b.get(format!("{base}/account")).send().await.unwrap().status() == 200
}

async fn introspect(r: &Replica, secret: &str, token: &str) -> Value {
    reqwest::Client::new()
        .post(r.url("/introspect"))
        .basic_auth("svc", Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A replica with the given master keys; checks what a server needs.
async fn replica_with(app: &TestApp, primary: &str, second: Option<&str>) -> Replica {
    app.state.clock.advance(chrono::Duration::seconds(60)); // a fresh TOTP step per login
    let (primary, second) = (primary.to_owned(), second.map(str::to_owned));
    spawn_replica(app, move |s| {
        s.master_key = Some(SecretString::from(primary));
        s.master_key_secondary = second.map(SecretString::from);
    })
    .await
}

#[tokio::test]
async fn an_interrupted_rotation_resumes_and_leaves_every_secret_readable_with_the_new_key() {
    let app = spawn_app().await;
    let old = app.db.master_key.clone();
    let new = new_key();
    app.create_user("tina", PW, &[]).await;
    let b = app.browser();
    let (seed, _) = enrol(&app, &b, "tina").await;
    logout(&app, &b).await;
    // A session made before (its id is a keyed hash), a client secret, a token.
    let kept = app.browser();
    assert_eq!(app.login(&kept, "tina", PW).await.status(), 303);
    let code = code_at(&app, &seed, 1);
    let page = kept.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    let r = kept.post(app.url("/login/mfa")).form(&[("csrf", csrf_in(&page).as_str()), ("code", code.as_str())]);
    assert_eq!(r.send().await.unwrap().status(), 303);
    let spec = portcullis::admin::clients::ClientSpec {
        client_id: "svc".into(),
        grants: vec!["client_credentials".into()],
        ..Default::default()
    };
    let secret = register(&app, spec).await.unwrap();
    let (_, t, _) = token_req(&app, Some(("svc", &secret)), &[("grant_type", "client_credentials")]).await;
    let token = t["access_token"].as_str().unwrap().to_owned();

    // Interrupted after two envelopes.
    let new_mk = MasterKey::from_base64(&new).unwrap();
    let part = rotate(&app.state, &Actor::cli(), &new_mk, Some(2)).await.unwrap();
    assert!(!part.complete);
    assert_eq!(part.data_keys + part.signing_keys + part.totp_credentials + part.totp_enrolments, 2);

    // Half-way: the new key with the old as second key reads everything.
    let mixed = replica_with(&app, &new, Some(&old)).await;
    assert!(totp_login(&mixed.address, "tina", &code_at(&app, &seed, 0)).await, "TOTP seed readable");
    assert_eq!(introspect(&mixed, &secret, &token).await["active"], true, "client secret and signing keys");

    // A third key while two are configured (the instances' rotation
    // settings): refused, nothing re-sealed under a key no instance holds.
    let file = tempfile::NamedTempFile::new().unwrap();
    let third = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    std::fs::write(file.path(), &third).unwrap();
    let env = [("PORTCULLIS_MASTER_KEY_SECONDARY".to_owned(), new.clone())];
    let o = app.db.cli_env(&["master-key", "rotate", "--new-key-file", file.path().to_str().unwrap()], None, &env);
    crate::helpers::assert_clean_failure(&o, "neither the configured master key nor the second key");

    // Resumed from the CLI (configured with the old key): complete.
    std::fs::write(file.path(), &new).unwrap();
    let o = app.db.cli(&["--json", "master-key", "rotate", "--new-key-file", file.path().to_str().unwrap()], None);
    assert!(o.status.success(), "{}", crate::helpers::stderr(&o));
    let v: Value = serde_json::from_str(&crate::helpers::stdout(&o)).unwrap();
    assert_eq!(v["complete"], true, "{v}");
    assert_eq!(v["already_rotated"], 2, "the interrupted run's work is kept: {v}");
    let again = app.db.cli(&["--json", "master-key", "rotate", "--new-key-file", file.path().to_str().unwrap()], None);
    let v: Value = serde_json::from_str(&crate::helpers::stdout(&again)).unwrap();
    assert_eq!(v["signing_keys"], 0, "a second run has nothing left to do: {v}");

    // The new key alone: everything opens.
    let fresh = replica_with(&app, &new, None).await;
    assert!(totp_login(&fresh.address, "tina", &code_at(&app, &seed, 0)).await, "TOTP after rotation");
    assert_eq!(introspect(&fresh, &secret, &token).await["active"], true, "signed before, verified after");
    let (s, _, _) = {
        let r = reqwest::Client::new()
            .post(fresh.url("/token"))
            .basic_auth("svc", Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        (r.status(), (), ())
    };
    assert_eq!(s, 200, "the client secret (a keyed hash) still verifies");
    let account = kept.get(fresh.url("/account")).send().await.unwrap();
    assert_eq!(account.status(), 200, "the session made before still counts");

    // The old key alone no longer opens this database.
    let mut settings = (*app.state.settings).clone();
    settings.master_key = Some(SecretString::from(old.clone()));
    let refused = portcullis::state::AppState::build(settings, portcullis::clock::Clock::System).await;
    assert!(refused.is_err(), "the old key alone is refused");
    crate::helpers::assert_clean_failure(&app.db.cli(&["user", "list"], None), "master key does not match");
}
