//! OAuth 2.0: the authorization endpoint (with login, step-up and consent),
//! the token endpoint, introspection and revocation.

pub mod access;
pub mod authorize;
pub mod cimd;

pub mod claims;
pub mod client_auth;
pub mod device;
pub mod dpop;
pub mod error;
pub mod exchange;
pub mod grants;
mod mint;
pub mod par;
pub mod request_object;
pub mod token;

use std::collections::HashMap;

pub use error::OAuthError;

/// Parses request parameters strictly: a repeated parameter is an error
/// (RFC 6749 §3.1, §3.2), as is invalid UTF-8; unknown parameters are kept
/// (and ignored by the endpoints, as RFC 6749 §3.1 requires).
pub fn params(raw: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let pairs = crate::domain::parse_pairs(raw).map_err(|_| OAuthError::InvalidRequest("malformed parameters"))?;
    let mut map = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if map.insert(k, v).is_some() {
            return Err(OAuthError::InvalidRequest("a parameter is repeated"));
        }
    }
    Ok(map)
}

/// Splits a `scope` value (RFC 6749 §3.3) into tokens, refusing malformed ones.
pub fn split_scope(s: &str) -> Result<Vec<String>, OAuthError> {
    crate::domain::Scope::split(s).map_err(|_| OAuthError::InvalidScope("malformed scope"))
}

/// The scopes this provider defines (OIDC Core §5.4, plus `roles`), listed in
/// discovery.
pub const STANDARD_SCOPES: &[&str] = &["openid", "profile", "email", "address", "phone", "roles", "offline_access"];

/// Whether `scope` may be granted to a client registered with `registered`:
/// `openid` and `offline_access` (which the refresh grant governs) to every
/// client; every other scope — the standard claim scopes included (ASVS 5.0
/// V10.4.11) — only to a client registered for it.
pub fn scope_allowed(scope: &str, registered: &[String]) -> bool {
    matches!(scope, "openid" | "offline_access") || registered.iter().any(|r| r == scope)
}
