//! Parsing an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC
//! Core §3.1.2.1, RFC 9101 request objects) into an [`AuthzRequest`] for a
//! [`Client`]. Until the client and its exact, registered `redirect_uri` are
//! known, a refusal is a page ([`Failure::Page`]) and never a redirect (RFC
//! 6749 §4.1.2.1: no open redirector); after that it goes back to the client.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::oauth::{OAuthError, scope_allowed, split_scope};
use crate::state::AppState;
use crate::storage::clients::{Client, LoadError};

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
    pub claims: Option<crate::oauth::claims::ClaimsRequest>,
    /// The DPoP key the code is bound to (`dpop_jkt`, RFC 9449 §10).
    #[serde(default)]
    pub dpop_jkt: Option<String>,
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

    /// How strong the sign-in of `user_id` must be for this request.
    pub async fn required_assurance(
        &self,
        state: &AppState,
        c: &Client,
        user_id: &str,
    ) -> Result<crate::policy::Assurance, sea_orm::DbErr> {
        let essential = self.claims.as_ref().and_then(crate::oauth::claims::ClaimsRequest::essential_acr);
        let acr = crate::oauth::access::AcrRequest { voluntary: &self.acr_values, essential: essential.as_deref() };
        crate::oauth::access::required_assurance(state, user_id, c, &acr, self.resource.as_deref()).await
    }

    /// The scopes consent must cover: the requested ones and those of the
    /// claims asked for by name.
    pub fn consent_scopes(&self) -> Vec<String> {
        let mut out = self.scope.clone();
        for s in self.claims.iter().flat_map(crate::oauth::claims::ClaimsRequest::implied_scopes) {
            if !out.iter().any(|x| x == s) {
                out.push(s.to_owned());
            }
        }
        out
    }
}

/// Where an error goes: a page (no trusted redirect yet) or the client.
pub enum Failure {
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

/// The client a request names, for the request's checks: unknown or
/// damaged, the user sees a page (the damage is logged for the operator).
async fn known_client(state: &AppState, client_id: &str) -> Result<Arc<Client>, Failure> {
    // From the database, not the cache: a registration changed a moment ago
    // (by the CLI, or another instance) applies to the next sign-in.
    match crate::storage::clients::find(&state.db, client_id).await {
        Ok(Some(c)) => Ok(Arc::new(c)),
        Ok(None) if crate::oauth::cimd::is_document_id(client_id) && state.settings.client_id_documents => {
            crate::oauth::cimd::resolve(state, client_id)
                .await
                .map_err(|_| Failure::Page("The application's metadata document cannot be used."))
        }
        Ok(None) => Err(Failure::Page("The application is not registered here.")),
        Err(e @ LoadError::Damaged(_)) => {
            tracing::error!(error = %e, "cannot use a client");
            Err(Failure::Page("The application's registration cannot be used; its administrator must fix it."))
        }
        Err(LoadError::Db(e)) => {
            tracing::error!(error = %e, "loading a client");
            Err(Failure::Page("Something went wrong. Please try again later."))
        }
    }
}

/// Whether `given` is the registered redirect URI: the same string, or —
/// for an `http` loopback IP literal (127.0.0.1 or [::1], RFC 8252 §7.3,
/// native apps listening on an ephemeral port) — the same URI on any port.
pub fn redirect_matches(registered: &str, given: &str) -> bool {
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

/// Validates the parameters (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core
/// §3.1.2.1) — at `/authorize`, and at `/par` (`pushed`: the parameters
/// arrive authenticated, RFC 9126), where the same checks run.
pub async fn validate(
    state: &AppState,
    p: &HashMap<String, String>,
    pushed: bool,
) -> Result<(AuthzRequest, Arc<Client>), Failure> {
    let Some(client_id) = p.get("client_id") else {
        return Err(Failure::Page("The application did not say who it is (client_id is missing)."));
    };
    let c = known_client(state, client_id).await?;
    let Some(redirect_uri) = p.get("redirect_uri") else {
        return Err(Failure::Page("The application did not say where to return (redirect_uri is missing)."));
    };
    // Exact string comparison (RFC 9700 §4.1.3): no prefix or pattern
    // matching — but for a loopback IP literal, any port (RFC 8252 §7.3).
    if !c.redirect_uris.iter().any(|r| redirect_matches(r, redirect_uri)) {
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
    if !pushed && c.requires_par(state.settings.require_pushed_authorization_requests) {
        return Err(fail(OAuthError::InvalidRequest(
            "this client must push its authorization requests (PAR, RFC 9126)",
        )));
    }
    // FAPI 2.0 §5.3.2.2: the authorization response in the query only.
    if c.fapi2() && form_post {
        return Err(Failure::Redirect {
            to: Reply { form_post: false, ..to.clone() },
            error: OAuthError::InvalidRequest("response_mode must be query for this client (FAPI 2.0)"),
        });
    }
    match p.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(_) => return Err(fail(OAuthError::UnsupportedResponseType)),
        None => return Err(fail(OAuthError::InvalidRequest("response_type is required"))),
    }
    // A `request_uri` was resolved (PAR) before this point; one left here
    // is a reference we do not fetch (or one nested in a pushed request).
    if p.contains_key("request_uri") {
        return Err(fail(OAuthError::RequestUriNotSupported));
    }
    let dpop_jkt = p.get("dpop_jkt").map(|v| crate::oauth::dpop::parse_jkt(v)).transpose().map_err(fail)?;
    if !c.has_grant("authorization_code") {
        return Err(fail(OAuthError::UnauthorizedClient("this client may not use the authorization code grant")));
    }
    let scope = split_scope(p.get("scope").map(String::as_str).unwrap_or_default()).map_err(fail)?;
    if scope.is_empty() {
        return Err(fail(OAuthError::InvalidScope("scope is required")));
    }
    let registered = &c.scopes;
    if let Some(s) = scope.iter().find(|s| !scope_allowed(s, registered)) {
        return Err(fail(OAuthError::refused_scope(s, "not allowed for this client")));
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
            if !crate::domain::is_resource_indicator(r) {
                return Err(fail(OAuthError::InvalidRequest(
                    "resource must be an absolute URI without a fragment (RFC 8707)",
                )));
            }
            // Only resources registered for the client: otherwise any client
            // a user signs in to could mint tokens for any API, the admin API
            // included, acting with that user's rights.
            if !c.may_request(r) {
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
            let mut asked = crate::oauth::claims::ClaimsRequest::parse(text).map_err(fail)?;
            asked.retain(|name| {
                name == "acr" || crate::oauth::claims::scope_of(name).is_some_and(|s| scope_allowed(s, registered))
            });
            Some(asked).filter(|c| !c.is_empty())
        }
    };
    // An essential acr none of whose values we offer cannot be met: say so
    // now, not after a login that could never satisfy it.
    if let Some(values) = claims.as_ref().and_then(crate::oauth::claims::ClaimsRequest::essential_acr)
        && !values.is_empty()
        && !values.iter().any(|v| crate::policy::Assurance::from_acr(v).is_some())
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
        dpop_jkt,
        login_session: None,
    };
    Ok((req, c))
}

/// Replaces the parameters by those of a `request` object (OIDC Core §6.1,
/// RFC 9101: inside wins), once it verifies for the client it names. A
/// request object that does not verify goes back to the client as
/// `invalid_request_object` when the outer `redirect_uri` is registered for
/// it, else to an error page.
/// Replaces the parameters by those pushed earlier (RFC 9126 §4) when they
/// name a `request_uri`: only `client_id` travels beside it, and nothing in
/// the query overrides what was pushed. Returns whether they were pushed.
pub async fn with_pushed(
    state: &AppState,
    p: HashMap<String, String>,
) -> Result<(HashMap<String, String>, bool), Failure> {
    let Some(uri) = p.get("request_uri") else {
        return Ok((p, false));
    };
    if !uri.starts_with(crate::oauth::par::URN_PREFIX) {
        return Ok((p, false)); // a by-reference request object: refused in `validate`
    }
    let Some(client_id) = p.get("client_id") else {
        return Err(Failure::Page("The application did not say who it is (client_id is missing)."));
    };
    match crate::oauth::par::take(state, client_id, uri).await {
        Ok(Some(pushed)) => Ok((pushed, true)),
        Ok(None) => Err(Failure::Page(
            "This sign-in request has expired or was already used. Go back to the application and start again.",
        )),
        Err(e) => {
            tracing::error!(error = %e, "taking a pushed authorization request");
            Err(Failure::Page("Something went wrong. Please try again later."))
        }
    }
}

pub async fn with_request_object(
    state: &AppState,
    mut p: HashMap<String, String>,
) -> Result<HashMap<String, String>, Failure> {
    let Some(jwt) = p.remove("request") else {
        return Ok(p);
    };
    let Some(client_id) = p.get("client_id") else {
        return Err(Failure::Page("The application did not say who it is (client_id is missing)."));
    };
    let c = known_client(state, client_id).await?;
    match crate::oauth::request_object::open(state, &c, &jwt).await {
        Ok(inner) => {
            p.extend(inner);
            Ok(p)
        }
        Err(error) => {
            let registered = p.get("redirect_uri").filter(|u| c.redirect_uris.iter().any(|r| redirect_matches(r, u)));
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
