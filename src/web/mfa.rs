//! Two-step verification pages: the code step at login, enrolment (forced at
//! login by policy, or from the account page), recovery codes, turning it off.

use crate::web::cookies::SignedIn;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::account::render as render_account;
use super::form::{SignedInForm, StrictForm};
use super::login::{CHALLENGE_COOKIE, finish_login, flow_of_return, see_other, set_flow_csp, source_of, stale_form};
use super::pages::{WebError, html};
use super::reauth::{may_change_factors, reauth_full};
use super::{client_info, csrf};
use crate::authn::login::{self, Challenge, ChallengePurpose};
use crate::authn::mfa::{self, Confirm, Enrolment};
use crate::authn::second_factor::{Gated, gate};
use crate::session::{AMR_OTP, AMR_PASSWORD, Current};
use crate::state::AppState;
use crate::storage::AuditEvent;

#[derive(Template)]
#[template(path = "login/mfa.html")]
struct MfaPage {
    title: &'static str,
    csrf: String,
    failed: bool,
    /// Offer the user's passkey.
    passkey: bool,
    /// Show the code form (the user has TOTP or recovery codes).
    code: bool,
    /// The code form takes TOTP codes (not only recovery codes).
    totp: bool,
}

#[derive(Template)]
#[template(path = "mfa/enrol.html")]
struct EnrolPage {
    title: &'static str,
    csrf: String,
    action: &'static str,
    required: bool,
    /// Offer a passkey (enrolment at login, passkeys on).
    passkey: bool,
    /// Offer TOTP (not when this sign-in needs a passkey).
    totp: bool,
    needs_reauth: bool,
    error: Option<String>,
    /// Whether a secret is shown (an enrolment in progress).
    show: bool,
    enrolment: String,
    secret: String,
    qr_svg: String,
}

#[derive(Template)]
#[template(path = "mfa/recovery.html")]
struct RecoveryPage {
    title: &'static str,
    codes: Vec<String>,
    continue_to: String,
}

fn internal(e: impl std::fmt::Display) -> WebError {
    WebError::internal(e)
}

fn with_csrf(
    state: &AppState,
    req: &HttpRequest,
    build: impl FnOnce(String) -> Result<HttpResponse, WebError>,
) -> Result<HttpResponse, WebError> {
    let token = csrf::ensure(state, req).map_err(internal)?;
    let mut resp = build(token.token)?;
    if let Some(c) = token.set_cookie {
        resp.add_cookie(&c).map_err(internal)?;
    }
    Ok(resp)
}

pub(crate) async fn challenge(
    state: &AppState,
    req: &HttpRequest,
    purpose: ChallengePurpose,
) -> Result<Option<Challenge>, WebError> {
    let Some(token) =
        req.cookie(&crate::web::cookies::cookie_name(state, CHALLENGE_COOKIE)).map(|c| c.value().to_owned())
    else {
        return Ok(None);
    };
    match login::find_challenge(state, &token, purpose).await.map_err(internal)? {
        // An enrolment is for an account without any factor, checked at
        // every use: a challenge kept from before the owner set one up
        // (while the password was known) is dead.
        Some(c)
            if purpose == ChallengePurpose::Enrol
                && mfa::strongest_factor(&state.db, &c.user.id).await? > crate::policy::Assurance::Password =>
        {
            Ok(None)
        }
        found => Ok(found),
    }
}

/// The challenge of a factor set-up at login: `Enrol` (no factor yet: a
/// passkey or TOTP) or `Replace` (a passkey only).
pub(crate) async fn set_up_challenge(state: &AppState, req: &HttpRequest) -> Result<Option<Challenge>, WebError> {
    match challenge(state, req, ChallengePurpose::Enrol).await? {
        Some(c) => Ok(Some(c)),
        None => challenge(state, req, ChallengePurpose::Replace).await,
    }
}

/// The login challenge behind a posted step, once its CSRF token checked out;
/// `Err` is the response to send instead.
async fn challenge_for_form(
    state: &AppState,
    req: &HttpRequest,
    csrf_field: &str,
    purpose: ChallengePurpose,
) -> Result<Result<Challenge, HttpResponse>, WebError> {
    if !csrf::verify(state, req, csrf_field) {
        return Ok(Err(stale_form()));
    }
    Ok(challenge(state, req, purpose).await?.ok_or_else(|| see_other("/login")))
}

async fn mfa_page(state: &AppState, req: &HttpRequest, c: &Challenge, failed: bool) -> Result<HttpResponse, WebError> {
    let o = super::login::offer(state, c).await?;
    let mut resp = with_csrf(state, req, |csrf| {
        html(
            StatusCode::OK,
            &MfaPage {
                title: crate::web::ui::t("mfa.title"),
                csrf,
                failed,
                passkey: o.passkey,
                code: o.code,
                totp: o.totp,
            },
        )
    })?;
    if let Some(f) = flow_of_return(state, c.row.return_to.as_deref()).await? {
        set_flow_csp(&mut resp, &f.request.redirect_uri)?;
    }
    Ok(resp)
}

pub async fn mfa_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let Some(c) = challenge(&state, &req, ChallengePurpose::Mfa).await? else {
        return Ok(see_other("/login"));
    };
    mfa_page(&state, &req, &c, false).await
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

pub async fn mfa_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<CodeForm>,
) -> Result<HttpResponse, WebError> {
    let c = match challenge_for_form(&state, &req, &form.csrf, ChallengePurpose::Mfa).await? {
        Ok(c) => c,
        Err(resp) => return Ok(resp),
    };
    let source = source_of(&state, &req);
    let o = super::login::offer(&state, &c).await?;
    let checked = login::mfa_step(&state, &c, &form.code, &source, o.totp).await.map_err(internal)?;
    if checked.is_none() {
        return mfa_page(&state, &req, &c, true).await;
    }
    // Where this sign-in needs a passkey, a code passes only when the user
    // has none yet (then adds one now) or as a recovery code for a lost one
    // (then adds a new one now): either way the login ends with a passkey.
    // A recovery code of any account with a passkey means a lost key too:
    // the person replaces it now (a session that cannot sign with a passkey
    // could neither add nor remove one later).
    if !login::end_challenge(&state, &c).await.map_err(internal)? {
        // Another request completed this challenge first.
        return Ok(see_other("/login"));
    }
    let return_to = c.row.return_to.as_deref();
    let lost_key = o.passkey && checked == Some(mfa::CodeCheck::Recovery);
    if (o.required >= crate::policy::Assurance::PhishingResistant || lost_key) && state.webauthn.is_some() {
        return super::login::challenge_redirect(
            &state,
            &c.user.id,
            ChallengePurpose::Replace,
            c.row.trusted_device,
            c.row.return_to.clone(),
            c.row.first_factor.clone(),
            "/login/enrol",
        )
        .await;
    }
    let first = c.row.first_factor.as_deref().unwrap_or(AMR_PASSWORD);
    let done = finish_login(&state, &req, &c.user.id, &[first, AMR_OTP], "2", &source, return_to).await?;
    let to = done.destination(return_to);
    Ok(done.redirect(&to))
}

/// What the enrolment page shows: the secret of an enrolment just started
/// (or the same one again to whoever started it, after a mistyped code); or,
/// for a move to a new device, the re-authentication that must come first;
/// or neither (stale form: start again).
struct Shown<'a> {
    enrolment: Option<&'a Enrolment>,
    needs_reauth: bool,
}

fn enrol_page(
    state: &AppState,
    req: &HttpRequest,
    shown: Shown<'_>,
    action: &'static str,
    required: bool,
    error: Option<String>,
) -> Result<HttpResponse, WebError> {
    enrol_page_with(state, req, shown, action, (required, false, true), error)
}

/// The account's TOTP page refusing a first app to a session that is not
/// recent or strong enough: sign in again first.
fn sign_in_again_for_app(state: &AppState, req: &HttpRequest) -> Result<HttpResponse, WebError> {
    let shown = Shown { enrolment: None, needs_reauth: false };
    let why = crate::web::ui::t("messages.sign_in_again_for_app").to_owned();
    enrol_page(state, req, shown, "/account/mfa", false, Some(why))
}

/// `modes`: (required, offer a passkey, offer TOTP).
fn enrol_page_with(
    state: &AppState,
    req: &HttpRequest,
    shown: Shown<'_>,
    action: &'static str,
    (required, passkey, totp): (bool, bool, bool),
    error: Option<String>,
) -> Result<HttpResponse, WebError> {
    with_csrf(state, req, |csrf| {
        html(
            StatusCode::OK,
            &EnrolPage {
                title: crate::web::ui::t("enrol.title"),
                csrf,
                action,
                required,
                passkey,
                totp,
                needs_reauth: shown.needs_reauth,
                error,
                show: shown.enrolment.is_some(),
                enrolment: shown.enrolment.map(|e| e.enrolment_id.clone()).unwrap_or_default(),
                secret: shown.enrolment.map(|e| e.secret_base32.clone()).unwrap_or_default(),
                qr_svg: shown.enrolment.map(|e| e.qr_svg.clone()).unwrap_or_default(),
            },
        )
    })
}

pub(crate) fn challenge_binding(c: &Challenge) -> String {
    format!("challenge:{}", c.row.token_hash)
}

pub(crate) fn session_binding(cur: &Current) -> String {
    format!("session:{}", cur.session.id)
}

/// A new enrolment for this challenge or session (each visit starts again:
/// a pending secret is never shown twice to a fresh page load).
async fn new_enrolment(state: &AppState, user_id: &str, username: &str, binding: &str) -> Result<Enrolment, WebError> {
    mfa::start_enrolment(state, user_id, username, binding, state.clock.now()).await.map_err(internal)
}

pub async fn login_enrol_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let Some(c) = set_up_challenge(&state, &req).await? else {
        return Ok(see_other("/login"));
    };
    let required = super::login::required_for_login(&state, c.row.return_to.as_deref(), &c.user.id).await?;
    let passkey = state.webauthn.is_some();
    // TOTP only for a first factor, and not where the sign-in needs a passkey.
    let totp =
        c.purpose == ChallengePurpose::Enrol && !(passkey && required >= crate::policy::Assurance::PhishingResistant);
    let e = if totp {
        Some(new_enrolment(&state, &c.user.id, &c.user.username, &challenge_binding(&c)).await?)
    } else {
        None
    };
    let shown = Shown { enrolment: e.as_ref(), needs_reauth: false };
    let mut resp = enrol_page_with(&state, &req, shown, "/login/enrol", (true, passkey, totp), None)?;
    if let Some(f) = flow_of_return(&state, c.row.return_to.as_deref()).await? {
        set_flow_csp(&mut resp, &f.request.redirect_uri)?;
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub struct EnrolForm {
    csrf: String,
    enrolment: Option<String>,
    code: Option<String>,
    reauth: Option<SecretString>,
    /// A code from the current authenticator (or a recovery code).
    reauth_code: Option<SecretString>,
}

fn recovery_page(codes: Vec<String>, continue_to: &str) -> Result<HttpResponse, WebError> {
    html(
        StatusCode::OK,
        &RecoveryPage { title: crate::web::ui::t("recovery.title"), codes, continue_to: continue_to.to_owned() },
    )
}

/// The audit record of a person's own enrolment (committed with it).
fn enrolled(state: &AppState, req: &HttpRequest, user_id: &str) -> AuditEvent {
    AuditEvent::new("mfa.enrolled", "success")
        .actor(format!("user:{user_id}"))
        .user(user_id)
        .source(client_info::ip(state, req), client_info::user_agent(req))
        .detail(json!({ "method": "totp", "recovery_codes": mfa::RECOVERY_CODES }))
}

/// How a posted enrolment confirmation ended.
enum Confirmed {
    Enrolled(Vec<String>),
    /// The form names no live enrolment of this binding.
    Stale,
    /// Wrong code (counted) — the same enrolment is shown again.
    Retry(Enrolment, &'static str),
}

/// Confirms the enrolment `binding` started, through the second-factor gate
/// (a wrong code counts like any other wrong code).
async fn confirm(
    state: &AppState,
    req: &HttpRequest,
    user: &crate::storage::users::User,
    binding: &str,
    trusted: bool,
    form: &EnrolForm,
) -> Result<Confirmed, WebError> {
    let now = state.clock.now();
    let enrolment_id = form.enrolment.as_deref().unwrap_or_default();
    let Some(shown) =
        mfa::shown_enrolment(state, &user.id, &user.username, binding, enrolment_id, now).await.map_err(internal)?
    else {
        return Ok(Confirmed::Stale);
    };
    let code = form.code.as_deref().unwrap_or_default();
    let source = source_of(state, req);
    let gated = gate(state, user, &source, trusted, now, async || {
        let record = enrolled(state, req, &user.id);
        Ok(match mfa::confirm_enrolment(state, &user.id, binding, enrolment_id, code, record, now).await? {
            Confirm::Enrolled(codes) => Some(Some(codes)),
            Confirm::Stale => Some(None),
            Confirm::BadCode => None,
        })
    })
    .await
    .map_err(internal)?;
    Ok(match gated {
        Gated::Passed(Some(codes)) => Confirmed::Enrolled(codes),
        Gated::Passed(None) => Confirmed::Stale,
        Gated::Failed { locked: false } => Confirmed::Retry(shown, crate::web::ui::t("enrol.wrong_code")),
        Gated::Failed { locked: true } | Gated::RateLimited => {
            Confirmed::Retry(shown, crate::web::ui::t("messages.too_many"))
        }
    })
}

pub async fn login_enrol_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<EnrolForm>,
) -> Result<HttpResponse, WebError> {
    let c = match challenge_for_form(&state, &req, &form.csrf, ChallengePurpose::Enrol).await? {
        Ok(c) => c,
        Err(resp) => return Ok(resp),
    };
    let required = super::login::required_for_login(&state, c.row.return_to.as_deref(), &c.user.id).await?;
    if state.webauthn.is_some() && required >= crate::policy::Assurance::PhishingResistant {
        // This sign-in needs a passkey: a TOTP enrolment cannot finish it.
        return Ok(see_other("/login/enrol"));
    }
    let binding = challenge_binding(&c);
    match confirm(&state, &req, &c.user, &binding, c.row.trusted_device, &form).await? {
        Confirmed::Enrolled(codes) => {
            if !login::end_challenge(&state, &c).await.map_err(internal)? {
                return Ok(see_other("/login"));
            }
            let source = source_of(&state, &req);
            let return_to = c.row.return_to.as_deref();
            let first = c.row.first_factor.as_deref().unwrap_or(AMR_PASSWORD);
            let done = finish_login(&state, &req, &c.user.id, &[first, AMR_OTP], "2", &source, return_to).await?;
            let to = done.destination(return_to);
            Ok(done.apply(recovery_page(codes, &to)?))
        }
        Confirmed::Stale => {
            let shown = Shown { enrolment: None, needs_reauth: false };
            enrol_page(
                &state,
                &req,
                shown,
                "/login/enrol",
                true,
                Some(crate::web::ui::t("messages.stale_enrolment").into()),
            )
        }
        Confirmed::Retry(e, msg) => {
            login::challenge_failed(&state, &c).await.map_err(internal)?;
            let shown = Shown { enrolment: Some(&e), needs_reauth: false };
            enrol_page(&state, &req, shown, "/login/enrol", true, Some(msg.into()))
        }
    }
}

pub async fn account_enrol_get(
    SignedIn(cur): SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    if mfa::has_totp(&state.db, &cur.user.id).await? {
        // Moving to a new device: the new secret is shown only after the
        // password and a current code (a borrowed session cannot plant one).
        return enrol_page(&state, &req, Shown { enrolment: None, needs_reauth: true }, "/account/mfa", false, None);
    }
    if !may_change_factors(&state, &cur).await? {
        // A first authenticator app is a new way in: only a recent sign-in
        // as strong as the account's factors (its passkey, if it has one)
        // may add it, so a borrowed session cannot plant one.
        return sign_in_again_for_app(&state, &req);
    }
    let e = new_enrolment(&state, &cur.user.id, &cur.user.username, &session_binding(&cur)).await?;
    enrol_page(&state, &req, Shown { enrolment: Some(&e), needs_reauth: false }, "/account/mfa", false, None)
}

pub async fn account_enrol_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: SignedInForm<EnrolForm>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, form } = signed;
    let binding = session_binding(&cur);
    if !mfa::has_totp(&state.db, &cur.user.id).await? && !may_change_factors(&state, &cur).await? {
        return sign_in_again_for_app(&state, &req);
    }
    if form.enrolment.is_none() {
        // The start of a move to a new device.
        if !mfa::has_totp(&state.db, &cur.user.id).await? {
            return Ok(see_other("/account/mfa"));
        }
        if let Err(msg) = reauth_full(&state, &req, &cur, form.reauth.as_ref(), form.reauth_code.as_ref()).await? {
            let shown = Shown { enrolment: None, needs_reauth: true };
            return enrol_page(&state, &req, shown, "/account/mfa", false, Some(msg.to_owned()));
        }
        let e = new_enrolment(&state, &cur.user.id, &cur.user.username, &binding).await?;
        return enrol_page(
            &state,
            &req,
            Shown { enrolment: Some(&e), needs_reauth: false },
            "/account/mfa",
            false,
            None,
        );
    }
    match confirm(&state, &req, &cur.user, &binding, false, &form).await? {
        Confirmed::Enrolled(codes) => recovery_page(codes, "/account"),
        Confirmed::Stale => {
            let shown = Shown { enrolment: None, needs_reauth: false };
            enrol_page(
                &state,
                &req,
                shown,
                "/account/mfa",
                false,
                Some(crate::web::ui::t("messages.stale_enrolment").into()),
            )
        }
        Confirmed::Retry(e, msg) => {
            let shown = Shown { enrolment: Some(&e), needs_reauth: false };
            enrol_page(&state, &req, shown, "/account/mfa", false, Some(msg.into()))
        }
    }
}

#[derive(Deserialize)]
pub struct ReauthForm {
    csrf: String,
    reauth: Option<SecretString>,
    /// A code from the current authenticator (or a recovery code).
    reauth_code: Option<SecretString>,
}

pub async fn disable(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: SignedInForm<ReauthForm>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, form } = signed;
    if mfa::required_for(&state, &state.db, &cur.user.id).await? > crate::policy::Assurance::Password {
        let msg = crate::web::ui::t("messages.mfa_required").to_owned();
        return render_account(&state, &req, &cur, StatusCode::OK, None, Some(msg)).await;
    }
    if let Err(msg) = reauth_full(&state, &req, &cur, form.reauth.as_ref(), form.reauth_code.as_ref()).await? {
        return render_account(&state, &req, &cur, StatusCode::OK, None, Some(msg.to_owned())).await;
    }
    let txn = crate::storage::begin_write(&state.db).await?;
    mfa::remove(&txn, &cur.user.id).await?;
    let audit_record = AuditEvent::new("mfa.disabled", "success")
        .actor(format!("user:{}", cur.user.id))
        .user(&cur.user.id)
        .source(client_info::ip(&state, &req), client_info::user_agent(&req));
    crate::storage::commit_audited(txn, audit_record, state.clock.now()).await?;
    Ok(see_other("/account?m=mfa_disabled"))
}

pub async fn regenerate(
    state: web::Data<AppState>,
    req: HttpRequest,
    signed: SignedInForm<ReauthForm>,
) -> Result<HttpResponse, WebError> {
    let SignedInForm { cur, form } = signed;
    if !mfa::has_totp(&state.db, &cur.user.id).await? {
        return Ok(see_other("/account"));
    }
    if let Err(msg) = reauth_full(&state, &req, &cur, form.reauth.as_ref(), form.reauth_code.as_ref()).await? {
        return render_account(&state, &req, &cur, StatusCode::OK, None, Some(msg.to_owned())).await;
    }
    let txn = crate::storage::begin_write(&state.db).await?;
    let codes = mfa::replace_recovery_codes(&state, &txn, &cur.user.id).await.map_err(internal)?;
    let audit_record = AuditEvent::new("mfa.recovery_codes_regenerated", "success")
        .actor(format!("user:{}", cur.user.id))
        .user(&cur.user.id)
        .source(client_info::ip(&state, &req), client_info::user_agent(&req));
    crate::storage::commit_audited(txn, audit_record, state.clock.now()).await?;
    recovery_page(codes, "/account")
}

crate::web::form::csrf_form!(EnrolForm, ReauthForm);
