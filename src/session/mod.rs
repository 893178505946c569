//! The SSO browser session: an opaque cookie ↔ a server-side record.
//!
//! The cookie holds 256 random bits; the database holds only their keyed hash,
//! so a database dump yields no usable session. A new id is issued at every
//! login (no fixation). Sessions end on logout, after `session_idle_secs`
//! without use, or `session_absolute_secs` after login, whichever comes first.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use crate::crypto::{CryptoError, random_token};
use crate::state::AppState;
use crate::storage::entities::session;
pub use crate::storage::sessions::Session;
use crate::storage::users::{self, User};

/// How often `last_seen` is written at most (a write per request would be waste).
const TOUCH_EVERY_MS: i64 = 60_000;

/// Authentication method references (RFC 8176) recorded on a session.
pub const AMR_PASSWORD: &str = "pwd";
/// RFC 8176 `fed`: the first factor was an upstream identity provider.
pub const AMR_FED: &str = "fed";
pub const AMR_OTP: &str = "otp";
/// A passkey that cannot leave its device (not backup eligible).
pub const AMR_HWK: &str = "hwk";
/// A passkey that may be synchronised between devices.
pub const AMR_SWK: &str = "swk";
/// The authenticator verified the user (PIN or biometric; WebAuthn UV).
pub const AMR_USER: &str = "user";
/// More than one factor.
pub const AMR_MFA: &str = "mfa";

/// A live session and its user.
#[derive(Debug, Clone)]
pub struct Current {
    pub session: Session,
    pub user: User,
}

/// What a new session records.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub user_id: &'a str,
    pub amr: &'a [&'a str],
    pub acr: Option<&'a str>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Creates a session; returns the record and the secret its cookie carries.
pub async fn create<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    new: NewSession<'_>,
    now: DateTime<Utc>,
) -> Result<(Session, String), SessionError> {
    let secret = random_token(32)?;
    let now_ms = now.timestamp_millis();
    let model = session::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        token_hash: Set(state.master_key.hasher().hash(&secret)),
        user_id: Set(new.user_id.to_owned()),
        created_at: Set(now),
        auth_time: Set(now.timestamp()),
        last_seen_ms: Set(now_ms),
        expires_ms: Set(now_ms + state.settings.session_absolute_secs * 1000),
        amr: Set(serde_json::Value::from(new.amr.to_vec()).to_string()),
        acr: Set(new.acr.map(str::to_owned)),
        ip: Set(new.ip),
        user_agent: Set(new.user_agent.map(|ua| ua.chars().take(512).collect())),
    }
    .insert(conn)
    .await?;
    let session = Session::parse(model).map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok((session, secret))
}

/// Looks up the live session whose cookie carries `secret`, enforcing the
/// idle and absolute limits (an expired record is deleted on sight, and so
/// is a damaged one: it is never a session with no recorded factor). A
/// session whose account is disabled, gone or damaged is none.
pub async fn current(state: &AppState, secret: &str) -> Result<Option<Current>, DbErr> {
    let now = state.clock.now();
    let now_ms = now.timestamp_millis();
    let hash = state.master_key.hasher().hash(secret);
    let s = match crate::storage::sessions::by_token_hash(&state.db, &hash).await? {
        None => return Ok(None),
        Some(Ok(s)) => s,
        Some(Err(d)) => {
            tracing::error!(error = %d, "a damaged session is ended");
            end(&state.db, &d.id).await?;
            return Ok(None);
        }
    };
    let idle_ms = state.settings.session_idle_secs * 1000;
    if now_ms >= s.expires_ms || now_ms >= s.last_seen_ms + idle_ms {
        end(&state.db, &s.id).await?;
        return Ok(None);
    }
    let Some(u) = users::usable(&state.db, &s.user_id).await? else {
        return Ok(None);
    };
    let mut s = s;
    if now_ms - s.last_seen_ms >= TOUCH_EVERY_MS {
        session::Entity::update_many()
            .col_expr(session::Column::LastSeenMs, sea_orm::sea_query::Expr::val(now_ms))
            .filter(session::Column::Id.eq(s.id.as_str()))
            .exec(&state.db)
            .await?;
        s.last_seen_ms = now_ms;
    }
    Ok(Some(Current { session: s, user: u }))
}

/// Ends one session.
pub async fn end<C: ConnectionTrait>(conn: &C, session_id: &str) -> Result<bool, DbErr> {
    Ok(session::Entity::delete_by_id(session_id).exec(conn).await?.rows_affected > 0)
}

/// Ends every session of a user except `keep` (e.g. after a password change),
/// and the refresh-token families granted from them: a credential change or
/// an administrator's "end sessions" leaves no relying party a way back in.
///
/// Returns the ids of the sessions ended; once the transaction has committed,
/// pass them to `oidc::logout::notify_ended` for the back-channel logouts.
pub async fn end_all_for_user<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    keep: Option<&str>,
    now_ms: i64,
) -> Result<Vec<String>, DbErr> {
    use crate::storage::entities::refresh_family;
    use sea_orm::sea_query::Expr;
    let mut families = refresh_family::Entity::update_many()
        .col_expr(refresh_family::Column::RevokedMs, Expr::val(now_ms))
        .filter(refresh_family::Column::UserId.eq(user_id))
        .filter(refresh_family::Column::RevokedMs.is_null());
    let mut q = session::Entity::delete_many().filter(session::Column::UserId.eq(user_id));
    if let Some(k) = keep {
        q = q.filter(session::Column::Id.ne(k));
        families = families.filter(
            sea_orm::Condition::any()
                .add(refresh_family::Column::SessionId.ne(k))
                .add(refresh_family::Column::SessionId.is_null()),
        );
    }
    families.exec(conn).await?;
    let mut ids = session::Entity::find().filter(session::Column::UserId.eq(user_id));
    if let Some(k) = keep {
        ids = ids.filter(session::Column::Id.ne(k));
    }
    let ended: Vec<String> = ids.all(conn).await?.into_iter().map(|s| s.id).collect();
    q.exec(conn).await?;
    Ok(ended)
}

/// The live sessions of a user (neither idle nor past their end), newest first.
pub async fn list_for_user<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Session>, DbErr> {
    let now_ms = now.timestamp_millis();
    crate::storage::sessions::live_for_user(conn, user_id, now_ms, now_ms - state.settings.session_idle_secs * 1000)
        .await
}
