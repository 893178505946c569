//! The authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1.2), with the
//! login, step-up and consent it may need.
//!
//! Until the client and its exact, registered `redirect_uri` are known, errors
//! are shown as a page and never redirected (RFC 6749 §4.1.2.1: no open
//! redirector). After that, errors go back to the client with `state` and
//! `iss` (RFC 9207). A request that needs the user is stored server-side and
//! referred to by an unguessable handle; nothing the browser sends back about
//! it is trusted.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{OAuthError, params, scope_allowed, split_scope};
use crate::crypto::random_token;
use crate::session::{self, Current};
use crate::state::AppState;
use crate::storage::entities::{authorization_code, authorization_request, client, consent, session_client};
use crate::storage::{AuditEvent, record_audit};
use crate::web::form::StrictForm;
use crate::web::login::{see_other, stale_form};
use crate::web::pages::{WebError, error_page, html};
use crate::web::{client_info, csrf};

/// How long a pending authorization request waits for the user.
const REQUEST_TTL_MS: i64 = 10 * 60 * 1000;

/// The validated parameters of an authorization request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthzRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub acr_values: Vec<String>,
    /// `sub` of a valid `id_token_hint`.
    pub hint_sub: Option<String>,
    pub resource: Option<String>,
    /// When the request was first seen (ms): a `prompt=login` is satisfied by
    /// a login after this.
    pub created_ms: i64,
    /// `login_hint` (OIDC Core §3.1.2.1): pre-fills the username, nothing more.
    #[serde(default)]
    pub login_hint: Option<String>,
    /// `response_mode=form_post`.
    #[serde(default)]
    pub form_post: bool,
    /// The `claims` parameter (OIDC Core §5.5).
    #[serde(default)]
    pub claims: Option<super::claims::ClaimsRequest>,
    /// The session that logged in for this request, once one has (stored in
    /// the request's row, not in its parameters).
    #[serde(skip)]
    pub login_session: Option<String>,
}

impl AuthzRequest {
    /// Where and how this request's answer goes.
    pub fn reply(&self) -> Reply {
        Reply { redirect_uri: self.redirect_uri.clone(), state: self.state.clone(), form_post: self.form_post }
    }

    /// Whether `user_id` must have used a second factor for this request.
    pub async fn second_factor_required(
        &self,
        state: &AppState,
        c: &client::Model,
        user_id: &str,
    ) -> Result<bool, sea_orm::DbErr> {
        let essential = self.claims.as_ref().and_then(super::claims::ClaimsRequest::essential_acr);
        let acr = super::access::AcrRequest { voluntary: &self.acr_values, essential: essential.as_deref() };
        super::access::second_factor_required(state, user_id, c, &acr, self.resource.as_deref()).await
    }

    /// The scopes consent must cover: the requested ones and those of the
    /// claims asked for by name.
    pub fn consent_scopes(&self) -> Vec<String> {
        let mut out = self.scope.clone();
        for s in self.claims.iter().flat_map(super::claims::ClaimsRequest::implied_scopes) {
            if !out.iter().any(|x| x == s) {
                out.push(s.to_owned());
            }
        }
        out
    }
}

/// Where an error goes: a page (no trusted redirect yet) or the client.
enum Failure {
    Page(&'static str),
    Redirect { to: Reply, error: OAuthError },
}

/// How the answer reaches the client: its registered redirect URI, the
/// request's `state`, and the response mode (RFC 6749 query, or the OAuth 2.0
/// Form Post Response Mode).
#[derive(Debug, Clone)]
pub struct Reply {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub form_post: bool,
}

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
fn to_client(state: &AppState, to: &Reply, mut fields: Vec<(&str, String)>) -> HttpResponse {
    if let Some(s) = &to.state {
        fields.push(("state", s.clone()));
    }
    fields.push(("iss", state.settings.issuer().to_owned()));
    if to.form_post {
        let Ok(nonce) = random_token(16) else {
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Please try again later.");
        };
        let csp = csp_for_redirect(&to.redirect_uri)
            .replace("default-src 'none';", &format!("default-src 'none'; script-src 'nonce-{nonce}';"));
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
    to_client(state, to, vec![("error", e.code().to_owned()), ("error_description", e.description().to_owned())])
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

fn read_list(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Whether `given` is the registered redirect URI: the same string, or —
/// for an `http` loopback IP literal (127.0.0.1 or [::1], RFC 8252 §7.3,
/// native apps listening on an ephemeral port) — the same URI on any port.
fn redirect_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    let (Ok(r), Ok(g)) = (url::Url::parse(registered), url::Url::parse(given)) else {
        return false;
    };
    let loopback = |u: &url::Url| {
        u.scheme() == "http"
            && match u.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                _ => false,
            }
    };
    loopback(&r)
        && loopback(&g)
        && r.host() == g.host()
        && r.path() == g.path()
        && r.query() == g.query()
        && g.fragment().is_none()
        && g.username().is_empty()
        && g.password().is_none()
}

fn is_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Validates the parameters (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1).
async fn validate(state: &AppState, p: &HashMap<String, String>) -> Result<(AuthzRequest, client::Model), Failure> {
    let Some(client_id) = p.get("client_id") else {
        return Err(Failure::Page("The application did not say who it is (client_id is missing)."));
    };
    let Ok(Some(c)) = client::Entity::find_by_id(client_id.as_str()).one(&state.db).await else {
        return Err(Failure::Page("The application is not registered here."));
    };
    let Some(redirect_uri) = p.get("redirect_uri") else {
        return Err(Failure::Page("The application did not say where to return (redirect_uri is missing)."));
    };
    // Exact string comparison (RFC 9700 §4.1.3): no prefix or pattern
    // matching — but for a loopback IP literal, any port (RFC 8252 §7.3).
    if !read_list(&c.redirect_uris).iter().any(|r| redirect_matches(r, redirect_uri)) {
        return Err(Failure::Page("The application's return address is not registered for it."));
    }
    let st = p.get("state").cloned();
    // The response mode decides how even the errors below travel.
    let (form_post, bad_mode) = match p.get("response_mode").map(String::as_str) {
        None | Some("query") => (false, false),
        Some("form_post") => (true, false),
        Some(_) => (false, true),
    };
    let to = Reply { redirect_uri: redirect_uri.clone(), state: st.clone(), form_post };
    let fail = |error: OAuthError| Failure::Redirect { to: to.clone(), error };
    if st.as_ref().is_some_and(|s| s.len() > 2048) {
        return Err(Failure::Redirect {
            to: Reply { state: None, ..to.clone() },
            error: OAuthError::InvalidRequest("state is too long"),
        });
    }
    if bad_mode {
        return Err(fail(OAuthError::InvalidRequest("response_mode must be query or form_post")));
    }
    match p.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(_) => return Err(fail(OAuthError::UnsupportedResponseType)),
        None => return Err(fail(OAuthError::InvalidRequest("response_type is required"))),
    }
    if p.contains_key("request_uri") {
        return Err(fail(OAuthError::RequestUriNotSupported));
    }
    if !read_list(&c.grant_types).iter().any(|g| g == "authorization_code") {
        return Err(fail(OAuthError::UnauthorizedClient("this client may not use the authorization code grant")));
    }
    let scope = split_scope(p.get("scope").map(String::as_str).unwrap_or_default()).map_err(fail)?;
    if scope.is_empty() {
        return Err(fail(OAuthError::InvalidScope("scope is required")));
    }
    let registered = read_list(&c.scopes);
    if scope.iter().any(|s| !scope_allowed(s, &registered)) {
        return Err(fail(OAuthError::InvalidScope("a requested scope is not allowed for this client")));
    }
    // PKCE (RFC 7636): S256 only; required unless this confidential client
    // was registered with `--pkce optional`.
    let code_challenge = p.get("code_challenge").cloned();
    match (p.get("code_challenge_method").map(String::as_str), &code_challenge) {
        (Some("S256"), Some(ch)) if is_pkce_value(ch) => {}
        (Some("S256"), Some(_)) => return Err(fail(OAuthError::InvalidRequest("malformed code_challenge"))),
        (Some(_), Some(_)) => return Err(fail(OAuthError::InvalidRequest("code_challenge_method must be S256"))),
        (None, Some(_)) => return Err(fail(OAuthError::InvalidRequest("code_challenge_method must be S256"))),
        (Some(_), None) => {
            return Err(fail(OAuthError::InvalidRequest("code_challenge is required with code_challenge_method")));
        }
        (None, None) if c.pkce_required || c.public => {
            return Err(fail(OAuthError::InvalidRequest("PKCE is required: send code_challenge with method S256")));
        }
        (None, None) => {}
    }
    let nonce = p.get("nonce").cloned();
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return Err(fail(OAuthError::InvalidRequest("nonce is too long")));
    }
    let prompt: Vec<String> = p
        .get("prompt")
        .map(|v| v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    if prompt.iter().any(|v| !matches!(v.as_str(), "none" | "login" | "consent" | "select_account")) {
        return Err(fail(OAuthError::InvalidRequest("unsupported prompt value")));
    }
    if prompt.iter().any(|v| v == "none") && prompt.len() > 1 {
        return Err(fail(OAuthError::InvalidRequest("prompt=none cannot be combined with other values")));
    }
    let max_age = match p.get("max_age") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| fail(OAuthError::InvalidRequest("max_age must be a non-negative integer")))?,
        ),
    };
    let acr_values: Vec<String> = p
        .get("acr_values")
        .map(|v| v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let hint_sub = match p.get("id_token_hint") {
        None => None,
        Some(t) => {
            let ring = state.keyring();
            // Only our ID tokens (typ JWT): an access token (at+jwt) or a
            // logout token is not a hint about who the user is.
            match crate::tokens::jwt::verify(&ring, t, Some("JWT")) {
                Ok(v) if v.claims.get("iss").and_then(|i| i.as_str()) == Some(state.settings.issuer()) => {
                    v.claims.get("sub").and_then(|s| s.as_str()).map(str::to_owned)
                }
                _ => {
                    return Err(fail(OAuthError::InvalidRequest(
                        "id_token_hint is not a valid ID token from this provider",
                    )));
                }
            }
        }
    };
    let resource = match p.get("resource") {
        None => None,
        Some(r) => {
            if !crate::admin::clients::is_resource_indicator(r) {
                return Err(fail(OAuthError::InvalidRequest(
                    "resource must be an absolute URI without a fragment (RFC 8707)",
                )));
            }
            // Only resources registered for the client: otherwise any client
            // a user signs in to could mint tokens for any API, the admin API
            // included, acting with that user's rights.
            if !crate::admin::clients::may_request(&c, r) {
                return Err(fail(OAuthError::InvalidTarget("this client may not request tokens for that resource")));
            }
            Some(r.clone())
        }
    };
    // Claims asked for by name are held to the same registration as the
    // scopes they belong to: a client not registered for `email` does not get
    // an email address by naming the claim (unknown names are dropped too).
    let claims = match p.get("claims") {
        None => None,
        Some(text) => {
            let mut asked = super::claims::ClaimsRequest::parse(text).map_err(fail)?;
            asked.retain(|name| {
                name == "acr" || super::claims::scope_of(name).is_some_and(|s| scope_allowed(s, &registered))
            });
            Some(asked).filter(|c| !c.is_empty())
        }
    };
    // An essential acr none of whose values we offer cannot be met: say so
    // now, not after a login that could never satisfy it.
    if let Some(values) = claims.as_ref().and_then(super::claims::ClaimsRequest::essential_acr)
        && !values.is_empty()
        && !values.iter().any(|v| v == "1" || v == "2")
    {
        return Err(fail(OAuthError::UnmetAuthenticationRequirements));
    }
    let req = AuthzRequest {
        client_id: c.client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        scope,
        state: st.clone(),
        nonce,
        code_challenge,
        prompt,
        max_age,
        acr_values,
        hint_sub,
        resource,
        created_ms: state.clock.now().timestamp_millis(),
        // A hint, not an instruction: kept only when it could be a username.
        login_hint: p.get("login_hint").filter(|h| crate::domain::Username::parse(h).is_ok()).cloned(),
        form_post,
        claims,
        login_session: None,
    };
    Ok((req, c))
}

fn request_hash(state: &AppState, token: &str) -> String {
    state.master_key.hasher().hash(&format!("authz-request:{token}"))
}

async fn store(state: &AppState, req: &HttpRequest, r: &AuthzRequest) -> Result<String, OAuthError> {
    // Anonymous callers make us store a pending request: bounded per address.
    if let Some(ip) = client_info::ip(state, req) {
        let n = crate::authn::throttle::admit_ip_for(
            &state.db,
            &state.settings,
            "authorize",
            &ip,
            state.clock.now().timestamp_millis(),
        )
        .await?;
        if n > state.settings.authorize_ip_max_pending {
            if n == state.settings.authorize_ip_max_pending + 1 {
                tracing::warn!(event = "rate_limited", ip = %ip, "too many pending authorization requests");
            }
            return Err(OAuthError::TooManyRequests);
        }
    }
    let token = random_token(32).map_err(|_| OAuthError::ServerError)?;
    authorization_request::ActiveModel {
        id_hash: Set(request_hash(state, &token)),
        client_id: Set(r.client_id.clone()),
        params: Set(serde_json::to_string(r).map_err(|_| OAuthError::ServerError)?),
        created_ms: Set(r.created_ms),
        expires_ms: Set(r.created_ms + REQUEST_TTL_MS),
        login_session: Set(None),
    }
    .insert(&state.db)
    .await?;
    Ok(token)
}

/// Loads a pending request by its handle (from a query or a hidden field).
pub async fn load_request(state: &AppState, token: &str) -> Result<Option<(AuthzRequest, client::Model)>, OAuthError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    let now_ms = state.clock.now().timestamp_millis();
    let Some(row) = authorization_request::Entity::find_by_id(request_hash(state, token)).one(&state.db).await? else {
        return Ok(None);
    };
    if row.expires_ms <= now_ms {
        authorization_request::Entity::delete_by_id(row.id_hash).exec(&state.db).await?;
        return Ok(None);
    }
    let Ok(mut r) = serde_json::from_str::<AuthzRequest>(&row.params) else {
        return Ok(None);
    };
    r.login_session = row.login_session;
    let Some(c) = client::Entity::find_by_id(r.client_id.as_str()).one(&state.db).await? else {
        return Ok(None);
    };
    Ok(Some((r, c)))
}

/// Records that `session_id` logged in for the pending request `handle`.
pub async fn mark_login(state: &AppState, handle: &str, session_id: &str) -> Result<(), sea_orm::DbErr> {
    if handle.is_empty() || handle.len() > 128 {
        return Ok(());
    }
    authorization_request::Entity::update_many()
        .col_expr(authorization_request::Column::LoginSession, sea_orm::sea_query::Expr::val(session_id))
        .filter(authorization_request::Column::IdHash.eq(request_hash(state, handle)))
        .exec(&state.db)
        .await?;
    Ok(())
}

/// The request handle a stored `return_to` (`/authorize/continue?request=…`)
/// refers to.
pub fn handle_of_return(return_to: Option<&str>) -> Option<&str> {
    return_to.and_then(|r| r.strip_prefix("/authorize/continue?request="))
}

async fn drop_request(state: &AppState, token: &str) -> Result<(), OAuthError> {
    authorization_request::Entity::delete_by_id(request_hash(state, token)).exec(&state.db).await?;
    Ok(())
}

/// What the request still needs from the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Login,
    Consent,
    Nothing,
}

/// The one authorization decision: what a request still needs before a code
/// may be issued for the browser's session. Every path that issues a code —
/// `/authorize`, its continuation after a login, and the consent form —
/// runs it on the stored request; `consented` is true only on the approving
/// consent form itself.
async fn need(
    state: &AppState,
    r: &AuthzRequest,
    c: &client::Model,
    cur: Option<&Current>,
    consented: bool,
) -> Result<Need, OAuthError> {
    let Some(cur) = cur else { return Ok(Need::Login) };
    let now_s = state.clock.now().timestamp();
    // A login made for this request answers it, however fast it was
    // (`auth_time` is whole seconds); so does any login in a later second.
    let fresh =
        r.login_session.as_deref() == Some(cur.session.id.as_str()) || cur.session.auth_time * 1000 >= r.created_ms;
    if r.prompt.iter().any(|p| p == "login" || p == "select_account") && !fresh {
        return Ok(Need::Login);
    }
    // The client's access policy may ask for a fresh or a second-factor
    // login: those rules are met by sending the user to log in (step-up),
    // the others are checked by `admit` once the user is known.
    let policy = super::access::policy_of(c).ok().flatten();
    let max_age = [r.max_age, policy.as_ref().and_then(|p| p.max_auth_age)].into_iter().flatten().min();
    if max_age.is_some_and(|m| now_s - cur.session.auth_time > m) && !fresh {
        return Ok(Need::Login);
    }
    if r.hint_sub.as_ref().is_some_and(|s| *s != cur.user.id) {
        return Ok(Need::Login);
    }
    if !crate::policy::has_second_factor(&cur.amr()) && r.second_factor_required(state, c, &cur.user.id).await? {
        // Step-up: a password-only session must add its second factor.
        return Ok(Need::Login);
    }
    if consented {
        return Ok(Need::Nothing);
    }
    if c.first_party && !r.prompt.iter().any(|p| p == "consent") {
        return Ok(Need::Nothing);
    }
    if r.prompt.iter().any(|p| p == "consent") {
        return Ok(Need::Consent);
    }
    let given = consent::Entity::find_by_id((cur.user.id.clone(), c.client_id.clone())).one(&state.db).await?;
    let covered = given.is_some_and(|g| {
        let s = read_list(&g.scopes);
        r.consent_scopes().iter().all(|x| s.contains(x))
    });
    Ok(if covered { Need::Nothing } else { Need::Consent })
}

/// Checks the client's access policy for the logged-in user; a refusal is
/// audited and becomes `access_denied` at the client.
async fn admit(state: &AppState, req: &HttpRequest, c: &client::Model, cur: &Current) -> Result<(), OAuthError> {
    let amr = cur.amr();
    let ip = client_info::ip(state, req).and_then(|i| i.parse().ok());
    let auth = super::access::Auth { user_id: &cur.user.id, amr: &amr, auth_time: cur.session.auth_time, ip };
    match super::access::check(state, c, &auth, "oauth.authorize_denied").await {
        Ok(()) => Ok(()),
        Err(super::access::Refusal::Denied(_)) => {
            Err(OAuthError::AccessDenied("the client's access policy does not admit this user"))
        }
        Err(super::access::Refusal::Failed(e)) => Err(e),
    }
}

/// Issues a code and sends the browser back to the client.
async fn issue_code(
    state: &AppState,
    req: &HttpRequest,
    r: &AuthzRequest,
    cur: &Current,
) -> Result<HttpResponse, OAuthError> {
    let now = state.clock.now();
    let now_ms = now.timestamp_millis();
    let code = random_token(32).map_err(|_| OAuthError::ServerError)?;
    authorization_code::ActiveModel {
        code_hash: Set(super::grants::code_hash(state, &code)),
        grant_id: Set(uuid::Uuid::new_v4().to_string()),
        client_id: Set(r.client_id.clone()),
        user_id: Set(cur.user.id.clone()),
        session_id: Set(cur.session.id.clone()),
        redirect_uri: Set(r.redirect_uri.clone()),
        scope: Set(r.scope.join(" ")),
        nonce: Set(r.nonce.clone()),
        code_challenge: Set(r.code_challenge.clone()),
        resource: Set(r.resource.clone()),
        auth_time: Set(cur.session.auth_time),
        amr: Set(cur.session.amr.clone()),
        acr: Set(cur.session.acr.clone()),
        created_ms: Set(now_ms),
        expires_ms: Set(now_ms + state.settings.code_ttl_secs * 1000),
        used_ms: Set(None),
        access_jti: Set(None),
        claims: Set(r.claims.as_ref().and_then(|c| serde_json::to_string(c).ok())),
    }
    .insert(&state.db)
    .await?;
    // Remember that this client joined the session (back-channel logout).
    session_client::Entity::insert(session_client::ActiveModel {
        session_id: Set(cur.session.id.clone()),
        client_id: Set(r.client_id.clone()),
        user_id: Set(cur.user.id.clone()),
    })
    .on_conflict_do_nothing_on([session_client::Column::SessionId, session_client::Column::ClientId])
    .exec(&state.db)
    .await?;
    record_audit(
        &state.db,
        AuditEvent::new("oauth.code_issued", "success")
            .user(&cur.user.id)
            .client(&r.client_id)
            .source(client_info::ip(state, req), client_info::user_agent(req))
            .detail(json!({ "scope": r.scope })),
        now,
    )
    .await?;
    Ok(to_client(state, &r.reply(), vec![("code", code)]))
}

/// Runs a (new or resumed) request against the browser's session.
async fn proceed(
    state: &AppState,
    req: &HttpRequest,
    r: AuthzRequest,
    c: &client::Model,
    handle: Option<String>,
    consented: bool,
) -> Result<HttpResponse, OAuthError> {
    let cur = session::current(state, req).await?;
    let none = r.prompt.iter().any(|p| p == "none");
    let need = need(state, &r, c, cur.as_ref(), consented).await?;
    if let (Need::Nothing | Need::Consent, Some(cur)) = (&need, &cur)
        && let Err(e) = admit(state, req, c, cur).await
    {
        if let Some(h) = &handle {
            drop_request(state, h).await?;
        }
        return Err(e);
    }
    match need {
        Need::Nothing => {
            if let Some(h) = &handle {
                drop_request(state, h).await?;
            }
            let Some(cur) = cur else { return Err(OAuthError::ServerError) };
            issue_code(state, req, &r, &cur).await
        }
        Need::Login if none => Ok(error_redirect(state, &r.reply(), &OAuthError::LoginRequired)),
        Need::Consent if none => Ok(error_redirect(state, &r.reply(), &OAuthError::ConsentRequired)),
        need => {
            let h = match handle {
                Some(h) => h,
                None => store(state, req, &r).await?,
            };
            let to = match need {
                Need::Login => format!("/login?request={h}"),
                _ => format!("/consent?request={h}"),
            };
            Ok(see_other(&to))
        }
    }
}

/// Replaces the parameters by those of a `request` object (OIDC Core §6.1,
/// RFC 9101: inside wins), once it verifies for the client it names. A
/// request object that does not verify goes back to the client as
/// `invalid_request_object` when the outer `redirect_uri` is registered for
/// it, else to an error page.
async fn with_request_object(
    state: &AppState,
    mut p: HashMap<String, String>,
) -> Result<HashMap<String, String>, Failure> {
    let Some(jwt) = p.remove("request") else {
        return Ok(p);
    };
    let Some(client_id) = p.get("client_id") else {
        return Err(Failure::Page("The application did not say who it is (client_id is missing)."));
    };
    let Ok(Some(c)) = client::Entity::find_by_id(client_id.as_str()).one(&state.db).await else {
        return Err(Failure::Page("The application is not registered here."));
    };
    match super::request_object::open(state, &c, &jwt).await {
        Ok(inner) => {
            p.extend(inner);
            Ok(p)
        }
        Err(error) => {
            let registered =
                p.get("redirect_uri").filter(|u| read_list(&c.redirect_uris).iter().any(|r| redirect_matches(r, u)));
            match registered {
                Some(u) => {
                    let form_post = p.get("response_mode").is_some_and(|m| m == "form_post");
                    let to = Reply { redirect_uri: u.clone(), state: p.get("state").cloned(), form_post };
                    Err(Failure::Redirect { to, error })
                }
                None => Err(Failure::Page("The sign-in request object is not valid.")),
            }
        }
    }
}

/// A refused authorization request, for the operator: logged (info) and
/// audited with the client, the failing parameter and — for a redirect URI
/// that is not registered — what was received against what is registered.
/// The browser is told none of it. Anonymous callers cannot flood the audit
/// log: refusals share the address's `/authorize` budget.
async fn audit_refused(state: &AppState, req: &HttpRequest, p: &HashMap<String, String>, f: &Failure) {
    let bounded = |k: &str| p.get(k).map(|v| v.chars().take(512).collect::<String>());
    let reason = match f {
        Failure::Page(msg) => (*msg).to_owned(),
        Failure::Redirect { error, .. } => format!("{}: {}", error.code(), error.description()),
    };
    let client_id = bounded("client_id");
    tracing::info!(client_id = client_id.as_deref().unwrap_or("-"), reason = %reason, "authorization request refused");
    let ip = client_info::ip(state, req);
    if let Some(ip) = &ip {
        let now_ms = state.clock.now().timestamp_millis();
        match crate::authn::throttle::admit_ip_for(&state.db, &state.settings, "authorize", ip, now_ms).await {
            Ok(n) if n <= state.settings.authorize_ip_max_pending => {}
            _ => return,
        }
    }
    let registered = match &client_id {
        Some(id) => client::Entity::find_by_id(id.as_str())
            .one(&state.db)
            .await
            .ok()
            .flatten()
            .map(|c| read_list(&c.redirect_uris)),
        None => None,
    };
    let mut detail = json!({ "reason": reason, "client_id": client_id, "redirect_uri": bounded("redirect_uri") });
    if let Some(r) = &registered {
        detail["registered_redirect_uris"] = json!(r);
    }
    let mut event =
        AuditEvent::new("oauth.authorize_refused", "failure").source(ip, client_info::user_agent(req)).detail(detail);
    if let (Some(id), Some(_)) = (&client_id, &registered) {
        event = event.client(id);
    }
    if let Err(e) = record_audit(&state.db, event, state.clock.now()).await {
        tracing::warn!(error = %e, "could not audit a refused authorization request");
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
    let p = match with_request_object(state, p).await {
        Ok(p) => p,
        Err(f) => return respond(state, f),
    };
    let (r, c) = match validate(state, &p).await {
        Ok(v) => v,
        Err(f) => {
            audit_refused(state, req, &p, &f).await;
            return respond(state, f);
        }
    };
    let to = r.reply();
    match proceed(state, req, r, &c, None, false).await {
        Ok(resp) => resp,
        Err(e) => error_redirect(state, &to, &e),
    }
}

#[get("/authorize")]
pub async fn authorize_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    authorize(&state, &req, req.query_string().as_bytes()).await
}

#[post("/authorize")]
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

/// Where a login for a request continues.
pub fn resume_path(handle: &str) -> String {
    format!("/authorize/continue?request={handle}")
}

const EXPIRED: &str = "This sign-in request has expired or is not valid. Go back to the application and start again.";

#[get("/authorize/continue")]
pub async fn resume(state: web::Data<AppState>, req: HttpRequest, q: web::Query<Handle>) -> HttpResponse {
    match load_request(&state, &q.request).await {
        Ok(Some((r, c))) => {
            let to = r.reply();
            match proceed(&state, &req, r, &c, Some(q.request.clone()), false).await {
                Ok(resp) => resp,
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
    crate::web::headers::CSP.replace("form-action 'self'", &format!("form-action 'self' {origin}"))
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

#[get("/consent")]
pub async fn consent_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<Handle>,
) -> Result<HttpResponse, WebError> {
    let Some((r, c)) = load_request(&state, &q.request).await.map_err(WebError::internal)? else {
        return Ok(error_page(StatusCode::BAD_REQUEST, "Sign-in request expired", EXPIRED));
    };
    let Some(cur) = session::current(&state, &req).await? else {
        return Ok(see_other(&format!("/login?request={}", q.request)));
    };
    // The consent page is only for a request whose one remaining need is
    // consent: a step-up or re-login the request asked for comes first.
    match need(&state, &r, &c, Some(&cur), false).await.map_err(WebError::internal)? {
        Need::Consent => {}
        Need::Login => return Ok(see_other(&format!("/login?request={}", q.request))),
        Need::Nothing => return Ok(see_other(&resume_path(&q.request))),
    }
    let token = csrf::ensure(&state, &req).map_err(WebError::internal)?;
    let page = ConsentPage {
        title: "Allow access",
        csrf: token.token,
        request: q.request.clone(),
        client_name: c.name.clone().unwrap_or_else(|| c.client_id.clone()),
        username: cur.user.username.clone(),
        scopes: r.consent_scopes().iter().map(|s| (s.clone(), describe_scope(s))).collect(),
        resource: r.resource.clone(),
        access_minutes: (state.settings.access_token_ttl_secs / 60).max(1),
        offline_days: read_list(&c.grant_types)
            .iter()
            .any(|g| g == "refresh_token")
            .then_some(state.settings.refresh_token_ttl_secs / 86_400),
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

#[post("/consent")]
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
    let Some(cur) = session::current(&state, &req).await? else {
        return Ok(see_other(&format!("/login?request={}", form.request)));
    };
    let now = state.clock.now();
    let audit = |outcome| {
        AuditEvent::new("oauth.consent", outcome)
            .user(&cur.user.id)
            .client(&r.client_id)
            .source(client_info::ip(&state, &req), client_info::user_agent(&req))
            .detail(json!({ "scope": r.scope }))
    };
    match form.decision.as_str() {
        "approve" => {
            // The same decision as every other path to a code: approving
            // consent cannot skip a step-up, a re-login or the policy.
            if need(&state, &r, &c, Some(&cur), true).await.map_err(WebError::internal)? == Need::Login {
                return Ok(see_other(&format!("/login?request={}", form.request)));
            }
            if let Err(e) = admit(&state, &req, &c, &cur).await {
                drop_request(&state, &form.request).await.map_err(WebError::internal)?;
                return match e {
                    OAuthError::AccessDenied(_) => Ok(error_redirect(&state, &r.reply(), &e)),
                    other => Err(WebError::internal(other)),
                };
            }
            let prev = consent::Entity::find_by_id((cur.user.id.clone(), r.client_id.clone())).one(&state.db).await?;
            let mut scopes = prev.as_ref().map(|p| read_list(&p.scopes)).unwrap_or_default();
            for s in &r.consent_scopes() {
                if !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
            consent::Entity::delete_many()
                .filter(consent::Column::UserId.eq(cur.user.id.as_str()))
                .filter(consent::Column::ClientId.eq(r.client_id.as_str()))
                .exec(&state.db)
                .await?;
            consent::ActiveModel {
                user_id: Set(cur.user.id.clone()),
                client_id: Set(r.client_id.clone()),
                scopes: Set(serde_json::Value::from(scopes).to_string()),
                granted_at: Set(now),
            }
            .insert(&state.db)
            .await?;
            record_audit(&state.db, audit("success"), now).await?;
            let to = r.reply();
            Ok(match proceed(&state, &req, r, &c, Some(form.request.clone()), true).await {
                Ok(resp) => resp,
                Err(e) => error_redirect(&state, &to, &e),
            })
        }
        "deny" => {
            record_audit(&state.db, audit("failure"), now).await?;
            drop_request(&state, &form.request).await.map_err(WebError::internal)?;
            Ok(error_redirect(&state, &r.reply(), &OAuthError::AccessDenied("the user denied access")))
        }
        _ => Ok(error_page(StatusCode::BAD_REQUEST, "Bad request", "Choose Allow or Deny.")),
    }
}
