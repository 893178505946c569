//! "Sign in with …": the browser's way to and back from an upstream
//! identity provider, and linking one on /account. The rules are in
//! `crate::federation`; after the provider, the login goes on exactly as
//! after a password (`authn::mfa::next_step`).

use actix_web::cookie::SameSite;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::client_info;
use super::cookies::{build_cookie, removal_cookie};
use super::form::SignedInForm;
use super::login::{Flow, challenge_redirect, finish_login, login_form, required_for_login, see_other, source_of};
use super::pages::{WebError, error_page};
use super::reauth::{Reverified, reverify_password};
use crate::authn::login::ChallengePurpose;
use crate::authn::mfa::{self, NextStep};
use crate::federation::{self, Callback, FedError};
use crate::policy::Assurance;
use crate::session::{AMR_FED, AMR_MFA};
use crate::state::AppState;
use crate::web::ui::{t, tf};

/// The cookie that binds a sign-in sent upstream to this browser.
const BINDING_COOKIE: &str = "portcullis_upstream";

#[derive(Deserialize)]
pub struct StartQuery {
    request: Option<String>,
}

fn binding_cookie(state: &AppState, value: String) -> actix_web::cookie::Cookie<'static> {
    // Lax: it must come back on the provider's top-level redirect.
    let mut c = build_cookie(state, BINDING_COOKIE, value, SameSite::Lax);
    c.set_max_age(actix_web::cookie::time::Duration::minutes(10));
    c
}

fn unreachable(name: &str) -> HttpResponse {
    error_page(StatusCode::BAD_GATEWAY, &tf("upstream.unreachable_title", "name", name), t("upstream.unreachable"))
}

fn to_provider(state: &AppState, started: federation::Started) -> Result<HttpResponse, WebError> {
    let mut resp = see_other(&started.url);
    resp.add_cookie(&binding_cookie(state, started.browser_binding)).map_err(WebError::internal)?;
    Ok(resp)
}

/// `GET /login/upstream/{id}`: off to the provider (for the authorization
/// request `request`, if any).
pub async fn start(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<StartQuery>,
) -> Result<HttpResponse, WebError> {
    let Ok(p) = federation::provider(&state, &path) else {
        return Ok(error_page(StatusCode::NOT_FOUND, t("error.not_found"), t("error.not_found_text")));
    };
    // Each start stores a row: counted per address like a login attempt.
    if let Some(ip) = client_info::ip(&state, &req) {
        let now = state.clock.now().timestamp_millis();
        let n = crate::authn::throttle::admit_ip_for(&state.db, &state.settings, "upstream", &ip, now).await?;
        if n > state.settings.login_ip_max_attempts {
            return Ok(error_page(StatusCode::TOO_MANY_REQUESTS, t("login.title"), t("links.too_many")));
        }
    }
    let return_to = match &q.request {
        Some(h) => match Flow::load(&state, h).await? {
            Some(_) => Some(crate::oauth::authorize::resume_path(h)),
            None => return Ok(error_page(StatusCode::BAD_REQUEST, t("login.expired_title"), t("login.expired"))),
        },
        None => None,
    };
    match federation::begin(&state, &p.id, return_to, None).await {
        Ok(started) => to_provider(&state, started),
        Err(e) => {
            tracing::warn!(provider = %p.id, error = %e, "upstream sign-in could not start");
            Ok(unreachable(&p.name))
        }
    }
}

/// `GET /login/upstream/{id}/callback`: the provider's answer.
pub async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<Callback>,
) -> Result<HttpResponse, WebError> {
    let Ok(p) = federation::provider(&state, &path) else {
        return Ok(error_page(StatusCode::NOT_FOUND, t("error.not_found"), t("error.not_found_text")));
    };
    // Every answer is audited: counted per address like a login attempt.
    if let Some(ip) = client_info::ip(&state, &req) {
        let now = state.clock.now().timestamp_millis();
        let n = crate::authn::throttle::admit_ip_for(&state.db, &state.settings, "upstream-cb", &ip, now).await?;
        if n > state.settings.login_ip_max_attempts {
            return Ok(error_page(StatusCode::TOO_MANY_REQUESTS, t("login.title"), t("links.too_many")));
        }
    }
    let binding = req.cookie(&crate::web::cookies::cookie_name(&state, BINDING_COOKIE)).map(|c| c.value().to_owned());
    let session = crate::web::cookies::current(&state, &req).await?;
    let browser = federation::Browser {
        binding: binding.as_deref(),
        session_id: session.as_ref().map(|s| s.session.id.as_str()),
    };
    let origin = client_info::origin(&state, &req);
    let result = federation::complete(&state, &p.id, q.into_inner(), browser, origin).await;
    let mut resp = match result {
        Ok(r) if r.linked => {
            tell_linked(&state, &r.user_id, &p.name).await;
            see_other("/account?m=upstream_linked")
        }
        Ok(r) => continue_login(&state, &req, r).await?,
        Err(FedError::Unknown(_)) => error_page(StatusCode::NOT_FOUND, t("error.not_found"), t("error.not_found_text")),
        Err(FedError::NotLinked | FedError::LinkedElsewhere) => {
            let name = federation::provider(&state, &path).map(|p| p.name.clone()).unwrap_or_default();
            error_page(StatusCode::FORBIDDEN, t("upstream.not_linked_title"), &tf("upstream.not_linked", "name", name))
        }
        Err(FedError::Db(e)) => return Err(e.into()),
        Err(e) => {
            tracing::info!(provider = %path.as_str(), error = %e, "upstream sign-in refused");
            let mut page = login_form(&state, &req, true, None, None)?;
            *page.status_mut() = StatusCode::OK;
            page
        }
    };
    resp.add_cookie(&removal_cookie(&state, BINDING_COOKIE)).map_err(WebError::internal)?;
    Ok(resp)
}

/// After the provider: the same decision as after a password — finish, or
/// prove the account's own second factor, or set one up — with the
/// provider's sign-in as the first factor (`fed`).
async fn continue_login(
    state: &AppState,
    req: &HttpRequest,
    r: federation::Resolved,
) -> Result<HttpResponse, WebError> {
    let strongest = mfa::strongest_factor(&state.db, &r.user_id).await?;
    let required = required_for_login(state, r.return_to.as_deref(), &r.user_id).await?;
    let first = Some(AMR_FED.to_owned());
    match mfa::next_step(r.assurance, strongest, required) {
        NextStep::Finish => {
            let amr: &[&str] = if r.assurance >= Assurance::MultiFactor { &[AMR_FED, AMR_MFA] } else { &[AMR_FED] };
            let source = source_of(state, req);
            let done =
                finish_login(state, req, &r.user_id, amr, r.assurance.acr(), &source, r.return_to.as_deref()).await?;
            let to = done.destination(r.return_to.as_deref());
            Ok(done.redirect(&to))
        }
        NextStep::Prove => {
            challenge_redirect(state, &r.user_id, ChallengePurpose::Mfa, false, r.return_to, first, "/login/mfa").await
        }
        NextStep::Enrol => {
            challenge_redirect(state, &r.user_id, ChallengePurpose::Enrol, false, r.return_to, first, "/login/enrol")
                .await
        }
    }
}

/// Tells the person by mail (a proved address only) that a provider was
/// linked to their account: a way in that they did not add should be noticed.
async fn tell_linked(state: &AppState, user_id: &str, provider: &str) {
    use sea_orm::EntityTrait;
    let Ok(Some(u)) = crate::storage::entities::user::Entity::find_by_id(user_id).one(&state.db).await else {
        return;
    };
    let Some(to) = u.email.filter(|_| u.email_verified) else { return };
    let product = &state.settings.product_name;
    let mail = crate::mail::Mail {
        to,
        subject: format!("{provider} was linked to your {product} account"),
        paragraphs: vec![
            format!("{provider} can now be used to sign in to your {product} account ({}).", u.username),
            "If this was not you, unlink it on your account page, change your password and contact your administrator."
                .to_owned(),
        ],
        action: None,
        footnote: None,
    };
    if let Err(e) = crate::lifecycle::deliver(state, Some(user_id), &mail).await {
        tracing::info!(error = %e, "link notice not sent");
    }
}

#[derive(Deserialize)]
pub struct LinkForm {
    csrf: String,
    current_password: SecretString,
}

/// `POST /account/upstream/{id}/link`: the signed-in person, after their
/// password again, signs in at the provider; that identity is then theirs.
pub async fn link(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    signed: SignedInForm<LinkForm>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, form } = signed;
    let Ok(p) = federation::provider(&state, &path) else {
        return Ok(error_page(StatusCode::NOT_FOUND, t("error.not_found"), t("error.not_found_text")));
    };
    match reverify_password(&state, &req, &cur, &form.current_password, "user.upstream_linked").await? {
        Reverified::Yes => {}
        Reverified::No(msg) => {
            return super::account::render(&state, &req, &cur, StatusCode::OK, None, Some(msg.to_owned())).await;
        }
    }
    // A linked provider is a way in (with `trust_mfa`, a two-step one): it is
    // added only by a recent sign-in as strong as the account's strongest
    // factor, as any other factor is — not by a borrowed session and a password.
    if !super::reauth::may_change_factors(&state, &cur).await? {
        let msg = t("upstream.sign_in_again").to_owned();
        return super::account::render(&state, &req, &cur, StatusCode::OK, None, Some(msg)).await;
    }
    let link = federation::LinkFor { user_id: cur.user.id.clone(), session_id: cur.session.id.clone() };
    match federation::begin(&state, &p.id, None, Some(link)).await {
        Ok(started) => to_provider(&state, started),
        Err(e) => {
            tracing::warn!(provider = %p.id, error = %e, "upstream link could not start");
            Ok(unreachable(&p.name))
        }
    }
}

#[derive(Deserialize)]
pub struct UnlinkForm {
    csrf: String,
}

/// `POST /account/upstream/{id}/unlink`: unless it is the account's only way in.
pub async fn unlink(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    signed: SignedInForm<UnlinkForm>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, .. } = signed;
    if federation::unlink(&state, &cur.user.id, &path, client_info::origin(&state, &req)).await? {
        Ok(see_other("/account?m=upstream_unlinked"))
    } else {
        let msg = t("upstream.only_way_in").to_owned();
        super::account::render(&state, &req, &cur, StatusCode::BAD_REQUEST, None, Some(msg)).await
    }
}

crate::web::form::csrf_form!(LinkForm, UnlinkForm);
