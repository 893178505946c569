//! Stored records that no longer parse (edited by hand, or written by a
//! bug) are errors wherever they are read: a grant, a session or an account
//! whose recorded sign-in or profile is damaged is refused, never read as
//! "no factors", "no claims request" or "no address" and used anyway.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::helpers::spawn_app;
use crate::oauth::{PW, exchange, get_code, introspect, register, token_req, web_client};

/// A refresh token whose recorded sign-in (`amr`) or `claims` request is
/// damaged is refused at refresh (before, the `amr` was read as empty and
/// new tokens issued from a sign-in with no recorded factor) and reported
/// inactive by introspection; an undamaged family of the same user works.
#[tokio::test]
async fn a_refresh_token_whose_recorded_sign_in_is_damaged_is_refused() {
    use portcullis::storage::entities::refresh_token;
    let app = spawn_app().await;
    app.create_user("ida", PW, &[]).await;
    let secret = register(&app, web_client("app")).await.unwrap();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (code, verifier) = get_code(&app, &app.browser(), "app", "ida", "").await;
        let (s, t) = exchange(&app, "app", &secret, &code, &verifier).await;
        assert_eq!(s, 200, "{t}");
        tokens.push(t["refresh_token"].as_str().unwrap().to_owned());
    }
    let hash = |t: &str| app.state.master_key.hasher().hash(&format!("refresh:{t}"));
    let damage = |token: &str, column: refresh_token::Column, text: &str| {
        refresh_token::Entity::update_many()
            .col_expr(column, Expr::val(text.to_owned()))
            .filter(refresh_token::Column::TokenHash.eq(hash(token)))
    };
    damage(&tokens[0], refresh_token::Column::Amr, "pwd,otp").exec(&app.state.db).await.unwrap();
    damage(&tokens[1], refresh_token::Column::Claims, "{\"id_token\":").exec(&app.state.db).await.unwrap();

    let refresh = async |t: &str| -> (u16, Value) {
        let (s, v, _) =
            token_req(&app, Some(("app", &secret)), &[("grant_type", "refresh_token"), ("refresh_token", t)]).await;
        (s, v)
    };
    for t in &tokens[..2] {
        let (s, body) = refresh(t).await;
        assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        assert!(body.get("access_token").is_none());
        assert_eq!(introspect(&app, "app", &secret, t).await["active"], false);
    }
    let (s, body) = refresh(&tokens[2]).await;
    assert_eq!(s, 200, "the undamaged family still works: {body}");
}

/// An authorization code whose recorded sign-in is damaged issues nothing,
/// and the refusal spends it.
#[tokio::test]
async fn an_authorization_code_whose_recorded_sign_in_is_damaged_issues_nothing() {
    use portcullis::storage::entities::authorization_code;
    let app = spawn_app().await;
    app.create_user("ida", PW, &[]).await;
    let secret = register(&app, web_client("app")).await.unwrap();
    let (code, verifier) = get_code(&app, &app.browser(), "app", "ida", "").await;
    authorization_code::Entity::update_many()
        .col_expr(authorization_code::Column::Amr, Expr::val("{}"))
        .exec(&app.state.db)
        .await
        .unwrap();
    let (s, body) = exchange(&app, "app", &secret, &code, &verifier).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert!(body.get("access_token").is_none());
    let used = authorization_code::Entity::find().one(&app.state.db).await.unwrap().unwrap();
    assert!(used.used_ms.is_some(), "the refusal spent the code");
}

/// A browser session whose recorded sign-in is damaged is ended when its
/// cookie comes back: the account page sends the browser to the login page
/// and `/authorize` issues no code from it (before, it was a session with
/// no recorded factor that went on being used).
#[tokio::test]
async fn a_session_whose_recorded_sign_in_is_damaged_is_ended_on_sight() {
    use portcullis::storage::entities::session;
    let app = spawn_app().await;
    let id = app.create_user("ida", PW, &[]).await;
    register(&app, web_client("app")).await.unwrap();
    let b = app.browser();
    app.login(&b, "ida", PW).await;
    let r = b.get(app.url("/account")).send().await.unwrap();
    assert_eq!(r.status(), 200, "signed in");
    session::Entity::update_many()
        .col_expr(session::Column::Amr, Expr::val("pwd"))
        .filter(session::Column::UserId.eq(id.as_str()))
        .exec(&app.state.db)
        .await
        .unwrap();
    let r = b.get(app.url("/authorize?response_type=code&client_id=app&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256")).send().await.unwrap();
    let to = crate::helpers::location(&r);
    assert!(to.starts_with("/login"), "a login, not a code: {to}");
    let r = b.get(app.url("/account")).send().await.unwrap();
    assert!(crate::helpers::location(&r).starts_with("/login"), "signed out");
    let left = session::Entity::find().filter(session::Column::UserId.eq(id.as_str())).all(&app.state.db).await;
    assert!(left.unwrap().is_empty(), "the damaged session was ended");
}

/// An account whose stored profile is damaged (its address no longer
/// parses) signs nobody in and gets no tokens anywhere — its live session,
/// the password step, its refresh token, UserInfo — and the admin read
/// names the field instead of showing the account without it. Setting the
/// address anew repairs it.
#[tokio::test]
async fn an_account_whose_stored_profile_is_damaged_is_refused_everywhere_until_repaired() {
    use portcullis::admin::Actor;
    use portcullis::storage::entities::{audit_event, user};
    use sea_orm::QueryOrder;
    let app = spawn_app().await;
    let id = app.create_user("ida", PW, &[]).await;
    let secret = register(&app, web_client("app")).await.unwrap();
    let b = app.browser();
    let (code, verifier) = get_code(&app, &b, "app", "ida", "").await;
    let (s, t) = exchange(&app, "app", &secret, &code, &verifier).await;
    assert_eq!(s, 200, "{t}");
    let (access, refresh) = (t["access_token"].as_str().unwrap(), t["refresh_token"].as_str().unwrap());
    let userinfo = async || {
        let r = reqwest::Client::new().get(app.url("/userinfo")).bearer_auth(access).send().await.unwrap();
        r.status().as_u16()
    };
    assert_eq!(userinfo().await, 200);

    let damaged = r#"{"country": ["NL"]}"#;
    user::Entity::update_many()
        .col_expr(user::Column::Address, Expr::val(damaged))
        .filter(user::Column::Id.eq(id.as_str()))
        .exec(&app.state.db)
        .await
        .unwrap();
    app.state.users.invalidate(&id);

    let r = b.get(app.url("/account")).send().await.unwrap();
    assert!(crate::helpers::location(&r).starts_with("/login"), "the live session no longer signs in");
    let page = app.login(&app.browser(), "ida", PW).await.text().await.unwrap();
    assert!(page.contains("Login failed"));
    let last = audit_event::Entity::find()
        .filter(audit_event::Column::EventType.eq("login.password"))
        .order_by_desc(audit_event::Column::Id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((last.outcome.as_str(), last.user_id.as_deref()), ("failure", Some(id.as_str())));
    assert_eq!(serde_json::from_str::<Value>(&last.detail).unwrap()["reason"], "damaged");
    let (s, body, _) =
        token_req(&app, Some(("app", &secret)), &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert_eq!(userinfo().await, 401);
    // The operator still sees the account, the field named, and can act on it.
    let view = portcullis::admin::users::show(&app.state, &Actor::cli(), "ida").await.unwrap();
    assert_eq!((view.damaged.as_deref(), view.address), (Some("address"), None));
    let listed = portcullis::admin::users::list(&app.state, &Actor::cli()).await.unwrap();
    assert_eq!(listed.len(), 1, "one damaged account does not break the list");
    let admin = crate::admin_api::service_token(&app, "ops", &["admin"], &format!("{}/admin", app.address)).await;
    let (s, body) = crate::helpers::api(&app, "GET", "/admin/api/v1/users/ida", Some(&admin), None).await;
    assert_eq!((s, body["damaged"].as_str()), (200, Some("address")), "{body}");
    let stored = user::Entity::find_by_id(id.as_str()).one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(stored.address.as_deref(), Some(damaged), "nothing rewrote it");

    // Repair: the address set anew.
    let nl = portcullis::domain::Address { country: Some("NL".into()), ..Default::default() };
    let patch = portcullis::admin::users::ProfilePatch { address: Some(Some(nl)), ..Default::default() };
    portcullis::admin::users::update_profile(&app.state, &Actor::cli(), "ida", patch).await.unwrap();
    let r = app.login(&app.browser(), "ida", PW).await;
    assert_eq!(crate::helpers::location(&r), "/account", "signs in again");
}
