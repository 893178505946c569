use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "authorization_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: String,
    pub client_id: String,
    #[sea_orm(column_type = "Text")]
    pub params: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// The session that logged in for this request (answers `prompt=login`).
    pub login_session: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
