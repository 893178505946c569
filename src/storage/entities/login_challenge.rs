use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_challenges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub user_id: String,
    pub purpose: String,
    pub trusted_device: bool,
    pub attempts: i32,
    pub return_to: Option<String>,
    /// The first factor's `amr` when it was not the password (`fed`: an
    /// upstream identity provider).
    pub first_factor: Option<String>,
    pub created_ms: i64,
    pub expires_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
