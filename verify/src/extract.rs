//! actix-web integration: the `Authenticated` extractor and role guards, with
//! RFC 6750 §3 answers (401 `invalid_token`, 403 `insufficient_scope`).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;

use super::{Claims, Verifier, VerifyError};

/// A refusal, answered per RFC 6750 §3.1: the code in `WWW-Authenticate`
/// and the JSON body, with a fixed `error_description` saying why.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token, a token that does not verify (expired, another audience, a
    /// bad signature…), or a revoked one: 401.
    #[error("{0}")]
    Unauthorized(VerifyError),
    /// A valid token without the role or attribute the route needs: 403.
    #[error("insufficient {0}")]
    Forbidden(&'static str),
    /// The provider could not be asked (keys or introspection): 503 — the
    /// token may well be good, so the caller should retry, not re-authenticate.
    #[error("verifier not configured")]
    NotConfigured,
    /// A refusal of a service that publishes resource metadata: the answer
    /// of the inner error, its challenge naming the metadata URL (RFC 9728 §5.1).
    #[error("{0}")]
    WithMetadata(Box<AuthError>, String),
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::WithMetadata(inner, _) => inner.status_code(),
            Self::Unauthorized(VerifyError::Provider(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::WithMetadata(inner, url) = self {
            let mut r = inner.error_response();
            let name = actix_web::http::header::WWW_AUTHENTICATE;
            // The parameter joins the first challenge (`Bearer`, or `DPoP`
            // for a proof's failure), whatever follows it.
            let challenge = match r.headers().get(&name).and_then(|v| v.to_str().ok()) {
                Some(c) => match c.strip_prefix("Bearer, ") {
                    Some(rest) => format!("Bearer resource_metadata=\"{url}\", {rest}"),
                    None => format!("{c}, resource_metadata=\"{url}\""),
                },
                None => format!("Bearer resource_metadata=\"{url}\""),
            };
            if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(name, v);
            }
            return r;
        }
        let code = match self {
            Self::Unauthorized(VerifyError::Provider(_)) => "temporarily_unavailable",
            Self::Unauthorized(VerifyError::Dpop(_)) => "invalid_dpop_proof",
            Self::Unauthorized(_) => "invalid_token",
            Self::Forbidden(_) => "insufficient_scope",
            Self::NotConfigured | Self::WithMetadata(..) => "server_error",
        };
        let description = match self {
            Self::Unauthorized(e) => e.description(),
            Self::Forbidden("attribute") => "the token lacks an attribute this resource requires",
            Self::Forbidden(_) => "the token lacks a role this resource requires",
            Self::NotConfigured | Self::WithMetadata(..) => "the service's token verifier is not configured",
        };
        let mut r = HttpResponse::build(self.status_code());
        r.insert_header(("Cache-Control", "no-store"));
        // RFC 6750 §3.1: a request without any token gets a challenge without
        // an error code; the descriptions are fixed ASCII without quotes.
        match self {
            Self::Unauthorized(VerifyError::Missing) => {
                r.insert_header(("WWW-Authenticate", format!("Bearer, DPoP algs=\"{}\"", crate::dpop::ALGS.join(" "))));
            }
            Self::Unauthorized(VerifyError::Dpop(_)) => {
                r.insert_header((
                    "WWW-Authenticate",
                    format!(
                        "DPoP error=\"{code}\", error_description=\"{description}\", algs=\"{}\"",
                        crate::dpop::ALGS.join(" ")
                    ),
                ));
            }
            Self::Unauthorized(VerifyError::Provider(_)) | Self::NotConfigured => {}
            _ => {
                r.insert_header((
                    "WWW-Authenticate",
                    format!("Bearer error=\"{code}\", error_description=\"{description}\""),
                ));
            }
        }
        r.json(json!({ "error": code, "error_description": description }))
    }
}

/// What a request presents: its `Authorization` and `DPoP` headers, method
/// and absolute URI — the configured public URL, else the `Host` header and
/// whether this server itself speaks TLS. Never `Forwarded` or
/// `X-Forwarded-*`: a client could name another service's host in them and
/// replay a proof made for it. Behind a proxy, configure `public_url`.
struct Presented {
    authorization: Option<String>,
    dpop: Vec<String>,
    method: String,
    uri: String,
}

fn presented(req: &HttpRequest, verifier: Option<&Verifier>) -> Presented {
    let header = |name| req.headers().get_all(name).filter_map(|v| v.to_str().ok().map(str::to_owned));
    let authorization = header(actix_web::http::header::AUTHORIZATION).next();
    // The URI a proof must name matters only to the DPoP scheme: a bearer
    // request (the common case) builds none.
    let dpop = authorization.as_deref().is_some_and(|a| a.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("dpop ")));
    let uri = if dpop { format!("{}{}", crate::metadata::base_url(req, verifier), req.path()) } else { String::new() };
    Presented {
        authorization,
        dpop: if dpop {
            header(actix_web::http::header::HeaderName::from_static("dpop")).collect()
        } else {
            Vec::new()
        },
        method: req.method().as_str().to_owned(),
        uri,
    }
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
        let p = presented(req, verifier.as_ref().map(|v| v.get_ref()));
        let metadata = crate::metadata::url_for(req, verifier.as_ref().map(|v| v.get_ref()));
        Box::pin(async move {
            let verifier = verifier.ok_or(AuthError::NotConfigured)?;
            let dpop: Vec<&str> = p.dpop.iter().map(String::as_str).collect();
            let refused = match verifier.verify_presented(p.authorization.as_deref(), &dpop, &p.method, &p.uri).await {
                Ok(c) => return Ok(Authenticated(c)),
                Err(e @ VerifyError::Provider(_)) => {
                    tracing::warn!(reason = %e, "cannot verify a bearer token: the provider is unreachable");
                    return Err(AuthError::Unauthorized(e));
                }
                Err(e) => {
                    tracing::info!(reason = %e, "bearer token refused");
                    AuthError::Unauthorized(e)
                }
            };
            // RFC 9728 §5.1: the way to the authorization server.
            Err(match metadata {
                Some(url) => AuthError::WithMetadata(Box::new(refused), url),
                None => refused,
            })
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
            if let Err(e) = claims.require_role(R::ROLE) {
                tracing::info!(sub = %claims.sub, role = R::ROLE, "bearer token refused: the role is missing");
                return Err(e);
            }
            Ok(WithRole(claims, PhantomData))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_outage_is_503_to_retry_not_401_to_reauthenticate() {
        let r = AuthError::Unauthorized(VerifyError::Provider("connection refused".into())).error_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().get("www-authenticate").is_none());
        let r = AuthError::Unauthorized(VerifyError::Expired).error_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()),
            Some("Bearer error=\"invalid_token\", error_description=\"the token has expired\"")
        );
    }
}
