//! Roles: named bundles that users and clients hold; carried in tokens.

use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, QueryOrder, Set};
use serde::Serialize;
use serde_json::json;

use super::{Actor, AdminError};
use crate::domain::RoleName;
use crate::policy::Permission;
use crate::state::AppState;
use crate::storage::entities::role;
use crate::storage::{AuditEvent, is_unique_violation, record_audit};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoleView {
    pub name: String,
    pub description: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<role::Model> for RoleView {
    fn from(m: role::Model) -> Self {
        Self { name: m.name, description: m.description, created_at: m.created_at }
    }
}

pub async fn add(
    state: &AppState,
    actor: &Actor,
    name: &str,
    description: Option<&str>,
) -> Result<RoleView, AdminError> {
    actor.require(Permission::RolesWrite)?;
    let name = RoleName::parse(name)?;
    let description = description.map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned);
    if description.as_ref().is_some_and(|d| d.chars().count() > 512) {
        return Err(AdminError::Invalid(crate::domain::ParseError {
            field: "description",
            reason: "must be at most 512 characters".into(),
        }));
    }
    // Like every other admin text field: no control characters (an ESC or CR
    // printed raw by `role list` could rewrite an operator's terminal).
    if description.as_ref().is_some_and(|d| d.chars().any(char::is_control)) {
        return Err(AdminError::Invalid(crate::domain::ParseError {
            field: "description",
            reason: "must not contain control characters".into(),
        }));
    }
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    if role::Entity::find_by_id(name.as_str()).one(&txn).await?.is_some() {
        return Err(AdminError::exists("role", name.as_str()));
    }
    let model =
        role::ActiveModel { name: Set(name.to_string()), description: Set(description.clone()), created_at: Set(now) }
            .insert(&txn)
            .await
            .map_err(|e| if is_unique_violation(&e) { AdminError::exists("role", name.as_str()) } else { e.into() })?;
    record_audit(
        &txn,
        AuditEvent::new("role.created", "success")
            .actor(&actor.name)
            .source(actor.ip.clone(), actor.user_agent.clone())
            .detail(json!({ "role": name.as_str(), "description": description })),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(model.into())
}

pub async fn list(state: &AppState) -> Result<Vec<RoleView>, AdminError> {
    Ok(role::Entity::find()
        .order_by_asc(role::Column::Name)
        .all(&state.db)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Checks that every role exists; names the first unknown one.
pub(crate) async fn require_all<C: ConnectionTrait>(conn: &C, roles: &[RoleName]) -> Result<(), AdminError> {
    for r in roles {
        if role::Entity::find_by_id(r.as_str()).one(conn).await?.is_none() {
            return Err(AdminError::not_found("role", r.as_str()));
        }
    }
    Ok(())
}
