use sea_orm::entity::prelude::*;

/// A pushed authorization request (RFC 9126): the validated parameters under
/// a keyed hash of the `request_uri`'s random part, single use.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pushed_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: String,
    pub client_id: String,
    /// The request's parameters (JSON object of strings).
    #[sea_orm(column_type = "Text")]
    pub params: String,
    pub expires_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
