//! Clients declared in a file (`portcullis apply`): created, changed field
//! by field, adopted or (with `--prune`) removed, inside the caller's
//! transaction, each change audited like any other — the same parsing and
//! the same row as `client add` (`spec::parse`, `row_of`).

use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, Set};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{ClientSpec, parse, row_of, view};
use crate::admin::{Actor, AdminError, roles};
use crate::domain::ClientKind;
use crate::state::AppState;
use crate::storage::clients::{self, Client};
use crate::storage::entities::{client, client_role};
use crate::storage::{AuditEvent, record_audit};

/// One declared client and its secret (read from the file or variable it names).
pub struct Declared {
    pub spec: ClientSpec,
    pub secret: Option<SecretString>,
}

/// A change `apply` made (or, with `--dry-run`, would make).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    /// `create`, `change`, `adopt`, `delete`.
    pub action: &'static str,
    pub kind: &'static str,
    pub name: String,
    /// Field → [before, after] for a change; never a secret's value.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub fields: serde_json::Map<String, Value>,
}

fn compared(v: &super::ClientView) -> serde_json::Map<String, Value> {
    let mut m = match serde_json::to_value(v) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    for k in ["created_at", "updated_at", "managed_by"] {
        m.remove(k);
    }
    m
}

/// Reconciles the clients of `source` with `declared` (the caller
/// invalidates the client cache for the changed ones after its commit).
pub async fn reconcile(
    state: &AppState,
    txn: &DatabaseTransaction,
    who: &Actor,
    source: &str,
    declared: &[Declared],
) -> Result<Vec<Change>, AdminError> {
    let now = state.clock.now();
    let actor = who.name.as_str();
    let mut changes = Vec::new();
    for d in declared {
        let p = parse(&d.spec)?;
        let id = p.client_id.to_string();
        roles::require_all(txn, &p.roles).await?;
        // The rules of `client add`: only roles the actor holds, and only
        // clients it could control.
        let admin_audience = p.resources.iter().any(|r| r.as_str() == state.admin_audience());
        who.may_hand_out(&p.roles)?;
        who.may_control_client(&p.roles, admin_audience)?;
        match (p.kind, &d.secret) {
            (ClientKind::Public, Some(_)) => {
                return Err(AdminError::Refused(format!("client {id}: a public client has no secret")));
            }
            (ClientKind::Confidential, None) if clients::row(txn, &id).await?.is_none() => {
                return Err(AdminError::Refused(format!(
                    "client {id}: a confidential client needs secret_env or secret_file"
                )));
            }
            _ => {}
        }
        let Some((row, current_roles)) = clients::row(txn, &id).await? else {
            let hash = d.secret.as_ref().map(|s| state.master_key.hasher().hash(s.expose_secret()));
            row_of(&p, &d.spec, hash, Some(source.to_owned()), now).into_active_model().reset_all().insert(txn).await?;
            for r in &p.roles {
                client_role::ActiveModel { client_id: Set(id.clone()), role_name: Set(r.to_string()) }
                    .insert(txn)
                    .await?;
            }
            let event = AuditEvent::new("client.created", "success").actor(actor).client(&id);
            record_audit(txn, event.detail(json!({ "managed_by": source })), now).await?;
            // What it is given, so a review of the diff sees it (roles,
            // resources such as the admin API, redirect URIs): every value
            // that is not empty, false or absent.
            let created = compared(&view(&Client::parse(
                row_of(&p, &d.spec, None, None, now),
                p.roles.iter().map(|r| r.to_string()).collect(),
            )?));
            let fields = created
                .into_iter()
                .filter(|(k, v)| k != "client_id" && !(v.is_null() || v == &json!(false) || v == &json!([])))
                .map(|(k, v)| (k, json!([Value::Null, v])))
                .collect();
            changes.push(Change { action: "create", kind: "client", name: id, fields });
            continue;
        };
        if let Some(other) = row.managed_by.as_deref().filter(|m| *m != source) {
            return Err(AdminError::Refused(format!(
                "client {id} is managed by another declarative file ({other}); remove it there first"
            )));
        }
        if row.public != (p.kind == ClientKind::Public) {
            // As `client update`: a confidential client's refresh tokens
            // need its secret; made public, they would not.
            return Err(AdminError::Refused(format!(
                "client {id}: public and confidential cannot be switched; declare a new client id"
            )));
        }
        who.may_control_client(&current_roles, admin_audience)?;
        // Field by field, as the admin API shows a client.
        let before = Client::parse(row.clone(), current_roles.clone()).map(|c| compared(&view(&c)));
        let role_names: Vec<String> = p.roles.iter().map(|r| r.to_string()).collect();
        let desired_row = row_of(&p, &d.spec, row.secret_hash.clone(), Some(source.to_owned()), row.created_at);
        let after = compared(&view(&Client::parse(desired_row.clone(), role_names.clone())?));
        let mut fields = serde_json::Map::new();
        match &before {
            Ok(before) => {
                for (k, v) in &after {
                    if before.get(k) != Some(v) {
                        fields.insert(k.clone(), json!([before.get(k), v]));
                    }
                }
            }
            Err(damaged) => {
                // Every field is written: every field is shown.
                for (k, v) in &after {
                    let was = if k == damaged.field { json!("(damaged)") } else { Value::Null };
                    fields.insert(k.clone(), json!([was, v]));
                }
            }
        }
        let mut sorted_roles = current_roles.clone();
        sorted_roles.sort();
        let roles_changed = sorted_roles != role_names;
        let mut secret_hash = row.secret_hash.clone();
        if let Some(s) = &d.secret {
            let same =
                row.secret_hash.as_deref().is_some_and(|h| state.master_key.hasher().verify(s.expose_secret(), h));
            if !same {
                secret_hash = Some(state.master_key.hasher().hash(s.expose_secret()));
                fields.insert("secret".into(), json!(["(old)", "(from the file's reference)"]));
            }
        }
        let adopting = row.managed_by.as_deref() != Some(source);
        if fields.is_empty() && !adopting {
            continue;
        }
        let mut model = row_of(&p, &d.spec, secret_hash, Some(source.to_owned()), row.created_at);
        model.updated_at = if fields.is_empty() { row.updated_at } else { now };
        model.into_active_model().reset_all().update(txn).await?;
        if roles_changed {
            client_role::Entity::delete_many().filter(client_role::Column::ClientId.eq(id.as_str())).exec(txn).await?;
            for r in &role_names {
                client_role::ActiveModel { client_id: Set(id.clone()), role_name: Set(r.clone()) }.insert(txn).await?;
            }
        }
        let event = AuditEvent::new("client.updated", "success").actor(actor).client(&id);
        record_audit(txn, event.detail(json!({ "managed_by": source, "changes": fields })), now).await?;
        let action = if adopting { "adopt" } else { "change" };
        changes.push(Change { action, kind: "client", name: id, fields });
    }
    Ok(changes)
}

/// Removes the clients `source` manages that `declared` no longer names.
pub async fn prune(
    state: &AppState,
    txn: &DatabaseTransaction,
    who: &Actor,
    source: &str,
    declared: &[Declared],
) -> Result<Vec<Change>, AdminError> {
    let now = state.clock.now();
    let actor = who.name.as_str();
    let mut changes = Vec::new();
    {
        let kept: Vec<String> = declared.iter().map(|d| d.spec.client_id.clone()).collect();
        let gone = client::Entity::find()
            .filter(client::Column::ManagedBy.eq(source))
            .filter(client::Column::ClientId.is_not_in(kept))
            .all(txn)
            .await?;
        for c in gone {
            let held: Vec<String> = client_role::Entity::find()
                .filter(client_role::Column::ClientId.eq(c.client_id.as_str()))
                .all(txn)
                .await?
                .into_iter()
                .map(|r| r.role_name)
                .collect();
            who.may_control_client(&held, true)?;
            let revoked = super::delete_in(txn, &c.client_id, now).await?;
            let event = AuditEvent::new("client.removed", "success").actor(actor).client(&c.client_id);
            let detail = json!({ "managed_by": source, "refresh_families_revoked": revoked });
            record_audit(txn, event.detail(detail), now).await?;
            changes.push(Change { action: "delete", kind: "client", name: c.client_id, fields: Default::default() });
        }
    }
    Ok(changes)
}
