//! Server-rendered pages (askama) and their error type.

use actix_web::http::StatusCode;
use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::error::AppError;

/// Renders a template with a status.
pub fn html<T: Template>(status: StatusCode, t: &T) -> Result<HttpResponse, WebError> {
    let body = t.render().map_err(WebError::internal)?;
    Ok(HttpResponse::build(status).content_type(ContentType::html()).body(body))
}

#[derive(Template)]
#[template(path = "error/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// A plain error page; falls back to text if rendering itself fails.
/// Whether the caller is a browser asking for a page (its `Accept` names
/// `text/html`), not an API client; the admin API always answers JSON.
pub fn wants_html(req: &actix_web::HttpRequest) -> bool {
    !req.path().starts_with("/admin/api/")
        && req
            .headers()
            .get(actix_web::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    match (ErrorPage { title, message }).render() {
        Ok(body) => HttpResponse::build(status).content_type(ContentType::html()).body(body),
        Err(_) => HttpResponse::build(status).content_type(ContentType::plaintext()).body(message.to_owned()),
    }
}

/// An error in a browser-facing handler: an HTML page with a fixed message;
/// the cause goes to the log only.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct WebError(#[from] pub AppError);

impl WebError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self(AppError::internal(e))
    }
}

impl From<sea_orm::DbErr> for WebError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self(e.into())
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (title, message) = match &self.0 {
            AppError::NotFound => (crate::web::ui::t("error.not_found"), crate::web::ui::t("error.not_found_text")),
            AppError::BadRequest(m) => ("Bad request", m.as_str()),
            AppError::Busy => ("Too busy", "The service is busy. Please try again in a moment."),
            AppError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                ("Something went wrong", "The request could not be completed. Please try again later.")
            }
        };
        error_page(status, title, message)
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    title: &'static str,
}

pub async fn home() -> Result<HttpResponse, WebError> {
    html(StatusCode::OK, &Home { title: crate::web::ui::t("home.title") })
}

const STYLESHEET: &str = include_str!("static/portcullis.css");

const PASSKEY_SCRIPT: &str = include_str!("static/passkey.js");

/// The one script of the pages: WebAuthn ceremonies (`web::passkey`).
pub async fn passkey_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(3600)]))
        .body(PASSKEY_SCRIPT)
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(3600)]))
        .body(STYLESHEET)
}
