//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3): `client_secret_basic`, `client_secret_post`,
//! `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9) and, for public clients,
//! `none`. Exactly one method per request (RFC 6749 §2.3).

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set};

use super::OAuthError;
use crate::state::AppState;
use std::sync::Arc;

use crate::storage::clients::Client;
use crate::storage::entities::revoked_token;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client: Arc<Client>,
    pub method: &'static str,
}

async fn load(state: &AppState, client_id: &str, basic: bool) -> Result<Arc<Client>, OAuthError> {
    if client_id.is_empty() || client_id.len() > 128 {
        return Err(OAuthError::InvalidClient { basic });
    }
    match state.clients.get(&state.db, client_id).await? {
        Some(c) => Ok(c),
        None if super::cimd::is_document_id(client_id) => {
            super::cimd::resolve(state, client_id).await.map_err(|_| OAuthError::InvalidClient { basic })
        }
        None => Err(OAuthError::InvalidClient { basic }),
    }
}

fn check_secret(state: &AppState, c: &Client, secret: &str, basic: bool) -> Result<(), OAuthError> {
    match &c.secret_hash {
        Some(h) if !c.public && state.master_key.hasher().verify(secret, h) => Ok(()),
        _ => Err(OAuthError::InvalidClient { basic }),
    }
}

/// Authenticates the client of a protocol request. `basic` is the HTTP Basic
/// credential (decoded by the edge), `params` the request's form parameters;
/// the credentials in them are consumed.
pub async fn authenticate(
    state: &AppState,
    basic: Option<(String, String)>,
    params: &mut HashMap<String, String>,
) -> Result<AuthenticatedClient, OAuthError> {
    let post_secret = params.remove("client_secret");
    let assertion_type = params.remove("client_assertion_type");
    let assertion = params.remove("client_assertion");
    let param_id = params.get("client_id").cloned();
    let methods = usize::from(basic.is_some()) + usize::from(post_secret.is_some()) + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(OAuthError::InvalidRequest("use exactly one client authentication method"));
    }
    if let Some((id, secret)) = basic {
        if param_id.as_deref().is_some_and(|p| p != id) {
            return Err(OAuthError::InvalidRequest("client_id does not match the authenticated client"));
        }
        let c = load(state, &id, true).await?;
        check_secret(state, &c, &secret, true)?;
        return Ok(AuthenticatedClient { client: c, method: "client_secret_basic" });
    }
    if let Some(secret) = post_secret {
        let id = param_id.ok_or(OAuthError::InvalidClient { basic: false })?;
        let c = load(state, &id, false).await?;
        check_secret(state, &c, &secret, false)?;
        return Ok(AuthenticatedClient { client: c, method: "client_secret_post" });
    }
    if let Some(jwt) = assertion {
        if assertion_type.as_deref() != Some(JWT_BEARER) {
            return Err(OAuthError::InvalidRequest("unsupported client_assertion_type"));
        }
        let c = private_key_jwt(state, &jwt, param_id.as_deref()).await?;
        return Ok(AuthenticatedClient { client: c, method: "private_key_jwt" });
    }
    // `none`: a public client identifies itself only.
    let id = param_id.ok_or(OAuthError::InvalidClient { basic: false })?;
    let c = load(state, &id, false).await?;
    if !c.public {
        return Err(OAuthError::InvalidClient { basic: false });
    }
    Ok(AuthenticatedClient { client: c, method: "none" })
}

/// The unverified parts of a client assertion that select the key to check it
/// with: its header (an asymmetric algorithm only) and `iss`. Nothing here is
/// trusted until the signature is verified.
pub fn parse_assertion(jwt: &str) -> Result<(jsonwebtoken::Header, String), OAuthError> {
    let bad = OAuthError::InvalidClient { basic: false };
    if jwt.len() > 8 * 1024 {
        return Err(bad);
    }
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| bad.clone())?;
    if !matches!(
        header.alg,
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA
    ) {
        return Err(bad);
    }
    let unverified =
        jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(jwt).map_err(|_| bad.clone())?.claims;
    let iss = unverified.get("iss").and_then(|v| v.as_str()).filter(|i| !i.is_empty()).ok_or(bad)?.to_owned();
    Ok((header, iss))
}

/// RFC 7523 §3: `iss` = `sub` = client_id, `aud` = our token endpoint (or the
/// issuer), `exp` required and near, `jti` used once; signed by a key of the
/// client's registered JWK Set with an asymmetric algorithm.
async fn private_key_jwt(state: &AppState, jwt: &str, param_id: Option<&str>) -> Result<Arc<Client>, OAuthError> {
    let bad = OAuthError::InvalidClient { basic: false };
    let (header, iss) = parse_assertion(jwt)?;
    let alg = header.alg;
    if param_id.is_some_and(|p| p != iss) {
        return Err(bad);
    }
    let c = load(state, &iss, false).await?;
    if !c.may_sign_with(&format!("{alg:?}")) {
        return Err(bad);
    }
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(c.jwks.as_deref().ok_or_else(|| bad.clone())?).map_err(|_| bad.clone())?;
    let candidates: Vec<&jsonwebtoken::jwk::Jwk> = match &header.kid {
        Some(kid) => jwks.keys.iter().filter(|k| k.common.key_id.as_deref() == Some(kid)).collect(),
        None => jwks.keys.iter().collect(),
    };
    let issuer = state.settings.issuer();
    let mut validation = Validation::new(alg);
    // The issuer, or the endpoint the assertion is sent to (RFC 7523 §3;
    // RFC 9126 §2: the PAR endpoint too).
    validation.set_audience(&[format!("{issuer}/token"), format!("{issuer}/par"), issuer.to_owned()]);
    validation.set_issuer(&[iss.as_str()]);
    validation.sub = Some(iss.clone());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = 30;
    // An assertion dated in the future is not valid yet (RFC 7519 §4.1.5).
    validation.validate_nbf = true;
    let mut claims = None;
    for k in candidates {
        let Ok(key) = DecodingKey::from_jwk(k) else { continue };
        if let Ok(data) = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation) {
            claims = Some(data.claims);
            break;
        }
    }
    let claims = claims.ok_or_else(|| bad.clone())?;
    // A request object (it travels through the browser) is never a client
    // assertion, whatever its other claims say (RFC 9101 §10.8).
    if claims.get("response_type").is_some() || claims.get("redirect_uri").is_some() {
        return Err(bad);
    }
    let now = state.clock.now().timestamp();
    let exp = claims.get("exp").and_then(|v| v.as_i64()).ok_or_else(|| bad.clone())?;
    if exp > now + 600 {
        return Err(bad); // assertions are short-lived
    }
    let jti = claims
        .get("jti")
        .and_then(|v| v.as_str())
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| bad.clone())?;
    // Single use: remember the jti until the assertion expires.
    let res = revoked_token::Entity::insert(revoked_token::ActiveModel {
        jti: Set(format!("assertion:{}:{jti}", c.client_id)),
        revoked_ms: Set(state.clock.fresh().timestamp_millis()),
        expires_ms: Set((exp + 60) * 1000),
    })
    .on_conflict(OnConflict::column(revoked_token::Column::Jti).do_nothing().to_owned())
    .exec_without_returning(&state.db)
    .await?;
    if res == 0 {
        return Err(bad);
    }
    Ok(c)
}

/// The failed-authentication limit as it applies to one request: its source
/// address and the window settings, read once.
pub struct FailureGate<'a> {
    state: &'a AppState,
    ip: Option<std::net::IpAddr>,
    max: u32,
    window_ms: i64,
    now_ms: i64,
}

impl<'a> FailureGate<'a> {
    pub fn new(state: &'a AppState, ip: Option<std::net::IpAddr>, now_ms: i64) -> Self {
        Self {
            state,
            ip,
            max: state.settings.token_ip_max_failures,
            window_ms: state.settings.token_ip_window_secs * 1000,
            now_ms,
        }
    }

    /// The source address, when known.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.ip
    }

    /// Whether this address is over the limit now (logged when it is: the
    /// requests turned away are a security event, kept out of the audit table
    /// so that a flood cannot fill it).
    pub fn blocked(&self) -> bool {
        let blocked =
            self.ip.is_some_and(|ip| self.state.client_failures.blocked(ip, self.max, self.window_ms, self.now_ms));
        if blocked {
            tracing::warn!(
                event = "auth.rate_limited",
                ip = %self.ip.map(|i| i.to_string()).unwrap_or_default(),
                "request refused: too many failed authentications from this address"
            );
        }
        blocked
    }

    /// Counts one failed authentication from this address.
    pub fn failed(&self) {
        if let Some(ip) = self.ip {
            self.state.client_failures.failed(ip, self.window_ms, self.now_ms);
        }
    }
}
