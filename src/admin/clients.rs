//! OAuth clients (relying parties and service clients).
//!
//! A confidential client's secret is generated here (256 bits from the OS RNG),
//! returned once, and stored only as a keyed hash (see `crypto::SecretHasher`).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Actor, AdminError, changes, roles};
use crate::crypto::random_token;
use crate::domain::ParseError;
use crate::domain::{ClientId, ClientKind, GrantType, RedirectUri, RoleName, Scope, SigningAlg};
use crate::policy::Permission;
use crate::policy::access::AccessPolicy;
use crate::state::AppState;
use crate::storage::entities::{client, client_role, refresh_family};
use crate::storage::{AuditEvent, is_unique_violation, record_audit};
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
    pub access_policy: Option<AccessPolicy>,
    /// Resource indicators (RFC 8707) the client may ask tokens for.
    pub resources: Vec<String>,
    /// Refresh-token grace in seconds; none: strict rotation.
    pub refresh_grace_secs: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The registration a `client add` asks for, in raw form.
#[derive(Debug, Default, Clone)]
pub struct ClientSpec {
    pub client_id: String,
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub public: bool,
    pub grants: Vec<String>,
    pub scopes: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub roles: Vec<String>,
    pub first_party: bool,
    /// `required` (default) or `optional`.
    pub pkce: Option<String>,
    pub id_token_alg: Option<String>,
    pub require_mfa: bool,
    pub backchannel_logout_uri: Option<String>,
    /// A JWK Set document (JSON text) for `private_key_jwt`.
    pub jwks: Option<String>,
    /// Who may use the client (ABAC); `None` or an empty policy admits everyone.
    pub access_policy: Option<AccessPolicy>,
    /// Resource indicators (RFC 8707, absolute URIs) the client may ask tokens for.
    pub resources: Vec<String>,
    /// Opt-in refresh-token grace in seconds (0–60); none = strict rotation.
    pub refresh_grace_secs: Option<i32>,
}

/// A created client and its secret (shown once; `None` for public clients).
#[derive(Debug)]
pub struct Created {
    pub client: ClientView,
    pub secret: Option<SecretString>,
}

fn dedup<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

/// The parsed, checked registration.
struct Parsed {
    client_id: ClientId,
    name: Option<String>,
    kind: ClientKind,
    redirect_uris: Vec<RedirectUri>,
    post_logout: Vec<RedirectUri>,
    grants: Vec<GrantType>,
    scopes: Vec<Scope>,
    roles: Vec<RoleName>,
    pkce_required: bool,
    id_token_alg: SigningAlg,
    backchannel: Option<RedirectUri>,
    jwks: Option<String>,
    access_policy: Option<String>,
    resources: Vec<String>,
    refresh_grace_secs: Option<i32>,
}

fn parse(spec: &ClientSpec) -> Result<Parsed, AdminError> {
    let client_id = ClientId::parse(&spec.client_id)?;
    let kind = if spec.public { ClientKind::Public } else { ClientKind::Confidential };
    let name = match spec.name.as_deref().map(str::trim) {
        Some(n) if n.chars().count() > 128 || n.chars().any(char::is_control) => {
            return Err(AdminError::Refused("name: must be at most 128 characters without control characters".into()));
        }
        Some("") | None => None,
        Some(n) => Some(n.to_owned()),
    };
    let mut grants: Vec<GrantType> = spec.grants.iter().map(|g| GrantType::parse(g)).collect::<Result<_, _>>()?;
    if grants.is_empty() {
        grants = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    }
    grants.sort_by_key(|g| g.as_str());
    grants.dedup();
    let redirect_uris: Vec<RedirectUri> =
        spec.redirect_uris.iter().map(|u| RedirectUri::parse(u, kind)).collect::<Result<_, _>>()?;
    let post_logout: Vec<RedirectUri> =
        spec.post_logout_redirect_uris.iter().map(|u| RedirectUri::parse(u, kind)).collect::<Result<_, _>>()?;
    let scopes = dedup(spec.scopes.iter().map(|s| Scope::parse(s)).collect::<Result<Vec<_>, _>>()?);
    let roles = dedup(spec.roles.iter().map(|r| RoleName::parse(r)).collect::<Result<Vec<_>, _>>()?);
    if grants.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(AdminError::Refused(
            "redirect_uri: at least one --redirect-uri is required for the authorization_code grant".into(),
        ));
    }
    if kind == ClientKind::Public && grants.contains(&GrantType::ClientCredentials) {
        return Err(AdminError::Refused(
            "grant: a public client cannot use client_credentials (it has no secret to authenticate with)".into(),
        ));
    }
    let pkce_required = match spec.pkce.as_deref() {
        None | Some("required") => true,
        Some("optional") if kind == ClientKind::Confidential => false,
        Some("optional") => {
            return Err(AdminError::Refused("pkce: a public client must use PKCE (RFC 9700 §2.1.1)".into()));
        }
        Some(other) => {
            return Err(AdminError::Refused(format!("pkce: {other:?} is not one of required, optional")));
        }
    };
    let id_token_alg = spec.id_token_alg.as_deref().map(SigningAlg::parse).transpose()?.unwrap_or(SigningAlg::RS256);
    let backchannel = spec
        .backchannel_logout_uri
        .as_deref()
        .map(|u| RedirectUri::parse(u, ClientKind::Confidential))
        .transpose()
        .map_err(|e| AdminError::Refused(format!("backchannel_logout_uri: {}", e.reason)))?;
    let jwks = match &spec.jwks {
        None => None,
        Some(text) => {
            let doc: serde_json::Value =
                serde_json::from_str(text).map_err(|e| AdminError::Refused(format!("jwks: not valid JSON ({e})")))?;
            let keys = doc.get("keys").and_then(|k| k.as_array()).ok_or_else(|| {
                AdminError::Refused("jwks: must be a JWK Set, an object with a \"keys\" array".into())
            })?;
            if keys.is_empty() {
                return Err(AdminError::Refused("jwks: the \"keys\" array is empty".into()));
            }
            if keys.iter().any(|k| k.get("d").is_some() || k.get("k").is_some()) {
                return Err(AdminError::Refused(
                    "jwks: contains private or symmetric key material; register public keys only".into(),
                ));
            }
            Some(doc.to_string())
        }
    };
    let access_policy = match spec.access_policy.clone().map(AccessPolicy::checked).transpose()? {
        Some(p) if !p.is_empty() => Some(serde_json::to_string(&p).map_err(|e| AdminError::Refused(e.to_string()))?),
        _ => None,
    };
    if spec.resources.len() > 32 {
        return Err(AdminError::Invalid(ParseError { field: "resource", reason: "at most 32 resources".into() }));
    }
    let resources = dedup(
        spec.resources
            .iter()
            .map(|r| {
                let r = r.trim();
                if is_resource_indicator(r) {
                    Ok(r.to_owned())
                } else {
                    Err(AdminError::Invalid(ParseError {
                        field: "resource",
                        reason: "must be an absolute URI without a fragment, at most 512 characters (RFC 8707)".into(),
                    }))
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
    );
    let max = crate::oauth::grants::MAX_REFRESH_GRACE_SECS;
    let refresh_grace_secs = match spec.refresh_grace_secs {
        Some(g) if !(0..=max).contains(&g) => {
            return Err(AdminError::Invalid(ParseError {
                field: "refresh_grace_secs",
                reason: format!("must be between 0 and {max} seconds"),
            }));
        }
        Some(0) | None => None,
        g => g,
    };
    Ok(Parsed {
        refresh_grace_secs,
        resources,
        access_policy,
        client_id,
        name,
        kind,
        redirect_uris,
        post_logout,
        grants,
        scopes,
        roles,
        pkce_required,
        id_token_alg,
        backchannel,
        jwks,
    })
}

fn json_list<T: AsRef<str>>(items: &[T]) -> String {
    serde_json::Value::from(items.iter().map(|s| s.as_ref().to_owned()).collect::<Vec<_>>()).to_string()
}

fn read_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub async fn add(state: &AppState, actor: &Actor, spec: &ClientSpec) -> Result<Created, AdminError> {
    actor.require(Permission::ClientsWrite)?;
    if !spec.roles.is_empty() {
        // A client's roles are permissions it acts with: granting them needs roles:write.
        actor.require(Permission::RolesWrite)?;
    }
    let p = parse(spec)?;
    let admin_audience = p.resources.iter().any(|r| r.as_str() == crate::admin::api::audience(state));
    actor.may_hand_out(&p.roles)?;
    actor.may_control_client(&p.roles, admin_audience)?;
    let secret = match p.kind {
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
    client::ActiveModel {
        client_id: Set(p.client_id.to_string()),
        name: Set(p.name.clone()),
        public: Set(p.kind == ClientKind::Public),
        secret_hash: Set(secret_hash),
        redirect_uris: Set(json_list(&p.redirect_uris)),
        post_logout_redirect_uris: Set(json_list(&p.post_logout)),
        grant_types: Set(json_list(&grants)),
        scopes: Set(json_list(&p.scopes)),
        first_party: Set(spec.first_party),
        pkce_required: Set(p.pkce_required),
        id_token_alg: Set(p.id_token_alg.as_str().to_owned()),
        require_mfa: Set(spec.require_mfa),
        backchannel_logout_uri: Set(p.backchannel.map(String::from)),
        jwks: Set(p.jwks),
        access_policy: Set(p.access_policy),
        resources: Set(Some(json_list(&p.resources))),
        refresh_grace_secs: Set(p.refresh_grace_secs),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| if is_unique_violation(&e) { AdminError::exists("client", p.client_id.as_str()) } else { e.into() })?;
    for r in &p.roles {
        client_role::ActiveModel { client_id: Set(p.client_id.to_string()), role_name: Set(r.to_string()) }
            .insert(&txn)
            .await?;
    }
    record_audit(
        &txn,
        AuditEvent::new("client.created", "success")
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
            })),
        now,
    )
    .await?;
    let client = load_view(&txn, find(&txn, p.client_id.as_str()).await?).await?;
    txn.commit().await?;
    Ok(Created { client, secret })
}

pub(crate) async fn find<C: ConnectionTrait>(conn: &C, client_id: &str) -> Result<client::Model, AdminError> {
    client::Entity::find_by_id(client_id).one(conn).await?.ok_or_else(|| AdminError::not_found("client", client_id))
}

async fn roles_of_client<C: ConnectionTrait>(conn: &C, client_id: &str) -> Result<Vec<String>, AdminError> {
    Ok(client_role::Entity::find()
        .filter(client_role::Column::ClientId.eq(client_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|r| r.role_name)
        .collect())
}

/// Whether a client may ask for admin-API tokens.
fn has_admin_audience(state: &AppState, c: &client::Model) -> bool {
    may_request(c, &crate::admin::api::audience(state))
}

/// The client `client_id`, once the actor is known to be allowed to control
/// it (it holds every role the client acts with): every client-changing
/// operation finds its target through here.
async fn target<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    actor: &Actor,
    client_id: &str,
) -> Result<client::Model, AdminError> {
    let c = find(conn, client_id).await?;
    actor.may_control_client(&roles_of_client(conn, client_id).await?, has_admin_audience(state, &c))?;
    Ok(c)
}

async fn load_view<C: ConnectionTrait>(conn: &C, c: client::Model) -> Result<ClientView, AdminError> {
    let roles = client_role::Entity::find()
        .filter(client_role::Column::ClientId.eq(&c.client_id))
        .order_by_asc(client_role::Column::RoleName)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| r.role_name)
        .collect();
    Ok(ClientView {
        redirect_uris: read_list(&c.redirect_uris),
        post_logout_redirect_uris: read_list(&c.post_logout_redirect_uris),
        grant_types: read_list(&c.grant_types),
        scopes: read_list(&c.scopes),
        roles,
        pkce: if c.pkce_required { "required" } else { "optional" },
        has_jwks: c.jwks.is_some(),
        access_policy: c.access_policy.as_deref().and_then(|t| serde_json::from_str(t).ok()),
        resources: c.resources.as_deref().map(read_list).unwrap_or_default(),
        refresh_grace_secs: c.refresh_grace_secs,
        client_id: c.client_id,
        name: c.name,
        public: c.public,
        first_party: c.first_party,
        id_token_alg: c.id_token_alg,
        require_mfa: c.require_mfa,
        backchannel_logout_uri: c.backchannel_logout_uri,
        created_at: c.created_at,
        updated_at: c.updated_at,
    })
}

pub async fn show(state: &AppState, client_id: &str) -> Result<ClientView, AdminError> {
    let c = find(&state.db, client_id).await?;
    load_view(&state.db, c).await
}

pub async fn list(state: &AppState) -> Result<Vec<ClientView>, AdminError> {
    let clients = client::Entity::find().order_by_asc(client::Column::ClientId).all(&state.db).await?;
    let mut out = Vec::with_capacity(clients.len());
    for c in clients {
        out.push(load_view(&state.db, c).await?);
    }
    Ok(out)
}

pub async fn remove(state: &AppState, actor: &Actor, client_id: &str) -> Result<(), AdminError> {
    actor.require(Permission::ClientsWrite)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let c = target(state, &txn, actor, client_id).await?;
    client_role::Entity::delete_many().filter(client_role::Column::ClientId.eq(&c.client_id)).exec(&txn).await?;
    client::Entity::delete_by_id(c.client_id.as_str()).exec(&txn).await?;
    // Its refresh tokens end with it; its access tokens are refused by
    // `check_access_token` once the client is gone.
    let revoked = refresh_family::Entity::update_many()
        .col_expr(refresh_family::Column::RevokedMs, Expr::val(now.timestamp_millis()))
        .filter(refresh_family::Column::ClientId.eq(c.client_id.as_str()))
        .filter(refresh_family::Column::RevokedMs.is_null())
        .exec(&txn)
        .await?;
    state.clients.invalidate(&c.client_id);
    record_audit(
        &txn,
        AuditEvent::new("client.removed", "success")
            .actor(&actor.name)
            .client(&c.client_id)
            .source(actor.ip.clone(), actor.user_agent.clone())
            .detail(json!({ "refresh_families_revoked": revoked.rows_affected })),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(())
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
    let mut am = c.into_active_model();
    am.secret_hash = Set(Some(state.master_key.hasher().hash(secret.expose_secret())));
    am.updated_at = Set(now);
    let c = am.update(&txn).await?;
    state.clients.invalidate(&c.client_id);
    record_audit(
        &txn,
        AuditEvent::new("client.secret_rotated", "success")
            .actor(&actor.name)
            .client(&c.client_id)
            .source(actor.ip.clone(), actor.user_agent.clone()),
        now,
    )
    .await?;
    let client = load_view(&txn, c).await?;
    txn.commit().await?;
    Ok(Created { client, secret: Some(secret) })
}

/// Reads a JSON field that may be absent (leave unchanged), `null` (clear) or
/// a value (set).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A change to a client: absent fields stay as they are; `null` clears an
/// optional one. The client id and kind (public/confidential) cannot change.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    pub first_party: Option<bool>,
    /// `required` or `optional`.
    pub pkce: Option<String>,
    pub id_token_alg: Option<String>,
    pub require_mfa: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub backchannel_logout_uri: Option<Option<String>>,
    /// A JWK Set (object) for `private_key_jwt`; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AccessPolicy>)]
    pub access_policy: Option<Option<AccessPolicy>>,
    /// Resource indicators (RFC 8707) the client may ask tokens for.
    pub resources: Option<Vec<String>>,
    /// Refresh-token grace in seconds (0–60); `null` or 0: strict rotation.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub refresh_grace_secs: Option<Option<i32>>,
}

/// The spec a stored client was registered with (for applying a patch).
fn spec_of(c: &client::Model, roles: Vec<String>) -> ClientSpec {
    ClientSpec {
        client_id: c.client_id.clone(),
        name: c.name.clone(),
        redirect_uris: read_list(&c.redirect_uris),
        public: c.public,
        grants: read_list(&c.grant_types),
        scopes: read_list(&c.scopes),
        post_logout_redirect_uris: read_list(&c.post_logout_redirect_uris),
        roles,
        first_party: c.first_party,
        pkce: Some(if c.pkce_required { "required" } else { "optional" }.to_owned()),
        id_token_alg: Some(c.id_token_alg.clone()),
        require_mfa: c.require_mfa,
        backchannel_logout_uri: c.backchannel_logout_uri.clone(),
        jwks: c.jwks.clone(),
        access_policy: c.access_policy.as_deref().and_then(|t| serde_json::from_str(t).ok()),
        resources: c.resources.as_deref().map(read_list).unwrap_or_default(),
        refresh_grace_secs: c.refresh_grace_secs,
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
    let current = target(state, &txn, actor, client_id).await?;
    if patch.access_policy.is_none()
        && current.access_policy.as_deref().is_some_and(|t| serde_json::from_str::<AccessPolicy>(t).is_err())
    {
        // Never turn a policy we cannot read into "no policy" (fail-open):
        // the change must set a new one.
        return Err(AdminError::Invalid(ParseError {
            field: "access_policy",
            reason: "the stored access policy does not parse; set a new one with this change".into(),
        }));
    }
    let before = load_view(&txn, current.clone()).await?;
    let mut spec = spec_of(&current, before.roles.clone());
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
    let p = parse(&spec)?;
    // What the client becomes must stay within the actor's reach too.
    let admin_audience = p.resources.iter().any(|r| r.as_str() == crate::admin::api::audience(state));
    actor.may_hand_out(&p.roles)?;
    actor.may_control_client(&p.roles, admin_audience)?;
    roles::require_all(&txn, &p.roles).await?;
    let grants: Vec<&str> = p.grants.iter().map(|g| g.as_str()).collect();
    let mut am = current.into_active_model();
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
    am.updated_at = Set(now);
    let updated = am.update(&txn).await?;
    client_role::Entity::delete_many().filter(client_role::Column::ClientId.eq(client_id)).exec(&txn).await?;
    for r in &p.roles {
        client_role::ActiveModel { client_id: Set(client_id.to_owned()), role_name: Set(r.to_string()) }
            .insert(&txn)
            .await?;
    }
    let after = load_view(&txn, updated).await?;
    record_audit(
        &txn,
        AuditEvent::new("client.updated", "success")
            .actor(&actor.name)
            .client(client_id)
            .source(actor.ip.clone(), actor.user_agent.clone())
            .detail(json!({ "changes": changes(&before, &after) })),
        now,
    )
    .await?;
    txn.commit().await?;
    state.clients.invalidate(client_id);
    Ok(after)
}

/// RFC 8707 §2: an absolute URI without a fragment (bounded).
pub fn is_resource_indicator(r: &str) -> bool {
    r.len() <= 512 && url::Url::parse(r).is_ok_and(|u| u.fragment().is_none())
}

/// Whether the client registered `resource` (RFC 8707 `invalid_target` otherwise).
pub fn may_request(c: &client::Model, resource: &str) -> bool {
    c.resources.as_deref().map(read_list).unwrap_or_default().iter().any(|r| r == resource)
}
