use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// A UUID: the stable OIDC `sub`, never the username.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub username: String,
    #[sea_orm(unique)]
    pub username_key: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// OIDC `phone_number`.
    pub phone_number: Option<String>,
    /// OIDC `address` (JSON object, see `domain::Address`).
    #[sea_orm(column_type = "Text", nullable)]
    pub address: Option<String>,
    pub disabled: bool,
    /// The person followed a link sent to `email` (OIDC `email_verified`).
    pub email_verified: bool,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
    /// The declarative file that manages the account's profile and roles.
    pub managed_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
