//! Token exchange (RFC 8693): a service holding a user's access token (sent
//! to it, so it is the token's audience) gets a narrower token for another
//! service it is registered for (`--resource`), acting for the user: the new
//! token keeps the user as `sub` and names the service in `act` (nested for
//! each hop, at most [`MAX_CHAIN`] deep). Impersonation — a token without
//! `act` — is not offered.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::dpop::Proof;
use super::{OAuthError, split_scope};
use crate::state::AppState;
use crate::storage::clients::Client;
use crate::storage::{AuditEvent, record_audit};

/// The grant type (RFC 8693 §2.1).
pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The one token type exchanged and issued (RFC 8693 §3).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The longest delegation chain (nested `act` claims) a token may carry.
pub const MAX_CHAIN: usize = 4;

fn chain_len(act: Option<&Value>) -> usize {
    let mut n = 0;
    let mut cur = act;
    while let Some(a) = cur {
        n += 1;
        cur = a.get("act");
    }
    n
}

fn audiences(claims: &Value) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// RFC 8693 §2: the exchange for the authenticated, confidential client `c`.
pub async fn exchange(
    state: &AppState,
    c: &Client,
    p: &HashMap<String, String>,
    dpop: Option<&Proof>,
) -> Result<Value, OAuthError> {
    if c.public || !c.has_grant(GRANT) {
        return Err(OAuthError::UnauthorizedClient("this client may not exchange tokens"));
    }
    super::grants::require_dpop(c, dpop)?;
    let subject = p.get("subject_token").ok_or(OAuthError::InvalidRequest("subject_token is required"))?;
    if p.get("subject_token_type").map(String::as_str) != Some(ACCESS_TOKEN_TYPE) {
        return Err(OAuthError::InvalidRequest("subject_token_type must be an access token type"));
    }
    if p.contains_key("actor_token") {
        return Err(OAuthError::InvalidRequest("actor_token is not supported: the authenticated client is the actor"));
    }
    if p.get("requested_token_type").is_some_and(|t| t != ACCESS_TOKEN_TYPE) {
        return Err(OAuthError::InvalidRequest("only access tokens are issued"));
    }
    let target = match (p.get("resource"), p.get("audience")) {
        (Some(r), None) | (None, Some(r)) => r.clone(),
        (Some(r), Some(a)) if r == a => r.clone(),
        (Some(_), Some(_)) => return Err(OAuthError::InvalidTarget("name one target: resource or audience")),
        (None, None) => return Err(OAuthError::InvalidRequest("resource or audience is required")),
    };
    // Which client may exchange for which audience is its registration.
    if !c.may_request(&target) {
        return Err(OAuthError::InvalidTarget("this client may not exchange tokens for that audience"));
    }
    let claims = match super::token::check_access_token(state, subject).await {
        Ok(c) => c,
        Err(OAuthError::InvalidToken(_)) => {
            return Err(OAuthError::InvalidGrant("the subject token is invalid, expired or revoked"));
        }
        Err(e) => return Err(e),
    };
    // Only the service a token was sent to may exchange it: its client id or
    // one of its registered resources is the token's audience.
    if !audiences(&claims).iter().any(|a| *a == c.client_id || c.may_request(a)) {
        return Err(OAuthError::InvalidGrant("the subject token was not issued to this client"));
    }
    let original = split_scope(claims.get("scope").and_then(Value::as_str).unwrap_or_default())?;
    let scope = match p.get("scope") {
        None => original.clone(),
        Some(s) => {
            let asked = split_scope(s)?;
            if let Some(x) = asked.iter().find(|x| !original.contains(x)) {
                return Err(OAuthError::refused_scope(x, "an exchange may only narrow the subject token's scope"));
            }
            asked
        }
    };
    // Within what the acting client is registered for, too.
    if let Some(x) = scope.iter().find(|x| !super::scope_allowed(x, &c.scopes)) {
        return Err(OAuthError::refused_scope(x, "not allowed for this client"));
    }
    // A token bound to a key is exchanged only for one bound to the acting
    // service's key: a bound token never turns into a bearer token.
    if super::dpop::bound_key(&claims).is_some() && dpop.is_none() {
        return Err(OAuthError::InvalidDpopProof("the subject token is DPoP-bound: send a DPoP proof"));
    }
    let prior_act = claims.get("act");
    if chain_len(prior_act) >= MAX_CHAIN {
        return Err(OAuthError::InvalidRequest("the delegation chain is too long"));
    }
    let sub =
        claims.get("sub").and_then(Value::as_str).ok_or(OAuthError::InvalidGrant("the subject token has no sub"))?;
    // A user's token: the user is still active, and the acting client's own
    // access policy admits them (as it would at its own /authorize).
    if claims.get("auth_time").is_some() {
        if crate::storage::users::active(&state.db, sub).await?.is_none() {
            return Err(OAuthError::InvalidGrant("the user is no longer active"));
        }
        let amr: Vec<String> = claims
            .get("amr")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let auth_time = claims.get("auth_time").and_then(Value::as_i64).unwrap_or_default();
        let auth = super::access::Auth { user_id: sub, amr: &amr, auth_time, ip: None };
        if let Err(d) = super::access::evaluate(state, c, &auth).await? {
            super::access::record(state, c, &auth, "oauth.exchange_denied", d).await?;
            return Err(OAuthError::InvalidGrant("the client's access policy does not admit this user"));
        }
    }
    let now = state.clock.now().timestamp();
    let (mut out, _) =
        super::mint::base_claims(state, sub, &c.client_id, &target, &scope, now, dpop.map(|d| d.jkt.as_str()));
    // Never outlives the token it came from.
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now).min(now + state.settings.access_token_ttl_secs);
    out.insert("exp".into(), exp.into());
    let mut act = json!({ "sub": c.client_id });
    if let Some(prior) = prior_act {
        act["act"] = prior.clone();
    }
    out.insert("act".into(), act);
    for k in ["auth_time", "amr", "acr"] {
        if let Some(v) = claims.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if scope.iter().any(|s| s == "roles")
        && let Some(r) = claims.get("roles")
    {
        out.insert("roles".into(), r.clone());
    }
    let token = super::mint::access_token(state, out)?;
    record_audit(
        &state.db,
        AuditEvent::new("oauth.token_exchanged", "success").user(sub).client(&c.client_id).detail(json!({
            "from_client": claims.get("client_id"),
            "audience": target,
            "scope": scope,
            "chain": chain_len(prior_act) + 1,
        })),
        state.clock.now(),
    )
    .await?;
    state.metrics.token_issued("token_exchange");
    Ok(json!({
        "access_token": token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": if dpop.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": (exp - now).max(0),
        "scope": scope.join(" "),
    }))
}
