//! The admin pages: a second factor and the right permission for every page
//! and action, CSRF on every form, and a fresh login for credential changes.

use portcullis::admin::Actor;
use portcullis::storage::entities::{audit_event, session, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use secrecy::SecretString;

use crate::helpers::{TestApp, csrf_in, location, spawn_app};

const PW: &str = "violet anvil tramline";
const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn code(app: &TestApp) -> String {
    let seed = totp_rs::Secret::try_from_base32(SEED).unwrap().as_ref().to_vec();
    let totp = totp_rs::Builder::new().with_secret(seed).build().unwrap();
    totp.generate(app.state.clock.now().timestamp() as u64).to_string()
}

/// A user with `roles` and a known TOTP seed, logged in with both factors.
pub async fn logged_in(app: &TestApp, username: &str, roles: &[&str]) -> reqwest::Client {
    for r in roles {
        let _ = portcullis::admin::roles::add(&app.state, &Actor::cli(), r, None).await;
    }
    app.create_user(username, PW, roles).await;
    portcullis::admin::users::totp_import(&app.state, &Actor::cli(), username, &SecretString::from(SEED))
        .await
        .unwrap();
    let b = app.browser();
    let r = app.login(&b, username, PW).await;
    assert_eq!(location(&r), "/login/mfa");
    let page = b.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    let r = b
        .post(app.url("/login/mfa"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("code", code(app).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "second factor accepted");
    b
}

/// Posts the form of `action` on the user `target` (`/admin/users/{target}/{action}`).
pub async fn act(
    app: &TestApp,
    b: &reqwest::Client,
    target: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = b.get(app.url(&format!("/admin/users/{target}"))).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_in(&page);
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    b.post(app.url(&format!("/admin/users/{target}/{action}"))).form(&form).send().await.unwrap()
}

async fn is_disabled(app: &TestApp, username: &str) -> bool {
    user::Entity::find().filter(user::Column::Username.eq(username)).one(&app.state.db).await.unwrap().unwrap().disabled
}

#[tokio::test]
async fn admin_pages_need_a_second_factor_and_the_permission_of_each_action() {
    let app = spawn_app().await;
    app.create_user("zoe", PW, &[]).await;
    app.create_user("zack", PW, &[]).await;

    // No session: to the login page. A password-only session of a
    // non-administrator: refused.
    let anon = app.browser();
    let r = anon.get(app.url("/admin/users")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/login".to_owned()));
    let plain = app.browser();
    app.login(&plain, "zoe", PW).await;
    assert_eq!(plain.get(app.url("/admin/users")).send().await.unwrap().status(), 403);
    let account = plain.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(!account.contains("/admin/users"), "no admin link for non-administrators");

    // An administrator with both factors sees and searches the user list.
    let admin = logged_in(&app, "root", &["admin"]).await;
    let account = admin.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    assert!(account.contains(r#"href="/admin/users""#));
    let list = admin.get(app.url("/admin/users?q=za")).send().await.unwrap();
    assert_eq!(list.status(), 200);
    assert_eq!(list.headers()["cache-control"], "no-store");
    let html = list.text().await.unwrap();
    assert!(html.contains("/admin/users/zack") && !html.contains("/admin/users/zoe"), "{html}");
    for page in ["/admin/users/zoe", "/admin/clients", "/admin/roles", "/admin/audit"] {
        assert_eq!(admin.get(app.url(page)).send().await.unwrap().status(), 200, "{page}");
    }

    // A reader may look but not act, and is not offered the buttons.
    let reader = logged_in(&app, "reader", &["users:read"]).await;
    let page = reader.get(app.url("/admin/users/zoe")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("Disable account") && !page.contains("Set password"));
    assert_eq!(act(&app, &reader, "zoe", "disable", &[]).await.status(), 403);
    assert!(!is_disabled(&app, "zoe").await);
    assert_eq!(reader.get(app.url("/admin/audit")).send().await.unwrap().status(), 403);
    // Both refusals are in the audit log, with the permission that was missing.
    let refused: Vec<String> = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq("admin_pages.forbidden"))
        .order_by_asc(audit_event::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.detail).unwrap()["permission"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(refused, ["users:write", "audit:read"]);

    // Every form needs its CSRF token.
    let r = admin.post(app.url("/admin/users/zoe/disable")).form(&[("csrf", "forged")]).send().await;
    assert_eq!(r.unwrap().status(), 400);
    assert!(!is_disabled(&app, "zoe").await);

    // The administrator acts; the audit record names them and the change.
    let r = act(&app, &admin, "zoe", "disable", &[]).await;
    assert_eq!(location(&r), "/admin/users/zoe?m=disable");
    assert!(is_disabled(&app, "zoe").await);
    let event = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq("user.disabled"))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert!(event.actor.unwrap().starts_with("user:"));
    assert!(event.detail.contains(r#""after":true"#), "{}", event.detail);
    // Bad input comes back on the page, named.
    let r = act(&app, &admin, "zoe", "set-attr", &[("key", "bad key!"), ("value", "x")]).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("key"));
}

#[tokio::test]
async fn credential_changes_need_a_fresh_password_and_code() {
    let app = spawn_app().await;
    app.create_user("zoe", PW, &[]).await;
    let admin = logged_in(&app, "root", &["admin"]).await;

    // Fresh from login: allowed.
    let r = act(&app, &admin, "zoe", "set-password", &[("password", "a brand new passphrase")]).await;
    assert_eq!(location(&r), "/admin/users/zoe?m=set-password");

    // Past admin_reauth_secs: sent to confirm, and nothing changes.
    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.admin_reauth_secs + 1));
    // The page asks for the confirmation first instead of offering a
    // password field whose contents the confirmation would lose.
    let page = admin.get(app.url("/admin/users/zoe")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"id="confirm-first""#) && !page.contains(r#"id="new-password""#), "{page}");
    let r = act(&app, &admin, "zoe", "set-password", &[("password", "yet another passphrase")]).await;
    assert_eq!(location(&r), "/admin/reauth?next=%2Fadmin%2Fusers%2Fzoe");
    let b = app.browser();
    assert_eq!(app.login(&b, "zoe", "a brand new passphrase").await.status(), 303, "unchanged");
    // Non-credential actions do not need it.
    let r = act(&app, &admin, "zoe", "set-attr", &[("key", "department"), ("value", "finance")]).await;
    assert_eq!(r.status(), 303);

    // The confirmation needs both factors.
    let page = admin.get(app.url("/admin/reauth?next=/admin/users/zoe")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"autocomplete="one-time-code""#) && page.contains(r#"autocomplete="current-password""#));
    let csrf = csrf_in(&page);
    let wrong = [("csrf", csrf.as_str()), ("password", PW), ("code", "000000"), ("next", "/admin/users/zoe")];
    assert_eq!(admin.post(app.url("/admin/reauth")).form(&wrong).send().await.unwrap().status(), 401);
    let root =
        user::Entity::find().filter(user::Column::Username.eq("root")).one(&app.state.db).await.unwrap().unwrap();
    let sessions_of_root =
        || session::Entity::find().filter(session::Column::UserId.eq(root.id.as_str())).all(&app.state.db);
    let before = sessions_of_root().await.unwrap().remove(0);
    let c = code(&app);
    let open_redirect = [("csrf", csrf.as_str()), ("password", PW), ("code", c.as_str()), ("next", "//evil.example")];
    let r = admin.post(app.url("/admin/reauth")).form(&open_redirect).send().await.unwrap();
    assert_eq!(location(&r), "/admin/users?m=reauth", "never off-site");
    // Re-authentication is a login: a new session id and auth_time, the old session gone.
    let after: Vec<session::Model> = sessions_of_root().await.unwrap();
    assert_eq!(after.len(), 1);
    assert_ne!(after[0].id, before.id);
    assert!(after[0].auth_time > before.auth_time);
    let r = act(&app, &admin, "zoe", "set-password", &[("password", "yet another passphrase")]).await;
    assert_eq!(location(&r), "/admin/users/zoe?m=set-password");
    assert_eq!(app.login(&app.browser(), "zoe", "yet another passphrase").await.status(), 303);
    let outcomes: Vec<String> = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq("admin.reauth"))
        .order_by_asc(audit_event::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.outcome)
        .collect();
    assert_eq!(outcomes, ["failure", "success"]);
}

#[tokio::test]
async fn audit_events_past_the_retention_period_are_purged() {
    let app = spawn_app().await;
    app.create_user("old", PW, &[]).await; // one user.created event, now
    app.state.clock.advance(chrono::Duration::days(app.state.settings.audit_retention_days + 1));
    app.create_user("new", PW, &[]).await;
    // (The servers seal records into the audit chain within a second;
    // retention removes sealed records only, after checking them.)
    portcullis::storage::audit_chain::seal(&app.state.db, app.state.master_key.audit_key()).await.unwrap();
    portcullis::storage::purge::purge_once(
        &app.state.db,
        &app.state.settings,
        &app.state.clock,
        app.state.master_key.audit_key(),
    )
    .await
    .unwrap();
    let left: Vec<Option<String>> = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq("user.created"))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.detail.contains("\"new\"").then_some("new".to_owned()))
        .collect();
    assert_eq!(left, vec![Some("new".to_owned())]);
}

#[tokio::test]
async fn client_access_policies_are_edited_on_the_admin_pages() {
    let app = spawn_app().await;
    let spec = portcullis::admin::clients::ClientSpec {
        client_id: "ledger".into(),
        redirect_uris: vec!["https://ledger.example.com/cb".into()],
        ..Default::default()
    };
    portcullis::admin::clients::add(&app.state, &Actor::cli(), &spec).await.unwrap();
    let admin = logged_in(&app, "root", &["admin"]).await;
    let list = admin.get(app.url("/admin/clients")).send().await.unwrap().text().await.unwrap();
    assert!(list.contains(r#"href="/admin/clients/ledger""#));
    let post = |b: &reqwest::Client, policy: &'static str| {
        let b = b.clone();
        let (page_url, post_url) = (app.url("/admin/clients/ledger"), app.url("/admin/clients/ledger/policy"));
        async move {
            let page = b.get(page_url).send().await.unwrap().text().await.unwrap();
            b.post(post_url).form(&[("csrf", csrf_in(&page).as_str()), ("policy", policy)]).send().await.unwrap()
        }
    };
    // A bad policy is refused, named, and nothing changes.
    let r = post(&admin, r#"{"networks": ["10.0.0.0/99"]}"#).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("access_policy.networks"));
    assert!(
        portcullis::admin::clients::show(&app.state, &portcullis::admin::Actor::cli(), "ledger")
            .await
            .unwrap()
            .access_policy
            .is_none()
    );
    // A good one is saved (canonicalised) and audited.
    let r = post(&admin, r#"{"roles_any": ["finance"], "networks": ["10.1.2.3/16"]}"#).await;
    assert_eq!(location(&r), "/admin/clients/ledger?m=policy");
    let saved = portcullis::admin::clients::show(&app.state, &portcullis::admin::Actor::cli(), "ledger")
        .await
        .unwrap()
        .access_policy
        .unwrap();
    assert_eq!(saved.networks, vec!["10.1.0.0/16".to_owned()]);
    // A reader sees the policy but no form, and cannot post one.
    let reader = logged_in(&app, "reader", &["clients:read"]).await;
    let page = reader.get(app.url("/admin/clients/ledger")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("10.1.0.0/16") && !page.contains("<textarea"));
    assert_eq!(post(&reader, "").await.status(), 403);
    // Emptying the field removes the policy.
    assert_eq!(post(&admin, "").await.status(), 303);
    assert!(
        portcullis::admin::clients::show(&app.state, &portcullis::admin::Actor::cli(), "ledger")
            .await
            .unwrap()
            .access_policy
            .is_none()
    );
}

/// A refused change made by an administrator without `users:read` (here:
/// `users:credentials` alone, a password that fails the policy) answers with
/// the message only: the user's page, which that administrator may not read,
/// is not the error page.
#[tokio::test]
async fn a_refused_change_by_an_administrator_who_cannot_read_users_shows_no_user_page() {
    let app = spawn_app().await;
    app.create_user("zoe", PW, &[]).await;
    let zoe = portcullis::admin::users::show(&app.state, &Actor::cli(), "zoe").await.unwrap();
    let desk = logged_in(&app, "desk", &["users:credentials"]).await;
    let page = desk.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
    let form = [("csrf", csrf_in(&page)), ("password", "short".into())];
    let r = desk.post(app.url("/admin/users/zoe/set-password")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(!body.contains(&zoe.id), "the user's page leaked: {body}");
    assert!(body.to_lowercase().contains("password"), "the reason is shown: {body}");
    // A link made by that administrator is shown once on a page of its own
    // (the action has run: a refused user page would lose it).
    let form = [("csrf", csrf_in(&page))];
    let r = desk.post(app.url("/admin/users/zoe/reset-link")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = r.text().await.unwrap();
    assert!(body.contains("/password/reset?token="), "the link is shown: {body}");
    assert!(!body.contains(&zoe.id), "the user's page leaked: {body}");
}

/// A deep link survives the login: an anonymous `/admin/users/zoe` goes to
/// the login and, after the password and code, back to `/admin/users/zoe`
/// (only our own account and admin pages are remembered); a session that
/// timed out says so on the login page.
#[tokio::test]
async fn a_deep_link_survives_the_login_and_a_timed_out_session_says_so() {
    let app = spawn_app().await;
    app.create_user("zoe", PW, &[]).await;
    let _ = logged_in(&app, "ada", &["admin"]).await;
    let b = app.browser();
    let r = b.get(app.url("/admin/users/zoe")).send().await.unwrap();
    assert_eq!(location(&r), "/login");
    let r = app.login(&b, "ada", PW).await;
    assert_eq!(location(&r), "/login/mfa");
    let page = b.get(app.url("/login/mfa")).send().await.unwrap().text().await.unwrap();
    let code = crate::mfa::code_at(&app, SEED, 1);
    let r = b
        .post(app.url("/login/mfa"))
        .form(&[("csrf", csrf_in(&page).as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/admin/users/zoe", "back where the person was going");

    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.session_idle_secs + 1));
    let r = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!(location(&r), "/login?m=session_ended");
    let page = b.get(app.url("/login?m=session_ended")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Your session has ended"));
}

/// An action on a user, its own fields, and the permission it needs.
type UserAction = (&'static str, &'static [(&'static str, &'static str)], &'static str);

/// Every action on a user.
const USER_ACTIONS: [UserAction; 15] = [
    ("disable", &[], "users:write"),
    ("enable", &[], "users:write"),
    ("profile", &[("name", "Zoe Z")], "users:write"),
    ("set-attr", &[("key", "department"), ("value", "x")], "users:write"),
    ("delete", &[("confirm", "zoe")], "users:write"),
    ("unlock", &[], "users:credentials"),
    ("reset-mfa", &[], "users:credentials"),
    ("set-password", &[("password", "a brand new passphrase")], "users:credentials"),
    ("passkey-remove", &[("credential", "none")], "users:credentials"),
    ("upstream-remove", &[("provider", "corp")], "users:credentials"),
    ("invite", &[], "users:credentials"),
    ("reset-link", &[], "users:credentials"),
    ("end-sessions", &[], "sessions:revoke"),
    ("grant", &[("role", "admin")], "roles:write"),
    ("revoke", &[("role", "admin")], "roles:write"),
];

/// The invariant over the whole table of user actions, one route each: no
/// action runs without its CSRF token or its permission (the refusal names
/// the permission in the audit log), the credential actions and erasure ask
/// for a recent login first, and the old all-in-one route is gone.
#[tokio::test]
async fn every_user_action_route_runs_the_same_checks() {
    let app = spawn_app().await;
    app.create_user("zoe", PW, &[]).await;
    let before = portcullis::admin::users::show(&app.state, &Actor::cli(), "zoe").await.unwrap();
    let reader = logged_in(&app, "reader", &["users:read"]).await;
    let admin = logged_in(&app, "root", &["admin"]).await;
    let page = reader.get(app.url("/admin/users/zoe")).send().await.unwrap().text().await.unwrap();
    let reader_csrf = csrf_in(&page);

    for (action, fields, permission) in USER_ACTIONS {
        let path = app.url(&format!("/admin/users/zoe/{action}"));
        // A forged token: refused before anything else (the stale-form page,
        // not some other refusal of the action).
        let mut forged = vec![("csrf", "forged")];
        forged.extend_from_slice(fields);
        let r = admin.post(&path).form(&forged).send().await.unwrap();
        assert_eq!(r.status(), 400, "{action}");
        assert!(r.text().await.unwrap().contains("This form has expired"), "{action}");
        // Without the permission: 403, audited with the missing permission.
        let mut form = vec![("csrf", reader_csrf.as_str())];
        form.extend_from_slice(fields);
        assert_eq!(reader.post(&path).form(&form).send().await.unwrap().status(), 403, "{action}");
        let last = audit_event::Entity::find()
            .filter(audit_event::Column::EventType.eq("admin_pages.forbidden"))
            .order_by_desc(audit_event::Column::Id)
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap();
        let detail: serde_json::Value = serde_json::from_str(&last.detail).unwrap();
        assert_eq!(detail["permission"], permission, "{action}");
        assert_eq!(detail["path"], format!("/admin/users/zoe/{action}"), "{action}");
    }
    let after = portcullis::admin::users::show(&app.state, &Actor::cli(), "zoe").await.unwrap();
    assert_eq!(serde_json::to_value(&before).unwrap(), serde_json::to_value(&after).unwrap(), "nothing changed");

    // An administrator whose login is no longer recent is sent to confirm
    // it first for credentials and erasure, and nothing runs.
    app.state.clock.advance(chrono::Duration::seconds(app.state.settings.admin_reauth_secs + 1));
    for (action, fields, permission) in USER_ACTIONS {
        if permission != "users:credentials" && action != "delete" {
            continue;
        }
        let r = act(&app, &admin, "zoe", action, fields).await;
        assert_eq!(location(&r), "/admin/reauth?next=%2Fadmin%2Fusers%2Fzoe", "{action}");
    }
    assert!(portcullis::admin::users::show(&app.state, &Actor::cli(), "zoe").await.is_ok(), "not erased");
    let after = portcullis::admin::users::show(&app.state, &Actor::cli(), "zoe").await.unwrap();
    assert_eq!(serde_json::to_value(&before).unwrap(), serde_json::to_value(&after).unwrap(), "nothing changed");

    // One route per action: the old form-picked dispatcher answers 405.
    let old = admin.post(app.url("/admin/users/zoe")).form(&[("csrf", reader_csrf.as_str()), ("action", "disable")]);
    assert_eq!(old.send().await.unwrap().status(), 405);
}
