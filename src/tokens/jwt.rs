//! JWS compact serialisation of our own tokens (ID tokens, RFC 9068 access
//! tokens, logout tokens), signed and verified with the key ring.
//!
//! Signing is done here rather than through `jsonwebtoken` because the key ring
//! keeps the parsed aws-lc-rs key pairs: `jsonwebtoken` re-parses the PKCS#8
//! document on every call, which dominates the cost of an ES256 signature.
//! Verification accepts only what we issue: the `alg` must be the algorithm of
//! the key named by `kid` (no `none`, no HMAC, no algorithm confusion).

use aws_lc_rs::rand::SystemRandom;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::keyring::KeyRing;
use crate::crypto::CryptoError;
use crate::domain::SigningAlg;

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("no active signing key for {0}")]
    NoKey(&'static str),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("malformed token")]
    Malformed,
    #[error("unknown key")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("wrong token type")]
    Type,
}

/// Signs `claims` with the active key of `alg`; `typ` goes in the header
/// (`JWT`, `at+jwt`, `logout+jwt`).
pub fn sign(
    ring: &KeyRing,
    rng: &SystemRandom,
    alg: SigningAlg,
    typ: &str,
    claims: &Value,
) -> Result<String, JwtError> {
    let key = ring.active(alg).ok_or(JwtError::NoKey(alg.as_str()))?;
    let header = json!({ "alg": alg.as_str(), "kid": key.kid, "typ": typ });
    let mut out = String::with_capacity(512);
    URL_SAFE_NO_PAD.encode_string(header.to_string(), &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut out);
    let sig = key.sign(rng, out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    Ok(out)
}

/// A verified token: its header and claims (expiry and issuer are the
/// caller's to check: some callers accept expired tokens, e.g. `id_token_hint`).
pub struct Verified {
    pub header: Value,
    pub claims: Value,
}

/// Verifies one of our tokens. `typ`: the header type required (`None` for
/// ID tokens, whose `typ` is `JWT` or absent).
pub fn verify(ring: &KeyRing, token: &str, typ: Option<&str>) -> Result<Verified, JwtError> {
    if token.len() > 16 * 1024 {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed);
    };
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|_| JwtError::Malformed)?)
        .map_err(|_| JwtError::Malformed)?;
    let kid = header.get("kid").and_then(Value::as_str).ok_or(JwtError::UnknownKey)?;
    let key = ring.public(kid).ok_or(JwtError::UnknownKey)?;
    if header.get("alg").and_then(Value::as_str) != Some(key.alg.as_str()) {
        return Err(JwtError::Signature);
    }
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    let signing_input = &token[..h.len() + 1 + c.len()];
    if !key.verify(signing_input.as_bytes(), &sig) {
        return Err(JwtError::Signature);
    }
    if let Some(t) = typ
        && !header.get("typ").and_then(Value::as_str).is_some_and(|x| x.eq_ignore_ascii_case(t))
    {
        return Err(JwtError::Type);
    }
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).map_err(|_| JwtError::Malformed)?)
        .map_err(|_| JwtError::Malformed)?;
    if !claims.is_object() {
        return Err(JwtError::Malformed);
    }
    Ok(Verified { header, claims })
}

/// OIDC Core §3.1.3.6 `at_hash` (and `c_hash`): the left half of the hash of
/// the ASCII value, with the hash of the ID token's algorithm (SHA-256 for
/// RS256/ES256; SHA-512 for Ed25519, as OpenID Connect deployments do).
pub fn half_hash(alg: SigningAlg, value: &str) -> String {
    use aws_lc_rs::digest;
    let d = match alg {
        SigningAlg::EdDSA => digest::digest(&digest::SHA512, value.as_bytes()),
        _ => digest::digest(&digest::SHA256, value.as_bytes()),
    };
    let bytes = d.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}
