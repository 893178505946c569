//! The token endpoint (RFC 6749 §3.2), introspection (RFC 7662) and
//! revocation (RFC 7009). All authenticate the client, take form bodies, and
//! answer with `Cache-Control: no-store`.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, post, web};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use super::client_auth::{AuthenticatedClient, authenticate};
use super::{OAuthError, grants, params};
use crate::state::AppState;
use crate::storage::entities::{refresh_family, refresh_token};
use crate::tokens::jwt;

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
) -> Result<(AuthenticatedClient, HashMap<String, String>), OAuthError> {
    let mut p = form_params(req, body)?;
    // Per-address limit on failed client authentications: an address that
    // keeps failing is answered 429 before any lookup, until its window ends.
    let gate = super::cache::FailureGate::new(state, req);
    if gate.blocked() {
        return Err(OAuthError::TooManyRequests);
    }
    match authenticate(state, req, &mut p).await {
        Ok(c) => Ok((c, p)),
        Err(e) => {
            if let OAuthError::InvalidClient { .. } = &e {
                gate.failed();
                // Audited (V16.3.1); the per-address limit above bounds these writes.
                let event = crate::storage::AuditEvent::new("oauth.client_auth_failed", "failure")
                    .source(gate.ip().map(|i| i.to_string()), crate::web::client_info::user_agent(req))
                    .detail(json!({ "endpoint": req.path() }));
                if let Err(err) = crate::storage::record_audit(&state.db, event, state.clock.now()).await {
                    tracing::warn!(error = %err, "could not audit a failed client authentication");
                }
            }
            Err(e)
        }
    }
}

#[post("/token")]
pub async fn token_endpoint(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let (c, p) = client_and_params(&state, &req, &body).await?;
    let out = match p.get("grant_type").map(String::as_str) {
        Some("authorization_code") => grants::authorization_code(&state, &c.client.client, &p).await?,
        Some("refresh_token") => {
            let ip = crate::web::client_info::ip(&state, &req).and_then(|i| i.parse().ok());
            grants::refresh(&state, &c.client.client, &p, ip).await?
        }
        Some("client_credentials") => grants::client_credentials(&state, &c.client, &p).await?,
        Some(_) => return Err(OAuthError::UnsupportedGrantType),
        None => return Err(OAuthError::InvalidRequest("grant_type is required")),
    };
    Ok(no_store(out))
}

/// Checks one of our JWT access tokens: signature (kid pinned to its
/// algorithm), `typ: at+jwt`, issuer, expiry, and the revocation list.
pub async fn check_access_token(state: &AppState, token: &str) -> Result<Value, OAuthError> {
    let ring = state.keyring();
    let v = jwt::verify(&ring, token, Some("at+jwt"))
        .map_err(|_| OAuthError::InvalidToken("the access token is invalid"))?;
    let c = v.claims;
    if c.get("iss").and_then(Value::as_str) != Some(state.settings.issuer()) {
        return Err(OAuthError::InvalidToken("the access token is invalid"));
    }
    let now = state.clock.now().timestamp();
    if c.get("exp").and_then(Value::as_i64).is_none_or(|e| e <= now) {
        return Err(OAuthError::InvalidToken("the access token has expired"));
    }
    let jti = c.get("jti").and_then(Value::as_str).ok_or(OAuthError::InvalidToken("the access token is invalid"))?;
    if state.revoked.contains(&state.db, jti, now * 1000).await? {
        return Err(OAuthError::InvalidToken("the access token was revoked"));
    }
    // A deleted client's tokens die with it (through the client cache, so no
    // database round-trip on the hot path).
    let client_id = c.get("client_id").and_then(Value::as_str).unwrap_or_default();
    if state.clients.get(&state.db, client_id).await?.is_none() {
        return Err(OAuthError::InvalidToken("the access token was revoked"));
    }
    Ok(c)
}

fn may_introspect(caller: &crate::storage::entities::client::Model, claims: &Value) -> bool {
    let me = caller.client_id.as_str();
    if claims.get("client_id").and_then(Value::as_str) == Some(me) {
        return true;
    }
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    auds.iter().any(|a| *a == me || crate::admin::clients::may_request(caller, a))
}

fn looks_like_jwt(t: &str) -> bool {
    t.bytes().filter(|b| *b == b'.').count() == 2
}

#[post("/introspect")]
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let (c, p) = client_and_params(&state, &req, &body).await?;
    if c.client.client.public {
        // RFC 7662 §2.1: the caller must be authorised; public clients are not.
        return Err(OAuthError::InvalidClient { basic: false });
    }
    let token = p.get("token").ok_or(OAuthError::InvalidRequest("token is required"))?;
    let inactive = || no_store(json!({ "active": false }));
    if looks_like_jwt(token) {
        return Ok(match check_access_token(&state, token).await {
            // RFC 7662 §4: only a party the token is meant for learns about
            // it — the client it was issued to, or a resource server it is
            // for (its client id in `aud`, or an `aud` it registered as its
            // resource indicator). Anyone else is told nothing.
            Ok(claims) if !may_introspect(&c.client.client, &claims) => inactive(),
            Ok(claims) => {
                let mut out = json!({ "active": true, "token_type": "Bearer" });
                for k in
                    ["scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "roles", "auth_time", "acr", "amr"]
                {
                    if let Some(v) = claims.get(k) {
                        out[k] = v.clone();
                    }
                }
                no_store(out)
            }
            Err(OAuthError::InvalidToken(_)) => inactive(),
            Err(e) => return Err(e),
        });
    }
    // A refresh token: only its own client may learn about it.
    let now_ms = state.clock.now().timestamp_millis();
    let Some(row) = refresh_token::Entity::find_by_id(grants::refresh_hash(&state, token)).one(&state.db).await? else {
        return Ok(inactive());
    };
    let Some(fam) = refresh_family::Entity::find_by_id(row.family_id.as_str()).one(&state.db).await? else {
        return Ok(inactive());
    };
    if fam.client_id != c.client.client.client_id
        || fam.revoked_ms.is_some()
        || row.rotated_ms.is_some()
        || row.expires_ms <= now_ms
    {
        return Ok(inactive());
    }
    Ok(no_store(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": row.scope,
        "client_id": fam.client_id,
        "sub": fam.user_id,
        "iss": state.settings.issuer(),
        "iat": row.created_ms / 1000,
        "exp": row.expires_ms / 1000,
    })))
}

#[post("/revoke")]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let (c, p) = client_and_params(&state, &req, &body).await?;
    let token = p.get("token").ok_or(OAuthError::InvalidRequest("token is required"))?;
    let now_ms = state.clock.now().timestamp_millis();
    if looks_like_jwt(token) {
        let ring = state.keyring();
        if let Ok(v) = jwt::verify(&ring, token, Some("at+jwt"))
            && v.claims.get("client_id").and_then(Value::as_str) == Some(c.client.client.client_id.as_str())
            && let Some(jti) = v.claims.get("jti").and_then(Value::as_str)
        {
            let exp_ms = v.claims.get("exp").and_then(Value::as_i64).unwrap_or(0) * 1000;
            grants::revoke_jti(&state, jti, exp_ms.max(now_ms)).await?;
        }
    } else if let Some(row) =
        refresh_token::Entity::find_by_id(grants::refresh_hash(&state, token)).one(&state.db).await?
    {
        // Revoking a refresh token ends its family (RFC 7009 §2.1).
        refresh_family::Entity::update_many()
            .col_expr(refresh_family::Column::RevokedMs, Expr::val(now_ms))
            .filter(refresh_family::Column::Id.eq(row.family_id.as_str()))
            .filter(refresh_family::Column::ClientId.eq(c.client.client.client_id.as_str()))
            .filter(refresh_family::Column::RevokedMs.is_null())
            .exec(&state.db)
            .await?;
    }
    // RFC 7009 §2.2: 200 whether or not the token was known.
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).finish())
}
