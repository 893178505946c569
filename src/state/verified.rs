//! Access tokens whose signature this instance has already checked.
//!
//! Verifying an ES256 signature is most of the work of introspecting a JWT
//! (measured: about half of the CPU time under load, docs/PERFORMANCE.md).
//! A token presented again is looked up here instead, keyed by its SHA-256
//! (the token itself is never kept). Only the signature check and the
//! parsing are skipped: every use still checks that the signing key is in
//! the key ring (a retired or removed key ends its tokens at once), the
//! expiry, the revocation list and that the client still exists
//! (`oauth::token::check_access_token`). Only tokens that passed every
//! check are stored, so invalid input cannot fill it; it holds at most
//! [`CAPACITY`] tokens and starts again (after dropping expired ones) when
//! full.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::keyring::KeyRing;

/// At most this many tokens (a few MB of parsed claims).
pub const CAPACITY: usize = 4_096;

#[derive(Debug)]
struct Entry {
    kid: String,
    exp: i64,
    claims: Arc<Value>,
}

#[derive(Debug, Default)]
pub struct VerifiedTokens {
    map: RwLock<HashMap<[u8; 32], Entry>>,
}

/// The key a token is remembered by (computed once per check).
pub fn key_of(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

impl VerifiedTokens {
    /// The claims of `token` if its signature was checked before and its key
    /// is still in `ring`.
    pub fn get(&self, ring: &KeyRing, key: &[u8; 32]) -> Option<Arc<Value>> {
        let m = self.map.read().ok()?;
        let e = m.get(key)?;
        ring.public(&e.kid).map(|_| e.claims.clone())
    }

    /// Remembers a token that passed every check (signed by `kid`, expiring
    /// at `exp`, seconds), dropping expired ones — or all — when full.
    pub fn put(&self, key: [u8; 32], kid: &str, exp: i64, claims: Arc<Value>, now: i64) {
        let Ok(mut m) = self.map.write() else { return };
        if m.len() >= CAPACITY {
            m.retain(|_, e| e.exp > now);
            if m.len() >= CAPACITY {
                m.clear();
            }
        }
        m.insert(key, Entry { kid: kid.to_owned(), exp, claims });
    }

    pub fn len(&self) -> usize {
        self.map.read().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_stays_bounded_and_forgets_a_token_whose_key_left_the_ring() {
        let cache = VerifiedTokens::default();
        let ring = KeyRing::default();
        cache.put(key_of("t0"), "k1", 100, Arc::new(Value::Null), 50);
        // k1 is not in this (empty) ring: never answered from memory.
        assert!(cache.get(&ring, &key_of("t0")).is_none());
        for i in 0..CAPACITY + 10 {
            cache.put(key_of(&format!("t{i}")), "k1", 100, Arc::new(Value::Null), 50);
        }
        assert!(cache.len() <= CAPACITY, "{}", cache.len());
        // Expired entries go first when it is full.
        let cache = VerifiedTokens::default();
        for i in 0..CAPACITY {
            cache.put(key_of(&format!("old{i}")), "k1", 10, Arc::new(Value::Null), 5);
        }
        cache.put(key_of("fresh"), "k1", 100, Arc::new(Value::Null), 50);
        assert_eq!(cache.len(), 1);
    }
}
