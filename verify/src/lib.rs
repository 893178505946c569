//! Verification of Portcullis access tokens for relying services (RFC 9068
//! §4), with an actix-web extractor and role guards. Its own crate, so a
//! service builds none of the identity provider; the provider re-exports it
//! as `portcullis::verify` and tests the two against each other.
//!
//! - Discovery and JWKS are fetched from the issuer; keys are cached and
//!   refreshed when they age (`jwks_ttl`) or when a token names an unknown
//!   `kid` — at most once per `min_refetch_interval`, so a flood of bogus `kid`s
//!   cannot hammer the provider.
//! - A token must be `typ: at+jwt`, signed with an asymmetric algorithm that
//!   discovery advertises and that its key is for (never `none`, never HMAC),
//!   from the configured issuer, for the configured audience, within its
//!   `exp`/`nbf` (small leeway).
//! - Optionally, tokens are also introspected (short cache) so a revocation is
//!   seen at once.

pub mod dpop;
mod extract;
pub mod metadata;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use extract::{AuthError, Authenticated, RoleName, WithRole};
pub use metadata::{ResourceMetadata, metadata_routes};

/// How a relying service trusts Portcullis.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The issuer, exactly as in the tokens' `iss` (e.g. `https://id.example.com`).
    pub issuer: String,
    /// This service's audience: a token must name it in `aud`.
    pub audience: String,
    /// Clock leeway for `exp` and `nbf`.
    pub leeway: Duration,
    /// Keys older than this are refetched on the next verification.
    pub jwks_ttl: Duration,
    /// Unknown `kid`s trigger a refetch at most this often.
    pub min_refetch_interval: Duration,
    /// Client credentials for introspection (`None`: offline only).
    pub introspection: Option<(String, String)>,
    /// How long an introspection answer is reused.
    pub introspection_cache: Duration,
    /// This service's public base URL (`https://api.example.com`), the
    /// scheme and host DPoP proofs name in `htu`; `None`: taken from the
    /// request (right unless a proxy rewrites the host or scheme).
    pub public_url: Option<String>,
    /// How many DPoP proofs are remembered (replay protection); when all are
    /// still live, new proofs are refused.
    pub dpop_replay_capacity: usize,
    /// Publish protected resource metadata (RFC 9728) and point every 401
    /// at it; mount [`metadata_routes`] too.
    pub resource_metadata: Option<ResourceMetadata>,
}

impl VerifierConfig {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            audience: audience.into(),
            leeway: Duration::from_secs(30),
            jwks_ttl: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(10),
            introspection: None,
            introspection_cache: Duration::from_secs(10),
            public_url: None,
            dpop_replay_capacity: 100_000,
            resource_metadata: None,
        }
    }
}

/// Why a token was refused. The service answers 401 (or 403 for a missing
/// role) with RFC 6750 codes; the detail is for its logs.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token type is not at+jwt")]
    Type,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("signature does not verify")]
    Signature,
    #[error("token issued by another issuer")]
    Issuer,
    #[error("token for another audience")]
    Audience,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token revoked")]
    Revoked,
    /// A DPoP-bound token (`cnf.jkt`) sent as a plain bearer token.
    #[error("DPoP-bound token presented as a bearer token")]
    Bound,
    /// The DPoP proof is missing or does not check (RFC 9449 §7).
    #[error("{0}")]
    Dpop(dpop::ProofError),
    #[error("provider unreachable: {0}")]
    Provider(String),
}

impl VerifyError {
    /// What the caller is told (`error_description`, RFC 6750 §3): fixed
    /// text, never the token, never the provider's internals.
    pub fn description(&self) -> &'static str {
        match self {
            Self::Missing => "a bearer token is required",
            Self::Malformed => "the token is malformed",
            Self::Type => "the token is not an access token (typ at+jwt)",
            Self::Algorithm => "the token's algorithm is not accepted",
            Self::UnknownKey => "the token is signed with an unknown key",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not yet valid",
            Self::Signature => "the token's signature does not verify",
            Self::Issuer => "the token was issued by another issuer",
            Self::Audience => "the token is not for this service",
            Self::Invalid(_) => "the token is invalid",
            Self::Revoked => "the token has been revoked",
            Self::Provider(_) => "the identity provider cannot be reached",
            Self::Bound => "the token is bound to a key: send it with the DPoP scheme and a proof",
            Self::Dpop(e) => e.description(),
        }
    }

    fn of_jwt(e: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::ExpiredSignature => Self::Expired,
            K::ImmatureSignature => Self::NotYetValid,
            K::InvalidSignature => Self::Signature,
            K::InvalidIssuer => Self::Issuer,
            K::InvalidAudience => Self::Audience,
            _ => Self::Invalid(e.to_string()),
        }
    }
}

/// The verified claims of an access token.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Claims {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.as_deref().unwrap_or_default().split(' ').any(|s| s == scope)
    }

    /// An ABAC attribute released into the token (`attributes` claim), if any.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.extra.get("attributes")?.get(key)?.as_str()
    }

    /// For ABAC-style checks: `Ok` when the attribute has the value.
    pub fn require_attribute(&self, key: &str, value: &str) -> Result<(), AuthError> {
        if self.attribute(key) == Some(value) { Ok(()) } else { Err(AuthError::Forbidden("attribute")) }
    }

    /// For dynamic role checks in a handler.
    pub fn require_role(&self, role: &str) -> Result<(), AuthError> {
        if self.has_role(role) { Ok(()) } else { Err(AuthError::Forbidden("role")) }
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    introspection_endpoint: Option<String>,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
}

struct Keys {
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    fetched: Instant,
}

struct Inner {
    config: VerifierConfig,
    http: reqwest::Client,
    jwks_uri: String,
    introspection_endpoint: Option<String>,
    allowed: Vec<Algorithm>,
    keys: RwLock<Keys>,
    last_fetch: Mutex<Instant>,
    fetches: std::sync::atomic::AtomicU64,
    introspected: Mutex<HashMap<String, (bool, Instant)>>,
    dpop_seen: dpop::ReplayCache,
}

/// Verifies access tokens. Cheap to clone (shared state).
/// The key thumbprint a token is bound to (`cnf.jkt`), if any.
fn bound_to(c: &Claims) -> Option<&str> {
    c.extra.get("cnf").and_then(|v| v.get("jkt")).and_then(Value::as_str)
}

/// A bearer token's claims: refused when the token is bound to a key.
fn unbound(c: Claims) -> Result<Claims, VerifyError> {
    if bound_to(&c).is_some() { Err(VerifyError::Bound) } else { Ok(c) }
}

#[derive(Clone)]
pub struct Verifier(Arc<Inner>);

fn asymmetric(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        "PS256" => Some(Algorithm::PS256),
        "ES384" => Some(Algorithm::ES384),
        _ => None, // never `none`, never HS*
    }
}

/// Sends a request to the provider and reads its JSON answer.
async fn json_of<T: serde::de::DeserializeOwned>(request: reqwest::RequestBuilder) -> Result<T, VerifyError> {
    request
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| VerifyError::Provider(e.to_string()))?
        .json()
        .await
        .map_err(|e| VerifyError::Provider(e.to_string()))
}

impl Verifier {
    /// Reads the issuer's discovery document and keys.
    pub async fn discover(config: VerifierConfig) -> Result<Self, VerifyError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| VerifyError::Provider(e.to_string()))?;
        let url = format!("{}/.well-known/openid-configuration", config.issuer);
        let d: Discovery = json_of(http.get(&url)).await?;
        if d.issuer.trim_end_matches('/') != config.issuer {
            return Err(VerifyError::Provider("discovery names another issuer".into()));
        }
        // Access tokens are ES256; accept the asymmetric algorithms the
        // provider advertises, nothing else.
        let mut allowed: Vec<Algorithm> =
            d.id_token_signing_alg_values_supported.iter().filter_map(|a| asymmetric(a)).collect();
        if !allowed.contains(&Algorithm::ES256) {
            allowed.push(Algorithm::ES256);
        }
        let inner = Inner {
            http,
            jwks_uri: d.jwks_uri,
            introspection_endpoint: d.introspection_endpoint,
            allowed,
            keys: RwLock::new(Keys { by_kid: HashMap::new(), fetched: Instant::now() }),
            last_fetch: Mutex::new(Instant::now() - config.min_refetch_interval - Duration::from_secs(1)),
            fetches: Default::default(),
            introspected: Mutex::new(HashMap::new()),
            dpop_seen: dpop::ReplayCache::new(config.dpop_replay_capacity),
            config,
        };
        let v = Self(Arc::new(inner));
        v.refetch(true).await?;
        Ok(v)
    }

    /// How many times the JWKS was fetched (for monitoring and tests).
    pub fn jwks_fetches(&self) -> u64 {
        self.0.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Fetches the JWKS unless one was fetched within `min_refetch_interval`
    /// (`force` skips that limit: start-up and explicit refresh).
    pub async fn refetch(&self, force: bool) -> Result<bool, VerifyError> {
        {
            let mut last = self.0.last_fetch.lock().map_err(|_| VerifyError::Provider("lock".into()))?;
            if !force && last.elapsed() < self.0.config.min_refetch_interval {
                return Ok(false);
            }
            *last = Instant::now();
        }
        self.0.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let set: JwkSet = json_of(self.0.http.get(&self.0.jwks_uri)).await?;
        let mut by_kid = HashMap::new();
        for k in &set.keys {
            let (Some(kid), Some(alg)) = (k.common.key_id.clone(), k.common.key_algorithm) else { continue };
            let Some(alg) = asymmetric(&format!("{alg:?}")) else { continue };
            if let Ok(key) = DecodingKey::from_jwk(k) {
                by_kid.insert(kid, (key, alg));
            }
        }
        if let Ok(mut keys) = self.0.keys.write() {
            *keys = Keys { by_kid, fetched: Instant::now() };
        }
        Ok(true)
    }

    fn key(&self, kid: &str) -> Option<(DecodingKey, Algorithm)> {
        self.0.keys.read().ok()?.by_kid.get(kid).cloned()
    }

    fn stale(&self) -> bool {
        self.0.keys.read().map(|k| k.fetched.elapsed() > self.0.config.jwks_ttl).unwrap_or(true)
    }

    /// Verifies a bearer token offline (signature and claims). A DPoP-bound
    /// token (`cnf.jkt`) is refused: it is valid only with a proof of its
    /// key ([`Self::verify_presented`]).
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        unbound(self.verify_any(token).await?)
    }

    /// Signature and claims, whatever the token's binding.
    async fn verify_any(&self, token: &str) -> Result<Claims, VerifyError> {
        if token.len() > 16 * 1024 {
            return Err(VerifyError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        // RFC 9068 §4: the type must say this is an access token.
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"))
        {
            return Err(VerifyError::Type);
        }
        if !self.0.allowed.contains(&header.alg) {
            return Err(VerifyError::Algorithm);
        }
        let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
        if self.stale() {
            let _ = self.refetch(false).await;
        }
        let (key, key_alg) = match self.key(&kid) {
            Some(k) => k,
            None => {
                self.refetch(false).await?;
                self.key(&kid).ok_or(VerifyError::UnknownKey)?
            }
        };
        if key_alg != header.alg {
            return Err(VerifyError::Algorithm);
        }
        let mut v = Validation::new(key_alg);
        v.set_issuer(&[self.0.config.issuer.as_str()]);
        v.set_audience(&[self.0.config.audience.as_str()]);
        v.leeway = self.0.config.leeway.as_secs();
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(VerifyError::of_jwt)?;
        Ok(data.claims)
    }

    /// Verifies offline, then asks the provider whether the token is still
    /// active (cached for `introspection_cache`): revocation is seen at once.
    pub async fn verify_online(&self, token: &str) -> Result<Claims, VerifyError> {
        unbound(self.online_any(token).await?)
    }

    /// [`Self::verify_any`], then introspection when configured.
    async fn online_any(&self, token: &str) -> Result<Claims, VerifyError> {
        let claims = self.verify_any(token).await?;
        let (Some((id, secret)), Some(endpoint)) = (&self.0.config.introspection, &self.0.introspection_endpoint)
        else {
            return Ok(claims);
        };
        let cache_key = claims.jti.clone().unwrap_or_else(|| token.to_owned());
        if let Ok(cache) = self.0.introspected.lock()
            && let Some((active, at)) = cache.get(&cache_key)
            && at.elapsed() < self.0.config.introspection_cache
        {
            return if *active { Ok(claims) } else { Err(VerifyError::Revoked) };
        }
        let answer: Value =
            json_of(self.0.http.post(endpoint).basic_auth(id, Some(secret)).form(&[("token", token)])).await?;
        let active = answer.get("active").and_then(Value::as_bool).unwrap_or(false);
        if let Ok(mut cache) = self.0.introspected.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(cache_key, (active, Instant::now()));
        }
        if active { Ok(claims) } else { Err(VerifyError::Revoked) }
    }

    /// Verifies a token as presented with a request (RFC 6750 §2.1, RFC 9449
    /// §7): `authorization` is the `Authorization` header, `dpop` the `DPoP`
    /// header(s), `method` and `uri` the request's (the absolute URI as the
    /// client addressed it). A `Bearer` token must not be DPoP-bound; a
    /// `DPoP` token must be bound to the key of a fresh, unused proof for this
    /// request and this token.
    pub async fn verify_presented(
        &self,
        authorization: Option<&str>,
        dpop: &[&str],
        method: &str,
        uri: &str,
    ) -> Result<Claims, VerifyError> {
        let (scheme, token) = authorization
            .and_then(|v| v.split_once(' '))
            .map(|(s, t)| (s.to_ascii_lowercase(), t.trim()))
            .filter(|(_, t)| !t.is_empty())
            .ok_or(VerifyError::Missing)?;
        match scheme.as_str() {
            "bearer" => self.verify_online(token).await,
            "dpop" => {
                let proof = match dpop {
                    [] => return Err(VerifyError::Dpop(dpop::ProofError::Missing)),
                    [one] => *one,
                    _ => return Err(VerifyError::Dpop(dpop::ProofError::Repeated)),
                };
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or_default();
                let want = dpop::Expect { method, uri, access_token: Some(token), now };
                let checked = dpop::check(proof, &want).map_err(VerifyError::Dpop)?;
                let claims = self.online_any(token).await?;
                if bound_to(&claims) != Some(checked.jkt.as_str()) {
                    return Err(VerifyError::Dpop(dpop::ProofError::WrongKey));
                }
                if !self.0.dpop_seen.first_use(&checked, now) {
                    return Err(VerifyError::Dpop(dpop::ProofError::Replayed));
                }
                Ok(claims)
            }
            _ => Err(VerifyError::Missing),
        }
    }

    /// This service's base URL for DPoP `htu`, if configured.
    pub fn public_url(&self) -> Option<&str> {
        self.0.config.public_url.as_deref()
    }
}
