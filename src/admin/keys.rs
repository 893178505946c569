//! Signing keys, for administrators: listing and rotating need `keys:rotate`.

use crate::policy::Permission;
use crate::state::AppState;
use crate::tokens::keys::{self, KeyView, RotatedBy};

use super::{Actor, AdminError};

pub async fn list(state: &AppState, actor: &Actor) -> Result<Vec<KeyView>, AdminError> {
    actor.require(Permission::KeysRotate)?;
    Ok(keys::list(state).await?)
}

/// Rotates now. Once the rotation has committed it has happened: a failure
/// to reload this instance's key ring afterwards is logged, not answered as
/// a failure (a retry would rotate again); the periodic reload picks the
/// new keys up.
pub async fn rotate(state: &AppState, actor: &Actor) -> Result<Vec<KeyView>, AdminError> {
    actor.require(Permission::KeysRotate)?;
    let by = RotatedBy { name: &actor.name, ip: actor.ip.clone(), user_agent: actor.user_agent.clone() };
    keys::rotate(state, by).await?;
    if let Err(e) = state.reload_keys().await {
        tracing::error!(error = %e, "keys rotated, but reloading this instance's key ring failed; the periodic reload will retry");
    }
    Ok(keys::list(state).await?)
}
