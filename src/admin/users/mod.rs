//! User accounts: create, read, change; each change in one transaction with its
//! audit record.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

use super::{Actor, AdminError, roles};
use crate::domain::{AttributeKey, DisplayName, Email, RoleName, Username, parse_attribute_value};
use crate::policy::Permission;
use crate::state::AppState;
use crate::storage::entities::{password_credential, user, user_attribute, user_role};
use crate::storage::{AuditEvent, is_unique_violation};

/// The built-in administrator role.
mod erase;
mod passkeys;
mod profile;
mod upstream;

pub use crate::policy::ADMIN_ROLE;
pub use erase::*;
pub use passkeys::*;
pub use profile::*;
pub use upstream::*;

/// A user as shown to operators. Never contains a credential.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    /// The person followed a link sent to `email`.
    pub email_verified: bool,
    pub name: Option<String>,
    /// OIDC `phone_number`.
    pub phone_number: Option<String>,
    /// OIDC `address`.
    pub address: Option<crate::domain::Address>,
    pub disabled: bool,
    pub roles: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub has_password: bool,
    /// Until when (Unix ms) logins are locked after failures, if they are now.
    pub locked_until_ms: Option<i64>,
    /// A TOTP authenticator is set up.
    pub mfa: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The declarative file that manages the profile and roles (`portcullis apply`).
    pub managed_by: Option<String>,
    /// The stored field that does not parse, if any: the account signs
    /// nobody in and gets no tokens until it is set anew (a profile change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

/// What `user add` takes, already parsed.
#[derive(Debug)]
pub struct NewUser {
    pub username: Username,
    pub email: Option<Email>,
    pub name: Option<DisplayName>,
    pub roles: Vec<RoleName>,
    pub password: Option<SecretString>,
}

impl NewUser {
    /// Parses raw inputs; the first invalid one is named in the error.
    pub fn parse(
        username: &str,
        email: Option<&str>,
        name: Option<&str>,
        roles: &[String],
        password: Option<SecretString>,
    ) -> Result<Self, AdminError> {
        let mut parsed_roles: Vec<RoleName> = roles.iter().map(|r| RoleName::parse(r)).collect::<Result<_, _>>()?;
        parsed_roles.sort();
        parsed_roles.dedup();
        Ok(Self {
            username: Username::parse(username)?,
            email: email.map(Email::parse).transpose()?,
            name: name.map(DisplayName::parse).transpose()?,
            roles: parsed_roles,
            password,
        })
    }
}

fn audit(actor: &Actor, event: &'static str, user_id: &str) -> AuditEvent {
    AuditEvent::new(event, "success")
        .actor(&actor.name)
        .user(user_id)
        .source(actor.ip.clone(), actor.user_agent.clone())
}

pub async fn create(state: &AppState, actor: &Actor, new: NewUser) -> Result<UserView, AdminError> {
    actor.require(Permission::UsersWrite)?;
    if new.password.is_some() {
        // Setting a password is a credential change: with users:write alone,
        // erasing "alice" and re-creating her name with a known password
        // would be a way into whatever trusts the name.
        actor.require(Permission::UsersCredentials)?;
    }
    if !new.roles.is_empty() {
        // Roles are permissions: handing them out needs roles:write, and only
        // what the actor holds itself.
        actor.require(Permission::RolesWrite)?;
        actor.may_hand_out(&new.roles)?;
    }
    let is_admin = new.roles.iter().any(|r| r.as_str() == ADMIN_ROLE);
    // Hash before the transaction: argon2 is slow and must not hold a write lock.
    let phc = match &new.password {
        Some(pw) => {
            state.password_policy.check(pw, is_admin, Some(new.username.as_str()))?;
            Some(state.passwords.hash(pw).await?)
        }
        None => None,
    };
    let now = state.clock.now();
    let id = uuid::Uuid::new_v4().to_string();
    let txn = crate::storage::begin_write(&state.db).await?;
    let key = new.username.key();
    if user::Entity::find().filter(user::Column::UsernameKey.eq(&key)).one(&txn).await?.is_some() {
        return Err(AdminError::exists("user", new.username.as_str()));
    }
    roles::require_all(&txn, &new.roles).await?;
    crate::storage::new_user_row(
        &id,
        &new.username,
        new.email.map(String::from),
        new.name.map(String::from),
        false,
        now,
    )
    .insert(&txn)
    .await
    .map_err(
        |e| {
            if is_unique_violation(&e) { AdminError::exists("user", new.username.as_str()) } else { e.into() }
        },
    )?;
    for r in &new.roles {
        user_role::ActiveModel { user_id: Set(id.clone()), role_name: Set(r.to_string()) }.insert(&txn).await?;
    }
    if let Some(phc) = phc {
        password_credential::ActiveModel { user_id: Set(id.clone()), phc: Set(phc), updated_at: Set(now) }
            .insert(&txn)
            .await?;
    }
    let audit_record = audit(actor, "user.created", &id).detail(json!({
        "username": new.username.as_str(),
        "roles": new.roles,
        "password_set": new.password.is_some(),
    }));
    let view = load_view(&txn, find(&txn, new.username.as_str()).await?, now.timestamp_millis()).await?;
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(view)
}

/// Finds a user by username (case-insensitively).
pub(crate) async fn find<C: ConnectionTrait>(conn: &C, username: &str) -> Result<user::Model, AdminError> {
    let parsed = Username::parse(username)?;
    user::Entity::find()
        .filter(user::Column::UsernameKey.eq(parsed.key()))
        .one(conn)
        .await?
        .ok_or_else(|| AdminError::not_found("user", username))
}

async fn load_view<C: ConnectionTrait>(conn: &C, u: user::Model, now_ms: i64) -> Result<UserView, AdminError> {
    // Read through the aggregate. A damaged account is still shown — with
    // the field named — so that an operator can disable it, take its roles
    // or repair it; it is only the sign-in and token paths that refuse it.
    let (u, damaged) = match crate::storage::users::User::parse(u.clone()) {
        Ok(parsed) => (parsed, None),
        Err(d) => {
            tracing::warn!(error = %d, "showing a damaged account");
            let mut neutral = u;
            neutral.address = None;
            (crate::storage::users::User::parse(neutral)?, Some(d.field.to_owned()))
        }
    };
    let roles = crate::storage::users::roles(conn, &u.id).await?;
    let attributes = crate::storage::users::attributes(conn, &u.id).await?;
    let has_password = password_credential::Entity::find_by_id(u.id.as_str()).one(conn).await?.is_some();
    let mfa = crate::authn::mfa::has_totp(conn, &u.id).await?;
    let locked_until_ms = crate::authn::throttle::locked_until(conn, &u.username_key, now_ms).await?;
    Ok(UserView {
        id: u.id,
        username: u.username,
        email: u.email,
        email_verified: u.email_verified,
        name: u.display_name,
        phone_number: u.phone_number,
        address: u.address,
        disabled: u.disabled,
        roles,
        attributes,
        has_password,
        locked_until_ms,
        mfa,
        created_at: u.created_at,
        updated_at: u.updated_at,
        managed_by: u.managed_by,
        damaged,
    })
}

/// One user (needs `users:read`).
pub async fn show(state: &AppState, actor: &Actor, username: &str) -> Result<UserView, AdminError> {
    actor.require(Permission::UsersRead)?;
    let u = find(&state.db, username).await?;
    load_view(&state.db, u, state.clock.now().timestamp_millis()).await
}

/// Every user (needs `users:read`).
pub async fn list(state: &AppState, actor: &Actor) -> Result<Vec<UserView>, AdminError> {
    actor.require(Permission::UsersRead)?;
    let users = user::Entity::find().order_by_asc(user::Column::UsernameKey).all(&state.db).await?;
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        out.push(load_view(&state.db, u, state.clock.now().timestamp_millis()).await?);
    }
    Ok(out)
}

/// The user `username`, once the actor is known to dominate it (no
/// escalation through the target): every user-changing operation finds its
/// target through here.
/// Refuses a change of what a declarative file manages (profile, roles,
/// enabled): the file is where it changes. Credentials (password, second
/// factor, passkeys) are not in a file and stay the administrators'.
fn unmanaged(u: &user::Model) -> Result<(), AdminError> {
    match &u.managed_by {
        Some(file) => Err(AdminError::Refused(format!(
            "user {} is managed by the declarative file {file} (portcullis apply): change it there",
            u.username
        ))),
        None => Ok(()),
    }
}

async fn target<C: ConnectionTrait>(conn: &C, actor: &Actor, username: &str) -> Result<user::Model, AdminError> {
    let u = find(conn, username).await?;
    actor.may_act_on_user(&crate::storage::users::roles(conn, &u.id).await?)?;
    Ok(u)
}

async fn user_is_admin<C: ConnectionTrait>(conn: &C, user_id: &str) -> Result<bool, AdminError> {
    Ok(user_role::Entity::find_by_id((user_id.to_owned(), ADMIN_ROLE.to_owned())).one(conn).await?.is_some())
}

/// Whether some enabled user other than `except` holds the admin role.
/// Whether an enabled administrator other than `except` exists. Called in
/// the write transaction that would remove the last one; it first takes a
/// transaction-scoped lock so that two such changes at once are decided one
/// after the other (SQLite's write transactions are serial already; on
/// PostgreSQL, READ COMMITTED would let both see the other still there).
async fn another_active_admin<C: ConnectionTrait>(conn: &C, except: &str) -> Result<bool, AdminError> {
    if conn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        conn.execute_unprepared("SELECT pg_advisory_xact_lock(7358201)").await?;
    }
    let holders = user_role::Entity::find()
        .filter(user_role::Column::RoleName.eq(ADMIN_ROLE))
        .filter(user_role::Column::UserId.ne(except))
        .all(conn)
        .await?;
    let ids: Vec<String> = holders.into_iter().map(|r| r.user_id).collect();
    if ids.is_empty() {
        return Ok(false);
    }
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .filter(user::Column::Disabled.eq(false))
        .one(conn)
        .await?
        .is_some())
}

async fn touch(txn: &DatabaseTransaction, u: user::Model, now: DateTime<Utc>) -> Result<(), AdminError> {
    let mut am = u.into_active_model();
    am.updated_at = Set(now);
    am.update(txn).await?;
    Ok(())
}

pub async fn set_password(
    state: &AppState,
    actor: &Actor,
    username: &str,
    password: &SecretString,
) -> Result<(), AdminError> {
    actor.require(Permission::UsersCredentials)?;
    let u = target(&state.db, actor, username).await?;
    // An administrator's reset: whoever knew the old password is logged out.
    let change = super::password::PasswordChange {
        user: (&u.id, &u.username),
        actor: &actor.name,
        event: "user.password_set",
        keep_session: None,
        keep_device: None,
        origin: crate::domain::Origin { ip: actor.ip.clone(), user_agent: actor.user_agent.clone() },
        by_admin: Some(actor),
        link: None,
        verified_email: None,
    };
    super::password::change_password(state, change, password).await?;
    Ok(())
}

pub async fn set_disabled(
    state: &AppState,
    actor: &Actor,
    username: &str,
    disabled: bool,
) -> Result<UserView, AdminError> {
    actor.require(Permission::UsersWrite)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = target(&txn, actor, username).await?;
    unmanaged(&u)?;
    let id = u.id.clone();
    let before = u.disabled;
    if disabled && !before && user_is_admin(&txn, &id).await? && !another_active_admin(&txn, &id).await? {
        return Err(AdminError::Refused("refusing to disable the last enabled administrator".into()));
    }
    let mut am = u.into_active_model();
    am.disabled = Set(disabled);
    am.updated_at = Set(now);
    let u = am.update(&txn).await?;
    let mut ended = Vec::new();
    if disabled {
        // A disabled account keeps no way in: its sessions, trusted browsers
        // and outstanding links (invitation, reset, address change) end.
        ended = crate::session::end_all_for_user(&txn, &id, None, now.timestamp_millis()).await?;
        crate::authn::login::forget_devices(state, &txn, &id, None).await?;
        crate::storage::entities::account_link::Entity::delete_many()
            .filter(crate::storage::entities::account_link::Column::UserId.eq(id.as_str()))
            .exec(&txn)
            .await?;
    }
    let event = if disabled { "user.disabled" } else { "user.enabled" };
    let audit_record = audit(actor, event, &id).detail(json!({ "disabled": { "before": before, "after": disabled } }));
    let view = load_view(&txn, u, state.clock.now().timestamp_millis()).await?;
    crate::storage::commit_audited(txn, audit_record, now).await?;
    state.users.invalidate(&id);
    crate::oidc::logout::notify_ended(state, &id, &ended).await;
    Ok(view)
}

pub async fn grant(state: &AppState, actor: &Actor, username: &str, role: &str) -> Result<UserView, AdminError> {
    actor.require(Permission::RolesWrite)?;
    let role = RoleName::parse(role)?;
    actor.may_hand_out(std::slice::from_ref(&role))?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = target(&txn, actor, username).await?;
    unmanaged(&u)?;
    roles::require_all(&txn, std::slice::from_ref(&role)).await?;
    let before = crate::storage::users::roles(&txn, &u.id).await?;
    // Granting a role the user holds changes nothing, and records nothing.
    let mut record = None;
    if !before.iter().any(|r| r == role.as_str()) {
        user_role::ActiveModel { user_id: Set(u.id.clone()), role_name: Set(role.to_string()) }.insert(&txn).await?;
        let after = crate::storage::users::roles(&txn, &u.id).await?;
        let detail = json!({ "role": role.as_str(), "changes": { "roles": { "from": before, "to": after } } });
        record = Some(audit(actor, "user.role_granted", &u.id).detail(detail));
        touch(&txn, u.clone(), now).await?;
    }
    let view = load_view(&txn, find(&txn, username).await?, state.clock.now().timestamp_millis()).await?;
    crate::storage::commit_audited(txn, record, now).await?;
    state.users.invalidate(&view.id);
    Ok(view)
}

pub async fn revoke(state: &AppState, actor: &Actor, username: &str, role: &str) -> Result<UserView, AdminError> {
    actor.require(Permission::RolesWrite)?;
    let role = RoleName::parse(role)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = target(&txn, actor, username).await?;
    unmanaged(&u)?;
    let before = crate::storage::users::roles(&txn, &u.id).await?;
    let res = user_role::Entity::delete_by_id((u.id.clone(), role.to_string())).exec(&txn).await?;
    if res.rows_affected == 0 {
        return Err(AdminError::Refused(format!("user {username:?} does not hold role {:?}", role.as_str())));
    }
    // Never leave the installation without an (enabled) administrator.
    if role.as_str() == ADMIN_ROLE && !u.disabled && !another_active_admin(&txn, &u.id).await? {
        return Err(AdminError::Refused("refusing to revoke the last holder of the admin role".into()));
    }
    let after = crate::storage::users::roles(&txn, &u.id).await?;
    let detail = json!({ "role": role.as_str(), "changes": { "roles": { "from": before, "to": after } } });
    let audit_record = audit(actor, "user.role_revoked", &u.id).detail(detail);
    touch(&txn, u, now).await?;
    let view = load_view(&txn, find(&txn, username).await?, state.clock.now().timestamp_millis()).await?;
    crate::storage::commit_audited(txn, audit_record, now).await?;
    state.users.invalidate(&view.id);
    Ok(view)
}

pub async fn set_attribute(
    state: &AppState,
    actor: &Actor,
    username: &str,
    key: &str,
    value: &str,
) -> Result<UserView, AdminError> {
    actor.require(Permission::UsersWrite)?;
    let key = AttributeKey::parse(key)?;
    let value = parse_attribute_value(value)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = target(&txn, actor, username).await?;
    let before = user_attribute::Entity::find_by_id((u.id.clone(), key.to_string())).one(&txn).await?.map(|a| a.value);
    user_attribute::Entity::insert(user_attribute::ActiveModel {
        user_id: Set(u.id.clone()),
        key: Set(key.to_string()),
        value: Set(value.clone()),
    })
    .on_conflict(
        OnConflict::columns([user_attribute::Column::UserId, user_attribute::Column::Key])
            .update_column(user_attribute::Column::Value)
            .to_owned(),
    )
    .exec(&txn)
    .await?;
    let audit_record = audit(actor, "user.attribute_set", &u.id)
        .detail(json!({ "key": key.as_str(), "before": before, "after": value }));
    touch(&txn, u, now).await?;
    let view = load_view(&txn, find(&txn, username).await?, state.clock.now().timestamp_millis()).await?;
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(view)
}

/// Clears a login lockout (and the failure count) of a user.
pub async fn unlock(state: &AppState, actor: &Actor, username: &str) -> Result<UserView, AdminError> {
    actor.require(Permission::UsersCredentials)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = target(&txn, actor, username).await?;
    let was = crate::authn::throttle::locked_until(&txn, &u.username_key, now.timestamp_millis()).await?;
    crate::authn::throttle::reset(&txn, &u.username_key).await?;
    let audit_record = audit(actor, "user.unlocked", &u.id).detail(json!({ "was_locked": was.is_some() }));
    let view = load_view(&txn, u, state.clock.now().timestamp_millis()).await?;
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(view)
}

/// Removes a user's TOTP authenticator and recovery codes and ends their
/// sessions (a lost device; the user enrols again at the next login if policy
/// requires it).
pub async fn reset_mfa(state: &AppState, actor: &Actor, username: &str) -> Result<UserView, AdminError> {
    actor.require(Permission::UsersCredentials)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = target(&txn, actor, username).await?;
    actor.may_remove_factors_of(&u.id)?;
    let had = crate::authn::mfa::remove(&txn, &u.id).await?;
    let ended = crate::session::end_all_for_user(&txn, &u.id, None, now.timestamp_millis()).await?;
    crate::authn::login::forget_devices(state, &txn, &u.id, None).await?;
    let audit_record =
        audit(actor, "mfa.reset", &u.id).detail(json!({ "had_totp": had, "sessions_ended": ended.len() }));
    let view = load_view(&txn, u, state.clock.now().timestamp_millis()).await?;
    crate::storage::commit_audited(txn, audit_record, now).await?;
    crate::oidc::logout::notify_ended(state, &view.id, &ended).await;
    Ok(view)
}

/// Imports a TOTP seed from a previous identity provider (SHA-1, 6 digits,
/// 30 s), so users keep their authenticator entry. Returns new recovery codes.
pub async fn totp_import(
    state: &AppState,
    actor: &Actor,
    username: &str,
    seed: &SecretString,
) -> Result<Vec<String>, AdminError> {
    actor.require(Permission::UsersCredentials)?;
    use secrecy::ExposeSecret;
    let u = target(&state.db, actor, username).await?;
    let now = state.clock.now();
    let record = audit(actor, "mfa.enrolled", &u.id).detail(json!({ "method": "totp", "imported": true }));
    let codes =
        crate::authn::mfa::import(state, &u.id, seed.expose_secret(), record, now).await.map_err(|e| match e {
            crate::authn::mfa::MfaError::BadSeed => {
                AdminError::Refused("secret: must be base32 (RFC 4648) of at least 128 bits".into())
            }
            crate::authn::mfa::MfaError::Db(d) => AdminError::Db(d),
            crate::authn::mfa::MfaError::Crypto(c) => AdminError::Crypto(c),
            crate::authn::mfa::MfaError::Totp => AdminError::Refused("secret: not usable for TOTP".into()),
        })?;
    Ok(codes)
}

/// Ends every session of a user (and forgets their trusted browsers).
pub async fn end_sessions(state: &AppState, actor: &Actor, username: &str) -> Result<u64, AdminError> {
    actor.require(Permission::SessionsRevoke)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let u = target(&txn, actor, username).await?;
    let ended = crate::session::end_all_for_user(&txn, &u.id, None, now.timestamp_millis()).await?;
    crate::authn::login::forget_devices(state, &txn, &u.id, None).await?;
    let audit_record = audit(actor, "sessions.revoked", &u.id).detail(json!({ "sessions_ended": ended.len() }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    crate::oidc::logout::notify_ended(state, &u.id, &ended).await;
    Ok(ended.len() as u64)
}

/// Ends every user's sessions and the refresh-token families granted from
/// them (an emergency: a suspected session or key compromise). Trusted
/// browsers stay trusted (they only spare people account locks). The
/// back-channel logouts go out in the background afterwards.
pub async fn end_all_sessions(state: &AppState, actor: &Actor) -> Result<u64, AdminError> {
    use crate::storage::entities::{refresh_family, session};
    use sea_orm::sea_query::Expr;
    actor.require(Permission::SessionsRevoke)?;
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let ended: Vec<(String, String)> =
        session::Entity::find().all(&txn).await?.into_iter().map(|s| (s.id, s.user_id)).collect();
    refresh_family::Entity::update_many()
        .col_expr(refresh_family::Column::RevokedMs, Expr::val(now.timestamp_millis()))
        .filter(refresh_family::Column::SessionId.is_not_null())
        .filter(refresh_family::Column::RevokedMs.is_null())
        .exec(&txn)
        .await?;
    session::Entity::delete_many().exec(&txn).await?;
    let audit_record = AuditEvent::new("sessions.revoked_all", "success")
        .actor(&actor.name)
        .source(actor.ip.clone(), actor.user_agent.clone())
        .detail(json!({ "sessions_ended": ended.len() }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    let n = ended.len() as u64;
    let st = state.clone();
    tokio::spawn(async move {
        for (sid, uid) in ended {
            crate::oidc::logout::notify_ended(&st, &uid, std::slice::from_ref(&sid)).await;
        }
    });
    Ok(n)
}
