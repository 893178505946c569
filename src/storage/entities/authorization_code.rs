use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "authorization_codes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub code_hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    #[sea_orm(column_type = "Text")]
    pub redirect_uri: String,
    #[sea_orm(column_type = "Text")]
    pub scope: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub resource: Option<String>,
    pub auth_time: i64,
    #[sea_orm(column_type = "Text")]
    pub amr: String,
    pub acr: Option<String>,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub used_ms: Option<i64>,
    pub access_jti: Option<String>,
    /// The `claims` request parameter (JSON), if one was given.
    #[sea_orm(column_type = "Text", nullable)]
    pub claims: Option<String>,
    /// The DPoP key thumbprint the code is bound to (`dpop_jkt`, RFC 9449 §10).
    pub dpop_jkt: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
