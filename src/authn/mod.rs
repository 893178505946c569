//! Authentication: throttling, the login state machine, TOTP and recovery
//! codes, and the second-factor gate (password hashing is `crypto::password`).

pub mod login;
pub mod mfa;
pub mod passkey;
pub mod second_factor;
pub mod throttle;

pub use crate::crypto::password::{self, PasswordError, PasswordHasher, PasswordPolicy};
