//! A user's linked upstream identities ("Sign in with …"), for
//! administrators: list them, and unlink one (an upstream account that was
//! compromised, or left the company). Unlinking ends every session and
//! refresh family of the user (back-channel logout), in one transaction
//! with its audit record.

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use serde_json::json;

use super::{audit, find, target};
use crate::admin::{Actor, AdminError};
use crate::policy::Permission;
use crate::state::AppState;
use crate::storage::entities::upstream_identity;

/// One linked upstream identity as administrators see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UpstreamView {
    /// The provider's id in the configuration (`[[upstream]] id`).
    pub provider: String,
    /// The provider's `sub` for the person.
    pub subject: String,
    /// The address the provider gave at the last sign-in, if it verified it.
    pub email: Option<String>,
    pub linked_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The user's linked identities, oldest first (needs `users:read`).
pub async fn upstream_identities(
    state: &AppState,
    actor: &Actor,
    username: &str,
) -> Result<Vec<UpstreamView>, AdminError> {
    actor.require(Permission::UsersRead)?;
    let u = find(&state.db, username).await?;
    Ok(upstream_identity::Entity::find()
        .filter(upstream_identity::Column::UserId.eq(u.id.as_str()))
        .order_by_asc(upstream_identity::Column::CreatedMs)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|i| UpstreamView {
            linked_at: at(i.created_ms),
            last_used_at: i.last_used_ms.map(at),
            provider: i.provider,
            subject: i.subject,
            email: i.email,
        })
        .collect())
}

/// Unlinks the user's identity at `provider` (needs `users:credentials`
/// and dominance over the user); ends their sessions everywhere.
pub async fn remove_upstream(
    state: &AppState,
    actor: &Actor,
    username: &str,
    provider: &str,
) -> Result<(), AdminError> {
    actor.require(Permission::UsersCredentials)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = target(&txn, actor, username).await?;
    actor.may_remove_factors_of(&u.id)?;
    let gone = upstream_identity::Entity::delete_many()
        .filter(upstream_identity::Column::UserId.eq(u.id.as_str()))
        .filter(upstream_identity::Column::Provider.eq(provider))
        .exec(&txn)
        .await?;
    if gone.rows_affected == 0 {
        return Err(AdminError::NotFound { what: "linked identity", name: provider.to_owned() });
    }
    let ended = crate::session::end_all_for_user(&txn, &u.id, None, now.timestamp_millis()).await?;
    let audit_record = audit(actor, "user.upstream_unlinked", &u.id)
        .detail(json!({ "provider": provider, "sessions_ended": ended.len(), "by_admin": true }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    crate::oidc::logout::notify_ended(state, &u.id, &ended).await;
    Ok(())
}
