//! HTML pages, health endpoints, static assets and the browser-facing
//! middleware (security headers, request ids).

pub mod account;
pub mod client_info;
pub mod csrf;
pub mod headers;
pub mod health;
pub mod login;
pub mod pages;

use actix_web::web;

/// Registers this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz).service(health::readyz).service(pages::home).service(pages::stylesheet);
}
