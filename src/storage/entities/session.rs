use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub token_hash: String,
    pub user_id: String,
    pub created_at: ChronoDateTimeUtc,
    pub auth_time: i64,
    pub last_seen_ms: i64,
    pub expires_ms: i64,
    /// JSON array of RFC 8176 method names, e.g. `["pwd","otp"]`.
    #[sea_orm(column_type = "Text")]
    pub amr: String,
    pub acr: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
