use sea_orm::entity::prelude::*;

/// The head of the audit hash chain: one row (`id` 1).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_chain")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    /// The last sealed record's sequence number (0: none yet).
    pub seq: i64,
    /// The last sealed record's hash (64 zeros: none yet).
    pub hash: String,
    /// Records up to this sequence number were removed by retention.
    pub pruned_through: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
