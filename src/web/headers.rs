//! Security headers on every response (errors included), and the request id.
//!
//! The CSP allows no inline script at all and no script source: Portcullis pages
//! work without JavaScript. Styles come from our own stylesheet; images may be
//! inline `data:` (QR codes are inline SVG, which needs no source).

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next};

/// The Content-Security-Policy of every response.
/// Pages whose form submission ends in a redirect to a client (login and consent
/// within an authorization request) widen `form-action` for that client's
/// redirect origin only, since browsers apply it to the redirect too.
/// The one script allowed is our own (`/static/passkey.js`), which talks to
/// our own origin only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; \
    img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Headers added to every response unless a handler set its own value.
pub fn security_headers(https: bool) -> DefaultHeaders {
    let mut h = DefaultHeaders::new()
        .add(("Content-Security-Policy", CSP))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add(("Cross-Origin-Resource-Policy", "same-origin"))
        .add(("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"))
        // Safe by default: a response is cacheable only where a handler says so.
        .add(("Cache-Control", "no-store"));
    if https {
        h = h.add(("Strict-Transport-Security", "max-age=63072000; includeSubDomains"));
    }
    h
}

/// Copies the request id (made by `tracing_actix_web`) onto the response as
/// `X-Request-Id`, so an operator can find the log lines of a failed request.
pub async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req.extensions().get::<tracing_actix_web::RequestId>().map(|id| id.to_string());
    let mut res = next.call(req).await?;
    if let Some(id) = id.and_then(|s| HeaderValue::from_str(&s).ok()) {
        res.headers_mut().insert(HeaderName::from_static("x-request-id"), id);
    }
    Ok(res)
}
