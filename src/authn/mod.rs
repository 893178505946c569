//! Authentication: password hashing and policy (and, in later issues, TOTP,
//! recovery codes, throttling and the login state machine).

pub mod login;
pub mod mfa;
pub mod second_factor;
pub mod throttle;

pub use crate::crypto::password::{self, PasswordError, PasswordHasher, PasswordPolicy};
