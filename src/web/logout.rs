//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0), HTTP side:
//! the confirmation page and the end of the session; the checks and the
//! back-channel notices are `oidc::logout`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde_json::{Value, json};

use crate::oidc::logout;
use crate::state::AppState;
use crate::storage::{AuditEvent, record_audit};
use crate::web::cookies::removal_cookie;
use crate::web::pages::{WebError, error_page, html};
use crate::web::{client_info, csrf};

#[derive(Template)]
#[template(path = "login/end_session.html")]
struct ConfirmPage {
    title: &'static str,
    csrf: String,
    id_token_hint: String,
    post_logout_redirect_uri: String,
    state: String,
    client_id: String,
}

#[derive(Template)]
#[template(path = "login/signed_out.html")]
struct SignedOutPage {
    title: &'static str,
}

/// The end of a logout: back to the client's registered address, or — with
/// none given — a page that says so (not the login form: the person asked
/// to leave, not to sign in).
fn done(state: &AppState, redirect: Option<String>) -> HttpResponse {
    let mut resp = match redirect {
        Some(u) => HttpResponse::Found().insert_header(("Location", u)).finish(),
        None => html(StatusCode::OK, &SignedOutPage { title: crate::web::ui::t("logout.done_title") })
            .unwrap_or_else(|_| crate::web::login::see_other("/login?m=logged_out")),
    };
    let _ = resp.add_cookie(&removal_cookie(state, crate::web::cookies::SESSION_COOKIE));
    resp
}

async fn handle(
    state: &AppState,
    req: &HttpRequest,
    p: HashMap<String, String>,
    confirmed: bool,
) -> Result<HttpResponse, WebError> {
    let r = match logout::validate(state, &p).await {
        Ok(r) => r,
        Err(msg) => return Ok(error_page(StatusCode::BAD_REQUEST, "Invalid logout request", msg)),
    };
    let Some(cur) = crate::web::cookies::current(state, req).await? else {
        return Ok(done(state, r.redirect));
    };
    // Without a hint naming this session, the user confirms (§2: the OP should
    // ask; a forged logout link must not end someone's session silently).
    let hint_matches = r.hint.as_ref().is_some_and(|h| {
        h.get("sub").and_then(Value::as_str) == Some(cur.user.id.as_str())
            && h.get("sid").and_then(Value::as_str).is_none_or(|sid| sid == cur.session.id)
    });
    if !hint_matches && !confirmed {
        let token = csrf::ensure(state, req).map_err(WebError::internal)?;
        let page = ConfirmPage {
            title: crate::web::ui::t("logout.title"),
            csrf: token.token,
            id_token_hint: p.get("id_token_hint").cloned().unwrap_or_default(),
            post_logout_redirect_uri: p.get("post_logout_redirect_uri").cloned().unwrap_or_default(),
            state: p.get("state").cloned().unwrap_or_default(),
            client_id: p.get("client_id").cloned().unwrap_or_default(),
        };
        let mut resp = html(StatusCode::OK, &page)?;
        if let Some(redirect) = &r.redirect {
            resp.headers_mut().insert(
                actix_web::http::header::CONTENT_SECURITY_POLICY,
                actix_web::http::header::HeaderValue::from_str(&super::authorize::csp_for_redirect(redirect))
                    .map_err(WebError::internal)?,
            );
        }
        if let Some(c) = token.set_cookie {
            resp.add_cookie(&c).map_err(WebError::internal)?;
        }
        return Ok(resp);
    }
    logout::end_session_everywhere(state, &cur.session.id, &cur.user.id).await?;
    record_audit(
        &state.db,
        AuditEvent::new("logout", "success")
            .user(&cur.user.id)
            .source(client_info::ip(state, req), client_info::user_agent(req))
            .detail(json!({ "session": cur.session.id, "rp_initiated": true })),
        state.clock.now(),
    )
    .await?;
    Ok(done(state, r.redirect))
}

pub async fn end_session_get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let Ok(p) = crate::oauth::params(req.query_string().as_bytes()) else {
        return Ok(error_page(
            StatusCode::BAD_REQUEST,
            "Invalid logout request",
            "A parameter is repeated or malformed.",
        ));
    };
    handle(&state, &req, p, false).await
}

pub async fn end_session_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    let Ok(mut p) = crate::oauth::params(&body) else {
        return Ok(error_page(
            StatusCode::BAD_REQUEST,
            "Invalid logout request",
            "A parameter is repeated or malformed.",
        ));
    };
    // Our own confirmation form carries a CSRF token; a relying party's POST
    // does not, and is then treated like a GET (confirmation asked).
    let confirmed = match p.remove("csrf") {
        Some(t) if csrf::verify(state.get_ref(), &req, &t) => true,
        Some(_) => return Ok(crate::web::login::stale_form()),
        None => false,
    };
    p.retain(|_, v| !v.is_empty());
    handle(&state, &req, p, confirmed).await
}
