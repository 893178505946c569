//! The audit stream's positions: per configured sink, the last sequence
//! number delivered and the lease of the one instance delivering to it. The
//! sealed audit log is the outbox: a record is committed with the change it
//! describes, sealed into the chain, and delivered from there — a crash
//! loses nothing, a restart resumes at the stored position.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::entities::{audit_event, audit_sink};

/// Makes sure `name` has a position (0: nothing delivered yet).
pub async fn ensure<C: ConnectionTrait>(conn: &C, name: &str) -> Result<(), DbErr> {
    let row = audit_sink::ActiveModel {
        name: Set(name.to_owned()),
        delivered_seq: Set(0),
        dead_letters: Set(0),
        lease_holder: Set(None),
        lease_until_ms: Set(None),
    };
    match audit_sink::Entity::insert(row)
        .on_conflict(OnConflict::column(audit_sink::Column::Name).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await
    {
        Ok(_) | Err(DbErr::RecordNotInserted) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Takes or renews the lease on `name` for `holder` until `until_ms`; the
/// sink's row when this holder has it. A lease is free when nobody holds
/// it, it has run out, or its holder's name starts with `same_instance`
/// (this host and address: an earlier process of this instance, so a
/// restart does not wait for its own old lease). Taken by compare-and-swap
/// on what was read: two takers cannot both win.
pub async fn lease<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    holder: &str,
    same_instance: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<Option<audit_sink::Model>, DbErr> {
    let Some(row) = audit_sink::Entity::find_by_id(name).one(conn).await? else {
        return Ok(None);
    };
    let free = row.lease_holder.as_deref().is_none_or(|h| h == holder || h.starts_with(same_instance))
        || row.lease_until_ms.is_none_or(|u| u < now_ms);
    if !free {
        return Ok(None);
    }
    let mut update = audit_sink::Entity::update_many()
        .col_expr(audit_sink::Column::LeaseHolder, Expr::value(holder))
        .col_expr(audit_sink::Column::LeaseUntilMs, Expr::value(until_ms))
        .filter(audit_sink::Column::Name.eq(name));
    update = match &row.lease_holder {
        Some(h) => update.filter(audit_sink::Column::LeaseHolder.eq(h.as_str())),
        None => update.filter(audit_sink::Column::LeaseHolder.is_null()),
    };
    update = match row.lease_until_ms {
        Some(u) => update.filter(audit_sink::Column::LeaseUntilMs.eq(u)),
        None => update.filter(audit_sink::Column::LeaseUntilMs.is_null()),
    };
    if update.exec(conn).await?.rows_affected == 0 {
        return Ok(None);
    }
    audit_sink::Entity::find_by_id(name).one(conn).await
}

/// Moves `name` to `seq` (and counts `dead` given-up records) and renews
/// the lease until `until_ms`, only while `holder` has the lease and only
/// forward; `false` when the lease was lost (stop delivering).
pub async fn advance<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    holder: &str,
    seq: i64,
    dead: i64,
    until_ms: i64,
) -> Result<bool, DbErr> {
    let n = audit_sink::Entity::update_many()
        .col_expr(audit_sink::Column::DeliveredSeq, Expr::value(seq))
        .col_expr(audit_sink::Column::LeaseUntilMs, Expr::value(until_ms))
        .col_expr(audit_sink::Column::DeadLetters, Expr::col(audit_sink::Column::DeadLetters).add(dead))
        .filter(audit_sink::Column::Name.eq(name))
        .filter(audit_sink::Column::LeaseHolder.eq(holder))
        .filter(audit_sink::Column::DeliveredSeq.lte(seq))
        .exec(conn)
        .await?
        .rows_affected;
    Ok(n == 1)
}

/// Moves `name` back so that delivery starts again at `from` (whoever holds
/// the lease delivers from there); `false` when the sink has no position yet.
pub async fn rewind<C: ConnectionTrait>(conn: &C, name: &str, from: i64) -> Result<bool, DbErr> {
    let n = audit_sink::Entity::update_many()
        .col_expr(audit_sink::Column::DeliveredSeq, Expr::value(from - 1))
        .filter(audit_sink::Column::Name.eq(name))
        .filter(audit_sink::Column::DeliveredSeq.gte(from - 1))
        .exec(conn)
        .await?
        .rows_affected;
    Ok(n == 1)
}

/// Sealed records after `after`, in chain order.
pub async fn after<C: ConnectionTrait>(conn: &C, after: i64, limit: u64) -> Result<Vec<audit_event::Model>, DbErr> {
    audit_event::Entity::find()
        .filter(audit_event::Column::Seq.gt(after))
        .order_by_asc(audit_event::Column::Seq)
        .limit(limit)
        .all(conn)
        .await
}
