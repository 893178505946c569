//! Which account an upstream identity signs in to — linked, linked now,
//! or made now — and the roles its groups give; the account page's list
//! and unlink.

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;

use super::{FedError, Resolved, Upstream, provider};
use crate::config::UpstreamProvider;
use crate::domain::{Origin, Username};
use crate::state::AppState;
use crate::storage::entities::{passkey, password_credential, upstream_identity, user, user_role};
use crate::storage::{AuditEvent, record_audit};

/// The account of an upstream identity: linked, linked now (to the account
/// that asked), or made now (`create_accounts`); then its group roles.
pub(super) async fn resolve(
    state: &AppState,
    p: &UpstreamProvider,
    up: Upstream,
    link_user: Option<String>,
    return_to: Option<String>,
) -> Result<(Resolved, serde_json::Value), FedError> {
    let now = state.clock.now();
    let now_ms = now.timestamp_millis();
    let txn = crate::storage::begin_write(&state.db).await?;
    let known = upstream_identity::Entity::find_by_id((p.id.clone(), up.subject.clone())).one(&txn).await?;
    let email = up.email.clone().filter(|_| up.email_verified);
    let mut audit_record = None;
    let (user_id, linked) = match (known, link_user) {
        (Some(i), None) => (i.user_id, false),
        (Some(i), Some(l)) if i.user_id == l => (i.user_id, true),
        (Some(_), Some(_)) => return Err(FedError::LinkedElsewhere),
        (None, Some(l)) => {
            new_identity(&txn, p, &up, &l, now_ms).await?;
            audit_record = Some(
                AuditEvent::new("user.upstream_linked", "success")
                    .actor(format!("user:{l}"))
                    .user(&l)
                    .detail(json!({ "provider": p.id, "subject": up.subject })),
            );
            (l, true)
        }
        (None, None) => {
            if !p.create_accounts {
                return Err(FedError::NotLinked);
            }
            // Never an account by a matching address: its holder links
            // instead. Only an address the provider verified is compared (an
            // unverified one is not kept either), so the answer tells an
            // attacker nothing about addresses that are not theirs.
            if let Some(addr) = &email
                && user::Entity::find().filter(crate::storage::email_matches(addr)).one(&txn).await?.is_some()
            {
                return Err(FedError::NotLinked);
            }
            let id = create_account(&txn, p, &up, email.as_deref(), now).await?;
            new_identity(&txn, p, &up, &id, now_ms).await?;
            (id, false)
        }
    };
    let u = match crate::storage::users::by_id(&txn, &user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(FedError::NotLinked),
        Err(crate::storage::users::LoadError::Damaged(d)) => {
            tracing::error!(error = %d, "a damaged account cannot sign in");
            return Err(FedError::Damaged("account"));
        }
        Err(crate::storage::users::LoadError::Db(e)) => return Err(e.into()),
    };
    if u.disabled {
        return Err(FedError::Disabled);
    }
    let roles = apply_role_rules(&txn, p, &up, &user_id, now).await?;
    upstream_identity::Entity::update_many()
        .col_expr(upstream_identity::Column::LastUsedMs, sea_orm::sea_query::Expr::val(now_ms))
        .col_expr(upstream_identity::Column::Email, sea_orm::sea_query::Expr::val(email))
        .filter(upstream_identity::Column::Provider.eq(p.id.as_str()))
        .filter(upstream_identity::Column::Subject.eq(up.subject.as_str()))
        .exec(&txn)
        .await?;
    crate::storage::commit_audited(txn, audit_record, now).await?;
    state.users.invalidate(&user_id);
    Ok((Resolved { user_id, assurance: up.assurance, return_to, linked }, roles))
}

async fn new_identity<C: ConnectionTrait>(
    conn: &C,
    p: &UpstreamProvider,
    up: &Upstream,
    user_id: &str,
    now_ms: i64,
) -> Result<(), FedError> {
    upstream_identity::ActiveModel {
        provider: Set(p.id.clone()),
        subject: Set(up.subject.clone()),
        user_id: Set(user_id.to_owned()),
        email: Set(up.email.clone().filter(|_| up.email_verified)),
        mapped_roles: Set("[]".into()),
        created_ms: Set(now_ms),
        last_used_ms: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// A just-in-time account: the upstream username (or the address's local
/// part) if it is free and valid, else with a short suffix. The address is
/// kept only if the provider says it verified it, and it is not verified
/// here until the person follows a link (lifecycle::email).
async fn create_account<C: ConnectionTrait>(
    conn: &C,
    p: &UpstreamProvider,
    up: &Upstream,
    email: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, FedError> {
    let base = up
        .username
        .clone()
        .or_else(|| up.email.as_deref().and_then(|e| e.split('@').next()).map(str::to_owned))
        .and_then(|u| Username::parse(&u).ok())
        .map(|u| u.to_string())
        .filter(|u| !u.contains('@'))
        .unwrap_or_else(|| format!("{}-user", p.id));
    let mut name = Username::parse(&base).map_err(|e| FedError::Upstream(e.to_string()))?;
    for _ in 0..5 {
        if user::Entity::find().filter(user::Column::UsernameKey.eq(name.key())).one(conn).await?.is_none() {
            break;
        }
        let suffix = crate::crypto::random_token(3).map_err(|e| FedError::Upstream(e.to_string()))?;
        let candidate =
            format!("{}-{}", base.chars().take(40).collect::<String>(), suffix.to_lowercase().replace(['_', '-'], "x"));
        name = Username::parse(&candidate).map_err(|e| FedError::Upstream(e.to_string()))?;
    }
    let id = uuid::Uuid::new_v4().to_string();
    crate::storage::new_user_row(&id, &name, email.map(str::to_owned), None, false, now).insert(conn).await?;
    record_audit(
        conn,
        AuditEvent::new("user.created", "success")
            .actor(format!("upstream:{}", p.id))
            .user(&id)
            .detail(json!({ "username": name.as_str(), "provider": p.id, "subject": up.subject })),
        now,
    )
    .await?;
    Ok(id)
}

/// Grants the roles the person's upstream groups give under the provider's
/// rules and takes away those they gave before and give no longer. Roles
/// that do not exist here are skipped (and said in the audit record).
async fn apply_role_rules<C: ConnectionTrait>(
    conn: &C,
    p: &UpstreamProvider,
    up: &Upstream,
    user_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<serde_json::Value, FedError> {
    let identity = upstream_identity::Entity::find_by_id((p.id.clone(), up.subject.clone())).one(conn).await?;
    // The roles the rules gave before are the ones they may take back: read
    // as empty, a damaged list would keep them for ever (and then be
    // overwritten, losing them for good). Refused instead, for an
    // administrator to look at.
    let before: Vec<String> = match &identity {
        None => Vec::new(),
        Some(i) => serde_json::from_str(&i.mapped_roles).map_err(|e| {
            tracing::error!(provider = %p.id, user = %user_id, error = %e, "stored mapped_roles do not parse");
            FedError::Damaged("mapped_roles")
        })?,
    };
    // No rules and nothing given before: nothing to do. (Rules removed from
    // the configuration take their roles back at the next sign-in.)
    if p.role_rules.is_empty() && before.is_empty() {
        return Ok(json!([]));
    }
    let mut wanted: Vec<String> =
        p.role_rules.iter().filter(|r| up.groups.contains(&r.group)).map(|r| r.role.clone()).collect();
    wanted.sort();
    wanted.dedup();
    let mut missing = Vec::new();
    let mut given = Vec::new();
    for r in &wanted {
        if crate::storage::entities::role::Entity::find_by_id(r.as_str()).one(conn).await?.is_none() {
            missing.push(r.clone());
            continue;
        }
        let held = user_role::Entity::find_by_id((user_id.to_owned(), r.clone())).one(conn).await?.is_some();
        if !held {
            user_role::ActiveModel { user_id: Set(user_id.to_owned()), role_name: Set(r.clone()) }.insert(conn).await?;
        }
        // Ours to take back later only if the rules gave it: a role the
        // person already held (granted by an administrator) stays theirs.
        if !held || before.contains(r) {
            given.push(r.clone());
        }
    }
    let mut taken = Vec::new();
    for r in before.iter().filter(|r| !given.contains(r)) {
        let gone = user_role::Entity::delete_by_id((user_id.to_owned(), r.clone())).exec(conn).await?;
        if gone.rows_affected == 1 {
            taken.push(r.clone());
        }
    }
    upstream_identity::Entity::update_many()
        .col_expr(
            upstream_identity::Column::MappedRoles,
            sea_orm::sea_query::Expr::val(serde_json::to_string(&given).unwrap_or_else(|_| "[]".into())),
        )
        .filter(upstream_identity::Column::Provider.eq(p.id.as_str()))
        .filter(upstream_identity::Column::Subject.eq(up.subject.as_str()))
        .exec(conn)
        .await?;
    let newly: Vec<&String> = given.iter().filter(|r| !before.contains(r)).collect();
    if !newly.is_empty() || !taken.is_empty() || !missing.is_empty() {
        record_audit(
            conn,
            AuditEvent::new("user.roles_from_upstream", "success")
                .actor(format!("upstream:{}", p.id))
                .user(user_id)
                .detail(json!({ "granted": newly, "revoked": taken, "unknown_roles": missing })),
            now,
        )
        .await?;
    }
    Ok(json!(given))
}

/// The upstream identities linked to an account: (provider id, provider
/// name, upstream address).
pub async fn linked(state: &AppState, user_id: &str) -> Result<Vec<(String, String, Option<String>)>, sea_orm::DbErr> {
    let rows =
        upstream_identity::Entity::find().filter(upstream_identity::Column::UserId.eq(user_id)).all(&state.db).await?;
    Ok(rows
        .into_iter()
        .map(|i| {
            let name = provider(state, &i.provider).map(|p| p.name.clone()).unwrap_or_else(|_| i.provider.clone());
            (i.provider, name, i.email)
        })
        .collect())
}

/// Unlinks provider `id` from the account, unless it is the account's only
/// way in (no password, no passkey, no other linked provider).
pub async fn unlink(state: &AppState, user_id: &str, id: &str, origin: Origin) -> Result<bool, sea_orm::DbErr> {
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let has_password = password_credential::Entity::find_by_id(user_id).one(&txn).await?.is_some();
    let has_passkey = passkey::Entity::find().filter(passkey::Column::UserId.eq(user_id)).one(&txn).await?.is_some();
    let identities =
        upstream_identity::Entity::find().filter(upstream_identity::Column::UserId.eq(user_id)).all(&txn).await?;
    let others = identities.iter().filter(|i| i.provider != id).count();
    if !has_password && !has_passkey && others == 0 {
        return Ok(false);
    }
    upstream_identity::Entity::delete_many()
        .filter(upstream_identity::Column::UserId.eq(user_id))
        .filter(upstream_identity::Column::Provider.eq(id))
        .exec(&txn)
        .await?;
    let audit_record = AuditEvent::new("user.upstream_unlinked", "success")
        .actor(format!("user:{user_id}"))
        .user(user_id)
        .source(origin.ip, origin.user_agent)
        .detail(json!({ "provider": id }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(true)
}
