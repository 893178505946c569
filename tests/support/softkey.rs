//! A software WebAuthn authenticator (ES256 with aws-lc-rs, attestation
//! "none", a few lines of CBOR) for the integration tests, the criterion
//! benchmark and the passwordless login load: unlike a browser, it can be
//! told to get things wrong — another origin or RP id, no user
//! verification, a counter that goes backwards. Included with `#[path]`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

// ------------------------------------------------------------------ CBOR

fn cbor_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
    }
}

fn cbor_int(v: i64, out: &mut Vec<u8>) {
    if v >= 0 { cbor_head(0, v as u64, out) } else { cbor_head(1, (-1 - v) as u64, out) }
}

fn cbor_bytes(b: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, b.len() as u64, out);
    out.extend(b);
}

fn cbor_text(t: &str, out: &mut Vec<u8>) {
    cbor_head(3, t.len() as u64, out);
    out.extend(t.as_bytes());
}

// ------------------------------------------------------- the authenticator

/// One credential on a software authenticator.
pub struct SoftKey {
    key: EcdsaKeyPair,
    pub id: Vec<u8>,
    user_handle: Vec<u8>,
    pub counter: u32,
}

pub fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref().to_vec()
}

/// What the authenticator is told to do (or to get wrong).
#[derive(Clone)]
pub struct Ceremony<'a> {
    pub origin: &'a str,
    pub rp_id: &'a str,
    pub user_verified: bool,
}

impl SoftKey {
    /// Makes a credential for the registration `options` and returns it with
    /// the browser's response.
    pub fn register(options: &Value, c: &Ceremony<'_>) -> (Self, Value) {
        let pk = &options["publicKey"];
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let id = portcullis::crypto::random_bytes(16).unwrap();
        let user_handle = B64.decode(pk["user"]["id"].as_str().unwrap()).unwrap();
        let client_data = json!({
            "type": "webauthn.create",
            "challenge": pk["challenge"].as_str().unwrap(),
            "origin": c.origin,
            "crossOrigin": false,
        })
        .to_string();
        let point = key.public_key().as_ref().to_vec();
        let mut cose = Vec::new();
        cbor_head(5, 5, &mut cose);
        for (k, v) in [(1, 2), (3, -7), (-1, 1)] {
            cbor_int(k, &mut cose);
            cbor_int(v, &mut cose);
        }
        cbor_int(-2, &mut cose);
        cbor_bytes(&point[1..33], &mut cose);
        cbor_int(-3, &mut cose);
        cbor_bytes(&point[33..65], &mut cose);
        let mut auth_data = sha256(c.rp_id.as_bytes());
        auth_data.push(0x01 | 0x40 | if c.user_verified { 0x04 } else { 0 });
        auth_data.extend(0u32.to_be_bytes());
        auth_data.extend([0u8; 16]);
        auth_data.extend((id.len() as u16).to_be_bytes());
        auth_data.extend(&id);
        auth_data.extend(&cose);
        let mut att = Vec::new();
        cbor_head(5, 3, &mut att);
        cbor_text("fmt", &mut att);
        cbor_text("none", &mut att);
        cbor_text("attStmt", &mut att);
        cbor_head(5, 0, &mut att);
        cbor_text("authData", &mut att);
        cbor_bytes(&auth_data, &mut att);
        let response = json!({
            "id": B64.encode(&id),
            "rawId": B64.encode(&id),
            "type": "public-key",
            "response": { "attestationObject": B64.encode(&att), "clientDataJSON": B64.encode(client_data) },
            "extensions": {},
        });
        (Self { key, id, user_handle, counter: 0 }, response)
    }

    /// Signs an assertion for the authentication `options` (the counter
    /// moves on by one unless the caller set it).
    pub fn assert(&mut self, options: &Value, c: &Ceremony<'_>) -> Value {
        self.counter += 1;
        let pk = &options["publicKey"];
        let client_data = json!({
            "type": "webauthn.get",
            "challenge": pk["challenge"].as_str().unwrap(),
            "origin": c.origin,
            "crossOrigin": false,
        })
        .to_string();
        let mut auth_data = sha256(c.rp_id.as_bytes());
        auth_data.push(0x01 | if c.user_verified { 0x04 } else { 0 });
        auth_data.extend(self.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(sha256(client_data.as_bytes()));
        let sig = self.key.sign(&SystemRandom::new(), &signed).unwrap();
        json!({
            "id": B64.encode(&self.id),
            "rawId": B64.encode(&self.id),
            "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(&auth_data),
                "clientDataJSON": B64.encode(client_data),
                "signature": B64.encode(sig.as_ref()),
                "userHandle": B64.encode(&self.user_handle),
            },
            "extensions": {},
        })
    }
}
