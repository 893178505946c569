//! A user's passkeys, for administrators: list them (recovery help: which
//! key is which) and revoke one (a lost or stolen key). A revocation ends
//! every session and refresh family of the user and tells relying parties
//! (back-channel logout), in one transaction with its audit record.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::json;

use super::{audit, find, target};
use crate::admin::{Actor, AdminError};
use crate::policy::Permission;
use crate::state::AppState;

/// One passkey as administrators see it (no key material).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PasskeyView {
    /// The WebAuthn credential id (base64url): what `passkey-remove` takes.
    pub credential_id: String,
    pub name: String,
    /// RFC 8176: `hwk` (bound to its device) or `swk` (may be synchronised).
    pub kind: &'static str,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The user's passkeys, oldest first (needs `users:read`).
pub async fn passkeys(state: &AppState, actor: &Actor, username: &str) -> Result<Vec<PasskeyView>, AdminError> {
    actor.require(Permission::UsersRead)?;
    let u = find(&state.db, username).await?;
    Ok(crate::authn::passkey::list(&state.db, &u.id)
        .await?
        .into_iter()
        .map(|p| PasskeyView {
            kind: if p.hardware { "hwk" } else { "swk" },
            created_at: at(p.created_ms),
            last_used_at: p.last_used_ms.map(at),
            name: p.name,
            credential_id: p.credential_id,
        })
        .collect())
}

/// Revokes one of the user's passkeys (needs `users:credentials` and
/// dominance over the user); ends their sessions everywhere.
pub async fn remove_passkey(
    state: &AppState,
    actor: &Actor,
    username: &str,
    credential_id: &str,
) -> Result<(), AdminError> {
    actor.require(Permission::UsersCredentials)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = target(&txn, actor, username).await?;
    actor.may_remove_factors_of(&u.id)?;
    let Some(row) = crate::authn::passkey::remove(&txn, &u.id, credential_id).await? else {
        return Err(AdminError::NotFound { what: "passkey", name: credential_id.to_owned() });
    };
    let ended = crate::session::end_all_for_user(&txn, &u.id, None, now.timestamp_millis()).await?;
    crate::authn::login::forget_devices(state, &txn, &u.id, None).await?;
    let audit_record = audit(actor, "passkey.removed", &u.id).detail(json!({
        "credential": row.credential_id, "name": row.name, "sessions_ended": ended.len(), "by_admin": true
    }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    crate::oidc::logout::notify_ended(state, &u.id, &ended).await;
    Ok(())
}
