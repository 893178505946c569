//! Who is on the other end: address and user agent, for throttling and audit.

use actix_web::HttpRequest;

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
