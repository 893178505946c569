use sea_orm::entity::prelude::*;

/// A device authorization request (RFC 8628 §3.1).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "device_codes")]
pub struct Model {
    /// Keyed hash of the device code (the device's secret).
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_hash: String,
    /// The user code, normalised (8 letters of `BCDFGHJKLMNPQRSTVWXZ`).
    #[sea_orm(unique)]
    pub user_code: String,
    pub client_id: String,
    #[sea_orm(column_type = "Text")]
    pub scope: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub resource: Option<String>,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// The polling interval the device must keep (grows with `slow_down`).
    pub interval_secs: i32,
    pub last_poll_ms: Option<i64>,
    /// `pending`, `approved`, `denied` or `redeemed`.
    pub status: String,
    pub user_id: Option<String>,
    pub auth_time: Option<i64>,
    /// JSON array of the approving sign-in's methods.
    #[sea_orm(column_type = "Text", nullable)]
    pub amr: Option<String>,
    pub acr: Option<String>,
    /// Where the device asked from (shown to the person approving).
    pub origin_ip: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub origin_agent: Option<String>,
    pub decided_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
