//! Dynamic client registration, HTTP side: `POST /register` (RFC 7591) and
//! the registration's management at `/register/{client_id}` (RFC 7592,
//! opened by its registration access token). JSON in and out, errors as
//! RFC 7591 §3.2.2 `{"error", "error_description"}`; the rules are
//! `admin::clients::registration`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::admin::clients::registration::{self, Metadata, RegistrationError};
use crate::state::AppState;

const MAX_BODY: usize = 16 * 1024;

fn bearer(req: &HttpRequest) -> Option<&str> {
    let v = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty() && t.len() <= 256)
}

fn refusal(e: &RegistrationError) -> HttpResponse {
    if let RegistrationError::Admin(inner) = e
        && e.code() == "server_error"
    {
        tracing::error!(error = %inner, "client registration failed");
    }
    let status = match e {
        RegistrationError::NotAllowed(_) | RegistrationError::InvalidToken => StatusCode::UNAUTHORIZED,
        RegistrationError::TooMany => StatusCode::TOO_MANY_REQUESTS,
        _ if e.code() == "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut r = HttpResponse::build(status);
    r.insert_header(("Cache-Control", "no-store"));
    if status == StatusCode::UNAUTHORIZED {
        r.insert_header(("WWW-Authenticate", format!("Bearer error=\"invalid_token\", error_description=\"{e}\"")));
    }
    r.json(json!({ "error": e.code(), "error_description": e.description() }))
}

fn metadata(body: &[u8]) -> Result<Metadata, RegistrationError> {
    if body.len() > MAX_BODY {
        return Err(RegistrationError::InvalidClientMetadata("the registration is too large".into()));
    }
    serde_json::from_slice(body).map_err(|_| {
        RegistrationError::InvalidClientMetadata("the body must be a JSON object of client metadata".into())
    })
}

fn answer(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status).insert_header(("Cache-Control", "no-store")).json(body)
}

/// RFC 7591 §3.1.
pub async fn register(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let origin = super::client_info::origin(&state, &req);
    let out = match metadata(&body) {
        Ok(m) => registration::register(&state, bearer(&req), origin.ip.clone(), origin.user_agent.clone(), &m).await,
        Err(e) => Err(e),
    };
    match out {
        Ok(r) => {
            let mut body = registration::metadata(&state, &r.client);
            body["registration_access_token"] = r.registration_access_token.into();
            if let Some(s) = r.secret {
                body["client_secret"] = s.into();
                body["client_secret_expires_at"] = 0.into();
            }
            answer(StatusCode::CREATED, body)
        }
        Err(e) => refusal(&e),
    }
}

/// RFC 7592 §2.1.
pub async fn read(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let Some(rat) = bearer(&req) else { return refusal(&RegistrationError::InvalidToken) };
    match registration::read(&state, &path, rat).await {
        Ok(c) => answer(StatusCode::OK, registration::metadata(&state, &c)),
        Err(e) => refusal(&e),
    }
}

/// RFC 7592 §2.2.
pub async fn replace(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let Some(rat) = bearer(&req) else { return refusal(&RegistrationError::InvalidToken) };
    let origin = super::client_info::origin(&state, &req);
    let out = match metadata(&body) {
        Ok(m) => registration::replace(&state, &path, rat, origin.ip.clone(), origin.user_agent.clone(), &m).await,
        Err(e) => Err(e),
    };
    match out {
        Ok(c) => answer(StatusCode::OK, registration::metadata(&state, &c)),
        Err(e) => refusal(&e),
    }
}

/// RFC 7592 §2.3.
pub async fn delete(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let Some(rat) = bearer(&req) else { return refusal(&RegistrationError::InvalidToken) };
    let origin = super::client_info::origin(&state, &req);
    match registration::delete(&state, &path, rat, origin.ip.clone(), origin.user_agent.clone()).await {
        Ok(()) => HttpResponse::NoContent().insert_header(("Cache-Control", "no-store")).finish(),
        Err(e) => refusal(&e),
    }
}
