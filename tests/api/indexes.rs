//! Every hot query uses an index (EXPLAIN on the test's own database): what
//! keeps login, code exchange, refresh and introspection flat as tables grow.

use portcullis::storage::entities::{
    authorization_code, authorization_request, client, login_challenge, login_throttle, password_credential,
    refresh_family, refresh_token, revoked_token, session, totp_credential, trusted_device, user, user_role,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryTrait, Statement};

use crate::helpers::spawn_app;

#[tokio::test]
async fn every_hot_query_uses_an_index() {
    let app = spawn_app().await;
    let db = &app.state.db;
    let backend = db.get_database_backend();
    let queries = vec![
        ("login: user by name", user::Entity::find().filter(user::Column::UsernameKey.eq("x")).build(backend)),
        ("login: password", password_credential::Entity::find_by_id("x").build(backend)),
        ("login: throttle", login_throttle::Entity::find_by_id("x").build(backend)),
        ("login: device", trusted_device::Entity::find_by_id("x").build(backend)),
        ("login: challenge", login_challenge::Entity::find_by_id("x").build(backend)),
        ("mfa: totp", totp_credential::Entity::find_by_id("x").build(backend)),
        ("session by cookie", session::Entity::find().filter(session::Column::TokenHash.eq("x")).build(backend)),
        ("sessions of a user", session::Entity::find().filter(session::Column::UserId.eq("x")).build(backend)),
        ("roles of a user", user_role::Entity::find().filter(user_role::Column::UserId.eq("x")).build(backend)),
        ("client", client::Entity::find_by_id("x").build(backend)),
        ("authorize: pending request", authorization_request::Entity::find_by_id("x").build(backend)),
        ("code exchange", authorization_code::Entity::find_by_id("x").build(backend)),
        ("refresh: token", refresh_token::Entity::find_by_id("x").build(backend)),
        ("refresh: family", refresh_family::Entity::find_by_id("x").build(backend)),
        (
            "code replay: families of a grant",
            refresh_family::Entity::find().filter(refresh_family::Column::GrantId.eq("x")).build(backend),
        ),
        (
            "revocation sync",
            revoked_token::Entity::find().filter(revoked_token::Column::RevokedMs.gte(0)).build(backend),
        ),
    ];
    if backend == DbBackend::Postgres {
        db.execute_unprepared("SET enable_seqscan = off").await.unwrap();
    }
    for (what, stmt) in queries {
        let prefix = if backend == DbBackend::Postgres { "EXPLAIN " } else { "EXPLAIN QUERY PLAN " };
        let explain = Statement::from_sql_and_values(
            backend,
            format!("{prefix}{}", stmt.sql),
            stmt.values.unwrap_or(sea_orm::Values(Vec::new())),
        );
        let rows = db.query_all_raw(explain).await.unwrap();
        let plan: Vec<String> = rows
            .iter()
            .map(|r| {
                let col = if backend == DbBackend::Postgres { "QUERY PLAN" } else { "detail" };
                r.try_get::<String>("", col).unwrap()
            })
            .collect();
        let text = plan.join(" | ");
        let full_scan = if backend == DbBackend::Postgres {
            text.contains("Seq Scan")
        } else {
            text.contains("SCAN ") && !text.contains("USING")
        };
        assert!(!full_scan, "{what}: full table scan: {text}");
    }
}

#[tokio::test]
async fn expired_rows_are_purged_and_live_ones_kept() {
    use sea_orm::{ActiveModelTrait, PaginatorTrait, Set};
    let app = spawn_app().await;
    let db = &app.state.db;
    let now = app.state.clock.now().timestamp_millis();
    for (jti, exp) in [("old", now - 1), ("live", now + 60_000)] {
        revoked_token::ActiveModel { jti: Set(jti.into()), revoked_ms: Set(now - 10), expires_ms: Set(exp) }
            .insert(db)
            .await
            .unwrap();
    }
    for (id, exp) in [("r-old", now - 1), ("r-live", now + 60_000)] {
        authorization_request::ActiveModel {
            id_hash: Set(id.into()),
            client_id: Set("c".into()),
            params: Set("{}".into()),
            created_ms: Set(now - 100),
            expires_ms: Set(exp),
            login_session: Set(None),
        }
        .insert(db)
        .await
        .unwrap();
    }
    let n = portcullis::storage::purge::purge_once(
        &app.state.db,
        &app.state.settings,
        &app.state.clock,
        app.state.master_key.audit_key(),
    )
    .await
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(revoked_token::Entity::find().count(db).await.unwrap(), 1);
    assert_eq!(authorization_request::Entity::find().count(db).await.unwrap(), 1);
    assert!(revoked_token::Entity::find_by_id("live").one(db).await.unwrap().is_some());
}
