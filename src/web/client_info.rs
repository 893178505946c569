//! Who is on the other end: address and user agent, for throttling and audit.

use actix_web::HttpRequest;
use base64::Engine;

use crate::state::AppState;

/// The client's address: the TCP peer, or — only when the operator says one
/// proxy sits in front — the last address of `X-Forwarded-For`, the one that
/// proxy appended (earlier entries are whatever the client sent).
pub fn ip(state: &AppState, req: &HttpRequest) -> Option<String> {
    if state.settings.trust_forwarded_for
        && let Some(first) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .and_then(|s| s.parse::<std::net::IpAddr>().ok())
    {
        return Some(first.to_string());
    }
    req.peer_addr().map(|a| a.ip().to_string())
}

/// The user agent, bounded.
pub fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect())
}

/// The request's origin (address and user agent) for the core services.
pub fn origin(state: &AppState, req: &HttpRequest) -> crate::domain::Origin {
    crate::domain::Origin { ip: ip(state, req), user_agent: user_agent(req) }
}

/// Decodes one `application/x-www-form-urlencoded` component of HTTP Basic
/// credentials (RFC 6749 §2.3.1).
fn form_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus).decode_utf8().ok().map(|c| c.into_owned())
}

pub fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, crate::oauth::OAuthError> {
    let Some(h) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = crate::oauth::OAuthError::InvalidClient { basic: true };
    let v = h.to_str().map_err(|_| bad.clone())?;
    let Some(b64) = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")) else {
        // Another scheme (e.g. a Bearer token sent by mistake): not ours to judge.
        return Ok(None);
    };
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| bad.clone())?;
    let text = String::from_utf8(raw).map_err(|_| bad.clone())?;
    let (id, secret) = text.split_once(':').ok_or_else(|| bad.clone())?;
    let id = form_decode(id).ok_or_else(|| bad.clone())?;
    let secret = form_decode(secret).ok_or(bad)?;
    Ok(Some((id, secret)))
}
