//! The pages behind the account lifecycle's links and forms: activating an
//! invitation, resetting a password, "Forgot password?", confirming an
//! e-mail address, signing up. A link opened by GET only shows a form (mail
//! scanners open links); the form's POST, with its CSRF token, acts. The
//! rules live in `crate::lifecycle`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;

use super::form::StrictForm;
use super::login::{see_other, stale_form};
use super::pages::{WebError, error_page, html};
use super::{client_info, csrf};
use crate::lifecycle::recovery::RedeemError;
use crate::lifecycle::{Purpose, email, recovery, signup};
use crate::state::AppState;
use crate::web::ui::{t, tf};

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

#[derive(Template)]
#[template(path = "account/set_password.html")]
struct SetPasswordPage {
    title: &'static str,
    intro: &'static str,
    submit: &'static str,
    action: &'static str,
    csrf: String,
    token: String,
    username: String,
    min_length: usize,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "account/confirm.html")]
struct ConfirmPage {
    title: &'static str,
    intro: String,
    submit: &'static str,
    action: &'static str,
    csrf: String,
    token: String,
}

#[derive(Template)]
#[template(path = "account/message.html")]
struct MessagePage {
    title: &'static str,
    text: &'static str,
    href: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "account/forgot.html")]
struct ForgotPage {
    title: &'static str,
    csrf: String,
    sent: bool,
    error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "account/signup.html")]
struct SignupPage {
    title: &'static str,
    csrf: String,
    sent: bool,
    error: Option<String>,
    username: String,
    email: String,
    domains: String,
    min_length: usize,
}

/// Renders a page with the form's CSRF token (setting its cookie if new).
fn with_csrf(
    state: &AppState,
    req: &HttpRequest,
    page: impl FnOnce(String) -> Result<HttpResponse, WebError>,
) -> Result<HttpResponse, WebError> {
    let token = csrf::ensure(state, req).map_err(WebError::internal)?;
    let mut resp = page(token.token)?;
    if let Some(c) = token.set_cookie {
        resp.add_cookie(&c).map_err(WebError::internal)?;
    }
    Ok(resp)
}

fn dead_link() -> HttpResponse {
    error_page(StatusCode::BAD_REQUEST, t("links.dead_title"), t("links.dead"))
}

fn not_here() -> HttpResponse {
    error_page(StatusCode::NOT_FOUND, t("error.not_found"), t("error.not_found_text"))
}

fn too_many() -> HttpResponse {
    error_page(StatusCode::TOO_MANY_REQUESTS, t("links.forgot_title"), t("links.too_many"))
}

/// Counts an anonymous form post from the caller's address (`kind`) against
/// `login_ip_max_attempts` per window; `false`: refuse with 429.
async fn admit(state: &AppState, req: &HttpRequest, kind: &str) -> Result<bool, WebError> {
    let Some(ip) = client_info::ip(state, req) else { return Ok(true) };
    let now = state.clock.now().timestamp_millis();
    let n = crate::authn::throttle::admit_ip_for(&state.db, &state.settings, kind, &ip, now).await?;
    Ok(n <= state.settings.login_ip_max_attempts)
}

fn set_password_page(
    state: &AppState,
    purpose: Purpose,
    csrf: String,
    token: String,
    username: String,
    error: Option<String>,
) -> Result<HttpResponse, WebError> {
    let invite = purpose == Purpose::Invite;
    let page = SetPasswordPage {
        title: if invite { t("links.invite_title") } else { t("links.reset_title") },
        intro: if invite { t("links.invite_intro") } else { t("links.reset_intro") },
        submit: if invite { t("links.invite_submit") } else { t("links.reset_submit") },
        action: purpose.path(),
        csrf,
        token,
        username,
        // The administrators' length applies if the account holds admin;
        // the page says the general minimum, the policy check says the rest.
        min_length: state.password_policy.min_length,
        error,
    };
    html(if page.error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK }, &page)
}

async fn link_user(state: &AppState, purpose: Purpose, token: &str) -> Result<Option<String>, WebError> {
    let Some(link) = crate::lifecycle::peek(state, &state.db, purpose, token).await? else { return Ok(None) };
    let Some(id) = link.user_id else { return Ok(None) };
    use sea_orm::EntityTrait;
    Ok(crate::storage::entities::user::Entity::find_by_id(id).one(&state.db).await?.map(|u| u.username))
}

async fn set_password_get(
    state: &AppState,
    req: &HttpRequest,
    purpose: Purpose,
    token: Option<&str>,
) -> Result<HttpResponse, WebError> {
    let token = token.unwrap_or_default();
    let Some(username) = link_user(state, purpose, token).await? else { return Ok(dead_link()) };
    with_csrf(state, req, |c| set_password_page(state, purpose, c, token.to_owned(), username, None))
}

#[derive(Deserialize)]
pub struct SetPasswordForm {
    csrf: String,
    token: String,
    #[allow(dead_code)]
    username: Option<String>,
    new_password: SecretString,
}

async fn set_password_post(
    state: &AppState,
    req: &HttpRequest,
    purpose: Purpose,
    form: SetPasswordForm,
) -> Result<HttpResponse, WebError> {
    if !csrf::verify(state, req, &form.csrf) {
        return Ok(stale_form());
    }
    let origin = client_info::origin(state, req);
    match recovery::redeem(state, purpose, &form.token, &form.new_password, origin).await {
        Ok(_) => Ok(see_other(if purpose == Purpose::Invite {
            "/login?m=account_activated"
        } else {
            "/login?m=password_reset"
        })),
        Err(RedeemError::Dead) => Ok(dead_link()),
        Err(RedeemError::Policy(m)) => {
            let Some(username) = link_user(state, purpose, &form.token).await? else { return Ok(dead_link()) };
            with_csrf(state, req, |c| set_password_page(state, purpose, c, form.token.clone(), username, Some(m)))
        }
        Err(RedeemError::Other(crate::admin::password::ChangeError::Password(crate::authn::PasswordError::Busy))) => {
            Err(WebError(crate::error::AppError::Busy))
        }
        Err(RedeemError::Other(e)) => Err(WebError::internal(e)),
    }
}

pub async fn invitation_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<TokenQuery>,
) -> Result<HttpResponse, WebError> {
    set_password_get(&state, &req, Purpose::Invite, q.token.as_deref()).await
}

pub async fn invitation_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<SetPasswordForm>,
) -> Result<HttpResponse, WebError> {
    set_password_post(&state, &req, Purpose::Invite, form.into_inner()).await
}

pub async fn reset_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<TokenQuery>,
) -> Result<HttpResponse, WebError> {
    set_password_get(&state, &req, Purpose::Reset, q.token.as_deref()).await
}

pub async fn reset_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<SetPasswordForm>,
) -> Result<HttpResponse, WebError> {
    set_password_post(&state, &req, Purpose::Reset, form.into_inner()).await
}

pub async fn forgot_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    if state.mailer.is_none() {
        return Ok(not_here());
    }
    with_csrf(&state, &req, |csrf| {
        html(StatusCode::OK, &ForgotPage { title: t("links.forgot_title"), csrf, sent: false, error: None })
    })
}

#[derive(Deserialize)]
pub struct ForgotForm {
    csrf: String,
    who: String,
}

/// Answers the same page, status and (but for the address counter, which
/// every post passes) time whatever `who` is: the lookup, the link and the
/// mail happen after the answer, in a task of their own.
pub async fn forgot_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<ForgotForm>,
) -> Result<HttpResponse, WebError> {
    if state.mailer.is_none() {
        return Ok(not_here());
    }
    let form = form.into_inner();
    if !csrf::verify(&state, &req, &form.csrf) {
        return Ok(stale_form());
    }
    if !admit(&state, &req, "forgot").await? {
        return Ok(too_many());
    }
    let who: String = form.who.chars().take(254).collect();
    tokio::spawn(recovery::forgot(state.get_ref().clone(), who, client_info::origin(&state, &req)));
    with_csrf(&state, &req, |csrf| {
        html(StatusCode::OK, &ForgotPage { title: t("links.forgot_title"), csrf, sent: true, error: None })
    })
}

pub async fn verify_email_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<TokenQuery>,
) -> Result<HttpResponse, WebError> {
    let token = q.token.clone().unwrap_or_default();
    let Some(link) = crate::lifecycle::peek(&state, &state.db, Purpose::VerifyEmail, &token).await? else {
        return Ok(dead_link());
    };
    use sea_orm::EntityTrait;
    let username = match link.user_id.as_deref() {
        Some(id) => crate::storage::entities::user::Entity::find_by_id(id).one(&state.db).await?.map(|u| u.username),
        None => None,
    };
    let intro = tf("links.verify_intro", "email", link.email.unwrap_or_default())
        .replace("{username}", &username.unwrap_or_default());
    with_csrf(&state, &req, |csrf| {
        html(
            StatusCode::OK,
            &ConfirmPage {
                title: t("links.verify_title"),
                intro,
                submit: t("links.verify_submit"),
                action: Purpose::VerifyEmail.path(),
                csrf,
                token,
            },
        )
    })
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    csrf: String,
    token: String,
}

pub async fn verify_email_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<ConfirmForm>,
) -> Result<HttpResponse, WebError> {
    if !csrf::verify(&state, &req, &form.csrf) {
        return Ok(stale_form());
    }
    match email::confirm(&state, &form.token, client_info::origin(&state, &req)).await? {
        None => Ok(dead_link()),
        Some(_) => html(
            StatusCode::OK,
            &MessagePage {
                title: t("links.verified_title"),
                text: t("links.verified"),
                href: "/account",
                label: t("links.to_account"),
            },
        ),
    }
}

fn signup_page(
    state: &AppState,
    csrf: String,
    status: StatusCode,
    sent: bool,
    error: Option<String>,
    username: String,
    email: String,
) -> Result<HttpResponse, WebError> {
    let page = SignupPage {
        title: t("links.signup_title"),
        csrf,
        sent,
        error,
        username,
        email,
        domains: state.settings.registration_email_domains.join(", "),
        min_length: state.password_policy.min_length,
    };
    html(status, &page)
}

fn registration_open(state: &AppState) -> bool {
    state.settings.registration == crate::config::Registration::Open && state.mailer.is_some()
}

pub async fn signup_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    if !registration_open(&state) {
        return Ok(not_here());
    }
    with_csrf(&state, &req, |c| signup_page(&state, c, StatusCode::OK, false, None, String::new(), String::new()))
}

#[derive(Deserialize)]
pub struct SignupForm {
    csrf: String,
    username: String,
    email: String,
    new_password: SecretString,
}

pub async fn signup_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<SignupForm>,
) -> Result<HttpResponse, WebError> {
    if !registration_open(&state) {
        return Ok(not_here());
    }
    let f = form.into_inner();
    if !csrf::verify(&state, &req, &f.csrf) {
        return Ok(stale_form());
    }
    if !admit(&state, &req, "signup").await? {
        return Ok(too_many());
    }
    let origin = client_info::origin(&state, &req);
    let (status, sent, error) = match signup::register(&state, &f.username, &f.email, &f.new_password, origin).await {
        Ok(()) => (StatusCode::OK, true, None),
        Err(e @ (signup::SignupError::Invalid(_) | signup::SignupError::Taken)) => {
            (StatusCode::BAD_REQUEST, false, Some(e.to_string()))
        }
        Err(signup::SignupError::Password(crate::authn::PasswordError::Busy)) => {
            return Err(WebError(crate::error::AppError::Busy));
        }
        Err(e) => return Err(WebError::internal(e)),
    };
    with_csrf(&state, &req, |c| signup_page(&state, c, status, sent, error, f.username, f.email))
}

pub async fn signup_confirm_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<TokenQuery>,
) -> Result<HttpResponse, WebError> {
    if !registration_open(&state) {
        return Ok(not_here());
    }
    let token = q.token.clone().unwrap_or_default();
    let Some(link) = crate::lifecycle::peek(&state, &state.db, Purpose::Signup, &token).await? else {
        return Ok(dead_link());
    };
    let username = link
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|v| v["username"].as_str().map(str::to_owned))
        .unwrap_or_default();
    with_csrf(&state, &req, |csrf| {
        html(
            StatusCode::OK,
            &ConfirmPage {
                title: t("links.signup_confirm_title"),
                intro: tf("links.signup_confirm_intro", "username", username),
                submit: t("links.signup_confirm_submit"),
                action: Purpose::Signup.path(),
                csrf,
                token,
            },
        )
    })
}

pub async fn signup_confirm_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<ConfirmForm>,
) -> Result<HttpResponse, WebError> {
    if !registration_open(&state) {
        return Ok(not_here());
    }
    if !csrf::verify(&state, &req, &form.csrf) {
        return Ok(stale_form());
    }
    match signup::confirm(&state, &form.token, client_info::origin(&state, &req)).await {
        Ok(_) => Ok(see_other("/login?m=account_created")),
        Err(signup::ConfirmError::Dead) => Ok(dead_link()),
        Err(e @ signup::ConfirmError::Taken) => {
            Ok(error_page(StatusCode::CONFLICT, t("links.signup_confirm_title"), &e.to_string()))
        }
        Err(signup::ConfirmError::Db(e)) => Err(e.into()),
    }
}
