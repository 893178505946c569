//! The protocol surface's one error mapping: an `OAuthError` as the RFCs
//! want it on the wire (RFC 6749 §5.2, RFC 6750 §3).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::oauth::OAuthError;

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidClient { .. } | Self::InvalidToken(_) | Self::MissingToken => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// RFC 6749 §5.2: JSON body, `Cache-Control: no-store`; 401 with
    /// `WWW-Authenticate` when the client used HTTP Basic; RFC 6750 §3 for
    /// bearer-token errors.
    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        r.insert_header(("Cache-Control", "no-store")).insert_header(("Pragma", "no-cache"));
        match self {
            Self::TooManyRequests => {
                r.insert_header(("Retry-After", "60"));
            }
            Self::InvalidClient { basic: true } => {
                r.insert_header(("WWW-Authenticate", "Basic realm=\"portcullis\", charset=\"UTF-8\""));
            }
            Self::MissingToken => {
                // No error code anywhere (RFC 6750 §3.1); a readable body.
                r.insert_header(("WWW-Authenticate", "Bearer realm=\"portcullis\""));
                return r.json(json!({ "detail": self.description() }));
            }
            Self::InvalidToken(_) | Self::InsufficientScope(_) => {
                r.insert_header((
                    "WWW-Authenticate",
                    format!("Bearer error=\"{}\", error_description=\"{}\"", self.code(), self.description()),
                ));
            }
            _ => {}
        }
        r.json(json!({ "error": self.code(), "error_description": self.description() }))
    }
}
