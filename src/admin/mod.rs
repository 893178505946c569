//! Administration: the one service layer behind the CLI (and the admin API and
//! pages in later issues). There is one way to create a user.

pub mod api;
pub mod clients;
pub mod error;
pub mod roles;
pub mod users;

pub use error::AdminError;

/// Who performs an administrative action, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    /// The operator at the command line.
    pub fn cli() -> Self {
        let who = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
        Self { name: format!("cli:{who}"), ip: None, user_agent: None }
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
