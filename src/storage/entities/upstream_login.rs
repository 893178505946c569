use sea_orm::entity::prelude::*;

/// A sign-in sent to an upstream provider and not yet back: found by the
/// keyed hash of its `state`, used once.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "upstream_logins")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub state_hash: String,
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Where the login continues (an authorization request's resume path).
    pub return_to: Option<String>,
    /// Set when a signed-in person links this provider to their account.
    pub link_user_id: Option<String>,
    /// The session that asked for the link: only it may finish it.
    pub link_session: Option<String>,
    /// The keyed hash of the cookie that binds the sign-in to its browser.
    pub browser_hash: String,
    pub expires_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
