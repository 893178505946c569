//! The route tables of the HTTP edge, one per surface: every path, its
//! methods and its handler in one place. Guards are visible at the handler:
//! the account pages' state-changing forms take a `form::SignedInForm`
//! (session, then CSRF token, before the handler runs), the other page
//! handlers start from the session (`cookies::current`) and, for
//! `/admin/…`, from `admin::admin*` (each action on a user is its own route,
//! through `admin::user_actions::act`); introspection, revocation and device
//! authorization take a `token::ClientCaller` argument (the client
//! authenticated), the token and PAR endpoints authenticate the client after
//! the DPoP proof; the admin API's handlers take `Caller<P>` (permission P)
//! and its table is in `admin_api` (its paths are single-sourced in the
//! attributes the OpenAPI document is generated from). A path answered for another
//! method is a 405 with a body; an unknown path is the app's 404.

use actix_web::Resource;
use actix_web::web::{ServiceConfig, get, post, resource, to};
use actix_web::{HttpResponse, http::StatusCode};

use super::documents::Document;

use super::{
    account, admin, authorize, device, documents, health, links, login, logout, metrics, mfa, oidc, pages, passkey,
    passkey_manage, register, token, upstream,
};

/// Browser pages: login, second factor, account, admin pages, health, metrics.
pub fn pages(cfg: &mut ServiceConfig) {
    cfg.service(at("/").route(get().to(pages::home)))
        .service(at("/static/portcullis.css").route(get().to(pages::stylesheet)))
        .service(at("/static/passkey.js").route(get().to(pages::passkey_script)))
        .service(at("/branding/logo").route(get().to(crate::web::ui::logo)))
        .service(at("/branding.css").route(get().to(crate::web::ui::stylesheet)))
        .service(at("/healthz").route(get().to(health::healthz)))
        .service(at("/readyz").route(get().to(health::readyz)))
        .service(at("/metrics").route(get().to(metrics::metrics)))
        .service(at("/login").route(get().to(login::login_get)).route(post().to(login::login_post)))
        .service(at("/logout").route(get().to(login::logout_get)).route(post().to(login::logout_post)))
        .service(at("/login/mfa").route(get().to(mfa::mfa_get)).route(post().to(mfa::mfa_post)))
        .service(at("/login/enrol").route(get().to(mfa::login_enrol_get)).route(post().to(mfa::login_enrol_post)))
        .service(at("/account/mfa").route(get().to(mfa::account_enrol_get)).route(post().to(mfa::account_enrol_post)))
        .service(at("/account/mfa/disable").route(post().to(mfa::disable)))
        .service(at("/account/mfa/recovery").route(post().to(mfa::regenerate)))
        .service(at("/login/passkey/start").route(post().to(passkey::passwordless_start)))
        .service(at("/login/passkey/finish").route(post().to(passkey::passwordless_finish)))
        .service(at("/login/mfa/passkey/start").route(post().to(passkey::second_factor_start)))
        .service(at("/login/mfa/passkey/finish").route(post().to(passkey::second_factor_finish)))
        .service(at("/login/enrol/passkey/start").route(post().to(passkey::enrol_start)))
        .service(at("/login/enrol/passkey/finish").route(post().to(passkey::enrol_finish)))
        .service(at("/account/passkeys/start").route(post().to(passkey::account_start)))
        .service(at("/account/passkeys/finish").route(post().to(passkey::account_finish)))
        .service(at("/account/passkeys/rename").route(post().to(passkey_manage::rename)))
        .service(at("/account/passkeys/remove").route(post().to(passkey_manage::remove)))
        .service(at("/invitation").route(get().to(links::invitation_get)).route(post().to(links::invitation_post)))
        .service(at("/password/reset").route(get().to(links::reset_get)).route(post().to(links::reset_post)))
        .service(at("/forgot").route(get().to(links::forgot_get)).route(post().to(links::forgot_post)))
        .service(
            at("/email/verify").route(get().to(links::verify_email_get)).route(post().to(links::verify_email_post)),
        )
        .service(at("/signup").route(get().to(links::signup_get)).route(post().to(links::signup_post)))
        .service(
            at("/signup/confirm")
                .route(get().to(links::signup_confirm_get))
                .route(post().to(links::signup_confirm_post)),
        )
        .service(at("/login/upstream/{id}").route(get().to(upstream::start)))
        .service(at("/login/upstream/{id}/callback").route(get().to(upstream::callback)))
        .service(at("/account/upstream/{id}/link").route(post().to(upstream::link)))
        .service(at("/account/upstream/{id}/unlink").route(post().to(upstream::unlink)))
        .service(at("/account/email").route(post().to(account::change_email)))
        .service(at("/account/email/verify").route(post().to(account::send_verification)))
        .service(at("/account").route(get().to(account::account)))
        .service(at("/account/password").route(post().to(account::change_password)))
        .service(at("/account/sessions/end").route(post().to(account::end_session)))
        .service(at("/account/consents/revoke").route(post().to(account::revoke_consent)))
        .service(at("/account/profile").route(post().to(account::update_profile)))
        .service(at("/admin").route(get().to(admin::index)))
        .service(at("/admin/users").route(get().to(admin::users_page)))
        .service(at("/admin/users/{username}").route(get().to(admin::user_page)))
        // One route per action on a user (web::admin::user_actions).
        .service(at("/admin/users/{username}/disable").route(post().to(admin::user_disable)))
        .service(at("/admin/users/{username}/enable").route(post().to(admin::user_enable)))
        .service(at("/admin/users/{username}/profile").route(post().to(admin::user_profile)))
        .service(at("/admin/users/{username}/set-attr").route(post().to(admin::user_set_attr)))
        .service(at("/admin/users/{username}/grant").route(post().to(admin::user_grant)))
        .service(at("/admin/users/{username}/revoke").route(post().to(admin::user_revoke)))
        .service(at("/admin/users/{username}/unlock").route(post().to(admin::user_unlock)))
        .service(at("/admin/users/{username}/reset-mfa").route(post().to(admin::user_reset_mfa)))
        .service(at("/admin/users/{username}/set-password").route(post().to(admin::user_set_password)))
        .service(at("/admin/users/{username}/passkey-remove").route(post().to(admin::user_passkey_remove)))
        .service(at("/admin/users/{username}/upstream-remove").route(post().to(admin::user_upstream_remove)))
        .service(at("/admin/users/{username}/invite").route(post().to(admin::user_invite)))
        .service(at("/admin/users/{username}/reset-link").route(post().to(admin::user_reset_link)))
        .service(at("/admin/users/{username}/end-sessions").route(post().to(admin::user_end_sessions)))
        .service(at("/admin/users/{username}/delete").route(post().to(admin::user_delete)))
        .service(at("/admin/reauth").route(get().to(admin::reauth_get)).route(post().to(admin::reauth_post)))
        .service(at("/admin/clients").route(get().to(admin::clients_page)))
        // Before `{client_id}`: a client may not be named so, but the path must not reach its page.
        .service(at("/admin/clients/registration-token").route(post().to(admin::registration_token)))
        .service(at("/admin/clients/{client_id}").route(get().to(admin::client_page)))
        .service(at("/admin/clients/{client_id}/policy").route(post().to(admin::client_policy)))
        .service(at("/admin/clients/{client_id}/settings").route(post().to(admin::client_settings)))
        .service(at("/admin/clients/{client_id}/secret").route(post().to(admin::client_secret)))
        .service(at("/admin/clients/{client_id}/delete").route(post().to(admin::client_delete)))
        .service(at("/admin/roles").route(get().to(admin::roles_page)).route(post().to(admin::role_create)))
        .service(at("/admin/audit").route(get().to(admin::audit_page)))
        .service(at("/admin/audit/export").route(get().to(admin::audit_export)));
}

/// OAuth 2.0 / OpenID Connect endpoints. The router tries paths in order
/// (a path with a `{parameter}` costs a pattern match), so the server's
/// busiest paths come first and parameterised ones last; `startup` mounts
/// this table before the pages.
pub fn protocol(cfg: &mut ServiceConfig) {
    cfg.service(at("/token").route(post().to(token::token_endpoint)))
        .service(at("/introspect").route(post().to(token::introspect)))
        .service(at("/revoke").route(post().to(token::revoke)))
        .service(at("/userinfo").route(get().to(oidc::userinfo_get)).route(post().to(oidc::userinfo_post)))
        .service(at("/authorize").route(get().to(authorize::authorize_get)).route(post().to(authorize::authorize_post)))
        .service(at("/authorize/continue").route(get().to(authorize::resume)))
        .service(at("/consent").route(get().to(authorize::consent_get)).route(post().to(authorize::consent_post)))
        .service(at("/par").route(post().to(token::par)))
        .service(at("/device_authorization").route(post().to(device::device_authorization)))
        .service(at("/register").route(post().to(register::register)))
        .service(at("/device").route(get().to(device::device_get)).route(post().to(device::device_post)))
        .service(at("/device/qr").route(get().to(device::device_qr)))
        // The fixed documents: a GET is answered by `documents::serve` before
        // the middleware stack (the same `documents::answer`); listed here
        // for the table and for other methods' 405. RFC 8414 metadata is the
        // discovery document's bytes (one source for both).
        .service(at(Document::Discovery.path()).route(get().to(documents::discovery)))
        .service(at(Document::AuthorizationServer.path()).route(get().to(documents::discovery)))
        .service(at(Document::Jwks.path()).route(get().to(documents::jwks)))
        .service(at("/end_session").route(get().to(logout::end_session_get)).route(post().to(logout::end_session_post)))
        .service(
            at("/register/{client_id}")
                .route(get().to(register::read))
                .route(actix_web::web::put().to(register::replace))
                .route(actix_web::web::delete().to(register::delete)),
        );
}

/// A path of the table: its routes, and a 405 (with a body) for other methods.
fn at(path: &str) -> Resource {
    resource(path).default_service(to(method_not_allowed))
}

/// The body of a 405: the path exists, the method does not.
pub async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    if super::pages::wants_html(&req) {
        let msg = "This page cannot be used that way.";
        return super::pages::error_page(StatusCode::METHOD_NOT_ALLOWED, "Not allowed", msg);
    }
    HttpResponse::build(StatusCode::METHOD_NOT_ALLOWED).json(serde_json::json!({ "error": "method not allowed" }))
}
