//! The device grant's HTTP side (RFC 8628): `POST /device_authorization`
//! for devices, and the `/device` page where a signed-in person enters the
//! user code, sees which application on which device asks for what, and
//! approves or denies. The decisions are `oauth::device`.

use crate::web::cookies::SignedIn;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::oauth::OAuthError;
use crate::oauth::device::{self, Refused};
use crate::state::AppState;
use crate::web::form::StrictForm;
use crate::web::login::{stale_form, to_login};
use crate::web::pages::{WebError, error_page, html};
use crate::web::ui::t;
use crate::web::{client_info, cookies, csrf};

/// Code lookups one address may make per `login_ip_window_secs` window: with
/// 20^8 codes alive at most 10 minutes, guessing one is hopeless.
const LOOKUPS_PER_WINDOW: i32 = 30;

/// RFC 8628 §3.1: a device asks for codes (client-authenticated; public
/// clients, being anonymous, are limited per address).
pub async fn device_authorization(
    caller: super::token::ClientCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let super::token::ClientCaller { client: c, params: p, origin } = caller;
    // Anonymous callers (public clients) and strangers (self-registered
    // clients) make us store codes: bounded per address.
    if (c.method == "none" || c.client.registered_ms.is_some())
        && let Some(ip) = &origin.ip
    {
        let now_ms = state.clock.now().timestamp_millis();
        let n = crate::authn::throttle::admit_ip_for(&state.db, &state.settings, "device", ip, now_ms).await?;
        if n > state.settings.authorize_ip_max_pending {
            return Err(OAuthError::TooManyRequests);
        }
    }
    let out = device::start(&state, &c.client, &p, &origin).await?;
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(out))
}

#[derive(Template)]
#[template(path = "device/entry.html")]
struct EntryPage {
    title: &'static str,
    error: Option<&'static str>,
    typed: String,
}

#[derive(Template)]
#[template(path = "device/confirm.html")]
struct ConfirmPage {
    title: &'static str,
    csrf: String,
    user_code: String,
    shown_code: String,
    client_name: String,
    username: String,
    scopes: Vec<String>,
    resource: Option<String>,
    device_ip: String,
    device_agent: String,
    /// The client registered itself: its name is its own claim.
    unverified: bool,
}

#[derive(Template)]
#[template(path = "device/done.html")]
struct DonePage {
    title: &'static str,
    text: &'static str,
}

/// Every code looked up or answered counts, per address and per account: a
/// guess is a lookup whichever way it is made.
async fn lookup_limited(state: &AppState, req: &HttpRequest, user_id: &str) -> Result<Option<HttpResponse>, WebError> {
    let origin = client_info::origin(state, req);
    let now_ms = state.clock.now().timestamp_millis();
    let mut keys = vec![format!("user:{user_id}")];
    keys.extend(origin.ip.clone());
    for key in keys {
        let n = crate::authn::throttle::admit_ip_for(&state.db, &state.settings, "device_lookup", &key, now_ms)
            .await
            .map_err(WebError::internal)?;
        if n > LOOKUPS_PER_WINDOW {
            return Ok(Some(error_page(StatusCode::TOO_MANY_REQUESTS, t("device.title"), t("device.too_many"))));
        }
    }
    Ok(None)
}

#[derive(Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

fn entry(error: Option<&'static str>, typed: &str, status: StatusCode) -> Result<HttpResponse, WebError> {
    html(status, &EntryPage { title: t("device.title"), error, typed: typed.chars().take(16).collect() })
}

/// `GET /device/qr?user_code=WDJB-MJHT`: the `verification_uri_complete` as
/// an SVG QR code, for a device that would rather show an image than draw
/// one. Nothing is looked up (the answer says nothing about the code).
pub async fn device_qr(state: web::Data<AppState>, q: web::Query<DeviceQuery>) -> HttpResponse {
    let Some(code) = q.user_code.as_deref().and_then(device::normalize) else {
        return HttpResponse::BadRequest().body("user_code: 8 letters of BCDFGHJKLMNPQRSTVWXZ");
    };
    let url = format!("{}/device?user_code={}", state.settings.issuer(), device::display(&code));
    match qrcode::QrCode::new(url.as_bytes()) {
        Ok(qr) => HttpResponse::Ok()
            .content_type("image/svg+xml")
            .insert_header(("Cache-Control", "no-store"))
            .body(qr.render::<qrcode::render::svg::Color<'_>>().min_dimensions(240, 240).quiet_zone(true).build()),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// `/device` and `/device?user_code=…` (the `verification_uri_complete`).
pub async fn device_get(
    SignedIn(cur): SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<DeviceQuery>,
) -> Result<HttpResponse, WebError> {
    let Some(typed) = q.user_code.as_deref().filter(|c| !c.trim().is_empty()) else {
        return entry(None, "", StatusCode::OK);
    };
    if let Some(r) = lookup_limited(&state, &req, &cur.user.id).await? {
        return Ok(r);
    }
    let pending = match device::normalize(typed) {
        Some(code) => device::pending(&state, &code).await.map_err(WebError::internal)?,
        None => None,
    };
    let Some(p) = pending else {
        return entry(Some(t("device.unknown")), typed, StatusCode::BAD_REQUEST);
    };
    let token = csrf::ensure(&state, &req).map_err(WebError::internal)?;
    let page = ConfirmPage {
        title: t("device.confirm_title"),
        csrf: token.token,
        shown_code: device::display(&p.user_code),
        user_code: p.user_code,
        client_name: p.client.display_name().to_owned(),
        unverified: p.client.registered_ms.is_some(),
        username: cur.user.username.clone(),
        scopes: p.scope,
        resource: p.resource,
        device_ip: p.origin_ip.unwrap_or_else(|| "?".into()),
        device_agent: p.origin_agent.unwrap_or_default(),
    };
    let mut resp = html(StatusCode::OK, &page)?;
    if let Some(ck) = token.set_cookie {
        resp.add_cookie(&ck).map_err(WebError::internal)?;
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub struct DecisionForm {
    csrf: String,
    user_code: String,
    decision: String,
}

/// The person's answer (CSRF-protected, for the signed-in session).
pub async fn device_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<DecisionForm>,
) -> Result<HttpResponse, WebError> {
    if !csrf::verify(&state, &req, &form.csrf) {
        return Ok(stale_form());
    }
    let Some(cur) = cookies::current(&state, &req).await? else {
        return Ok(to_login(&state, &req));
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return Ok(error_page(StatusCode::BAD_REQUEST, "Bad request", "Choose Allow or Deny.")),
    };
    if let Some(r) = lookup_limited(&state, &req, &cur.user.id).await? {
        return Ok(r);
    }
    let Some(code) = device::normalize(&form.user_code) else {
        return entry(Some(t("device.unknown")), "", StatusCode::BAD_REQUEST);
    };
    let origin = client_info::origin(&state, &req);
    let done = |text| html(StatusCode::OK, &DonePage { title: t("device.title"), text });
    match device::decide(&state, &origin, &cur, &code, approve).await {
        Ok(()) if approve => Ok(done(t("device.approved"))?),
        Ok(()) => Ok(done(t("device.denied"))?),
        Err(Refused::Gone) => entry(Some(t("device.unknown")), "", StatusCode::BAD_REQUEST),
        Err(Refused::Weak) => Ok(error_page(StatusCode::FORBIDDEN, t("device.title"), t("device.weak"))),
        Err(Refused::Policy) => Ok(error_page(StatusCode::FORBIDDEN, t("device.title"), t("device.policy"))),
        Err(Refused::Failed(e)) => Err(WebError::internal(e)),
    }
}
