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
    Ok(recent && Assurance::of(&cur.session.amr) >= mfa::strongest_factor(&state.db, &cur.user.id).await?)
}

/// Which factor a re-authentication accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Factor {
    Password,
    Code,
}

/// Full re-authentication for changing the authenticator app or the
/// recovery codes (ASVS V7.5.1): the password **and** a current code (or a
/// recovery code); without TOTP, the password alone. Those prove at most a
/// second factor, so on an account with a passkey the session must also be
/// a recent passkey sign-in (`may_change_factors`): a phished password and
/// code must not mint recovery codes, which would lead to a new passkey.
/// `Err` is the message to show.
pub(crate) async fn reauth_full(
    state: &AppState,
    req: &HttpRequest,
    cur: &Current,
    password: Option<&SecretString>,
    code: Option<&SecretString>,
) -> Result<Result<(), &'static str>, WebError> {
    const WRONG: &str = "Your password or current code was not correct.";
    let strongest = mfa::strongest_factor(&state.db, &cur.user.id).await?;
    if strongest >= Assurance::PhishingResistant && !may_change_factors(state, cur).await? {
        return Ok(Err(
            "This account has a passkey: sign out and sign in again with it, then make this change within five minutes.",
        ));
    }
    if !reauth(state, req, cur, password, Factor::Password).await? {
        return Ok(Err(WRONG));
    }
    if mfa::has_totp(&state.db, &cur.user.id).await? && !reauth(state, req, cur, code, Factor::Code).await? {
        return Ok(Err(WRONG));
    }
    Ok(Ok(()))
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
