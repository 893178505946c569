//! OpenID Connect: the discovery document, UserInfo's claims, RP-initiated
//! logout and back-channel logout (the HTTP side is `web::oidc` and
//! `web::logout`).

pub mod logout;

use serde_json::{Map, Value, json};

use crate::oauth::OAuthError;
use crate::oauth::dpop::Sender;
use crate::oauth::grants::scoped_claims;
use crate::oauth::token::check_presented;
use crate::state::AppState;

/// The discovery document (OIDC Discovery 1.0 §3), built once per process.
/// `passkeys`: WebAuthn is configured, so `phr` can be met; `require_par`:
/// every client must push its authorization requests.
pub fn discovery_document(s: &crate::config::Settings, passkeys: bool) -> String {
    let issuer = s.issuer();
    let require_par = s.require_pushed_authorization_requests;
    let registration = s.client_registration != crate::config::ClientRegistration::Off;
    let acr: &[&str] = if passkeys { &["1", "2", "phr"] } else { &["1", "2"] };
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/end_session"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "pushed_authorization_request_endpoint": format!("{issuer}/par"),
        "require_pushed_authorization_requests": require_par,
        "dpop_signing_alg_values_supported": crate::oauth::dpop::ALGS,
        "client_id_metadata_document_supported": s.client_id_documents,
        "scopes_supported": crate::oauth::STANDARD_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
            crate::oauth::device::GRANT, crate::oauth::exchange::GRANT],
        "device_authorization_endpoint": format!("{issuer}/device_authorization"),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "ES384", "EdDSA"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid", "at_hash",
            "name", "preferred_username", "updated_at", "email", "email_verified", "roles"],
        "acr_values_supported": acr,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": true,
        "request_parameter_supported": true,
        "request_object_signing_alg_values_supported": crate::oauth::request_object::ALGS,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
    });
    // Advertised only when clients may register (RFC 8414 §2: OPTIONAL).
    if registration {
        doc["registration_endpoint"] = format!("{issuer}/register").into();
    }
    doc.to_string()
}

/// OIDC Core §5.3: the claims of the token's scope.
pub async fn userinfo(state: &AppState, token: Option<&str>, sender: Sender<'_>) -> Result<Value, OAuthError> {
    let token = token.ok_or(OAuthError::MissingToken)?;
    userinfo_of(state, check_presented(state, token, sender).await?).await
}

/// UserInfo for an access token already checked as presented
/// ([`check_presented`]).
pub async fn userinfo_of(state: &AppState, claims: Value) -> Result<Value, OAuthError> {
    // UserInfo serves tokens meant for the client itself, not ones minted for
    // another resource server (RFC 8707 `resource`): those are that API's.
    let client_id = claims.get("client_id").and_then(Value::as_str).unwrap_or_default();
    let for_client = match claims.get("aud") {
        Some(Value::String(a)) => a == client_id,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(client_id)),
        _ => false,
    };
    if !for_client {
        return Err(OAuthError::InvalidToken("the access token is not meant for UserInfo"));
    }
    let scope: Vec<String> =
        claims.get("scope").and_then(Value::as_str).unwrap_or_default().split(' ').map(str::to_owned).collect();
    if !scope.iter().any(|s| s == "openid") {
        return Err(OAuthError::InsufficientScope("the token was not issued with the openid scope"));
    }
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
    let found = match state.users.get(&state.db, sub).await {
        Err(crate::storage::users::LoadError::Damaged(d)) => {
            tracing::error!(error = %d, "no UserInfo for a damaged account");
            None
        }
        other => other?,
    };
    let Some(cached) = found.filter(|c| !c.user.disabled) else {
        return Err(OAuthError::InvalidToken("the user is no longer active"));
    };
    let (u, roles) = (&cached.user, &cached.roles);
    let mut out = Map::new();
    out.insert("sub".into(), u.id.clone().into());
    scoped_claims(u, &scope, &mut out);
    if scope.iter().any(|s| s == "roles") {
        out.insert("roles".into(), roles.clone().into());
    }
    // Claims asked for by name (the `claims` parameter), carried by the token.
    let asked = claims.get("userinfo_claims").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
    crate::oauth::claims::release(u, Some(roles), asked, &mut out);
    Ok(Value::Object(out))
}
