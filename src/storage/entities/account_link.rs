use sea_orm::entity::prelude::*;

/// A single-use link (invitation, password reset, address verification,
/// pending sign-up): only the keyed hash of its secret is stored.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "account_links")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: String,
    /// `invite`, `reset`, `verify_email` or `signup`.
    pub purpose: String,
    /// The account (none for a sign-up not yet confirmed).
    pub user_id: Option<String>,
    /// The address the link was sent to (the one it verifies).
    pub email: Option<String>,
    /// A pending sign-up: its username and password hash (JSON).
    #[sea_orm(column_type = "Text", nullable)]
    pub payload: Option<String>,
    pub created_ms: i64,
    pub expires_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
