use sea_orm::entity::prelude::*;

/// An identity at an upstream provider, linked to a local account.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "upstream_identities")]
pub struct Model {
    /// The provider's `id` in the configuration.
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider: String,
    /// The upstream `sub`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub subject: String,
    pub user_id: String,
    /// The upstream address at the last sign-in (shown on /account).
    pub email: Option<String>,
    /// The local roles its upstream groups gave it at the last sign-in (JSON
    /// list): the ones a later sign-in may take away again.
    #[sea_orm(column_type = "Text")]
    pub mapped_roles: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
