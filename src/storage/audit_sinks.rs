//! The audit stream's positions: per configured sink, the last sequence
//! number delivered and the lease of the one instance delivering to it. The
//! sealed audit log is the outbox: a record is committed with the change it
//! describes, sealed into the chain, and delivered from there — a crash
//! loses nothing, a restart resumes at the stored position.

use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

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
/// sink's row when this holder has it.
pub async fn lease<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    holder: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<Option<audit_sink::Model>, DbErr> {
    let free = Condition::any()
        .add(audit_sink::Column::LeaseHolder.is_null())
        .add(audit_sink::Column::LeaseHolder.eq(holder))
        .add(audit_sink::Column::LeaseUntilMs.lt(now_ms));
    let taken = audit_sink::Entity::update_many()
        .col_expr(audit_sink::Column::LeaseHolder, Expr::value(holder))
        .col_expr(audit_sink::Column::LeaseUntilMs, Expr::value(until_ms))
        .filter(audit_sink::Column::Name.eq(name))
        .filter(free)
        .exec(conn)
        .await?
        .rows_affected;
    if taken == 0 {
        return Ok(None);
    }
    audit_sink::Entity::find_by_id(name).one(conn).await
}

/// Moves `name` to `seq` (and counts `dead` given-up records), only while
/// `holder` has the lease and only forward.
pub async fn advance<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    holder: &str,
    seq: i64,
    dead: i64,
) -> Result<bool, DbErr> {
    let n = audit_sink::Entity::update_many()
        .col_expr(audit_sink::Column::DeliveredSeq, Expr::value(seq))
        .col_expr(audit_sink::Column::DeadLetters, Expr::col(audit_sink::Column::DeadLetters).add(dead))
        .filter(audit_sink::Column::Name.eq(name))
        .filter(audit_sink::Column::LeaseHolder.eq(holder))
        .filter(audit_sink::Column::DeliveredSeq.lt(seq))
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
