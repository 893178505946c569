//! The user aggregate: an account row parsed once into types. Everything
//! that signs a user in or speaks for one — the login steps, the browser
//! session, the grants, the claims in tokens and UserInfo, the admin views —
//! reads a [`User`] from here or an error naming the field that does not
//! parse; none decodes a column itself, so none can read a damaged profile
//! as "no address" and release the rest as if nothing were wrong.
//!
//! An account's roles and attributes live in tables of their own and are
//! read with [`roles`] and [`attributes`] by the few readers that need them
//! (access policies, admin checks, UserInfo), not on every session lookup.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::entities::{user, user_attribute, user_role};
use crate::domain::Address;

/// An account, as the rest of the server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// A UUID: the stable OIDC `sub`, never the username.
    pub id: String,
    pub username: String,
    /// The username's comparison key (`Username::key`).
    pub username_key: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub phone_number: Option<String>,
    pub address: Option<Address>,
    pub disabled: bool,
    /// The person followed a link sent to `email` (OIDC `email_verified`).
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The declarative file that manages the account's profile and roles.
    pub managed_by: Option<String>,
}

/// A damaged account: nobody signs in as it, and no token speaks for it,
/// until an operator sets the field anew.
pub use super::{Damaged, LoadError};

impl User {
    pub fn parse(row: user::Model) -> Result<Self, Damaged> {
        let damaged = |field, reason: String| Damaged { record: "account", id: row.id.clone(), field, reason };
        let address = match row.address.as_deref() {
            None => None,
            Some(text) => {
                let v = serde_json::from_str(text).map_err(|e| damaged("address", e.to_string()))?;
                let a = Address::from_json(v).and_then(Address::checked).map_err(|e| damaged("address", e.reason))?;
                Some(a.ok_or_else(|| damaged("address", "an address without any member".into()))?)
            }
        };
        Ok(Self {
            id: row.id,
            username: row.username,
            username_key: row.username_key,
            email: row.email,
            display_name: row.display_name,
            phone_number: row.phone_number,
            address,
            disabled: row.disabled,
            email_verified: row.email_verified,
            created_at: row.created_at,
            updated_at: row.updated_at,
            managed_by: row.managed_by,
        })
    }
}

/// The account with this id.
pub async fn by_id<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<User>, LoadError> {
    Ok(user::Entity::find_by_id(id).one(conn).await?.map(User::parse).transpose()?)
}

/// The account with this id, if it is enabled.
pub async fn active<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<User>, LoadError> {
    Ok(by_id(conn, id).await?.filter(|u| !u.disabled))
}

/// The account with this id, if it may sign in or be spoken for: enabled
/// and not damaged. A damaged one is refused like a disabled one (and
/// logged, for the operator) — one rule for every such path.
pub async fn usable<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<User>, DbErr> {
    match active(conn, id).await {
        Ok(u) => Ok(u),
        Err(LoadError::Damaged(d)) => {
            tracing::error!(error = %d, "a damaged account is refused");
            Ok(None)
        }
        Err(LoadError::Db(e)) => Err(e),
    }
}

/// The account whose username has the comparison key `key`.
pub async fn by_key<C: ConnectionTrait>(conn: &C, key: &str) -> Result<Option<User>, LoadError> {
    Ok(user::Entity::find().filter(user::Column::UsernameKey.eq(key)).one(conn).await?.map(User::parse).transpose()?)
}

/// The roles a user holds, sorted by name.
pub async fn roles<C: ConnectionTrait>(conn: &C, user_id: &str) -> Result<Vec<String>, DbErr> {
    Ok(user_role::Entity::find()
        .filter(user_role::Column::UserId.eq(user_id))
        .order_by_asc(user_role::Column::RoleName)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| r.role_name)
        .collect())
}

/// A user's ABAC attributes.
pub async fn attributes<C: ConnectionTrait>(conn: &C, user_id: &str) -> Result<BTreeMap<String, String>, DbErr> {
    Ok(user_attribute::Entity::find()
        .filter(user_attribute::Column::UserId.eq(user_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|a| (a.key, a.value))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(address: Option<&str>) -> user::Model {
        user::Model {
            id: "u1".into(),
            username: "ida".into(),
            username_key: "ida".into(),
            email: None,
            display_name: None,
            phone_number: None,
            address: address.map(str::to_owned),
            disabled: false,
            email_verified: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            managed_by: None,
        }
    }

    #[test]
    fn a_stored_address_that_does_not_parse_names_its_field() {
        let ok = User::parse(row(Some(r#"{"country":"NL"}"#))).unwrap();
        assert_eq!(ok.address.unwrap().country.as_deref(), Some("NL"));
        assert_eq!(User::parse(row(None)).unwrap().address, None);
        for bad in [r#"{"country":"NL""#, r#"["NL"]"#, r#"{"planet":"Mars"}"#, "{}"] {
            let e = User::parse(row(Some(bad))).unwrap_err();
            assert_eq!((e.record, e.field, e.id.as_str()), ("account", "address", "u1"), "{bad}");
        }
    }
}
