//! Background purging of expired rows, in bounded batches (no long locks, no
//! unbounded deletes): every instance runs it; the deletes are idempotent.

use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::storage::entities::{
    account_link, authorization_code, authorization_request, device_code, dpop_proof, ip_throttle, login_challenge,
    login_throttle, pushed_request, refresh_family, registration_token, revoked_token, session, trusted_device,
    upstream_login, webauthn_ceremony,
};

/// Rows deleted per statement.
const BATCH: u64 = 1_000;

macro_rules! purge_table {
    ($db:expr, $entity:ident, $pk:ident, $cond:expr) => {{
        let mut total = 0u64;
        loop {
            let ids: Vec<String> = $entity::Entity::find()
                .select_only()
                .column($entity::Column::$pk)
                .filter($cond.clone())
                .limit(BATCH)
                .into_tuple()
                .all($db)
                .await?;
            if ids.is_empty() {
                break;
            }
            let n = ids.len() as u64;
            total +=
                $entity::Entity::delete_many().filter($entity::Column::$pk.is_in(ids)).exec($db).await?.rows_affected;
            if n < BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
        total
    }};
}

/// One pass over every table with expiring rows; returns rows deleted.
pub async fn purge_once(
    db: &DatabaseConnection,
    s: &Settings,
    clock: &Clock,
    audit_key: &crate::crypto::SecretHasher,
) -> Result<u64, DbErr> {
    let now = clock.now().timestamp_millis();
    let mut n = 0;
    n += purge_table!(db, authorization_request, IdHash, authorization_request::Column::ExpiresMs.lte(now));
    // Codes are kept an hour past expiry, so a late replay is still recognised.
    n += purge_table!(db, authorization_code, CodeHash, authorization_code::Column::ExpiresMs.lte(now - 3_600_000));
    n += purge_table!(
        db,
        session,
        Id,
        Condition::any()
            .add(session::Column::ExpiresMs.lte(now))
            .add(session::Column::LastSeenMs.lte(now - s.session_idle_secs * 1000))
    );
    n += purge_table!(db, login_challenge, TokenHash, login_challenge::Column::ExpiresMs.lte(now));
    n += purge_table!(db, webauthn_ceremony, IdHash, webauthn_ceremony::Column::ExpiresMs.lte(now));
    // Families (their tokens cascade) once expired or revoked a day ago.
    n += purge_table!(
        db,
        refresh_family,
        Id,
        Condition::any()
            .add(refresh_family::Column::ExpiresMs.lte(now))
            .add(refresh_family::Column::RevokedMs.lte(now - 86_400_000))
    );
    n += purge_table!(db, revoked_token, Jti, revoked_token::Column::ExpiresMs.lte(now));
    n += purge_table!(db, dpop_proof, JtiHash, dpop_proof::Column::ExpiresMs.lte(now));
    n += purge_table!(db, device_code, DeviceHash, device_code::Column::ExpiresMs.lte(now));
    n += purge_table!(db, registration_token, TokenHash, registration_token::Column::ExpiresMs.lte(now));
    n += purge_table!(db, pushed_request, IdHash, pushed_request::Column::ExpiresMs.lte(now));
    n += purge_table!(
        db,
        login_throttle,
        UsernameKey,
        Condition::all()
            .add(
                Condition::any()
                    .add(login_throttle::Column::LockedUntilMs.is_null())
                    .add(login_throttle::Column::LockedUntilMs.lte(now))
            )
            .add(Expr::col(login_throttle::Column::LastAttemptMs).lte(now - s.login_failure_decay_secs * 1000))
    );
    // The same table counts mails per address and account (a longer window).
    let window_ms = std::cmp::max(s.login_ip_window_secs, s.mail_window_secs) * 1000;
    n += purge_table!(db, ip_throttle, Ip, ip_throttle::Column::WindowStartMs.lte(now - window_ms));
    n += purge_table!(db, account_link, IdHash, account_link::Column::ExpiresMs.lte(now));
    n += purge_table!(db, upstream_login, StateHash, upstream_login::Column::ExpiresMs.lte(now));
    if s.audit_retention_days > 0 {
        let before = clock.now() - chrono::Duration::days(s.audit_retention_days);
        n += super::audit_chain::prune(db, audit_key, before, clock.now()).await?;
    }
    n += expire_registered_clients(db, s, clock).await?;
    n += purge_table!(
        db,
        trusted_device,
        TokenHash,
        trusted_device::Column::LastUsedMs.lte(now - s.trusted_device_days * 86_400_000)
    );
    Ok(n)
}

/// Deletes self-registered clients (RFC 7591) no user authorized for
/// `registered_client_ttl_days`, each with its audit record.
async fn expire_registered_clients(db: &DatabaseConnection, s: &Settings, clock: &Clock) -> Result<u64, DbErr> {
    use super::entities::client;
    use sea_orm::{Condition, QuerySelect};
    let now = clock.now();
    let cutoff = now.timestamp_millis() - s.registered_client_ttl_days * 86_400_000;
    let stale = client::Entity::find()
        .filter(client::Column::RegisteredMs.is_not_null())
        .filter(Condition::any().add(client::Column::LastUsedMs.lte(cutoff)).add(
            Condition::all().add(client::Column::LastUsedMs.is_null()).add(client::Column::RegisteredMs.lte(cutoff)),
        ))
        .limit(BATCH)
        .all(db)
        .await?;
    let mut n = 0;
    for c in stale {
        let txn = super::begin_write(db).await?;
        super::clients::delete(&txn, &c.client_id, now.timestamp_millis()).await?;
        let audit_record = super::AuditEvent::new("client.expired", "success")
            .actor("system:purge")
            .client(&c.client_id)
            .detail(serde_json::json!({ "registered_ms": c.registered_ms, "last_used_ms": c.last_used_ms }));
        crate::storage::commit_audited(txn, audit_record, now).await?;
        n += 1;
    }
    Ok(n)
}

/// Runs [`purge_once`] every `every`, forever.
pub fn spawn(
    db: DatabaseConnection,
    settings: Arc<Settings>,
    clock: Clock,
    audit_key: crate::crypto::SecretHasher,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match purge_once(&db, &settings, &clock, &audit_key).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "purged expired rows"),
                Err(e) => tracing::warn!(error = %e, "purging expired rows failed"),
            }
        }
    });
}
