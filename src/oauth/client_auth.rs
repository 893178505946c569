//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3): `client_secret_basic`, `client_secret_post`,
//! `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9) and, for public clients,
//! `none`. Exactly one method per request (RFC 6749 §2.3).

use std::collections::HashMap;

use actix_web::HttpRequest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set};

use super::OAuthError;
use crate::state::AppState;
use std::sync::Arc;

use super::cache::CachedClient;
use crate::storage::entities::{client, revoked_token};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub client: Arc<CachedClient>,
    pub method: &'static str,
}

/// Decodes one `application/x-www-form-urlencoded` component of HTTP Basic
/// credentials (RFC 6749 §2.3.1).
fn form_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus).decode_utf8().ok().map(|c| c.into_owned())
}

fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, OAuthError> {
    let Some(h) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = OAuthError::InvalidClient { basic: true };
    let v = h.to_str().map_err(|_| bad.clone())?;
    let Some(b64) = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")) else {
        // Another scheme (e.g. a Bearer token sent by mistake): not ours to judge.
        return Ok(None);
    };
    let raw = STANDARD.decode(b64.trim()).map_err(|_| bad.clone())?;
    let text = String::from_utf8(raw).map_err(|_| bad.clone())?;
    let (id, secret) = text.split_once(':').ok_or_else(|| bad.clone())?;
    let id = form_decode(id).ok_or_else(|| bad.clone())?;
    let secret = form_decode(secret).ok_or(bad)?;
    Ok(Some((id, secret)))
}

async fn load(state: &AppState, client_id: &str, basic: bool) -> Result<Arc<CachedClient>, OAuthError> {
    if client_id.is_empty() || client_id.len() > 128 {
        return Err(OAuthError::InvalidClient { basic });
    }
    state.clients.get(&state.db, client_id).await?.ok_or(OAuthError::InvalidClient { basic })
}

fn check_secret(state: &AppState, c: &client::Model, secret: &str, basic: bool) -> Result<(), OAuthError> {
    match &c.secret_hash {
        Some(h) if !c.public && state.master_key.hasher().verify(secret, h) => Ok(()),
        _ => Err(OAuthError::InvalidClient { basic }),
    }
}

/// Authenticates the client of a protocol request. `params` are the request's
/// form parameters; the credentials in them are consumed.
pub async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
    params: &mut HashMap<String, String>,
) -> Result<AuthenticatedClient, OAuthError> {
    let basic = basic_credentials(req)?;
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
        check_secret(state, &c.client, &secret, true)?;
        return Ok(AuthenticatedClient { client: c, method: "client_secret_basic" });
    }
    if let Some(secret) = post_secret {
        let id = param_id.ok_or(OAuthError::InvalidClient { basic: false })?;
        let c = load(state, &id, false).await?;
        check_secret(state, &c.client, &secret, false)?;
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
    if !c.client.public {
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
async fn private_key_jwt(state: &AppState, jwt: &str, param_id: Option<&str>) -> Result<Arc<CachedClient>, OAuthError> {
    let bad = OAuthError::InvalidClient { basic: false };
    let (header, iss) = parse_assertion(jwt)?;
    let alg = header.alg;
    if param_id.is_some_and(|p| p != iss) {
        return Err(bad);
    }
    let c = load(state, &iss, false).await?;
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(c.client.jwks.as_deref().ok_or_else(|| bad.clone())?).map_err(|_| bad.clone())?;
    let candidates: Vec<&jsonwebtoken::jwk::Jwk> = match &header.kid {
        Some(kid) => jwks.keys.iter().filter(|k| k.common.key_id.as_deref() == Some(kid)).collect(),
        None => jwks.keys.iter().collect(),
    };
    let issuer = state.settings.issuer();
    let mut validation = Validation::new(alg);
    validation.set_audience(&[format!("{issuer}/token"), issuer.to_owned()]);
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
        jti: Set(format!("assertion:{}:{jti}", c.client.client_id)),
        revoked_ms: Set(now * 1000),
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
