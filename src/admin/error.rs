use sea_orm::DbErr;

use crate::authn::PasswordError;
use crate::crypto::CryptoError;
use crate::domain::ParseError;

/// Why an administrative action was refused. The messages are for operators.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(#[from] ParseError),
    #[error("{what} {name:?} does not exist")]
    NotFound { what: &'static str, name: String },
    #[error("{what} {name:?} already exists")]
    Exists { what: &'static str, name: String },
    #[error("{0}")]
    Refused(String),
    #[error("missing permission {0}")]
    Forbidden(&'static str),
    /// The actor holds the permission, but the target holds more than the
    /// actor (no escalation through the target).
    #[error("forbidden: {0}")]
    ForbiddenTarget(String),
    #[error("{0}")]
    Password(#[from] PasswordError),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// A stored value that does not parse (named), never read as "empty".
    #[error(transparent)]
    Damaged(#[from] crate::storage::Damaged),
    #[error("cryptographic failure")]
    Crypto(#[from] CryptoError),
}

impl From<crate::tokens::keys::KeyError> for AdminError {
    fn from(e: crate::tokens::keys::KeyError) -> Self {
        match e {
            crate::tokens::keys::KeyError::Db(e) => Self::Db(e),
            crate::tokens::keys::KeyError::Crypto(e) => Self::Crypto(e),
        }
    }
}

impl From<crate::storage::LoadError> for AdminError {
    fn from(e: crate::storage::LoadError) -> Self {
        match e {
            crate::storage::LoadError::Db(e) => Self::Db(e),
            crate::storage::LoadError::Damaged(d) => Self::Damaged(d),
        }
    }
}

impl From<super::password::ChangeError> for AdminError {
    fn from(e: super::password::ChangeError) -> Self {
        match e {
            super::password::ChangeError::Password(e) => Self::Password(e),
            super::password::ChangeError::Db(e) => Self::Db(e),
            super::password::ChangeError::Refused(e) => *e,
            e @ super::password::ChangeError::LinkUsed => Self::Refused(e.to_string()),
        }
    }
}

impl AdminError {
    pub fn not_found(what: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound { what, name: name.into() }
    }
    pub fn exists(what: &'static str, name: impl Into<String>) -> Self {
        Self::Exists { what, name: name.into() }
    }
}
