//! OAuth clients (relying parties and service clients).
//!
//! A confidential client's secret is generated here (256 bits from the OS RNG),
//! returned once, and stored only as a keyed hash (see `crypto::SecretHasher`).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;

pub(crate) mod declared;
pub mod registration;
mod spec;
mod update;

use spec::json_list;
use spec::parse;
pub use spec::{ClientPatch, ClientSpec};
pub use update::update;

use super::{Actor, AdminError, roles};
use crate::crypto::random_token;
use crate::domain::ClientKind;
use crate::policy::Permission;
use crate::policy::access::AccessPolicy;
use crate::state::AppState;
use crate::storage::clients::{self, Client};
use crate::storage::entities::{client, client_role};
use crate::storage::{AuditEvent, is_unique_violation};
use sea_orm::sea_query::Expr;

/// Bytes of entropy in a client secret.
const SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: Option<String>,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub first_party: bool,
    pub pkce: &'static str,
    pub id_token_alg: String,
    pub require_mfa: bool,
    pub backchannel_logout_uri: Option<String>,
    pub has_jwks: bool,
    /// SHA-256 (hex) of the registered JWK Set: a replaced key set shows in
    /// the audit log's change record.
    pub jwks_sha256: Option<String>,
    pub access_policy: Option<AccessPolicy>,
    /// Resource indicators (RFC 8707) the client may ask tokens for.
    pub resources: Vec<String>,
    /// Refresh-token grace in seconds; none: strict rotation.
    pub refresh_grace_secs: Option<i32>,
    /// The security profile (`fapi2`) the client is held to, if any.
    pub profile: Option<String>,
    /// Access tokens only DPoP-bound (RFC 9449).
    pub dpop: bool,
    /// Authorization requests only pushed (RFC 9126).
    pub require_par: bool,
    /// When the client registered itself (RFC 7591, ms); none: an operator registered it.
    pub registered_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The declarative file that manages the client (`portcullis apply`);
    /// changes elsewhere are refused.
    pub managed_by: Option<String>,
}

/// A created client and its secret (shown once; `None` for public clients).
#[derive(Debug)]
pub struct Created {
    pub client: ClientView,
    pub secret: Option<SecretString>,
}

pub async fn add(state: &AppState, actor: &Actor, spec: &ClientSpec) -> Result<Created, AdminError> {
    add_as(state, actor, spec, None).await
}

/// [`add`]; `registration`: the keyed hash of the registration access token
/// of a client registering itself (RFC 7591), recorded with the client.
pub(crate) async fn add_as(
    state: &AppState,
    actor: &Actor,
    spec: &ClientSpec,
    registration: Option<String>,
) -> Result<Created, AdminError> {
    actor.require(Permission::ClientsWrite)?;
    if !spec.roles.is_empty() {
        // A client's roles are permissions it acts with: granting them needs roles:write.
        actor.require(Permission::RolesWrite)?;
    }
    let p = parse(spec)?;
    let admin_audience = p.resources.iter().any(|r| r.as_str() == state.admin_audience());
    actor.may_hand_out(&p.roles)?;
    actor.may_control_client(&p.roles, admin_audience)?;
    // A FAPI 2.0 client — or a client registering itself with its keys —
    // authenticates with its keys only: it gets no secret.
    let keys_only = p.profile.is_some() || (registration.is_some() && p.jwks.is_some());
    let secret = match p.kind {
        ClientKind::Confidential if keys_only => None,
        ClientKind::Confidential => Some(SecretString::from(random_token(SECRET_BYTES)?)),
        ClientKind::Public => None,
    };
    let secret_hash = secret.as_ref().map(|s| state.master_key.hasher().hash(s.expose_secret()));
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    if client::Entity::find_by_id(p.client_id.as_str()).one(&txn).await?.is_some() {
        return Err(AdminError::exists("client", p.client_id.as_str()));
    }
    roles::require_all(&txn, &p.roles).await?;
    let grants: Vec<&str> = p.grants.iter().map(|g| g.as_str()).collect();
    let mut row = row_of(&p, spec, secret_hash, None, now);
    if let Some(h) = registration {
        row.registered_ms = Some(now.timestamp_millis());
        row.registration_token_hash = Some(h);
    }
    row.into_active_model().reset_all().insert(&txn).await.map_err(|e| {
        if is_unique_violation(&e) { AdminError::exists("client", p.client_id.as_str()) } else { e.into() }
    })?;
    for r in &p.roles {
        client_role::ActiveModel { client_id: Set(p.client_id.to_string()), role_name: Set(r.to_string()) }
            .insert(&txn)
            .await?;
    }
    let audit_record = AuditEvent::new("client.created", "success")
        .actor(&actor.name)
        .client(p.client_id.as_str())
        .source(actor.ip.clone(), actor.user_agent.clone())
        .detail(json!({
            "public": p.kind == ClientKind::Public,
            "grant_types": grants,
            "redirect_uris": p.redirect_uris,
            "scopes": p.scopes,
            "roles": p.roles,
            "access_policy": spec.access_policy,
            "resources": p.resources,
        }));
    let client = view(&find(&txn, p.client_id.as_str()).await?);
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(Created { client, secret })
}

/// The stored row of a parsed registration — the one way a client's row is
/// made (`client add`, `apply`).
fn row_of(
    p: &spec::Parsed,
    spec: &ClientSpec,
    secret_hash: Option<String>,
    managed_by: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> client::Model {
    let grants: Vec<&str> = p.grants.iter().map(|g| g.as_str()).collect();
    client::Model {
        client_id: p.client_id.to_string(),
        name: p.name.clone(),
        public: p.kind == ClientKind::Public,
        secret_hash,
        redirect_uris: json_list(&p.redirect_uris),
        post_logout_redirect_uris: json_list(&p.post_logout),
        grant_types: json_list(&grants),
        scopes: json_list(&p.scopes),
        first_party: spec.first_party,
        pkce_required: p.pkce_required,
        id_token_alg: p.id_token_alg.as_str().to_owned(),
        require_mfa: spec.require_mfa,
        backchannel_logout_uri: p.backchannel.clone().map(String::from),
        jwks: p.jwks.clone(),
        access_policy: p.access_policy.clone(),
        resources: Some(json_list(&p.resources)),
        refresh_grace_secs: p.refresh_grace_secs,
        created_at: now,
        updated_at: now,
        managed_by,
        profile: p.profile.map(|p| p.as_str().to_owned()),
        dpop_bound: spec.dpop,
        require_par: spec.require_par,
        registered_ms: None,
        registration_token_hash: None,
        last_used_ms: None,
    }
}

/// The client `client_id`, parsed (a damaged registration is an error naming the field).
pub(crate) async fn find<C: ConnectionTrait>(conn: &C, client_id: &str) -> Result<Client, AdminError> {
    clients::find(conn, client_id).await?.ok_or_else(|| AdminError::not_found("client", client_id))
}

/// Whether a client may ask for admin-API tokens.
fn has_admin_audience(state: &AppState, c: &Client) -> bool {
    c.may_request(&state.admin_audience())
}

/// A stored client: its row, its roles, and the row parsed.
struct Stored {
    row: client::Model,
    roles: Vec<String>,
    parsed: Result<Client, clients::Damaged>,
}

/// The stored client `client_id`, once the actor is known to be allowed to
/// control it (it holds every role the client acts with): every
/// client-changing operation finds its target through here, so nothing about
/// the stored values — not even which field is damaged — is told to an actor
/// that does not control the client. A damaged registration is judged on its
/// roles (their own table) and, when its resources cannot be read, as if they
/// named the admin API (the widest reading).
async fn controlled<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    actor: &Actor,
    client_id: &str,
) -> Result<Stored, AdminError> {
    let Some((row, roles)) = clients::row(conn, client_id).await? else {
        return Err(AdminError::not_found("client", client_id));
    };
    if let Some(file) = &row.managed_by {
        return Err(AdminError::Refused(format!(
            "client {client_id} is managed by the declarative file {file} (portcullis apply): change it there"
        )));
    }
    let parsed = Client::parse(row.clone(), roles.clone());
    let admin_audience = match &parsed {
        Ok(c) => has_admin_audience(state, c),
        Err(d) => Client::parse(neutral(row.clone(), d.field), roles.clone())
            .map_or(true, |c| d.field == "resources" || has_admin_audience(state, &c)),
    };
    actor.may_control_client(&roles, admin_audience)?;
    Ok(Stored { row, roles, parsed })
}

/// The client `client_id`, parsed, once the actor controls it.
async fn target<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    actor: &Actor,
    client_id: &str,
) -> Result<Client, AdminError> {
    Ok(controlled(state, conn, actor, client_id).await?.parsed?)
}

/// The row with a damaged field replaced by a neutral value (the patch sets
/// the real one).
fn neutral(mut row: client::Model, field: &str) -> client::Model {
    match field {
        "redirect_uris" => row.redirect_uris = "[]".into(),
        "post_logout_redirect_uris" => row.post_logout_redirect_uris = "[]".into(),
        "grant_types" => row.grant_types = "[]".into(),
        "scopes" => row.scopes = "[]".into(),
        "resources" => row.resources = None,
        "access_policy" => row.access_policy = None,
        "jwks" => row.jwks = None,
        "id_token_alg" => row.id_token_alg = "RS256".into(),
        _ => {}
    }
    row
}

/// What administrators see of a client.
pub fn view(c: &Client) -> ClientView {
    ClientView {
        client_id: c.client_id.clone(),
        name: c.name.clone(),
        public: c.public,
        redirect_uris: c.redirect_uris.clone(),
        post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
        grant_types: c.grant_types.clone(),
        scopes: c.scopes.clone(),
        roles: c.roles.clone(),
        first_party: c.first_party,
        pkce: if c.pkce_required { "required" } else { "optional" },
        id_token_alg: c.id_token_alg.as_str().to_owned(),
        require_mfa: c.require_mfa,
        backchannel_logout_uri: c.backchannel_logout_uri.clone(),
        has_jwks: c.jwks.is_some(),
        jwks_sha256: c.jwks.as_deref().map(|j| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, j.as_bytes())
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }),
        access_policy: c.access_policy.clone(),
        resources: c.resources.clone(),
        refresh_grace_secs: c.refresh_grace_secs,
        profile: c.profile.map(|p| p.as_str().to_owned()),
        dpop: c.dpop_bound,
        require_par: c.require_par,
        registered_ms: c.registered_ms,
        created_at: c.created_at,
        updated_at: c.updated_at,
        managed_by: c.managed_by.clone(),
    }
}

/// One client (needs `clients:read`).
pub async fn show(state: &AppState, actor: &Actor, client_id: &str) -> Result<ClientView, AdminError> {
    actor.require(Permission::ClientsRead)?;
    Ok(view(&find(&state.db, client_id).await?))
}

/// One client and its registered JWK Set (JSON text: public keys), for the
/// edit form — one read (needs `clients:read`).
pub async fn show_for_edit(
    state: &AppState,
    actor: &Actor,
    client_id: &str,
) -> Result<(ClientView, Option<String>), AdminError> {
    actor.require(Permission::ClientsRead)?;
    let c = find(&state.db, client_id).await?;
    Ok((view(&c), c.jwks))
}

/// Every client (needs `clients:read`); a damaged registration is an error
/// naming the client and the field, for the operator to repair.
pub async fn list(state: &AppState, actor: &Actor) -> Result<Vec<ClientView>, AdminError> {
    actor.require(Permission::ClientsRead)?;
    let ids = client::Entity::find().order_by_asc(client::Column::ClientId).all(&state.db).await?;
    let mut out = Vec::with_capacity(ids.len());
    for c in ids {
        out.push(view(&find(&state.db, &c.client_id).await?));
    }
    Ok(out)
}

pub async fn remove(state: &AppState, actor: &Actor, client_id: &str) -> Result<(), AdminError> {
    actor.require(Permission::ClientsWrite)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let c = target(state, &txn, actor, client_id).await?;
    let revoked = delete_in(&txn, &c.client_id, now).await?;
    let audit_record = AuditEvent::new("client.removed", "success")
        .actor(&actor.name)
        .client(&c.client_id)
        .source(actor.ip.clone(), actor.user_agent.clone())
        .detail(json!({ "refresh_families_revoked": revoked }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    // After the commit: a read between an earlier invalidation and the
    // commit would cache the old row again.
    state.clients.invalidate(&c.client_id);
    Ok(())
}

/// Deletes a client in the caller's transaction — the one way a client goes
/// (`client remove`, `apply --prune`): its role rows, the row, and its
/// refresh tokens end with it (its access tokens are refused by
/// `check_access_token` once the client is gone). Returns the refresh
/// families revoked.
async fn delete_in(
    txn: &sea_orm::DatabaseTransaction,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    clients::delete(txn, client_id, now.timestamp_millis()).await
}

/// Replaces a confidential client's secret; the old one stops working at once.
pub async fn rotate_secret(state: &AppState, actor: &Actor, client_id: &str) -> Result<Created, AdminError> {
    actor.require(Permission::ClientsWrite)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let c = target(state, &txn, actor, client_id).await?;
    if c.public {
        return Err(AdminError::Refused(format!("client {client_id:?} is public and has no secret")));
    }
    let secret = SecretString::from(random_token(SECRET_BYTES)?);
    client::Entity::update_many()
        .col_expr(client::Column::SecretHash, Expr::val(state.master_key.hasher().hash(secret.expose_secret())))
        .col_expr(client::Column::UpdatedAt, Expr::val(now))
        .filter(client::Column::ClientId.eq(c.client_id.as_str()))
        .exec(&txn)
        .await?;
    let audit_record = AuditEvent::new("client.secret_rotated", "success")
        .actor(&actor.name)
        .client(&c.client_id)
        .source(actor.ip.clone(), actor.user_agent.clone());
    let client = view(&find(&txn, client_id).await?);
    crate::storage::commit_audited(txn, audit_record, now).await?;
    state.clients.invalidate(client_id);
    Ok(Created { client, secret: Some(secret) })
}

pub use crate::domain::is_resource_indicator;
