//! Authentication: password hashing and policy (and, in later issues, TOTP,
//! recovery codes, throttling and the login state machine).

pub mod login;
pub mod mfa;
pub mod password;
pub mod second_factor;
pub mod throttle;

pub use password::{PasswordError, PasswordHasher, PasswordPolicy};
