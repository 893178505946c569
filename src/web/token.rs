//! The token endpoint (RFC 6749 §3.2), introspection (RFC 7662) and
//! revocation (RFC 7009), HTTP side: all authenticate the client, take form
//! bodies, and answer with `Cache-Control: no-store`.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::domain::Origin;
use crate::oauth::client_auth::{AuthenticatedClient, FailureGate, authenticate};
use crate::oauth::{OAuthError, dpop, grants, params, token};
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

pub(super) async fn client_and_params(
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
        // FAPI 2.0 §5.3.2.1: its clients authenticate with their keys only.
        Ok(c) if c.client.fapi2() && c.method != "private_key_jwt" => Err(OAuthError::InvalidClient { basic: false }),
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

/// A client that authenticated at an endpoint without DPoP (introspection,
/// revocation, device authorization), with the form it sent and where from:
/// the handler does not run without it. The token and PAR endpoints call
/// [`client_and_params`] themselves, after the DPoP proof is checked (a
/// nonce refusal must not spend a one-time client assertion).
pub struct ClientCaller {
    pub client: AuthenticatedClient,
    pub params: HashMap<String, String>,
    pub origin: Origin,
}

impl actix_web::FromRequest for ClientCaller {
    type Error = OAuthError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, OAuthError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let state = req.app_data::<web::Data<AppState>>().cloned().ok_or(OAuthError::ServerError)?;
            let body = body.await.map_err(|_| OAuthError::InvalidRequest("the body could not be read"))?;
            let (client, params, origin) = client_and_params(&state, &req, &body).await?;
            Ok(Self { client, params, origin })
        })
    }
}

/// The request's `DPoP` header values (RFC 9449 §4.1: exactly one is allowed).
pub fn dpop_headers(req: &HttpRequest) -> Vec<&str> {
    req.headers().get_all("dpop").filter_map(|v| v.to_str().ok()).collect()
}

/// An endpoint's answer to a request that may carry a DPoP proof: whenever
/// it did (or a nonce is what it lacked), the answer carries a fresh
/// `DPoP-Nonce` (RFC 9449 §8) for the client's next proof.
pub fn with_dpop_nonce(
    state: &AppState,
    req: &HttpRequest,
    out: Result<HttpResponse, OAuthError>,
) -> Result<HttpResponse, actix_web::Error> {
    let wants = !dpop_headers(req).is_empty() || matches!(out, Err(OAuthError::UseDpopNonce));
    let mut resp = match out {
        Ok(r) => r,
        Err(e) => actix_web::ResponseError::error_response(&e),
    };
    if wants && let Ok(v) = actix_web::http::header::HeaderValue::from_str(&dpop::nonce(state)) {
        resp.headers_mut().insert(actix_web::http::header::HeaderName::from_static("dpop-nonce"), v);
    }
    Ok(resp)
}

/// The proof of a request to `path` at the token or PAR endpoint: checked
/// before the client is (a nonce refusal must not spend a one-time client
/// assertion), spent after.
pub fn endpoint_proof(state: &AppState, req: &HttpRequest, path: &str) -> Result<Option<dpop::Proof>, OAuthError> {
    dpop::check(state, &dpop_headers(req), "POST", path, None, state.settings.dpop_nonce_required)
}

/// Once the client is known: its proof's algorithm must be one it may sign
/// with (FAPI 2.0), and the proof is spent (single use, every instance).
async fn spend_proof(state: &AppState, c: &AuthenticatedClient, proof: Option<&dpop::Proof>) -> Result<(), OAuthError> {
    let Some(d) = proof else { return Ok(()) };
    if !c.client.may_sign_with(d.alg) {
        return Err(OAuthError::InvalidDpopProof("the DPoP proof algorithm is not accepted for this client"));
    }
    dpop::record(state, d).await
}

pub async fn token_endpoint(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, actix_web::Error> {
    let out = token(&state, &req, &body).await;
    with_dpop_nonce(&state, &req, out)
}

async fn token(state: &AppState, req: &HttpRequest, body: &[u8]) -> Result<HttpResponse, OAuthError> {
    let proof = endpoint_proof(state, req, "/token")?;
    let (c, p, origin) = client_and_params(state, req, body).await?;
    spend_proof(state, &c, proof.as_ref()).await?;
    let d = proof.as_ref();
    let out = match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => grants::authorization_code(state, &c.client, &p, d).await?,
        Some("refresh_token") => grants::refresh(state, &c.client, &p, origin.ip_addr(), d).await?,
        Some("client_credentials") => grants::client_credentials(state, &c.client, &p, d).await?,
        Some(crate::oauth::device::GRANT) => crate::oauth::device::poll(state, &c.client, &p, d).await?,
        Some(crate::oauth::exchange::GRANT) => crate::oauth::exchange::exchange(state, &c.client, &p, d).await?,
        Some(_) => return Err(OAuthError::UnsupportedGrantType),
        None => return Err(OAuthError::InvalidRequest("grant_type is required")),
    };
    Ok(no_store(out))
}

/// RFC 9126 §2: a pushed authorization request, validated as `/authorize`
/// would, stored under a single-use `request_uri`.
pub async fn par(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, actix_web::Error> {
    let out = push(&state, &req, &body).await;
    with_dpop_nonce(&state, &req, out)
}

async fn push(state: &AppState, req: &HttpRequest, body: &[u8]) -> Result<HttpResponse, OAuthError> {
    use crate::oauth::authorize::request::{self, Failure};
    let proof = endpoint_proof(state, req, "/par")?;
    let (c, mut p, origin) = client_and_params(state, req, body).await?;
    spend_proof(state, &c, proof.as_ref()).await?;
    if p.contains_key("request_uri") {
        return Err(OAuthError::InvalidRequest("request_uri is not allowed in a pushed request (RFC 9126 §2.1)"));
    }
    // Anonymous callers (public clients) make us store a request: bounded
    // per address, as at /authorize. An authenticated client is not: a
    // FAPI 2.0 backend pushes every sign-in of its users from one address.
    if c.method == "none"
        && let Some(ip) = &origin.ip
    {
        let now_ms = state.clock.now().timestamp_millis();
        let n = crate::authn::throttle::admit_ip_for(&state.db, &state.settings, "par", ip, now_ms).await?;
        if n > state.settings.authorize_ip_max_pending {
            return Err(OAuthError::TooManyRequests);
        }
    }
    p.insert("client_id".into(), c.client.client_id.clone());
    let as_error = |f: Failure| match f {
        Failure::Page(why) => OAuthError::InvalidRequest(why),
        Failure::Redirect { error, .. } => error,
    };
    let mut p = request::with_request_object(state, p).await.map_err(as_error)?;
    // The request object may not name another client.
    if p.get("client_id") != Some(&c.client.client_id) {
        return Err(OAuthError::InvalidRequest("client_id does not match the authenticated client"));
    }
    // RFC 9449 §10.1: a proof at PAR binds the code to its key; a dpop_jkt
    // beside it must name the same key.
    if let Some(d) = &proof {
        match p.get("dpop_jkt") {
            Some(j) if *j != d.jkt => {
                return Err(OAuthError::InvalidDpopProof("dpop_jkt does not match the DPoP proof's key"));
            }
            _ => {
                p.insert("dpop_jkt".into(), d.jkt.clone());
            }
        }
    }
    request::validate(state, &p, true).await.map_err(as_error)?;
    let request_uri = crate::oauth::par::store(state, &c.client.client_id, &p).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "request_uri": request_uri, "expires_in": crate::oauth::par::TTL_SECS })))
}

pub async fn introspect(caller: ClientCaller, state: web::Data<AppState>) -> Result<HttpResponse, OAuthError> {
    let t = caller.params.get("token").ok_or(OAuthError::InvalidRequest("token is required"))?;
    Ok(no_store(token::introspect(&state, &caller.client.client, t).await?))
}

pub async fn revoke(caller: ClientCaller, state: web::Data<AppState>) -> Result<HttpResponse, OAuthError> {
    let t = caller.params.get("token").ok_or(OAuthError::InvalidRequest("token is required"))?;
    token::revoke(&state, &caller.client.client, t).await?;
    // RFC 7009 §2.2: 200 whether or not the token was known.
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).finish())
}
