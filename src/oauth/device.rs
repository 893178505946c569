//! The device authorization grant (RFC 8628): a device without a browser
//! (a TV, a CLI, an agent) asks for a pair of codes; the person enters the
//! user code on `/device` in a signed-in browser and approves or denies; the
//! device polls the token endpoint until then. One approval, one token issue,
//! whichever instance the poll reaches (the claim is a conditional update).

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, ExprTrait, QueryFilter, Set};
use serde_json::{Value, json};

use super::dpop::Proof;
use super::{OAuthError, scope_allowed, split_scope};
use crate::domain::Origin;
use crate::session::Current;
use crate::state::AppState;
use crate::storage::AuditEvent;
use crate::storage::clients::Client;
use crate::storage::entities::device_code;
use crate::storage::grants::SignIn;

/// The grant type (RFC 8628 §3.4).
pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// User-code letters (RFC 8628 §6.1): consonants without look-alikes, no
/// vowels (no words), case-insensitive.
const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;
/// How long the codes live, and the polling interval a device starts with.
pub const TTL_SECS: i64 = 600;
pub const INTERVAL_SECS: i32 = 5;

fn device_hash(state: &AppState, code: &str) -> String {
    state.master_key.hasher().hash(&format!("device:{code}"))
}

/// A fresh user code: 8 letters, about 34.6 bits (20^8), drawn without bias.
fn new_user_code() -> Result<String, OAuthError> {
    let mut out = String::with_capacity(USER_CODE_LEN);
    while out.len() < USER_CODE_LEN {
        let mut buf = [0u8; 16];
        aws_lc_rs::rand::fill(&mut buf).map_err(|_| OAuthError::ServerError)?;
        // 240 = 12 × 20: bytes above it would favour the first letters.
        for b in buf.into_iter().filter(|b| *b < 240) {
            if out.len() < USER_CODE_LEN {
                out.push(char::from(ALPHABET[usize::from(b % 20)]));
            }
        }
    }
    Ok(out)
}

/// A user code as typed (any case, with or without the dash or spaces), in
/// its stored form; `None` when it cannot be one.
pub fn normalize(input: &str) -> Option<String> {
    let code: String = input.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// A user code as shown: `WDJB-MJHT`.
pub fn display(code: &str) -> String {
    match code.split_at_checked(USER_CODE_LEN / 2) {
        Some((a, b)) => format!("{a}-{b}"),
        None => code.to_owned(),
    }
}

/// RFC 8628 §3.1–3.2: a device authorization request of the authenticated
/// client `c`.
pub async fn start(
    state: &AppState,
    c: &Client,
    p: &HashMap<String, String>,
    origin: &Origin,
) -> Result<Value, OAuthError> {
    if !c.has_grant(GRANT) {
        return Err(OAuthError::UnauthorizedClient("this client may not use the device authorization grant"));
    }
    let scope = split_scope(p.get("scope").map(String::as_str).unwrap_or("openid"))?;
    if let Some(s) = scope.iter().find(|s| !scope_allowed(s, &c.scopes)) {
        return Err(OAuthError::refused_scope(s, "not allowed for this client"));
    }
    let resource = match p.get("resource") {
        None => None,
        Some(r) if !crate::domain::is_resource_indicator(r) => {
            return Err(OAuthError::InvalidRequest("resource must be an absolute URI (RFC 8707)"));
        }
        Some(r) if !c.may_request(r) => {
            return Err(OAuthError::InvalidTarget("this client may not request tokens for that resource"));
        }
        Some(r) => Some(r.clone()),
    };
    let device_code = crate::crypto::random_token(32).map_err(|_| OAuthError::ServerError)?;
    let now_ms = state.clock.now().timestamp_millis();
    // A collision of user codes (unique column) is retried with a new one.
    let mut user_code = new_user_code()?;
    for attempt in 0.. {
        let row = device_code::ActiveModel {
            device_hash: Set(device_hash(state, &device_code)),
            user_code: Set(user_code.clone()),
            client_id: Set(c.client_id.clone()),
            scope: Set(scope.join(" ")),
            resource: Set(resource.clone()),
            created_ms: Set(now_ms),
            expires_ms: Set(now_ms + TTL_SECS * 1000),
            interval_secs: Set(INTERVAL_SECS),
            last_poll_ms: Set(None),
            status: Set("pending".into()),
            user_id: Set(None),
            auth_time: Set(None),
            amr: Set(None),
            acr: Set(None),
            origin_ip: Set(origin.ip.clone()),
            origin_agent: Set(origin.user_agent.as_ref().map(|a| a.chars().take(200).collect())),
            decided_ms: Set(None),
        };
        match row.insert(&state.db).await {
            Ok(_) => break,
            Err(e) if crate::storage::is_unique_violation(&e) && attempt < 3 => user_code = new_user_code()?,
            Err(e) => return Err(e.into()),
        }
    }
    let uri = format!("{}/device", state.settings.issuer());
    Ok(json!({
        "device_code": device_code,
        "user_code": display(&user_code),
        "verification_uri": uri,
        "verification_uri_complete": format!("{uri}?user_code={}", display(&user_code)),
        "expires_in": TTL_SECS,
        "interval": INTERVAL_SECS,
    }))
}

/// A pending device request, as the approval page shows it.
pub struct Pending {
    pub user_code: String,
    pub client: Arc<Client>,
    pub scope: Vec<String>,
    pub resource: Option<String>,
    pub origin_ip: Option<String>,
    pub origin_agent: Option<String>,
}

/// The pending, unexpired request with this (normalised) user code.
pub async fn pending(state: &AppState, user_code: &str) -> Result<Option<Pending>, OAuthError> {
    let now_ms = state.clock.now().timestamp_millis();
    let Some(row) = device_code::Entity::find()
        .filter(device_code::Column::UserCode.eq(user_code))
        .filter(device_code::Column::Status.eq("pending"))
        .filter(device_code::Column::ExpiresMs.gt(now_ms))
        .one(&state.db)
        .await?
    else {
        return Ok(None);
    };
    let Some(client) = state.clients.get(&state.db, &row.client_id).await? else {
        return Ok(None);
    };
    Ok(Some(Pending {
        user_code: row.user_code,
        client,
        scope: split_scope(&row.scope)?,
        resource: row.resource,
        origin_ip: row.origin_ip,
        origin_agent: row.origin_agent,
    }))
}

/// Why an approval cannot be given.
#[derive(Debug)]
pub enum Refused {
    /// The code is unknown, expired or already decided.
    Gone,
    /// The sign-in is weaker than the client or the user's policy needs.
    Weak,
    /// The client's access policy does not admit the user.
    Policy,
    Failed(OAuthError),
}

impl From<OAuthError> for Refused {
    fn from(e: OAuthError) -> Self {
        Self::Failed(e)
    }
}

impl From<sea_orm::DbErr> for Refused {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Failed(e.into())
    }
}

/// The signed-in person `cur` approves (or denies) the pending request
/// `user_code`: the same checks as a code at `/authorize` — the strength of
/// the sign-in the client and the user's policy need, the client's access
/// policy — then one conditional update (a second decision, here or on
/// another instance, finds nothing pending), audited in the same
/// transaction.
pub async fn decide(
    state: &AppState,
    origin: &Origin,
    cur: &Current,
    user_code: &str,
    approve: bool,
) -> Result<(), Refused> {
    let p = pending(state, user_code).await?.ok_or(Refused::Gone)?;
    if approve {
        let acr = super::access::AcrRequest { voluntary: &[], essential: None };
        let need = super::access::required_assurance(state, &cur.user.id, &p.client, &acr, p.resource.as_deref())
            .await
            .map_err(OAuthError::from)?;
        if crate::policy::Assurance::of(&cur.session.amr) < need {
            return Err(Refused::Weak);
        }
        match super::authorize::flow::admit(state, origin, &p.client, cur).await {
            Ok(()) => {}
            Err(OAuthError::AccessDenied(_)) => return Err(Refused::Policy),
            Err(e) => return Err(Refused::Failed(e)),
        }
        // The tokens go to the device, not this browser: the policy's network
        // rules must admit the device's address too (a victim inside the
        // network cannot carry an outsider's device in).
        let device = super::access::Auth {
            user_id: &cur.user.id,
            amr: &cur.session.amr,
            auth_time: cur.session.auth_time,
            ip: p.origin_ip.as_deref().and_then(|i| i.parse().ok()),
        };
        if let Err(d) = super::access::evaluate(state, &p.client, &device).await? {
            super::access::record(state, &p.client, &device, "oauth.device_denied_policy", d).await?;
            return Err(Refused::Policy);
        }
    }
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let decided = device_code::Entity::update_many()
        .col_expr(device_code::Column::Status, Expr::val(if approve { "approved" } else { "denied" }))
        .col_expr(device_code::Column::UserId, Expr::val(cur.user.id.clone()))
        .col_expr(device_code::Column::AuthTime, Expr::val(cur.session.auth_time))
        .col_expr(device_code::Column::Amr, Expr::val(crate::storage::grants::amr_text(&cur.session.amr)))
        .col_expr(device_code::Column::Acr, Expr::val(cur.session.acr.clone()))
        .col_expr(device_code::Column::DecidedMs, Expr::val(now.timestamp_millis()))
        .filter(device_code::Column::UserCode.eq(user_code))
        .filter(device_code::Column::Status.eq("pending"))
        .filter(device_code::Column::ExpiresMs.gt(now.timestamp_millis()))
        .exec(&txn)
        .await?;
    if decided.rows_affected != 1 {
        txn.rollback().await?;
        return Err(Refused::Gone);
    }
    if approve {
        crate::storage::clients::touch(&txn, &p.client, now.timestamp_millis()).await?;
    }
    let audit_record =
        AuditEvent::new(if approve { "oauth.device_approved" } else { "oauth.device_denied" }, "success")
            .user(&cur.user.id)
            .client(&p.client.client_id)
            .source(origin.ip.clone(), origin.user_agent.clone())
            .detail(json!({ "scope": p.scope, "device_ip": p.origin_ip }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(())
}

/// RFC 8628 §3.4–3.5: a device's poll at the token endpoint.
pub async fn poll(
    state: &AppState,
    c: &Arc<Client>,
    p: &HashMap<String, String>,
    dpop: Option<&Proof>,
) -> Result<Value, OAuthError> {
    if !c.has_grant(GRANT) {
        return Err(OAuthError::UnauthorizedClient("this client may not use the device authorization grant"));
    }
    super::grants::require_dpop(c, dpop)?;
    let code = p
        .get("device_code")
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .ok_or(OAuthError::InvalidRequest("device_code is required"))?;
    let h = device_hash(state, code);
    let now_ms = state.clock.now().timestamp_millis();
    let Some(row) = device_code::Entity::find_by_id(h.as_str()).one(&state.db).await? else {
        return Err(OAuthError::InvalidGrant("the device code is invalid"));
    };
    if row.client_id != c.client_id {
        return Err(OAuthError::InvalidGrant("the device code was issued to another client"));
    }
    if row.expires_ms <= now_ms {
        return Err(OAuthError::ExpiredToken);
    }
    // §3.5: a poll sooner than the interval after the last one slows the
    // device down by 5 s (the check and the stamp are one update, so two
    // instances cannot both let an early poll through).
    let on_time = device_code::Entity::update_many()
        .col_expr(device_code::Column::LastPollMs, Expr::val(now_ms))
        .filter(device_code::Column::DeviceHash.eq(h.as_str()))
        .filter(
            device_code::Column::LastPollMs.is_null().or(Expr::col(device_code::Column::LastPollMs)
                .lte(Expr::val(now_ms).sub(Expr::col(device_code::Column::IntervalSecs).mul(1000)))),
        )
        .exec(&state.db)
        .await?;
    if on_time.rows_affected != 1 {
        device_code::Entity::update_many()
            .col_expr(device_code::Column::IntervalSecs, Expr::col(device_code::Column::IntervalSecs).add(5))
            .col_expr(device_code::Column::LastPollMs, Expr::val(now_ms))
            .filter(device_code::Column::DeviceHash.eq(h.as_str()))
            .exec(&state.db)
            .await?;
        return Err(OAuthError::SlowDown);
    }
    match row.status.as_str() {
        "pending" => return Err(OAuthError::AuthorizationPending),
        "denied" => return Err(OAuthError::AccessDenied("the user denied the request")),
        "approved" => {}
        _ => return Err(OAuthError::InvalidGrant("the device code was already used")),
    }
    // One token issue: the first poll to move it from approved wins.
    let txn = crate::storage::begin_write(&state.db).await?;
    let claimed = device_code::Entity::update_many()
        .col_expr(device_code::Column::Status, Expr::val("redeemed"))
        .filter(device_code::Column::DeviceHash.eq(h.as_str()))
        .filter(device_code::Column::Status.eq("approved"))
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        txn.rollback().await?;
        return Err(OAuthError::InvalidGrant("the device code was already used"));
    }
    let user_id = row.user_id.clone().unwrap_or_default();
    let u = match crate::storage::users::active(&txn, &user_id).await {
        Ok(Some(u)) => u,
        found => {
            txn.commit().await?;
            return Err(
                found.map_or_else(OAuthError::from, |_| OAuthError::InvalidGrant("the user is no longer active"))
            );
        }
    };
    // The approval's record is parsed before anything is issued from it: a
    // damaged one is refused (the code stays spent), never read as a
    // sign-in without factors.
    const RECORD: &str = "device code";
    // An approval records when and how the person signed in; without
    // them it is damaged too (never "now, with no factor": a fresh
    // auth_time would pass every login-age rule at each refresh).
    // Named by its client in the log: the user code is a credential.
    let id = row.client_id.as_str();
    let missing =
        |field| crate::storage::Damaged { record: RECORD, id: id.to_owned(), field, reason: "missing".into() };
    let parsed = crate::storage::grants::parse_scope(RECORD, id, &row.scope).and_then(|scope| {
        let at = row.auth_time.ok_or_else(|| missing("auth_time"))?;
        let amr = row.amr.as_deref().ok_or_else(|| missing("amr"))?;
        Ok((scope, SignIn::<()>::parse(RECORD, id, at, amr, row.acr.as_deref(), None)?))
    });
    let (scope, sign_in) = match parsed {
        Ok(p) => p,
        Err(d) => {
            txn.commit().await?;
            return Err(d.into());
        }
    };
    let g = super::grants::UserGrant {
        user: u,
        client: c.clone(),
        scope,
        nonce: None,
        auth_time: sign_in.auth_time,
        amr: sign_in.amr,
        acr: sign_in.acr,
        sid: None,
        resource: row.resource.clone(),
        claims: None,
        dpop_jkt: dpop.map(|d| d.jkt.clone()),
    };
    let issued = super::grants::issue_for_user(state, &txn, &g).await?;
    let refresh = if c.has_grant("refresh_token") {
        Some(super::grants::open_family(state, &txn, &g, None, None, now_ms).await?)
    } else {
        None
    };
    let record = AuditEvent::new("oauth.device_token_issued", "success")
        .user(&g.user.id)
        .client(&c.client_id)
        .detail(json!({ "scope": g.scope }));
    crate::storage::commit_audited(txn, record, state.clock.now()).await?;
    state.metrics.token_issued("device_code");
    Ok(super::mint::response(state, issued, refresh, &g.scope))
}
