//! Administration: the one service layer behind the CLI, the admin API and
//! the admin pages. There is one way to create a user, one way to change a
//! password, and every service is called through an `Actor`.

pub mod clients;
pub mod error;
pub mod keys;
pub mod master_key;
pub mod password;
pub mod roles;
pub mod users;

pub use error::AdminError;

use crate::policy::{Permission, Principal, permissions_of};

/// Who performs an administrative action: their name for the audit log, the
/// permissions they hold, and the roles they hold. Every operation of this
/// module starts by asking the actor for its permission (`Actor::require`),
/// and every operation on a user or a client also asks whether the actor
/// dominates its target (`Actor::may_act_on_user`, `Actor::may_control_client`,
/// `Actor::may_hand_out`), so no caller — API handler, admin page, CLI — can
/// reach a change without both checks. The invariant: **no actor gains a
/// permission it lacks**, neither directly (granting a role) nor through a
/// target (taking over a user or a client that holds more). The only ways to
/// make an actor are the constructors below.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    permissions: Vec<Permission>,
    /// `None`: the operator at the command line, who holds everything.
    roles: Option<Vec<String>>,
}

impl Actor {
    /// The operator at the command line: they hold the database and the
    /// master key already, so every permission.
    pub fn cli() -> Self {
        let who = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
        Self {
            name: format!("cli:{who}"),
            ip: None,
            user_agent: None,
            permissions: Permission::ALL.to_vec(),
            roles: None,
        }
    }

    /// Portcullis itself (scheduled key rotation): only what the job needs.
    pub fn system(job: &str, permission: Permission) -> Self {
        Self {
            name: format!("system:{job}"),
            ip: None,
            user_agent: None,
            permissions: vec![permission],
            roles: Some(Vec::new()),
        }
    }

    /// An authenticated principal (API caller or admin-page user), with the
    /// permissions and roles it holds now.
    pub fn for_principal(p: &Principal, ip: Option<String>, user_agent: Option<String>) -> Self {
        let kind = if p.is_client { "client" } else { "user" };
        Self {
            name: format!("{kind}:{}", p.subject),
            ip,
            user_agent,
            permissions: p.permissions.clone(),
            roles: Some(p.roles.clone()),
        }
    }

    /// The capability for `permission`, or `Forbidden`.
    pub fn require(&self, permission: Permission) -> Result<(), AdminError> {
        if self.permissions.contains(&permission) { Ok(()) } else { Err(AdminError::Forbidden(permission.as_str())) }
    }

    fn holds_all(&self, perms: &[Permission]) -> bool {
        perms.iter().all(|p| self.permissions.contains(p))
    }

    /// No escalation through the target: an actor may change a user only if
    /// every permission the user's roles grant is one the actor holds (an
    /// actor with `users:credentials` cannot reset an administrator and log
    /// in as them).
    /// Removing second factors is for someone else's account: one's own go
    /// through the account page, which asks for a recent sign-in as strong
    /// as them (an admin permission must not be a way around that).
    pub fn may_remove_factors_of(&self, user_id: &str) -> Result<(), AdminError> {
        if self.name.strip_prefix("user:") == Some(user_id) {
            return Err(AdminError::ForbiddenTarget(
                "your own second factors are changed on your account page, not through administration".into(),
            ));
        }
        Ok(())
    }

    pub fn may_act_on_user(&self, target_roles: &[String]) -> Result<(), AdminError> {
        if self.holds_all(&permissions_of(target_roles)) {
            Ok(())
        } else {
            Err(AdminError::ForbiddenTarget("the user holds permissions you do not hold".into()))
        }
    }

    /// Handing out roles (to a user or a client) gives away what they grant:
    /// only permissions the actor holds itself.
    pub fn may_hand_out<R: AsRef<str>>(&self, roles: &[R]) -> Result<(), AdminError> {
        let roles: Vec<String> = roles.iter().map(|r| r.as_ref().to_owned()).collect();
        if self.holds_all(&permissions_of(&roles)) {
            Ok(())
        } else {
            Err(AdminError::ForbiddenTarget("a role grants permissions you do not hold".into()))
        }
    }

    /// Control of a client — its secret, keys, redirect URIs, grants,
    /// resources, or deleting it — is control of what it acts with: the
    /// actor must hold every role the client holds (or be able to grant it to
    /// itself: `roles:write` and the role's permissions), and a client that
    /// may ask for admin-API tokens (`admin_audience`) needs every permission.
    pub fn may_control_client<R: AsRef<str>>(
        &self,
        client_roles: &[R],
        admin_audience: bool,
    ) -> Result<(), AdminError> {
        let covered = |r: &str| {
            self.roles.as_ref().is_none_or(|mine| mine.iter().any(|m| m == r))
                || (self.permissions.contains(&Permission::RolesWrite)
                    && self.holds_all(&permissions_of(&[r.to_owned()])))
        };
        if !client_roles.iter().all(|r| covered(r.as_ref())) {
            return Err(AdminError::ForbiddenTarget("the client holds a role you do not hold".into()));
        }
        if admin_audience && !self.holds_all(&Permission::ALL) {
            return Err(AdminError::ForbiddenTarget(
                "the client may request admin-API tokens: only a full administrator may change it".into(),
            ));
        }
        Ok(())
    }
}

/// The audit events `filter` selects, newest first: the one way the admin
/// surfaces read the audit log, so none of them can skip `audit:read`.
pub fn audit_events(
    actor: &Actor,
    filter: &crate::storage::audit::Filter,
) -> Result<sea_orm::Select<crate::storage::entities::audit_event::Entity>, AdminError> {
    actor.require(Permission::AuditRead)?;
    Ok(filter.select())
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
