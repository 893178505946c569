//! DPoP at the provider (RFC 9449): a request's proof checked once — its
//! signature, key, method, URI, age and `ath` by the one proof check shared
//! with relying services (`portcullis_verify::dpop`), its nonce against the
//! ones this server hands out, its `jti` against every proof any instance
//! has seen (a shared table) — and what a bound token must be presented with.

use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set};

use super::OAuthError;
use crate::state::AppState;
use crate::storage::entities::dpop_proof;
pub use portcullis_verify::dpop::{ALGS, Proof, ProofError};

/// Nonces live for one window and the next (RFC 9449 §8: the server decides).
const NONCE_WINDOW_SECS: i64 = 120;

/// How a request presents an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender<'a> {
    /// `Authorization: Bearer`: the token must not be bound to a key.
    Bearer,
    /// `Authorization: DPoP` with a proof of the key whose thumbprint this is.
    Dpop(&'a str),
}

/// The key thumbprint an access token is bound to (`cnf.jkt`), if any.
pub fn bound_key(claims: &serde_json::Value) -> Option<&str> {
    claims.get("cnf").and_then(|c| c.get("jkt")).and_then(serde_json::Value::as_str)
}

/// Whether a token with `claims` may be used as `sender` presents it: a
/// bound token only with a proof of its key, an unbound one only as bearer.
pub fn presented_ok(claims: &serde_json::Value, sender: Sender<'_>) -> Result<(), OAuthError> {
    match (bound_key(claims), sender) {
        (None, Sender::Bearer) => Ok(()),
        (Some(k), Sender::Dpop(j)) if crate::crypto::constant_time_eq(k.as_bytes(), j.as_bytes()) => Ok(()),
        (Some(_), Sender::Bearer) => {
            Err(OAuthError::InvalidToken("the access token is DPoP-bound: send it with a DPoP proof"))
        }
        (None, Sender::Dpop(_)) => Err(OAuthError::InvalidToken("the access token is not DPoP-bound")),
        (Some(_), Sender::Dpop(_)) => {
            Err(OAuthError::InvalidDpopProof("the DPoP proof is not made with the token's key"))
        }
    }
}

/// The nonce of the current window: a keyed hash of the window number, so
/// every instance hands out and accepts the same ones without storing any.
pub fn nonce(state: &AppState) -> String {
    nonce_for(state, state.clock.now().timestamp().div_euclid(NONCE_WINDOW_SECS))
}

fn nonce_for(state: &AppState, window: i64) -> String {
    let tag = state.master_key.hasher().hash(&format!("dpop-nonce:{window}"));
    format!("{window:x}.{}", tag.rsplit(':').next().unwrap_or(&tag))
}

fn nonce_ok(state: &AppState, given: &str) -> bool {
    let now = state.clock.now().timestamp().div_euclid(NONCE_WINDOW_SECS);
    let Some(window) = given.split_once('.').and_then(|(w, _)| i64::from_str_radix(w, 16).ok()) else {
        return false;
    };
    (window == now || window == now - 1)
        && crate::crypto::constant_time_eq(nonce_for(state, window).as_bytes(), given.as_bytes())
}

fn refused(e: ProofError) -> OAuthError {
    OAuthError::InvalidDpopProof(e.description())
}

/// Checks the proof(s) `headers` of a request to our endpoint `path`
/// (`method`, and the access token presented with it, if any) — everything
/// but the `jti`, which [`record`] spends once the caller is authenticated.
/// `None` when the request carries no proof.
pub fn check(
    state: &AppState,
    headers: &[&str],
    method: &str,
    path: &str,
    access_token: Option<&str>,
    nonce_required: bool,
) -> Result<Option<Proof>, OAuthError> {
    let proof = match headers {
        [] => return Ok(None),
        [one] => *one,
        _ => return Err(refused(ProofError::Repeated)),
    };
    let uri = format!("{}{path}", state.settings.issuer());
    let want = portcullis_verify::dpop::Expect { method, uri: &uri, access_token, now: state.clock.now().timestamp() };
    let p = portcullis_verify::dpop::check(proof, &want).map_err(refused)?;
    if nonce_required && !p.nonce.as_deref().is_some_and(|n| nonce_ok(state, n)) {
        return Err(OAuthError::UseDpopNonce);
    }
    Ok(Some(p))
}

/// Spends a proof's `jti` (with its key: two clients' `jti`s never collide)
/// in the table every instance shares: a proof is accepted once, anywhere.
pub async fn record(state: &AppState, p: &Proof) -> Result<(), OAuthError> {
    let key = state.master_key.hasher().hash(&format!("dpop-jti:{}:{}", p.jkt, p.jti));
    let inserted = dpop_proof::Entity::insert(dpop_proof::ActiveModel {
        jti_hash: Set(key),
        expires_ms: Set(p.acceptable_until() * 1000),
    })
    .on_conflict(OnConflict::column(dpop_proof::Column::JtiHash).do_nothing().to_owned())
    .exec_without_returning(&state.db)
    .await?;
    if inserted == 0 {
        return Err(refused(ProofError::Replayed));
    }
    Ok(())
}

/// A `dpop_jkt` request parameter (RFC 9449 §10): a SHA-256 thumbprint.
pub fn parse_jkt(v: &str) -> Result<String, OAuthError> {
    if v.len() == 43 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(v.to_owned())
    } else {
        Err(OAuthError::InvalidRequest("dpop_jkt must be a base64url SHA-256 JWK thumbprint"))
    }
}
