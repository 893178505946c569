//! Introspection (RFC 7662) and revocation (RFC 7009) for an authenticated
//! client, and the check of our own JWT access tokens. The token endpoint's
//! HTTP side is `web::token`.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use super::dpop::Sender;
use super::{OAuthError, grants};
use crate::state::AppState;
use crate::storage::clients::Client;
use crate::storage::entities::{refresh_family, refresh_token};
use crate::tokens::jwt;

/// Checks an access token as a request presents it to one of our resources
/// (UserInfo, the admin API): valid ([`check_access_token`]), and sent the
/// way its binding demands — a DPoP-bound token only with a proof of its key
/// (`sender` carries the proof's thumbprint), an unbound one only as bearer.
pub async fn check_presented(state: &AppState, token: &str, sender: Sender<'_>) -> Result<Value, OAuthError> {
    let claims = check_access_token(state, token).await?;
    super::dpop::presented_ok(&claims, sender)?;
    Ok(claims)
}

/// Checks one of our JWT access tokens: signature (kid pinned to its
/// algorithm), `typ: at+jwt`, issuer, expiry, and the revocation list — not
/// how it was presented (introspection's question; resources use
/// [`check_presented`]). A token whose signature was checked before comes
/// from `state.verified` (while its key is in the ring); every other check
/// runs on every call.
pub(super) async fn check_access_token(state: &AppState, token: &str) -> Result<Value, OAuthError> {
    let ring = state.keyring();
    let key = crate::state::verified::key_of(token);
    let (c, fresh_kid) = match state.verified.get(&ring, &key) {
        Some(c) => (Value::clone(&c), None),
        None => {
            let v = jwt::verify(&ring, token, Some("at+jwt"))
                .map_err(|_| OAuthError::InvalidToken("the access token is invalid"))?;
            let kid = v.header.get("kid").and_then(Value::as_str).map(str::to_owned);
            (v.claims, kid)
        }
    };
    drop(ring);
    if c.get("iss").and_then(Value::as_str) != Some(state.settings.issuer()) {
        return Err(OAuthError::InvalidToken("the access token is invalid"));
    }
    let now = state.clock.now().timestamp();
    let exp = c.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= now {
        return Err(OAuthError::InvalidToken("the access token has expired"));
    }
    let jti = c.get("jti").and_then(Value::as_str).ok_or(OAuthError::InvalidToken("the access token is invalid"))?;
    if state.revoked.contains(&state.db, jti, now * 1000).await? {
        return Err(OAuthError::InvalidToken("the access token was revoked"));
    }
    // A deleted client's tokens die with it (through the client cache, so no
    // database round-trip on the hot path).
    let client_id = c.get("client_id").and_then(Value::as_str).unwrap_or_default();
    // (A client known by its metadata document cannot be deleted here.)
    if !super::cimd::is_document_id(client_id) && state.clients.get(&state.db, client_id).await?.is_none() {
        return Err(OAuthError::InvalidToken("the access token was revoked"));
    }
    if let Some(kid) = fresh_kid {
        state.verified.put(key, &kid, exp, std::sync::Arc::new(c.clone()), now);
    }
    Ok(c)
}

fn may_introspect(caller: &crate::storage::clients::Client, claims: &Value) -> bool {
    let me = caller.client_id.as_str();
    if claims.get("client_id").and_then(Value::as_str) == Some(me) {
        return true;
    }
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    auds.iter().any(|a| *a == me || caller.may_request(a))
}

fn looks_like_jwt(t: &str) -> bool {
    t.bytes().filter(|b| *b == b'.').count() == 2
}

/// RFC 7662: what `caller` may learn about `token` (`{"active": false}` for
/// anything else).
pub async fn introspect(state: &AppState, caller: &Client, token: &str) -> Result<Value, OAuthError> {
    if caller.public {
        // RFC 7662 §2.1: the caller must be authorised; public clients are not.
        return Err(OAuthError::InvalidClient { basic: false });
    }
    let inactive = || json!({ "active": false });
    if looks_like_jwt(token) {
        return Ok(match check_access_token(state, token).await {
            // RFC 7662 §4: only a party the token is meant for learns about
            // it — the client it was issued to, or a resource server it is
            // for (its client id in `aud`, or an `aud` it registered as its
            // resource indicator). Anyone else is told nothing.
            Ok(claims) if !may_introspect(caller, &claims) => inactive(),
            Ok(claims) => {
                // RFC 9449 §6.2: a bound token's `cnf` tells the resource
                // server which key must prove possession.
                let kind = if super::dpop::bound_key(&claims).is_some() { "DPoP" } else { "Bearer" };
                let mut out = json!({ "active": true, "token_type": kind });
                for k in [
                    "scope",
                    "client_id",
                    "sub",
                    "aud",
                    "iss",
                    "exp",
                    "iat",
                    "jti",
                    "roles",
                    "auth_time",
                    "acr",
                    "amr",
                    "cnf",
                ] {
                    if let Some(v) = claims.get(k) {
                        out[k] = v.clone();
                    }
                }
                out
            }
            Err(OAuthError::InvalidToken(_)) => inactive(),
            Err(e) => return Err(e),
        });
    }
    // A refresh token: only its own client may learn about it.
    let now_ms = state.clock.now().timestamp_millis();
    // A damaged record is a token that cannot be used: inactive.
    let hash = grants::refresh_hash(state, token);
    let found = crate::storage::grants::refresh::<super::claims::ClaimsRequest, _>(&state.db, &hash);
    let Some(crate::storage::grants::Refresh { family: fam, token: row }) = (match found.await {
        Ok(found) => found,
        Err(crate::storage::grants::LoadError::Damaged(d)) => {
            tracing::error!(error = %d, "introspecting a damaged refresh token");
            None
        }
        Err(crate::storage::grants::LoadError::Db(e)) => return Err(e.into()),
    }) else {
        return Ok(inactive());
    };
    if fam.client_id != caller.client_id
        || fam.revoked_ms.is_some()
        || row.rotated_ms.is_some()
        || row.expires_ms <= now_ms
    {
        return Ok(inactive());
    }
    Ok(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": row.scope.join(" "),
        "client_id": fam.client_id,
        "sub": fam.user_id,
        "iss": state.settings.issuer(),
        "iat": row.created_ms / 1000,
        "exp": row.expires_ms / 1000,
    }))
}

/// RFC 7009: revokes `token` if it is `caller`'s; unknown tokens are no error.
pub async fn revoke(state: &AppState, caller: &Client, token: &str) -> Result<(), OAuthError> {
    let now_ms = state.clock.now().timestamp_millis();
    if looks_like_jwt(token) {
        let ring = state.keyring();
        if let Ok(v) = jwt::verify(&ring, token, Some("at+jwt"))
            && v.claims.get("client_id").and_then(Value::as_str) == Some(caller.client_id.as_str())
            && let Some(jti) = v.claims.get("jti").and_then(Value::as_str)
        {
            let exp_ms = v.claims.get("exp").and_then(Value::as_i64).unwrap_or(0) * 1000;
            grants::revoke_jti(state, jti, exp_ms.max(now_ms)).await?;
        }
    } else if let Some(row) =
        refresh_token::Entity::find_by_id(grants::refresh_hash(state, token)).one(&state.db).await?
    {
        // Revoking a refresh token ends its family (RFC 7009 §2.1).
        refresh_family::Entity::update_many()
            .col_expr(refresh_family::Column::RevokedMs, Expr::val(now_ms))
            .filter(refresh_family::Column::Id.eq(row.family_id.as_str()))
            .filter(refresh_family::Column::ClientId.eq(caller.client_id.as_str()))
            .filter(refresh_family::Column::RevokedMs.is_null())
            .exec(&state.db)
            .await?;
    }
    Ok(())
}
