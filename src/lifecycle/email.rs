//! E-mail addresses: `email_verified` is true only after the person followed
//! a link sent to that address. A change asked for on /account (after a
//! re-authentication, checked by the page) takes effect only when the link
//! sent to the new address is followed; the old address is told at once.
//! An administrator's change (admin services) stores the address unverified.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use super::{DeliverError, LinkFor, Purpose, deliver};
use crate::domain::{Email, Origin};
use crate::mail::Mail;
use crate::state::AppState;
use crate::storage::AuditEvent;
use crate::storage::entities::user;

fn mask(addr: &str) -> String {
    match addr.split_once('@') {
        Some((local, domain)) => format!("{}…@{domain}", local.chars().next().unwrap_or('?')),
        None => "…".to_owned(),
    }
}

/// Sends a verification link to `new` (the account's next address, or its
/// present unverified one) and, for a change, tells the present address.
pub async fn request_verification(
    state: &AppState,
    u: &crate::storage::users::User,
    new: &Email,
    origin: Origin,
) -> Result<(), DeliverError> {
    super::admit(state, &state.db, Some(&u.id), new.as_str()).await?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let target = LinkFor { user_id: Some(&u.id), email: Some(new.as_str()), payload: None };
    let link = super::create(state, &txn, Purpose::VerifyEmail, target, now).await?;
    let change = u.email.as_deref() != Some(new.as_str());
    let audit_record =
        AuditEvent::new(if change { "user.email_change_requested" } else { "user.email_verification_sent" }, "success")
            .actor(format!("user:{}", u.id))
            .user(&u.id)
            .source(origin.ip, origin.user_agent)
            .detail(json!({ "to": mask(new.as_str()) }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    let product = &state.settings.product_name;
    let mail = Mail {
        to: new.as_str().to_owned(),
        subject: format!("Confirm your address for {product}"),
        paragraphs: vec![format!(
            "Follow the link to confirm that this is the address of your {product} account ({}).",
            u.username
        )],
        action: Some(("Confirm this address".to_owned(), link.url.clone())),
        footnote: Some(format!(
            "The link works once, until {}. If you did not ask for this, ignore this mail: nothing changes.",
            link.expires_at.format("%Y-%m-%d %H:%M UTC")
        )),
    };
    super::send(state, &mail).await?;
    if change && let Some(old) = &u.email {
        let notice = Mail {
            to: old.clone(),
            subject: format!("A change of your {product} address was asked for"),
            paragraphs: vec![
                format!(
                    "Someone signed in to your {product} account ({}) asked to change its address to {}.",
                    u.username,
                    mask(new.as_str())
                ),
                "It changes only when the link sent there is followed. If this was not you, change your password and contact your administrator.".to_owned(),
            ],
            action: None,
            footnote: None,
        };
        if let Err(e) = deliver(state, Some(&u.id), &notice).await {
            tracing::warn!(error = %e, "address-change notice not sent");
        }
    }
    Ok(())
}

/// Follows a verification link: the address becomes the account's, verified.
/// `None` when the link is dead (used, expired, superseded, unknown).
pub async fn confirm(state: &AppState, token: &str, origin: Origin) -> Result<Option<String>, sea_orm::DbErr> {
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let Some(link) = super::claim(state, &txn, Purpose::VerifyEmail, token).await? else {
        return Ok(None);
    };
    let (Some(user_id), Some(addr)) = (link.user_id.as_deref(), link.email.as_deref()) else {
        return Ok(None);
    };
    let Some(u) = user::Entity::find_by_id(user_id).one(&txn).await?.filter(|u| !u.disabled) else {
        return Ok(None);
    };
    let before = u.email.clone();
    user::Entity::update_many()
        .col_expr(user::Column::Email, sea_orm::sea_query::Expr::val(addr))
        .col_expr(user::Column::EmailVerified, sea_orm::sea_query::Expr::val(true))
        .col_expr(user::Column::UpdatedAt, sea_orm::sea_query::Expr::val(now))
        .filter(user::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    let audit_record = AuditEvent::new("user.email_verified", "success")
        .actor(format!("user:{user_id}"))
        .user(user_id)
        .source(origin.ip, origin.user_agent)
        .detail(json!({ "changes": { "email": { "from": before, "to": addr } } }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    state.users.invalidate(user_id);
    Ok(Some(u.username))
}
