//! Invitations and password resets: made by an administrator (CLI, admin
//! API, admin pages) or asked for on "Forgot password?", and redeemed on the
//! link's page through the one password change (`admin::password`), which
//! claims the link in its transaction and ends every session and refresh
//! family of the account. A reset sets the password only: the next sign-in
//! still asks for the second factor.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use secrecy::SecretString;
use serde_json::json;

use super::{DeliverError, Link, LinkFor, Purpose, deliver};
use crate::admin::password::{ChangeError, PasswordChange};
use crate::admin::{Actor, AdminError};
use crate::domain::{Origin, Username};
use crate::mail::Mail;
use crate::policy::Permission;
use crate::state::AppState;
use crate::storage::entities::{password_credential, user};
use crate::storage::{AuditEvent, record_audit};

/// What an administrator gets: the link, or — when it was mailed — only
/// where it went (the link then belongs to whoever reads that mail, which
/// is what makes the address verified when it is used).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct IssuedLink {
    /// The link, when it was not mailed; shown once.
    pub url: Option<String>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The address it was mailed to, if it was.
    pub sent_to: Option<String>,
}

/// An invitation (`Purpose::Invite`: the account has no password yet) or a
/// reset link for `username`, made by an administrator; mailed to the
/// account's address when `send`. Needs `users:credentials` and a target the
/// actor dominates: whoever holds the link chooses the password.
pub async fn issue(
    state: &AppState,
    actor: &Actor,
    username: &str,
    purpose: Purpose,
    send: bool,
) -> Result<IssuedLink, AdminError> {
    actor.require(Permission::UsersCredentials)?;
    if !matches!(purpose, Purpose::Invite | Purpose::Reset) {
        return Err(AdminError::Refused("only invitations and reset links are made here".into()));
    }
    if send && state.mailer.is_none() {
        return Err(AdminError::Refused(
            "mail is not configured (smtp_host or mail_dir); print the link instead".into(),
        ));
    }
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = crate::admin::users::find(&txn, username).await?;
    actor.may_act_on_user(&crate::storage::users::roles(&txn, &u.id).await?)?;
    let has_password = password_credential::Entity::find_by_id(u.id.as_str()).one(&txn).await?.is_some();
    if purpose == Purpose::Invite && has_password {
        return Err(AdminError::Refused(format!(
            "user {:?} has a password already; make a reset link (user reset-link) instead",
            u.username
        )));
    }
    let to = if send {
        Some(
            u.email
                .clone()
                .ok_or_else(|| AdminError::Refused(format!("user {:?} has no e-mail address", u.username)))?,
        )
    } else {
        None
    };
    if let Some(addr) = &to {
        super::admit(state, &txn, Some(&u.id), addr).await.map_err(|e| match e {
            DeliverError::Db(e) => AdminError::Db(e),
            other => AdminError::Refused(format!("not mailed: {other}")),
        })?;
    }
    let reach = super::reach_of(&txn, &u.id).await?;
    let target = LinkFor { user_id: Some(&u.id), email: to.as_deref(), payload: Some(reach) };
    let link = super::create(state, &txn, purpose, target, now).await?;
    let event = if purpose == Purpose::Invite { "user.invitation_created" } else { "user.reset_link_created" };
    let audit_record = AuditEvent::new(event, "success")
        .actor(&actor.name)
        .user(&u.id)
        .source(actor.ip.clone(), actor.user_agent.clone())
        .detail(json!({ "mailed": to.is_some(), "expires_at": link.expires_at }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    if let Some(addr) = &to {
        let mail = link_mail(state, purpose, addr, &link);
        super::send(state, &mail).await.map_err(|e| match e {
            DeliverError::Db(e) => AdminError::Db(e),
            other => AdminError::Refused(format!("the link was made but not mailed: {other}; make a new one")),
        })?;
        return Ok(IssuedLink { url: None, expires_at: link.expires_at, sent_to: to });
    }
    Ok(IssuedLink { url: Some(link.url), expires_at: link.expires_at, sent_to: None })
}

fn link_mail(state: &AppState, purpose: Purpose, to: &str, link: &Link) -> Mail {
    let product = &state.settings.product_name;
    let until = link.expires_at.format("%Y-%m-%d %H:%M UTC");
    let (subject, paragraphs, label) = match purpose {
        Purpose::Invite => (
            format!("Your {product} account"),
            vec![
                format!("An account at {product} has been made for you."),
                "Follow the link to choose your password and activate it.".to_owned(),
            ],
            "Activate your account",
        ),
        _ => (
            format!("Reset your {product} password"),
            vec![
                format!("Someone asked to reset the password of your {product} account."),
                "Follow the link to choose a new one. Your second factor stays as it is: you will still need it to sign in.".to_owned(),
            ],
            "Choose a new password",
        ),
    };
    Mail {
        to: to.to_owned(),
        subject,
        paragraphs,
        action: Some((label.to_owned(), link.url.clone())),
        footnote: Some(format!(
            "The link works once, until {until}. If you did not expect this mail, ignore it: nothing changes."
        )),
    }
}

/// "Forgot password?": finds the account by username or e-mail address and
/// mails it a reset link. Runs after the page has answered (the same words,
/// status and time for every input), so it returns nothing; what happened
/// is in the audit log.
pub async fn forgot(state: AppState, who: String, origin: Origin) {
    if let Err(e) = forgot_inner(&state, &who, &origin).await {
        tracing::warn!(error = %e, "password reset request failed");
    }
}

/// The account `who` names: an input with `@` is a verified address first
/// (a username that looks like someone's address must not catch their
/// reset), then a username.
async fn find_account(state: &AppState, who: &str) -> Result<Option<user::Model>, sea_orm::DbErr> {
    let who = who.trim();
    if who.contains('@') && who.len() <= 254 {
        // The address as stored, compared case-insensitively.
        let matches = user::Entity::find()
            .filter(crate::storage::email_matches(who))
            .filter(user::Column::EmailVerified.eq(true))
            .all(&state.db)
            .await?;
        // An address shared by several accounts names none of them.
        if matches.len() == 1 {
            return Ok(matches.into_iter().next());
        }
    }
    match Username::parse(who) {
        Ok(name) => user::Entity::find().filter(user::Column::UsernameKey.eq(name.key())).one(&state.db).await,
        Err(_) => Ok(None),
    }
}

async fn forgot_inner(state: &AppState, who: &str, origin: &Origin) -> Result<(), DeliverError> {
    let now = state.clock.now();
    let found = find_account(state, who).await?;
    let audit = |outcome: &'static str| {
        AuditEvent::new("user.reset_requested", outcome)
            .actor("self-service")
            .source(origin.ip.clone(), origin.user_agent.clone())
    };
    let Some(u) = found.filter(|u| !u.disabled) else {
        record_audit(&state.db, audit("no_account"), now).await?;
        return Ok(());
    };
    // Only to an address the person proved: one an administrator typed
    // could be anyone's (an administrator without users:credentials must
    // not be able to reset a password by changing the address first).
    let Some(addr) = u.email.clone().filter(|_| u.email_verified) else {
        record_audit(&state.db, audit("no_verified_address").user(&u.id), now).await?;
        return Ok(());
    };
    // The limits first: a request over them must not kill a live link.
    match super::admit(state, &state.db, Some(&u.id), &addr).await {
        Err(DeliverError::Limited) => {
            record_audit(&state.db, audit("mail_limited").user(&u.id), now).await?;
            return Ok(());
        }
        other => other?,
    }
    let txn = crate::storage::begin_write(&state.db).await?;
    let reach = super::reach_of(&txn, &u.id).await?;
    let target = LinkFor { user_id: Some(&u.id), email: Some(&addr), payload: Some(reach) };
    let link = super::create(state, &txn, Purpose::Reset, target, now).await?;
    let audit_record = audit("success").user(&u.id).detail(json!({ "expires_at": link.expires_at }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    super::send(state, &link_mail(state, Purpose::Reset, &addr, &link)).await
}

/// Why a link could not be redeemed; the page shows the message.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("This link has been used or has expired. Ask for a new one.")]
    Dead,
    #[error("{0}")]
    Policy(String),
    #[error(transparent)]
    Other(#[from] ChangeError),
}

/// Sets the password through an invitation or reset link. The link is
/// claimed in the same transaction as the new password; every session and
/// refresh family of the account ends (back-channel logout), the browsers
/// trusted under the old password are forgotten, and the person is told by
/// mail. Returns the account's username (the sign-in page prefills it).
pub async fn redeem(
    state: &AppState,
    purpose: Purpose,
    token: &str,
    password: &SecretString,
    origin: Origin,
) -> Result<String, RedeemError> {
    let link =
        super::peek(state, &state.db, purpose, token).await.map_err(ChangeError::Db)?.ok_or(RedeemError::Dead)?;
    let Some(user_id) = link.user_id.as_deref() else { return Err(RedeemError::Dead) };
    let u =
        user::Entity::find_by_id(user_id).one(&state.db).await.map_err(ChangeError::Db)?.ok_or(RedeemError::Dead)?;
    let hash = super::stored_hash(state, token);
    let actor = format!("user:{}", u.id);
    let change = PasswordChange {
        user: (&u.id, &u.username),
        actor: &actor,
        event: if purpose == Purpose::Invite { "user.activated" } else { "user.password_reset" },
        keep_session: None,
        keep_device: None,
        origin,
        by_admin: None,
        link: Some(&hash),
        verified_email: link.email.as_deref(),
    };
    match crate::admin::password::change_password(state, change, password).await {
        Ok(_) => {}
        Err(ChangeError::LinkUsed) => return Err(RedeemError::Dead),
        Err(ChangeError::Password(crate::authn::PasswordError::Policy(m))) => return Err(RedeemError::Policy(m)),
        Err(e) => return Err(e.into()),
    }
    if purpose == Purpose::Reset
        && let Some(addr) = &u.email
    {
        let product = &state.settings.product_name;
        let mail = Mail {
            to: addr.clone(),
            subject: format!("Your {product} password was changed"),
            paragraphs: vec![
                format!("The password of your {product} account ({}) was just changed with a reset link.", u.username),
                "Every session was signed out. If this was not you, contact your administrator now.".to_owned(),
            ],
            action: None,
            footnote: None,
        };
        if let Err(e) = deliver(state, Some(&u.id), &mail).await {
            tracing::warn!(error = %e, "password-changed notice not sent");
        }
    }
    Ok(u.username)
}
