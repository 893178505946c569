//! Pushed authorization requests (RFC 9126): a client posts its request's
//! parameters, authenticated; they are checked exactly as `/authorize`
//! checks them (`authorize::request::validate`) and kept under a single-use
//! `request_uri` for at most [`TTL_SECS`]. `/authorize` then takes the
//! stored parameters and nothing else.

use std::collections::HashMap;

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use super::OAuthError;
use crate::crypto::random_token;
use crate::state::AppState;
use crate::storage::entities::pushed_request;

/// The `request_uri` prefix (RFC 9126 §2.2).
pub const URN_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How long a pushed request waits for its `/authorize` (RFC 9126 §2.2
/// suggests 5–600 s; a short life limits what a leaked URI is worth).
pub const TTL_SECS: i64 = 60;

fn id_hash(state: &AppState, token: &str) -> String {
    state.master_key.hasher().hash(&format!("par:{token}"))
}

/// Stores the validated parameters `params` of `client_id`; returns the
/// `request_uri`.
pub async fn store(state: &AppState, client_id: &str, params: &HashMap<String, String>) -> Result<String, OAuthError> {
    let token = random_token(32).map_err(|_| OAuthError::ServerError)?;
    let now_ms = state.clock.now().timestamp_millis();
    pushed_request::ActiveModel {
        id_hash: Set(id_hash(state, &token)),
        client_id: Set(client_id.to_owned()),
        params: Set(serde_json::to_string(params).map_err(|_| OAuthError::ServerError)?),
        expires_ms: Set(now_ms + TTL_SECS * 1000),
    }
    .insert(&state.db)
    .await?;
    Ok(format!("{URN_PREFIX}{token}"))
}

/// Takes (and so spends) the pushed request `request_uri` of `client_id`:
/// unknown, expired, already used or another client's is `None`. Two
/// `/authorize` calls racing for one URI: one delete wins.
pub async fn take(
    state: &AppState,
    client_id: &str,
    request_uri: &str,
) -> Result<Option<HashMap<String, String>>, OAuthError> {
    let Some(token) = request_uri.strip_prefix(URN_PREFIX).filter(|t| !t.is_empty() && t.len() <= 128) else {
        return Ok(None);
    };
    let h = id_hash(state, token);
    let Some(row) = pushed_request::Entity::find_by_id(h.as_str()).one(&state.db).await? else {
        return Ok(None);
    };
    let spent = pushed_request::Entity::delete_many()
        .filter(pushed_request::Column::IdHash.eq(h.as_str()))
        .filter(pushed_request::Column::ClientId.eq(client_id))
        .exec(&state.db)
        .await?;
    if spent.rows_affected != 1 || row.expires_ms <= state.clock.now().timestamp_millis() {
        return Ok(None);
    }
    Ok(serde_json::from_str(&row.params).ok())
}
