//! actix-web integration: the `Authenticated` extractor and role guards, with
//! RFC 6750 §3 answers (401 `invalid_token`, 403 `insufficient_scope`).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;

use super::{Claims, Verifier};

/// A refusal, answered per RFC 6750 §3.1.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or invalid token")]
    Unauthorized,
    #[error("insufficient {0}")]
    Forbidden(&'static str),
    #[error("verifier not configured")]
    NotConfigured,
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, header) = match self {
            Self::Unauthorized => ("invalid_token", "Bearer error=\"invalid_token\""),
            Self::Forbidden(_) => ("insufficient_scope", "Bearer error=\"insufficient_scope\""),
            Self::NotConfigured => ("server_error", "Bearer"),
        };
        HttpResponse::build(self.status_code())
            .insert_header(("WWW-Authenticate", header))
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({ "error": code }))
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// The verified claims of the request's bearer token. Needs a
/// `web::Data<Verifier>` in the app. With `introspection` configured, tokens
/// are also checked online (revocation).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl std::ops::Deref for Authenticated {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl FromRequest for Authenticated {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AuthError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<Verifier>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let verifier = verifier.ok_or(AuthError::NotConfigured)?;
            let token = token.ok_or(AuthError::Unauthorized)?;
            match verifier.verify_online(&token).await {
                Ok(c) => Ok(Authenticated(c)),
                Err(e) => {
                    tracing::debug!(error = %e, "bearer token refused");
                    Err(AuthError::Unauthorized)
                }
            }
        })
    }
}

/// A role, named at compile time: `struct Billing; impl RoleName for Billing {
/// const ROLE: &'static str = "billing"; }`.
pub trait RoleName {
    const ROLE: &'static str;
}

/// `Authenticated` whose token carries the role `R` (403 otherwise).
pub struct WithRole<R: RoleName>(pub Claims, PhantomData<R>);

impl<R: RoleName> std::ops::Deref for WithRole<R> {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl<R: RoleName + 'static> FromRequest for WithRole<R> {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AuthError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let auth = Authenticated::from_request(req, payload);
        Box::pin(async move {
            let Authenticated(claims) = auth.await?;
            claims.require_role(R::ROLE)?;
            Ok(WithRole(claims, PhantomData))
        })
    }
}
