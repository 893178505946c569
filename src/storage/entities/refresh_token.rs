use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub family_id: String,
    #[sea_orm(column_type = "Text")]
    pub scope: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub resource: Option<String>,
    pub auth_time: i64,
    #[sea_orm(column_type = "Text")]
    pub amr: String,
    pub acr: Option<String>,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub rotated_ms: Option<i64>,
    /// The one grace redemption of a rotated-out token was spent.
    pub grace_used: bool,
    /// The `claims` request parameter (JSON) of the grant, if any.
    #[sea_orm(column_type = "Text", nullable)]
    pub claims: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
