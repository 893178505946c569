//! The client aggregate: a registration row and its roles, parsed once into
//! types. Every reader — `/authorize`, the token endpoint, logout, the admin
//! services, the client cache — gets a [`Client`] from here or an error
//! naming the field that does not parse; none of them decodes a JSON column
//! itself, so none can quietly read damaged data as "empty" (an access policy
//! read as "none" admits everyone).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::entities::{client, client_role};
use crate::domain::SigningAlg;
use crate::domain::access_policy::AccessPolicy;

/// A registered client, as the rest of the server sees it.
#[derive(Clone)]
pub struct Client {
    pub client_id: String,
    pub name: Option<String>,
    pub public: bool,
    /// Keyed hash of the client secret (see `crypto::SecretHasher`).
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub first_party: bool,
    pub pkce_required: bool,
    pub id_token_alg: SigningAlg,
    pub require_mfa: bool,
    pub backchannel_logout_uri: Option<String>,
    /// The client's JWK Set (a JSON object) for `private_key_jwt` and request objects.
    pub jwks: Option<String>,
    /// `None` when the client has no policy or an empty one (both admit everyone).
    pub access_policy: Option<AccessPolicy>,
    /// Resource indicators (RFC 8707) the client may ask tokens for.
    pub resources: Vec<String>,
    pub refresh_grace_secs: Option<i32>,
    /// The roles the client acts with (client_credentials), sorted.
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The declarative file that manages it, if any.
    pub managed_by: Option<String>,
    /// The security profile the client is held to.
    pub profile: Option<ClientProfile>,
    /// `--dpop`: access tokens only sender-constrained (RFC 9449).
    pub dpop_bound: bool,
    /// `--require-par`: authorization requests only pushed (RFC 9126).
    pub require_par: bool,
    /// When it registered itself (RFC 7591); `None` for an operator's client.
    pub registered_ms: Option<i64>,
    /// Keyed hash of its registration access token (RFC 7592).
    pub registration_token_hash: Option<String>,
}

/// A security profile a client is held to as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientProfile {
    /// FAPI 2.0 Security Profile: PAR, PKCE S256, `private_key_jwt`, DPoP,
    /// short codes, ES256/EdDSA signatures, `response_mode=query` only.
    Fapi2,
}

impl ClientProfile {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fapi2" => Some(Self::Fapi2),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fapi2 => "fapi2",
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A damaged registration: the client is unusable until an operator sets
/// the field anew.
pub use super::{Damaged, LoadError};

fn list(client_id: &str, field: &'static str, text: &str) -> Result<Vec<String>, Damaged> {
    serde_json::from_str::<Vec<String>>(text).map_err(|e| Damaged {
        record: "client",
        id: client_id.to_owned(),
        field,
        reason: e.to_string(),
    })
}

impl Client {
    /// Parses a row and its roles; the first field that does not parse is the error.
    pub fn parse(row: client::Model, mut roles: Vec<String>) -> Result<Self, Damaged> {
        let id = row.client_id.as_str();
        let damaged =
            |field: &'static str, reason: String| Damaged { record: "client", id: id.to_owned(), field, reason };
        let access_policy = match row.access_policy.as_deref() {
            None => None,
            Some(text) => {
                let p = AccessPolicy::parse_json(text).map_err(|e| damaged("access_policy", e.reason))?;
                (!p.is_empty()).then_some(p)
            }
        };
        if let Some(j) = row.jwks.as_deref()
            && !serde_json::from_str::<serde_json::Value>(j).is_ok_and(|v| v.is_object())
        {
            return Err(damaged("jwks", "not a JSON object".into()));
        }
        let profile = match row.profile.as_deref() {
            None => None,
            Some(p) => Some(ClientProfile::parse(p).ok_or_else(|| damaged("profile", format!("{p:?} is not fapi2")))?),
        };
        let id_token_alg = SigningAlg::parse(&row.id_token_alg).map_err(|e| damaged("id_token_alg", e.reason))?;
        roles.sort();
        Ok(Self {
            redirect_uris: list(id, "redirect_uris", &row.redirect_uris)?,
            post_logout_redirect_uris: list(id, "post_logout_redirect_uris", &row.post_logout_redirect_uris)?,
            grant_types: list(id, "grant_types", &row.grant_types)?,
            scopes: list(id, "scopes", &row.scopes)?,
            resources: match row.resources.as_deref() {
                None => Vec::new(),
                Some(t) => list(id, "resources", t)?,
            },
            access_policy,
            id_token_alg,
            roles,
            client_id: row.client_id,
            name: row.name,
            public: row.public,
            secret_hash: row.secret_hash,
            first_party: row.first_party,
            pkce_required: row.pkce_required,
            require_mfa: row.require_mfa,
            backchannel_logout_uri: row.backchannel_logout_uri,
            jwks: row.jwks,
            refresh_grace_secs: row.refresh_grace_secs,
            created_at: row.created_at,
            updated_at: row.updated_at,
            managed_by: row.managed_by,
            profile,
            dpop_bound: row.dpop_bound,
            require_par: row.require_par,
            registered_ms: row.registered_ms,
            registration_token_hash: row.registration_token_hash,
        })
    }

    /// Held to the FAPI 2.0 Security Profile.
    pub fn fapi2(&self) -> bool {
        self.profile == Some(ClientProfile::Fapi2)
    }

    /// Whether its authorization requests must be pushed (RFC 9126 §6):
    /// registered so, by its profile, or server-wide (`everyone`).
    pub fn requires_par(&self, everyone: bool) -> bool {
        everyone || self.require_par || self.fapi2()
    }

    /// Whether a signature by the client (client assertion, request object,
    /// DPoP proof) may use `alg`: FAPI 2.0 §5.4.1 allows PS256, ES256 and
    /// EdDSA only; other clients whatever the endpoint itself accepts.
    pub fn may_sign_with(&self, alg: &str) -> bool {
        !self.fapi2() || matches!(alg, "PS256" | "ES256" | "EdDSA")
    }

    /// Whether its access tokens must be DPoP-bound (RFC 9449 §5.2
    /// `dpop_bound_access_tokens`).
    pub fn requires_dpop(&self) -> bool {
        self.dpop_bound || self.fapi2()
    }

    pub fn has_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }

    /// Whether the client registered `resource` (RFC 8707 `invalid_target` otherwise).
    pub fn may_request(&self, resource: &str) -> bool {
        self.resources.iter().any(|r| r == resource)
    }

    /// The name shown to people: the registered name, else the id.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.client_id)
    }
}

/// Deletes a client: its roles, its row, and its refresh-token families end
/// (revoked: a late refresh is recognised as such). The one way a client is
/// deleted — an operator's removal, `apply --prune`, a registered client
/// deleting itself or expiring unused. Returns the families revoked.
pub async fn delete<C: ConnectionTrait>(conn: &C, client_id: &str, now_ms: i64) -> Result<u64, DbErr> {
    use super::entities::refresh_family;
    client_role::Entity::delete_many().filter(client_role::Column::ClientId.eq(client_id)).exec(conn).await?;
    client::Entity::delete_by_id(client_id).exec(conn).await?;
    let revoked = refresh_family::Entity::update_many()
        .col_expr(refresh_family::Column::RevokedMs, sea_orm::sea_query::Expr::val(now_ms))
        .filter(refresh_family::Column::ClientId.eq(client_id))
        .filter(refresh_family::Column::RevokedMs.is_null())
        .exec(conn)
        .await?;
    Ok(revoked.rows_affected)
}

/// Marks a self-registered client used (a user authorized it), so it does
/// not expire; nothing — not even a statement — for an operator's client.
pub async fn touch<C: ConnectionTrait>(conn: &C, c: &Client, now_ms: i64) -> Result<(), DbErr> {
    // (Self-registered clients have a registration token; metadata-document
    // clients, which have no row, do not.)
    if c.registration_token_hash.is_some() {
        client::Entity::update_many()
            .col_expr(client::Column::LastUsedMs, sea_orm::sea_query::Expr::val(now_ms))
            .filter(client::Column::ClientId.eq(c.client_id.as_str()))
            .exec(conn)
            .await?;
    }
    Ok(())
}

/// The raw row (for the one writer that must see it: an update that repairs a
/// damaged field) and its roles.
pub async fn row<C: ConnectionTrait>(conn: &C, client_id: &str) -> Result<Option<(client::Model, Vec<String>)>, DbErr> {
    let Some(row) = client::Entity::find_by_id(client_id).one(conn).await? else {
        return Ok(None);
    };
    let roles = client_role::Entity::find()
        .filter(client_role::Column::ClientId.eq(client_id))
        .order_by_asc(client_role::Column::RoleName)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| r.role_name)
        .collect();
    Ok(Some((row, roles)))
}

/// The client `client_id`, parsed; `None` when there is none.
pub async fn find<C: ConnectionTrait>(conn: &C, client_id: &str) -> Result<Option<Client>, LoadError> {
    match row(conn, client_id).await? {
        None => Ok(None),
        Some((row, roles)) => Ok(Some(Client::parse(row, roles)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(policy: Option<&str>, uris: &str) -> client::Model {
        let now = Utc::now();
        client::Model {
            client_id: "app".into(),
            name: None,
            public: true,
            secret_hash: None,
            redirect_uris: uris.into(),
            post_logout_redirect_uris: "[]".into(),
            grant_types: r#"["authorization_code"]"#.into(),
            scopes: "[]".into(),
            first_party: false,
            pkce_required: true,
            id_token_alg: "RS256".into(),
            require_mfa: false,
            backchannel_logout_uri: None,
            jwks: None,
            access_policy: policy.map(str::to_owned),
            resources: None,
            refresh_grace_secs: None,
            created_at: now,
            updated_at: now,
            managed_by: None,
            profile: None,
            dpop_bound: false,
            require_par: false,
            registered_ms: None,
            registration_token_hash: None,
            last_used_ms: None,
        }
    }

    #[test]
    fn a_policy_that_does_not_parse_is_an_error_not_no_policy() {
        let e = Client::parse(row(Some(r#"{"roles_any": "oops"}"#), "[]"), vec![]).unwrap_err();
        assert_eq!(e.field, "access_policy");
        assert!(Client::parse(row(Some("{}"), "[]"), vec![]).unwrap().access_policy.is_none());
    }

    #[test]
    fn a_list_column_that_does_not_parse_is_an_error_not_empty() {
        let e = Client::parse(row(None, "not json"), vec![]).unwrap_err();
        assert_eq!(e.field, "redirect_uris");
    }
}
