//! The one gate in front of every check of a second-factor code: the login
//! step, enrolment confirmation, the account page's MFA forms and the admin
//! re-authentication all go through [`gate`].
//!
//! NIST SP 800-63B §5.2.2: failures of the second factor count on a counter of
//! their own (`mfa:<user id>` in the shared throttle table) that only a
//! *successful second factor* clears — a correct password does not, so
//! "password, four wrong codes, password again" cannot go on for ever. They
//! also count on the account's password counter, as before, and every check
//! spends one attempt of the source address's budget.

use chrono::{DateTime, Utc};

use super::login::{LoginError, Source};
use super::throttle;
use crate::state::AppState;

/// The throttle key of a user's second factor.
pub fn counter_key(user_id: &str) -> String {
    format!("mfa:{user_id}")
}

/// What the gate let through.
#[derive(Debug)]
pub enum Gated<T> {
    /// The check ran and succeeded.
    Passed(T),
    /// The check ran and failed, or the second factor is locked.
    Failed { locked: bool },
    /// The source address has used up its attempts.
    RateLimited,
}

/// Runs `check` (which returns `Some` on success) unless the user's second
/// factor or the address is locked out; counts the outcome. `trusted`: the
/// browser completed a login to this account before (a lock caused by
/// someone else's guessing does not shut it out; its own attempts are bounded
/// by the challenge and the device's failure count).
pub async fn gate<T>(
    state: &AppState,
    user: &crate::storage::users::User,
    source: &Source,
    trusted: bool,
    now: DateTime<Utc>,
    check: impl AsyncFnOnce() -> Result<Option<T>, LoginError>,
) -> Result<Gated<T>, LoginError> {
    let now_ms = now.timestamp_millis();
    if let Some(ip) = &source.ip {
        let attempts = throttle::admit_ip(&state.db, &state.settings, ip, now_ms).await?;
        if attempts > state.settings.login_ip_max_attempts {
            state.metrics.second_factor("rate_limited");
            return Ok(Gated::RateLimited);
        }
    }
    let mfa_key = counter_key(&user.id);
    let pw_key = user.username_key.as_str();
    let admitted_mfa = throttle::admit_without_decay(&state.db, &state.settings, &mfa_key, now_ms).await?;
    let admitted_pw = throttle::admit_account(&state.db, &state.settings, pw_key, now_ms).await?;
    let locked = !(trusted || (admitted_mfa && admitted_pw));
    let passed = if locked { None } else { check().await? };
    match passed {
        Some(v) => {
            throttle::reset(&state.db, &mfa_key).await?;
            throttle::reset(&state.db, pw_key).await?;
            state.metrics.second_factor("success");
            Ok(Gated::Passed(v))
        }
        None => {
            if admitted_mfa {
                throttle::record_failure(&state.db, &state.settings, &mfa_key, now_ms).await?;
            }
            if admitted_pw {
                throttle::record_failure(&state.db, &state.settings, pw_key, now_ms).await?;
            }
            state.metrics.second_factor(if locked { "locked" } else { "failure" });
            Ok(Gated::Failed { locked })
        }
    }
}
