//! The authorization endpoint's HTTP side (RFC 6749 §4.1, OIDC Core §3.1.2):
//! `/authorize` (GET and POST), its continuation after a login, and the
//! consent page. Parsing and every decision are `oauth::authorize`; this
//! module reads the request (parameters, session cookie, origin) and turns
//! the answer into a page, a redirect or an auto-submitting form post.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::crypto::random_token;
use crate::oauth::authorize::flow::{self, Need, Next};
use crate::oauth::authorize::request::{self, Failure, Reply};
use crate::oauth::authorize::{load_request, resume_path};
use crate::oauth::{OAuthError, params};
use crate::state::AppState;
use crate::web::form::StrictForm;
use crate::web::login::{see_other, stale_form};
use crate::web::pages::{WebError, error_page, html};
use crate::web::{client_info, cookies, csrf};

#[derive(Template)]
#[template(path = "consent/form_post.html")]
struct FormPostPage<'a> {
    redirect_uri: &'a str,
    fields: &'a [(&'a str, String)],
    nonce: String,
}

/// Sends `fields` (plus `state` and `iss`, RFC 9207) to the client: as query
/// parameters of a redirect, or as an auto-submitting form (a visible button
/// without JavaScript; the one script allowed by a per-response nonce).
fn to_client(state: &AppState, to: &Reply, mut fields: Vec<(&'static str, String)>) -> HttpResponse {
    if let Some(s) = &to.state {
        fields.push(("state", s.clone()));
    }
    fields.push(("iss", state.settings.issuer().to_owned()));
    if to.form_post {
        let Ok(nonce) = random_token(16) else {
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Please try again later.");
        };
        let csp =
            csp_for_redirect(&to.redirect_uri).replace("script-src 'self';", &format!("script-src 'nonce-{nonce}';"));
        let page = FormPostPage { redirect_uri: &to.redirect_uri, fields: &fields, nonce };
        return match html(StatusCode::OK, &page) {
            Ok(mut resp) => {
                if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&csp) {
                    resp.headers_mut().insert(actix_web::http::header::CONTENT_SECURITY_POLICY, v);
                }
                resp
            }
            Err(_) => error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Please try again later."),
        };
    }
    let mut url = match url::Url::parse(&to.redirect_uri) {
        Ok(u) => u,
        Err(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "The application's redirect address is invalid.",
            );
        }
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in &fields {
            q.append_pair(k, v);
        }
    }
    HttpResponse::Found().insert_header(("Location", url.to_string())).finish()
}

fn error_redirect(state: &AppState, to: &Reply, e: &OAuthError) -> HttpResponse {
    answer(state, Next::error(to, e))
}

/// The response for what happens next.
fn answer(state: &AppState, next: Next) -> HttpResponse {
    match next {
        Next::ToClient(to, fields) => to_client(state, &to, fields),
        Next::Login(h) => see_other(&format!("/login?request={h}")),
        Next::Consent(h) => see_other(&format!("/consent?request={h}")),
    }
}

fn respond(state: &AppState, f: Failure) -> HttpResponse {
    match f {
        Failure::Page(msg) => error_page(StatusCode::BAD_REQUEST, "Invalid sign-in request", msg),
        Failure::Redirect { to, error } => {
            tracing::debug!(error = %error, "authorization request refused");
            error_redirect(state, &to, &error)
        }
    }
}

async fn authorize(state: &AppState, req: &HttpRequest, raw: &[u8]) -> HttpResponse {
    let p = match params(raw) {
        Ok(p) => p,
        Err(_) => {
            return respond(
                state,
                Failure::Page("The sign-in request is malformed (a parameter is repeated or not valid UTF-8)."),
            );
        }
    };
    let (p, pushed) = match request::with_pushed(state, p).await {
        Ok(v) => v,
        Err(f) => return respond(state, f),
    };
    let p = if pushed {
        p
    } else {
        match request::with_request_object(state, p).await {
            Ok(p) => p,
            Err(f) => return respond(state, f),
        }
    };
    let origin = client_info::origin(state, req);
    let (r, c) = match request::validate(state, &p, pushed).await {
        Ok(v) => v,
        Err(f) => {
            flow::audit_refused(state, &origin, &p, &f).await;
            return respond(state, f);
        }
    };
    let to = r.reply();
    let cur = match cookies::current(state, req).await {
        Ok(cur) => cur,
        Err(e) => {
            tracing::error!(error = %e, "reading the session");
            return error_redirect(state, &to, &OAuthError::ServerError);
        }
    };
    match flow::proceed(state, &origin, cur.as_ref(), r, &c, None, false).await {
        Ok(next) => answer(state, next),
        Err(e) => error_redirect(state, &to, &e),
    }
}

pub async fn authorize_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    authorize(&state, &req, req.query_string().as_bytes()).await
}

pub async fn authorize_post(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if body.len() > 16 * 1024 {
        return respond(&state, Failure::Page("The sign-in request is too large."));
    }
    authorize(&state, &req, &body).await
}

#[derive(Deserialize)]
pub struct Handle {
    request: String,
}

const EXPIRED: &str = "This sign-in request has expired or is not valid. Go back to the application and start again.";

pub async fn resume(state: web::Data<AppState>, req: HttpRequest, q: web::Query<Handle>) -> HttpResponse {
    match load_request(&state, &q.request).await {
        Ok(Some((r, c))) => {
            let to = r.reply();
            let origin = client_info::origin(&state, &req);
            let cur = match cookies::current(&state, &req).await {
                Ok(cur) => cur,
                Err(e) => {
                    tracing::error!(error = %e, "reading the session");
                    return error_redirect(&state, &to, &OAuthError::ServerError);
                }
            };
            match flow::proceed(&state, &origin, cur.as_ref(), r, &c, Some(q.request.clone()), false).await {
                Ok(next) => answer(&state, next),
                Err(e) => error_redirect(&state, &to, &e),
            }
        }
        Ok(None) => error_page(StatusCode::BAD_REQUEST, "Sign-in request expired", EXPIRED),
        Err(_) => error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Please try again later."),
    }
}

/// CSP for pages whose form ends in a redirect to the client: browsers apply
/// `form-action` to the redirect too (see web::headers::CSP).
pub fn csp_for_redirect(redirect_uri: &str) -> String {
    let origin = match url::Url::parse(redirect_uri) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => u.origin().ascii_serialization(),
        Ok(u) => format!("{}:", u.scheme()),
        Err(_) => String::new(),
    };
    super::headers::CSP.replace("form-action 'self'", &format!("form-action 'self' {origin}"))
}

#[derive(Template)]
#[template(path = "consent/consent.html")]
struct ConsentPage {
    title: &'static str,
    csrf: String,
    request: String,
    client_name: String,
    username: String,
    scopes: Vec<(String, &'static str)>,
    /// The API the access is for (RFC 8707 `resource`), if not the app itself.
    resource: Option<String>,
    /// How long the app may keep acting without the user: the refresh-token
    /// lifetime in days, when it may use refresh tokens.
    offline_days: Option<i64>,
    /// The access-token lifetime in minutes.
    access_minutes: i64,
    /// The app's return address host, so the user sees where they are sent.
    redirect_host: String,
    /// The client registered itself (RFC 7591): its name is only its claim.
    unverified: bool,
}

fn describe_scope(s: &str) -> &'static str {
    match s {
        "openid" => "Know who you are (your account identifier)",
        "profile" => "Your name and username",
        "email" => "Your email address",
        "roles" => "Your roles",
        "offline_access" => "Stay connected when you are not using it",
        _ => "Access on your behalf",
    }
}

pub async fn consent_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<Handle>,
) -> Result<HttpResponse, WebError> {
    let Some((r, c)) = load_request(&state, &q.request).await.map_err(WebError::internal)? else {
        return Ok(error_page(StatusCode::BAD_REQUEST, "Sign-in request expired", EXPIRED));
    };
    let Some(cur) = crate::web::cookies::current(&state, &req).await? else {
        return Ok(see_other(&format!("/login?request={}", q.request)));
    };
    // The consent page is only for a request whose one remaining need is
    // consent: a step-up or re-login the request asked for comes first.
    match flow::need(&state, &r, &c, Some(&cur), false).await.map_err(WebError::internal)? {
        Need::Consent => {}
        Need::Login => return Ok(see_other(&format!("/login?request={}", q.request))),
        Need::Nothing => return Ok(see_other(&resume_path(&q.request))),
    }
    let token = csrf::ensure(&state, &req).map_err(WebError::internal)?;
    let page = ConsentPage {
        title: crate::web::ui::t("consent.title"),
        csrf: token.token,
        request: q.request.clone(),
        client_name: c.display_name().to_owned(),
        unverified: c.registered_ms.is_some(),
        username: cur.user.username.clone(),
        scopes: r.consent_scopes().iter().map(|s| (s.clone(), describe_scope(s))).collect(),
        resource: r.resource.clone(),
        access_minutes: (state.settings.access_token_ttl_secs / 60).max(1),
        offline_days: c.has_grant("refresh_token").then_some(state.settings.refresh_token_ttl_secs / 86_400),
        redirect_host: url::Url::parse(&r.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| r.redirect_uri.clone()),
    };
    let mut resp = html(StatusCode::OK, &page)?;
    resp.headers_mut().insert(
        actix_web::http::header::CONTENT_SECURITY_POLICY,
        actix_web::http::header::HeaderValue::from_str(&csp_for_redirect(&r.redirect_uri))
            .map_err(WebError::internal)?,
    );
    if let Some(ck) = token.set_cookie {
        resp.add_cookie(&ck).map_err(WebError::internal)?;
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub struct ConsentForm {
    csrf: String,
    request: String,
    decision: String,
}

pub async fn consent_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: StrictForm<ConsentForm>,
) -> Result<HttpResponse, WebError> {
    if !csrf::verify(&state, &req, &form.csrf) {
        return Ok(stale_form());
    }
    let Some((r, c)) = load_request(&state, &form.request).await.map_err(WebError::internal)? else {
        return Ok(error_page(StatusCode::BAD_REQUEST, "Sign-in request expired", EXPIRED));
    };
    let Some(cur) = crate::web::cookies::current(&state, &req).await? else {
        return Ok(see_other(&format!("/login?request={}", form.request)));
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return Ok(error_page(StatusCode::BAD_REQUEST, "Bad request", "Choose Allow or Deny.")),
    };
    let origin = client_info::origin(&state, &req);
    let to = r.reply();
    Ok(match flow::answer_consent(&state, &origin, &cur, (r, c), &form.request, approve).await {
        Ok(next) => answer(&state, next),
        Err(e @ OAuthError::AccessDenied(_)) => error_redirect(&state, &to, &e),
        Err(e) => return Err(WebError::internal(e)),
    })
}
