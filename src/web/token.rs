//! The token endpoint (RFC 6749 §3.2), introspection (RFC 7662) and
//! revocation (RFC 7009), HTTP side: all authenticate the client, take form
//! bodies, and answer with `Cache-Control: no-store`.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::domain::Origin;
use crate::oauth::client_auth::{AuthenticatedClient, FailureGate, authenticate};
use crate::oauth::{OAuthError, grants, params, token};
use crate::state::AppState;

const MAX_BODY: usize = 16 * 1024;

fn form_params(req: &HttpRequest, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let ct = req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ct.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::InvalidRequest("the body must be application/x-www-form-urlencoded"));
    }
    if body.len() > MAX_BODY {
        return Err(OAuthError::InvalidRequest("the body is too large"));
    }
    params(body)
}

fn no_store(body: Value) -> HttpResponse {
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).insert_header(("Pragma", "no-cache")).json(body)
}

async fn client_and_params(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(AuthenticatedClient, HashMap<String, String>, Origin), OAuthError> {
    let mut p = form_params(req, body)?;
    // Per-address limit on failed client authentications: an address that
    // keeps failing is answered 429 before any lookup, until its window ends.
    let origin = super::client_info::origin(state, req);
    let gate = FailureGate::new(state, origin.ip_addr(), state.clock.now().timestamp_millis());
    if gate.blocked() {
        return Err(OAuthError::TooManyRequests);
    }
    // A malformed Basic header is a failed authentication like a wrong
    // secret: counted and audited.
    let authenticated = match super::client_info::basic_credentials(req) {
        Ok(basic) => authenticate(state, basic, &mut p).await,
        Err(e) => Err(e),
    };
    match authenticated {
        Ok(c) => Ok((c, p, origin)),
        Err(e) => {
            if let OAuthError::InvalidClient { .. } = &e {
                gate.failed();
                // Audited (V16.3.1); the per-address limit above bounds these writes.
                let event = crate::storage::AuditEvent::new("oauth.client_auth_failed", "failure")
                    .source(origin.ip.clone(), origin.user_agent.clone())
                    .detail(json!({ "endpoint": req.path() }));
                if let Err(err) = crate::storage::record_audit(&state.db, event, state.clock.now()).await {
                    tracing::warn!(error = %err, "could not audit a failed client authentication");
                }
            }
            Err(e)
        }
    }
}

pub async fn token_endpoint(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let (c, p, origin) = client_and_params(&state, &req, &body).await?;
    let out = match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => grants::authorization_code(&state, &c.client, &p).await?,
        Some("refresh_token") => grants::refresh(&state, &c.client, &p, origin.ip_addr()).await?,
        Some("client_credentials") => grants::client_credentials(&state, &c.client, &p).await?,
        Some(_) => return Err(OAuthError::UnsupportedGrantType),
        None => return Err(OAuthError::InvalidRequest("grant_type is required")),
    };
    Ok(no_store(out))
}

pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let (c, p, _) = client_and_params(&state, &req, &body).await?;
    let t = p.get("token").ok_or(OAuthError::InvalidRequest("token is required"))?;
    Ok(no_store(token::introspect(&state, &c.client, t).await?))
}

pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let (c, p, _) = client_and_params(&state, &req, &body).await?;
    let t = p.get("token").ok_or(OAuthError::InvalidRequest("token is required"))?;
    token::revoke(&state, &c.client, t).await?;
    // RFC 7009 §2.2: 200 whether or not the token was known.
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).finish())
}
