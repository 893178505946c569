//! Property-based fuzz targets for everything that parses outside input:
//! token requests, authorize parameters, redirect URIs, our JWTs, client
//! assertions (private_key_jwt), browser forms and admin JSON bodies.
//!
//! Inputs are drawn from arbitrary bytes/strings and from mutations of the
//! seed corpus in `tests/fuzz/seeds/`. Each target asserts more than "no
//! panic": what the parser promises about what it accepts.
//!
//!   cargo test --test fuzz                                   # CI smoke: 2,000 cases per target
//!   PROPTEST_CASES=1000000 cargo test --release --test fuzz  # the full run (docs/FUZZING.md)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use base64::Engine;
use portcullis::clock::Clock;
use portcullis::config::Settings;
use portcullis::domain::{ClientKind, RedirectUri, SigningAlg};
use portcullis::policy::access::AccessPolicy;
use portcullis::state::AppState;
use portcullis::tokens::jwt;
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per target: `PROPTEST_CASES`, or a CI-sized smoke run.
fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2_000);
    Config { cases, failure_persistence: None, ..Config::default() }
}

fn seeds(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/tests/fuzz/seeds/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

/// One edit of a byte string: flip, insert, delete, or splice in a token that
/// parsers care about.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Splice(usize, &'static str),
}

const TOKENS: &[&str] = &[
    "&",
    "=",
    "%",
    "%2",
    "%ff",
    "%00",
    "+",
    "#",
    "?",
    "/",
    ":",
    "//",
    "@",
    ".",
    "..",
    "\"",
    "\\",
    "[",
    "]",
    "{",
    "}",
    ",",
    "null",
    "\u{0}",
    "\u{202e}",
    "é",
    "🦀",
    "%C3%A9",
    "%F0%9F%A6%80",
    "%25",
    "0",
    "-1",
    "9999999999999999999",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Flip(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Insert(p, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), proptest::sample::select(TOKENS)).prop_map(|(p, t)| Edit::Splice(p, t)),
    ]
}

fn apply(mut s: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = |p: usize, len: usize| if len == 0 { 0 } else { p % (len + 1) };
        match *e {
            Edit::Flip(p, b) if !s.is_empty() => {
                let i = p % s.len();
                s[i] ^= b.max(1);
            }
            Edit::Flip(..) => {}
            Edit::Insert(p, b) => s.insert(at(p, s.len()), b),
            Edit::Delete(p) if !s.is_empty() => {
                let i = p % s.len();
                s.remove(i);
            }
            Edit::Delete(_) => {}
            Edit::Splice(p, t) => {
                let i = at(p, s.len());
                s.splice(i..i, t.bytes());
            }
        }
    }
    s
}

/// Arbitrary bytes, or a seed with a few edits.
fn input(seed_file: &str) -> BoxedStrategy<Vec<u8>> {
    let corpus = seeds(seed_file);
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512),
        1 => any::<String>().prop_map(String::into_bytes),
        4 => (proptest::sample::select(corpus), proptest::collection::vec(edit(), 0..6))
            .prop_map(|(s, e)| apply(s, &e)),
    ]
    .boxed()
}

/// Counts how many cases reached each interesting outcome (printed with
/// `--nocapture`: a target whose inputs never get past the first check is
/// not testing much).
struct Tally(&'static str, Vec<(&'static str, AtomicU64)>);

impl Tally {
    fn new(target: &'static str, names: &[&'static str]) -> Self {
        Self(target, names.iter().map(|n| (*n, AtomicU64::new(0))).collect())
    }
    fn hit(&self, name: &str) {
        if let Some((_, c)) = self.1.iter().find(|(n, _)| *n == name) {
            c.fetch_add(1, Relaxed);
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        let parts: Vec<String> = self.1.iter().map(|(n, c)| format!("{n} {}", c.load(Relaxed))).collect();
        eprintln!("{}: {}", self.0, parts.join(", "));
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Token endpoint parameters: a repeated parameter (after decoding) is always
/// refused, and everything else decodes to exactly the pairs of the form.
#[test]
fn token_request_parser() {
    let tally = Tally::new("token_request_parser", &["cases", "accepted", "refused as repeated"]);
    proptest!(config(), |(raw in input("token_request"))| {
        tally.hit("cases");
        let pairs = portcullis::web::form::parse_pairs(&raw);
        let parsed = portcullis::oauth::params(&raw);
        match pairs {
            Err(_) => prop_assert!(parsed.is_err()),
            Ok(pairs) => {
                let mut keys: Vec<&String> = pairs.iter().map(|(k, _)| k).collect();
                keys.sort();
                let repeated = keys.windows(2).any(|w| w[0] == w[1]);
                match parsed {
                    Ok(map) => {
                        tally.hit("accepted");
                        prop_assert!(!repeated);
                        prop_assert_eq!(map.len(), pairs.len());
                        for (k, v) in &pairs {
                            prop_assert_eq!(map.get(k), Some(v));
                        }
                    }
                    Err(_) => {
                        tally.hit("refused as repeated");
                        prop_assert!(repeated)
                    }
                }
            }
        }
    });
}

/// Browser form decoding: strict UTF-8, and what it accepts survives a
/// round trip through a standard encoder unchanged.
#[test]
fn form_decoding() {
    let tally = Tally::new("form_decoding", &["cases", "accepted"]);
    proptest!(config(), |(raw in input("form"))| {
        tally.hit("cases");
        if let Ok(pairs) = portcullis::web::form::parse_pairs(&raw) {
            tally.hit("accepted");
            let encoded: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
            let again = portcullis::web::form::parse_pairs(encoded.as_bytes());
            prop_assert_eq!(again.ok(), Some(pairs));
        }
    });
}

/// The pure part of authorize validation: parameters, scopes, PKCE values,
/// redirect URIs. Accepted scopes are valid, de-duplicated tokens.
#[test]
fn authorize_parameters() {
    let tally = Tally::new(
        "authorize_parameters",
        &["cases", "parameters parsed", "scopes accepted", "redirect URIs accepted"],
    );
    proptest!(config(), |(raw in input("authorize"))| {
        tally.hit("cases");
        let Ok(p) = portcullis::oauth::params(&raw) else { return Ok(()) };
        tally.hit("parameters parsed");
        if let Some(s) = p.get("scope")
            && let Ok(scopes) = portcullis::oauth::split_scope(s)
        {
            tally.hit("scopes accepted");
            let mut sorted = scopes.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), scopes.len(), "duplicates kept");
            for t in &scopes {
                prop_assert!(!t.is_empty() && !t.contains(' '));
                prop_assert!(t.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)),
                    "RFC 6749 §3.3 scope-token: {t:?}");
            }
        }
        if let Some(r) = p.get("redirect_uri")
            && (RedirectUri::parse(r, ClientKind::Public).is_ok() | RedirectUri::parse(r, ClientKind::Confidential).is_ok())
        {
            tally.hit("redirect URIs accepted");
        }
        if let Some(m) = p.get("max_age") {
            let _ = m.parse::<i64>();
        }
    });
}

/// Redirect URIs: whatever is accepted is absolute, has no fragment and no
/// credentials, uses https (or http on loopback), or for public clients only a
/// private-use scheme; and it is kept byte for byte (exact matching later).
#[test]
fn redirect_uri_matching() {
    let tally = Tally::new("redirect_uri_matching", &["cases", "accepted"]);
    proptest!(config(), |(raw in input("redirect_uri"), public in any::<bool>())| {
        tally.hit("cases");
        let s = lossy(&raw);
        let kind = if public { ClientKind::Public } else { ClientKind::Confidential };
        if let Ok(r) = RedirectUri::parse(&s, kind) {
            tally.hit("accepted");
            prop_assert_eq!(r.as_str(), s.as_str());
            let u = url::Url::parse(&s).unwrap();
            prop_assert!(u.fragment().is_none() && !s.contains('#'));
            prop_assert!(u.username().is_empty() && u.password().is_none());
            match u.scheme() {
                "https" => {}
                "http" => prop_assert!(portcullis::domain::is_loopback(&u), "plain http off loopback: {s}"),
                other => prop_assert!(public && other.contains('.'), "scheme {other} for {kind:?}"),
            }
        }
    });
}

struct Keys {
    state: AppState,
    tokens: Vec<String>,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/fuzz.db?mode=rwc", dir.path().display());
    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = rt.block_on(async {
        let (state, _) = AppState::build(Settings::for_test(&url, &key), Clock::System).await.unwrap();
        portcullis::tokens::keys::ensure_active(&state).await.unwrap();
        state.reload_keys().await.unwrap();
        state
    });
    let claims = serde_json::json!({ "iss": "http://127.0.0.1", "sub": "u1", "aud": "c1", "exp": 4_000_000_000i64,
        "jti": "j1", "scope": "openid" });
    let ring = state.keyring();
    let tokens = [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::EdDSA]
        .into_iter()
        .map(|alg| jwt::sign(&ring, &state.rng, alg, "at+jwt", &claims).unwrap())
        .collect();
    Keys { state, tokens, _rt: rt, _dir: dir }
});

/// Our JWTs: every valid token verifies; any change to it fails, and no input
/// panics the verifier.
#[test]
fn jwt_parsing_and_verification() {
    let keys = &*KEYS;
    let ring = keys.state.keyring();
    for t in &keys.tokens {
        assert!(jwt::verify(&ring, t, Some("at+jwt")).is_ok());
    }
    let tokens: Vec<Vec<u8>> = keys.tokens.iter().map(|t| t.as_bytes().to_vec()).collect();
    let strategy = prop_oneof![
        3 => (proptest::sample::select(tokens), proptest::collection::vec(edit(), 1..4)).prop_map(|(t, e)| apply(t, &e)),
        1 => input("jwt"),
    ];
    let tally = Tally::new("jwt_parsing_and_verification", &["cases", "unchanged tokens", "changed tokens refused"]);
    proptest!(config(), |(raw in strategy)| {
        tally.hit("cases");
        let s = lossy(&raw);
        let verdict = jwt::verify(&ring, &s, None);
        if keys.tokens.contains(&s) {
            tally.hit("unchanged tokens");
        } else {
            tally.hit("changed tokens refused");
            prop_assert!(verdict.is_err(), "a changed token verified: {s}");
        }
    });
}

/// Client assertions (private_key_jwt): the unverified pre-parse never
/// panics and admits only asymmetric algorithms and a non-empty `iss`; a
/// changed assertion never verifies under the client's key.
#[test]
fn client_assertion_parsing() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = kp.to_pkcs8v1().unwrap();
    let pubkey = kp.public_key().as_ref().to_vec();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decoding = DecodingKey::from_ec_components(&b64.encode(&pubkey[1..33]), &b64.encode(&pubkey[33..])).unwrap();
    let claims = serde_json::json!({ "iss": "svc", "sub": "svc", "aud": "https://id.example.com/token",
        "exp": 4_000_000_000i64, "jti": "one" });
    let good = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &EncodingKey::from_ec_der(pkcs8.as_ref()))
        .unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["https://id.example.com/token"]);
    assert!(jsonwebtoken::decode::<serde_json::Value>(&good, &decoding, &validation).is_ok());
    let strategy = prop_oneof![
        3 => proptest::collection::vec(edit(), 1..4).prop_map({
            let good = good.clone().into_bytes();
            move |e| apply(good.clone(), &e)
        }),
        1 => input("jwt"),
    ];
    let tally = Tally::new("client_assertion_parsing", &["cases", "pre-parsed (header + iss)", "changed and refused"]);
    proptest!(config(), |(raw in strategy)| {
        tally.hit("cases");
        let s = lossy(&raw);
        if let Ok((header, iss)) = portcullis::oauth::client_auth::parse_assertion(&s) {
            tally.hit("pre-parsed (header + iss)");
            prop_assert!(!iss.is_empty());
            prop_assert!(!matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
        }
        if s != good {
            tally.hit("changed and refused");
            prop_assert!(jsonwebtoken::decode::<serde_json::Value>(&s, &decoding, &validation).is_err(), "{s}");
        }
    });
}

/// Admin JSON bodies: never a panic; an accepted access policy is in
/// canonical form (re-parsing its serialisation gives it back) and evaluates
/// against any subject without panicking.
#[test]
fn admin_json_bodies() {
    let tally = Tally::new("admin_json_bodies", &["cases", "a body type accepted", "policies accepted"]);
    proptest!(config(), |(raw in input("admin_json"), ip in any::<[u8; 16]>(), mfa in any::<bool>(), age in any::<i64>())| {
        tally.hit("cases");
        let bodies = [
            serde_json::from_slice::<portcullis::web::admin_api::NewUserBody>(&raw).is_ok(),
            serde_json::from_slice::<portcullis::web::admin_api::NewClientBody>(&raw).is_ok(),
            serde_json::from_slice::<portcullis::web::admin_api::UserPatch>(&raw).is_ok(),
            serde_json::from_slice::<portcullis::admin::clients::ClientPatch>(&raw).is_ok(),
        ];
        if bodies.iter().any(|b| *b) {
            tally.hit("a body type accepted");
        }
        if let Ok(p) = AccessPolicy::parse_json(&lossy(&raw)) {
            tally.hit("policies accepted");
            let again = AccessPolicy::parse_json(&serde_json::to_string(&p).unwrap()).unwrap();
            prop_assert_eq!(&again, &p);
            let roles = p.roles_all.clone();
            let attributes = std::collections::BTreeMap::new();
            let subject = portcullis::policy::access::Subject {
                roles: &roles,
                attributes: &attributes,
                ip: Some(std::net::IpAddr::from(ip)),
                mfa: if mfa { portcullis::policy::access::MfaRule::PhishingResistant } else { portcullis::policy::access::MfaRule::Off },
                auth_age_secs: age,
            };
            let _ = p.evaluate(&subject);
        }
    });
}
