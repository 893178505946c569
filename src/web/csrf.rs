//! CSRF protection for every browser form: a double-submit token.
//!
//! The browser holds a random token in an HttpOnly, SameSite=Strict cookie
//! (`__Host-` prefixed under https, so a sibling subdomain cannot plant one);
//! each form carries the same value in a hidden `csrf` field. A cross-site page
//! can neither read the cookie nor make the browser send it. The field is not
//! the cookie itself but its HMAC under the master key, so even a cookie
//! planted by a sibling host (possible without the `__Host-` prefix, i.e. on a
//! plain-http deployment) gives the attacker no valid field. In addition, a
//! POST whose `Origin` header names another origin is refused. The token is
//! replaced at login and logout, so a form from before either is stale.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};

use crate::crypto::{constant_time_eq, random_token};
use crate::state::AppState;
use crate::web::cookies::{build_cookie, cookie_name};

pub const CSRF_COOKIE: &str = "portcullis_csrf";
/// The hidden form field.
pub const CSRF_FIELD: &str = "csrf";

/// The token to embed in a form, and a cookie to set if the browser has none.
pub struct CsrfToken {
    pub token: String,
    pub set_cookie: Option<Cookie<'static>>,
}

/// The form value that goes with a cookie value.
fn form_token(state: &AppState, cookie: &str) -> String {
    state.master_key.hasher().hash(&format!("csrf:{cookie}"))
}

fn current(state: &AppState, req: &HttpRequest) -> Option<String> {
    req.cookie(&cookie_name(state, CSRF_COOKIE))
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 43 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// The browser's token, or a new one (with its cookie).
pub fn ensure(state: &AppState, req: &HttpRequest) -> Result<CsrfToken, crate::crypto::CryptoError> {
    match current(state, req) {
        Some(cookie) => Ok(CsrfToken { token: form_token(state, &cookie), set_cookie: None }),
        None => fresh(state),
    }
}

/// Always a new token (after login and logout).
pub fn fresh(state: &AppState) -> Result<CsrfToken, crate::crypto::CryptoError> {
    let value = random_token(32)?;
    let token = form_token(state, &value);
    let cookie = build_cookie(state, CSRF_COOKIE, value, SameSite::Strict);
    Ok(CsrfToken { token, set_cookie: Some(cookie) })
}

/// Whether a submitted form is genuine: same-origin (when the browser says) and
/// carrying the cookie's token.
pub fn verify(state: &AppState, req: &HttpRequest, submitted: &str) -> bool {
    let ok = check(state, req, submitted);
    if !ok {
        // A security event (ASVS V16.3.3), logged rather than written to the
        // audit table: anyone can send forged forms, and they must not be able
        // to fill the database with them.
        tracing::warn!(
            event = "csrf.rejected",
            path = req.path(),
            ip = crate::web::client_info::ip(state, req).as_deref().unwrap_or("-"),
            "a form without a valid CSRF token or from a foreign origin was refused"
        );
    }
    ok
}

fn check(state: &AppState, req: &HttpRequest, submitted: &str) -> bool {
    // Under `Referrer-Policy: no-referrer` browsers send `Origin: null` even
    // for same-origin posts, so "null" proves nothing either way; the token
    // decides. A named foreign origin is refused outright.
    if let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) {
        let ok = origin.to_str().ok().is_some_and(|o| o == "null" || same_origin(state.settings.issuer(), o));
        if !ok {
            return false;
        }
    }
    match current(state, req) {
        Some(cookie) => constant_time_eq(form_token(state, &cookie).as_bytes(), submitted.as_bytes()),
        None => false,
    }
}

/// `https://id.example.com/base` and `https://id.example.com` are one origin.
fn same_origin(issuer: &str, origin: &str) -> bool {
    match (url::Url::parse(issuer), url::Url::parse(origin)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert!(same_origin("https://id.example.com/auth", "https://id.example.com"));
        assert!(same_origin("http://127.0.0.1:8080", "http://127.0.0.1:8080"));
        assert!(!same_origin("http://127.0.0.1:8080", "http://127.0.0.1:8081"));
        assert!(!same_origin("https://id.example.com", "https://evil.example.com"));
        assert!(!same_origin("https://id.example.com", "null"));
        assert!(!same_origin("https://id.example.com", "https://id.example.com.evil.example"));
    }
}
