//! The admin pages: users (search, detail, actions), clients, roles and the
//! audit log, server-rendered. They need a session authenticated with a
//! second factor and the permission of each page or action (the same
//! `policy` checks as the admin API); credential-changing actions also need a
//! recent authentication (`admin_reauth_secs`), renewed at `/admin/reauth`.
//! Every action goes through the same admin services as the CLI and the API.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use secrecy::SecretString;
use serde::Deserialize;

use super::form::StrictForm;
use super::pages::{WebError, error_page, html};
use super::{client_info, csrf};
use crate::admin::{Actor, AdminError, clients, roles, users};
use crate::policy::access::AccessPolicy;
use crate::policy::{Permission, Principal, permissions_of};
use crate::session::{self, AMR_OTP, AMR_PASSWORD, Current};
use crate::state::AppState;
use crate::storage::entities::{audit_event, user};
use crate::web::login::{see_other, stale_form};
use crate::web::reauth::Factor;

/// Rows per page on the list pages.
const PER_PAGE: u64 = 50;

/// An administrator's request: who, with which permissions, and the CSRF
/// token for the page's forms.
struct Admin {
    cur: Current,
    principal: Principal,
    csrf: String,
    set_cookie: Option<actix_web::cookie::Cookie<'static>>,
}

impl Admin {
    fn actor(&self, state: &AppState, req: &HttpRequest) -> Actor {
        Actor::for_principal(&self.principal, client_info::ip(state, req), client_info::user_agent(req))
    }

    /// The handle read services are called through (reads are not audited,
    /// so no origin).
    fn reader(&self) -> Actor {
        Actor::for_principal(&self.principal, None, None)
    }

    fn can(&self, p: Permission) -> bool {
        self.principal.authorize(p).is_ok()
    }

    /// Whether the login behind this session is recent enough for
    /// credential-changing actions.
    fn recent(&self, state: &AppState) -> bool {
        state.clock.now().timestamp() - self.cur.session.auth_time <= state.settings.admin_reauth_secs
    }

    fn page(&self, status: StatusCode, t: &impl Template) -> Result<HttpResponse, WebError> {
        let mut resp = html(status, t)?;
        resp.headers_mut().insert(
            actix_web::http::header::CACHE_CONTROL,
            actix_web::http::header::HeaderValue::from_static("no-store"),
        );
        if let Some(c) = &self.set_cookie {
            resp.add_cookie(c).map_err(WebError::internal)?;
        }
        Ok(resp)
    }
}

fn forbidden(what: &str) -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        crate::web::ui::t("admin_msg.not_allowed"),
        &crate::web::ui::tf("admin_msg.no_permission", "what", what),
    )
}

/// The administrator behind a request, or the response to send instead.
async fn admin(state: &AppState, req: &HttpRequest) -> Result<Result<Admin, HttpResponse>, WebError> {
    let Some(cur) = crate::web::cookies::current(state, req).await? else {
        return Ok(Err(crate::web::login::to_login(state, req)));
    };
    let roles = crate::storage::users::roles(&state.db, &cur.user.id).await?;
    let permissions = permissions_of(&roles);
    if permissions.is_empty() {
        return Ok(Err(error_page(
            StatusCode::FORBIDDEN,
            crate::web::ui::t("admin_msg.not_allowed"),
            crate::web::ui::t("admin_msg.no_admin_role"),
        )));
    }
    match crate::authn::mfa::administer_shortfall(state, &cur.user.id, &cur.session.amr).await? {
        None => {}
        Some(crate::policy::Assurance::PhishingResistant) => {
            return Ok(Err(error_page(
                StatusCode::FORBIDDEN,
                crate::web::ui::t("admin_msg.passkey_needed"),
                crate::web::ui::t("admin_msg.passkey_needed_text"),
            )));
        }
        Some(_) => {
            return Ok(Err(error_page(
                StatusCode::FORBIDDEN,
                crate::web::ui::t("admin_msg.mfa_needed"),
                crate::web::ui::t("admin_msg.mfa_needed_text"),
            )));
        }
    }
    let token = csrf::ensure(state, req).map_err(WebError::internal)?;
    let principal = Principal {
        subject: cur.user.id.clone(),
        is_client: false,
        permissions,
        roles,
        auth_time: Some(cur.session.auth_time),
    };
    Ok(Ok(Admin { cur, principal, csrf: token.token, set_cookie: token.set_cookie }))
}

/// `admin` for a state-changing form: also checks its CSRF token.
async fn admin_for_form(
    state: &AppState,
    req: &HttpRequest,
    csrf_field: &str,
) -> Result<Result<Admin, HttpResponse>, WebError> {
    if !csrf::verify(state, req, csrf_field) {
        return Ok(Err(stale_form()));
    }
    admin(state, req).await
}

/// `admin`, holding `perm` (else a 403 page saying it cannot `what`).
async fn admin_with(
    state: &AppState,
    req: &HttpRequest,
    perm: Permission,
    what: &str,
) -> Result<Result<Admin, HttpResponse>, WebError> {
    Ok(match admin(state, req).await? {
        Ok(a) if a.can(perm) => Ok(a),
        Ok(a) => {
            audit_refusal(state, req, &a, perm).await?;
            Err(forbidden(what))
        }
        Err(resp) => Err(resp),
    })
}

/// A refused admin-page request, in the audit log (only administrators with
/// a two-factor session get this far, so it cannot be flooded anonymously).
async fn audit_refusal(state: &AppState, req: &HttpRequest, a: &Admin, perm: Permission) -> Result<(), WebError> {
    crate::storage::record_audit(
        &state.db,
        crate::storage::AuditEvent::new("admin_pages.forbidden", "failure")
            .actor(format!("user:{}", a.cur.user.id))
            .user(&a.cur.user.id)
            .source(client_info::ip(state, req), client_info::user_agent(req))
            .detail(
                serde_json::json!({ "method": req.method().as_str(), "path": req.path(), "permission": perm.as_str() }),
            ),
        state.clock.now(),
    )
    .await?;
    Ok(())
}

macro_rules! admin_or_return {
    ($e:expr) => {
        match $e.await? {
            Ok(a) => a,
            Err(resp) => return Ok(resp),
        }
    };
}

pub async fn index() -> HttpResponse {
    see_other("/admin/users")
}

// ---- users ------------------------------------------------------------------

struct SessionRow {
    created: String,
    last_seen: String,
    ip: String,
    user_agent: String,
    amr: String,
}

fn notice_text(code: Option<&str>) -> Option<String> {
    let text = match code? {
        "disable" => crate::web::ui::t("admin_msg.n_disable"),
        "enable" => crate::web::ui::t("admin_msg.n_enable"),
        "unlock" => crate::web::ui::t("admin_msg.n_unlock"),
        "reset-mfa" => crate::web::ui::t("admin_msg.n_reset_mfa"),
        "passkey-remove" => crate::web::ui::t("admin_msg.n_passkey_remove"),
        "upstream-remove" => crate::web::ui::t("admin_msg.n_upstream_remove"),
        "set-password" => crate::web::ui::t("admin_msg.n_set_password"),
        "end-sessions" => crate::web::ui::t("admin_msg.n_end_sessions"),
        "grant" => crate::web::ui::t("admin_msg.n_grant"),
        "revoke" => crate::web::ui::t("admin_msg.n_revoke"),
        "set-attr" => crate::web::ui::t("admin_msg.n_set_attr"),
        "profile" => crate::web::ui::t("admin_msg.n_profile"),
        "reauth" => crate::web::ui::t("admin_msg.n_reauth"),
        _ => return None,
    };
    Some(text.to_owned())
}

/// To `/admin/reauth`, then back to `page`: a change that needs a recent login.
fn reauth_first(page: &str) -> HttpResponse {
    see_other(&format!("/admin/reauth?next={}", urlencode(page)))
}

fn admin_error(e: AdminError) -> WebError {
    WebError::internal(e)
}

fn fmt_ms(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Utc
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

mod audit;
mod clients_pages;
mod reauth;
mod roles_pages;
mod user_actions;
mod users_pages;

pub use audit::*;
pub use clients_pages::*;
pub use reauth::*;
pub use roles_pages::*;
pub use user_actions::*;
pub use users_pages::*;
