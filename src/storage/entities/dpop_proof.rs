use sea_orm::entity::prelude::*;

/// A DPoP proof already seen (RFC 9449 §11.1): a keyed hash of its key
/// thumbprint and `jti`, kept until the proof could no longer be accepted.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dpop_proofs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub jti_hash: String,
    pub expires_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
