//! Brute-force throttling, in the database so that every instance shares it.
//!
//! **Per account** (keyed by the normalised username, whether or not such a user
//! exists, so that an unknown name costs and behaves exactly like a known one):
//! after `login_max_failures` consecutive failures the account is locked for
//! `login_lock_secs`, doubling with each further failure up to
//! `login_lock_max_secs`. Failures are forgotten after
//! `login_failure_decay_secs` without an attempt, so an old typo does not count
//! against a user weeks later. Admission is one conditional UPDATE — "count this
//! attempt unless locked, and lock *now* if it is the last allowed one" — so
//! concurrent attempts cannot slip past the limit: on PostgreSQL the row lock
//! re-evaluates the condition, on SQLite writes are serialised.
//!
//! **Per source address**: at most `login_ip_max_attempts` attempts per
//! `login_ip_window_secs` window.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use crate::config::Settings;
use crate::storage::entities::{ip_throttle, login_throttle};

/// The lock that follows the `failures`-th consecutive failure.
pub fn lock_ms(settings: &Settings, failures: i32) -> i64 {
    let over = (failures - settings.login_max_failures).clamp(0, 20) as u32;
    let secs = settings.login_lock_secs.saturating_mul(1_i64 << over);
    Ord::min(secs, settings.login_lock_max_secs) * 1000
}

/// Counts an attempt on an account unless it is locked. `Ok(true)`: go on and
/// check the credentials; `Ok(false)`: locked.
pub async fn admit_account<C: ConnectionTrait>(
    conn: &C,
    settings: &Settings,
    key: &str,
    now_ms: i64,
) -> Result<bool, DbErr> {
    admit(conn, settings, key, now_ms, true).await
}

/// Like [`admit_account`], but failures never decay with time: only a success
/// clears them (the second factor's counter, NIST SP 800-63B §5.2.2 — a
/// decaying count would allow five guesses every `login_failure_decay_secs`
/// for ever).
pub async fn admit_without_decay<C: ConnectionTrait>(
    conn: &C,
    settings: &Settings,
    key: &str,
    now_ms: i64,
) -> Result<bool, DbErr> {
    admit(conn, settings, key, now_ms, false).await
}

async fn admit<C: ConnectionTrait>(
    conn: &C,
    settings: &Settings,
    key: &str,
    now_ms: i64,
    decays: bool,
) -> Result<bool, DbErr> {
    login_throttle::Entity::insert(login_throttle::ActiveModel {
        username_key: Set(key.to_owned()),
        failures: Set(0),
        locked_until_ms: Set(None),
        last_attempt_ms: Set(None),
    })
    .on_conflict_do_nothing_on([login_throttle::Column::UsernameKey])
    .exec(conn)
    .await?;
    // Pessimistic: the attempt counts as a failure until it succeeds. The one
    // that reaches the limit sets the lock before its password is checked.
    let decay_before = if decays { now_ms - settings.login_failure_decay_secs * 1000 } else { i64::MIN };
    let stale = Expr::col(login_throttle::Column::LastAttemptMs).lte(decay_before);
    let failures_after = Expr::case(stale, Expr::val(1)).finally(Expr::col(login_throttle::Column::Failures).add(1));
    let failures_after: Expr = failures_after.into();
    let provisional_lock = now_ms + lock_ms(settings, settings.login_max_failures);
    let res = login_throttle::Entity::update_many()
        .col_expr(login_throttle::Column::Failures, failures_after.clone())
        .col_expr(
            login_throttle::Column::LockedUntilMs,
            Expr::case(failures_after.gte(settings.login_max_failures), Expr::val(provisional_lock))
                .finally(Expr::col(login_throttle::Column::LockedUntilMs))
                .into(),
        )
        .col_expr(login_throttle::Column::LastAttemptMs, Expr::val(now_ms))
        .filter(login_throttle::Column::UsernameKey.eq(key))
        .filter(
            Condition::any()
                .add(login_throttle::Column::LockedUntilMs.is_null())
                .add(login_throttle::Column::LockedUntilMs.lte(now_ms)),
        )
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}

/// After a failed check: extend the lock to the full back-off for this count.
pub async fn record_failure<C: ConnectionTrait>(
    conn: &C,
    settings: &Settings,
    key: &str,
    now_ms: i64,
) -> Result<(), DbErr> {
    let Some(row) = login_throttle::Entity::find_by_id(key).one(conn).await? else {
        return Ok(());
    };
    if row.failures >= settings.login_max_failures {
        login_throttle::Entity::update_many()
            .col_expr(login_throttle::Column::LockedUntilMs, Expr::val(now_ms + lock_ms(settings, row.failures)))
            .filter(login_throttle::Column::UsernameKey.eq(key))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// Takes back an admitted attempt that was never checked (the hashing pool
/// was full): a flood must not count against the victim's real logins.
pub async fn undo<C: ConnectionTrait>(conn: &C, key: &str) -> Result<(), DbErr> {
    login_throttle::Entity::update_many()
        .col_expr(login_throttle::Column::Failures, Expr::col(login_throttle::Column::Failures).sub(1))
        .filter(login_throttle::Column::UsernameKey.eq(key))
        .filter(login_throttle::Column::Failures.gt(0))
        .exec(conn)
        .await?;
    Ok(())
}

/// After a success: the slate is clean.
pub async fn reset<C: ConnectionTrait>(conn: &C, key: &str) -> Result<(), DbErr> {
    login_throttle::Entity::delete_by_id(key).exec(conn).await?;
    Ok(())
}

/// Whether an account is locked now (for the admin view).
pub async fn locked_until<C: ConnectionTrait>(conn: &C, key: &str, now_ms: i64) -> Result<Option<i64>, DbErr> {
    Ok(login_throttle::Entity::find_by_id(key).one(conn).await?.and_then(|r| r.locked_until_ms).filter(|t| *t > now_ms))
}

/// The throttling key of an address: IPv4 as is, IPv6 by its /64 (one
/// subscriber usually holds a whole /64).
pub fn ip_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(v4) => v4.to_string(),
        Err(_) => ip.chars().take(64).collect(),
    }
}

/// Counts an attempt from an address; returns the attempts in the current
/// window (more than `login_ip_max_attempts`: refuse).
pub async fn admit_ip<C: ConnectionTrait>(conn: &C, settings: &Settings, ip: &str, now_ms: i64) -> Result<i32, DbErr> {
    count_in_window(conn, &ip_key(ip), settings.login_ip_window_secs * 1000, now_ms).await
}

/// Counts one more of something (`kind`) an address did in the current
/// window, apart from its login attempts; returns the count so far.
pub async fn admit_ip_for<C: ConnectionTrait>(
    conn: &C,
    settings: &Settings,
    kind: &str,
    ip: &str,
    now_ms: i64,
) -> Result<i32, DbErr> {
    count_in_window(conn, &format!("{kind}:{}", ip_key(ip)), settings.login_ip_window_secs * 1000, now_ms).await
}

/// Counts one more event under `key` in a fixed window of `window_ms`;
/// returns the count in the current window (the caller compares it with its limit).
pub async fn count_in_window<C: ConnectionTrait>(
    conn: &C,
    key: &str,
    window_ms: i64,
    now_ms: i64,
) -> Result<i32, DbErr> {
    // One statement (an upsert that returns the count): the first event of
    // a key starts its window at 1; a later one adds 1, or starts a new
    // window when the old one has passed. Atomic on both databases.
    let col = |c: ip_throttle::Column| Expr::col((ip_throttle::Entity, c));
    let expired = col(ip_throttle::Column::WindowStartMs).lte(now_ms - window_ms);
    let row = ip_throttle::Entity::insert(ip_throttle::ActiveModel {
        ip: Set(key.to_owned()),
        window_start_ms: Set(now_ms),
        attempts: Set(1),
    })
    .on_conflict(
        OnConflict::column(ip_throttle::Column::Ip)
            .value(
                ip_throttle::Column::Attempts,
                Expr::case(expired.clone(), Expr::val(1)).finally(col(ip_throttle::Column::Attempts).add(1)),
            )
            .value(
                ip_throttle::Column::WindowStartMs,
                Expr::case(expired, Expr::val(now_ms)).finally(col(ip_throttle::Column::WindowStartMs)),
            )
            .to_owned(),
    )
    .exec_with_returning(conn)
    .await?;
    Ok(row.attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_doubles_from_the_limit_and_is_capped() {
        let s = Settings::default();
        assert_eq!(lock_ms(&s, 5), 60_000);
        assert_eq!(lock_ms(&s, 6), 120_000);
        assert_eq!(lock_ms(&s, 7), 240_000);
        assert_eq!(lock_ms(&s, 100), 3_600_000);
    }

    #[test]
    fn ipv6_addresses_are_throttled_per_64() {
        assert_eq!(ip_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(ip_key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(ip_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(ip_key("192.0.2.1"), "192.0.2.1");
    }
}
