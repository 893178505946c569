//! The login page and logout.

use actix_web::cookie::SameSite;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::form::StrictForm;
use super::pages::{WebError, error_page, html};
use super::ui::t;
use super::{client_info, csrf};
use crate::authn::PasswordError;
use crate::authn::login::{self, ChallengePurpose, LoginError, Outcome, Source};
use crate::authn::mfa;
use crate::oauth::authorize::{AuthzRequest, load_request, resume_path};
use crate::session::{self, AMR_PASSWORD, NewSession};
use crate::state::AppState;
use crate::storage::{AuditEvent, record_audit};
use crate::web::authorize::csp_for_redirect;
use crate::web::cookies::{build_cookie, removal_cookie};

pub const DEVICE_COOKIE: &str = "portcullis_device";

#[derive(Template)]
#[template(path = "login/login.html")]
pub struct LoginPage {
    pub title: &'static str,
    pub csrf: String,
    pub failed: bool,
    pub notice: Option<&'static str>,
    pub client_name: Option<String>,
    pub request: Option<String>,
    /// Pre-filled username (`login_hint`).
    pub username: Option<String>,
    /// Passkey sign-in offered (WebAuthn configured).
    pub passkeys: bool,
    /// "Forgot password?" offered (mail configured).
    pub forgot: bool,
    /// "Create an account" offered (registration open).
    pub signup: bool,
    /// "Sign in with …" buttons: (provider id, name).
    pub upstream: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "login/logout.html")]
struct LogoutPage {
    title: &'static str,
    csrf: String,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    m: Option<String>,
    request: Option<String>,
}

/// The authorization request a login is for, as the login page needs it.
pub struct Flow {
    pub handle: String,
    pub request: AuthzRequest,
    pub client: std::sync::Arc<crate::storage::clients::Client>,
}

impl Flow {
    pub async fn load(state: &AppState, handle: &str) -> Result<Option<Self>, WebError> {
        Ok(load_request(state, handle).await.map_err(WebError::internal)?.map(|(request, client)| Self {
            handle: handle.to_owned(),
            request,
            client,
        }))
    }

    fn client_name(&self) -> String {
        self.client.name.clone().unwrap_or_else(|| self.client.client_id.clone())
    }
}

/// Pages of a login for a client end in a redirect to it: their CSP must allow
/// that origin as a form target (browsers check redirects of a form post).
pub fn set_flow_csp(resp: &mut HttpResponse, redirect_uri: &str) -> Result<(), WebError> {
    let v =
        actix_web::http::header::HeaderValue::from_str(&csp_for_redirect(redirect_uri)).map_err(WebError::internal)?;
    resp.headers_mut().insert(actix_web::http::header::CONTENT_SECURITY_POLICY, v);
    Ok(())
}

/// The flow a stored `return_to` (`/authorize/continue?request=…`) belongs to.
pub async fn flow_of_return(state: &AppState, return_to: Option<&str>) -> Result<Option<Flow>, WebError> {
    match crate::oauth::authorize::handle_of_return(return_to) {
        Some(h) => Flow::load(state, h).await,
        None => Ok(None),
    }
}

/// Fixed notices by code: nothing from the query string is reflected.
fn notice(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "logged_out" => Some(t("login.logged_out")),
        "password_changed" => Some(t("login.password_changed")),
        "session_ended" => Some(t("login.session_ended")),
        "account_activated" => Some(t("links.activated")),
        "password_reset" => Some(t("links.password_reset")),
        "account_created" => Some(t("links.account_created")),
        _ => None,
    }
}

/// Renders the login form (status 200 both first time and after a failure:
/// every failure looks the same).
pub fn login_form(
    state: &AppState,
    req: &HttpRequest,
    failed: bool,
    notice: Option<&'static str>,
    flow: Option<&Flow>,
) -> Result<HttpResponse, WebError> {
    let token = csrf::ensure(state, req).map_err(WebError::internal)?;
    let page = LoginPage {
        title: t("login.title"),
        csrf: token.token,
        failed,
        notice,
        client_name: flow.map(Flow::client_name),
        request: flow.map(|f| f.handle.clone()),
        username: flow.and_then(|f| f.request.login_hint.clone()),
        passkeys: state.webauthn.is_some(),
        forgot: state.mailer.is_some(),
        signup: state.mailer.is_some() && state.settings.registration == crate::config::Registration::Open,
        upstream: state.settings.upstream.iter().map(|p| (p.id.clone(), p.name.clone())).collect(),
    };
    let mut resp = html(StatusCode::OK, &page)?;
    if let Some(f) = flow {
        set_flow_csp(&mut resp, &f.request.redirect_uri)?;
    }
    if let Some(c) = token.set_cookie {
        resp.add_cookie(&c).map_err(WebError::internal)?;
    }
    Ok(resp)
}

pub async fn login_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<LoginQuery>,
) -> Result<HttpResponse, WebError> {
    if let Some(h) = &q.request {
        // A login for an application: shown even with a session (step-up,
        // prompt=login, max_age).
        return match Flow::load(&state, h).await? {
            Some(flow) => login_form(&state, &req, false, None, Some(&flow)),
            None => Ok(error_page(StatusCode::BAD_REQUEST, t("login.expired_title"), t("login.expired"))),
        };
    }
    if crate::web::cookies::current(&state, &req).await?.is_some() {
        return Ok(see_other("/account"));
    }
    login_form(&state, &req, false, notice(q.m.as_deref()), None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
    username: String,
    password: SecretString,
    request: Option<String>,
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", location)).finish()
}

/// The page for a form whose CSRF token is missing or stale.
pub fn stale_form() -> HttpResponse {
    error_page(StatusCode::BAD_REQUEST, t("error.stale_form"), t("error.stale_form_text"))
}

pub async fn login_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<LoginForm>,
) -> Result<HttpResponse, WebError> {
    let form = form.into_inner();
    if !csrf::verify(&state, &req, &form.csrf) {
        return Ok(stale_form());
    }
    let flow = match &form.request {
        Some(h) => match Flow::load(&state, h).await? {
            Some(f) => Some(f),
            // A forged or expired reference: refused before any credential check.
            None => return Ok(error_page(StatusCode::BAD_REQUEST, t("login.expired_title"), t("login.expired"))),
        },
        None => None,
    };
    let mut source = source_of(&state, &req);
    source.client_id = flow.as_ref().map(|f| f.client.client_id.clone());
    let outcome = match login::password_step(&state, &form.username, &form.password, &source).await {
        Ok(o) => o,
        Err(LoginError::Password(PasswordError::Busy)) => {
            return Ok(error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too busy",
                "Too many sign-ins are in progress. Please try again in a moment.",
            ));
        }
        Err(e) => return Err(WebError::internal(e)),
    };
    match outcome {
        Outcome::Failed => login_form(&state, &req, true, None, flow.as_ref()),
        Outcome::RateLimited => Ok(error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "There have been too many sign-in attempts from your network. Please wait a few minutes and try again.",
        )),
        Outcome::Success { user, trusted_device } => {
            let return_to = flow.as_ref().map(|f| resume_path(&f.handle));
            // Any second factor the account has must be proved, even a
            // passkey while passkeys are off here (a recovery code then):
            // the password alone never reaches the set-up of a new factor
            // over an existing one (`mfa::next_step`, the one decision after
            // any first factor).
            let strongest = mfa::strongest_factor(&state.db, &user.id).await?;
            let required = match &flow {
                Some(f) => f.request.required_assurance(&state, &f.client, &user.id).await?,
                None => mfa::required_for(&state, &state.db, &user.id).await?,
            };
            let (purpose, to) = match mfa::next_step(crate::policy::Assurance::Password, strongest, required) {
                mfa::NextStep::Prove => (ChallengePurpose::Mfa, "/login/mfa"),
                mfa::NextStep::Enrol => (ChallengePurpose::Enrol, "/login/enrol"),
                mfa::NextStep::Finish => {
                    let resp =
                        finish_login(&state, &req, &user.id, &[AMR_PASSWORD], "1", &source, return_to.as_deref())
                            .await?;
                    let to = resp.destination(return_to.as_deref());
                    return Ok(resp.redirect(&to));
                }
            };
            challenge_redirect(&state, &user.id, purpose, trusted_device, return_to, None, to).await
        }
    }
}

pub const CHALLENGE_COOKIE: &str = "portcullis_login";

/// How strong the login that a challenge belongs to must be: for its
/// authorization request (`return_to`), or by the server's policy alone.
pub(crate) async fn required_for_login(
    state: &AppState,
    return_to: Option<&str>,
    user_id: &str,
) -> Result<crate::policy::Assurance, WebError> {
    Ok(match flow_of_return(state, return_to).await? {
        Some(f) => f.request.required_assurance(state, &f.client, user_id).await?,
        None => mfa::required_for(state, &state.db, user_id).await?,
    })
}

pub(crate) async fn challenge_redirect(
    state: &AppState,
    user_id: &str,
    purpose: ChallengePurpose,
    trusted: bool,
    return_to: Option<String>,
    first_factor: Option<String>,
    to: &str,
) -> Result<HttpResponse, WebError> {
    let c = challenge_cookie(state, user_id, purpose, trusted, return_to, first_factor).await?;
    let mut resp = see_other(to);
    resp.add_cookie(&c).map_err(WebError::internal)?;
    Ok(resp)
}

/// A new login challenge, as the cookie that refers to it.
pub(crate) async fn challenge_cookie(
    state: &AppState,
    user_id: &str,
    purpose: ChallengePurpose,
    trusted: bool,
    return_to: Option<String>,
    first_factor: Option<String>,
) -> Result<actix_web::cookie::Cookie<'static>, WebError> {
    let token = login::create_challenge_after(state, user_id, purpose, trusted, return_to, first_factor.as_deref())
        .await
        .map_err(WebError::internal)?;
    let mut c = build_cookie(state, CHALLENGE_COOKIE, token, SameSite::Lax);
    c.set_max_age(actix_web::cookie::time::Duration::milliseconds(login::CHALLENGE_TTL_MS));
    Ok(c)
}

/// The login source of a request.
pub fn source_of(state: &AppState, req: &HttpRequest) -> Source {
    Source {
        ip: client_info::ip(state, req),
        user_agent: client_info::user_agent(req),
        device: req.cookie(&crate::web::cookies::cookie_name(state, DEVICE_COOKIE)).map(|c| c.value().to_owned()),
        client_id: None,
    }
}

/// Where a login started from a page of ours goes back to (set by
/// `to_login`, read once by `finish_login`).
pub const NEXT_COOKIE: &str = "portcullis_next";

/// A path of our own pages a login may return to: the account and admin
/// pages only (never an open redirect, nothing a `Location` header cannot
/// carry). The one check for `next` paths, also behind `/admin/reauth`.
pub fn local_page(p: &str) -> Option<&str> {
    let ours = p == "/account"
        || p.starts_with("/account/")
        || p.starts_with("/admin/")
        || p == "/admin"
        || p == "/device"
        || p.starts_with("/device?");
    (ours && !p.contains("//") && !p.contains('\\') && p.len() <= 512 && p.bytes().all(|b| b.is_ascii_graphic()))
        .then_some(p)
}

/// The answer to a page that needs a session when there is none: the login
/// page — saying so when the browser's session has ended (an idle timeout)
/// — remembering this page (a GET of one of ours) to come back to after it.
pub fn to_login(state: &AppState, req: &HttpRequest) -> HttpResponse {
    let ended = req.cookie(&crate::web::cookies::cookie_name(state, crate::web::cookies::SESSION_COOKIE)).is_some();
    let mut resp = see_other(if ended { "/login?m=session_ended" } else { "/login" });
    let here = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if req.method() == actix_web::http::Method::GET
        && let Some(p) = local_page(here)
    {
        let mut c = build_cookie(state, NEXT_COOKIE, p.to_owned(), SameSite::Lax);
        c.set_max_age(actix_web::cookie::time::Duration::minutes(10));
        let _ = resp.add_cookie(&c);
    }
    resp
}

/// Cookies to set once a login is complete; the caller decides the body.
pub struct Finished {
    cookies: Vec<actix_web::cookie::Cookie<'static>>,
    /// The page of ours the login started from (`to_login`), if any.
    next: Option<String>,
}

impl Finished {
    /// Where the browser goes now: the authorization request the login
    /// answers, else the page it started from, else the account page.
    pub fn destination(&self, return_to: Option<&str>) -> String {
        return_to.or(self.next.as_deref()).unwrap_or("/account").to_owned()
    }

    pub fn redirect(self, to: &str) -> HttpResponse {
        self.apply(see_other(to))
    }

    pub fn apply(self, mut resp: HttpResponse) -> HttpResponse {
        for c in &self.cookies {
            // A cookie that cannot be encoded would be a bug in our own values.
            let _ = resp.add_cookie(c);
        }
        resp
    }
}

/// Completes a login: a new session (ending the browser's previous one), this
/// browser trusted for the user, a fresh CSRF token, the challenge cookie gone.
/// `return_to`: where the login continues; when that is an authorization
/// request, the request learns that this session logged in for it.
pub async fn finish_login(
    state: &AppState,
    req: &HttpRequest,
    user_id: &str,
    amr: &[&str],
    acr: &str,
    source: &Source,
    return_to: Option<&str>,
) -> Result<Finished, WebError> {
    let now = state.clock.now();
    let old = crate::web::cookies::current(state, req).await?;
    // The session, its audit record, the request it answers and the trusted
    // browser: one transaction.
    let txn = crate::storage::begin_write(&state.db).await?;
    // A new session id at every login: no fixation.
    if let Some(old) = old {
        session::end(&txn, &old.session.id).await?;
    }
    let (s, secret) = session::create(
        state,
        &txn,
        NewSession { user_id, amr, acr: Some(acr), ip: source.ip.clone(), user_agent: source.user_agent.clone() },
        now,
    )
    .await
    .map_err(WebError::internal)?;
    let audit_record = AuditEvent::new("session.created", "success")
        .user(user_id)
        .source(source.ip.clone(), source.user_agent.clone())
        .detail(json!({ "session": s.id, "amr": amr, "acr": acr }));
    if let Some(h) = crate::oauth::authorize::handle_of_return(return_to) {
        crate::oauth::authorize::mark_login(state, &txn, h, &s.id).await?;
    }
    let device =
        login::trust_device(state, &txn, user_id, source.device.as_deref()).await.map_err(WebError::internal)?;
    crate::storage::commit_audited(txn, audit_record, now).await?;
    let mut device_cookie = build_cookie(state, DEVICE_COOKIE, device, SameSite::Strict);
    device_cookie.set_max_age(crate::web::cookies::days(state.settings.trusted_device_days));
    let cookie = crate::web::cookies::session_cookie(state, secret);
    let mut cookies = vec![cookie, device_cookie, removal_cookie(state, CHALLENGE_COOKIE)];
    if let Some(c) = csrf::fresh(state).map_err(WebError::internal)?.set_cookie {
        cookies.push(c);
    }
    let next = req.cookie(&crate::web::cookies::cookie_name(state, NEXT_COOKIE)).map(|c| c.value().to_owned());
    if next.is_some() {
        cookies.push(removal_cookie(state, NEXT_COOKIE));
    }
    Ok(Finished { cookies, next: next.filter(|n| local_page(n).is_some()) })
}

pub async fn logout_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    if crate::web::cookies::current(&state, &req).await?.is_none() {
        return Ok(see_other("/login"));
    }
    let token = csrf::ensure(&state, &req).map_err(WebError::internal)?;
    let mut resp = html(StatusCode::OK, &LogoutPage { title: t("logout.title"), csrf: token.token })?;
    if let Some(c) = token.set_cookie {
        resp.add_cookie(&c).map_err(WebError::internal)?;
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn logout_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<CsrfOnly>,
) -> Result<HttpResponse, WebError> {
    if !csrf::verify(&state, &req, &form.csrf) {
        return Ok(stale_form());
    }
    if let Some(cur) = crate::web::cookies::current(&state, &req).await? {
        crate::oidc::logout::end_session_everywhere(&state, &cur.session.id, &cur.user.id).await?;
        record_audit(
            &state.db,
            AuditEvent::new("logout", "success")
                .user(&cur.user.id)
                .source(client_info::ip(&state, &req), client_info::user_agent(&req))
                .detail(json!({ "session": cur.session.id })),
            state.clock.now(),
        )
        .await?;
    }
    let mut resp = see_other("/login?m=logged_out");
    resp.add_cookie(&removal_cookie(&state, crate::web::cookies::SESSION_COOKIE)).map_err(WebError::internal)?;
    if let Some(c) = csrf::fresh(&state).map_err(WebError::internal)?.set_cookie {
        resp.add_cookie(&c).map_err(WebError::internal)?;
    }
    Ok(resp)
}

/// What the second step of a login offers: the passkey (when the user has
/// one and passkeys are on), and codes — TOTP only where this sign-in does
/// not need the passkey (a recovery code always works: a lost key).
pub(crate) struct Offer {
    pub passkey: bool,
    pub code: bool,
    pub totp: bool,
    pub required: crate::policy::Assurance,
}

pub(crate) async fn offer(state: &AppState, c: &crate::authn::login::Challenge) -> Result<Offer, WebError> {
    use crate::policy::Assurance;
    let passkey = state.webauthn.is_some() && crate::authn::passkey::has_passkey(&state.db, &c.user.id).await?;
    let has_totp = mfa::has_totp(&state.db, &c.user.id).await?;
    let code = has_totp || mfa::recovery_remaining(&state.db, &c.user.id).await? > 0;
    let required = required_for_login(state, c.row.return_to.as_deref(), &c.user.id).await?;
    let totp = has_totp && !(passkey && required >= Assurance::PhishingResistant);
    Ok(Offer { passkey, code, totp, required })
}

#[cfg(test)]
mod tests {
    use super::local_page;

    #[test]
    fn a_login_returns_only_to_our_account_and_admin_pages() {
        for ok in ["/account", "/account/mfa", "/admin/users/zoe?m=1", "/admin"] {
            assert_eq!(local_page(ok), Some(ok));
        }
        for bad in [
            "//evil.example/admin/",
            "https://evil.example/account",
            "/admin/\\evil",
            "/logout",
            "/authorize?client_id=x",
            "/account\r\nSet-Cookie: x=1",
            "/admin/us\u{e9}rs",
        ] {
            assert_eq!(local_page(bad), None, "{bad:?}");
        }
    }
}
