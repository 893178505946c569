//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and
//! back-channel logout (OpenID Connect Back-Channel Logout 1.0).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::session::{self, removal_cookie};
use crate::state::AppState;
use crate::storage::entities::{client, refresh_family, session_client};
use crate::storage::{AuditEvent, record_audit};
use crate::web::pages::{WebError, error_page, html};
use crate::web::{client_info, csrf};

/// Ends a browser session everywhere: the record, its refresh-token families,
/// and — in the background — each client that registered a back-channel
/// logout URI and took part in it.
pub async fn end_session_everywhere(state: &AppState, session_id: &str, user_id: &str) -> Result<(), sea_orm::DbErr> {
    let now_ms = state.clock.now().timestamp_millis();
    session::end(&state.db, session_id).await?;
    refresh_family::Entity::update_many()
        .col_expr(refresh_family::Column::RevokedMs, Expr::val(now_ms))
        .filter(refresh_family::Column::SessionId.eq(session_id))
        .filter(refresh_family::Column::RevokedMs.is_null())
        .exec(&state.db)
        .await?;
    let joined =
        session_client::Entity::find().filter(session_client::Column::SessionId.eq(session_id)).all(&state.db).await?;
    session_client::Entity::delete_many()
        .filter(session_client::Column::SessionId.eq(session_id))
        .exec(&state.db)
        .await?;
    for sc in joined {
        let Some(c) = client::Entity::find_by_id(sc.client_id.as_str()).one(&state.db).await? else { continue };
        let Some(uri) = c.backchannel_logout_uri.clone() else { continue };
        let Ok(token) = logout_token(state, &c, user_id, session_id) else { continue };
        let st = state.clone();
        let client_id = c.client_id.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build();
            let outcome = match http {
                Ok(h) => match h.post(&uri).form(&[("logout_token", token.as_str())]).send().await {
                    Ok(r) if r.status().is_success() => "success",
                    _ => "failure",
                },
                Err(_) => "failure",
            };
            let _ = record_audit(
                &st.db,
                AuditEvent::new("oidc.backchannel_logout", outcome).client(client_id),
                st.clock.now(),
            )
            .await;
        });
    }
    Ok(())
}

/// After sessions were ended in a committed transaction (credential change,
/// disabling, an administrator's "end sessions"): the back-channel logout of
/// every client that took part in them. Best effort, like any back-channel
/// call: a failure is logged, never an error for the caller.
pub async fn notify_ended(state: &AppState, user_id: &str, session_ids: &[String]) {
    for id in session_ids {
        if let Err(e) = end_session_everywhere(state, id, user_id).await {
            tracing::warn!(error = %e, "back-channel logout after ending sessions failed");
        }
    }
}

/// Back-Channel Logout 1.0 §2.4.
fn logout_token(
    state: &AppState,
    c: &client::Model,
    sub: &str,
    sid: &str,
) -> Result<String, crate::tokens::jwt::JwtError> {
    let now = state.clock.now().timestamp();
    let alg = crate::domain::SigningAlg::parse(&c.id_token_alg).unwrap_or(crate::domain::SigningAlg::RS256);
    let claims = json!({
        "iss": state.settings.issuer(),
        "sub": sub,
        "aud": c.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": uuid::Uuid::new_v4().to_string(),
        "sid": sid,
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    crate::tokens::jwt::sign(&state.keyring(), &state.rng, alg, "logout+jwt", &claims)
}

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

fn read_list(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// The validated logout request.
struct LogoutRequest {
    hint: Option<Value>,
    redirect: Option<String>,
}

async fn validate(state: &AppState, p: &HashMap<String, String>) -> Result<LogoutRequest, &'static str> {
    let hint = match p.get("id_token_hint").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match crate::tokens::jwt::verify(&state.keyring(), t, Some("JWT")) {
            // An expired hint is fine (§2): it only identifies the session.
            Ok(v) if v.claims.get("iss").and_then(Value::as_str) == Some(state.settings.issuer()) => Some(v.claims),
            _ => return Err("The logout request carries an ID token that was not issued here."),
        },
    };
    let hint_aud = hint
        .as_ref()
        .and_then(|h| h.get("aud"))
        .and_then(|a| a.as_str().map(str::to_owned).or_else(|| a.get(0).and_then(Value::as_str).map(str::to_owned)));
    let client_id = p.get("client_id").filter(|c| !c.is_empty()).cloned().or(hint_aud.clone());
    if let (Some(a), Some(c)) = (&hint_aud, p.get("client_id"))
        && a != c
    {
        return Err("The logout request names two different applications.");
    }
    let redirect = match p.get("post_logout_redirect_uri").filter(|u| !u.is_empty()) {
        None => None,
        Some(uri) => {
            let Some(cid) = client_id else {
                return Err("The logout request does not say which application it comes from.");
            };
            let Ok(Some(c)) = client::Entity::find_by_id(cid.as_str()).one(&state.db).await else {
                return Err("The application is not registered here.");
            };
            // Exact match against the registered list; never an open redirect.
            if !read_list(&c.post_logout_redirect_uris).iter().any(|r| r == uri) {
                return Err("The address to return to after logout is not registered for the application.");
            }
            let mut u = url::Url::parse(uri).map_err(|_| "The return address is invalid.")?;
            if let Some(s) = p.get("state") {
                u.query_pairs_mut().append_pair("state", s);
            }
            Some(u.to_string())
        }
    };
    Ok(LogoutRequest { hint, redirect })
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
        None => html(StatusCode::OK, &SignedOutPage { title: "Signed out" })
            .unwrap_or_else(|_| crate::web::login::see_other("/login?m=logged_out")),
    };
    let _ = resp.add_cookie(&removal_cookie(state, session::SESSION_COOKIE));
    resp
}

async fn handle(
    state: &AppState,
    req: &HttpRequest,
    p: HashMap<String, String>,
    confirmed: bool,
) -> Result<HttpResponse, WebError> {
    let r = match validate(state, &p).await {
        Ok(r) => r,
        Err(msg) => return Ok(error_page(StatusCode::BAD_REQUEST, "Invalid logout request", msg)),
    };
    let Some(cur) = session::current(state, req).await? else {
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
            title: "Log out",
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
                actix_web::http::header::HeaderValue::from_str(&crate::oauth::authorize::csp_for_redirect(redirect))
                    .map_err(WebError::internal)?,
            );
        }
        if let Some(c) = token.set_cookie {
            resp.add_cookie(&c).map_err(WebError::internal)?;
        }
        return Ok(resp);
    }
    end_session_everywhere(state, &cur.session.id, &cur.user.id).await?;
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

#[get("/end_session")]
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

#[post("/end_session")]
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
