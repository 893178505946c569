//! The browser's side of a session: cookie names and flags, and the session
//! a request's cookie points at (`session::current` does the lookup).

use actix_web::HttpRequest;
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::cookie::{Cookie, SameSite};
use sea_orm::DbErr;

use crate::session::Current;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "portcullis_session";

/// The cookie names: `__Host-` prefixed under https (no Domain, Path=/, Secure:
/// a sibling subdomain cannot plant or overwrite it).
pub fn cookie_name(state: &AppState, base: &str) -> String {
    if state.settings.is_https() { format!("__Host-{base}") } else { base.to_owned() }
}

/// A cookie with the flags every Portcullis cookie has.
pub fn build_cookie(state: &AppState, base: &str, value: String, same_site: SameSite) -> Cookie<'static> {
    let mut c = Cookie::new(cookie_name(state, base), value);
    c.set_http_only(true);
    c.set_secure(state.settings.is_https());
    c.set_same_site(same_site);
    c.set_path("/");
    c
}

/// A cookie that deletes `base` in the browser.
pub fn removal_cookie(state: &AppState, base: &str) -> Cookie<'static> {
    let mut c = build_cookie(state, base, String::new(), SameSite::Lax);
    c.make_removal();
    c
}

/// The session cookie's value, if any.
pub fn cookie_value(state: &AppState, req: &HttpRequest) -> Option<String> {
    req.cookie(&cookie_name(state, SESSION_COOKIE))
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The live session of this request, if its cookie names one.
pub async fn current(state: &AppState, req: &HttpRequest) -> Result<Option<Current>, DbErr> {
    match cookie_value(state, req) {
        Some(secret) => crate::session::current(state, &secret).await,
        None => Ok(None),
    }
}

/// The session cookie for a new session's secret: a session cookie (no
/// Max-Age), so it also ends when the browser closes.
pub fn session_cookie(state: &AppState, secret: String) -> Cookie<'static> {
    build_cookie(state, SESSION_COOKIE, secret, SameSite::Lax)
}

/// Cookie lifetime helper for long-lived cookies.
pub fn days(n: i64) -> CookieDuration {
    CookieDuration::days(n)
}

/// The signed-in person behind a page: the live session, else the browser
/// is sent to the login page (and back here after it) before the handler
/// runs. Every page that needs a session takes one; the pages for which
/// "no session" is a normal case (login, `/authorize`, logout) call
/// [`current`] themselves.
pub struct SignedIn(pub Current);

impl actix_web::FromRequest for SignedIn {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<actix_web::web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorInternalServerError("the application state is missing"))?;
            match current(&state, &req).await.map_err(super::pages::WebError::from)? {
                Some(cur) => Ok(Self(cur)),
                None => {
                    let answer = super::login::to_login(&state, &req);
                    Err(actix_web::error::InternalError::from_response("not signed in", answer).into())
                }
            }
        })
    }
}
