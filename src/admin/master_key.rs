//! Master-key rotation (ASVS V11.2.2): every envelope sealed under the
//! master key — the data keys (the keyed-hash and audit-chain keys), the
//! private signing keys, TOTP seeds and pending TOTP enrolments — is opened
//! with the configured key (or its second key) and sealed again under the
//! new one. Keyed hashes need no re-keying: their key is a data key, which
//! moves with the rest.
//!
//! Resumable by construction: a row that already opens with the new key is
//! skipped, each batch is its own transaction, and a row is replaced only if
//! it is still what was read (a server writing meanwhile is not
//! overwritten). Run it again until it reports `complete`.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use super::{Actor, AdminError};
use crate::crypto::MasterKey;
use crate::policy::Permission;
use crate::state::AppState;
use crate::storage::entities::{data_key, signing_key, totp_credential, totp_enrolment};
use crate::storage::{AuditEvent, record_audit};

/// What a run did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Rotation {
    /// Envelopes sealed again under the new key, by kind.
    pub data_keys: u64,
    pub signing_keys: u64,
    pub totp_credentials: u64,
    pub totp_enrolments: u64,
    /// Envelopes that were under the new key already (an earlier run).
    pub already_rotated: u64,
    /// Every envelope now opens with the new key.
    pub complete: bool,
}

/// One sealed value: which row, its context, its envelope.
struct Sealed {
    kind: Kind,
    keys: Vec<String>,
    context: String,
    envelope: Vec<u8>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    DataKey,
    SigningKey,
    Totp,
    Enrolment,
}

async fn sealed_values(state: &AppState) -> Result<Vec<Sealed>, AdminError> {
    let db = &state.db;
    let mut all = Vec::new();
    for r in data_key::Entity::find().all(db).await? {
        let context = crate::state::data_keys::context(&r.name);
        all.push(Sealed { kind: Kind::DataKey, keys: vec![r.name], context, envelope: r.sealed });
    }
    for r in signing_key::Entity::find().all(db).await? {
        let context = crate::state::keyring::seal_context(&r.kid);
        all.push(Sealed { kind: Kind::SigningKey, keys: vec![r.kid], context, envelope: r.private_key });
    }
    for r in totp_credential::Entity::find().all(db).await? {
        let context = crate::authn::mfa::cred_context(&r.user_id);
        all.push(Sealed { kind: Kind::Totp, keys: vec![r.user_id], context, envelope: r.secret });
    }
    for r in totp_enrolment::Entity::find().all(db).await? {
        let context = crate::authn::mfa::enrol_context(&r.user_id, &r.enrolment_id);
        all.push(Sealed { kind: Kind::Enrolment, keys: vec![r.user_id, r.enrolment_id], context, envelope: r.secret });
    }
    Ok(all)
}

/// Replaces one envelope if the row still holds `old`; whether it did.
async fn replace<C: sea_orm::ConnectionTrait>(conn: &C, s: &Sealed, new: Vec<u8>) -> Result<bool, sea_orm::DbErr> {
    let old = s.envelope.clone();
    let n = match s.kind {
        Kind::DataKey => {
            data_key::Entity::update_many()
                .col_expr(data_key::Column::Sealed, Expr::value(new))
                .filter(data_key::Column::Name.eq(s.keys[0].as_str()))
                .filter(data_key::Column::Sealed.eq(old))
                .exec(conn)
                .await?
        }
        Kind::SigningKey => {
            signing_key::Entity::update_many()
                .col_expr(signing_key::Column::PrivateKey, Expr::value(new))
                .filter(signing_key::Column::Kid.eq(s.keys[0].as_str()))
                .filter(signing_key::Column::PrivateKey.eq(old))
                .exec(conn)
                .await?
        }
        Kind::Totp => {
            totp_credential::Entity::update_many()
                .col_expr(totp_credential::Column::Secret, Expr::value(new))
                .filter(totp_credential::Column::UserId.eq(s.keys[0].as_str()))
                .filter(totp_credential::Column::Secret.eq(old))
                .exec(conn)
                .await?
        }
        Kind::Enrolment => {
            totp_enrolment::Entity::update_many()
                .col_expr(totp_enrolment::Column::Secret, Expr::value(new))
                .filter(totp_enrolment::Column::UserId.eq(s.keys[0].as_str()))
                .filter(totp_enrolment::Column::EnrolmentId.eq(s.keys[1].as_str()))
                .filter(totp_enrolment::Column::Secret.eq(old))
                .exec(conn)
                .await?
        }
    };
    Ok(n.rows_affected == 1)
}

const BATCH: usize = 100;

/// Re-seals up to `limit` envelopes (all when `None`) under `new`.
pub async fn rotate(
    state: &AppState,
    actor: &Actor,
    new: &MasterKey,
    limit: Option<u64>,
) -> Result<Rotation, AdminError> {
    actor.require(Permission::KeysRotate)?;
    let mut done = Rotation::default();
    let mut budget = limit.unwrap_or(u64::MAX);
    let pending: Vec<Sealed> = sealed_values(state)
        .await?
        .into_iter()
        .filter(|s| {
            let under_new = new.open(&s.context, &s.envelope).is_ok();
            done.already_rotated += u64::from(under_new);
            !under_new
        })
        .collect();
    for batch in pending.chunks(BATCH) {
        if budget == 0 {
            break;
        }
        let txn = crate::storage::begin_write(&state.db).await?;
        for s in batch.iter().take(usize::try_from(budget).unwrap_or(usize::MAX)) {
            let plain = state.master_key.open(&s.context, &s.envelope).map_err(|_| {
                AdminError::Refused(format!(
                    "a sealed secret ({}) opens with neither the configured master key(s) nor the new one",
                    s.context.split(':').next().unwrap_or_default()
                ))
            })?;
            if replace(&txn, s, new.seal(&s.context, &plain)?).await? {
                let counter = match s.kind {
                    Kind::DataKey => &mut done.data_keys,
                    Kind::SigningKey => &mut done.signing_keys,
                    Kind::Totp => &mut done.totp_credentials,
                    Kind::Enrolment => &mut done.totp_enrolments,
                };
                *counter += 1;
            }
            budget -= 1;
        }
        txn.commit().await?;
    }
    done.complete = sealed_values(state).await?.iter().all(|s| new.open(&s.context, &s.envelope).is_ok());
    let event = AuditEvent::new("master_key.rotated", if done.complete { "success" } else { "partial" })
        .actor(&actor.name)
        .source(actor.ip.clone(), actor.user_agent.clone())
        .detail(json!({
            "data_keys": done.data_keys,
            "signing_keys": done.signing_keys,
            "totp_credentials": done.totp_credentials,
            "totp_enrolments": done.totp_enrolments,
            "already_rotated": done.already_rotated,
            "complete": done.complete,
        }));
    record_audit(&state.db, event, state.clock.now()).await?;
    Ok(done)
}
