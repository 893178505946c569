//! Server-rendered pages (askama).

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{HttpResponse, get};
use askama::Template;

use crate::error::AppError;

/// Renders a template into an HTML response.
pub fn render<T: Template>(t: &T) -> Result<HttpResponse, AppError> {
    let body = t.render().map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(body))
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    title: &'static str,
}

#[get("/")]
pub async fn home() -> Result<HttpResponse, AppError> {
    render(&Home {
        title: "Portcullis",
    })
}

const STYLESHEET: &str = include_str!("../../static/portcullis.css");

#[get("/static/portcullis.css")]
pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(3600),
        ]))
        .body(STYLESHEET)
}
