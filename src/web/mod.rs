//! HTML pages, health endpoints, static assets and the browser-facing
//! middleware (security headers, request ids).

pub mod account;
pub mod admin;
pub mod client_info;
pub mod csrf;
pub mod form;
pub mod headers;
pub mod health;
pub mod limits;
pub mod login;
pub mod metrics;
pub mod mfa;
pub mod pages;

use actix_web::web;

/// Registers this module's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(metrics::metrics)
        .service(health::healthz)
        .service(health::readyz)
        .service(pages::home)
        .service(pages::stylesheet)
        .service(login::login_get)
        .service(login::login_post)
        .service(login::logout_get)
        .service(login::logout_post)
        .service(account::account)
        .service(account::change_password)
        .service(account::update_profile)
        .service(account::end_session)
        .service(account::revoke_consent)
        .service(mfa::mfa_get)
        .service(mfa::mfa_post)
        .service(mfa::login_enrol_get)
        .service(mfa::login_enrol_post)
        .service(mfa::account_enrol_get)
        .service(mfa::account_enrol_post)
        .service(mfa::disable)
        .service(mfa::regenerate)
        .service(admin::index)
        .service(admin::users_page)
        .service(admin::user_page)
        .service(admin::user_action)
        .service(admin::reauth_get)
        .service(admin::reauth_post)
        .service(admin::clients_page)
        .service(admin::client_page)
        .service(admin::client_policy)
        .service(admin::roles_page)
        .service(admin::role_create)
        .service(admin::audit_page);
}
