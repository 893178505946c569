//! The one mapping from application errors to HTTP responses. 5xx bodies are
//! fixed text: the cause goes to the log (with the request id), never to the
//! client.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("service busy")]
    Busy,
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::internal(e)
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            Self::BadRequest(m) => m.as_str(),
            Self::NotFound => "not found",
            Self::Busy => "the service is busy; try again shortly",
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "internal error"
            }
        };
        let mut resp = HttpResponse::build(status);
        if matches!(self, Self::Busy) {
            resp.insert_header(("Retry-After", "1"));
        }
        resp.content_type(ContentType::json()).body(json!({ "error": message }).to_string())
    }
}

/// An error and every cause under it, for the log: `outer: inner: root`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}
