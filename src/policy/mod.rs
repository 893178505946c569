//! Who may do what, decided in one place.
//!
//! Administrative permissions are bundled into roles; the built-in `admin`
//! role holds them all. A handler gets a [`Capability`] for a permission from
//! [`Principal::authorize`] and passes it to the service: a write operation
//! cannot be reached without having been authorised (the lldap pattern).

use std::marker::PhantomData;

pub use crate::domain::access_policy as access;

/// The built-in role that holds every permission.
pub const ADMIN_ROLE: &str = "admin";

/// The administrative permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    UsersRead,
    UsersWrite,
    UsersCredentials,
    ClientsRead,
    ClientsWrite,
    RolesWrite,
    KeysRotate,
    AuditRead,
    SessionsRevoke,
}

impl Permission {
    pub const ALL: [Permission; 9] = [
        Self::UsersRead,
        Self::UsersWrite,
        Self::UsersCredentials,
        Self::ClientsRead,
        Self::ClientsWrite,
        Self::RolesWrite,
        Self::KeysRotate,
        Self::AuditRead,
        Self::SessionsRevoke,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsersRead => "users:read",
            Self::UsersWrite => "users:write",
            Self::UsersCredentials => "users:credentials",
            Self::ClientsRead => "clients:read",
            Self::ClientsWrite => "clients:write",
            Self::RolesWrite => "roles:write",
            Self::KeysRotate => "keys:rotate",
            Self::AuditRead => "audit:read",
            Self::SessionsRevoke => "sessions:revoke",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// The permissions a set of roles grants. `admin` grants all; a role named
/// after a permission (e.g. `users:read`) grants that one, so operators can
/// build least-privilege roles with `portcullis role add users:read`.
pub fn permissions_of(roles: &[String]) -> Vec<Permission> {
    if roles.iter().any(|r| r == ADMIN_ROLE) {
        return Permission::ALL.to_vec();
    }
    roles.iter().filter_map(|r| Permission::parse(r)).collect()
}

/// The one second-factor rule for administration, shared by the admin pages
/// (the session's `amr`) and the admin API (the token's `amr`): a user acts
/// as an administrator only after a second factor.
pub fn has_second_factor(amr: &[String]) -> bool {
    Assurance::of(amr) >= Assurance::MultiFactor
}

/// How strong a sign-in was, ordered: the `acr` values "1" (password),
/// "2" (password and a second factor) and "phr" (a passkey: phishing-resistant,
/// OpenID EAP ACR values). Read from the sign-in's `amr` alone, so a session,
/// a refresh and an access token all agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Assurance {
    Password,
    MultiFactor,
    PhishingResistant,
}

impl Assurance {
    pub fn of(amr: &[String]) -> Self {
        use crate::session::{AMR_HWK, AMR_MFA, AMR_OTP, AMR_SWK};
        if amr.iter().any(|a| a == AMR_HWK || a == AMR_SWK) {
            Self::PhishingResistant
        } else if amr.iter().any(|a| a == AMR_OTP || a == AMR_MFA) {
            // `mfa` alone: an upstream provider's second factor, trusted.
            Self::MultiFactor
        } else {
            Self::Password
        }
    }

    pub fn acr(self) -> &'static str {
        match self {
            Self::Password => "1",
            Self::MultiFactor => "2",
            Self::PhishingResistant => "phr",
        }
    }

    pub fn from_acr(acr: &str) -> Option<Self> {
        match acr {
            "1" => Some(Self::Password),
            "2" => Some(Self::MultiFactor),
            "phr" => Some(Self::PhishingResistant),
            _ => None,
        }
    }

    /// The strength an access policy's `mfa` rule speaks of.
    pub fn as_rule(self) -> crate::domain::access_policy::MfaRule {
        use crate::domain::access_policy::MfaRule;
        match self {
            Self::Password => MfaRule::Off,
            Self::MultiFactor => MfaRule::Any,
            Self::PhishingResistant => MfaRule::PhishingResistant,
        }
    }

    /// The strength an access policy's `mfa` rule asks for.
    pub fn of_rule(rule: crate::domain::access_policy::MfaRule) -> Self {
        use crate::domain::access_policy::MfaRule;
        match rule {
            MfaRule::Off => Self::Password,
            MfaRule::Any => Self::MultiFactor,
            MfaRule::PhishingResistant => Self::PhishingResistant,
        }
    }
}

/// Who is calling: a user (through an access token issued to some client) or
/// a service client acting for itself.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub is_client: bool,
    pub permissions: Vec<Permission>,
    /// The roles held (a user's, or a service client's own).
    pub roles: Vec<String>,
    /// When the user behind the call last authenticated (Unix seconds), if
    /// known: credential changes ask for a recent one.
    pub auth_time: Option<i64>,
}

/// Proof that the principal holds permission `P`'s value; only
/// [`Principal::authorize`] makes one.
#[derive(Debug)]
pub struct Capability<'a> {
    pub principal: &'a Principal,
    pub permission: Permission,
    _sealed: PhantomData<()>,
}

#[derive(Debug, thiserror::Error)]
#[error("missing permission {0}")]
pub struct Denied(pub &'static str);

impl Principal {
    pub fn authorize(&self, p: Permission) -> Result<Capability<'_>, Denied> {
        if self.permissions.contains(&p) {
            Ok(Capability { principal: self, permission: p, _sealed: PhantomData })
        } else {
            Err(Denied(p.as_str()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_holds_everything_and_permission_roles_hold_themselves() {
        assert_eq!(permissions_of(&["admin".into()]).len(), Permission::ALL.len());
        assert_eq!(permissions_of(&["users:read".into(), "billing".into()]), vec![Permission::UsersRead]);
        assert!(permissions_of(&["billing".into()]).is_empty());
        let p = Principal {
            subject: "x".into(),
            is_client: false,
            permissions: vec![Permission::UsersRead],
            roles: vec!["users:read".into()],
            auth_time: None,
        };
        assert!(p.authorize(Permission::UsersRead).is_ok());
        assert!(p.authorize(Permission::UsersWrite).is_err());
    }
}
