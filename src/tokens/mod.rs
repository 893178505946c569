//! Tokens: signing-key generation and rotation, and JWS issue and
//! verification of our own tokens (the key ring itself is `state::keyring`).

pub mod jwt;
pub use crate::state::keyring;
pub mod keys;
