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
    /// The declarative file that manages it (`portcullis apply`).
    pub managed_by: Option<String>,
}

impl From<role::Model> for RoleView {
    fn from(m: role::Model) -> Self {
        Self { name: m.name, description: m.description, created_at: m.created_at, managed_by: m.managed_by }
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
    let model = role::ActiveModel {
        name: Set(name.to_string()),
        description: Set(description.clone()),
        created_at: Set(now),
        managed_by: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(|e| if is_unique_violation(&e) { AdminError::exists("role", name.as_str()) } else { e.into() })?;
    let audit_record = AuditEvent::new("role.created", "success")
        .actor(&actor.name)
        .source(actor.ip.clone(), actor.user_agent.clone())
        .detail(json!({ "role": name.as_str(), "description": description }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(model.into())
}

/// Every role (needs `users:read`: the roles are part of what a user holds).
pub async fn list(state: &AppState, actor: &Actor) -> Result<Vec<RoleView>, AdminError> {
    actor.require(Permission::UsersRead)?;
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

/// Roles declared in a file (`portcullis apply`): created, their
/// description changed, adopted, or (with `prune`) removed when nobody
/// holds them — in the caller's transaction, audited.
pub async fn reconcile_declared(
    state: &AppState,
    txn: &sea_orm::DatabaseTransaction,
    actor: &str,
    source: &str,
    declared: &[(String, Option<String>)],
    prune: bool,
) -> Result<Vec<super::clients::declared::Change>, AdminError> {
    use super::clients::declared::Change;
    use sea_orm::{ColumnTrait, IntoActiveModel, PaginatorTrait, QueryFilter};
    let now = state.clock.now();
    let mut changes = Vec::new();
    for (name, description) in declared {
        let name = RoleName::parse(name)?;
        let description = description.as_deref().map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned);
        if description.as_ref().is_some_and(|d| d.chars().count() > 512 || d.chars().any(char::is_control)) {
            return Err(AdminError::Refused(format!(
                "role {name}: description must be at most 512 characters without control characters"
            )));
        }
        match role::Entity::find_by_id(name.as_str()).one(txn).await? {
            None => {
                role::ActiveModel {
                    name: Set(name.to_string()),
                    description: Set(description.clone()),
                    created_at: Set(now),
                    managed_by: Set(Some(source.to_owned())),
                }
                .insert(txn)
                .await?;
                let detail = json!({ "role": name.as_str(), "description": description, "managed_by": source });
                record_audit(txn, AuditEvent::new("role.created", "success").actor(actor).detail(detail), now).await?;
                changes.push(Change {
                    action: "create",
                    kind: "role",
                    name: name.to_string(),
                    fields: Default::default(),
                });
            }
            Some(r) => {
                if let Some(other) = r.managed_by.as_deref().filter(|m| *m != source) {
                    return Err(AdminError::Refused(format!(
                        "role {name} is managed by another declarative file ({other}); remove it there first"
                    )));
                }
                let mut fields = serde_json::Map::new();
                if r.description != description {
                    fields.insert("description".into(), json!([r.description, description]));
                }
                let adopting = r.managed_by.as_deref() != Some(source);
                if fields.is_empty() && !adopting {
                    continue;
                }
                let mut m = r.into_active_model();
                m.description = Set(description.clone());
                m.managed_by = Set(Some(source.to_owned()));
                m.update(txn).await?;
                let detail = json!({ "role": name.as_str(), "changes": fields, "managed_by": source });
                record_audit(txn, AuditEvent::new("role.updated", "success").actor(actor).detail(detail), now).await?;
                let action = if adopting { "adopt" } else { "change" };
                changes.push(Change { action, kind: "role", name: name.to_string(), fields });
            }
        }
    }
    if prune {
        let kept: Vec<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
        let gone = role::Entity::find()
            .filter(role::Column::ManagedBy.eq(source))
            .filter(role::Column::Name.is_not_in(kept))
            .all(txn)
            .await?;
        for r in gone {
            use crate::storage::entities::{client_role, user_role};
            let held = user_role::Entity::find().filter(user_role::Column::RoleName.eq(&r.name)).count(txn).await?
                + client_role::Entity::find().filter(client_role::Column::RoleName.eq(&r.name)).count(txn).await?;
            if held > 0 {
                return Err(AdminError::Refused(format!(
                    "role {} is no longer declared but {held} users or clients hold it: take it from them first",
                    r.name
                )));
            }
            role::Entity::delete_by_id(r.name.as_str()).exec(txn).await?;
            let detail = json!({ "role": r.name, "managed_by": source });
            record_audit(txn, AuditEvent::new("role.removed", "success").actor(actor).detail(detail), now).await?;
            changes.push(Change { action: "delete", kind: "role", name: r.name, fields: Default::default() });
        }
    }
    Ok(changes)
}
