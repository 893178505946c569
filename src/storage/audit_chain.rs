//! Tamper evidence for the audit log (ASVS V16.4.x): a hash chain.
//!
//! Records are written with one plain insert (the hot paths pay nothing
//! more); a sealer — every instance runs one, they take turns on the chain's
//! head row — then gives each committed, unsealed record the next sequence
//! number, the hash of its content `SHA-256(canonical(record))` and its link
//! `SHA-256(prev_hash "\n" seq "\n" content_hash)`, in one transaction with
//! the new head. Sealing in commit order (not id order) means a record whose
//! transaction committed late is still chained, after the others.
//!
//! [`verify`] recomputes the chain and names the first record that was
//! edited, deleted or cut off. An erasure (GDPR art. 17) rewrites the
//! personal fields of sealed records and marks them `redacted`: their links
//! still verify, their content cannot, and `verify` counts them apart — an
//! edit can at most be disguised as a redaction, which the count shows, never
//! pass as intact. The head (sequence number and hash) is also
//! exported in /metrics and with every streamed record, so a copy kept
//! elsewhere detects a database rewritten from the start. What the chain
//! cannot see: a record altered in the second between its commit and its
//! sealing, or a rewrite of the whole chain by someone who also rewrites every
//! copy of the head.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entities::{audit_chain, audit_event};

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const BATCH: u64 = 500;

/// The chain's head: the last sealed record's number and hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
    /// Records up to this number were removed by retention.
    pub pruned_through: i64,
}

/// The link of the record at `seq` after `prev`.
pub fn link_hash(prev: &str, seq: i64, content_hash: &str) -> String {
    crate::crypto::sha256_hex(format!("{prev}\n{seq}\n{content_hash}").as_bytes())
}

/// The hash of a record's content. The canonical form is a JSON array of a
/// format version and every field, so no two records encode alike.
pub fn content_hash(r: &audit_event::Model) -> String {
    let canonical = serde_json::json!([
        1,
        r.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
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

async fn read_head<C: ConnectionTrait>(conn: &C) -> Result<Head, DbErr> {
    let row = audit_chain::Entity::find_by_id(1)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the audit chain's head row".into()))?;
    Ok(Head { seq: row.seq, hash: row.hash, pruned_through: row.pruned_through })
}

/// Locks the head row until the transaction ends (a no-op update: a write
/// lock on SQLite, a row lock on PostgreSQL), then reads it.
async fn lock_head<C: ConnectionTrait>(conn: &C) -> Result<Head, DbErr> {
    audit_chain::Entity::update_many()
        .col_expr(audit_chain::Column::Seq, Expr::col(audit_chain::Column::Seq))
        .filter(audit_chain::Column::Id.eq(1))
        .exec(conn)
        .await?;
    read_head(conn).await
}

/// The head as it is now (no lock).
pub async fn head<C: ConnectionTrait>(conn: &C) -> Result<Head, DbErr> {
    read_head(conn).await
}

/// Seals every committed, unsealed record, oldest id first, in batches;
/// returns how many and the head after.
pub async fn seal(db: &DatabaseConnection) -> Result<(u64, Head), DbErr> {
    let mut total = 0;
    loop {
        let txn = super::begin_write(db).await?;
        let mut head = lock_head(&txn).await?;
        let rows = audit_event::Entity::find()
            .filter(audit_event::Column::Seq.is_null())
            .order_by_asc(audit_event::Column::Id)
            .limit(BATCH)
            .all(&txn)
            .await?;
        let n = rows.len() as u64;
        for r in rows {
            let seq = head.seq + 1;
            let content = content_hash(&r);
            let hash = link_hash(&head.hash, seq, &content);
            audit_event::Entity::update_many()
                .col_expr(audit_event::Column::Seq, Expr::value(seq))
                .col_expr(audit_event::Column::PrevHash, Expr::value(head.hash.clone()))
                .col_expr(audit_event::Column::ContentHash, Expr::value(content))
                .col_expr(audit_event::Column::Hash, Expr::value(hash.clone()))
                .filter(audit_event::Column::Id.eq(r.id))
                .exec(&txn)
                .await?;
            head.seq = seq;
            head.hash = hash;
        }
        if n > 0 {
            audit_chain::Entity::update_many()
                .col_expr(audit_chain::Column::Seq, Expr::value(head.seq))
                .col_expr(audit_chain::Column::Hash, Expr::value(head.hash.clone()))
                .filter(audit_chain::Column::Id.eq(1))
                .exec(&txn)
                .await?;
        }
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
    /// Every sealed record matches its hash and its place, up to the head.
    Intact {
        /// Sealed records checked.
        records: u64,
        /// Of those, records an erasure rewrote (links checked, content not).
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

/// Recomputes the chain from the oldest kept record to the head.
pub async fn verify<C: ConnectionTrait>(conn: &C) -> Result<Verdict, DbErr> {
    let head = read_head(conn).await?;
    let mut expected = head.pruned_through + 1;
    let mut prev: Option<String> = if head.pruned_through == 0 { Some(GENESIS.to_owned()) } else { None };
    let (mut records, mut redacted) = (0u64, 0u64);
    loop {
        let rows = audit_event::Entity::find()
            .filter(audit_event::Column::Seq.gte(expected))
            .order_by_asc(audit_event::Column::Seq)
            .limit(BATCH)
            .all(conn)
            .await?;
        let n = rows.len() as u64;
        for r in rows {
            let seq = r.seq.unwrap_or_default();
            if seq != expected {
                return Ok(broken(expected, None, format!("record {expected} is missing (deleted)")));
            }
            let (Some(stored_prev), Some(stored_content), Some(stored_hash)) = (&r.prev_hash, &r.content_hash, &r.hash)
            else {
                return Ok(broken(seq, Some(r.id), "its hash was removed".into()));
            };
            // After retention the first kept record's link is taken as given.
            if prev.as_ref().is_some_and(|p| p != stored_prev) {
                return Ok(broken(seq, Some(r.id), "its link to the previous record does not match".into()));
            }
            if link_hash(stored_prev, seq, stored_content) != *stored_hash {
                return Ok(broken(seq, Some(r.id), "its hash does not match its place in the chain".into()));
            }
            if content_hash(&r) != *stored_content {
                if !r.redacted {
                    return Ok(broken(seq, Some(r.id), "its content does not match its hash (edited)".into()));
                }
                redacted += 1;
            }
            prev = Some(stored_hash.clone());
            records += 1;
            expected += 1;
        }
        if n < BATCH {
            break;
        }
    }
    let last = expected - 1;
    if last < head.seq {
        return Ok(broken(
            expected,
            None,
            format!("the records from {expected} to the head ({}) are missing (cut off)", head.seq),
        ));
    }
    if last > head.seq || prev.as_ref().is_some_and(|p| last > 0 && *p != head.hash) {
        return Ok(broken(last, None, "the head does not match the last record (the head was edited)".into()));
    }
    let unsealed = audit_event::Entity::find().filter(audit_event::Column::Seq.is_null()).count(conn).await?;
    Ok(Verdict::Intact { records, redacted, head, unsealed })
}

fn broken(seq: i64, id: Option<i64>, reason: String) -> Verdict {
    Verdict::Broken { seq, id, reason }
}

/// Retention: removes the oldest sealed records written before `before`, in
/// sequence order and without a gap, and moves the chain's start past them
/// in the same transaction (so [`verify`] tells retention from deletion).
/// Records never sealed and older than `before` (written before the chain
/// existed) go too.
pub async fn prune(db: &DatabaseConnection, before: chrono::DateTime<chrono::Utc>) -> Result<u64, DbErr> {
    let mut total = audit_event::Entity::delete_many()
        .filter(audit_event::Column::Seq.is_null())
        .filter(audit_event::Column::At.lt(before))
        .exec(db)
        .await?
        .rows_affected;
    loop {
        let txn = super::begin_write(db).await?;
        let head = lock_head(&txn).await?;
        let rows: Vec<(i64, i64, chrono::DateTime<chrono::Utc>)> = audit_event::Entity::find()
            .select_only()
            .column(audit_event::Column::Id)
            .column(audit_event::Column::Seq)
            .column(audit_event::Column::At)
            .filter(audit_event::Column::Seq.gt(head.pruned_through))
            .order_by_asc(audit_event::Column::Seq)
            .limit(BATCH)
            .into_tuple()
            .all(&txn)
            .await?;
        let fetched = rows.len() as u64;
        let old: Vec<(i64, i64)> = rows.into_iter().take_while(|r| r.2 < before).map(|r| (r.0, r.1)).collect();
        let Some(&(_, through)) = old.last() else {
            txn.commit().await?;
            return Ok(total);
        };
        let n = old.len() as u64;
        audit_event::Entity::delete_many()
            .filter(audit_event::Column::Id.is_in(old.into_iter().map(|r| r.0)))
            .exec(&txn)
            .await?;
        audit_chain::Entity::update_many()
            .col_expr(audit_chain::Column::PrunedThrough, Expr::value(through))
            .filter(audit_chain::Column::Id.eq(1))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        total += n;
        if n < fetched || n < BATCH {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Seals every `every`, forever, and tells the metrics the head.
pub fn spawn_sealer(
    db: DatabaseConnection,
    metrics: std::sync::Arc<crate::telemetry::metrics::Metrics>,
    every: std::time::Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match seal(&db).await {
                Ok((_, head)) => metrics.audit_head(head.seq, &head.hash),
                Err(e) => tracing::warn!(error = %e, "sealing audit records failed"),
            }
        }
    });
}
