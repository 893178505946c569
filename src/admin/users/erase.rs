//! Erasure of a user (GDPR Art. 17): the account goes, its audit trail stays under a pseudonym.

use super::*;

/// Erases a user (GDPR art. 17): their sessions end (back-channel logouts
/// go out), their refresh-token families are revoked, the account and
/// everything that hangs off it (credentials, MFA, roles, attributes,
/// consents, trusted browsers) are deleted, and the audit trail keeps its
/// events under a pseudonym — the user id, the `user:<id>` actor and the
/// username inside event details are replaced by `erased:<keyed hash>`, so
/// the trail stays whole without naming the person (the rewritten records
/// are marked redacted: the audit hash chain still links them, and
/// `audit verify` counts them apart). The last enabled
/// administrator cannot be erased.
pub async fn delete(state: &AppState, actor: &Actor, username: &str) -> Result<String, AdminError> {
    use crate::storage::entities::audit_event;
    use sea_orm::sea_query::{Expr, Func};
    actor.require(Permission::UsersWrite)?;
    let now = state.clock.now();
    // First the sessions (and their families), with the back-channel
    // logouts — they need the record of which clients took part, which goes
    // with the account.
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = target(&txn, actor, username).await?;
    unmanaged(&u)?;
    if user_is_admin(&txn, &u.id).await? && !u.disabled && !another_active_admin(&txn, &u.id).await? {
        return Err(AdminError::Refused("refusing to erase the last enabled administrator".into()));
    }
    let ended = crate::session::end_all_for_user(&txn, &u.id, None, now.timestamp_millis()).await?;
    txn.commit().await?;
    crate::oidc::logout::notify_ended(state, &u.id, &ended).await;

    // Then, in one transaction, the account and the pseudonymised trail —
    // the last-administrator rule checked again in it (two erasures at once
    // must not both pass the first check and leave no administrator).
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = target(&txn, actor, username).await?;
    if user_is_admin(&txn, &u.id).await? && !u.disabled && !another_active_admin(&txn, &u.id).await? {
        return Err(AdminError::Refused("refusing to erase the last enabled administrator".into()));
    }
    let pseudonym = format!("erased:{}", &state.master_key.hasher().hash(&format!("erased-user:{}", u.id))[..32]);
    let redact = || audit_event::Entity::update_many().col_expr(audit_event::Column::Redacted, Expr::val(true));
    redact()
        .col_expr(audit_event::Column::UserId, Expr::val(pseudonym.clone()))
        .filter(audit_event::Column::UserId.eq(u.id.as_str()))
        .exec(&txn)
        .await?;
    redact()
        .col_expr(audit_event::Column::Actor, Expr::val(format!("user:{pseudonym}")))
        .filter(audit_event::Column::Actor.eq(format!("user:{}", u.id)))
        .exec(&txn)
        .await?;
    for (from, to) in [
        (format!("\"username\":\"{}\"", u.username), format!("\"username\":\"{pseudonym}\"")),
        (u.id.clone(), pseudonym.clone()),
    ] {
        let replaced = Func::cust("REPLACE").arg(Expr::col(audit_event::Column::Detail)).arg(from.clone()).arg(to);
        redact()
            .col_expr(audit_event::Column::Detail, replaced.into())
            .filter(audit_event::Column::Detail.contains(from.as_str()))
            .exec(&txn)
            .await?;
    }
    // What the person did and had: the addresses and browsers they came
    // from, and the profile values the change records kept.
    redact()
        .col_expr(audit_event::Column::Ip, Expr::val(Option::<String>::None))
        .col_expr(audit_event::Column::UserAgent, Expr::val(Option::<String>::None))
        .filter(audit_event::Column::UserId.eq(pseudonym.as_str()))
        .exec(&txn)
        .await?;
    redact()
        .col_expr(audit_event::Column::Detail, Expr::val(r#"{"erased":true}"#))
        .filter(audit_event::Column::UserId.eq(pseudonym.as_str()))
        .filter(audit_event::Column::EventType.is_in(["user.created", "user.updated", "user.attribute_set"]))
        .exec(&txn)
        .await?;
    crate::storage::entities::refresh_family::Entity::delete_many()
        .filter(crate::storage::entities::refresh_family::Column::UserId.eq(u.id.as_str()))
        .exec(&txn)
        .await?;
    user::Entity::delete_by_id(u.id.as_str()).exec(&txn).await?;
    crate::authn::throttle::reset(&txn, &u.username_key).await?;
    crate::authn::throttle::reset(&txn, &crate::authn::second_factor::counter_key(&u.id)).await?;
    let record = audit(actor, "user.deleted", &pseudonym).detail(json!({ "sessions_ended": ended.len() }));
    crate::storage::commit_audited(txn, record, now).await?;
    state.users.invalidate(&u.id);
    Ok(pseudonym)
}
