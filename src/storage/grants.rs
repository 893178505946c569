//! The grant aggregates: a refresh-token family with the token presented,
//! and the sign-in an authorization code or a device approval carries into
//! the tokens it issues. Their text columns (scope, `amr`, the `claims`
//! request) are parsed here, once; a stored value that does not parse is a
//! [`Damaged`] error for every reader — the token endpoint refuses the
//! grant, introspection calls it inactive — never a shorter `amr` or a
//! forgotten `claims` request (which would issue tokens from a sign-in the
//! grant never recorded).
//!
//! The `claims` request's type belongs to the OAuth layer above, so the
//! readers name it (`C`); this layer only knows it is JSON.

use sea_orm::{ConnectionTrait, EntityTrait};
use serde::de::DeserializeOwned;

use super::entities::{refresh_family, refresh_token};

/// A damaged grant: unusable; the client starts a new authorization.
pub use super::{Damaged, LoadError};

/// The sign-in behind a grant, as the tokens it issues state it.
#[derive(Debug, Clone)]
pub struct SignIn<C> {
    /// Seconds since the epoch.
    pub auth_time: i64,
    /// RFC 8176 method names.
    pub amr: Vec<String>,
    pub acr: Option<String>,
    /// The `claims` request parameter of the authorization, if any.
    pub claims: Option<C>,
}

impl<C: DeserializeOwned> SignIn<C> {
    /// Parses the stored columns of a `record` ("refresh token", …) `id`.
    pub fn parse(
        record: &'static str,
        id: &str,
        auth_time: i64,
        amr: &str,
        acr: Option<&str>,
        claims: Option<&str>,
    ) -> Result<Self, Damaged> {
        let damaged = |field, e: serde_json::Error| Damaged { record, id: id.to_owned(), field, reason: e.to_string() };
        Ok(Self {
            auth_time,
            amr: serde_json::from_str(amr).map_err(|e| damaged("amr", e))?,
            acr: acr.map(str::to_owned),
            claims: claims.map(serde_json::from_str).transpose().map_err(|e| damaged("claims", e))?,
        })
    }
}

/// The stored form of an `amr` ([`SignIn::parse`] reads it back).
pub fn amr_text(amr: &[String]) -> String {
    serde_json::Value::from(amr.to_vec()).to_string()
}

/// A stored scope: space-separated scope tokens (RFC 6749 §3.3).
pub fn parse_scope(record: &'static str, id: &str, text: &str) -> Result<Vec<String>, Damaged> {
    crate::domain::Scope::split(text).map_err(|e| Damaged {
        record,
        id: id.to_owned(),
        field: "scope",
        reason: e.reason,
    })
}

/// A refresh-token family (every token rotated from one grant): its row
/// has nothing to parse, so it is the entity itself.
pub type RefreshFamily = refresh_family::Model;

/// One refresh token of a family.
#[derive(Debug, Clone)]
pub struct RefreshToken<C> {
    /// Keyed hash of the token.
    pub token_hash: String,
    /// The scope of the grant (a refresh may narrow what it asks of it).
    pub scope: Vec<String>,
    pub resource: Option<String>,
    pub sign_in: SignIn<C>,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// When it was rotated out, if it was.
    pub rotated_ms: Option<i64>,
}

/// A presented refresh token and its family.
#[derive(Debug, Clone)]
pub struct Refresh<C> {
    pub family: RefreshFamily,
    pub token: RefreshToken<C>,
}

impl<C: DeserializeOwned> Refresh<C> {
    pub fn parse(t: refresh_token::Model, f: refresh_family::Model) -> Result<Self, Damaged> {
        const RECORD: &str = "refresh token";
        Ok(Self {
            token: RefreshToken {
                scope: parse_scope(RECORD, &f.id, &t.scope)?,
                sign_in: SignIn::parse(RECORD, &f.id, t.auth_time, &t.amr, t.acr.as_deref(), t.claims.as_deref())?,
                token_hash: t.token_hash,
                resource: t.resource,
                created_ms: t.created_ms,
                expires_ms: t.expires_ms,
                rotated_ms: t.rotated_ms,
            },
            family: f,
        })
    }
}

/// The refresh token whose keyed hash is `token_hash`, with its family.
pub async fn refresh<C: DeserializeOwned, Conn: ConnectionTrait>(
    conn: &Conn,
    token_hash: &str,
) -> Result<Option<Refresh<C>>, LoadError> {
    let Some(t) = refresh_token::Entity::find_by_id(token_hash).one(conn).await? else {
        return Ok(None);
    };
    let Some(f) = refresh_family::Entity::find_by_id(t.family_id.as_str()).one(conn).await? else {
        return Ok(None);
    };
    Ok(Some(Refresh::parse(t, f)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_sign_in_that_does_not_parse_names_its_field() {
        let ok =
            SignIn::<serde_json::Value>::parse("refresh token", "f", 1, r#"["pwd","otp"]"#, None, Some("{}")).unwrap();
        assert_eq!(ok.amr, ["pwd", "otp"]);
        let amr = SignIn::<serde_json::Value>::parse("refresh token", "f", 1, "pwd,otp", None, None).unwrap_err();
        assert_eq!(amr.field, "amr");
        let claims = SignIn::<serde_json::Value>::parse("refresh token", "f", 1, "[]", None, Some("{")).unwrap_err();
        assert_eq!(claims.field, "claims");
        assert_eq!(parse_scope("code", "g", "openid  email openid").unwrap(), ["openid", "email"]);
        assert_eq!(parse_scope("code", "g", "openid \"x").unwrap_err().field, "scope");
    }
}
