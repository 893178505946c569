//! Tokens: the signing key ring (and, with the OAuth issue, JWT issuing,
//! authorization codes and refresh-token families).

pub mod jwt;
pub use crate::state::keyring;
pub mod keys;
