//! The tokens a grant issues: RFC 9068 JWT access tokens (ES256, bound to a
//! DPoP key when the request proved one), OIDC ID tokens (RS256 unless the
//! client registered another algorithm), and the token response.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::OAuthError;
use crate::domain::SigningAlg;
use crate::state::AppState;
use crate::storage::clients::Client;
use crate::tokens::jwt;

/// OIDC Core §5.4: the claims each scope releases.
pub fn scoped_claims(u: &crate::storage::users::User, scope: &[String], out: &mut Map<String, Value>) {
    let names = scope.iter().filter(|s| *s != "roles").flat_map(|s| super::claims::claims_of(s).iter().copied());
    super::claims::release(u, None, names, out);
}

/// Everything a user token is made from.
#[derive(Clone)]
pub struct UserGrant {
    pub user: crate::storage::users::User,
    pub client: Arc<Client>,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: Option<String>,
    pub sid: Option<String>,
    pub resource: Option<String>,
    /// The `claims` request parameter of the grant.
    pub claims: Option<super::claims::ClaimsRequest>,
    /// The DPoP key the access token is bound to (`cnf.jkt`, RFC 9449 §6).
    pub dpop_jkt: Option<String>,
}

pub struct Issued {
    pub access_token: String,
    pub jti: String,
    pub id_token: Option<String>,
    /// The access token is DPoP-bound (`token_type: DPoP`).
    pub dpop: bool,
}

/// An RFC 9068 access token.
pub(super) fn access_token(state: &AppState, claims: Map<String, Value>) -> Result<String, OAuthError> {
    let ring = state.keyring();
    jwt::sign(&ring, &state.rng, SigningAlg::ES256, "at+jwt", &Value::Object(claims)).map_err(|e| {
        tracing::error!(error = %e, "signing an access token failed");
        OAuthError::ServerError
    })
}

pub(super) fn base_claims(
    state: &AppState,
    sub: &str,
    client_id: &str,
    aud: &str,
    scope: &[String],
    now: i64,
    dpop_jkt: Option<&str>,
) -> (Map<String, Value>, String) {
    let jti = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
    let mut m = Map::new();
    m.insert("iss".into(), state.settings.issuer().into());
    m.insert("sub".into(), sub.into());
    m.insert("aud".into(), aud.into());
    m.insert("client_id".into(), client_id.into());
    m.insert("iat".into(), now.into());
    m.insert("exp".into(), (now + state.settings.access_token_ttl_secs).into());
    m.insert("jti".into(), jti.clone().into());
    m.insert("scope".into(), scope.join(" ").into());
    if let Some(jkt) = dpop_jkt {
        m.insert("cnf".into(), json!({ "jkt": jkt }));
    }
    (m, jti)
}

/// Issues the access token (and the ID token when `openid` was granted).
/// `conn`: where the user's roles are read — the caller's write transaction
/// when it holds one (never a second pool connection while the write lock
/// is held).
pub async fn issue_for_user<C: sea_orm::ConnectionTrait>(
    state: &AppState,
    conn: &C,
    g: &UserGrant,
) -> Result<Issued, OAuthError> {
    let now = state.clock.now().timestamp();
    // A user's roles are personal data like any other claim: released only
    // with the `roles` scope, which the consent page names.
    let asked =
        |name: &str| g.claims.as_ref().is_some_and(|c| c.id_token.contains_key(name) || c.userinfo.contains_key(name));
    let roles_scope = g.scope.iter().any(|s| s == "roles");
    let roles =
        if roles_scope || asked("roles") { Some(crate::storage::users::roles(conn, &g.user.id).await?) } else { None };
    let aud = g.resource.clone().unwrap_or_else(|| g.client.client_id.clone());
    let (mut at, jti) = base_claims(state, &g.user.id, &g.client.client_id, &aud, &g.scope, now, g.dpop_jkt.as_deref());
    if let Some(r) = roles.as_ref().filter(|_| roles_scope) {
        at.insert("roles".into(), r.clone().into());
    }
    // Claims asked for by name in UserInfo: the token says which, UserInfo
    // releases them (the consent covered their scopes).
    if let Some(c) = g.claims.as_ref().filter(|c| !c.userinfo.is_empty()) {
        let names: Vec<&str> = c.userinfo.keys().map(String::as_str).collect();
        at.insert("userinfo_claims".into(), names.into());
    }
    at.insert("auth_time".into(), g.auth_time.into());
    at.insert("amr".into(), g.amr.clone().into());
    if let Some(acr) = &g.acr {
        at.insert("acr".into(), acr.clone().into());
    }
    let access = access_token(state, at)?;

    let id_token = if g.scope.iter().any(|s| s == "openid") {
        let alg = g.client.id_token_alg;
        let mut c = Map::new();
        c.insert("iss".into(), state.settings.issuer().into());
        c.insert("sub".into(), g.user.id.clone().into());
        c.insert("aud".into(), g.client.client_id.clone().into());
        c.insert("azp".into(), g.client.client_id.clone().into());
        c.insert("iat".into(), now.into());
        c.insert("exp".into(), (now + state.settings.id_token_ttl_secs).into());
        c.insert("auth_time".into(), g.auth_time.into());
        if let Some(n) = &g.nonce {
            c.insert("nonce".into(), n.clone().into());
        }
        c.insert("at_hash".into(), jwt::half_hash(alg, &access).into());
        c.insert("amr".into(), g.amr.clone().into());
        if let Some(acr) = &g.acr {
            c.insert("acr".into(), acr.clone().into());
        }
        if let Some(sid) = &g.sid {
            c.insert("sid".into(), sid.clone().into());
        }
        if let Some(r) = roles.as_ref().filter(|_| roles_scope) {
            c.insert("roles".into(), r.clone().into());
        }
        scoped_claims(&g.user, &g.scope, &mut c);
        if let Some(asked) = &g.claims {
            super::claims::release(&g.user, roles.as_deref(), asked.id_token.keys().map(String::as_str), &mut c);
        }
        let ring = state.keyring();
        Some(jwt::sign(&ring, &state.rng, alg, "JWT", &Value::Object(c)).map_err(|e| {
            tracing::error!(error = %e, "signing an ID token failed");
            OAuthError::ServerError
        })?)
    } else {
        None
    };
    Ok(Issued { access_token: access, jti, id_token, dpop: g.dpop_jkt.is_some() })
}

pub(super) fn response(state: &AppState, issued: Issued, refresh: Option<String>, scope: &[String]) -> Value {
    let mut r = json!({
        "access_token": issued.access_token,
        "token_type": if issued.dpop { "DPoP" } else { "Bearer" },
        "expires_in": state.settings.access_token_ttl_secs,
        "scope": scope.join(" "),
    });
    if let Some(id) = issued.id_token {
        r["id_token"] = id.into();
    }
    if let Some(rt) = refresh {
        r["refresh_token"] = rt.into();
    }
    r
}
