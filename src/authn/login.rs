//! The login state machine's password step.
//!
//! Every failure — unknown user, wrong password, disabled account, locked
//! account, malformed input — returns the same [`Outcome::Failed`]; only the
//! audit log learns the reason. The work done is the same too: the throttle row
//! is keyed by the normalised name whether or not the user exists, and an
//! unknown user (or a locked account) is checked against a dummy argon2 hash.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use unicode_normalization::UnicodeNormalization;

use super::{PasswordError, throttle};
use crate::crypto::random_token;
use crate::state::AppState;
use crate::storage::entities::{password_credential, trusted_device, user};
use crate::storage::{AuditEvent, record_audit};

/// Longest username or password accepted at the login form, in bytes.
pub const MAX_INPUT_BYTES: usize = 1024;

/// Failures from one trusted browser before it loses its trust.
const DEVICE_MAX_FAILURES: i32 = 5;

/// Where the login came from.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The device cookie's value, if the browser sent one.
    pub device: Option<String>,
    /// The client the login is for (authorization requests).
    pub client_id: Option<String>,
}

#[derive(Debug)]
pub enum Outcome {
    /// Correct password, usable account. `new_device` is a device cookie value
    /// to set when this browser was not yet trusted for the user.
    Success { user: user::Model, new_device: Option<String> },
    /// Anything else. The reason is in the audit log only.
    Failed,
    /// The source address has used up its attempts.
    RateLimited,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
}

/// The key of the per-account throttle: the normalised, lower-cased name,
/// bounded (the input is already ≤ 1 KiB).
fn throttle_key(raw: &str) -> String {
    raw.trim().nfkc().collect::<String>().to_lowercase()
}

/// Is the browser's device cookie a trusted device of `user_id`?
async fn trusted_device(
    state: &AppState,
    device: Option<&str>,
    user_id: &str,
) -> Result<Option<trusted_device::Model>, LoginError> {
    let Some(token) = device.filter(|t| t.len() <= 128) else {
        return Ok(None);
    };
    let hash = state.master_key.hasher().hash(token);
    let now_ms = state.clock.now().timestamp_millis();
    let max_age_ms = state.settings.trusted_device_days * 86_400_000;
    Ok(trusted_device::Entity::find_by_id(hash)
        .one(&state.db)
        .await?
        .filter(|d| d.user_id == user_id && d.failures < DEVICE_MAX_FAILURES && d.last_used_ms + max_age_ms > now_ms))
}

/// Checks a username and password.
pub async fn password_step(
    state: &AppState,
    username: &str,
    password: &SecretString,
    source: &Source,
) -> Result<Outcome, LoginError> {
    let now: DateTime<Utc> = state.clock.now();
    let now_ms = now.timestamp_millis();
    let audit = |outcome: &'static str, reason: &str, user_id: Option<&str>| {
        let mut e = AuditEvent::new("login.password", outcome)
            .source(source.ip.clone(), source.user_agent.clone())
            .detail(json!({ "reason": reason, "username": username.chars().take(64).collect::<String>() }));
        if let Some(id) = user_id {
            e = e.user(id);
        }
        if let Some(c) = &source.client_id {
            e = e.client(c);
        }
        e
    };

    if username.len() > MAX_INPUT_BYTES
        || password.expose_secret().len() > MAX_INPUT_BYTES
        || username.trim().is_empty()
    {
        record_audit(&state.db, audit("failure", "malformed_input", None), now).await?;
        return Ok(Outcome::Failed);
    }
    if let Some(ip) = &source.ip
        && !throttle::admit_ip(&state.db, &state.settings, ip, now_ms).await?
    {
        record_audit(&state.db, audit("failure", "ip_rate_limited", None), now).await?;
        return Ok(Outcome::RateLimited);
    }

    let key = throttle_key(username);
    let found = user::Entity::find().filter(user::Column::UsernameKey.eq(&key)).one(&state.db).await?;
    let device = match &found {
        Some(u) => trusted_device(state, source.device.as_deref(), &u.id).await?,
        None => None,
    };
    let admitted = throttle::admit_account(&state.db, &state.settings, &key, now_ms).await?;
    // A browser that logged in to this account before is not shut out by a lock
    // that someone else's guessing caused (its own failures are counted apart).
    let locked = !admitted && device.is_none();

    let phc = match (&found, locked) {
        (Some(u), false) => password_credential::Entity::find_by_id(u.id.as_str()).one(&state.db).await?.map(|c| c.phc),
        _ => None,
    };
    let (ok, needs_rehash) = state.passwords.verify(password, phc.as_deref()).await?;

    let user = match found {
        Some(u) if ok && !locked && !u.disabled => u,
        other => {
            let reason = match &other {
                None => "unknown_user",
                Some(_) if locked => "locked",
                Some(u) if u.disabled => "disabled",
                Some(_) if phc.is_none() => "no_password",
                Some(_) => "bad_password",
            };
            if admitted {
                throttle::record_failure(&state.db, &state.settings, &key, now_ms).await?;
            }
            if let Some(d) = device {
                let failures = d.failures + 1;
                let mut am = d.into_active_model();
                am.failures = Set(failures);
                am.update(&state.db).await?;
            }
            let user_id = other.as_ref().map(|u| u.id.clone());
            record_audit(&state.db, audit("failure", reason, user_id.as_deref()), now).await?;
            if reason == "bad_password"
                && let Some(lock) = throttle::locked_until(&state.db, &key, now_ms).await?
            {
                record_audit(
                    &state.db,
                    AuditEvent::new("login.locked", "success")
                        .user(user_id.unwrap_or_default())
                        .source(source.ip.clone(), source.user_agent.clone())
                        .detail(json!({ "locked_until_ms": lock })),
                    now,
                )
                .await?;
            }
            return Ok(Outcome::Failed);
        }
    };

    throttle::reset(&state.db, &key).await?;
    if needs_rehash {
        // Parameters were raised since this hash was made: upgrade it now that
        // we hold the plain password (OWASP Password Storage).
        let phc = state.passwords.hash(password).await?;
        password_credential::Entity::update_many()
            .col_expr(password_credential::Column::Phc, sea_orm::sea_query::Expr::val(phc))
            .filter(password_credential::Column::UserId.eq(&user.id))
            .exec(&state.db)
            .await?;
    }
    let new_device = match device {
        Some(d) => {
            let mut am = d.into_active_model();
            am.last_used_ms = Set(now_ms);
            am.failures = Set(0);
            am.update(&state.db).await?;
            None
        }
        None => {
            let token = random_token(32)?;
            trusted_device::ActiveModel {
                token_hash: Set(state.master_key.hasher().hash(&token)),
                user_id: Set(user.id.clone()),
                created_ms: Set(now_ms),
                last_used_ms: Set(now_ms),
                failures: Set(0),
            }
            .insert(&state.db)
            .await?;
            Some(token)
        }
    };
    record_audit(&state.db, audit("success", "password_ok", Some(&user.id)), now).await?;
    Ok(Outcome::Success { user, new_device })
}
