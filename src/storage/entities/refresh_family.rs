use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_families")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub grant_id: Option<String>,
    pub client_id: String,
    pub user_id: String,
    pub session_id: Option<String>,
    pub revoked_ms: Option<i64>,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// The DPoP key a public client's refresh tokens are bound to (RFC 9449 §5).
    pub dpop_jkt: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
