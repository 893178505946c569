use sea_orm::entity::prelude::*;

/// A registered passkey. `credential` is webauthn-rs's `Passkey` as JSON
/// (public key, counter, flags; nothing secret). `hardware`: not backup
/// eligible, so the key cannot leave its device (RFC 8176 `hwk`, else `swk`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub credential_id: String,
    pub user_id: String,
    pub name: String,
    pub credential: String,
    pub hardware: bool,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
