//! The grants of the token endpoint (RFC 6749 §4.1.3, §6, §4.4) and the tokens
//! they issue: RFC 9068 JWT access tokens (ES256), OIDC ID tokens (RS256 unless
//! the client registered another algorithm), opaque rotating refresh tokens.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};

use super::claims::ClaimsRequest;
use super::dpop::Proof;
pub use super::mint::{Issued, UserGrant, issue_for_user, scoped_claims};
use super::mint::{access_token, base_claims, response};
use super::{OAuthError, scope_allowed, split_scope};
use crate::crypto::{constant_time_eq, random_token};
use crate::state::AppState;
use crate::storage::clients::Client;
use crate::storage::entities::{authorization_code, refresh_family, refresh_token, revoked_token};
use crate::storage::grants::{Refresh, SignIn};
use crate::storage::{AuditEvent, record_audit};

pub fn code_hash(state: &AppState, code: &str) -> String {
    state.master_key.hasher().hash(&format!("code:{code}"))
}

pub fn refresh_hash(state: &AppState, token: &str) -> String {
    state.master_key.hasher().hash(&format!("refresh:{token}"))
}

/// A new refresh token in `family_id`.
async fn new_refresh<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    family_id: &str,
    g: &UserGrant,
    expires_ms: i64,
) -> Result<String, OAuthError> {
    let token = random_token(32).map_err(|_| OAuthError::ServerError)?;
    refresh_token::ActiveModel {
        token_hash: Set(refresh_hash(state, &token)),
        family_id: Set(family_id.to_owned()),
        scope: Set(g.scope.join(" ")),
        resource: Set(g.resource.clone()),
        auth_time: Set(g.auth_time),
        amr: Set(crate::storage::grants::amr_text(&g.amr)),
        acr: Set(g.acr.clone()),
        created_ms: Set(state.clock.now().timestamp_millis()),
        expires_ms: Set(expires_ms),
        rotated_ms: Set(None),
        grace_used: Set(false),
        claims: Set(g.claims.as_ref().and_then(|c| serde_json::to_string(c).ok())),
    }
    .insert(conn)
    .await?;
    Ok(token)
}

/// Starts a refresh-token family for the grant `g` (from the code `grant_id`
/// of the browser session `session_id`, if any) and returns its first token:
/// the one way every grant that hands out refresh tokens starts one.
pub(super) async fn open_family<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    g: &UserGrant,
    grant_id: Option<&str>,
    session_id: Option<&str>,
    now_ms: i64,
) -> Result<String, OAuthError> {
    let family = uuid::Uuid::new_v4().to_string();
    let expires = now_ms + state.settings.refresh_token_ttl_secs * 1000;
    refresh_family::ActiveModel {
        id: Set(family.clone()),
        grant_id: Set(grant_id.map(str::to_owned)),
        client_id: Set(g.client.client_id.clone()),
        user_id: Set(g.user.id.clone()),
        session_id: Set(session_id.map(str::to_owned)),
        revoked_ms: Set(None),
        created_ms: Set(now_ms),
        expires_ms: Set(expires),
        // A public client's refresh tokens are bound to the key too
        // (RFC 9449 §5): a stolen one is worthless without the key.
        dpop_jkt: Set(g.dpop_jkt.clone().filter(|_| g.client.public)),
    }
    .insert(conn)
    .await?;
    new_refresh(state, conn, &family, g, expires).await
}

/// Revokes everything issued from one authorization (a replayed code).
async fn revoke_grant(state: &AppState, grant_id: &str, access_jti: Option<&str>) -> Result<(), OAuthError> {
    let now_ms = state.clock.now().timestamp_millis();
    refresh_family::Entity::update_many()
        .col_expr(refresh_family::Column::RevokedMs, Expr::val(now_ms))
        .filter(refresh_family::Column::GrantId.eq(grant_id))
        .filter(refresh_family::Column::RevokedMs.is_null())
        .exec(&state.db)
        .await?;
    if let Some(jti) = access_jti {
        revoke_jti(state, jti, now_ms + state.settings.access_token_ttl_secs * 1000).await?;
    }
    Ok(())
}

/// Whether the browser session `id` is still live (not ended, not expired).
async fn session_alive<C: ConnectionTrait>(conn: &C, id: &str, now_ms: i64) -> Result<bool, OAuthError> {
    use crate::storage::entities::session;
    Ok(session::Entity::find_by_id(id).one(conn).await?.is_some_and(|s| s.expires_ms > now_ms))
}

pub async fn revoke_jti(state: &AppState, jti: &str, expires_ms: i64) -> Result<(), OAuthError> {
    state.revoked.add(jti);
    // Read now, not at the request's start: other instances pull revocations
    // by this time (see `state::cache`).
    let now_ms = state.clock.fresh().timestamp_millis();
    revoked_token::Entity::insert(revoked_token::ActiveModel {
        jti: Set(jti.to_owned()),
        revoked_ms: Set(now_ms),
        expires_ms: Set(expires_ms),
    })
    .on_conflict(OnConflict::column(revoked_token::Column::Jti).do_nothing().to_owned())
    .exec_without_returning(&state.db)
    .await?;
    Ok(())
}

/// A client registered for DPoP-bound tokens (or held to FAPI 2.0) gets
/// none without a proof (RFC 9449 §5.2 `dpop_bound_access_tokens`).
pub(super) fn require_dpop(c: &Client, dpop: Option<&Proof>) -> Result<(), OAuthError> {
    if c.requires_dpop() && dpop.is_none() {
        return Err(OAuthError::InvalidDpopProof("this client's tokens must be DPoP-bound: send a DPoP proof"));
    }
    Ok(())
}

fn pkce_ok(challenge: &str, verifier: &str) -> bool {
    let ok_chars = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref());
    ok_chars && constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

/// RFC 6749 §4.1.3 with RFC 7636 §4.6.
pub async fn authorization_code(
    state: &AppState,
    c: &Arc<Client>,
    p: &HashMap<String, String>,
    dpop: Option<&Proof>,
) -> Result<Value, OAuthError> {
    if !c.has_grant("authorization_code") {
        return Err(OAuthError::UnauthorizedClient("this client may not use the authorization code grant"));
    }
    require_dpop(c, dpop)?;
    let code = p
        .get("code")
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .ok_or(OAuthError::InvalidRequest("code is required"))?;
    let redirect_uri = p.get("redirect_uri").ok_or(OAuthError::InvalidRequest("redirect_uri is required"))?;
    let verifier = p.get("code_verifier");
    let now_ms = state.clock.now().timestamp_millis();
    let Some(row) = authorization_code::Entity::find_by_id(code_hash(state, code)).one(&state.db).await? else {
        return Err(OAuthError::InvalidGrant("the code is invalid or expired"));
    };
    if row.client_id != c.client_id {
        return Err(OAuthError::InvalidGrant("the code was issued to another client"));
    }
    // Single use: the first exchange wins; a second one is an attack on the
    // code, so everything issued from it is revoked (RFC 6749 §4.1.2). The
    // claim, the tokens' records and the family are one write transaction:
    // a parallel redemption's claim waits for it (PostgreSQL row lock;
    // SQLite's single writer) and then finds — and revokes — what it issued,
    // whatever the interleaving.
    let txn = crate::storage::begin_write(&state.db).await?;
    let claimed = authorization_code::Entity::update_many()
        .col_expr(authorization_code::Column::UsedMs, Expr::val(now_ms))
        .filter(authorization_code::Column::CodeHash.eq(row.code_hash.as_str()))
        .filter(authorization_code::Column::UsedMs.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        txn.rollback().await?;
        let current = authorization_code::Entity::find_by_id(row.code_hash.as_str()).one(&state.db).await?;
        revoke_grant(state, &row.grant_id, current.and_then(|r| r.access_jti).as_deref()).await?;
        record_audit(
            &state.db,
            AuditEvent::new("oauth.code_reuse", "failure")
                .user(&row.user_id)
                .client(&c.client_id)
                .detail(json!({ "grant": row.grant_id })),
            state.clock.now(),
        )
        .await?;
        return Err(OAuthError::InvalidGrant("the code was already used"));
    }
    // From here a refusal still spends the code (the claim is committed).
    let refuse = async |txn: sea_orm::DatabaseTransaction, e: OAuthError| -> Result<Value, OAuthError> {
        txn.commit().await?;
        Err(e)
    };
    if row.expires_ms <= now_ms {
        return refuse(txn, OAuthError::InvalidGrant("the code is invalid or expired")).await;
    }
    if row.redirect_uri != *redirect_uri {
        return refuse(txn, OAuthError::InvalidGrant("redirect_uri does not match the authorization request")).await;
    }
    match (&row.code_challenge, verifier) {
        (Some(ch), Some(v)) if pkce_ok(ch, v) => {}
        (Some(_), _) => {
            return refuse(txn, OAuthError::InvalidGrant("code_verifier does not match the code_challenge")).await;
        }
        (None, Some(_)) => {
            return refuse(txn, OAuthError::InvalidGrant("no code_challenge was sent for this code")).await;
        }
        (None, None) => {}
    }
    // A code bound to a key at /authorize or /par (`dpop_jkt`) is redeemed
    // only with a proof of that key (RFC 9449 §10).
    if let Some(jkt) = &row.dpop_jkt
        && dpop.is_none_or(|d| d.jkt != *jkt)
    {
        return refuse(
            txn,
            OAuthError::InvalidDpopProof("the DPoP key is not the one the authorization request named"),
        )
        .await;
    }
    // A code does not outlive the sign-in it came from: after a logout, a
    // password reset or "end all sessions" it is worth nothing.
    if !session_alive(&txn, &row.session_id, now_ms).await? {
        return refuse(txn, OAuthError::InvalidGrant("the sign-in session behind this code has ended")).await;
    }
    let u = match crate::storage::users::active(&txn, &row.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return refuse(txn, OAuthError::InvalidGrant("the user is no longer active")).await,
        Err(e) => return refuse(txn, e.into()).await,
    };
    // The code's record is parsed before anything is issued from it: a
    // damaged one is refused (the claim stays spent), never read as a
    // sign-in without factors or a request without claims.
    let parsed =
        crate::storage::grants::parse_scope("authorization code", &row.grant_id, &row.scope).and_then(|scope| {
            let sign_in = SignIn::parse(
                "authorization code",
                &row.grant_id,
                row.auth_time,
                &row.amr,
                row.acr.as_deref(),
                row.claims.as_deref(),
            )?;
            Ok((scope, sign_in))
        });
    let (scope, sign_in) = match parsed {
        Ok(p) => p,
        Err(d) => return refuse(txn, d.into()).await,
    };
    let g = UserGrant {
        user: u,
        client: c.clone(),
        scope,
        nonce: row.nonce.clone(),
        auth_time: sign_in.auth_time,
        amr: sign_in.amr,
        acr: sign_in.acr,
        sid: Some(row.session_id.clone()),
        resource: row.resource.clone(),
        claims: sign_in.claims,
        dpop_jkt: dpop.map(|d| d.jkt.clone()),
    };
    let issued = issue_for_user(state, &txn, &g).await?;
    authorization_code::Entity::update_many()
        .col_expr(authorization_code::Column::AccessJti, Expr::val(issued.jti.clone()))
        .filter(authorization_code::Column::CodeHash.eq(row.code_hash.as_str()))
        .exec(&txn)
        .await?;
    let refresh = if c.has_grant("refresh_token") {
        Some(open_family(state, &txn, &g, Some(&row.grant_id), Some(&row.session_id), now_ms).await?)
    } else {
        None
    };
    txn.commit().await?;
    // A logout that committed while this exchange ran revoked the families
    // it could see; this one it could not, so look once more.
    if !session_alive(&state.db, &row.session_id, now_ms).await? {
        revoke_grant(state, &row.grant_id, Some(&issued.jti)).await?;
        return Err(OAuthError::InvalidGrant("the sign-in session behind this code has ended"));
    }
    state.metrics.token_issued("authorization_code");
    Ok(response(state, issued, refresh, &g.scope))
}

/// The longest refresh-token grace a client may register.
pub const MAX_REFRESH_GRACE_SECS: i32 = 60;

/// RFC 6749 §6, with rotation and reuse detection (RFC 9700 §4.14.2).
pub async fn refresh(
    state: &AppState,
    c: &Arc<Client>,
    p: &HashMap<String, String>,
    ip: Option<std::net::IpAddr>,
    dpop: Option<&Proof>,
) -> Result<Value, OAuthError> {
    if !c.has_grant("refresh_token") {
        return Err(OAuthError::UnauthorizedClient("this client may not use refresh tokens"));
    }
    require_dpop(c, dpop)?;
    let token = p
        .get("refresh_token")
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .ok_or(OAuthError::InvalidRequest("refresh_token is required"))?;
    let now = state.clock.now();
    let now_ms = now.timestamp_millis();
    let invalid = OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked");
    let Some(Refresh { family: fam, token: row }) =
        crate::storage::grants::refresh::<ClaimsRequest, _>(&state.db, &refresh_hash(state, token)).await?
    else {
        return Err(invalid);
    };
    if fam.client_id != c.client_id {
        return Err(invalid);
    }
    if fam.revoked_ms.is_some() || fam.expires_ms <= now_ms || row.expires_ms <= now_ms {
        return Err(invalid);
    }
    // A bound family is refreshed only with a proof of its key; the token
    // stays unused (a thief without the key cannot rotate it away).
    if let Some(jkt) = &fam.dpop_jkt
        && dpop.is_none_or(|d| d.jkt != *jkt)
    {
        return Err(OAuthError::InvalidDpopProof("the refresh token is bound to another DPoP key"));
    }
    // Everything that only reads — the user, the client's policy, the
    // sign-in strength, the new access token — happens before the write
    // transaction: a transaction never waits for a pool connection while it
    // holds SQLite's write lock (parallel refreshes would starve it).
    let Some(u) = crate::storage::users::active(&state.db, &fam.user_id).await? else {
        return Err(invalid);
    };
    // The client's access policy is evaluated again on every refresh: a user
    // who lost a role (or moved network, or whose login grew too old) gets no
    // new tokens. The token stays unused.
    let amr = row.sign_in.amr.clone();
    let auth = super::access::Auth { user_id: &u.id, amr: &amr, auth_time: row.sign_in.auth_time, ip };
    if let Err(d) = super::access::evaluate(state, c, &auth).await? {
        super::access::record(state, c, &auth, "oauth.refresh_denied", d).await?;
        return Err(OAuthError::InvalidGrant("the client's access policy no longer admits this user"));
    }
    // So is the strength the user's policy asks of a sign-in (a role that
    // now needs a passkey, an admin who added one): a weaker login gets no
    // new tokens; the user signs in again.
    let acr = super::access::AcrRequest { voluntary: &[], essential: None };
    let need = super::access::required_assurance(state, &u.id, c, &acr, row.resource.as_deref()).await?;
    if crate::policy::Assurance::of(&amr) < need {
        record_audit(
            &state.db,
            AuditEvent::new("oauth.refresh_denied", "failure")
                .user(&u.id)
                .client(&c.client_id)
                .detail(json!({ "reason": "assurance", "needed": need.acr() })),
            now,
        )
        .await?;
        return Err(OAuthError::InvalidGrant(
            "the sign-in behind this token is weaker than the user's policy now needs",
        ));
    }
    let original = row.scope.clone();
    let scope = match p.get("scope") {
        None => original.clone(),
        Some(s) => {
            let asked = split_scope(s)?;
            if asked.is_empty() {
                return Err(OAuthError::InvalidScope("a refresh may only narrow the original scope"));
            }
            if let Some(x) = asked.iter().find(|x| !original.contains(x)) {
                return Err(OAuthError::refused_scope(x, "a refresh may only narrow the original scope"));
            }
            asked
        }
    };
    let g = UserGrant {
        user: u,
        client: c.clone(),
        scope: original.clone(),
        nonce: None,
        auth_time: row.sign_in.auth_time,
        amr,
        acr: row.sign_in.acr.clone(),
        sid: fam.session_id.clone(),
        resource: row.resource.clone(),
        claims: row.sign_in.claims.clone(),
        dpop_jkt: dpop.map(|d| d.jkt.clone()),
    };
    // The new refresh token keeps the original scope (RFC 6749 §6); the
    // access token gets the narrowed one.
    let narrowed = UserGrant { scope: scope.clone(), ..g.clone() };
    let issued = issue_for_user(state, &state.db, &narrowed).await?;
    // Rotation is one transaction: the old token is marked and its successor
    // stored together, so a crash can never leave a family half-rotated (and a
    // refresh that fails validation below leaves the token unused).
    let txn = crate::storage::begin_write(&state.db).await?;
    let mut audit_record = None;
    let rotated = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RotatedMs, Expr::val(now_ms))
        .filter(refresh_token::Column::TokenHash.eq(row.token_hash.as_str()))
        .filter(refresh_token::Column::RotatedMs.is_null())
        .exec(&txn)
        .await?;
    if rotated.rows_affected != 1 {
        // A rotated-out token came back. Strict by default (RFC 9700
        // §4.14.2): someone holds a copy, so the whole family ends. A client
        // registered with a grace (at most 60 s, for clients that refresh in
        // parallel) may redeem it once more within that time — once only, so
        // parallel refreshes cannot fork the family into live chains.
        let grace_ms = i64::from(c.refresh_grace_secs.unwrap_or(0).clamp(0, MAX_REFRESH_GRACE_SECS)) * 1000;
        let within = row.rotated_ms.is_none_or(|at| now_ms - at <= grace_ms);
        let spent_grace = grace_ms > 0
            && within
            && refresh_token::Entity::update_many()
                .col_expr(refresh_token::Column::GraceUsed, Expr::val(true))
                .filter(refresh_token::Column::TokenHash.eq(row.token_hash.as_str()))
                .filter(refresh_token::Column::GraceUsed.eq(false))
                .exec(&txn)
                .await?
                .rows_affected
                == 1;
        if !spent_grace {
            // Release the transaction first: on SQLite it may hold the write lock.
            txn.rollback().await?;
            state.metrics.refresh_reuse();
            // The family ends first, on its own: a failure to write the
            // record must not keep a stolen family alive.
            refresh_family::Entity::update_many()
                .col_expr(refresh_family::Column::RevokedMs, Expr::val(now_ms))
                .filter(refresh_family::Column::Id.eq(fam.id.as_str()))
                .exec(&state.db)
                .await?;
            record_audit(
                &state.db,
                AuditEvent::new("oauth.refresh_reuse", "failure")
                    .user(&fam.user_id)
                    .client(&c.client_id)
                    .detail(json!({ "family": fam.id })),
                now,
            )
            .await?;
            return Err(invalid);
        }
        audit_record = Some(
            AuditEvent::new("oauth.refresh_grace_used", "success")
                .user(&fam.user_id)
                .client(&c.client_id)
                .detail(json!({ "family": fam.id, "grace_secs": grace_ms / 1000 })),
        );
    }
    // A public client's family not bound yet (its code came without a
    // proof) is bound by the first refresh that brings one (RFC 9449 §5).
    if c.public
        && fam.dpop_jkt.is_none()
        && let Some(d) = dpop
    {
        refresh_family::Entity::update_many()
            .col_expr(refresh_family::Column::DpopJkt, Expr::val(d.jkt.clone()))
            .filter(refresh_family::Column::Id.eq(fam.id.as_str()))
            .filter(refresh_family::Column::DpopJkt.is_null())
            .exec(&txn)
            .await?;
    }
    let next = new_refresh(state, &txn, &fam.id, &g, fam.expires_ms).await?;
    crate::storage::clients::touch(&txn, c, now_ms).await?;
    crate::storage::commit_audited(txn, audit_record, now).await?;
    state.metrics.token_issued("refresh_token");
    Ok(response(state, issued, Some(next), &scope))
}

/// RFC 6749 §4.4: a service acting for itself. `sub` is the client; `roles`
/// are the client's own.
pub async fn client_credentials(
    state: &AppState,
    c: &Client,
    p: &HashMap<String, String>,
    dpop: Option<&Proof>,
) -> Result<Value, OAuthError> {
    if c.public || !c.has_grant("client_credentials") {
        return Err(OAuthError::UnauthorizedClient("this client may not use the client credentials grant"));
    }
    require_dpop(c, dpop)?;
    let registered = &c.scopes;
    let scope = match p.get("scope") {
        None => registered.clone(),
        Some(s) => {
            let asked = split_scope(s)?;
            if let Some(x) = asked.iter().find(|x| !registered.contains(x) || !scope_allowed(x, registered)) {
                return Err(OAuthError::refused_scope(x, "not allowed for this client"));
            }
            asked
        }
    };
    let aud = match p.get("resource") {
        Some(r) if !crate::domain::is_resource_indicator(r) => {
            return Err(OAuthError::InvalidRequest("resource must be an absolute URI (RFC 8707)"));
        }
        Some(r) if !c.may_request(r) => {
            return Err(OAuthError::InvalidTarget("this client may not request tokens for that resource"));
        }
        Some(r) => r.clone(),
        None => c.client_id.clone(),
    };
    let roles = c.roles.clone();
    let now = state.clock.now().timestamp();
    let jkt = dpop.map(|d| d.jkt.as_str());
    let (mut claims, _) = base_claims(state, &c.client_id, &c.client_id, &aud, &scope, now, jkt);
    claims.insert("roles".into(), roles.into());
    let token = access_token(state, claims)?;
    state.metrics.token_issued("client_credentials");
    Ok(json!({
        "access_token": token,
        "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": state.settings.access_token_ttl_secs,
        "scope": scope.join(" "),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_ok("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", verifier));
        assert!(!pkce_ok("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN", verifier));
        assert!(!pkce_ok("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "short"));
    }
}
