//! The login state machine's password step.
//!
//! Every failure — unknown user, wrong password, disabled account, locked
//! account, malformed input — returns the same [`Outcome::Failed`]; only the
//! audit log learns the reason. The work done is the same too: the throttle row
//! is keyed by the normalised name whether or not the user exists, and an
//! unknown user (or a locked account) is checked against a dummy argon2 hash.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{PasswordError, throttle};
use crate::crypto::random_token;
use crate::domain::Username;
use crate::state::AppState;
use crate::storage::entities::{login_challenge, password_credential, trusted_device, user};
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
    /// Correct password, usable account. `trusted_device`: the browser's device
    /// cookie belongs to this user.
    Success { user: Box<crate::storage::users::User>, trusted_device: bool },
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
    #[error(transparent)]
    Mfa(#[from] super::mfa::MfaError),
    #[error(transparent)]
    Passkey(#[from] super::passkey::PasskeyError),
}

/// The throttle key for input that cannot be a username: one row for all of
/// it (no table growth from junk, no over-long keys).
const INVALID_KEY: &str = "!invalid";
/// Looked up when there is no user, so every path does the same queries.
const NO_USER: &str = "00000000-0000-0000-0000-000000000000";

/// The key of the per-account throttle: the normalised, lower-cased name, or a
/// fixed key for anything that is not a valid username.
pub fn throttle_key(raw: &str) -> String {
    Username::parse(raw).map_or_else(|_| INVALID_KEY.to_owned(), |u| u.key())
}

/// Counts an attempt from the browser's device cookie. `true` when the cookie
/// is a live trusted device of `user_id` with failures to spare; the count is
/// one conditional UPDATE, so parallel guesses cannot overshoot it.
async fn admit_device(state: &AppState, device: Option<&str>, user_id: &str, now_ms: i64) -> Result<bool, LoginError> {
    let Some(token) = device.filter(|t| !t.is_empty() && t.len() <= 128) else {
        return Ok(false);
    };
    let max_age_ms = state.settings.trusted_device_days * 86_400_000;
    let res = trusted_device::Entity::update_many()
        .col_expr(trusted_device::Column::Failures, Expr::col(trusted_device::Column::Failures).add(1))
        .filter(trusted_device::Column::TokenHash.eq(device_hash(state, token)))
        .filter(trusted_device::Column::UserId.eq(user_id))
        .filter(trusted_device::Column::Failures.lt(DEVICE_MAX_FAILURES))
        .filter(trusted_device::Column::LastUsedMs.gt(now_ms - max_age_ms))
        .exec(&state.db)
        .await?;
    Ok(res.rows_affected == 1)
}

fn device_hash(state: &AppState, token: &str) -> String {
    state.master_key.hasher().hash(&format!("device:{token}"))
}

/// After a complete login: trust this browser for the user. Returns a new
/// device cookie value when the browser had none for this user.
pub async fn trust_device<C: sea_orm::ConnectionTrait>(
    state: &AppState,
    conn: &C,
    user_id: &str,
    existing: Option<&str>,
) -> Result<String, LoginError> {
    let now_ms = state.clock.now().timestamp_millis();
    if let Some(token) = existing.filter(|t| !t.is_empty() && t.len() <= 128) {
        let res = trusted_device::Entity::update_many()
            .col_expr(trusted_device::Column::Failures, Expr::val(0))
            .col_expr(trusted_device::Column::LastUsedMs, Expr::val(now_ms))
            .filter(trusted_device::Column::TokenHash.eq(device_hash(state, token)))
            .filter(trusted_device::Column::UserId.eq(user_id))
            .exec(conn)
            .await?;
        if res.rows_affected == 1 {
            return Ok(token.to_owned());
        }
    }
    let token = random_token(32)?;
    trusted_device::ActiveModel {
        token_hash: Set(device_hash(state, &token)),
        user_id: Set(user_id.to_owned()),
        created_ms: Set(now_ms),
        last_used_ms: Set(now_ms),
        failures: Set(0),
    }
    .insert(conn)
    .await?;
    Ok(token)
}

/// Forgets every trusted browser of a user but `keep` (password change,
/// disable, MFA reset: a browser trusted under the old secret is trusted no more).
pub async fn forget_devices<C: sea_orm::ConnectionTrait>(
    state: &AppState,
    conn: &C,
    user_id: &str,
    keep: Option<&str>,
) -> Result<(), sea_orm::DbErr> {
    let mut q = trusted_device::Entity::delete_many().filter(trusted_device::Column::UserId.eq(user_id));
    if let Some(k) = keep {
        q = q.filter(trusted_device::Column::TokenHash.ne(device_hash(state, k)));
    }
    q.exec(conn).await?;
    Ok(())
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
    let audit = |outcome: &'static str, reason: &str, user: Option<&user::Model>| {
        // The typed name is recorded only when it names a user: an unknown
        // "name" is often a password typed into the wrong field.
        let who = match user {
            Some(u) => json!({ "reason": reason, "username": u.username }),
            None => json!({ "reason": reason }),
        };
        let mut e =
            AuditEvent::new("login.password", outcome).source(source.ip.clone(), source.user_agent.clone()).detail(who);
        if let Some(u) = user {
            e = e.user(&u.id);
        }
        if let Some(c) = &source.client_id {
            e = e.client(c);
        }
        e
    };

    if let Some(ip) = &source.ip {
        let attempts = throttle::admit_ip(&state.db, &state.settings, ip, now_ms).await?;
        if attempts > state.settings.login_ip_max_attempts {
            // Audited once per window, not once per refused request.
            if attempts == state.settings.login_ip_max_attempts + 1 {
                record_audit(&state.db, audit("failure", "ip_rate_limited", None), now).await?;
            }
            state.metrics.login("password", "rate_limited");
            return Ok(Outcome::RateLimited);
        }
    }
    if username.len() > MAX_INPUT_BYTES || password.expose_secret().len() > MAX_INPUT_BYTES {
        record_audit(&state.db, audit("failure", "malformed_input", None), now).await?;
        state.metrics.login("password", "failure");
        return Ok(Outcome::Failed);
    }

    let key = throttle_key(username);
    let found = match key.as_str() {
        INVALID_KEY => None,
        k => user::Entity::find().filter(user::Column::UsernameKey.eq(k)).one(&state.db).await?,
    };
    let user_id = found.as_ref().map_or(NO_USER, |u| u.id.as_str());
    let admitted = throttle::admit_account(&state.db, &state.settings, &key, now_ms).await?;
    // A browser that logged in to this account before is not shut out by a lock
    // that someone else's guessing caused (its own failures are counted apart).
    let trusted = admit_device(state, source.device.as_deref(), user_id, now_ms).await?;
    let locked = !admitted && !trusted;

    // The same queries on every path: the time must not tell.
    let phc = password_credential::Entity::find_by_id(user_id).one(&state.db).await?.map(|c| c.phc);
    let phc = if locked { None } else { phc };
    let (ok, needs_rehash) = match state.passwords.verify(password, phc.as_deref()).await {
        Ok(v) => v,
        Err(e) => {
            if admitted {
                throttle::undo(&state.db, &key).await?;
            }
            return Err(e.into());
        }
    };

    // The account is parsed after the same queries on every path; a
    // damaged one signs nobody in.
    let user = match found.clone().map(crate::storage::users::User::parse) {
        Some(Ok(u)) if ok && !locked && !u.disabled => u,
        other => {
            let reason = match &other {
                None => "unknown_user",
                Some(_) if locked => "locked",
                // Told only to whoever knows the password (the log line
                // too): a guess at a damaged account is a bad password.
                Some(Err(d)) if ok => {
                    tracing::error!(error = %d, "a damaged account cannot sign in");
                    "damaged"
                }
                Some(Ok(u)) if u.disabled => "disabled",
                Some(_) if phc.is_none() => "no_password",
                Some(_) => "bad_password",
            };
            if admitted {
                throttle::record_failure(&state.db, &state.settings, &key, now_ms).await?;
            }
            let lock = throttle::locked_until(&state.db, &key, now_ms).await?;
            // By class, never by user: credentials, locked, disabled.
            state.metrics.login("password", if matches!(reason, "locked" | "disabled") { reason } else { "failure" });
            if lock.is_some() && reason != "locked" {
                state.metrics.lockout();
            }
            let mut event = audit("failure", reason, found.as_ref());
            if let (Some(until), true) = (lock, admitted) {
                event.detail["locked_until_ms"] = json!(until);
            }
            record_audit(&state.db, event, now).await?;
            return Ok(Outcome::Failed);
        }
    };

    throttle::reset(&state.db, &key).await?;
    if needs_rehash {
        // Parameters were raised since this hash was made: upgrade it now that
        // we hold the plain password (OWASP Password Storage).
        let phc = state.passwords.hash(password).await?;
        password_credential::Entity::update_many()
            .col_expr(password_credential::Column::Phc, Expr::val(phc))
            .filter(password_credential::Column::UserId.eq(&user.id))
            .exec(&state.db)
            .await?;
    }
    record_audit(&state.db, audit("success", "password_ok", found.as_ref()), now).await?;
    state.metrics.login("password", "success");
    Ok(Outcome::Success { user: Box::new(user), trusted_device: trusted })
}

/// What the login waits for after a correct password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// Enter a TOTP or recovery code.
    Mfa,
    /// Policy requires MFA and the user has none: set it up now.
    Enrol,
    /// A passkey must be added now, after the account's existing factor or
    /// a recovery code was proved (a passkey-required sign-in, a lost key):
    /// a passkey only.
    Replace,
}

impl ChallengePurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Mfa => "mfa",
            Self::Enrol => "enrol",
            Self::Replace => "replace",
        }
    }
}

/// How long the second step may take, and how many codes it may try.
pub const CHALLENGE_TTL_MS: i64 = 5 * 60 * 1000;
pub const CHALLENGE_MAX_ATTEMPTS: i32 = 5;

fn challenge_hash(state: &AppState, token: &str) -> String {
    state.master_key.hasher().hash(&format!("login-challenge:{token}"))
}

/// Records a half-finished login; returns the cookie value that refers to it.
pub async fn create_challenge(
    state: &AppState,
    user_id: &str,
    purpose: ChallengePurpose,
    trusted_device: bool,
    return_to: Option<String>,
) -> Result<String, LoginError> {
    create_challenge_after(state, user_id, purpose, trusted_device, return_to, None).await
}

/// `create_challenge` after a first factor other than the password
/// (`first_factor`: its `amr`, e.g. `fed`), which the finished login's `amr`
/// then names instead of `pwd`.
pub async fn create_challenge_after(
    state: &AppState,
    user_id: &str,
    purpose: ChallengePurpose,
    trusted_device: bool,
    return_to: Option<String>,
    first_factor: Option<&str>,
) -> Result<String, LoginError> {
    let now_ms = state.clock.now().timestamp_millis();
    let token = random_token(32)?;
    login_challenge::ActiveModel {
        token_hash: Set(challenge_hash(state, &token)),
        user_id: Set(user_id.to_owned()),
        purpose: Set(purpose.as_str().to_owned()),
        trusted_device: Set(trusted_device),
        attempts: Set(0),
        return_to: Set(return_to),
        first_factor: Set(first_factor.map(str::to_owned)),
        created_ms: Set(now_ms),
        expires_ms: Set(now_ms + CHALLENGE_TTL_MS),
    }
    .insert(&state.db)
    .await?;
    Ok(token)
}

/// A live challenge with its user.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub row: login_challenge::Model,
    pub user: crate::storage::users::User,
    pub purpose: ChallengePurpose,
}

/// Finds the challenge a cookie refers to (expired ones are deleted).
pub async fn find_challenge(
    state: &AppState,
    token: &str,
    purpose: ChallengePurpose,
) -> Result<Option<Challenge>, LoginError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let now_ms = state.clock.now().timestamp_millis();
    let hash = challenge_hash(state, token);
    let Some(row) = login_challenge::Entity::find_by_id(hash.as_str()).one(&state.db).await? else {
        return Ok(None);
    };
    if row.expires_ms <= now_ms || row.attempts >= CHALLENGE_MAX_ATTEMPTS {
        login_challenge::Entity::delete_by_id(hash.as_str()).exec(&state.db).await?;
        return Ok(None);
    }
    if row.purpose != purpose.as_str() {
        return Ok(None);
    }
    let Some(user) = crate::storage::users::usable(&state.db, &row.user_id).await? else {
        return Ok(None);
    };
    Ok(Some(Challenge { row, user, purpose }))
}

/// Counts a wrong code on a challenge (it dies after `CHALLENGE_MAX_ATTEMPTS`).
pub async fn challenge_failed(state: &AppState, c: &Challenge) -> Result<(), LoginError> {
    login_challenge::Entity::update_many()
        .col_expr(login_challenge::Column::Attempts, Expr::col(login_challenge::Column::Attempts).add(1))
        .filter(login_challenge::Column::TokenHash.eq(c.row.token_hash.as_str()))
        .exec(&state.db)
        .await?;
    Ok(())
}

/// Ends a challenge (used, or abandoned). Returns whether this call ended it:
/// only one request can complete a login from one challenge.
pub async fn end_challenge(state: &AppState, c: &Challenge) -> Result<bool, LoginError> {
    Ok(login_challenge::Entity::delete_by_id(c.row.token_hash.as_str()).exec(&state.db).await?.rows_affected == 1)
}

/// The second factor at login: a TOTP or recovery code, through the one
/// second-factor gate (its own failure counter, the account's, the address's).
/// `Ok(Some(kind))` on success. `totp_allowed`: false when this sign-in
/// needs the user's passkey, so only a recovery code (a lost key) is taken.
pub async fn mfa_step(
    state: &AppState,
    c: &Challenge,
    code: &str,
    source: &Source,
    totp_allowed: bool,
) -> Result<Option<super::mfa::CodeCheck>, LoginError> {
    use super::mfa::{CodeCheck, verify_code};
    use super::second_factor::{Gated, gate};
    let now = state.clock.now();
    let gated = gate(state, &c.user, source, c.row.trusted_device, now, async || {
        let check = verify_code(state, &c.user.id, code, now).await?;
        Ok(match check {
            CodeCheck::Invalid => None,
            CodeCheck::Totp if !totp_allowed => None,
            ok => Some(ok),
        })
    })
    .await?;
    let event = |outcome: &'static str, reason: &str| {
        let mut e = AuditEvent::new("login.mfa", outcome)
            .user(&c.user.id)
            .source(source.ip.clone(), source.user_agent.clone())
            .detail(json!({ "reason": reason }));
        if let Some(cl) = &source.client_id {
            e = e.client(cl);
        }
        e
    };
    match gated {
        Gated::Failed { .. } | Gated::RateLimited => {
            let reason = match gated {
                Gated::RateLimited => "ip_rate_limited",
                Gated::Failed { locked: true } => "locked",
                _ => "bad_code",
            };
            challenge_failed(state, c).await?;
            record_audit(&state.db, event("failure", reason), now).await?;
            Ok(None)
        }
        Gated::Passed(ok) => {
            let reason = if ok == CodeCheck::Recovery { "recovery_code" } else { "totp" };
            record_audit(&state.db, event("success", reason), now).await?;
            if ok == CodeCheck::Recovery {
                let left = super::mfa::recovery_remaining(&state.db, &c.user.id).await?;
                record_audit(
                    &state.db,
                    AuditEvent::new("mfa.recovery_code_used", "success")
                        .user(&c.user.id)
                        .source(source.ip.clone(), source.user_agent.clone())
                        .detail(json!({ "remaining": left })),
                    now,
                )
                .await?;
            }
            Ok(Some(ok))
        }
    }
}
