//! Self-registration (`registration = "open"`, off by default): the account
//! is made only when the link mailed to the address is followed, so nobody
//! uses an account whose address they did not prove. Until then the pending
//! sign-up is a link row holding the username and the password's argon2id
//! hash. An address that already has an account gets a mail saying so (the
//! page answers as for a new address: it does not tell who is registered);
//! a taken username is said on the page (usernames are chosen, not secret).

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use secrecy::SecretString;
use serde_json::json;

use super::{DeliverError, LinkFor, Purpose, deliver};
use crate::config::Registration;
use crate::domain::{Email, Origin, Username};
use crate::mail::Mail;
use crate::state::AppState;
use crate::storage::entities::{password_credential, user};
use crate::storage::{AuditEvent, record_audit};

/// Why a sign-up was refused; the page shows the message.
#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("Sign-up is not open here.")]
    Closed,
    #[error("{0}")]
    Invalid(String),
    #[error("This username is taken; choose another.")]
    Taken,
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    #[error(transparent)]
    Password(crate::authn::PasswordError),
}

impl From<super::LinkError> for SignupError {
    fn from(e: super::LinkError) -> Self {
        Self::Deliver(e.into())
    }
}

impl From<sea_orm::DbErr> for SignupError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Deliver(DeliverError::Db(e))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    username: String,
    phc: String,
}

/// Whether `addr` may sign up under `registration_email_domains`.
pub fn domain_allowed(state: &AppState, addr: &Email) -> bool {
    let domains = &state.settings.registration_email_domains;
    let domain = addr.as_str().rsplit_once('@').map(|(_, d)| d.to_lowercase()).unwrap_or_default();
    domains.is_empty() || domains.iter().any(|d| d.trim_start_matches('@').eq_ignore_ascii_case(&domain))
}

/// Takes a sign-up: checks it, and mails the confirmation link (or, for an
/// address that has an account, a notice). Ok means "check your mail".
pub async fn register(
    state: &AppState,
    username: &str,
    email: &str,
    password: &SecretString,
    origin: Origin,
) -> Result<(), SignupError> {
    if state.settings.registration != Registration::Open {
        return Err(SignupError::Closed);
    }
    let name = Username::parse(username).map_err(|e| SignupError::Invalid(e.to_string()))?;
    let addr = Email::parse(email).map_err(|e| SignupError::Invalid(e.to_string()))?;
    if !domain_allowed(state, &addr) {
        return Err(SignupError::Invalid(format!(
            "Sign-up is open to addresses at {} only.",
            state.settings.registration_email_domains.join(", ")
        )));
    }
    // A username that is an address must be this one: otherwise it could
    // pass for someone else's address (sign-in, "Forgot password?").
    if name.as_str().contains('@') && !name.as_str().eq_ignore_ascii_case(addr.as_str()) {
        return Err(SignupError::Invalid("A username with @ must be your e-mail address.".into()));
    }
    state.password_policy.check(password, false, Some(name.as_str())).map_err(|e| match e {
        crate::authn::PasswordError::Policy(m) => SignupError::Invalid(m),
        other => SignupError::Password(other),
    })?;
    if user::Entity::find().filter(user::Column::UsernameKey.eq(name.key())).one(&state.db).await?.is_some() {
        return Err(SignupError::Taken);
    }
    // Hashed whatever the address: the page must take as long for a
    // registered address as for a new one.
    let phc = state.passwords.hash(password).await.map_err(SignupError::Password)?;
    let product = &state.settings.product_name;
    let holder = user::Entity::find().filter(crate::storage::email_matches(addr.as_str())).one(&state.db).await?;
    let now = state.clock.now();
    let audit = |outcome: &'static str| {
        AuditEvent::new("user.signup_requested", outcome)
            .actor("self-service")
            .source(origin.ip.clone(), origin.user_agent.clone())
    };
    if let Some(h) = holder {
        record_audit(&state.db, audit("address_taken").user(&h.id), now).await?;
        let mail = Mail {
            to: addr.as_str().to_owned(),
            subject: format!("You already have a {product} account"),
            paragraphs: vec![
                format!("Someone tried to sign up at {product} with this address, which already has an account ({})." , h.username),
                "If it was you and you forgot your password, use \"Forgot password?\" on the sign-in page. Otherwise ignore this mail.".to_owned(),
            ],
            action: Some(("Sign in".to_owned(), format!("{}/login", state.settings.issuer.trim_end_matches('/')))),
            footnote: None,
        };
        return match deliver(state, Some(&h.id), &mail).await {
            Ok(()) | Err(DeliverError::Limited) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    let payload = serde_json::to_string(&Pending { username: name.to_string(), phc })
        .map_err(|e| SignupError::Invalid(e.to_string()))?;
    let txn = crate::storage::begin_write(&state.db).await?;
    let target = LinkFor { user_id: None, email: Some(addr.as_str()), payload: Some(payload) };
    let link = super::create(state, &txn, Purpose::Signup, target, now).await?;
    let audit_record = audit("success").detail(json!({ "username": name.as_str() }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    let mail = Mail {
        to: addr.as_str().to_owned(),
        subject: format!("Confirm your {product} account"),
        paragraphs: vec![format!(
            "Follow the link to confirm your address and finish making your {product} account ({}).",
            name.as_str()
        )],
        action: Some(("Confirm and create the account".to_owned(), link.url)),
        footnote: Some(format!(
            "The link works once, until {}. If you did not sign up, ignore this mail: no account is made.",
            link.expires_at.format("%Y-%m-%d %H:%M UTC")
        )),
    };
    match deliver(state, None, &mail).await {
        Ok(()) | Err(DeliverError::Limited) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Why a confirmation did not make the account.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("This link has been used or has expired. Sign up again.")]
    Dead,
    #[error("The username or the address was taken meanwhile. Sign up again.")]
    Taken,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Follows the sign-up link: makes the account (address verified, the
/// password chosen at sign-up). Returns the username.
pub async fn confirm(state: &AppState, token: &str, origin: Origin) -> Result<String, ConfirmError> {
    if state.settings.registration != Registration::Open {
        return Err(ConfirmError::Dead);
    }
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let link = super::claim(state, &txn, Purpose::Signup, token).await?.ok_or(ConfirmError::Dead)?;
    let pending: Pending =
        link.payload.as_deref().and_then(|p| serde_json::from_str(p).ok()).ok_or(ConfirmError::Dead)?;
    let name = Username::parse(&pending.username).map_err(|_| ConfirmError::Dead)?;
    if user::Entity::find().filter(user::Column::UsernameKey.eq(name.key())).one(&txn).await?.is_some() {
        return Err(ConfirmError::Taken);
    }
    // The address may have been given to an account meanwhile.
    let addr = link.email.clone().unwrap_or_default();
    if user::Entity::find().filter(crate::storage::email_matches(&addr)).one(&txn).await?.is_some() {
        return Err(ConfirmError::Taken);
    }
    let id = uuid::Uuid::new_v4().to_string();
    // Following the link proved the address.
    crate::storage::new_user_row(&id, &name, link.email.clone(), None, true, now)
        .insert(&txn)
        .await
        .map_err(|e| if crate::storage::is_unique_violation(&e) { ConfirmError::Taken } else { e.into() })?;
    password_credential::ActiveModel { user_id: Set(id.clone()), phc: Set(pending.phc), updated_at: Set(now) }
        .insert(&txn)
        .await?;
    let audit_record = AuditEvent::new("user.registered", "success")
        .actor(format!("user:{id}"))
        .user(&id)
        .source(origin.ip, origin.user_agent)
        .detail(json!({ "username": name.as_str() }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(name.to_string())
}
