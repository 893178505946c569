//! sea-orm entities, one per table of the migration set.

pub mod audit_event;
pub mod authorization_code;
pub mod authorization_request;
pub mod client;
pub mod client_role;
pub mod consent;
pub mod ip_throttle;
pub mod login_challenge;
pub mod login_throttle;
pub mod password_credential;
pub mod recovery_code;
pub mod refresh_family;
pub mod refresh_token;
pub mod revoked_token;
pub mod role;
pub mod session;
pub mod session_client;
pub mod signing_key;
pub mod totp_credential;
pub mod totp_enrolment;
pub mod trusted_device;
pub mod user;
pub mod user_attribute;
pub mod user_role;
