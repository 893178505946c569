//! Re-authentication of a signed-in user before a change of credentials:
//! the password again, a current code, or — for adding or changing a
//! factor — a recent sign-in as strong as the account's strongest factor.
//! Every check is throttled like a login, so a borrowed session cannot be
//! used to guess.

use actix_web::HttpRequest;
use sea_orm::EntityTrait;
use secrecy::SecretString;
use serde_json::json;

use super::client_info;
use super::login::source_of;
use super::pages::WebError;
use crate::authn::second_factor::{Gated, gate};
use crate::authn::{PasswordError, mfa, throttle};
use crate::policy::Assurance;
use crate::session::Current;
use crate::state::AppState;
use crate::storage::entities::password_credential;
use crate::storage::{AuditEvent, record_audit};

/// Whether this session may add or change a factor without asking again:
/// it signed in recently (`admin_reauth_secs`) and at least as strongly as
/// the account's strongest factor (`authn::mfa::strongest_factor`). The one
/// rule for adding a passkey and for setting up TOTP where none is set up.
pub(crate) async fn may_change_factors(state: &AppState, cur: &Current) -> Result<bool, WebError> {
    let recent = state.clock.now().timestamp() - cur.session.auth_time <= state.settings.admin_reauth_secs;
    Ok(recent && Assurance::of(&cur.amr()) >= mfa::strongest_factor(&state.db, &cur.user.id).await?)
}

/// Which factor a re-authentication accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Factor {
    Password,
    Code,
}

/// Full re-authentication for changing the second factor while one is set
/// up (ASVS V7.5.1): the password **and** a current code (or a recovery
/// code). Without a second factor yet, the password alone.
pub(crate) async fn reauth_full(
    state: &AppState,
    req: &HttpRequest,
    cur: &Current,
    password: Option<&SecretString>,
    code: Option<&SecretString>,
) -> Result<bool, WebError> {
    if !reauth(state, req, cur, password, Factor::Password).await? {
        return Ok(false);
    }
    if !mfa::has_totp(&state.db, &cur.user.id).await? {
        return Ok(true);
    }
    reauth(state, req, cur, code, Factor::Code).await
}

/// Re-authentication with one factor: the password (throttled like a
/// login), or a code from the current authenticator or a recovery code
/// (spent), through the second-factor gate — a correct password never
/// clears the count of wrong codes.
pub(crate) async fn reauth(
    state: &AppState,
    req: &HttpRequest,
    cur: &Current,
    value: Option<&SecretString>,
    factor: Factor,
) -> Result<bool, WebError> {
    use secrecy::ExposeSecret;
    let Some(value) = value else {
        return Ok(false);
    };
    let now = state.clock.now();
    let now_ms = now.timestamp_millis();
    if factor == Factor::Code {
        if !mfa::has_totp(&state.db, &cur.user.id).await? {
            return Ok(false);
        }
        let v = value.expose_secret().trim();
        let source = source_of(state, req);
        let gated = gate(state, &cur.user, &source, false, now, async || {
            Ok((mfa::verify_code(state, &cur.user.id, v, now).await? != mfa::CodeCheck::Invalid).then_some(()))
        })
        .await
        .map_err(WebError::internal)?;
        return Ok(matches!(gated, Gated::Passed(())));
    }
    let key = &cur.user.username_key;
    if let Some(ip) = client_info::ip(state, req)
        && throttle::admit_ip(&state.db, &state.settings, &ip, now_ms).await? > state.settings.login_ip_max_attempts
    {
        return Ok(false);
    }
    if !throttle::admit_account(&state.db, &state.settings, key, now_ms).await? {
        return Ok(false);
    }
    let phc = password_credential::Entity::find_by_id(cur.user.id.as_str()).one(&state.db).await?.map(|c| c.phc);
    let ok = match state.passwords.verify(value, phc.as_deref()).await {
        Ok((ok, _)) => ok,
        Err(PasswordError::Busy) => {
            throttle::undo(&state.db, key).await?;
            return Err(WebError(crate::error::AppError::Busy));
        }
        Err(e) => return Err(WebError::internal(e)),
    };
    if ok {
        throttle::reset(&state.db, key).await?;
    } else {
        throttle::record_failure(&state.db, &state.settings, key, now_ms).await?;
    }
    Ok(ok)
}

/// The outcome of asking for the current password again.
pub(crate) enum Reverified {
    Yes,
    /// Not confirmed: the message to show.
    No(&'static str),
}

/// Checks the signed-in user's current password again (for a change of
/// credentials), through `reauth`; a wrong password is audited as a failed
/// `event`.
pub(crate) async fn reverify_password(
    state: &AppState,
    req: &HttpRequest,
    cur: &Current,
    password: &SecretString,
    event: &'static str,
) -> Result<Reverified, WebError> {
    if reauth(state, req, cur, Some(password), Factor::Password).await? {
        return Ok(Reverified::Yes);
    }
    record_audit(
        &state.db,
        AuditEvent::new(event, "failure")
            .user(&cur.user.id)
            .source(client_info::ip(state, req), client_info::user_agent(req))
            .detail(json!({ "reason": "bad_current_password" })),
        state.clock.now(),
    )
    .await?;
    Ok(Reverified::No("The current password is not correct."))
}
