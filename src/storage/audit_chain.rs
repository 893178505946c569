//! Tamper evidence for the audit log (ASVS V16.4.x): a keyed hash chain.
//!
//! Records are written with one plain insert (the hot paths pay nothing
//! more); a sealer — every instance runs one, they take turns on the chain's
//! head row — then gives each committed, unsealed record the next sequence
//! number, the hash of its content `SHA-256(canonical(record))` and its link
//! `HMAC(audit key, prev "\n" seq "\n" core "\n" content_hash)`, in one
//! transaction with the new head. The audit key is derived from the master
//! key: someone who can write the database but lacks the key cannot make a
//! link, so cannot edit, insert, reorder or delete a sealed record unseen.
//! Sealing in commit order (not id order) means a record whose transaction
//! committed late is still chained, after the others.
//!
//! An erasure (GDPR art. 17) rewrites the personal fields (actor, user, ip,
//! user agent, detail) of sealed records and marks them `redacted`: their
//! content hash no longer matches and `verify` counts them apart, but the
//! link also covers the record's core (time, event type, outcome, client),
//! which stays checked. Retention removes the oldest records only after
//! checking them, and seals an `audit.pruned` record naming how far it went
//! and the last removed link: `verify` starts the chain from it, so removing
//! records outside retention is caught like any deletion.
//!
//! What the chain cannot see, by construction: a record altered in the
//! second between its commit and its sealing (or inserted unsealed), and
//! the newest records cut off together with the head row by someone who
//! also sets the head back. The head is exported in /metrics and with every
//! streamed record; `audit verify --expect SEQ:HASH` checks a copy of it.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::entities::{audit_chain, audit_event};
use crate::crypto::SecretHasher;

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The event retention records when it removes the oldest records.
pub const PRUNED_EVENT: &str = "audit.pruned";
const BATCH: u64 = 500;

/// The chain's head: the last sealed record's number and hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
    /// Records up to this number were removed by retention.
    pub pruned_through: i64,
}

fn at_text(r: &audit_event::Model) -> String {
    // Microseconds: what PostgreSQL keeps (SQLite keeps more).
    r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The hash of a record's content. The canonical form is a JSON array of a
/// format version and every field, so no two records encode alike.
pub fn content_hash(r: &audit_event::Model) -> String {
    let canonical = serde_json::json!([
        1,
        at_text(r),
        r.event_type,
        r.outcome,
        r.actor,
        r.user_id,
        r.client_id,
        r.ip,
        r.user_agent,
        r.detail,
    ]);
    crate::crypto::sha256_hex(canonical.to_string().as_bytes())
}

/// The link of a record at `seq` after `prev`: a MAC over its place, its
/// core (the fields an erasure never rewrites) and its content hash.
pub fn link_hash(key: &SecretHasher, prev: &str, seq: i64, r: &audit_event::Model, content: &str) -> String {
    let core = serde_json::json!([at_text(r), r.event_type, r.outcome, r.client_id]);
    key.hash(&format!("audit-link:{prev}\n{seq}\n{core}\n{content}"))
}

async fn read_head<C: ConnectionTrait>(conn: &C) -> Result<Head, DbErr> {
    let row = audit_chain::Entity::find_by_id(1)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the audit chain's head row".into()))?;
    Ok(Head { seq: row.seq, hash: row.hash, pruned_through: row.pruned_through })
}

/// Locks the head row until the transaction ends (a no-op update: a write
/// lock on SQLite, a row lock on PostgreSQL), then reads it.
async fn lock_head(txn: &DatabaseTransaction) -> Result<Head, DbErr> {
    audit_chain::Entity::update_many()
        .col_expr(audit_chain::Column::Seq, Expr::col(audit_chain::Column::Seq))
        .filter(audit_chain::Column::Id.eq(1))
        .exec(txn)
        .await?;
    read_head(txn).await
}

/// The head as it is now (no lock).
pub async fn head<C: ConnectionTrait>(conn: &C) -> Result<Head, DbErr> {
    read_head(conn).await
}

/// Seals up to a batch of unsealed records under the held head lock;
/// returns how many (the head is moved on in `head` and in the table).
async fn seal_locked(txn: &DatabaseTransaction, key: &SecretHasher, head: &mut Head) -> Result<u64, DbErr> {
    let rows = audit_event::Entity::find()
        .filter(audit_event::Column::Seq.is_null())
        .order_by_asc(audit_event::Column::Id)
        .limit(BATCH)
        .all(txn)
        .await?;
    let n = rows.len() as u64;
    for r in rows {
        let seq = head.seq + 1;
        let content = content_hash(&r);
        let hash = link_hash(key, &head.hash, seq, &r, &content);
        let updated = audit_event::Entity::update_many()
            .col_expr(audit_event::Column::Seq, Expr::value(seq))
            .col_expr(audit_event::Column::PrevHash, Expr::value(head.hash.clone()))
            .col_expr(audit_event::Column::ContentHash, Expr::value(content))
            .col_expr(audit_event::Column::Hash, Expr::value(hash.clone()))
            // Sealed as it is now: nothing of it is redacted any more.
            .col_expr(audit_event::Column::Redacted, Expr::value(false))
            .filter(audit_event::Column::Id.eq(r.id))
            .filter(audit_event::Column::Seq.is_null())
            .exec(txn)
            .await?
            .rows_affected;
        if updated != 1 {
            // Gone or sealed meanwhile: never leave a number without a record.
            return Err(DbErr::Custom(format!("audit record {} changed while it was sealed", r.id)));
        }
        head.seq = seq;
        head.hash = hash;
    }
    if n > 0 {
        audit_chain::Entity::update_many()
            .col_expr(audit_chain::Column::Seq, Expr::value(head.seq))
            .col_expr(audit_chain::Column::Hash, Expr::value(head.hash.clone()))
            .filter(audit_chain::Column::Id.eq(1))
            .exec(txn)
            .await?;
    }
    Ok(n)
}

/// Seals every committed, unsealed record, oldest id first, in batches;
/// returns how many and the head after. Nothing to seal: no lock is taken.
pub async fn seal(db: &DatabaseConnection, key: &SecretHasher) -> Result<(u64, Head), DbErr> {
    let mut total = 0;
    loop {
        let pending = audit_event::Entity::find()
            .select_only()
            .column(audit_event::Column::Id)
            .filter(audit_event::Column::Seq.is_null())
            .limit(1)
            .into_tuple::<i64>()
            .one(db)
            .await?;
        if pending.is_none() {
            return Ok((total, read_head(db).await?));
        }
        let txn = super::begin_write(db).await?;
        let mut head = lock_head(&txn).await?;
        let n = seal_locked(&txn, key, &mut head).await?;
        txn.commit().await?;
        total += n;
        if n < BATCH {
            return Ok((total, head));
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    /// Every sealed record matches its link and its place, up to the head.
    Intact {
        /// Sealed records checked.
        records: u64,
        /// Of those, records an erasure rewrote (core and link checked,
        /// personal fields not).
        redacted: u64,
        head: Head,
        /// Records written but not sealed yet (none right after a seal).
        unsealed: u64,
    },
    /// The first record (by sequence number) that does not fit.
    Broken {
        seq: i64,
        /// The row's id, when the record is there at all.
        id: Option<i64>,
        reason: String,
    },
}

fn broken(seq: i64, id: Option<i64>, reason: impl Into<String>) -> Verdict {
    Verdict::Broken { seq, id, reason: reason.into() }
}

/// Checks one sealed record against its stored hashes and `prev`.
fn check(key: &SecretHasher, r: &audit_event::Model, prev: &str) -> Result<bool, String> {
    let (Some(seq), Some(stored_prev), Some(content), Some(hash)) = (r.seq, &r.prev_hash, &r.content_hash, &r.hash)
    else {
        return Err("its hash was removed".into());
    };
    if stored_prev != prev {
        return Err("its link to the previous record does not match".into());
    }
    if link_hash(key, prev, seq, r, content) != *hash {
        return Err("it does not match its link (edited, or not made with this master key)".into());
    }
    if content_hash(r) != *content {
        if !r.redacted {
            return Err("its content does not match its hash (edited)".into());
        }
        return Ok(true);
    }
    Ok(false)
}

/// Recomputes the chain from the oldest kept record to the head, in one
/// consistent snapshot (servers may seal and prune meanwhile).
pub async fn verify(db: &DatabaseConnection, key: &SecretHasher) -> Result<Verdict, DbErr> {
    let txn = super::begin_snapshot(db).await?;
    let verdict = verify_in(&txn, key).await;
    txn.rollback().await?;
    verdict
}

async fn verify_in(txn: &DatabaseTransaction, key: &SecretHasher) -> Result<Verdict, DbErr> {
    let head = read_head(txn).await?;
    let mut expected = head.pruned_through + 1;
    let mut prev = GENESIS.to_owned();
    if head.pruned_through > 0 {
        // The retention record sealed with the last removal names it.
        let stamp = audit_event::Entity::find()
            .filter(audit_event::Column::EventType.eq(PRUNED_EVENT))
            .filter(audit_event::Column::Seq.gt(head.pruned_through))
            .order_by_desc(audit_event::Column::Seq)
            .one(txn)
            .await?;
        let detail = stamp.map(|s| serde_json::from_str::<serde_json::Value>(&s.detail).unwrap_or_default());
        match detail {
            Some(d) if d["through"].as_i64() == Some(head.pruned_through) => {
                prev = d["hash"].as_str().unwrap_or_default().to_owned();
            }
            _ => {
                return Ok(broken(
                    expected,
                    None,
                    format!("records up to {} are gone without a retention record saying so", head.pruned_through),
                ));
            }
        }
    }
    let (mut records, mut redacted) = (0u64, 0u64);
    while expected <= head.seq {
        let rows = audit_event::Entity::find()
            .filter(audit_event::Column::Seq.gte(expected))
            .filter(audit_event::Column::Seq.lte(head.seq))
            .order_by_asc(audit_event::Column::Seq)
            .limit(BATCH)
            .all(txn)
            .await?;
        if rows.is_empty() {
            break;
        }
        for r in rows {
            if r.seq != Some(expected) {
                return Ok(broken(expected, None, format!("record {expected} is missing (deleted)")));
            }
            match check(key, &r, &prev) {
                Err(reason) => return Ok(broken(expected, Some(r.id), reason)),
                Ok(was_redacted) => redacted += u64::from(was_redacted),
            }
            prev = r.hash.clone().unwrap_or_default();
            records += 1;
            expected += 1;
        }
    }
    if expected <= head.seq {
        return Ok(broken(
            expected,
            None,
            format!("the records from {expected} to the head ({}) are missing (cut off)", head.seq),
        ));
    }
    if prev != head.hash {
        return Ok(broken(head.seq, None, "the head does not match the last record (the head was edited)"));
    }
    let unsealed = audit_event::Entity::find().filter(audit_event::Column::Seq.is_null()).count(txn).await?;
    Ok(Verdict::Intact { records, redacted, head, unsealed })
}

/// Does the chain hold `hash` at `seq` (a copy of an earlier head, from
/// /metrics or a stream)? `None` when retention has removed that record.
pub async fn holds<C: ConnectionTrait>(conn: &C, seq: i64, hash: &str) -> Result<Option<bool>, DbErr> {
    let row = audit_event::Entity::find().filter(audit_event::Column::Seq.eq(seq)).one(conn).await?;
    match row {
        Some(r) => Ok(Some(r.hash.as_deref() == Some(hash))),
        None if seq <= read_head(conn).await?.pruned_through => Ok(None),
        None => Ok(Some(false)),
    }
}

/// Retention: removes the oldest sealed records written before `before` —
/// in sequence order, without a gap, each checked first (retention never
/// removes evidence of tampering), none an active audit sink has not
/// received yet — and seals an `audit.pruned` record with
/// how far it went, in the same transaction.
pub async fn prune(
    db: &DatabaseConnection,
    key: &SecretHasher,
    before: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, DbErr> {
    let mut total = 0;
    // Not past what a sink still has to deliver (sinks delivered to in the
    // last week: a sink removed from the configuration stops holding it).
    let active_since = now.timestamp_millis() - 7 * 86_400_000;
    let cap = super::entities::audit_sink::Entity::find()
        .filter(super::entities::audit_sink::Column::LeaseUntilMs.gt(active_since))
        .all(db)
        .await?
        .iter()
        .map(|s| s.delivered_seq)
        .min()
        .unwrap_or(i64::MAX);
    loop {
        let txn = super::begin_write(db).await?;
        let mut head = lock_head(&txn).await?;
        let rows = audit_event::Entity::find()
            .filter(audit_event::Column::Seq.gt(head.pruned_through))
            .order_by_asc(audit_event::Column::Seq)
            .limit(BATCH)
            .all(&txn)
            .await?;
        let fetched = rows.len() as u64;
        let mut through: Option<(i64, String)> = None;
        for r in &rows {
            let expected = through.as_ref().map_or(head.pruned_through, |t| t.0) + 1;
            // Never the newest record: the chain's head stays in the table.
            if r.seq != Some(expected) || r.at >= before || expected >= head.seq || expected > cap {
                break;
            }
            let prev = through.as_ref().map(|t| t.1.clone()).or_else(|| r.prev_hash.clone()).unwrap_or_default();
            if let Err(reason) = check(key, r, &prev) {
                tracing::error!(seq = expected, reason, "audit chain broken: retention stops before this record");
                break;
            }
            through = Some((expected, r.hash.clone().unwrap_or_default()));
        }
        let Some((last, last_hash)) = through else {
            txn.commit().await?;
            return Ok(total);
        };
        let n = (last - head.pruned_through) as u64;
        audit_event::Entity::delete_many()
            .filter(audit_event::Column::Seq.gt(head.pruned_through))
            .filter(audit_event::Column::Seq.lte(last))
            .exec(&txn)
            .await?;
        audit_chain::Entity::update_many()
            .col_expr(audit_chain::Column::PrunedThrough, Expr::value(last))
            .filter(audit_chain::Column::Id.eq(1))
            .exec(&txn)
            .await?;
        head.pruned_through = last;
        audit_event::ActiveModel {
            at: Set(now),
            event_type: Set(PRUNED_EVENT.into()),
            outcome: Set("success".into()),
            actor: Set(Some("system".into())),
            detail: Set(serde_json::json!({ "through": last, "hash": last_hash, "removed": n }).to_string()),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        while seal_locked(&txn, key, &mut head).await? == BATCH {}
        txn.commit().await?;
        total += n;
        if n < fetched {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Seals every `every`, forever, and tells the metrics the head.
pub fn spawn_sealer(
    db: DatabaseConnection,
    key: SecretHasher,
    metrics: std::sync::Arc<crate::telemetry::metrics::Metrics>,
    every: std::time::Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match seal(&db, &key).await {
                Ok((_, head)) => metrics.audit_head(head.seq, &head.hash),
                Err(e) => tracing::warn!(error = %e, "sealing audit records failed"),
            }
        }
    });
}
