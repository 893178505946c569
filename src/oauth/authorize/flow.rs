//! The decisions of an authorization request once it has parsed: what it
//! still needs from the user ([`need`], the one decision every path to a code
//! runs), the client's access policy ([`admit`]), issuing the code, and the
//! pending request stored server-side under an unguessable handle while the
//! user logs in or consents (nothing the browser sends back about it is
//! trusted). The edge (`web::authorize`) turns a [`Next`] into a response.

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;

use super::request::{AuthzRequest, Failure, Reply};
use crate::crypto::random_token;
use crate::domain::Origin;
use crate::oauth::OAuthError;
use crate::session::Current;
use crate::state::AppState;
use crate::storage::clients::Client;
use crate::storage::entities::{authorization_code, authorization_request, consent, session_client};
use crate::storage::{AuditEvent, record_audit};

/// How long a pending authorization request waits for the user.
const REQUEST_TTL_MS: i64 = 10 * 60 * 1000;

/// What happens next in the browser.
#[derive(Debug)]
pub enum Next {
    /// Send these fields to the client (a code, or an error).
    ToClient(Reply, Vec<(&'static str, String)>),
    /// The user must log in (or step up) for the pending request `handle`.
    Login(String),
    /// The user must consent to the pending request `handle`.
    Consent(String),
}

impl Next {
    /// An error for the client (RFC 6749 §4.1.2.1).
    pub fn error(to: &Reply, e: &OAuthError) -> Self {
        Self::ToClient(
            to.clone(),
            vec![("error", e.code().to_owned()), ("error_description", e.description().into_owned())],
        )
    }
}

fn request_hash(state: &AppState, token: &str) -> String {
    state.master_key.hasher().hash(&format!("authz-request:{token}"))
}

async fn store(state: &AppState, origin: &Origin, r: &AuthzRequest) -> Result<String, OAuthError> {
    // Anonymous callers make us store a pending request: bounded per address.
    if let Some(ip) = &origin.ip {
        let n = crate::authn::throttle::admit_ip_for(
            &state.db,
            &state.settings,
            "authorize",
            ip,
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
pub async fn load_request(state: &AppState, token: &str) -> Result<Option<(AuthzRequest, Arc<Client>)>, OAuthError> {
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
    let c = match crate::storage::clients::find(&state.db, &r.client_id).await? {
        Some(c) => Arc::new(c),
        None if crate::oauth::cimd::is_document_id(&r.client_id) => {
            match crate::oauth::cimd::resolve(state, &r.client_id).await {
                Ok(c) => c,
                Err(_) => return Ok(None),
            }
        }
        None => return Ok(None),
    };
    Ok(Some((r, c)))
}

/// Records that `session_id` logged in for the pending request `handle`.
pub async fn mark_login<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    handle: &str,
    session_id: &str,
) -> Result<(), sea_orm::DbErr> {
    if handle.is_empty() || handle.len() > 128 {
        return Ok(());
    }
    authorization_request::Entity::update_many()
        .col_expr(authorization_request::Column::LoginSession, sea_orm::sea_query::Expr::val(session_id))
        .filter(authorization_request::Column::IdHash.eq(request_hash(state, handle)))
        .exec(conn)
        .await?;
    Ok(())
}

/// The request handle a stored `return_to` (`/authorize/continue?request=…`)
/// refers to.
pub fn handle_of_return(return_to: Option<&str>) -> Option<&str> {
    return_to.and_then(|r| r.strip_prefix("/authorize/continue?request="))
}

pub async fn drop_request(state: &AppState, token: &str) -> Result<(), OAuthError> {
    authorization_request::Entity::delete_by_id(request_hash(state, token)).exec(&state.db).await?;
    Ok(())
}

/// What the request still needs from the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Login,
    Consent,
    Nothing,
}

/// The one authorization decision: what a request still needs before a code
/// may be issued for the browser's session. Every path that issues a code —
/// `/authorize`, its continuation after a login, and the consent form —
/// runs it on the stored request; `consented` is true only on the approving
/// consent form itself.
pub async fn need(
    state: &AppState,
    r: &AuthzRequest,
    c: &Client,
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
    let max_age = [r.max_age, c.access_policy.as_ref().and_then(|p| p.max_auth_age)].into_iter().flatten().min();
    if max_age.is_some_and(|m| now_s - cur.session.auth_time > m) && !fresh {
        return Ok(Need::Login);
    }
    if r.hint_sub.as_ref().is_some_and(|s| *s != cur.user.id) {
        return Ok(Need::Login);
    }
    if crate::policy::Assurance::of(&cur.session.amr) < r.required_assurance(state, c, &cur.user.id).await? {
        if r.login_session.as_deref() == Some(cur.session.id.as_str()) {
            // The login made for this request could not reach it (passkeys
            // are off here, say): asking again would loop.
            return Err(OAuthError::AccessDenied("this sign-in cannot reach the assurance the request needs"));
        }
        // Step-up: a session weaker than the request needs signs in again
        // (adds its second factor, or its passkey).
        return Ok(Need::Login);
    }
    if consented {
        return Ok(Need::Nothing);
    }
    if c.first_party && !r.prompt.iter().any(|p| p == "consent") {
        return Ok(Need::Nothing);
    }
    // A client known only by its metadata document asks every time.
    if crate::oauth::cimd::is_document_id(&c.client_id) {
        return Ok(Need::Consent);
    }
    if r.prompt.iter().any(|p| p == "consent") {
        return Ok(Need::Consent);
    }
    let given = consent::Entity::find_by_id((cur.user.id.clone(), c.client_id.clone())).one(&state.db).await?;
    let covered = given.is_some_and(|g| {
        let s = consented_scopes(&g.scopes);
        r.consent_scopes().iter().all(|x| s.contains(x))
    });
    Ok(if covered { Need::Nothing } else { Need::Consent })
}

/// Checks the client's access policy for the logged-in user; a refusal is
/// audited and becomes `access_denied` at the client.
pub async fn admit(state: &AppState, origin: &Origin, c: &Client, cur: &Current) -> Result<(), OAuthError> {
    let ip = origin.ip_addr();
    let auth = crate::oauth::access::Auth {
        user_id: &cur.user.id,
        amr: &cur.session.amr,
        auth_time: cur.session.auth_time,
        ip,
    };
    match crate::oauth::access::check(state, c, &auth, "oauth.authorize_denied").await {
        Ok(()) => Ok(()),
        Err(crate::oauth::access::Refusal::Denied(_)) => {
            Err(OAuthError::AccessDenied("the client's access policy does not admit this user"))
        }
        Err(crate::oauth::access::Refusal::Failed(e)) => Err(e),
    }
}

/// A consent row's scopes. A row that does not parse covers nothing (the
/// user is asked again): it grants, so reading it as empty fails closed.
fn consented_scopes(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Issues a code for the session: the code, the client's place in the
/// session (back-channel logout) and the audit record, in one transaction.
async fn issue_code(
    state: &AppState,
    origin: &Origin,
    r: &AuthzRequest,
    c: &Client,
    cur: &Current,
) -> Result<String, OAuthError> {
    // FAPI 2.0 §5.3.2.1: codes of its clients live at most 60 s.
    let ttl_secs = if c.fapi2() { state.settings.code_ttl_secs.min(60) } else { state.settings.code_ttl_secs };
    let now = state.clock.now();
    let now_ms = now.timestamp_millis();
    let code = random_token(32).map_err(|_| OAuthError::ServerError)?;
    let txn = crate::storage::begin_write(&state.db).await?;
    authorization_code::ActiveModel {
        code_hash: Set(crate::oauth::grants::code_hash(state, &code)),
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
        amr: Set(crate::storage::grants::amr_text(&cur.session.amr)),
        acr: Set(cur.session.acr.clone()),
        created_ms: Set(now_ms),
        expires_ms: Set(now_ms + ttl_secs * 1000),
        used_ms: Set(None),
        access_jti: Set(None),
        claims: Set(r.claims.as_ref().and_then(|c| serde_json::to_string(c).ok())),
        dpop_jkt: Set(r.dpop_jkt.clone()),
    }
    .insert(&txn)
    .await?;
    crate::storage::clients::touch(&txn, c, now_ms).await?;
    // Remember that this client joined the session (back-channel logout).
    session_client::Entity::insert(session_client::ActiveModel {
        session_id: Set(cur.session.id.clone()),
        client_id: Set(r.client_id.clone()),
        user_id: Set(cur.user.id.clone()),
    })
    .on_conflict_do_nothing_on([session_client::Column::SessionId, session_client::Column::ClientId])
    .exec(&txn)
    .await?;
    let audit_record = AuditEvent::new("oauth.code_issued", "success")
        .user(&cur.user.id)
        .client(&r.client_id)
        .source(origin.ip.clone(), origin.user_agent.clone())
        .detail(json!({ "scope": r.scope }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(code)
}

/// Runs a (new or resumed) request against the browser's session `cur`.
pub async fn proceed(
    state: &AppState,
    origin: &Origin,
    cur: Option<&Current>,
    r: AuthzRequest,
    c: &Client,
    handle: Option<String>,
    consented: bool,
) -> Result<Next, OAuthError> {
    let none = r.prompt.iter().any(|p| p == "none");
    let need = need(state, &r, c, cur, consented).await?;
    if let (Need::Nothing | Need::Consent, Some(cur)) = (&need, cur)
        && let Err(e) = admit(state, origin, c, cur).await
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
            let code = issue_code(state, origin, &r, c, cur).await?;
            Ok(Next::ToClient(r.reply(), vec![("code", code)]))
        }
        Need::Login if none => Ok(Next::error(&r.reply(), &OAuthError::LoginRequired)),
        Need::Consent if none => Ok(Next::error(&r.reply(), &OAuthError::ConsentRequired)),
        need => {
            let h = match handle {
                Some(h) => h,
                None => store(state, origin, &r).await?,
            };
            Ok(if need == Need::Login { Next::Login(h) } else { Next::Consent(h) })
        }
    }
}

/// The user's answer on the consent page for the pending request `handle`.
/// Approving runs the same decision as every other path to a code: it cannot
/// skip a step-up, a re-login or the client's policy. The consent and its
/// audit record commit together.
pub async fn answer_consent(
    state: &AppState,
    origin: &Origin,
    cur: &Current,
    (r, c): (AuthzRequest, Arc<Client>),
    handle: &str,
    approve: bool,
) -> Result<Next, OAuthError> {
    let now = state.clock.now();
    let audit = |outcome| {
        AuditEvent::new("oauth.consent", outcome)
            .user(&cur.user.id)
            .client(&r.client_id)
            .source(origin.ip.clone(), origin.user_agent.clone())
            .detail(json!({ "scope": r.scope }))
    };
    if !approve {
        record_audit(&state.db, audit("failure"), now).await?;
        drop_request(state, handle).await?;
        return Ok(Next::error(&r.reply(), &OAuthError::AccessDenied("the user denied access")));
    }
    if need(state, &r, &c, Some(cur), true).await? == Need::Login {
        return Ok(Next::Login(handle.to_owned()));
    }
    if let Err(e) = admit(state, origin, &c, cur).await {
        drop_request(state, handle).await?;
        return match e {
            OAuthError::AccessDenied(_) => Ok(Next::error(&r.reply(), &e)),
            other => Err(other),
        };
    }
    let txn = crate::storage::begin_write(&state.db).await?;
    let prev = consent::Entity::find_by_id((cur.user.id.clone(), r.client_id.clone())).one(&txn).await?;
    let mut scopes = prev.as_ref().map(|p| consented_scopes(&p.scopes)).unwrap_or_default();
    for s in &r.consent_scopes() {
        if !scopes.contains(s) {
            scopes.push(s.clone());
        }
    }
    consent::Entity::delete_many()
        .filter(consent::Column::UserId.eq(cur.user.id.as_str()))
        .filter(consent::Column::ClientId.eq(r.client_id.as_str()))
        .exec(&txn)
        .await?;
    consent::ActiveModel {
        user_id: Set(cur.user.id.clone()),
        client_id: Set(r.client_id.clone()),
        scopes: Set(serde_json::Value::from(scopes).to_string()),
        granted_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let audit_record = audit("success");
    crate::storage::commit_audited(txn, audit_record, now).await?;
    let to = r.reply();
    Ok(match proceed(state, origin, Some(cur), r, &c, Some(handle.to_owned()), true).await {
        Ok(next) => next,
        Err(e) => Next::error(&to, &e),
    })
}

/// A refused authorization request, for the operator: logged (info) and
/// audited with the client, the failing parameter and — for a redirect URI
/// that is not registered — what was received against what is registered.
/// The browser is told none of it. Anonymous callers cannot flood the audit
/// log: refusals share the address's `/authorize` budget.
pub async fn audit_refused(state: &AppState, origin: &Origin, p: &HashMap<String, String>, f: &Failure) {
    let bounded = |k: &str| p.get(k).map(|v| v.chars().take(512).collect::<String>());
    let reason = match f {
        Failure::Page(msg) => (*msg).to_owned(),
        Failure::Redirect { error, .. } => format!("{}: {}", error.code(), error.description()),
    };
    let client_id = bounded("client_id");
    tracing::info!(client_id = client_id.as_deref().unwrap_or("-"), reason = %reason, "authorization request refused");
    let ip = origin.ip.clone();
    if let Some(ip) = &ip {
        let now_ms = state.clock.now().timestamp_millis();
        match crate::authn::throttle::admit_ip_for(&state.db, &state.settings, "authorize", ip, now_ms).await {
            Ok(n) if n <= state.settings.authorize_ip_max_pending => {}
            _ => return,
        }
    }
    let registered = match &client_id {
        Some(id) => crate::storage::clients::find(&state.db, id).await.ok().flatten().map(|c| c.redirect_uris),
        None => None,
    };
    let mut detail = json!({ "reason": reason, "client_id": client_id, "redirect_uri": bounded("redirect_uri") });
    if let Some(r) = &registered {
        detail["registered_redirect_uris"] = json!(r);
    }
    let mut event =
        AuditEvent::new("oauth.authorize_refused", "failure").source(ip, origin.user_agent.clone()).detail(detail);
    if let (Some(id), Some(_)) = (&client_id, &registered) {
        event = event.client(id);
    }
    if let Err(e) = record_audit(&state.db, event, state.clock.now()).await {
        tracing::warn!(error = %e, "could not audit a refused authorization request");
    }
}

/// Where a login for a request continues.
pub fn resume_path(handle: &str) -> String {
    format!("/authorize/continue?request={handle}")
}
