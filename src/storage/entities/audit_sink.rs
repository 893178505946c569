use sea_orm::entity::prelude::*;

/// How far one configured audit sink has been delivered, and which instance
/// delivers to it now.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_sinks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// The last sequence number delivered (0: none yet).
    pub delivered_seq: i64,
    /// Records given up on after every retry.
    pub dead_letters: i64,
    pub lease_holder: Option<String>,
    pub lease_until_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
