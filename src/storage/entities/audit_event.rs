use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub at: ChronoDateTimeUtc,
    pub event_type: String,
    pub outcome: String,
    pub actor: Option<String>,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// JSON object with event-specific fields; never a secret.
    #[sea_orm(column_type = "Text")]
    pub detail: String,
    /// The record's place in the hash chain (from 1); `None` until sealed
    /// (a second or so after it is written, by `storage::audit_chain`).
    pub seq: Option<i64>,
    /// The previous record's `hash` (64 zeros before the first).
    pub prev_hash: Option<String>,
    /// SHA-256 (hex) of this record's fields as sealed.
    pub content_hash: Option<String>,
    /// SHA-256 (hex) over `prev_hash` and `content_hash`: the chain.
    pub hash: Option<String>,
    /// An erasure (GDPR) rewrote the record's personal fields after sealing:
    /// its content no longer matches `content_hash`; its link still holds.
    pub redacted: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
