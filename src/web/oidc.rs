//! UserInfo, HTTP side (OIDC Core §5.3, RFC 6750 §2 for where the token
//! travels). Discovery and the JWKS are `web::documents`.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::oauth::OAuthError;
use crate::oauth::dpop::{self, Sender};
use crate::state::AppState;

/// The token of the `Authorization` header and whether it came with the
/// `DPoP` scheme (RFC 9449 §7.1) rather than `Bearer` (RFC 6750 §2.1).
fn authorization(req: &HttpRequest) -> Option<(&str, bool)> {
    let v = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some((token, false)),
        "dpop" => Some((token, true)),
        _ => None,
    }
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    authorization(req).filter(|(_, dpop)| !dpop).map(|(t, _)| t)
}

pub async fn userinfo_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    if let Some((token, true)) = authorization(&req) {
        return Ok(dpop_answer(userinfo_dpop(&state, &req, token, "GET").await));
    }
    Ok(userinfo(&state, bearer(&req)).await.unwrap_or_else(|e| actix_web::ResponseError::error_response(&e)))
}

async fn userinfo(state: &AppState, token: Option<&str>) -> Result<HttpResponse, OAuthError> {
    let out = crate::oidc::userinfo(state, token, Sender::Bearer).await?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(out))
}

/// UserInfo with a DPoP-bound token: the proof (for this method, this URI
/// and this token's `ath`) is checked and spent, then the token must be
/// bound to its key.
async fn userinfo_dpop(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    method: &str,
) -> Result<HttpResponse, OAuthError> {
    let headers = super::token::dpop_headers(req);
    let proof = dpop::check(state, &headers, method, "/userinfo", Some(token), false)?
        .ok_or(OAuthError::InvalidDpopProof("a DPoP proof is required with the DPoP scheme"))?;
    // The token first (bound to this proof's key), then the proof is spent:
    // a caller without a valid bound token writes nothing.
    let claims = crate::oauth::token::check_presented(state, token, Sender::Dpop(&proof.jkt)).await?;
    dpop::record(state, &proof).await?;
    let out = crate::oidc::userinfo_of(state, claims).await?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(out))
}

/// A resource's refusal of a DPoP request (RFC 9449 §7.1): 401 with a
/// `DPoP` challenge naming the error and the algorithms we accept.
fn dpop_answer(out: Result<HttpResponse, OAuthError>) -> HttpResponse {
    match out {
        Ok(r) => r,
        Err(e @ (OAuthError::InvalidDpopProof(_) | OAuthError::InvalidToken(_))) => HttpResponse::Unauthorized()
            .insert_header(("Cache-Control", "no-store"))
            .insert_header((
                "WWW-Authenticate",
                format!(
                    "DPoP error=\"{}\", error_description=\"{}\", algs=\"{}\"",
                    e.code(),
                    e.description(),
                    dpop::ALGS.join(" ")
                ),
            ))
            .json(serde_json::json!({ "error": e.code(), "error_description": e.description() })),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

/// RFC 6750 §2.1 and §2.2: the token in the header or the form body (not both).
pub async fn userinfo_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    if let Some((token, true)) = authorization(&req) {
        return Ok(dpop_answer(userinfo_dpop(&state, &req, token, "POST").await));
    }
    let p = if body.is_empty() { Default::default() } else { crate::oauth::params(&body)? };
    let from_body = p.get("access_token").map(String::as_str);
    if bearer(&req).is_some() && from_body.is_some() {
        return Err(OAuthError::InvalidRequest("send the token in one place only"));
    }
    userinfo(&state, bearer(&req).or(from_body)).await
}
