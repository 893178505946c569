//! Accounts declared in a file (`[[users]]`): username, e-mail address,
//! name and roles — never a secret. A new account gets an invitation (a
//! single-use link to choose a password, as `user invite`); an existing one
//! is changed field by field or adopted; `--prune` disables (never erases)
//! accounts the file manages and no longer declares: erasure stays an
//! explicit `user delete`.

use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde_json::json;

use crate::admin::clients::declared::Change;
use crate::admin::{Actor, AdminError};
use crate::domain::{DisplayName, Email, RoleName, Username};
use crate::state::AppState;
use crate::storage::entities::{user, user_role};
use crate::storage::{AuditEvent, record_audit};

/// One declared account, parsed.
pub struct DeclaredUser {
    pub username: Username,
    pub email: Option<Email>,
    pub name: Option<DisplayName>,
    pub roles: Vec<RoleName>,
}

/// A link made for a new account (shown once; `None` in a dry run).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Invitation {
    pub username: String,
    pub url: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

fn role_names(roles: &[RoleName]) -> Vec<String> {
    let mut v: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    v.sort();
    v.dedup();
    v
}

async fn set_roles(txn: &DatabaseTransaction, user_id: &str, roles: &[String]) -> Result<(), AdminError> {
    user_role::Entity::delete_many().filter(user_role::Column::UserId.eq(user_id)).exec(txn).await?;
    for r in roles {
        user_role::ActiveModel { user_id: Set(user_id.to_owned()), role_name: Set(r.clone()) }.insert(txn).await?;
    }
    Ok(())
}

/// Reconciles one declared account.
pub async fn reconcile(
    state: &AppState,
    txn: &DatabaseTransaction,
    who: &Actor,
    source: &str,
    d: &DeclaredUser,
) -> Result<(Option<Change>, Option<Invitation>), AdminError> {
    let now = state.clock.now();
    let roles = role_names(&d.roles);
    crate::admin::roles::require_all(txn, &d.roles).await?;
    who.may_hand_out(&roles)?;
    let email = d.email.as_ref().map(|e| e.to_string());
    let name = d.name.as_ref().map(|n| n.to_string());
    let existing = user::Entity::find().filter(user::Column::UsernameKey.eq(d.username.key())).one(txn).await?;
    let Some(u) = existing else {
        let id = uuid::Uuid::new_v4().to_string();
        let mut row = crate::storage::new_user_row(&id, &d.username, email, name, false, now);
        row.managed_by = Set(Some(source.to_owned()));
        row.insert(txn).await?;
        set_roles(txn, &id, &roles).await?;
        let detail =
            json!({ "username": d.username.as_str(), "roles": roles, "password_set": false, "managed_by": source });
        record_audit(txn, AuditEvent::new("user.created", "success").actor(&who.name).user(&id).detail(detail), now)
            .await?;
        let reach = crate::lifecycle::reach_of(txn, &id).await?;
        let target = crate::lifecycle::LinkFor { user_id: Some(&id), email: None, payload: Some(reach) };
        let link = crate::lifecycle::create(state, txn, crate::lifecycle::Purpose::Invite, target, now)
            .await
            .map_err(|e| AdminError::Refused(format!("invitation: {e}")))?;
        let event = AuditEvent::new("user.invitation_created", "success").actor(&who.name).user(&id);
        record_audit(txn, event.detail(json!({ "mailed": false, "expires_at": link.expires_at })), now).await?;
        let change =
            Change { action: "create", kind: "user", name: d.username.to_string(), fields: Default::default() };
        let invitation = Invitation { username: d.username.to_string(), url: link.url, expires_at: link.expires_at };
        return Ok((Some(change), Some(invitation)));
    };
    if let Some(other) = u.managed_by.as_deref().filter(|m| *m != source) {
        return Err(AdminError::Refused(format!(
            "user {} is managed by another declarative file ({other}); remove it there first",
            u.username
        )));
    }
    let current_roles = crate::storage::users::roles(txn, &u.id).await?;
    who.may_act_on_user(&current_roles)?;
    let mut fields = serde_json::Map::new();
    if u.email != email {
        fields.insert("email".into(), json!([u.email, email]));
    }
    if u.display_name != name {
        fields.insert("name".into(), json!([u.display_name, name]));
    }
    if current_roles != roles {
        fields.insert("roles".into(), json!([current_roles, roles]));
    }
    let adopting = u.managed_by.as_deref() != Some(source);
    if fields.is_empty() && !adopting {
        return Ok((None, None));
    }
    let id = u.id.clone();
    let email_changed = u.email != email;
    let mut m = u.into_active_model();
    m.email = Set(email);
    m.display_name = Set(name);
    if email_changed {
        // A new address is not proved by the file.
        m.email_verified = Set(false);
    }
    m.managed_by = Set(Some(source.to_owned()));
    if !fields.is_empty() {
        m.updated_at = Set(now);
    }
    m.update(txn).await?;
    if fields.contains_key("roles") {
        set_roles(txn, &id, &roles).await?;
    }
    let detail = json!({ "changes": fields, "managed_by": source });
    record_audit(txn, AuditEvent::new("user.updated", "success").actor(&who.name).user(&id).detail(detail), now)
        .await?;
    let action = if adopting { "adopt" } else { "change" };
    Ok((Some(Change { action, kind: "user", name: d.username.to_string(), fields }), None))
}

/// Disables the accounts `source` manages that `declared` no longer names.
pub async fn prune(
    state: &AppState,
    txn: &DatabaseTransaction,
    who: &Actor,
    source: &str,
    declared: &[DeclaredUser],
) -> Result<Vec<Change>, AdminError> {
    let now = state.clock.now();
    let kept: Vec<String> = declared.iter().map(|d| d.username.key()).collect();
    let gone = user::Entity::find()
        .filter(user::Column::ManagedBy.eq(source))
        .filter(user::Column::UsernameKey.is_not_in(kept))
        .filter(user::Column::Disabled.eq(false))
        .all(txn)
        .await?;
    let mut changes = Vec::new();
    for u in gone {
        who.may_act_on_user(&crate::storage::users::roles(txn, &u.id).await?)?;
        let (id, username) = (u.id.clone(), u.username.clone());
        let mut m = u.into_active_model();
        m.disabled = Set(true);
        m.updated_at = Set(now);
        m.update(txn).await?;
        crate::session::end_all_for_user(txn, &id, None, now.timestamp_millis()).await?;
        let detail = json!({ "managed_by": source, "reason": "no longer declared" });
        record_audit(txn, AuditEvent::new("user.disabled", "success").actor(&who.name).user(&id).detail(detail), now)
            .await?;
        changes.push(Change { action: "disable", kind: "user", name: username, fields: Default::default() });
    }
    Ok(changes)
}
