//! The browser-session aggregate: a session row parsed once. Its recorded
//! sign-in (`amr`) decides what the session may do without asking again
//! (a second factor, a step-up); a value that does not parse is a
//! [`Damaged`] session, which the session layer ends on sight, never a
//! session with no recorded factor that goes on being used.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::entities::session;

/// A browser session, as the rest of the server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    /// When the user last authenticated (seconds since the epoch).
    pub auth_time: i64,
    pub last_seen_ms: i64,
    pub expires_ms: i64,
    /// RFC 8176 method names of the sign-in.
    pub amr: Vec<String>,
    pub acr: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub use super::Damaged;

impl Session {
    pub fn parse(row: session::Model) -> Result<Self, Damaged> {
        let amr = serde_json::from_str(&row.amr).map_err(|e| Damaged {
            record: "session",
            id: row.id.clone(),
            field: "amr",
            reason: e.to_string(),
        })?;
        Ok(Self {
            id: row.id,
            user_id: row.user_id,
            created_at: row.created_at,
            auth_time: row.auth_time,
            last_seen_ms: row.last_seen_ms,
            expires_ms: row.expires_ms,
            amr,
            acr: row.acr,
            ip: row.ip,
            user_agent: row.user_agent,
        })
    }
}

/// The session whose cookie secret has the keyed hash `token_hash`, as
/// stored (whether it is still live is the session layer's rule).
pub async fn by_token_hash<C: ConnectionTrait>(
    conn: &C,
    token_hash: &str,
) -> Result<Option<Result<Session, Damaged>>, DbErr> {
    Ok(session::Entity::find().filter(session::Column::TokenHash.eq(token_hash)).one(conn).await?.map(Session::parse))
}

/// A user's sessions seen after `seen_after_ms` that end after `now_ms`,
/// newest first. Damaged ones are left out (and logged): they cannot be
/// used, and the session layer ends them when their cookie comes back.
pub async fn live_for_user<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    now_ms: i64,
    seen_after_ms: i64,
) -> Result<Vec<Session>, DbErr> {
    let rows = session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::ExpiresMs.gt(now_ms))
        .filter(session::Column::LastSeenMs.gt(seen_after_ms))
        .order_by_desc(session::Column::LastSeenMs)
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Session::parse(r).inspect_err(|d| tracing::error!(error = %d, "a damaged session is not listed")).ok()
        })
        .collect())
}
