//! The one password change, for every surface — the account page (the user
//! for themselves), the admin API, the admin pages and the CLI (an
//! administrator's reset): the policy (the administrators' minimum length
//! for anyone holding `admin`), the hash, then in one transaction the new
//! credential, the end of the user's other sessions, the forgetting of the
//! browsers trusted under the old password and the audit record; after the
//! commit, the back-channel logouts of the sessions that ended.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use secrecy::SecretString;
use serde_json::json;

use super::{Actor, AdminError};
use crate::crypto::password::PasswordError;
use crate::domain::Origin;
use crate::state::AppState;
use crate::storage::AuditEvent;
use crate::storage::entities::{account_link, password_credential, user};

/// Who changes whose password, and what survives the change.
pub struct PasswordChange<'a> {
    /// The account: its id and its username (the password may not contain it).
    pub user: (&'a str, &'a str),
    /// The audit actor (`user:<id>` for the user themselves, the admin's name otherwise).
    pub actor: &'a str,
    /// `user.password_changed` (by the user) or `user.password_set` (a reset).
    pub event: &'static str,
    /// The session that stays (the user's own, changing it); others end.
    pub keep_session: Option<&'a str>,
    /// The trusted-browser token that stays (the user's own browser).
    pub keep_device: Option<&'a str>,
    pub origin: Origin,
    /// For an administrator's reset: the actor, whose dominance over the
    /// user is checked again inside the transaction (the user's roles may
    /// have changed while the password was being hashed).
    pub by_admin: Option<&'a Actor>,
    /// A single-use link (its stored hash) that authorises this change: it
    /// is claimed in the same transaction, so a link used twice at once sets
    /// one password (`ChangeError::LinkUsed` for the other).
    pub link: Option<&'a str>,
    /// The address the link was sent to: if it is still the user's, it is
    /// now verified (following the link proved it).
    pub verified_email: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Refused(#[from] Box<AdminError>),
    #[error("this link has been used or has expired")]
    LinkUsed,
}

/// Claims an invitation or reset link for `user_id` in the transaction: it
/// must be live, the account enabled, and the account may not reach further
/// now than when the link was made (`reach`: the permissions its roles gave
/// then — a link made for a plain user dies if the user became an
/// administrator since). Used at most once, also by two requests at once.
async fn claim_link<C: ConnectionTrait>(txn: &C, hash: &str, user_id: &str, now_ms: i64) -> Result<(), ChangeError> {
    let Some(link) = account_link::Entity::find_by_id(hash)
        .one(txn)
        .await?
        .filter(|l| l.user_id.as_deref() == Some(user_id) && l.expires_ms > now_ms)
    else {
        return Err(ChangeError::LinkUsed);
    };
    if user::Entity::find_by_id(user_id).one(txn).await?.is_none_or(|u| u.disabled) {
        return Err(ChangeError::LinkUsed);
    }
    let reach: Vec<String> = link
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|v| serde_json::from_value(v["reach"].clone()).ok())
        .unwrap_or_default();
    let now_held = crate::policy::permissions_of(&crate::storage::users::roles(txn, user_id).await?);
    if now_held.iter().any(|p| !reach.iter().any(|r| r == p.as_str())) {
        return Err(ChangeError::LinkUsed);
    }
    let claimed = account_link::Entity::delete_by_id(hash).exec(txn).await?;
    if claimed.rows_affected != 1 {
        return Err(ChangeError::LinkUsed);
    }
    Ok(())
}

/// Changes the password; returns the ids of the sessions that ended.
pub async fn change_password(
    state: &AppState,
    change: PasswordChange<'_>,
    password: &SecretString,
) -> Result<Vec<String>, ChangeError> {
    let (user_id, username) = change.user;
    let is_admin =
        crate::storage::users::roles(&state.db, user_id).await?.iter().any(|r| r == crate::policy::ADMIN_ROLE);
    state.password_policy.check(password, is_admin, Some(username))?;
    let phc = state.passwords.hash(password).await?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    if let Some(actor) = change.by_admin {
        actor.may_act_on_user(&crate::storage::users::roles(&txn, user_id).await?).map_err(Box::new)?;
    }
    if let Some(hash) = change.link {
        claim_link(&txn, hash, user_id, now.timestamp_millis()).await?;
    }
    // Every other link of the account dies with the old password: an
    // invitation, an older reset link, a pending change of address.
    account_link::Entity::delete_many().filter(account_link::Column::UserId.eq(user_id)).exec(&txn).await?;
    if let Some(email) = change.verified_email {
        user::Entity::update_many()
            .col_expr(user::Column::EmailVerified, sea_orm::sea_query::Expr::val(true))
            .filter(user::Column::Id.eq(user_id))
            .filter(user::Column::Email.eq(email))
            .exec(&txn)
            .await?;
    }
    password_credential::Entity::insert(password_credential::ActiveModel {
        user_id: Set(user_id.to_owned()),
        phc: Set(phc),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(password_credential::Column::UserId)
            .update_columns([password_credential::Column::Phc, password_credential::Column::UpdatedAt])
            .to_owned(),
    )
    .exec(&txn)
    .await?;
    let ended = crate::session::end_all_for_user(&txn, user_id, change.keep_session, now.timestamp_millis()).await?;
    crate::authn::login::forget_devices(state, &txn, user_id, change.keep_device).await?;
    let detail = if change.keep_session.is_some() {
        json!({ "other_sessions_ended": ended.len() })
    } else {
        json!({ "sessions_ended": ended.len() })
    };
    let audit_record = AuditEvent::new(change.event, "success")
        .actor(change.actor)
        .user(user_id)
        .source(change.origin.ip, change.origin.user_agent)
        .detail(detail);
    user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, sea_orm::sea_query::Expr::val(now))
        .filter(user::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    crate::storage::commit_audited(txn, audit_record, now).await?;
    state.users.invalidate(user_id);
    crate::oidc::logout::notify_ended(state, user_id, &ended).await;
    Ok(ended)
}
