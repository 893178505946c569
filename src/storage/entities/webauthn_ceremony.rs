use sea_orm::entity::prelude::*;

/// A WebAuthn ceremony in flight: keyed by a hash of the handle the browser
/// holds, for one `kind`, optionally for one user and bound to one login
/// challenge or session (`binding`, a hash). `state` is webauthn-rs's state.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webauthn_ceremonies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: String,
    pub kind: String,
    pub user_id: Option<String>,
    pub binding: Option<String>,
    pub state: String,
    pub expires_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
