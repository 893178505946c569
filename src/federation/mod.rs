//! Upstream identity providers ("Sign in with …"): Portcullis as the
//! relying party of configured OpenID Connect issuers, through the
//! `openidconnect` crate (discovery, PKCE S256, nonce, state, the ID
//! token's signature, `iss`, `aud`, `exp`), with our HTTP client (no
//! redirects, bounded bodies).
//!
//! The rules, each in one place:
//! - A sign-in sent upstream is a row found by the keyed hash of its
//!   `state`, bound to the browser that started it (a cookie's hash), to
//!   its provider, used once and within ten minutes. The `iss` of the
//!   authorization response (RFC 9207), when sent, must be the provider's.
//! - An upstream identity (provider, `sub`) signs in to the account it is
//!   linked to, and to no other. It is linked only by the person proving the
//!   account first (signed in, password again, then "Link" on /account) —
//!   never by a matching address or username. Unknown identities make an
//!   account only where `create_accounts` is on, and never one whose
//!   address an existing account has (that person links instead).
//! - Group → role rules are applied at every sign-in through the provider:
//!   the roles its groups give are granted, the ones they gave before and
//!   no longer give are taken away (roles granted otherwise stay).
//! - The provider's second factor counts (as two-step, never as
//!   phishing-resistant) only where `trust_mfa` is on; otherwise the local
//!   second-factor rules apply as after a password (`authn::mfa::next_step`).

mod accounts;
mod http;

use accounts::resolve;
pub use accounts::{linked, unlink};

use std::time::Duration;

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::json;

use crate::config::UpstreamProvider;
use crate::domain::Origin;
use crate::policy::Assurance;
use crate::state::{AppState, UpstreamMeta};
use crate::storage::entities::upstream_login;
use crate::storage::{AuditEvent, record_audit};

/// How long a discovery document (and its keys) is used before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(600);
/// How long a sign-in may stay upstream.
const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

/// Why an upstream sign-in did not sign anyone in. The browser sees "Login
/// failed" (or, for `NotLinked`, how to link); the audit log sees this.
#[derive(Debug, thiserror::Error)]
pub enum FedError {
    #[error("no upstream provider {0:?}")]
    Unknown(String),
    #[error("the provider could not be used: {0}")]
    Upstream(String),
    #[error("unknown, used, expired or foreign state")]
    BadState,
    #[error("the response names issuer {0:?}, not the provider's")]
    WrongIssuer(String),
    #[error("the provider answered {0}")]
    Denied(String),
    #[error("no account is linked to this identity")]
    NotLinked,
    #[error("this identity is linked to another account")]
    LinkedElsewhere,
    #[error("the account is disabled")]
    Disabled,
    #[error("the client secret could not be read: {0}")]
    Secret(String),
    /// A stored value that no longer parses: refused, never read as empty.
    #[error("the stored {0} does not parse")]
    Damaged(&'static str),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl FedError {
    /// The audit outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Unknown(_) => "unknown_provider",
            Self::Upstream(_) | Self::Secret(_) => "provider_error",
            Self::BadState => "bad_state",
            Self::WrongIssuer(_) => "wrong_issuer",
            Self::Denied(_) => "denied",
            Self::NotLinked => "not_linked",
            Self::LinkedElsewhere => "linked_elsewhere",
            Self::Disabled => "disabled",
            Self::Damaged(_) => "damaged",
            Self::Db(_) => "error",
        }
    }
}

/// The configured provider `id`.
pub fn provider<'a>(state: &'a AppState, id: &str) -> Result<&'a UpstreamProvider, FedError> {
    state.settings.upstream.iter().find(|p| p.id == id).ok_or_else(|| FedError::Unknown(id.to_owned()))
}

fn redirect_uri(state: &AppState, p: &UpstreamProvider) -> String {
    format!("{}/login/upstream/{}/callback", state.settings.issuer.trim_end_matches('/'), p.id)
}

fn secret(p: &UpstreamProvider) -> Result<Option<ClientSecret>, FedError> {
    let text = match (&p.client_secret_file, &p.client_secret_env) {
        (Some(f), _) => std::fs::read_to_string(f).map_err(|e| FedError::Secret(format!("{}: {e}", f.display())))?,
        (None, Some(var)) => std::env::var(var).map_err(|_| FedError::Secret(format!("${var} is not set")))?,
        (None, None) => return Ok(None),
    };
    Ok(Some(ClientSecret::new(text.trim_end_matches(['\r', '\n']).to_owned())))
}

/// The provider's discovery document and keys, from the cache or fetched.
async fn metadata(state: &AppState, p: &UpstreamProvider, fresh: bool) -> Result<CoreProviderMetadata, FedError> {
    if !fresh {
        let cached = state.upstream_meta.read().ok().and_then(|m| m.get(&p.id).cloned());
        if let Some(m) = cached.filter(|m| m.fetched.elapsed() < METADATA_TTL) {
            return Ok(m.metadata);
        }
    }
    let issuer = IssuerUrl::new(p.issuer.clone()).map_err(|e| FedError::Upstream(format!("issuer: {e}")))?;
    let meta = CoreProviderMetadata::discover_async(issuer, &http::Http::of(state))
        .await
        .map_err(|e| FedError::Upstream(format!("discovery: {}", http::chain(&e))))?;
    // The client secret goes to the token endpoint, the keys come from
    // jwks_uri: both over https (http only on loopback), as the issuer.
    let endpoints = [meta.token_endpoint().map(|u| u.url().clone()), Some(meta.jwks_uri().url().clone())];
    for u in endpoints.into_iter().flatten() {
        if u.scheme() != "https" && !(u.scheme() == "http" && crate::domain::is_loopback(&u)) {
            return Err(FedError::Upstream(format!("discovery names a plain-http endpoint: {u}")));
        }
    }
    if let Ok(mut m) = state.upstream_meta.write() {
        m.insert(p.id.clone(), UpstreamMeta { fetched: std::time::Instant::now(), metadata: meta.clone() });
    }
    Ok(meta)
}

fn state_hash(state: &AppState, value: &str) -> String {
    state.master_key.hasher().hash(&format!("upstream-state:{value}"))
}

fn binding_hash(state: &AppState, value: &str) -> String {
    state.master_key.hasher().hash(&format!("upstream-browser:{value}"))
}

/// Where the browser goes to sign in upstream, and the value of the cookie
/// that binds the sign-in to it.
#[derive(Debug)]
pub struct Started {
    pub url: String,
    pub browser_binding: String,
}

/// Who asks to link a provider: the account and the session (only that
/// session may finish the link).
#[derive(Debug, Clone)]
pub struct LinkFor {
    pub user_id: String,
    pub session_id: String,
}

/// Starts a sign-in at provider `id`: for a login (continuing at
/// `return_to`), or to link the provider to the signed-in account `link`
/// (then the provider is asked to have the person sign in again:
/// `prompt=login`, so the identity linked is the one they type in).
pub async fn begin(
    state: &AppState,
    id: &str,
    return_to: Option<String>,
    link: Option<LinkFor>,
) -> Result<Started, FedError> {
    let p = provider(state, id)?;
    let meta = metadata(state, p, false).await?;
    let redirect = RedirectUrl::new(redirect_uri(state, p)).map_err(|e| FedError::Upstream(e.to_string()))?;
    let client = CoreClient::from_provider_metadata(meta, ClientId::new(p.client_id.clone()), secret(p)?)
        .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut auth = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge);
    for s in p.scopes.iter().filter(|s| s.as_str() != "openid") {
        auth = auth.add_scope(Scope::new(s.clone()));
    }
    if link.is_some() {
        auth = auth.add_prompt(openidconnect::core::CoreAuthPrompt::Login);
    }
    let (url, csrf, nonce) = auth.url();
    let binding = crate::crypto::random_token(32).map_err(|e| FedError::Upstream(e.to_string()))?;
    let now = state.clock.now().timestamp_millis();
    upstream_login::ActiveModel {
        state_hash: Set(state_hash(state, csrf.secret())),
        provider: Set(p.id.clone()),
        nonce: Set(nonce.secret().clone()),
        pkce_verifier: Set(verifier.secret().clone()),
        return_to: Set(return_to),
        link_user_id: Set(link.as_ref().map(|l| l.user_id.clone())),
        link_session: Set(link.map(|l| l.session_id)),
        browser_hash: Set(binding_hash(state, &binding)),
        expires_ms: Set(now + LOGIN_TTL_MS),
    }
    .insert(&state.db)
    .await?;
    Ok(Started { url: url.to_string(), browser_binding: binding })
}

/// What the browser at the callback brings: the binding cookie, and the
/// session it is signed in with (if any).
#[derive(Debug, Clone, Copy, Default)]
pub struct Browser<'a> {
    pub binding: Option<&'a str>,
    pub session_id: Option<&'a str>,
}

/// The provider's answer at the callback.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Who the provider says signed in, once everything checked out.
#[derive(Debug)]
struct Upstream {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    username: Option<String>,
    groups: Vec<String>,
    assurance: Assurance,
}

/// The local account an upstream sign-in resolved to.
#[derive(Debug)]
pub struct Resolved {
    pub user_id: String,
    /// How strong the provider's sign-in counts here.
    pub assurance: Assurance,
    pub return_to: Option<String>,
    /// The sign-in linked the provider to a signed-in account (no new login).
    pub linked: bool,
}

/// Finishes a sign-in at the callback: the state (this provider, this
/// browser, once), the issuer, the code exchange and the ID token; then the
/// account it belongs to, with its group roles applied. Everything is
/// audited (`user.upstream_login`), a refusal with its reason.
pub async fn complete(
    state: &AppState,
    id: &str,
    cb: Callback,
    browser: Browser<'_>,
    origin: Origin,
) -> Result<Resolved, FedError> {
    let result = complete_inner(state, id, cb, browser).await;
    let (outcome, user) = match &result {
        Ok((r, _)) => (if r.linked { "linked" } else { "success" }, Some(r.user_id.clone())),
        Err(e) => (e.outcome(), None),
    };
    let mut event = AuditEvent::new("user.upstream_login", outcome)
        .actor(format!("upstream:{id}"))
        .source(origin.ip, origin.user_agent);
    if let Some(u) = &user {
        event = event.user(u);
    }
    let detail = match &result {
        Ok((_, roles)) => json!({ "provider": id, "roles": roles }),
        Err(e) => json!({ "provider": id, "reason": e.to_string().chars().take(300).collect::<String>() }),
    };
    record_audit(&state.db, event.detail(detail), state.clock.now()).await?;
    result.map(|(r, _)| r)
}

async fn complete_inner(
    state: &AppState,
    id: &str,
    cb: Callback,
    browser: Browser<'_>,
) -> Result<(Resolved, serde_json::Value), FedError> {
    let p = provider(state, id)?;
    // The state first: once, this provider, this browser, in time.
    let st = cb.state.as_deref().filter(|s| !s.is_empty() && s.len() <= 256).ok_or(FedError::BadState)?;
    let hash = state_hash(state, st);
    let row = upstream_login::Entity::find_by_id(hash.clone()).one(&state.db).await?.ok_or(FedError::BadState)?;
    let claimed = upstream_login::Entity::delete_by_id(hash).exec(&state.db).await?;
    let bound = browser.binding.is_some_and(|b| {
        crate::crypto::constant_time_eq(binding_hash(state, b).as_bytes(), row.browser_hash.as_bytes())
    });
    // A link finishes only in the session that asked for it, still alive.
    let same_session = row.link_session.is_none() || row.link_session.as_deref() == browser.session_id;
    let live = row.expires_ms > state.clock.now().timestamp_millis();
    if claimed.rows_affected != 1 || row.provider != p.id || !live || !bound || !same_session {
        return Err(FedError::BadState);
    }
    if let Some(e) = cb.error {
        return Err(FedError::Denied(format!("{e}: {}", cb.error_description.unwrap_or_default())));
    }
    let meta = metadata(state, p, false).await?;
    // RFC 9207: an `iss` in the response must be this provider's (mix-up).
    if let Some(iss) = &cb.iss
        && iss != meta.issuer().as_str()
    {
        return Err(FedError::WrongIssuer(iss.clone()));
    }
    let code = cb.code.ok_or_else(|| FedError::Upstream("no code in the response".into()))?;
    let up = exchange(state, p, meta, &code, &row).await?;
    resolve(state, p, up, row.link_user_id, row.return_to).await
}

/// The code exchange and the ID token's checks (signature with the
/// provider's keys — fetched again once if the key is unknown —, `iss`,
/// `aud`, `exp`, `nonce`).
async fn exchange(
    state: &AppState,
    p: &UpstreamProvider,
    meta: CoreProviderMetadata,
    code: &str,
    row: &upstream_login::Model,
) -> Result<Upstream, FedError> {
    let redirect = RedirectUrl::new(redirect_uri(state, p)).map_err(|e| FedError::Upstream(e.to_string()))?;
    let client = CoreClient::from_provider_metadata(meta, ClientId::new(p.client_id.clone()), secret(p)?)
        .set_redirect_uri(redirect.clone());
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| FedError::Upstream(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(row.pkce_verifier.clone()))
        .request_async(&http::Http::of(state))
        .await
        .map_err(|e| FedError::Upstream(format!("token: {}", http::chain(&e))))?;
    let id_token = token.id_token().ok_or_else(|| FedError::Upstream("no ID token".into()))?;
    let nonce = Nonce::new(row.nonce.clone());
    let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(c) => c.clone(),
        // Only an unknown key sends us for the provider's keys again.
        Err(
            first @ openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey,
            ),
        ) => {
            // Perhaps the provider rotated its keys: once more with fresh ones.
            let meta = metadata(state, p, true).await?;
            let client = CoreClient::from_provider_metadata(meta, ClientId::new(p.client_id.clone()), secret(p)?)
                .set_redirect_uri(redirect);
            id_token
                .claims(&client.id_token_verifier(), &nonce)
                .map_err(|e| FedError::Upstream(format!("ID token: {e} (before new keys: {first})")))?
                .clone()
        }
        Err(e) => return Err(FedError::Upstream(format!("ID token: {e}"))),
    };
    let groups = match &p.groups_claim {
        Some(name) => groups_of(&id_token.to_string(), name),
        None => Vec::new(),
    };
    let amr: Vec<String> =
        claims.auth_method_refs().map(|v| v.iter().map(|a| a.as_str().to_owned()).collect()).unwrap_or_default();
    let acr = claims.auth_context_ref().map(|a| a.as_str().to_owned());
    // RFC 8176: `mfa` says more than one factor was used; `otp`, `hwk`,
    // `sms`… each name one method, which may have been the only one.
    let two_step = amr.iter().any(|a| a == "mfa") || acr.is_some_and(|a| p.mfa_acr_values.contains(&a));
    Ok(Upstream {
        subject: claims.subject().as_str().to_owned(),
        // A bare address only, as everywhere else.
        email: claims.email().and_then(|e| crate::domain::Email::parse(e.as_str()).ok()).map(String::from),
        email_verified: claims.email_verified().unwrap_or(false),
        username: claims.preferred_username().map(|u| u.as_str().to_owned()),
        groups,
        assurance: if p.trust_mfa && two_step { Assurance::MultiFactor } else { Assurance::Password },
    })
}

/// The strings of claim `name` in a (verified) JWT's payload: a list of
/// strings, or one string.
fn groups_of(jwt: &str, name: &str) -> Vec<String> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let claims: serde_json::Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    match &claims[name] {
        serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        serde_json::Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}
