//! Discovery, JWKS and UserInfo, HTTP side (OIDC Discovery 1.0 §3, OIDC Core
//! §5.3, RFC 6750 §2 for where the token travels).

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::oauth::OAuthError;
use crate::state::AppState;

/// The pre-serialised discovery document.
#[derive(Clone)]
pub struct Discovery(pub web::Bytes);

pub async fn discovery(doc: web::Data<Discovery>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(3600)]))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .body(doc.0.clone())
}

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let ring = state.keyring();
    HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        // Short: relying parties must see a rotation soon.
        .insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(300)]))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .body(ring.jwks())
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let v = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim)
}

pub async fn userinfo_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, OAuthError> {
    userinfo(&state, bearer(&req)).await
}

async fn userinfo(state: &AppState, token: Option<&str>) -> Result<HttpResponse, OAuthError> {
    let out = crate::oidc::userinfo(state, token).await?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(out))
}

/// RFC 6750 §2.1 and §2.2: the token in the header or the form body (not both).
pub async fn userinfo_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let p = if body.is_empty() { Default::default() } else { crate::oauth::params(&body)? };
    let from_body = p.get("access_token").map(String::as_str);
    if bearer(&req).is_some() && from_body.is_some() {
        return Err(OAuthError::InvalidRequest("send the token in one place only"));
    }
    userinfo(&state, bearer(&req).or(from_body)).await
}
