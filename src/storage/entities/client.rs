use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub client_id: String,
    pub name: Option<String>,
    pub public: bool,
    /// Keyed hash of the client secret (see `crypto::SecretHasher`); never the secret.
    pub secret_hash: Option<String>,
    /// JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub redirect_uris: String,
    #[sea_orm(column_type = "Text")]
    pub post_logout_redirect_uris: String,
    #[sea_orm(column_type = "Text")]
    pub grant_types: String,
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    pub first_party: bool,
    pub pkce_required: bool,
    pub id_token_alg: String,
    pub require_mfa: bool,
    pub backchannel_logout_uri: Option<String>,
    /// The client's public keys (JWK Set) for `private_key_jwt`.
    #[sea_orm(column_type = "Text", nullable)]
    pub jwks: Option<String>,
    /// The client's access policy (JSON, see `policy::access`); none = everyone.
    #[sea_orm(column_type = "Text", nullable)]
    pub access_policy: Option<String>,
    /// JSON array of the resource indicators (RFC 8707) the client may request.
    #[sea_orm(column_type = "Text", nullable)]
    pub resources: Option<String>,
    /// Opt-in grace (seconds, at most 60) during which a rotated-out refresh
    /// token may be redeemed once more; none = strict rotation.
    pub refresh_grace_secs: Option<i32>,
    pub created_at: ChronoDateTimeUtc,
    pub updated_at: ChronoDateTimeUtc,
    /// The declarative file that manages the client (`portcullis apply`):
    /// changes anywhere else are refused.
    pub managed_by: Option<String>,
    /// A security profile the client is held to (`fapi2`), if any.
    pub profile: Option<String>,
    /// Access tokens only sender-constrained with DPoP (RFC 9449).
    pub dpop_bound: bool,
    /// Authorization requests only pushed (RFC 9126).
    pub require_par: bool,
    /// When the client registered itself (RFC 7591); `None`: an operator's.
    pub registered_ms: Option<i64>,
    /// Keyed hash of its registration access token (RFC 7592).
    pub registration_token_hash: Option<String>,
    /// When a user last authorized it (registered clients only: unused ones expire).
    pub last_used_ms: Option<i64>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
