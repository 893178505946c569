//! sea-orm entities, one per table of the migration set.

pub mod audit_event;
pub mod client;
pub mod client_role;
pub mod password_credential;
pub mod role;
pub mod signing_key;
pub mod user;
pub mod user_attribute;
pub mod user_role;
