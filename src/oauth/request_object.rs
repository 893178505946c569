//! Request objects passed by value (OIDC Core §6.1, RFC 9101 JAR): the
//! authorization request as a JWT signed with a key of the client's
//! registered JWK Set. Unsigned (`alg: none`) objects are refused; `iss` must
//! be the client and `aud` this issuer; a `jti` is single-use. The parameters
//! inside win over those outside (RFC 9101 §5).

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set};
use serde_json::Value;

use super::OAuthError;
use crate::state::AppState;
use crate::storage::clients::Client;
use crate::storage::entities::revoked_token;

/// The signature algorithms accepted for request objects (advertised).
pub const ALGS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];

/// Largest request object accepted (bytes).
const MAX_LEN: usize = 8 * 1024;

/// How long a request object without `exp` counts as fresh for its `jti`.
const DEFAULT_LIFETIME_SECS: i64 = 3600;

fn refuse(why: &'static str) -> OAuthError {
    OAuthError::InvalidRequestObject(why)
}

/// Verifies `jwt` for `c` and returns the parameters it carries.
pub async fn open(state: &AppState, c: &Client, jwt: &str) -> Result<HashMap<String, String>, OAuthError> {
    if jwt.len() > MAX_LEN {
        return Err(refuse("the request object is too large"));
    }
    // `alg: none` is not one of jsonwebtoken's algorithms: an unsigned object
    // fails here, before anything in it is read.
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| refuse("the request object must be a signed JWT"))?;
    if !matches!(
        header.alg,
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA
    ) {
        return Err(refuse("the request object's algorithm is not accepted"));
    }
    if !c.may_sign_with(&format!("{:?}", header.alg)) {
        return Err(refuse("the request object's algorithm is not accepted for this client"));
    }
    let jwks: jsonwebtoken::jwk::JwkSet = c
        .jwks
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or(refuse("the client has no registered keys for request objects"))?;
    let issuer = state.settings.issuer();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[issuer]);
    validation.set_issuer(&[c.client_id.as_str()]);
    // `exp` required: a captured request object must not be replayable for
    // ever (and one without `jti` is only bounded by it).
    validation.set_required_spec_claims(&["iss", "aud", "exp"]);
    validation.leeway = 30;
    validation.validate_nbf = true;
    let claims = jwks
        .keys
        .iter()
        .filter(|k| header.kid.is_none() || k.common.key_id == header.kid)
        .filter_map(|k| DecodingKey::from_jwk(k).ok())
        .find_map(|key| jsonwebtoken::decode::<serde_json::Map<String, Value>>(jwt, &key, &validation).ok())
        .ok_or(refuse("the request object's signature, issuer, audience or lifetime is not valid"))?
        .claims;
    if claims.get("exp").and_then(Value::as_i64).is_none_or(|exp| exp > state.clock.now().timestamp() + 3600) {
        return Err(refuse("the request object must expire within an hour"));
    }
    if claims.contains_key("sub") {
        // A signed JWT with iss = sub = client and aud = issuer is a client
        // assertion: a request object that travels through the browser must
        // never be one (RFC 9101 §10.8, cross-JWT confusion).
        return Err(refuse("a request object carries no sub"));
    }
    if claims.get("client_id").is_some_and(|v| v.as_str() != Some(c.client_id.as_str())) {
        return Err(refuse("the request object names another client"));
    }
    if let Some(jti) = claims.get("jti") {
        let jti = jti.as_str().filter(|j| !j.is_empty() && j.len() <= 256).ok_or(refuse("jti is not valid"))?;
        let now = state.clock.now().timestamp();
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now + DEFAULT_LIFETIME_SECS);
        let fresh = revoked_token::Entity::insert(revoked_token::ActiveModel {
            jti: Set(format!("request:{}:{jti}", c.client_id)),
            revoked_ms: Set(state.clock.fresh().timestamp_millis()),
            expires_ms: Set((exp.max(now) + 60) * 1000),
        })
        .on_conflict(OnConflict::column(revoked_token::Column::Jti).do_nothing().to_owned())
        .exec_without_returning(&state.db)
        .await?;
        if fresh == 0 {
            return Err(refuse("the request object was used before"));
        }
    }
    let mut out = HashMap::new();
    for (k, v) in claims {
        if matches!(k.as_str(), "iss" | "aud" | "exp" | "iat" | "nbf" | "jti" | "request" | "request_uri") {
            continue;
        }
        let text = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        out.insert(k, text);
    }
    Ok(out)
}
