use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "totp_enrolments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    pub enrolment_id: String,
    /// Sealed seed (context `totp-enrol:<user id>:<enrolment id>`).
    pub secret: Vec<u8>,
    pub created_ms: i64,
    /// The login challenge or session that started it (`challenge:<hash>` /
    /// `session:<id>`): only that one may see or confirm it.
    pub binding: Option<String>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
