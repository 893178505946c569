//! Dynamic client registration (RFC 7591) and its management protocol (RFC
//! 7592), and the initial access tokens operators hand out for it. A client
//! that registers itself gets what a careful operator would give a stranger:
//! no roles, no resources (so never the admin API's audience), no
//! first-party status (every user is asked to consent), only the grants
//! `authorization_code`, `refresh_token` and the device grant, only the
//! scopes `registration_scopes` allows, PKCE, and redirect URIs by the rules
//! of `client add` (https; loopback http and private-use schemes for native
//! apps, RFC 8252). Everything else goes through the same `clients::add`,
//! `update` and `remove` as an operator's change — with an actor that holds
//! `clients:write` and nothing more — and is audited the same way.

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{AdminError, ClientPatch, ClientSpec, ClientView};
use crate::admin::Actor;
use crate::config::ClientRegistration;
use crate::crypto::random_token;
use crate::policy::Permission;
use crate::state::AppState;
use crate::storage::AuditEvent;
use crate::storage::entities::registration_token;

/// How long an initial access token may wait to be used.
pub const INITIAL_TOKEN_TTL_SECS: i64 = 7 * 86_400;
/// Grants a registered client may have.
const GRANTS: [&str; 3] = ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"];

/// RFC 7591 §3.2.2 errors, and the refusals of the management protocol.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{0}")]
    InvalidRedirectUri(String),
    #[error("{0}")]
    InvalidClientMetadata(String),
    /// Registration is off, or the initial access token is missing or spent.
    #[error("{0}")]
    NotAllowed(&'static str),
    /// The registration access token does not open this client (RFC 7592 §2).
    #[error("invalid registration access token")]
    InvalidToken,
    #[error("too many registrations from this address")]
    TooMany,
    #[error(transparent)]
    Admin(#[from] AdminError),
}

impl From<sea_orm::DbErr> for RegistrationError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Admin(e.into())
    }
}

impl RegistrationError {
    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRedirectUri(_) => "invalid_redirect_uri",
            Self::InvalidClientMetadata(_) => "invalid_client_metadata",
            Self::NotAllowed(_) | Self::InvalidToken => "invalid_token",
            Self::TooMany => "temporarily_unavailable",
            Self::Admin(AdminError::Invalid(e)) if e.field == "redirect_uri" => "invalid_redirect_uri",
            Self::Admin(AdminError::Invalid(_) | AdminError::Refused(_)) => "invalid_client_metadata",
            Self::Admin(_) => "server_error",
        }
    }

    /// A description fit for the client (the admin services' refusals are
    /// written for people; internals never leave).
    pub fn description(&self) -> String {
        match self {
            Self::Admin(AdminError::Invalid(e)) => format!("{}: {}", e.field, e.reason),
            Self::Admin(AdminError::Refused(why)) => why.clone(),
            Self::Admin(_) => "internal error".into(),
            other => other.to_string(),
        }
    }
}

/// The client metadata a registration sends (RFC 7591 §2); fields we do
/// not know are ignored, as §2 requires.
#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub client_name: Option<String>,
    pub scope: Option<String>,
    pub jwks: Option<Value>,
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// RFC 7592 §2.2: an update names the client it is for.
    pub client_id: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

fn bad(why: impl Into<String>) -> RegistrationError {
    RegistrationError::InvalidClientMetadata(why.into())
}

/// The registration `m` asks for, held to the registration policy.
fn spec_of(state: &AppState, client_id: &str, m: &Metadata) -> Result<ClientSpec, RegistrationError> {
    let method = m.token_endpoint_auth_method.as_deref().unwrap_or("client_secret_basic");
    let public = match method {
        "none" => true,
        "client_secret_basic" | "client_secret_post" => false,
        "private_key_jwt" if m.jwks.is_some() => false,
        "private_key_jwt" => return Err(bad("private_key_jwt needs the client's public keys in jwks")),
        other => return Err(bad(format!("token_endpoint_auth_method {other:?} is not supported"))),
    };
    if m.jwks_uri.is_some() {
        return Err(bad("jwks_uri is not supported: send the public keys in jwks"));
    }
    let grants: Vec<String> = m.grant_types.clone().unwrap_or_else(|| vec!["authorization_code".into()]);
    if let Some(g) = grants.iter().find(|g| !GRANTS.contains(&g.as_str()) && g.as_str() != "device_code") {
        return Err(bad(format!("grant type {g:?} is not open to registered clients")));
    }
    match m.response_types.as_deref() {
        None => {}
        Some(r) if r.iter().all(|t| t == "code") => {}
        Some(_) => return Err(bad("response_types: only \"code\"")),
    }
    if grants.iter().any(|g| g == "authorization_code") && m.redirect_uris.is_empty() {
        return Err(RegistrationError::InvalidRedirectUri("redirect_uris are required for authorization_code".into()));
    }
    if m.redirect_uris.len() > 10 {
        return Err(RegistrationError::InvalidRedirectUri("at most 10 redirect_uris".into()));
    }
    let mut scopes = Vec::new();
    for s in m.scope.as_deref().unwrap_or("openid").split(' ').filter(|s| !s.is_empty()) {
        if !state.settings.registration_scopes.iter().any(|a| a == s) {
            return Err(bad(format!("scope {s:?} is not open to registered clients")));
        }
        if s != "openid" && s != "offline_access" {
            scopes.push(s.to_owned());
        }
    }
    Ok(ClientSpec {
        client_id: client_id.to_owned(),
        name: m.client_name.clone(),
        redirect_uris: m.redirect_uris.clone(),
        public,
        grants,
        scopes,
        jwks: m.jwks.as_ref().map(Value::to_string),
        dpop: m.dpop_bound_access_tokens,
        resources: state.stranger_resources(),
        ..Default::default()
    })
}

fn token_hash(state: &AppState, kind: &str, token: &str) -> String {
    state.master_key.hasher().hash(&format!("{kind}:{token}"))
}

/// The actor of a client's own registration: `clients:write`, no roles.
fn actor(ip: Option<String>, user_agent: Option<String>) -> Actor {
    let mut a = Actor::system("registration", Permission::ClientsWrite);
    a.ip = ip;
    a.user_agent = user_agent;
    a
}

/// Creates a single-use initial access token (needs `clients:write`).
pub async fn create_initial_token(state: &AppState, actor: &Actor) -> Result<String, AdminError> {
    actor.require(Permission::ClientsWrite)?;
    let token = random_token(32)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    registration_token::ActiveModel {
        token_hash: Set(token_hash(state, "iat", &token)),
        created_by: Set(actor.name.clone()),
        created_ms: Set(now.timestamp_millis()),
        expires_ms: Set(now.timestamp_millis() + INITIAL_TOKEN_TTL_SECS * 1000),
        used_ms: Set(None),
    }
    .insert(&txn)
    .await?;
    let audit_record = AuditEvent::new("client.registration_token_created", "success")
        .actor(&actor.name)
        .source(actor.ip.clone(), actor.user_agent.clone())
        .detail(json!({ "expires_in": INITIAL_TOKEN_TTL_SECS }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(token)
}

/// What a registration returns (RFC 7591 §3.2.1).
pub struct Registered {
    pub client: ClientView,
    pub secret: Option<String>,
    pub registration_access_token: String,
}

/// RFC 7591 §3: registers a client, as the policy allows. `initial` is the
/// bearer token of the request, if any; `ip` the caller's address.
pub async fn register(
    state: &AppState,
    initial: Option<&str>,
    ip: Option<String>,
    user_agent: Option<String>,
    m: &Metadata,
) -> Result<Registered, RegistrationError> {
    let now_ms = state.clock.now().timestamp_millis();
    match state.settings.client_registration {
        ClientRegistration::Off => return Err(RegistrationError::NotAllowed("client registration is off")),
        ClientRegistration::Token if initial.is_none() => {
            return Err(RegistrationError::NotAllowed("an initial access token is required"));
        }
        _ => {}
    }
    let client_id = format!("dyn-{}", random_token(12).map_err(AdminError::from)?);
    let spec = spec_of(state, &client_id, m)?;
    // Checked as `client add` checks it before anything is spent or counted.
    super::parse(&spec)?;
    // What an anonymous caller makes us store is bounded per address.
    if let Some(ip) = &ip {
        let n = crate::authn::throttle::admit_ip_for(&state.db, &state.settings, "register", ip, now_ms).await?;
        if n > state.settings.registration_ip_max {
            return Err(RegistrationError::TooMany);
        }
    }
    // The initial access token is spent only by a registration that is
    // otherwise good (one conditional update: used once, by one instance).
    if let Some(t) = initial {
        let spent = registration_token::Entity::update_many()
            .col_expr(registration_token::Column::UsedMs, Expr::val(now_ms))
            .filter(registration_token::Column::TokenHash.eq(token_hash(state, "iat", t)))
            .filter(registration_token::Column::UsedMs.is_null())
            .filter(registration_token::Column::ExpiresMs.gt(now_ms))
            .exec(&state.db)
            .await?;
        if spent.rows_affected != 1 {
            return Err(RegistrationError::NotAllowed("the initial access token is unknown, expired or used"));
        }
    }
    let rat = random_token(32).map_err(AdminError::from)?;
    let created = super::add_as(state, &actor(ip, user_agent), &spec, Some(token_hash(state, "rat", &rat))).await?;
    Ok(Registered {
        client: created.client,
        secret: created.secret.map(|s| s.expose_secret().to_owned()),
        registration_access_token: rat,
    })
}

/// The self-registered client `client_id`, when `rat` is its registration
/// access token (checked in constant time); anything else is the same refusal.
async fn opened(state: &AppState, client_id: &str, rat: &str) -> Result<ClientView, RegistrationError> {
    let c = match crate::storage::clients::find(&state.db, client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(RegistrationError::InvalidToken),
        Err(e) => return Err(AdminError::from(e).into()),
    };
    match &c.registration_token_hash {
        Some(h) if state.master_key.hasher().verify(&format!("rat:{rat}"), h) => Ok(super::view(&c)),
        _ => Err(RegistrationError::InvalidToken),
    }
}

/// RFC 7592 §2.1: the client's current registration.
pub async fn read(state: &AppState, client_id: &str, rat: &str) -> Result<ClientView, RegistrationError> {
    opened(state, client_id, rat).await
}

/// RFC 7592 §2.2: replaces the registration with `m` (same rules as a new
/// one; the kind — public or confidential — cannot change).
pub async fn replace(
    state: &AppState,
    client_id: &str,
    rat: &str,
    ip: Option<String>,
    user_agent: Option<String>,
    m: &Metadata,
) -> Result<ClientView, RegistrationError> {
    let current = opened(state, client_id, rat).await?;
    if m.client_id.as_deref() != Some(client_id) {
        return Err(bad("client_id must name this client"));
    }
    let spec = spec_of(state, client_id, m)?;
    if spec.public != current.public {
        return Err(bad("token_endpoint_auth_method cannot change between none and a secret or key"));
    }
    let patch = ClientPatch {
        name: Some(spec.name.clone()),
        redirect_uris: Some(spec.redirect_uris.clone()),
        grant_types: Some(spec.grants.clone()),
        scopes: Some(spec.scopes.clone()),
        jwks: Some(spec.jwks.as_deref().map(serde_json::from_str).transpose().map_err(|e| bad(e.to_string()))?),
        dpop: Some(spec.dpop),
        resources: Some(spec.resources.clone()),
        ..Default::default()
    };
    Ok(super::update(state, &actor(ip, user_agent), client_id, patch).await?)
}

/// RFC 7592 §2.3: the client deletes itself.
pub async fn delete(
    state: &AppState,
    client_id: &str,
    rat: &str,
    ip: Option<String>,
    user_agent: Option<String>,
) -> Result<(), RegistrationError> {
    opened(state, client_id, rat).await?;
    Ok(super::remove(state, &actor(ip, user_agent), client_id).await?)
}

/// The client's metadata as RFC 7591 §3.2.1 returns it.
pub fn metadata(state: &AppState, c: &ClientView) -> Value {
    let method = if c.public {
        "none"
    } else if c.has_jwks {
        "private_key_jwt"
    } else {
        "client_secret_basic"
    };
    let mut scope = vec!["openid".to_owned()];
    scope.extend(c.scopes.iter().cloned());
    json!({
        "client_id": c.client_id,
        "client_id_issued_at": c.created_at.timestamp(),
        "client_name": c.name,
        "redirect_uris": c.redirect_uris,
        "grant_types": c.grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": method,
        "scope": scope.join(" "),
        "dpop_bound_access_tokens": c.dpop,
        "registration_client_uri": format!("{}/register/{}", state.settings.issuer(), c.client_id),
    })
}
