//! The hot paths of the token endpoints, as numbers a regression shows up in:
//! ES256 access-token signing, RS256 ID-token signing, verification of our own
//! JWTs, client-secret checking, a TOTP check, argon2id, and a passkey
//! assertion's verification.
//!
//!   cargo bench --bench hot_paths

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::clock::Clock;
use portcullis::config::Settings;
use portcullis::domain::SigningAlg;
use portcullis::state::AppState;
use portcullis::tokens::jwt;
use serde_json::json;

fn state() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = rt.block_on(async {
        let (state, _) = AppState::build(Settings::for_test(&url, &key), Clock::System).await.unwrap();
        portcullis::tokens::keys::ensure_active(&state).await.unwrap();
        state.reload_keys().await.unwrap();
        state
    });
    (state, dir)
}

fn benches(c: &mut Criterion) {
    let (state, _dir) = state();
    let ring = state.keyring();
    let claims = json!({
        "iss": "https://id.example.com", "sub": "bench", "aud": "https://api.example.com", "client_id": "bench",
        "iat": 1_800_000_000i64, "exp": 1_800_000_900i64, "jti": "abcdefghijklmnopqrstuv", "scope": "api:read", "roles": ["billing"],
    });
    c.bench_function("sign access token (ES256)", |b| {
        b.iter(|| jwt::sign(&ring, &state.rng, SigningAlg::ES256, "at+jwt", black_box(&claims)).unwrap())
    });
    c.bench_function("sign ID token (RS256)", |b| {
        b.iter(|| jwt::sign(&ring, &state.rng, SigningAlg::RS256, "JWT", black_box(&claims)).unwrap())
    });
    c.bench_function("sign ID token (EdDSA)", |b| {
        b.iter(|| jwt::sign(&ring, &state.rng, SigningAlg::EdDSA, "JWT", black_box(&claims)).unwrap())
    });
    let token = jwt::sign(&ring, &state.rng, SigningAlg::ES256, "at+jwt", &claims).unwrap();
    c.bench_function("verify access token (ES256)", |b| {
        b.iter(|| jwt::verify(&ring, black_box(&token), Some("at+jwt")).unwrap())
    });

    let hasher = state.master_key.hasher();
    let secret = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8";
    let stored = hasher.hash(secret);
    c.bench_function("check client secret (HMAC-SHA-256)", |b| {
        b.iter(|| assert!(hasher.verify(black_box(secret), &stored)))
    });

    let totp = totp_rs::Builder::new().with_secret(vec![9u8; 20]).build().unwrap();
    let now = 1_800_000_000u64;
    let code = totp.generate(now).to_string();
    c.bench_function("check TOTP code (SHA-1, ±1 step)", |b| b.iter(|| totp.check(black_box(&code), now).unwrap()));
}

fn argon(c: &mut Criterion) {
    use argon2::{Algorithm, Argon2, Block, Params, Version};
    let params = Params::new(19 * 1024, 2, 1, Some(32)).unwrap();
    let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut mem = vec![Block::default(); params.block_count()];
    let mut out = [0u8; 32];
    let mut g = c.benchmark_group("argon2id");
    g.sample_size(20);
    g.bench_function("m=19456 KiB, t=2, p=1 (OWASP baseline)", |b| {
        b.iter(|| {
            a.hash_password_into_with_memory(b"correct horse battery", b"saltsaltsaltsalt", &mut out, &mut mem).unwrap()
        })
    });
    g.finish();
}

/// A passkey sign-in's cryptography and parsing, as webauthn-rs does it for
/// `authn::passkey`: the browser's JSON parsed, then the assertion checked
/// (client data, RP id hash, flags, ES256 signature) against the stored
/// credential. The assertion comes from the software authenticator of the
/// integration tests.
fn passkey(c: &mut Criterion) {
    use softkey::{Ceremony, SoftKey};
    use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let mut settings = Settings::for_test(&url, &key);
    settings.issuer = "http://localhost:8080".into();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (state, _) = rt.block_on(AppState::build(settings, Clock::System)).unwrap();
    let webauthn = state.webauthn.clone().expect("passkeys on for a localhost issuer");
    let ceremony = Ceremony { origin: "http://localhost:8080", rp_id: "localhost", user_verified: true };
    let (ccr, reg_state) = webauthn.start_passkey_registration(uuid::Uuid::new_v4(), "bench", "bench", None).unwrap();
    let (mut soft, response) = SoftKey::register(&serde_json::to_value(&ccr).unwrap(), &ceremony);
    let reg: RegisterPublicKeyCredential = serde_json::from_value(response).unwrap();
    let passkey = webauthn.finish_passkey_registration(&reg, &reg_state).unwrap();
    let (rcr, auth_state) = webauthn.start_passkey_authentication(&[passkey]).unwrap();
    let assertion = soft.assert(&serde_json::to_value(&rcr).unwrap(), &ceremony);
    c.bench_function("verify passkey assertion (ES256, parse + check)", |b| {
        b.iter(|| {
            let cred: PublicKeyCredential = serde_json::from_value(black_box(assertion.clone())).unwrap();
            webauthn.finish_passkey_authentication(&cred, &auth_state).unwrap()
        })
    });
    c.bench_function("start passkey sign-in (challenge + options)", |b| {
        b.iter(|| webauthn.start_discoverable_authentication().unwrap())
    });
}

/// A DPoP proof made by a client key (ES256), as a client would send it.
fn dpop_proof(pkcs8: &[u8], jwk: &serde_json::Value, htu: &str, iat: i64) -> String {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk });
    let claims = json!({ "jti": uuid::Uuid::new_v4().to_string(), "htm": "POST", "htu": htu, "iat": iat });
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).unwrap();
    let sig = kp.sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

/// DPoP (#20): one proof's check (parse, key, signature, claims,
/// thumbprint), and the token endpoint's work for a client_credentials
/// grant without and with a proof (check, the `jti` spent in the shared
/// table, the `cnf` claim) — the request's HTTP and client authentication
/// aside, which are the same for both.
fn dpop(c: &mut Criterion) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let (state, _dir) = state();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let spec = portcullis::admin::clients::ClientSpec {
        client_id: "svc".into(),
        grants: vec!["client_credentials".into()],
        ..Default::default()
    };
    rt.block_on(portcullis::admin::clients::add(&state, &portcullis::admin::Actor::cli(), &spec)).unwrap();
    let client = rt.block_on(state.clients.get(&state.db, "svc")).unwrap().unwrap();
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = kp.to_pkcs8v1().unwrap();
    let p = kp.public_key().as_ref();
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({ "kty": "EC", "crv": "P-256", "x": enc(&p[1..33]), "y": enc(&p[33..]) });
    let htu = format!("{}/token", state.settings.issuer());
    let now = || chrono::Utc::now().timestamp();
    let proof = dpop_proof(pkcs8.as_ref(), &jwk, &htu, now());
    c.bench_function("check DPoP proof (ES256)", |b| {
        b.iter(|| {
            let want = portcullis::verify::dpop::Expect { method: "POST", uri: &htu, access_token: None, now: now() };
            portcullis::verify::dpop::check(black_box(&proof), &want).unwrap()
        })
    });
    let params: std::collections::HashMap<String, String> = Default::default();
    let mut g = c.benchmark_group("token endpoint work, client_credentials");
    g.bench_function("bearer", |b| {
        b.iter(|| rt.block_on(portcullis::oauth::grants::client_credentials(&state, &client, &params, None)).unwrap())
    });
    g.bench_function("DPoP (proof checked and spent, cnf bound)", |b| {
        b.iter_batched(
            || dpop_proof(pkcs8.as_ref(), &jwk, &htu, now()),
            |proof| {
                rt.block_on(async {
                    let d = portcullis::oauth::dpop::check(&state, &[proof.as_str()], "POST", "/token", None, false)
                        .unwrap()
                        .unwrap();
                    portcullis::oauth::dpop::record(&state, &d).await.unwrap();
                    portcullis::oauth::grants::client_credentials(&state, &client, &params, Some(&d)).await.unwrap()
                })
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

#[path = "../tests/support/softkey.rs"]
mod softkey;

criterion_group!(hot, benches, argon, passkey, dpop);
criterion_main!(hot);
