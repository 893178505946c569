//! The signing key ring, shared by every instance through the database.
//!
//! One active key per algorithm (RS256 for ID tokens by default — the OIDC
//! default every relying party supports; ES256 for access tokens; EdDSA for
//! clients that ask). Private keys are PKCS#8, sealed with the master key under
//! the context `signing_key:<kid>`. The `kid` is the RFC 7638 JWK thumbprint.
//! Rotation adds new active keys and retires the old ones; a retired key's
//! public half stays published until every token it signed has expired.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::crypto::{CryptoError, MasterKey};
use crate::domain::SigningAlg;
use crate::state::AppState;
use crate::state::keyring::seal_context;
use crate::storage::AuditEvent;
use crate::storage::entities::signing_key;

/// Why a key operation failed (the admin services map it to their error).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

pub const ALL_ALGS: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

/// A new key pair: PKCS#8 private document and public JWK (with `kid`).
struct Generated {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RFC 7638 thumbprint of the required members, in lexicographic order.
fn thumbprint(required: &Value) -> String {
    // serde_json's Map is a BTreeMap (no preserve_order feature): keys come out
    // sorted and without whitespace, as §3.3 requires.
    let canonical = required.to_string();
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

fn generate(alg: SigningAlg) -> Result<Generated, CryptoError> {
    let (pkcs8, required) = match alg {
        SigningAlg::RS256 => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).map_err(|_| CryptoError::Rng)?;
            let der: Pkcs8V1Der<'static> = kp.as_der().map_err(|_| CryptoError::Encrypt)?;
            let pk = kp.public_key();
            let required = json!({
                "e": b64(pk.exponent().big_endian_without_leading_zero()),
                "kty": "RSA",
                "n": b64(pk.modulus().big_endian_without_leading_zero()),
            });
            (der.as_ref().to_vec(), required)
        }
        SigningAlg::ES256 => {
            let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| CryptoError::Rng)?;
            let doc = kp.to_pkcs8v1().map_err(|_| CryptoError::Encrypt)?;
            // Uncompressed SEC1 point: 0x04 ‖ x (32) ‖ y (32).
            let point = kp.public_key().as_ref();
            if point.len() != 65 {
                return Err(CryptoError::Encrypt);
            }
            let required = json!({ "crv": "P-256", "kty": "EC", "x": b64(&point[1..33]), "y": b64(&point[33..]) });
            (doc.as_ref().to_vec(), required)
        }
        SigningAlg::EdDSA => {
            let kp = Ed25519KeyPair::generate().map_err(|_| CryptoError::Rng)?;
            let doc = kp.to_pkcs8v1().map_err(|_| CryptoError::Encrypt)?;
            let required = json!({ "crv": "Ed25519", "kty": "OKP", "x": b64(kp.public_key().as_ref()) });
            (doc.as_ref().to_vec(), required)
        }
    };
    let kid = thumbprint(&required);
    let mut jwk = required;
    if let Value::Object(m) = &mut jwk {
        m.insert("kid".into(), kid.clone().into());
        m.insert("alg".into(), alg.as_str().into());
        m.insert("use".into(), "sig".into());
    }
    Ok(Generated { kid, pkcs8, jwk })
}

async fn insert_new<C: ConnectionTrait>(
    conn: &C,
    mk: &MasterKey,
    alg: SigningAlg,
    now: DateTime<Utc>,
) -> Result<String, KeyError> {
    let g = generate(alg)?;
    let sealed = mk.seal(&seal_context(&g.kid), &g.pkcs8)?;
    signing_key::ActiveModel {
        kid: Set(g.kid.clone()),
        alg: Set(alg.as_str().to_owned()),
        private_key: Set(sealed),
        public_jwk: Set(g.jwk.to_string()),
        active: Set(true),
        created_at: Set(now),
        retired_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(g.kid)
}

/// Makes sure every algorithm has an active key (first start).
pub async fn ensure_active(state: &AppState) -> Result<Vec<String>, KeyError> {
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let mut created = Vec::new();
    for alg in ALL_ALGS {
        let has = signing_key::Entity::find()
            .filter(signing_key::Column::Alg.eq(alg.as_str()))
            .filter(signing_key::Column::Active.eq(true))
            .one(&txn)
            .await?
            .is_some();
        if !has {
            created.push(insert_new(&txn, &state.master_key, alg, now).await?);
        }
    }
    let audit_record = (!created.is_empty())
        .then(|| AuditEvent::new("keys.created", "success").actor("system").detail(json!({ "kids": created })));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(created)
}

/// Who asked for a rotation, for the audit record.
pub struct RotatedBy<'a> {
    pub name: &'a str,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Adds a new active key for every algorithm and retires the previous ones,
/// in one transaction with its audit record. Not a permission check: the
/// admin service (`admin::keys::rotate`) and the scheduled rotation call it.
pub async fn rotate(state: &AppState, by: RotatedBy<'_>) -> Result<(), KeyError> {
    let now = state.clock.now();
    let txn = crate::storage::begin_write(&state.db).await?;
    let old = signing_key::Entity::find().filter(signing_key::Column::Active.eq(true)).all(&txn).await?;
    let retired: Vec<String> = old.iter().map(|k| k.kid.clone()).collect();
    for k in old {
        let mut am = k.into_active_model();
        am.active = Set(false);
        am.retired_at = Set(Some(now));
        am.update(&txn).await?;
    }
    let mut created = Vec::new();
    for alg in ALL_ALGS {
        created.push(insert_new(&txn, &state.master_key, alg, now).await?);
    }
    let audit_record = AuditEvent::new("keys.rotated", "success")
        .actor(by.name)
        .source(by.ip, by.user_agent)
        .detail(json!({ "created": created, "retired": retired }));
    crate::storage::commit_audited(txn, audit_record, now).await?;
    Ok(())
}

/// Rotates automatically when the newest active key is older than
/// `key_rotation_days`.
pub async fn rotate_if_due(state: &AppState) -> Result<bool, KeyError> {
    let newest = signing_key::Entity::find()
        .filter(signing_key::Column::Active.eq(true))
        .order_by_desc(signing_key::Column::CreatedAt)
        .one(&state.db)
        .await?;
    let due = newest
        .is_some_and(|k| state.clock.now() - k.created_at > chrono::Duration::days(state.settings.key_rotation_days));
    if due {
        rotate(state, RotatedBy { name: "system:rotation", ip: None, user_agent: None }).await?;
    }
    Ok(due)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub kid: String,
    pub alg: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

pub async fn list(state: &AppState) -> Result<Vec<KeyView>, sea_orm::DbErr> {
    Ok(signing_key::Entity::find()
        .order_by_desc(signing_key::Column::CreatedAt)
        .order_by_asc(signing_key::Column::Alg)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|k| KeyView {
            kid: k.kid,
            alg: k.alg,
            active: k.active,
            created_at: k.created_at,
            retired_at: k.retired_at,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_thumbprint_kids_and_public_jwks_only() {
        for alg in ALL_ALGS {
            let g = generate(alg).unwrap();
            assert_eq!(g.jwk["kid"], g.kid.as_str());
            assert_eq!(g.jwk["alg"], alg.as_str());
            assert!(g.jwk.get("d").is_none(), "no private member in the public JWK");
            assert_eq!(g.kid.len(), 43, "base64url of a SHA-256");
        }
    }

    #[test]
    fn the_thumbprint_matches_rfc_7638_section_3_1() {
        // The RSA example key of RFC 7638 §3.1 and its published thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let required = json!({ "e": "AQAB", "kty": "RSA", "n": n });
        assert_eq!(thumbprint(&required), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}
