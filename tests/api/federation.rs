//! Upstream identity providers (#18 part 6), against a second Portcullis
//! running as its own process (the `portcullis serve` binary, its own
//! database) as the upstream provider: just-in-time accounts, group→role
//! rules applied and taken back, linking only after the account is proved,
//! and the attacks on the relying-party side — a tampered `state`, a wrong
//! `iss`, a replayed or foreign callback.

use std::process::Stdio;
use std::time::{Duration, Instant};

use portcullis::config::{RoleRule, UpstreamProvider};
use portcullis::storage::entities::{session, upstream_identity, user};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::helpers::{TestApp, TestDb, csrf_in, location, spawn_app_with};

const UP_PW: &str = "granite harbour lantern";

/// The upstream provider: another Portcullis, as a process.
struct Upstream {
    url: String,
    db: TestDb,
    _child: tokio::process::Child,
}

impl Upstream {
    async fn start() -> Self {
        let db = TestDb::new().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Another host name than the app's (127.0.0.1): browsers keep cookies per host.
        let url = format!("http://localhost:{port}");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
        for (k, _) in std::env::vars() {
            if k.starts_with("PORTCULLIS_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .arg("serve")
            .env("PORTCULLIS_DATABASE_URL", &db.url)
            .env("PORTCULLIS_MASTER_KEY", &db.master_key)
            .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
            .env("PORTCULLIS_ISSUER", &url)
            .env("PORTCULLIS_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the upstream portcullis");
        let http = reqwest::Client::new();
        let t = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{url}/readyz")).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "the upstream did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { url, db, _child: child }
    }

    fn cli(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.db.cli(args, stdin);
        assert!(o.status.success(), "upstream {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Marks a user's address as proved at the upstream (as following its
    /// verification link would), so its ID tokens say `email_verified`.
    async fn verify_email(&self, name: &str) {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect(&self.db.url).await.unwrap();
        let sql = format!("UPDATE users SET email_verified = TRUE WHERE username = '{name}'");
        db.execute_unprepared(&sql).await.unwrap();
        db.close().await.unwrap();
    }

    fn user(&self, name: &str, email: &str, roles: &[&str]) {
        let mut args = vec!["user", "add", name, "--email", email, "--password-stdin"];
        for r in roles {
            args.extend(["--role", r]);
        }
        self.cli(&args, Some(UP_PW));
    }
}

/// The app, with the upstream registered as provider `corp` (and the app
/// registered there as a client).
async fn federated(adjust: impl FnOnce(&mut UpstreamProvider)) -> (TestApp, Upstream, tempfile::NamedTempFile) {
    let up = Upstream::start().await;
    up.cli(&["role", "add", "eng"], None);
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    let mut provider = UpstreamProvider {
        id: "corp".into(),
        name: "Corp SSO".into(),
        issuer: up.url.clone(),
        client_id: "downstream".into(),
        client_secret_file: Some(secret_file.path().to_path_buf()),
        client_secret_env: None,
        scopes: vec!["email".into(), "profile".into(), "roles".into()],
        create_accounts: true,
        trust_mfa: false,
        mfa_acr_values: Vec::new(),
        groups_claim: Some("roles".into()),
        role_rules: vec![RoleRule { group: "eng".into(), role: "engineer".into() }],
    };
    adjust(&mut provider);
    let app = spawn_app_with(TestDb::new().await, |s| s.upstream = vec![provider]).await;
    let cli = portcullis::admin::Actor::cli();
    portcullis::admin::roles::add(&app.state, &cli, "engineer", None).await.unwrap();
    portcullis::admin::roles::add(&app.state, &cli, "auditor", None).await.unwrap();
    let callback = app.url("/login/upstream/corp/callback");
    let out = up.cli(
        &[
            "--json",
            "client",
            "add",
            "downstream",
            "--redirect-uri",
            &callback,
            "--scope",
            "email",
            "--scope",
            "profile",
            "--scope",
            "roles",
            "--first-party",
        ],
        None,
    );
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    std::fs::write(secret_file.path(), created["client_secret"].as_str().unwrap()).unwrap();
    (app, up, secret_file)
}

fn absolute(base: &str, loc: &str) -> String {
    url::Url::parse(base).unwrap().join(loc).unwrap().to_string()
}

/// A browser goes from `start` (on the app) through the upstream's login as
/// `user`, and returns the URL the upstream sends it back to (not followed).
async fn to_callback(app: &TestApp, b: &reqwest::Client, start: &str, user: &str) -> String {
    let mut next = absolute(&app.address, start);
    for _ in 0..10 {
        if next.starts_with(&app.url("/login/upstream/corp/callback")) {
            return next;
        }
        let r = b.get(&next).send().await.unwrap();
        if r.status().is_redirection() {
            next = absolute(&next, &location(&r));
            continue;
        }
        let page = url::Url::parse(&next).unwrap();
        let html = r.text().await.unwrap();
        if page.path() == "/login/mfa" {
            // The upstream asks for its own second factor.
            let r = b
                .post(absolute(&next, "/login/mfa"))
                .form(&[("csrf", csrf_in(&html).as_str()), ("code", code_now().as_str())])
                .send()
                .await
                .unwrap();
            assert!(r.status().is_redirection(), "upstream code: {}", r.status());
            next = absolute(&next, &location(&r));
            continue;
        }
        assert_eq!(page.path(), "/login", "an upstream login page, not {next}");
        let request = html.split(r#"name="request" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
        let login = absolute(&next, "/login");
        let r = b
            .post(&login)
            .form(&[("csrf", csrf_in(&html).as_str()), ("username", user), ("password", UP_PW), ("request", &request)])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "upstream login: {}", r.status());
        next = absolute(&login, &location(&r));
    }
    panic!("no way back from the upstream");
}

async fn user_named(app: &TestApp, name: &str) -> Option<user::Model> {
    user::Entity::find().filter(user::Column::Username.eq(name)).one(&app.state.db).await.unwrap()
}

async fn roles(app: &TestApp, name: &str) -> Vec<String> {
    let u = user_named(app, name).await.unwrap();
    portcullis::storage::users::roles(&app.state.db, &u.id).await.unwrap()
}

async fn signed_in(app: &TestApp, b: &reqwest::Client) -> bool {
    b.get(app.url("/account")).send().await.unwrap().status() == 200
}

#[tokio::test]
async fn a_first_upstream_sign_in_makes_the_account_and_groups_give_and_take_roles() {
    let (app, up, _secret) = federated(|_| {}).await;
    up.user("carol", "carol@corp.example", &["eng"]);

    let login = app.browser().get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(login.contains(r#"href="/login/upstream/corp""#) && login.contains("Sign in with Corp SSO"));

    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "carol").await;
    assert!(back.contains("iss="), "the upstream names itself in the response (RFC 9207): {back}");
    let r = b.get(&back).send().await.unwrap();
    assert_eq!(location(&r), "/account");
    assert!(signed_in(&app, &b).await);
    assert_eq!(roles(&app, "carol").await, ["engineer"], "the eng group gives engineer");
    let carol = user_named(&app, "carol").await.unwrap();
    let s = session::Entity::find().filter(session::Column::UserId.eq(carol.id.as_str())).one(&app.state.db).await;
    let amr: Vec<String> = serde_json::from_str(&s.unwrap().unwrap().amr).unwrap();
    assert_eq!(amr, ["fed"], "a federated first factor, not a password");
    assert!(!carol.email_verified, "the upstream's address is not proved here");

    // A role given here by an administrator stays; the group's role goes
    // when the group does.
    portcullis::admin::users::grant(&app.state, &portcullis::admin::Actor::cli(), "carol", "auditor").await.unwrap();
    up.cli(&["user", "revoke", "carol", "eng"], None);
    let b2 = app.browser();
    let back = to_callback(&app, &b2, "/login/upstream/corp", "carol").await;
    assert_eq!(location(&b2.get(&back).send().await.unwrap()), "/account");
    assert_eq!(roles(&app, "carol").await, ["auditor"], "engineer taken back at the next sign-in");
    assert_eq!(user::Entity::find().count(&app.state.db).await.unwrap(), 1, "the same account, not a second one");
}

#[tokio::test]
async fn a_tampered_state_a_wrong_issuer_and_a_replayed_or_foreign_callback_sign_nobody_in() {
    let (app, up, _secret) = federated(|_| {}).await;
    up.user("erin", "erin@corp.example", &[]);
    let failed = |html: &str| html.contains("Login failed");

    // A tampered state.
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "erin").await;
    let st = crate::helpers::param(&back, "state").unwrap();
    let tampered = back.replace(&format!("state={st}"), &format!("state={}x", &st[..st.len() - 1]));
    assert!(failed(&b.get(&tampered).send().await.unwrap().text().await.unwrap()));
    assert!(!signed_in(&app, &b).await);

    // A wrong issuer in the response (mix-up).
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "erin").await;
    let iss = crate::helpers::param(&back, "iss").unwrap();
    let wrong = back.replace(&crate::oauth::urlencode(&iss), &crate::oauth::urlencode("http://evil.example"));
    assert_ne!(wrong, back);
    assert!(failed(&b.get(&wrong).send().await.unwrap().text().await.unwrap()));
    assert!(!signed_in(&app, &b).await);

    // A callback finished in another browser (login CSRF: someone else's
    // upstream sign-in pushed into this browser) is refused.
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "erin").await;
    let victim = app.browser();
    assert!(failed(&victim.get(&back).send().await.unwrap().text().await.unwrap()));
    assert!(!signed_in(&app, &victim).await);

    // A good callback signs in once; replayed, it signs in nobody.
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "erin").await;
    assert_eq!(location(&b.get(&back).send().await.unwrap()), "/account");
    let again = app.browser();
    assert!(failed(&again.get(&back).send().await.unwrap().text().await.unwrap()));
    assert!(!signed_in(&app, &again).await);
    assert!(failed(&b.get(&back).send().await.unwrap().text().await.unwrap()), "not even in the same browser");
    let refusals = portcullis::storage::entities::audit_event::Entity::find()
        .filter(portcullis::storage::entities::audit_event::Column::EventType.eq("user.upstream_login"))
        .filter(portcullis::storage::entities::audit_event::Column::Outcome.is_in(["bad_state", "wrong_issuer"]))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(refusals, 5, "each refusal is audited with its reason");
}

#[tokio::test]
async fn an_existing_account_is_linked_only_after_its_holder_proves_it() {
    let (app, up, _secret) = federated(|_| {}).await;
    // Dave has an account here and one upstream, with the same address.
    let dave = app.create_user("dave", crate::mfa::PW, &[]).await;
    let patch =
        portcullis::admin::users::ProfilePatch { email: Some(Some("dave@corp.example".into())), ..Default::default() };
    portcullis::admin::users::update_profile(&app.state, &portcullis::admin::Actor::cli(), "dave", patch)
        .await
        .unwrap();
    up.user("dave", "dave@corp.example", &[]);
    up.verify_email("dave").await;

    // Signing in upstream does not reach the local account by its address.
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "dave").await;
    let r = b.get(&back).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("link Corp SSO on your account page"));
    assert!(!signed_in(&app, &b).await);
    assert_eq!(upstream_identity::Entity::find().count(&app.state.db).await.unwrap(), 0);
    assert_eq!(user::Entity::find().count(&app.state.db).await.unwrap(), 1, "no second account either");

    // Signed in with his password, Dave links it (the password again first).
    let b = app.browser();
    assert_eq!(app.login(&b, "dave", crate::mfa::PW).await.status(), 303);
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_in(&page);
    let r = b
        .post(app.url("/account/upstream/corp/link"))
        .form(&[("csrf", csrf.as_str()), ("current_password", "not it")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a wrong password starts nothing");
    let r = b
        .post(app.url("/account/upstream/corp/link"))
        .form(&[("csrf", csrf.as_str()), ("current_password", crate::mfa::PW)])
        .send()
        .await
        .unwrap();
    assert!(location(&r).starts_with(&up.url), "off to the provider");
    let back = to_callback(&app, &b, &location(&r), "dave").await;
    assert_eq!(location(&b.get(&back).send().await.unwrap()), "/account?m=upstream_linked");
    let linked = upstream_identity::Entity::find().one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(linked.user_id, dave);

    // From now on the upstream sign-in is Dave's.
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "dave").await;
    assert_eq!(location(&b.get(&back).send().await.unwrap()), "/account");
    let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("dave") && page.contains("Corp SSO"), "{page}");
}

const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn code_now() -> String {
    let seed = totp_rs::Secret::try_from_base32(SEED).unwrap().as_ref().to_vec();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    totp_rs::Builder::new().with_secret(seed).build().unwrap().generate(now).to_string()
}

async fn amr_of(app: &TestApp, name: &str) -> Vec<String> {
    let u = user_named(app, name).await.unwrap();
    let s = session::Entity::find().filter(session::Column::UserId.eq(u.id.as_str())).all(&app.state.db).await.unwrap();
    serde_json::from_str(&s.last().unwrap().amr).unwrap()
}

#[tokio::test]
async fn without_trust_in_the_providers_second_factor_the_accounts_own_is_asked_for() {
    let (app, up, _secret) = federated(|_| {}).await;
    up.user("fay", "fay@corp.example", &[]);
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "fay").await;
    assert_eq!(location(&b.get(&back).send().await.unwrap()), "/account");
    // Fay sets up TOTP here: from now on the provider alone is not enough.
    let cli = portcullis::admin::Actor::cli();
    portcullis::admin::users::totp_import(&app.state, &cli, "fay", &secrecy::SecretString::from(SEED)).await.unwrap();
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "fay").await;
    assert_eq!(location(&b.get(&back).send().await.unwrap()), "/login/mfa");
    let page = b.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    let code = crate::mfa::code_at(&app, SEED, 0);
    let r = b
        .post(app.url("/login/mfa"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/account");
    assert_eq!(amr_of(&app, "fay").await, ["fed", "otp"], "the first factor was the provider, not a password");
}

#[tokio::test]
async fn a_trusted_providers_second_factor_counts_as_two_step_here() {
    // Our upstream says acr "2" after a password and a code (its amr names
    // the methods, pwd and otp; `mfa` alone would do as well).
    let (app, up, _secret) = federated(|p| {
        p.trust_mfa = true;
        p.mfa_acr_values = vec!["2".into()];
    })
    .await;
    up.user("gus", "gus@corp.example", &[]);
    up.cli(&["user", "totp-import", "gus", "--secret-stdin"], Some(SEED));
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "gus").await;
    assert_eq!(location(&b.get(&back).send().await.unwrap()), "/account");
    assert_eq!(amr_of(&app, "gus").await, ["fed", "mfa"]);
}

#[tokio::test]
async fn a_trusted_provider_naming_one_method_is_not_two_step() {
    // `otp` in amr names a method, not that two were used: without `mfa`
    // or a listed acr, the provider's sign-in counts as one factor.
    let (app, up, _secret) = federated(|p| p.trust_mfa = true).await;
    up.user("ike", "ike@corp.example", &[]);
    up.cli(&["user", "totp-import", "ike", "--secret-stdin"], Some(SEED));
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "ike").await;
    assert_eq!(location(&b.get(&back).send().await.unwrap()), "/account");
    assert_eq!(amr_of(&app, "ike").await, ["fed"]);
}

#[tokio::test]
async fn a_role_granted_here_is_not_taken_back_by_the_group_rules() {
    let (app, up, _secret) = federated(|_| {}).await;
    up.user("jo", "jo@corp.example", &[]);
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "jo").await;
    assert_eq!(location(&b.get(&back).send().await.unwrap()), "/account");
    assert!(roles(&app, "jo").await.is_empty());
    // An administrator makes Jo an engineer here; later Jo joins and leaves
    // the upstream group that also gives it: the grant made here stays.
    portcullis::admin::users::grant(&app.state, &portcullis::admin::Actor::cli(), "jo", "engineer").await.unwrap();
    for grant in [true, false] {
        up.cli(&["user", if grant { "grant" } else { "revoke" }, "jo", "eng"], None);
        let b = app.browser();
        let back = to_callback(&app, &b, "/login/upstream/corp", "jo").await;
        assert_eq!(location(&b.get(&back).send().await.unwrap()), "/account");
        assert_eq!(roles(&app, "jo").await, ["engineer"]);
    }
}

/// The roles the group rules gave are remembered per identity, to take them
/// back when the group goes. A remembered list that no longer parses is not
/// read as "gave nothing" (which would keep the role for ever): the sign-in
/// is refused and audited, and nothing changes.
#[tokio::test]
async fn a_damaged_record_of_the_roles_the_rules_gave_refuses_the_sign_in() {
    use portcullis::storage::entities::{audit_event, upstream_identity};
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let (app, up, _secret) = federated(|_| {}).await;
    up.user("dee", "dee@corp.example", &["eng"]);
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "dee").await;
    assert_eq!(location(&b.get(&back).send().await.unwrap()), "/account");
    assert_eq!(roles(&app, "dee").await, ["engineer"]);
    let mut identity = upstream_identity::Entity::find().one(&app.state.db).await.unwrap().unwrap().into_active_model();
    identity.mapped_roles = Set("not json".into());
    identity.update(&app.state.db).await.unwrap();
    // The group goes upstream; the next sign-in must not keep the role silently.
    up.cli(&["user", "revoke", "dee", "eng"], None);
    let b2 = app.browser();
    let back = to_callback(&app, &b2, "/login/upstream/corp", "dee").await;
    assert_ne!(location(&b2.get(&back).send().await.unwrap()), "/account", "refused");
    assert!(!signed_in(&app, &b2).await);
    let refused = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq("user.upstream_login"))
        .filter(audit_event::Column::Outcome.eq("damaged"))
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(refused, 1, "audited with its reason");
    let stored = upstream_identity::Entity::find().one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(stored.mapped_roles, "not json", "left for an administrator, not overwritten");
}

#[tokio::test]
async fn a_link_needs_a_recent_sign_in_and_finishes_only_in_the_session_that_asked() {
    let (app, up, _secret) = federated(|_| {}).await;
    app.create_user("kim", crate::mfa::PW, &[]).await;
    up.user("kim", "kim@corp.example", &[]);
    let link = |b: reqwest::Client| {
        let app = &app;
        async move {
            let page = b.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
            let form = [("csrf", csrf_in(&page)), ("current_password", crate::mfa::PW.to_owned())];
            b.post(app.url("/account/upstream/corp/link")).form(&form).send().await.unwrap()
        }
    };
    // An old sign-in (a borrowed browser, say) and the password are not enough.
    let b = app.browser();
    assert_eq!(app.login(&b, "kim", crate::mfa::PW).await.status(), 303);
    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.admin_reauth_secs + 1));
    let r = link(b.clone()).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("sign in again"));
    // A recent one starts it; but if the session ends before the provider
    // answers (the person signed out; someone else uses the browser), the
    // answer links nothing.
    let b = app.browser();
    assert_eq!(app.login(&b, "kim", crate::mfa::PW).await.status(), 303);
    let r = link(b.clone()).await;
    let start = location(&r);
    assert!(start.starts_with(&up.url) && start.contains("prompt=login"), "{start}");
    crate::mfa::logout(&app, &b).await;
    let back = to_callback(&app, &b, &start, "kim").await;
    let r = b.get(&back).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("Login failed"));
    assert_eq!(upstream_identity::Entity::find().count(&app.state.db).await.unwrap(), 0);
}

#[tokio::test]
async fn an_administrator_sees_and_unlinks_an_upstream_identity() {
    let (app, up, _secret) = federated(|_| {}).await;
    up.user("lou", "lou@corp.example", &[]);
    let b = app.browser();
    let back = to_callback(&app, &b, "/login/upstream/corp", "lou").await;
    assert_eq!(location(&b.get(&back).send().await.unwrap()), "/account");
    // The CLI lists it.
    let o = app.db.cli(&["--json", "user", "upstream", "lou"], None);
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed[0]["provider"], "corp", "{listed}");
    // The admin page shows it; unlinking (users:credentials, recent login)
    // ends the person's sessions.
    let admin = crate::admin_pages::logged_in(&app, "root", &["admin"]).await;
    let page = admin.get(app.url("/admin/users/lou")).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains(r#"/admin/users/lou/upstream-remove""#) && page.contains(listed[0]["subject"].as_str().unwrap())
    );
    let r = crate::admin_pages::act(&app, &admin, "lou", "upstream-remove", &[("provider", "corp")]).await;
    assert_eq!(location(&r), "/admin/users/lou?m=upstream-remove");
    assert_eq!(upstream_identity::Entity::find().count(&app.state.db).await.unwrap(), 0);
    assert!(!signed_in(&app, &b).await, "the sessions of the unlinked identity ended");
    let o = app.db.cli(&["user", "upstream-remove", "lou", "corp"], None);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("does not exist"), "{o:?}");
}
