//! The in-memory key ring: the active signing key of each algorithm (private
//! halves decrypted once, at load), every public key still published, and the
//! JWKS document pre-serialised. Reloaded from the database on a timer, so a
//! rotation made by any instance (or `portcullis keys rotate`) is picked up
//! without a restart.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;

use crate::crypto::{CryptoError, MasterKey};
use crate::domain::SigningAlg;
use crate::storage::entities::signing_key;

/// A private key ready to sign.
pub enum Signer {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

pub struct ActiveKey {
    pub kid: String,
    pub alg: SigningAlg,
    signer: Signer,
}

impl ActiveKey {
    /// Signs `message` (the JWS signing input).
    pub fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.signer {
            Signer::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, rng, message, &mut sig).map_err(|_| CryptoError::Encrypt)?;
                Ok(sig)
            }
            Signer::Ecdsa(kp) => Ok(kp.sign(rng, message).map_err(|_| CryptoError::Encrypt)?.as_ref().to_vec()),
            Signer::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
        }
    }
}

/// A published public key.
pub struct PublicKey {
    pub alg: SigningAlg,
    /// The raw public key in aws-lc-rs's form (RSA: DER of the RSAPublicKey;
    /// EC: uncompressed point; Ed25519: 32 bytes).
    raw: Vec<u8>,
}

impl PublicKey {
    /// Verifies a JWS signature made with this key.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            SigningAlg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            SigningAlg::ES256 => &ECDSA_P256_SHA256_FIXED,
            SigningAlg::EdDSA => &signature::ED25519,
        };
        UnparsedPublicKey::new(alg, &self.raw).verify(message, sig).is_ok()
    }
}

#[derive(Default)]
pub struct KeyRing {
    // (fields below; Debug is written by hand: no key material in logs)
    active: HashMap<&'static str, ActiveKey>,
    published: HashMap<String, PublicKey>,
    jwks: bytes::Bytes,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("published", &self.published.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl KeyRing {
    pub fn active(&self, alg: SigningAlg) -> Option<&ActiveKey> {
        self.active.get(alg.as_str())
    }

    pub fn public(&self, kid: &str) -> Option<&PublicKey> {
        self.published.get(kid)
    }

    /// The JWKS document (RFC 7517), pre-serialised (a cheap shared clone).
    pub fn jwks(&self) -> bytes::Bytes {
        self.jwks.clone()
    }

    pub fn is_ready(&self) -> bool {
        self.active.len() == 3
    }

    /// Loads the ring: active keys (decrypted) and every key retired less than
    /// `publish_retired_ms` ago.
    pub async fn load(
        db: &sea_orm::DatabaseConnection,
        mk: &MasterKey,
        now: DateTime<Utc>,
        publish_retired_ms: i64,
    ) -> Result<Self, KeyRingError> {
        let rows = signing_key::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(signing_key::Column::Active.eq(true))
                    .add(signing_key::Column::RetiredAt.is_not_null()),
            )
            .order_by_desc(signing_key::Column::CreatedAt)
            .all(db)
            .await?;
        let mut ring = Self::default();
        let mut jwks = Vec::new();
        for row in rows {
            let alg = SigningAlg::parse(&row.alg).map_err(|_| KeyRingError::Malformed(row.kid.clone()))?;
            let published = row.active
                || row.retired_at.is_some_and(|t| now.timestamp_millis() - t.timestamp_millis() < publish_retired_ms);
            if !published {
                continue;
            }
            let jwk: Value =
                serde_json::from_str(&row.public_jwk).map_err(|_| KeyRingError::Malformed(row.kid.clone()))?;
            let raw = raw_public(&jwk, alg).ok_or_else(|| KeyRingError::Malformed(row.kid.clone()))?;
            if row.active && !ring.active.contains_key(alg.as_str()) {
                let pkcs8 = mk.open(&seal_context(&row.kid), &row.private_key)?;
                let signer = match alg {
                    SigningAlg::RS256 => Signer::Rsa(
                        RsaKeyPair::from_pkcs8(&pkcs8).map_err(|_| KeyRingError::Malformed(row.kid.clone()))?,
                    ),
                    SigningAlg::ES256 => Signer::Ecdsa(
                        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                            .map_err(|_| KeyRingError::Malformed(row.kid.clone()))?,
                    ),
                    SigningAlg::EdDSA => Signer::Ed25519(
                        Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| KeyRingError::Malformed(row.kid.clone()))?,
                    ),
                };
                ring.active.insert(alg.as_str(), ActiveKey { kid: row.kid.clone(), alg, signer });
            }
            ring.published.insert(row.kid.clone(), PublicKey { alg, raw });
            jwks.push(jwk);
        }
        ring.jwks = serde_json::json!({ "keys": jwks }).to_string().into();
        Ok(ring)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("signing key {0} cannot be decrypted: wrong master key?")]
    Crypto(#[from] CryptoError),
    #[error("signing key {0} is malformed")]
    Malformed(String),
}

fn b64d(v: &Value, member: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(v.get(member)?.as_str()?).ok()
}

/// The aws-lc-rs form of a public JWK.
fn raw_public(jwk: &Value, alg: SigningAlg) -> Option<Vec<u8>> {
    match alg {
        SigningAlg::RS256 => {
            let n = b64d(jwk, "n")?;
            let e = b64d(jwk, "e")?;
            Some(rsa_public_der(&n, &e))
        }
        SigningAlg::ES256 => {
            let mut p = vec![4u8];
            p.extend(b64d(jwk, "x")?);
            p.extend(b64d(jwk, "y")?);
            (p.len() == 65).then_some(p)
        }
        SigningAlg::EdDSA => b64d(jwk, "x").filter(|x| x.len() == 32),
    }
}

/// DER of `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_public_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, l: usize) {
        if l < 0x80 {
            out.push(l as u8);
        } else if l < 0x100 {
            out.extend([0x81, l as u8]);
        } else {
            out.extend([0x82, (l >> 8) as u8, l as u8]);
        }
    }
    fn int(out: &mut Vec<u8>, v: &[u8]) {
        let v = match v.iter().position(|b| *b != 0) {
            Some(i) => &v[i..],
            None => &[0u8][..],
        };
        let pad = v[0] & 0x80 != 0;
        out.push(0x02);
        len(out, v.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::new();
    int(&mut body, n);
    int(&mut body, e);
    let mut out = vec![0x30];
    len(&mut out, body.len());
    out.extend(body);
    out
}

/// Shared handle, swapped whole on reload.
pub type SharedKeyRing = Arc<std::sync::RwLock<Arc<KeyRing>>>;

/// The associated data a signing key's private half is sealed with.
pub fn seal_context(kid: &str) -> String {
    format!("signing_key:{kid}")
}
