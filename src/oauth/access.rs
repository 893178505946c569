//! Enforcing a client's access policy (see `policy::access`) against a user,
//! with the audit record of every refusal.

use std::net::IpAddr;

use serde_json::json;

use super::OAuthError;
use crate::policy::Assurance;
use crate::policy::access::{Denial, Subject};
use crate::state::AppState;
use crate::storage::clients::Client;
use crate::storage::{AuditEvent, record_audit};

/// The one rule for "how strong must this sign-in be": the server's policy
/// for the user's roles (`authn::mfa::required_for`), the client's
/// registration (`require_mfa`), its access policy's `mfa` rule (`true` or
/// `"phr"`), the `acr` the request asks for, and any request for admin-API
/// tokens (a password-only login never gets that audience). Used by the
/// login steps and by every authorization decision alike.
pub async fn required_assurance(
    state: &AppState,
    user_id: &str,
    c: &Client,
    acr: &AcrRequest<'_>,
    resource: Option<&str>,
) -> Result<Assurance, sea_orm::DbErr> {
    let mut need = crate::authn::mfa::required_for(state, &state.db, user_id).await?;
    if let Some(p) = &c.access_policy {
        need = need.max(Assurance::of_rule(p.mfa));
    }
    let admin_audience = resource.is_some_and(|r| r == state.admin_audience());
    if c.require_mfa || admin_audience {
        need = need.max(Assurance::MultiFactor);
    }
    // An essential acr is a demand: the weakest of its values we know must
    // be met (by a step-up, or by setting up a factor at this login).
    if let Some(values) = acr.essential
        && let Some(weakest) = values.iter().filter_map(|v| Assurance::from_acr(v)).min()
    {
        need = need.max(weakest);
    }
    // `acr_values` is a preference in order (OIDC Core §3.1.2.1): the first
    // value this user can meet. "2" counts only for a user who has a second
    // factor, "phr" for one with a passkey — nobody is pushed into setting
    // one up by a voluntary request.
    for v in acr.voluntary {
        match v.as_str() {
            "1" => return Ok(need),
            "phr" if crate::authn::passkey::has_passkey(&state.db, user_id).await? => {
                return Ok(need.max(Assurance::PhishingResistant));
            }
            "2" if crate::authn::mfa::has_totp(&state.db, user_id).await?
                || crate::authn::passkey::has_passkey(&state.db, user_id).await? =>
            {
                return Ok(need.max(Assurance::MultiFactor));
            }
            _ => {}
        }
    }
    Ok(need)
}

/// What a request says about `acr`: `acr_values` (voluntary, in order of
/// preference) and, through the `claims` parameter, essential values.
#[derive(Debug, Clone, Copy)]
pub struct AcrRequest<'a> {
    pub voluntary: &'a [String],
    pub essential: Option<&'a [String]>,
}

/// The facts about one authentication the policy needs.
#[derive(Debug)]
pub struct Auth<'a> {
    pub user_id: &'a str,
    pub amr: &'a [String],
    pub auth_time: i64,
    pub ip: Option<IpAddr>,
}

/// Evaluates `c`'s policy for the user; on refusal records an audit event
/// (`event`, with the rule that failed) and returns the denial.
pub async fn check(state: &AppState, c: &Client, a: &Auth<'_>, event: &'static str) -> Result<(), Refusal> {
    match evaluate(state, c, a).await? {
        Ok(()) => Ok(()),
        Err(d) => {
            record(state, c, a, event, d).await?;
            Err(Refusal::Denied(d))
        }
    }
}

/// Evaluates `c`'s policy for the user, reading only (safe inside another
/// connection's write transaction).
pub async fn evaluate(state: &AppState, c: &Client, a: &Auth<'_>) -> Result<Result<(), Denial>, OAuthError> {
    let Some(p) = &c.access_policy else {
        return Ok(Ok(()));
    };
    let roles = crate::storage::users::roles(&state.db, a.user_id).await?;
    let attributes = crate::storage::users::attributes(&state.db, a.user_id).await?;
    Ok(p.evaluate(&Subject {
        roles: &roles,
        attributes: &attributes,
        ip: a.ip,
        mfa: Assurance::of(a.amr).as_rule(),
        auth_age_secs: state.clock.now().timestamp() - a.auth_time,
    }))
}

/// Records a policy refusal: which rule failed, for whom, from where.
pub async fn record(
    state: &AppState,
    c: &Client,
    a: &Auth<'_>,
    event: &'static str,
    d: Denial,
) -> Result<(), OAuthError> {
    record_audit(
        &state.db,
        AuditEvent::new(event, "failure")
            .user(a.user_id)
            .client(&c.client_id)
            .source(a.ip.map(|i| i.to_string()), None)
            .detail(json!({ "reason": "access_policy", "rule": d.as_str() })),
        state.clock.now(),
    )
    .await?;
    Ok(())
}

/// A refusal, or a failure to decide.
#[derive(Debug)]
pub enum Refusal {
    Denied(Denial),
    Failed(OAuthError),
}

impl From<OAuthError> for Refusal {
    fn from(e: OAuthError) -> Self {
        Self::Failed(e)
    }
}
