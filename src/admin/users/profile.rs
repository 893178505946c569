//! Profile values (name, email, phone number, address): by an administrator or by the user.

use super::*;

/// A change to a user's profile: for each field `Some(None)` clears, `None`
/// leaves alone.
#[derive(Debug, Default, Clone)]
pub struct ProfilePatch {
    pub email: Option<Option<String>>,
    pub name: Option<Option<String>>,
    pub phone_number: Option<Option<String>>,
    pub address: Option<Option<crate::domain::Address>>,
}

/// Changes a user's profile (e-mail address, display name, phone number,
/// postal address). The audit record has the before and after values.
pub async fn update_profile(
    state: &AppState,
    actor: &Actor,
    username: &str,
    patch: ProfilePatch,
) -> Result<UserView, AdminError> {
    actor.require(Permission::UsersWrite)?;
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = target(&txn, actor, username).await?;
    unmanaged(&u)?;
    let event = audit(actor, "user.updated", &u.id);
    write_profile(state, txn, u, patch, event).await
}

/// The person's own change on /account: name, phone number and postal
/// address (an e-mail address needs a verification loop first).
pub async fn update_own_profile(
    state: &AppState,
    user_id: &str,
    ip: Option<String>,
    user_agent: Option<String>,
    patch: ProfilePatch,
) -> Result<UserView, AdminError> {
    if patch.email.is_some() {
        return Err(AdminError::Refused("email: an administrator changes it (it must be verified)".into()));
    }
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = user::Entity::find_by_id(user_id).one(&txn).await?.ok_or_else(|| AdminError::not_found("user", user_id))?;
    let event = AuditEvent::new("user.updated", "success")
        .actor(format!("user:{user_id}"))
        .user(user_id)
        .source(ip, user_agent);
    write_profile(state, txn, u, patch, event).await
}

/// Parses and writes a profile change with its audit record (before and
/// after), in the caller's transaction; commits.
async fn write_profile(
    state: &AppState,
    txn: DatabaseTransaction,
    u: user::Model,
    patch: ProfilePatch,
    event: AuditEvent,
) -> Result<UserView, AdminError> {
    let email = patch.email.map(|e| e.as_deref().map(Email::parse).transpose()).transpose()?;
    let name = patch.name.map(|n| n.as_deref().map(DisplayName::parse).transpose()).transpose()?;
    let phone =
        patch.phone_number.map(|p| p.as_deref().map(crate::domain::PhoneNumber::parse).transpose()).transpose()?;
    let address =
        patch.address.map(|a| a.map(crate::domain::Address::checked).transpose().map(Option::flatten)).transpose()?;
    let now = state.clock.now();
    let before =
        json!({ "email": u.email, "name": u.display_name, "phone_number": u.phone_number, "address": u.address });
    let mut am = u.into_active_model();
    if let Some(e) = email {
        // An address an administrator types in is not proved: the person
        // verifies it by following a link (lifecycle::email).
        let e = e.map(String::from);
        if e.as_deref().map(str::to_lowercase) != am.email.as_ref().as_deref().map(str::to_lowercase) {
            am.email_verified = Set(false);
        }
        am.email = Set(e);
    }
    if let Some(n) = name {
        am.display_name = Set(n.map(String::from));
    }
    if let Some(p) = phone {
        am.phone_number = Set(p.map(|p| p.as_str().to_owned()));
    }
    if let Some(a) = address {
        am.address =
            Set(a.map(|a| serde_json::to_string(&a)).transpose().map_err(|e| AdminError::Refused(e.to_string()))?);
    }
    am.updated_at = Set(now);
    let u = am.update(&txn).await?;
    let after =
        json!({ "email": u.email, "name": u.display_name, "phone_number": u.phone_number, "address": u.address });
    let record = event.detail(json!({ "changes": crate::admin::changes(&before, &after) }));
    let view = load_view(&txn, u, now.timestamp_millis()).await?;
    crate::storage::commit_audited(txn, record, now).await?;
    state.users.invalidate(&view.id);
    Ok(view)
}
