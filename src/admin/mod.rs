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
