//! Changing a client's registration. A stored registration that does not
//! parse is never read as "empty": an update is refused (with an audit
//! record naming the field, the stored text untouched) unless the change
//! itself sets that field anew — the way to repair it.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde_json::json;

use super::spec::{ClientPatch, parse, spec_of};
use super::{ClientView, Stored, controlled, json_list, neutral, view};
use crate::admin::{Actor, AdminError, changes, roles};
use crate::policy::Permission;
use crate::state::AppState;
use crate::storage::clients::Client;
use crate::storage::entities::client_role;
use crate::storage::{AuditEvent, record_audit};

/// Whether the patch sets the (stored, damaged) field `field`.
fn sets(patch: &ClientPatch, field: &str) -> bool {
    match field {
        "redirect_uris" => patch.redirect_uris.is_some(),
        "post_logout_redirect_uris" => patch.post_logout_redirect_uris.is_some(),
        "grant_types" => patch.grant_types.is_some(),
        "scopes" => patch.scopes.is_some(),
        "resources" => patch.resources.is_some(),
        "access_policy" => patch.access_policy.is_some(),
        "jwks" => patch.jwks.is_some(),
        "id_token_alg" => patch.id_token_alg.is_some(),
        _ => false,
    }
}

/// Changes a client's registration in one transaction, recording every
/// changed field's before and after value in the audit log.
pub async fn update(
    state: &AppState,
    actor: &Actor,
    client_id: &str,
    patch: ClientPatch,
) -> Result<ClientView, AdminError> {
    actor.require(Permission::ClientsWrite)?;
    if patch.roles.is_some() {
        actor.require(Permission::RolesWrite)?;
    }
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let Stored { row, roles, parsed } = controlled(state, &txn, actor, client_id).await?;
    let current = match parsed {
        Ok(c) => c,
        Err(d) if sets(&patch, d.field) => {
            Client::parse(neutral(row.clone(), d.field), roles).map_err(AdminError::Damaged)?
        }
        Err(d) => {
            drop(txn);
            record_audit(
                &state.db,
                AuditEvent::new("client.update_refused", "failure")
                    .actor(&actor.name)
                    .client(client_id)
                    .source(actor.ip.clone(), actor.user_agent.clone())
                    .detail(json!({ "reason": "stored_value_does_not_parse", "field": d.field })),
                now,
            )
            .await?;
            return Err(AdminError::Damaged(d));
        }
    };
    let before = view(&current);
    let mut spec = spec_of(&current);
    if let Some(v) = patch.name {
        spec.name = v;
    }
    if let Some(v) = patch.redirect_uris {
        spec.redirect_uris = v;
    }
    if let Some(v) = patch.post_logout_redirect_uris {
        spec.post_logout_redirect_uris = v;
    }
    if let Some(v) = patch.grant_types {
        spec.grants = v;
    }
    if let Some(v) = patch.scopes {
        spec.scopes = v;
    }
    if let Some(v) = patch.roles {
        spec.roles = v;
    }
    if let Some(v) = patch.first_party {
        spec.first_party = v;
    }
    if let Some(v) = patch.pkce {
        spec.pkce = Some(v);
    }
    if let Some(v) = patch.id_token_alg {
        spec.id_token_alg = Some(v);
    }
    if let Some(v) = patch.require_mfa {
        spec.require_mfa = v;
    }
    if let Some(v) = patch.backchannel_logout_uri {
        spec.backchannel_logout_uri = v;
    }
    if let Some(v) = patch.jwks {
        spec.jwks = v.map(|j| j.to_string());
    }
    if let Some(v) = patch.access_policy {
        spec.access_policy = v;
    }
    if let Some(v) = patch.resources {
        spec.resources = v;
    }
    if let Some(v) = patch.refresh_grace_secs {
        spec.refresh_grace_secs = v;
    }
    if let Some(v) = patch.profile {
        spec.profile = v;
    }
    if let Some(v) = patch.dpop {
        spec.dpop = v;
    }
    if let Some(v) = patch.require_par {
        spec.require_par = v;
    }
    let p = parse(&spec)?;
    // What the client becomes must stay within the actor's reach too.
    let admin_audience = p.resources.iter().any(|r| r.as_str() == state.admin_audience());
    actor.may_hand_out(&p.roles)?;
    actor.may_control_client(&p.roles, admin_audience)?;
    roles::require_all(&txn, &p.roles).await?;
    let grants: Vec<&str> = p.grants.iter().map(|g| g.as_str()).collect();
    let mut am = row.into_active_model();
    am.name = Set(p.name.clone());
    am.redirect_uris = Set(json_list(&p.redirect_uris));
    am.post_logout_redirect_uris = Set(json_list(&p.post_logout));
    am.grant_types = Set(json_list(&grants));
    am.scopes = Set(json_list(&p.scopes));
    am.first_party = Set(spec.first_party);
    am.pkce_required = Set(p.pkce_required);
    am.id_token_alg = Set(p.id_token_alg.as_str().to_owned());
    am.require_mfa = Set(spec.require_mfa);
    am.backchannel_logout_uri = Set(p.backchannel.map(String::from));
    am.jwks = Set(p.jwks);
    am.access_policy = Set(p.access_policy);
    am.resources = Set(Some(json_list(&p.resources)));
    am.refresh_grace_secs = Set(p.refresh_grace_secs);
    am.profile = Set(p.profile.map(|p| p.as_str().to_owned()));
    am.dpop_bound = Set(spec.dpop);
    am.require_par = Set(spec.require_par);
    am.updated_at = Set(now);
    am.update(&txn).await?;
    client_role::Entity::delete_many().filter(client_role::Column::ClientId.eq(client_id)).exec(&txn).await?;
    for r in &p.roles {
        client_role::ActiveModel { client_id: Set(client_id.to_owned()), role_name: Set(r.to_string()) }
            .insert(&txn)
            .await?;
    }
    let after = view(&super::find(&txn, client_id).await?);
    let audit_record = AuditEvent::new("client.updated", "success")
        .actor(&actor.name)
        .client(client_id)
        .source(actor.ip.clone(), actor.user_agent.clone())
        .detail(json!({ "changes": changes(&before, &after) }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    state.clients.invalidate(client_id);
    Ok(after)
}
