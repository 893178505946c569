//! DPoP proofs (RFC 9449 §4.3): the one check of a proof JWT, used by the
//! provider at its token and UserInfo endpoints and by relying services
//! through [`crate::Verifier::verify_presented`]. What a proof cannot say by
//! itself — whether its `jti` was seen before, whether its `nonce` is one the
//! server handed out — is the caller's: the provider keeps a shared replay
//! table and stateless nonces, a relying service the bounded
//! [`ReplayCache`].

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// The proof algorithms accepted (and advertised as
/// `dpop_signing_alg_values_supported`): asymmetric only.
pub const ALGS: &[&str] = &["ES256", "EdDSA", "PS256", "RS256"];

/// Seconds a proof stays acceptable after its `iat`.
pub const MAX_AGE_SECS: i64 = 60;
/// Seconds a proof's `iat` may lie in the future (clock skew).
pub const LEEWAY_SECS: i64 = 10;

/// Why a proof is refused. The descriptions are fixed ASCII, fit for an
/// `error_description` and a `WWW-Authenticate` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("no DPoP proof")]
    Missing,
    #[error("more than one DPoP proof")]
    Repeated,
    #[error("malformed DPoP proof")]
    Malformed,
    #[error("DPoP proof type is not dpop+jwt")]
    Type,
    #[error("DPoP proof algorithm not accepted")]
    Algorithm,
    #[error("DPoP proof key not acceptable")]
    Key,
    #[error("DPoP proof signature does not verify")]
    Signature,
    #[error("DPoP proof for another method")]
    Method,
    #[error("DPoP proof for another URI")]
    Uri,
    #[error("DPoP proof too old or from the future")]
    Time,
    #[error("DPoP proof not for this access token")]
    Ath,
    #[error("DPoP proof already used")]
    Replayed,
    #[error("DPoP proof made with another key than the token's")]
    WrongKey,
}

impl ProofError {
    pub fn description(self) -> &'static str {
        match self {
            Self::Missing => "a DPoP proof is required",
            Self::Repeated => "send exactly one DPoP proof",
            Self::Malformed => "the DPoP proof is malformed",
            Self::Type => "the DPoP proof must have typ dpop+jwt",
            Self::Algorithm => "the DPoP proof algorithm is not accepted",
            Self::Key => "the DPoP proof must carry a public ES256, EdDSA or RSA (2048+ bit) key",
            Self::Signature => "the DPoP proof signature does not verify",
            Self::Method => "the DPoP proof htm does not match the request method",
            Self::Uri => "the DPoP proof htu does not match the request URI",
            Self::Time => "the DPoP proof iat is too old or in the future",
            Self::Ath => "the DPoP proof ath does not match the access token",
            Self::Replayed => "the DPoP proof was already used",
            Self::WrongKey => "the DPoP proof key is not the one the token is bound to",
        }
    }
}

/// What the request a proof comes with looks like.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The HTTP method (`POST`, `GET`…).
    pub method: &'a str,
    /// The request's absolute URI; its query and fragment are ignored.
    pub uri: &'a str,
    /// The access token presented with the proof (its hash must be `ath`).
    pub access_token: Option<&'a str>,
    /// Now, in seconds since the epoch.
    pub now: i64,
}

/// A proof that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key (base64url).
    pub jkt: String,
    /// The proof's signature algorithm (one of [`ALGS`]).
    pub alg: &'static str,
    pub jti: String,
    pub iat: i64,
    pub nonce: Option<String>,
}

impl Proof {
    /// Until when (seconds) this proof could be accepted: how long its `jti`
    /// must be remembered.
    pub fn acceptable_until(&self) -> i64 {
        self.iat + MAX_AGE_SECS + LEEWAY_SECS
    }
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// base64url(SHA-256(`token`)): a proof's `ath` for an access token.
pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

fn member<'a>(jwk: &'a Value, name: &str) -> Result<&'a str, ProofError> {
    jwk.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(ProofError::Key)
}

/// The RFC 7638 thumbprint of a public JWK (EC P-256, OKP Ed25519, RSA):
/// SHA-256 over its required members in lexicographic order.
pub fn thumbprint(jwk: &Value) -> Result<String, ProofError> {
    let q = |s: &str| Value::from(s).to_string();
    let canonical = match member(jwk, "kty")? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            q(member(jwk, "crv")?),
            q(member(jwk, "x")?),
            q(member(jwk, "y")?)
        ),
        "OKP" => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, q(member(jwk, "crv")?), q(member(jwk, "x")?)),
        "RSA" => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, q(member(jwk, "e")?), q(member(jwk, "n")?)),
        _ => return Err(ProofError::Key),
    };
    Ok(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref()))
}

/// The key of a proof: public, of a type that fits the algorithm.
fn key_for(alg: Algorithm, jwk: &Value) -> Result<DecodingKey, ProofError> {
    const PRIVATE: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    if !jwk.is_object() || PRIVATE.iter().any(|m| jwk.get(m).is_some()) {
        return Err(ProofError::Key);
    }
    // Members in their one canonical form (fixed-length coordinates, no
    // leading zero bytes), so one key has one thumbprint.
    let bytes = |name: &str| URL_SAFE_NO_PAD.decode(member(jwk, name)?).map_err(|_| ProofError::Key);
    let fits = match (alg, member(jwk, "kty")?) {
        (Algorithm::ES256, "EC") => {
            member(jwk, "crv")? == "P-256" && bytes("x")?.len() == 32 && bytes("y")?.len() == 32
        }
        (Algorithm::EdDSA, "OKP") => member(jwk, "crv")? == "Ed25519" && bytes("x")?.len() == 32,
        (Algorithm::RS256 | Algorithm::PS256, "RSA") => {
            let (n, e) = (bytes("n")?, bytes("e")?);
            // At least 2048 bits: 256 bytes whose first is not zero.
            n.len() >= 256 && n.first().is_some_and(|b| *b != 0) && e.first().is_some_and(|b| *b != 0)
        }
        _ => false,
    };
    if !fits {
        return Err(ProofError::Key);
    }
    let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).map_err(|_| ProofError::Key)?;
    DecodingKey::from_jwk(&parsed).map_err(|_| ProofError::Key)
}

/// `a` and `b` name the same resource (RFC 9449 §4.3 step 9): scheme, host,
/// port and path, after RFC 3986 normalisation; query and fragment ignored.
pub fn same_uri(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
                && a.path() == b.path()
                && a.username().is_empty()
                && b.username().is_empty()
        }
        _ => false,
    }
}

/// Checks one proof (RFC 9449 §4.3 steps 1–11, less the `jti` and `nonce`
/// bookkeeping the caller keeps).
pub fn check(proof: &str, want: &Expect<'_>) -> Result<Proof, ProofError> {
    if proof.len() > 8 * 1024 || proof.bytes().filter(|b| *b == b'.').count() != 2 {
        return Err(ProofError::Malformed);
    }
    let head_b64 = proof.split('.').next().unwrap_or_default();
    let head: Value = URL_SAFE_NO_PAD
        .decode(head_b64)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or(ProofError::Malformed)?;
    if head.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(ProofError::Type);
    }
    let (alg, alg_name) = match head.get("alg").and_then(Value::as_str) {
        Some("ES256") => (Algorithm::ES256, "ES256"),
        Some("EdDSA") => (Algorithm::EdDSA, "EdDSA"),
        Some("PS256") => (Algorithm::PS256, "PS256"),
        Some("RS256") => (Algorithm::RS256, "RS256"),
        _ => return Err(ProofError::Algorithm),
    };
    let jwk = head.get("jwk").ok_or(ProofError::Key)?;
    let key = key_for(alg, jwk)?;
    let mut v = Validation::new(alg);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    let claims = match jsonwebtoken::decode::<Claims>(proof, &key, &v) {
        Ok(d) => d.claims,
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
            return Err(ProofError::Signature);
        }
        Err(_) => return Err(ProofError::Malformed),
    };
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(ProofError::Malformed);
    }
    if claims.htm != want.method {
        return Err(ProofError::Method);
    }
    if !same_uri(&claims.htu, want.uri) {
        return Err(ProofError::Uri);
    }
    if claims.iat > want.now + LEEWAY_SECS || claims.iat < want.now - MAX_AGE_SECS {
        return Err(ProofError::Time);
    }
    if let Some(token) = want.access_token
        && claims.ath.as_deref() != Some(ath(token).as_str())
    {
        return Err(ProofError::Ath);
    }
    Ok(Proof { jkt: thumbprint(jwk)?, alg: alg_name, jti: claims.jti, iat: claims.iat, nonce: claims.nonce })
}

/// Proofs seen by one relying service (one process), bounded in memory: an
/// entry lives until its proof could no longer be accepted. Each key may
/// hold at most [`ReplayCache::PER_KEY`] live proofs, so the holder of one
/// token cannot crowd out everyone else; when the whole cache is full of
/// live entries, new proofs are refused (fail closed), never forgotten.
pub struct ReplayCache {
    /// Key thumbprint → (`jti` → until when it could be accepted).
    seen: Mutex<HashMap<String, HashMap<String, i64>>>,
    capacity: usize,
}

impl ReplayCache {
    /// Live proofs one key may have in the cache (about 16 a second).
    pub const PER_KEY: usize = 1024;

    pub fn new(capacity: usize) -> Self {
        Self { seen: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// Records `proof`; `false` when it was seen before, or its key already
    /// has [`Self::PER_KEY`] live proofs, or the cache is full of live ones.
    pub fn first_use(&self, proof: &Proof, now: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else { return false };
        let mut total: usize = seen.values().map(HashMap::len).sum();
        if total >= self.capacity {
            seen.retain(|_, jtis| {
                jtis.retain(|_, until| *until >= now);
                !jtis.is_empty()
            });
            total = seen.values().map(HashMap::len).sum();
        }
        let jtis = seen.entry(proof.jkt.clone()).or_default();
        let before = jtis.len();
        jtis.retain(|_, until| *until >= now);
        total -= before - jtis.len();
        if jtis.contains_key(&proof.jti) {
            return false;
        }
        if jtis.len() >= Self::PER_KEY.min(self.capacity) || total >= self.capacity {
            tracing::warn!("DPoP replay cache full (for this key or in all): proof refused");
            return false;
        }
        jtis.insert(proof.jti.clone(), proof.acceptable_until());
        true
    }

    pub fn len(&self) -> usize {
        self.seen.lock().map(|s| s.values().map(HashMap::len).sum()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_the_rfc_7638_example() {
        // RFC 7638 §3.1.
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(thumbprint(&jwk).unwrap(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn the_same_uri_ignores_query_and_default_port_but_not_path_or_host() {
        assert!(same_uri("https://a.example/token", "https://A.example:443/token?x=1#f"));
        assert!(!same_uri("https://a.example/token", "https://a.example/token/"));
        assert!(!same_uri("https://a.example/token", "https://b.example/token"));
        assert!(!same_uri("https://a.example/token", "http://a.example/token"));
    }

    #[test]
    fn the_replay_cache_refuses_a_second_use_and_stays_bounded() {
        let cache = ReplayCache::new(2);
        let p = |jkt: &str, jti: &str| Proof { jkt: jkt.into(), alg: "ES256", jti: jti.into(), iat: 100, nonce: None };
        assert!(cache.first_use(&p("k", "a"), 100));
        assert!(!cache.first_use(&p("k", "a"), 101));
        assert!(cache.first_use(&p("j", "b"), 101));
        // Full of live entries: refused, not forgotten.
        assert!(!cache.first_use(&p("i", "c"), 102));
        assert!(!cache.first_use(&p("k", "a"), 102));
        // Once the first two have aged out, room again.
        assert!(cache.first_use(&p("k", "c"), 100 + MAX_AGE_SECS + LEEWAY_SECS + 1));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn one_key_cannot_crowd_out_the_others() {
        let cache = ReplayCache::new(ReplayCache::PER_KEY * 4);
        let p = |jkt: &str, jti: String| Proof { jkt: jkt.into(), alg: "ES256", jti, iat: 100, nonce: None };
        let flooded =
            (0..ReplayCache::PER_KEY * 3).filter(|i| cache.first_use(&p("flood", i.to_string()), 100)).count();
        assert_eq!(flooded, ReplayCache::PER_KEY, "one key gets its share, no more");
        assert!(cache.first_use(&p("someone", "x".into()), 100), "another key still gets in");
    }
}
