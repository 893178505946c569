//! Cryptographic building blocks, all on aws-lc-rs:
//! - [`MasterKey`]: AES-256-GCM envelope encryption of secrets at rest (TOTP seeds,
//!   private signing keys), with the owning row's id as associated data so a
//!   ciphertext cannot be moved to another row;
//! - [`random_token`]: unguessable tokens from the OS RNG;
//! - [`SecretHasher`]: a keyed hash (HMAC-SHA-256) for high-entropy secrets (client
//!   secrets, session ids, refresh tokens) — fast, so the token endpoint stays
//!   fast, and useless to an attacker holding only a database dump;
//! - [`constant_time_eq`].

pub mod master_key;
pub mod password;

pub use master_key::{MasterKey, MasterKeyError};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the operating system random number generator failed")]
    Rng,
    #[error("decryption failed: wrong master key or tampered data")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("malformed ciphertext envelope")]
    Envelope,
}

/// Fills `n` bytes from the OS CSPRNG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, CryptoError> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| CryptoError::Rng)?;
    Ok(buf)
}

/// A random token of `bytes` bytes of entropy, base64url without padding.
pub fn random_token(bytes: usize) -> Result<String, CryptoError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes(bytes)?))
}

/// SHA-256 of `data`, lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Keyed hashing of high-entropy secrets. The key is derived from the master key
/// for one purpose, so a hash of one kind can never verify as another kind.
#[derive(Clone)]
pub struct SecretHasher {
    key: hmac::Key,
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHasher(..)")
    }
}

const HASH_PREFIX: &str = "hmac-sha256$";

impl SecretHasher {
    pub(crate) fn new(key_bytes: &[u8]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, key_bytes) }
    }

    /// `hmac-sha256$<base64url>`: the stored form of a secret.
    pub fn hash(&self, secret: &str) -> String {
        let tag = hmac::sign(&self.key, secret.as_bytes());
        format!("{HASH_PREFIX}{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Checks `secret` against a stored hash in constant time.
    pub fn verify(&self, secret: &str, stored: &str) -> bool {
        let Some(b64) = stored.strip_prefix(HASH_PREFIX) else {
            return false;
        };
        let Ok(expected) = URL_SAFE_NO_PAD.decode(b64) else {
            return false;
        };
        hmac::verify(&self.key, secret.as_bytes(), &expected).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token(32).unwrap();
        let b = random_token(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn a_hashed_secret_verifies_and_a_different_one_does_not() {
        let h = SecretHasher::new(b"k");
        let stored = h.hash("s3cret");
        assert!(stored.starts_with("hmac-sha256$"));
        assert!(!stored.contains("s3cret"));
        assert!(h.verify("s3cret", &stored));
        assert!(!h.verify("s3cret!", &stored));
        assert!(!SecretHasher::new(b"other").verify("s3cret", &stored));
        assert!(!h.verify("s3cret", "garbage"));
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
