//! Administration: the one service layer behind the CLI (and the admin API and
//! pages in later issues). There is one way to create a user.

pub mod api;
pub mod clients;
pub mod error;
pub mod roles;
pub mod users;

pub use error::AdminError;

use crate::policy::{Permission, Principal};

/// Who performs an administrative action: their name for the audit log, and
/// the permissions they hold. Every write operation of this module starts by
/// asking the actor for its permission (`Actor::require`), so no caller — API
/// handler, admin page, CLI — can reach a write without the check; the only
/// ways to make an actor are the constructors below.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    permissions: Vec<Permission>,
}

impl Actor {
    /// The operator at the command line: they hold the database and the
    /// master key already, so every permission.
    pub fn cli() -> Self {
        let who = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
        Self { name: format!("cli:{who}"), ip: None, user_agent: None, permissions: Permission::ALL.to_vec() }
    }

    /// Portcullis itself (scheduled key rotation): only what the job needs.
    pub fn system(job: &str, permission: Permission) -> Self {
        Self { name: format!("system:{job}"), ip: None, user_agent: None, permissions: vec![permission] }
    }

    /// An authenticated principal (API caller or admin-page user), with the
    /// permissions its roles grant now.
    pub fn for_principal(p: &Principal, ip: Option<String>, user_agent: Option<String>) -> Self {
        let kind = if p.is_client { "client" } else { "user" };
        Self { name: format!("{kind}:{}", p.subject), ip, user_agent, permissions: p.permissions.clone() }
    }

    /// The capability for `permission`, or `Forbidden`.
    pub fn require(&self, permission: Permission) -> Result<(), AdminError> {
        if self.permissions.contains(&permission) { Ok(()) } else { Err(AdminError::Forbidden(permission.as_str())) }
    }
}

/// The fields that differ between two views of a record, as
/// `{field: {"from": old, "to": new}}` for the audit log. Views never hold
/// secrets, so neither does this; timestamps of the change itself are left out.
pub fn changes<T: serde::Serialize>(before: &T, after: &T) -> serde_json::Value {
    let (Ok(serde_json::Value::Object(b)), Ok(serde_json::Value::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return serde_json::Value::Null;
    };
    let mut out = serde_json::Map::new();
    for (k, new) in &a {
        if k == "updated_at" {
            continue;
        }
        let old = b.get(k).unwrap_or(&serde_json::Value::Null);
        if old != new {
            out.insert(k.clone(), serde_json::json!({ "from": old, "to": new }));
        }
    }
    serde_json::Value::Object(out)
}
