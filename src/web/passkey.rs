//! Passkey endpoints of the pages (JSON, called by `/static/passkey.js`):
//! passwordless sign-in on /login (button and autofill), the passkey as the
//! second factor on /login/mfa, enrolment at login (/login/enrol) and on
//! /account, and the account page's rename and remove forms.
//!
//! Each ceremony is a `start` (options for `navigator.credentials`, plus a
//! cookie holding the ceremony's handle) and a `finish` (the browser's
//! response). Every JSON call carries the page's CSRF token. A failed sign-in
//! answers `{"error": "Login failed"}` whatever the reason (the reason goes
//! to the audit log), like the password form.

use actix_web::cookie::SameSite;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::login::{Flow, challenge_cookie, finish_login, source_of};
use super::mfa::{challenge_binding, session_binding};
use super::pages::WebError;
use super::{client_info, csrf};
use crate::authn::login::{self, Challenge, ChallengePurpose, Source};
use crate::authn::passkey::{self, PasskeyError, Refused, Started, Verified};
use crate::authn::{mfa, throttle};
use crate::oauth::authorize::resume_path;
use crate::session::{AMR_HWK, AMR_MFA, AMR_PASSWORD, AMR_SWK, AMR_USER, Current};
use crate::state::AppState;
use crate::storage::{AuditEvent, record_audit};

/// The cookie that holds the handle of the ceremony in progress.
pub const CEREMONY_COOKIE: &str = "portcullis_webauthn";

/// What every passkey call posts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    csrf: String,
    /// The authorization request a sign-in is for (login page).
    #[serde(default)]
    request: Option<String>,
    /// A name for a new passkey.
    #[serde(default)]
    name: Option<String>,
    /// The browser's response (finish calls).
    #[serde(default)]
    credential: Option<serde_json::Value>,
}

fn internal(e: impl std::fmt::Display) -> WebError {
    WebError::internal(e)
}

/// The body of a passkey call once its CSRF token checked out (bodies are
/// bounded by the app's 64 KiB payload limit); `Err`: why not (a 400).
fn call_of(state: &AppState, req: &HttpRequest, body: &[u8]) -> Result<Call, &'static str> {
    let call: Call = serde_json::from_slice(body).map_err(|_| "malformed request")?;
    if !csrf::verify(state, req, &call.csrf) {
        return Err(crate::web::ui::t("messages.page_expired"));
    }
    Ok(call)
}

fn bad_request(msg: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": msg }))
}

fn login_failed() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "error": crate::web::ui::t("login.failed") }))
}

fn unavailable(e: &PasskeyError) -> Option<HttpResponse> {
    matches!(e, PasskeyError::Unavailable).then(|| {
        HttpResponse::build(StatusCode::NOT_FOUND).json(json!({ "error": "passkeys are not enabled on this server" }))
    })
}

fn map_err(e: PasskeyError) -> Result<HttpResponse, WebError> {
    match unavailable(&e) {
        Some(r) => Ok(r),
        None => Err(internal(e)),
    }
}

/// The options and the ceremony cookie.
fn started(state: &AppState, s: Started) -> Result<HttpResponse, WebError> {
    let mut c = build_ceremony_cookie(state, s.handle);
    c.set_max_age(actix_web::cookie::time::Duration::milliseconds(passkey::CEREMONY_TTL_MS));
    let mut resp = HttpResponse::Ok().json(s.options);
    resp.add_cookie(&c).map_err(internal)?;
    Ok(resp)
}

fn build_ceremony_cookie(state: &AppState, handle: String) -> actix_web::cookie::Cookie<'static> {
    crate::web::cookies::build_cookie(state, CEREMONY_COOKIE, handle, SameSite::Strict)
}

fn ceremony_handle(state: &AppState, req: &HttpRequest) -> String {
    req.cookie(&crate::web::cookies::cookie_name(state, CEREMONY_COOKIE))
        .map(|c| c.value().to_owned())
        .unwrap_or_default()
}

fn credential(call: &Call) -> &serde_json::Value {
    call.credential.as_ref().unwrap_or(&serde_json::Value::Null)
}

/// The ceremony cookie is spent.
fn spent(state: &AppState, mut resp: HttpResponse) -> HttpResponse {
    // A removal cookie of our own name always encodes.
    let _ = resp.add_cookie(&crate::web::cookies::removal_cookie(state, CEREMONY_COOKIE));
    resp
}

/// Where the browser goes next, with the cookies of a finished step.
fn go(to: &str, resp_cookies: Option<crate::web::login::Finished>) -> HttpResponse {
    let resp = HttpResponse::Ok().json(json!({ "location": to }));
    match resp_cookies {
        Some(f) => f.apply(resp),
        None => resp,
    }
}

/// The `amr` of a passkey sign-in (RFC 8176): the key's kind, user
/// verification, and more than one factor (the key and the PIN or
/// biometric that unlocked it; with the first factor — the password, or
/// `fed` after an upstream provider — three).
fn amr_of<'a>(v: &Verified, first_factor: Option<&'a str>) -> Vec<&'a str> {
    let mut amr = Vec::with_capacity(4);
    if let Some(first) = first_factor {
        amr.push(first);
    }
    amr.push(if v.hardware { AMR_HWK } else { AMR_SWK });
    amr.push(AMR_USER);
    amr.push(AMR_MFA);
    amr
}

async fn audit_login(
    state: &AppState,
    source: &Source,
    outcome: &'static str,
    user: Option<&str>,
    detail: serde_json::Value,
) -> Result<(), WebError> {
    let mut e =
        AuditEvent::new("login.passkey", outcome).source(source.ip.clone(), source.user_agent.clone()).detail(detail);
    if let Some(u) = user {
        e = e.user(u);
    }
    if let Some(c) = &source.client_id {
        e = e.client(c);
    }
    record_audit(&state.db, e, state.clock.now()).await?;
    Ok(())
}

/// A refused assertion: audited (a counter that went backwards also as
/// `passkey.cloned`), answered with the one failure message.
async fn refused(
    state: &AppState,
    source: &Source,
    why: Refused,
    user: Option<&str>,
    mode: &'static str,
) -> Result<HttpResponse, WebError> {
    audit_login(state, source, "failure", user, json!({ "reason": why.as_str(), "mode": mode })).await?;
    if why == Refused::CounterRegressed {
        let mut e = AuditEvent::new("passkey.cloned", "failure")
            .source(source.ip.clone(), source.user_agent.clone())
            .detail(json!({ "reason": "signature counter did not increase: possible cloned authenticator" }));
        if let Some(u) = user {
            e = e.user(u);
        }
        record_audit(&state.db, e, state.clock.now()).await?;
    }
    state.metrics.login("passkey", "failure");
    Ok(login_failed())
}

/// Spends one attempt of the source address's login budget; `false` when
/// it is used up.
async fn admit(state: &AppState, source: &Source) -> Result<bool, WebError> {
    let Some(ip) = &source.ip else { return Ok(true) };
    let attempts = throttle::admit_ip(&state.db, &state.settings, ip, state.clock.now().timestamp_millis()).await?;
    Ok(attempts <= state.settings.login_ip_max_attempts)
}

fn too_many() -> HttpResponse {
    HttpResponse::TooManyRequests().json(json!({ "error": crate::web::ui::t("messages.too_many") }))
}

async fn flow_of(state: &AppState, request: Option<&str>) -> Result<Result<Option<Flow>, HttpResponse>, WebError> {
    match request {
        Some(h) => match Flow::load(state, h).await? {
            Some(f) => Ok(Ok(Some(f))),
            None => Ok(Err(bad_request(crate::web::ui::t("login.expired")))),
        },
        None => Ok(Ok(None)),
    }
}

// ------------------------------------------------------------- passwordless

pub async fn passwordless_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    if let Err(why) = call_of(&state, &req, &body) {
        return Ok(bad_request(why));
    }
    if !admit(&state, &source_of(&state, &req)).await? {
        return Ok(too_many());
    }
    match passkey::start_passwordless(&state, state.clock.now()).await {
        Ok(s) => started(&state, s),
        Err(e) => map_err(e),
    }
}

pub async fn passwordless_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    let call = match call_of(&state, &req, &body) {
        Ok(c) => c,
        Err(why) => return Ok(bad_request(why)),
    };
    let flow = match flow_of(&state, call.request.as_deref()).await? {
        Ok(f) => f,
        Err(resp) => return Ok(resp),
    };
    let mut source = source_of(&state, &req);
    source.client_id = flow.as_ref().map(|f| f.client.client_id.clone());
    if !admit(&state, &source).await? {
        return Ok(too_many());
    }
    let now = state.clock.now();
    let handle = ceremony_handle(&state, &req);
    let v = match passkey::finish_passwordless(&state, &handle, credential(&call), now).await {
        Ok(Ok(v)) => v,
        Ok(Err((why, user))) => return refused(&state, &source, why, user.as_deref(), "passwordless").await,
        Err(e) => return map_err(e),
    };
    audit_login(
        &state,
        &source,
        "success",
        Some(&v.user.id),
        json!({ "mode": "passwordless", "credential": v.credential_id }),
    )
    .await?;
    state.metrics.login("passkey", "success");
    let return_to = flow.as_ref().map(|f| resume_path(&f.handle));
    let amr = amr_of(&v, None);
    let done = finish_login(&state, &req, &v.user.id, &amr, "phr", &source, return_to.as_deref()).await?;
    let to = done.destination(return_to.as_deref());
    Ok(spent(&state, go(&to, Some(done))))
}

// ------------------------------------------------------------ second factor

/// The login challenge a call continues; `Err`: start the login again.
async fn challenge_of(
    state: &AppState,
    req: &HttpRequest,
    purpose: ChallengePurpose,
) -> Result<Result<Challenge, HttpResponse>, WebError> {
    Ok(super::mfa::challenge(state, req, purpose).await?.ok_or_else(|| go("/login", None)))
}

pub async fn second_factor_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    if let Err(why) = call_of(&state, &req, &body) {
        return Ok(bad_request(why));
    }
    let c = match challenge_of(&state, &req, ChallengePurpose::Mfa).await? {
        Ok(c) => c,
        Err(resp) => return Ok(resp),
    };
    match passkey::start_second_factor(&state, &c.user.id, &challenge_binding(&c), state.clock.now()).await {
        Ok(Some(s)) => started(&state, s),
        Ok(None) => Ok(bad_request(crate::web::ui::t("messages.no_passkey"))),
        Err(e) => map_err(e),
    }
}

pub async fn second_factor_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    use crate::authn::second_factor::{Gated, gate};
    let call = match call_of(&state, &req, &body) {
        Ok(c) => c,
        Err(why) => return Ok(bad_request(why)),
    };
    let c = match challenge_of(&state, &req, ChallengePurpose::Mfa).await? {
        Ok(c) => c,
        Err(resp) => return Ok(resp),
    };
    let source = source_of(&state, &req);
    let now = state.clock.now();
    let handle = ceremony_handle(&state, &req);
    let binding = challenge_binding(&c);
    let response = credential(&call);
    // Through the one second-factor gate: a locked second factor stays
    // locked for the passkey too, and a failure counts.
    let mut why = Refused::Invalid;
    let gated =
        gate(&state, &c.user, &source, c.row.trusted_device, now, async || {
            match passkey::finish_second_factor(&state, &handle, &c.user.id, &binding, response, now).await {
                Ok(Ok(v)) => Ok(Some(v)),
                Ok(Err((r, _))) => {
                    why = r;
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
        .map_err(internal)?;
    let v = match gated {
        Gated::Passed(v) => v,
        Gated::Failed { locked } => {
            login::challenge_failed(&state, &c).await.map_err(internal)?;
            let why = if locked { Refused::NoCeremony } else { why };
            return refused(&state, &source, why, Some(&c.user.id), "second_factor").await;
        }
        Gated::RateLimited => return Ok(too_many()),
    };
    if !login::end_challenge(&state, &c).await.map_err(internal)? {
        return Ok(go("/login", None));
    }
    audit_login(
        &state,
        &source,
        "success",
        Some(&c.user.id),
        json!({ "mode": "second_factor", "credential": v.credential_id }),
    )
    .await?;
    let return_to = c.row.return_to.as_deref();
    let amr = amr_of(&v, Some(c.row.first_factor.as_deref().unwrap_or(AMR_PASSWORD)));
    let done = finish_login(&state, &req, &c.user.id, &amr, "phr", &source, return_to).await?;
    let to = done.destination(return_to);
    Ok(spent(&state, go(&to, Some(done))))
}

// ---------------------------------------------------------------- enrolment

/// Adding a passkey, from the account page (`session`) or at a login that
/// policy sends to enrolment (`challenge`).
enum Owner {
    Session(Current),
    Challenge(Challenge),
}

impl Owner {
    fn user(&self) -> &crate::storage::users::User {
        match self {
            Self::Session(c) => &c.user,
            Self::Challenge(c) => &c.user,
        }
    }

    fn binding(&self) -> String {
        match self {
            Self::Session(c) => session_binding(c),
            Self::Challenge(c) => challenge_binding(c),
        }
    }
}

/// The session that adds a passkey from the account page. A new factor is
/// a way in: the session must have signed in recently (`admin_reauth_secs`)
/// and at least as strongly as the account's existing factors allow (a
/// passkey if it has one, a second factor if it has TOTP), so a borrowed or
/// old session cannot plant its own passkey.
async fn session_of(state: &AppState, req: &HttpRequest) -> Result<Result<Owner, HttpResponse>, WebError> {
    let Some(cur) = crate::web::cookies::current(state, req).await? else {
        return Ok(Err(go("/login", None)));
    };
    if !super::reauth::may_change_factors(state, &cur).await? {
        return Ok(Err(HttpResponse::Ok().json(json!({
            "error": crate::web::ui::t("messages.sign_in_again_to_add")
        }))));
    }
    Ok(Ok(Owner::Session(cur)))
}

async fn start_registration(state: &AppState, owner: &Owner) -> Result<HttpResponse, WebError> {
    match passkey::start_registration(state, owner.user(), &owner.binding(), state.clock.now()).await {
        Ok(s) => started(state, s),
        Err(e) => map_err(e),
    }
}

/// Stores the new passkey; the audit record says who added which. An
/// account whose only second factor is passkeys gets recovery codes with
/// its first one (a lost key must not mean a ticket): returned to be shown
/// once.
async fn finish_registration(
    state: &AppState,
    req: &HttpRequest,
    owner: &Owner,
    call: &Call,
) -> Result<Result<Option<Vec<String>>, HttpResponse>, WebError> {
    let now = state.clock.now();
    let handle = ceremony_handle(state, req);
    let name = call.name.as_deref().unwrap_or_default();
    let u = owner.user();
    let row = match passkey::finish_registration(state, &handle, u, &owner.binding(), name, credential(call), now).await
    {
        Ok(Ok(row)) => row,
        Ok(Err(why)) => {
            record_audit(
                &state.db,
                AuditEvent::new("passkey.registered", "failure")
                    .actor(format!("user:{}", u.id))
                    .user(&u.id)
                    .source(client_info::ip(state, req), client_info::user_agent(req))
                    .detail(json!({ "reason": why.as_str() })),
                now,
            )
            .await?;
            let msg = match why {
                Refused::Duplicate => crate::web::ui::t("messages.passkey_duplicate"),
                Refused::TooMany => crate::web::ui::t("messages.passkey_too_many"),
                Refused::NoCeremony => crate::web::ui::t("messages.out_of_date"),
                _ => crate::web::ui::t("passkey.add_retry"),
            };
            return Ok(Err(HttpResponse::Ok().json(json!({ "error": msg }))));
        }
        Err(e) => return map_err(e).map(Err),
    };
    let codes = if mfa::has_totp(&state.db, &u.id).await? || mfa::recovery_remaining(&state.db, &u.id).await? > 0 {
        None
    } else {
        Some(mfa::replace_recovery_codes(state, &state.db, &u.id).await.map_err(internal)?)
    };
    record_audit(
        &state.db,
        AuditEvent::new("passkey.registered", "success")
            .actor(format!("user:{}", u.id))
            .user(&u.id)
            .source(client_info::ip(state, req), client_info::user_agent(req))
            .detail(json!({
                "credential": row.credential_id,
                "name": row.name,
                "hardware": row.hardware,
                "recovery_codes_issued": codes.as_ref().map_or(0, Vec::len),
            })),
        now,
    )
    .await?;
    Ok(Ok(codes))
}

/// `go`, with recovery codes to show before going on.
fn go_showing(to: &str, codes: Option<Vec<String>>) -> HttpResponse {
    match codes {
        Some(c) => HttpResponse::Ok().json(json!({ "location": to, "recovery_codes": c })),
        None => go(to, None),
    }
}

pub async fn account_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    if let Err(why) = call_of(&state, &req, &body) {
        return Ok(bad_request(why));
    }
    match session_of(&state, &req).await? {
        Ok(owner) => start_registration(&state, &owner).await,
        Err(resp) => Ok(resp),
    }
}

pub async fn account_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    let call = match call_of(&state, &req, &body) {
        Ok(c) => c,
        Err(why) => return Ok(bad_request(why)),
    };
    let owner = match session_of(&state, &req).await? {
        Ok(o) => o,
        Err(resp) => return Ok(resp),
    };
    Ok(match finish_registration(&state, &req, &owner, &call).await? {
        Ok(codes) => spent(&state, go_showing("/account?m=passkey_added", codes)),
        Err(resp) => resp,
    })
}

pub async fn enrol_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    if let Err(why) = call_of(&state, &req, &body) {
        return Ok(bad_request(why));
    }
    match super::mfa::set_up_challenge(&state, &req).await? {
        Some(c) => start_registration(&state, &Owner::Challenge(c)).await,
        None => Ok(go("/login", None)),
    }
}

/// A passkey added at login is then used at once, as the second factor of
/// this login: registration alone (attestation "none") proves nothing about
/// holding the key, an assertion does.
pub async fn enrol_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    let call = match call_of(&state, &req, &body) {
        Ok(c) => c,
        Err(why) => return Ok(bad_request(why)),
    };
    let Some(c) = super::mfa::set_up_challenge(&state, &req).await? else {
        return Ok(go("/login", None));
    };
    let owner = Owner::Challenge(c);
    let codes = match finish_registration(&state, &req, &owner, &call).await? {
        Ok(codes) => codes,
        Err(resp) => return Ok(resp),
    };
    let Owner::Challenge(c) = owner else { return Ok(go("/login", None)) };
    if !login::end_challenge(&state, &c).await.map_err(internal)? {
        return Ok(go("/login", None));
    }
    let cookie = challenge_cookie(
        &state,
        &c.user.id,
        ChallengePurpose::Mfa,
        c.row.trusted_device,
        c.row.return_to,
        c.row.first_factor,
    )
    .await?;
    let mut resp = spent(&state, go_showing("/login/mfa", codes));
    resp.add_cookie(&cookie).map_err(internal)?;
    Ok(resp)
}
