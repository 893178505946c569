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
