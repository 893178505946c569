//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s — what every authenticator app
//! understands) and recovery codes.
//!
//! Seeds are 160 random bits, sealed with the master key under the context
//! `totp:<user id>` (pending enrolments under `totp-enrol:<user id>:<id>`), so
//! the database never holds one in the clear. A code is accepted for ±1 step of
//! clock skew, and each step once only: the last used step is advanced by one
//! conditional UPDATE, so two instances cannot both accept the same code.
//! Recovery codes (10 × 50 bits) are stored as keyed hashes and spent by a
//! conditional UPDATE as well.

use chrono::{DateTime, Utc};
use qrcode::QrCode;
use qrcode::render::svg;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::crypto::{CryptoError, random_bytes, random_token};
use crate::state::AppState;
use crate::storage::entities::{recovery_code, totp_credential, totp_enrolment, user_role};

/// The issuer shown in authenticator apps.
pub const TOTP_ISSUER: &str = "Portcullis";
const SEED_BYTES: usize = 20;
pub const RECOVERY_CODES: usize = 10;
/// Base32 characters in a recovery code (5 bits each).
const RECOVERY_CHARS: usize = 25;
/// The length of the 50-bit codes issued before: still accepted until used or
/// replaced, so no one is locked out by the upgrade.
const LEGACY_RECOVERY_CHARS: usize = 10;
/// Warn on the account page when fewer remain.
pub const RECOVERY_LOW: u64 = 3;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("invalid TOTP parameters")]
    Totp,
    #[error("the seed must be base32 of at least 128 bits")]
    BadSeed,
}

fn totp(seed: Vec<u8>, account: &str) -> Result<Totp, MfaError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(seed)
        .with_account_name(account)
        .with_issuer(Some(TOTP_ISSUER))
        .build()
        .map_err(|_| MfaError::Totp)
}

pub(crate) fn cred_context(user_id: &str) -> String {
    format!("totp:{user_id}")
}

/// Whether `key` opens a stored authenticator's seed (the master-key check).
pub fn seed_opens(key: &crate::crypto::MasterKey, cred: &totp_credential::Model) -> bool {
    key.open(&cred_context(&cred.user_id), &cred.secret).is_ok()
}

pub(crate) fn enrol_context(user_id: &str, enrolment_id: &str) -> String {
    format!("totp-enrol:{user_id}:{enrolment_id}")
}

/// An enrolment in progress, as shown on the enrolment page.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub enrolment_id: String,
    pub secret_base32: String,
    pub otpauth_uri: String,
    /// Inline SVG of the `otpauth://` URI.
    pub qr_svg: String,
}

fn qr_svg(uri: &str) -> Result<String, MfaError> {
    let code = QrCode::new(uri.as_bytes()).map_err(|_| MfaError::Totp)?;
    let svg = code.render::<svg::Color<'_>>().min_dimensions(220, 220).quiet_zone(true).build();
    // Drop the XML declaration: the SVG is inlined into HTML.
    Ok(match svg.find("<svg") {
        Some(i) => svg[i..].to_owned(),
        None => svg,
    })
}

fn describe(seed: Vec<u8>, account: &str, enrolment_id: String) -> Result<Enrolment, MfaError> {
    let t = totp(seed, account)?;
    let otpauth_uri = t.to_url().map_err(|_| MfaError::Totp)?;
    Ok(Enrolment { enrolment_id, secret_base32: t.secret().to_base32(), qr_svg: qr_svg(&otpauth_uri)?, otpauth_uri })
}

/// How long a started enrolment may be confirmed.
pub const ENROLMENT_TTL_MS: i64 = 10 * 60 * 1000;

/// Starts a new enrolment for the login challenge or session `binding`
/// (replacing any pending one of the user, whoever started it) and returns
/// what to show. The secret is shown this once: a reload starts again.
pub async fn start_enrolment(
    state: &AppState,
    user_id: &str,
    account: &str,
    binding: &str,
    now: DateTime<Utc>,
) -> Result<Enrolment, MfaError> {
    let seed = random_bytes(SEED_BYTES)?;
    let enrolment_id = random_token(16)?;
    let sealed = state.master_key.seal(&enrol_context(user_id, &enrolment_id), &seed)?;
    let txn = crate::storage::begin_write(&state.db).await?;
    totp_enrolment::Entity::delete_by_id(user_id).exec(&txn).await?;
    totp_enrolment::ActiveModel {
        user_id: Set(user_id.to_owned()),
        enrolment_id: Set(enrolment_id.clone()),
        secret: Set(sealed),
        created_ms: Set(now.timestamp_millis()),
        binding: Set(Some(binding.to_owned())),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    describe(seed, account, enrolment_id)
}

/// The pending enrolment that `binding` started and whose id the form
/// proves it was shown (`enrolment_id`), if still live; its seed.
async fn pending_seed(
    state: &AppState,
    user_id: &str,
    binding: &str,
    enrolment_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Vec<u8>>, MfaError> {
    let Some(p) = totp_enrolment::Entity::find_by_id(user_id).one(&state.db).await? else {
        return Ok(None);
    };
    let bound = p.binding.as_deref().is_some_and(|b| crate::crypto::constant_time_eq(b.as_bytes(), binding.as_bytes()));
    let same = crate::crypto::constant_time_eq(p.enrolment_id.as_bytes(), enrolment_id.as_bytes());
    if !bound || !same || p.created_ms + ENROLMENT_TTL_MS <= now.timestamp_millis() {
        return Ok(None);
    }
    Ok(Some(state.master_key.open(&enrol_context(user_id, &p.enrolment_id), &p.secret)?))
}

/// The same enrolment again, for the one who started it and was shown it
/// (after a mistyped code), never for anyone else.
pub async fn shown_enrolment(
    state: &AppState,
    user_id: &str,
    account: &str,
    binding: &str,
    enrolment_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Enrolment>, MfaError> {
    Ok(match pending_seed(state, user_id, binding, enrolment_id, now).await? {
        Some(seed) => Some(describe(seed, account, enrolment_id.to_owned())?),
        None => None,
    })
}

#[derive(Debug)]
pub enum Confirm {
    /// Enrolled; these recovery codes are to be shown once.
    Enrolled(Vec<String>),
    /// The form's enrolment is not the pending one of this challenge or
    /// session (replaced, expired, started elsewhere, or tampered with).
    Stale,
    /// The code does not match the new secret.
    BadCode,
}

/// Confirms the enrolment that `binding` started with a code from the new
/// secret; on success the authenticator replaces any earlier one and fresh
/// recovery codes are issued. Only the binding that started an enrolment can
/// confirm it: a secret noted by someone else is never the one enrolled.
pub async fn confirm_enrolment(
    state: &AppState,
    user_id: &str,
    binding: &str,
    enrolment_id: &str,
    code: &str,
    record: crate::storage::AuditEvent,
    now: DateTime<Utc>,
) -> Result<Confirm, MfaError> {
    let Some(seed) = pending_seed(state, user_id, binding, enrolment_id, now).await? else {
        return Ok(Confirm::Stale);
    };
    let Some(code) = six_digits(code) else {
        return Ok(Confirm::BadCode);
    };
    let Some(step) = totp(seed.clone(), "x")?.check(code, unix_secs(now)) else {
        return Ok(Confirm::BadCode);
    };
    // The confirming code is spent: it cannot also log in. The pending row
    // goes in the same transaction (single use).
    Ok(match store_credential(state, user_id, &seed, Some(step as i64), Some(enrolment_id), record, now).await? {
        Some(codes) => Confirm::Enrolled(codes),
        None => Confirm::Stale,
    })
}

/// Stores an imported seed (migration from another provider) as the user's
/// authenticator. The seed is base32 (spaces and padding ignored), ≥ 128 bits.
pub async fn import(
    state: &AppState,
    user_id: &str,
    base32_seed: &str,
    record: crate::storage::AuditEvent,
    now: DateTime<Utc>,
) -> Result<Vec<String>, MfaError> {
    let cleaned: String =
        base32_seed.chars().filter(|c| !c.is_whitespace() && *c != '=').collect::<String>().to_uppercase();
    let seed = Secret::try_from_base32(&cleaned).map_err(|_| MfaError::BadSeed)?.as_ref().to_vec();
    if seed.len() < 16 {
        return Err(MfaError::BadSeed);
    }
    totp(seed.clone(), "x").map_err(|_| MfaError::BadSeed)?;
    store_credential(state, user_id, &seed, None, None, record, now).await.map(Option::unwrap_or_default)
}

/// Makes `seed` the user's authenticator (replacing any other and any pending
/// enrolment) and issues fresh recovery codes, in one transaction with the
/// audit `record` of the enrolment. With
/// `consume`, that pending enrolment must still be there to be spent (`None`
/// when a parallel request spent or replaced it first).
async fn store_credential(
    state: &AppState,
    user_id: &str,
    seed: &[u8],
    last_used_step: Option<i64>,
    consume: Option<&str>,
    record: crate::storage::AuditEvent,
    now: DateTime<Utc>,
) -> Result<Option<Vec<String>>, MfaError> {
    let txn = crate::storage::begin_write(&state.db).await?;
    let mut pending = totp_enrolment::Entity::delete_many().filter(totp_enrolment::Column::UserId.eq(user_id));
    if let Some(id) = consume {
        pending = pending.filter(totp_enrolment::Column::EnrolmentId.eq(id));
    }
    if pending.exec(&txn).await?.rows_affected != 1 && consume.is_some() {
        return Ok(None);
    }
    totp_credential::Entity::delete_by_id(user_id).exec(&txn).await?;
    totp_credential::ActiveModel {
        user_id: Set(user_id.to_owned()),
        secret: Set(state.master_key.seal(&cred_context(user_id), seed)?),
        last_used_step: Set(last_used_step),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let codes = replace_recovery_codes(state, &txn, user_id).await?;
    crate::storage::commit_audited(txn, record, now).await?;
    Ok(Some(codes))
}

fn recovery_hash(state: &AppState, normalised: &str) -> String {
    state.master_key.hasher().hash(&format!("recovery-code:{normalised}"))
}

/// Issues a fresh set of recovery codes (the old ones stop working).
pub async fn replace_recovery_codes<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    user_id: &str,
) -> Result<Vec<String>, MfaError> {
    recovery_code::Entity::delete_many().filter(recovery_code::Column::UserId.eq(user_id)).exec(conn).await?;
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        // 25 base32 characters = 125 bits (ASVS 5.0 V6.5.2: at least 112 bits
        // for a lookup secret kept under a keyed hash), shown as
        // xxxxx-xxxxx-xxxxx-xxxxx-xxxxx.
        let raw: String = random_bytes(RECOVERY_CHARS)?.iter().map(|b| BASE32[(*b & 31) as usize] as char).collect();
        recovery_code::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            user_id: Set(user_id.to_owned()),
            code_hash: Set(recovery_hash(state, &raw)),
            used_ms: Set(None),
        }
        .insert(conn)
        .await?;
        let groups: Vec<&str> = (0..RECOVERY_CHARS).step_by(5).map(|i| &raw[i..i + 5]).collect();
        codes.push(groups.join("-"));
    }
    Ok(codes)
}

pub async fn has_totp<C: ConnectionTrait>(conn: &C, user_id: &str) -> Result<bool, DbErr> {
    Ok(totp_credential::Entity::find_by_id(user_id).one(conn).await?.is_some())
}

pub async fn recovery_remaining<C: ConnectionTrait>(conn: &C, user_id: &str) -> Result<u64, DbErr> {
    recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .filter(recovery_code::Column::UsedMs.is_null())
        .count(conn)
        .await
}

/// Removes the authenticator, pending enrolment and recovery codes.
pub async fn remove<C: ConnectionTrait>(conn: &C, user_id: &str) -> Result<bool, DbErr> {
    let had = totp_credential::Entity::delete_by_id(user_id).exec(conn).await?.rows_affected > 0;
    totp_enrolment::Entity::delete_by_id(user_id).exec(conn).await?;
    recovery_code::Entity::delete_many().filter(recovery_code::Column::UserId.eq(user_id)).exec(conn).await?;
    Ok(had)
}

/// What a submitted code turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    Totp,
    Recovery,
    Invalid,
}

/// Exactly six ASCII digits (surrounding white space, as autofill may add, is
/// ignored; anything else is not a TOTP code).
fn six_digits(code: &str) -> Option<&str> {
    let c = code.trim();
    (c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())).then_some(c)
}

fn recovery_form(code: &str) -> Option<String> {
    let c: String = code.trim().chars().filter(|c| *c != '-').collect::<String>().to_ascii_lowercase();
    ((c.len() == RECOVERY_CHARS || c.len() == LEGACY_RECOVERY_CHARS) && c.bytes().all(|b| BASE32.contains(&b)))
        .then_some(c)
}

fn unix_secs(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}

/// Checks a TOTP or recovery code, spending it on success.
pub async fn verify_code(
    state: &AppState,
    user_id: &str,
    code: &str,
    now: DateTime<Utc>,
) -> Result<CodeCheck, MfaError> {
    if code.len() > 64 {
        return Ok(CodeCheck::Invalid);
    }
    if let Some(digits) = six_digits(code) {
        let Some(cred) = totp_credential::Entity::find_by_id(user_id).one(&state.db).await? else {
            return Ok(CodeCheck::Invalid);
        };
        let seed = state.master_key.open(&cred_context(user_id), &cred.secret)?;
        let Some(step) = totp(seed, "x")?.check(digits, unix_secs(now)) else {
            return Ok(CodeCheck::Invalid);
        };
        let step = step as i64;
        // RFC 6238 §5.2: accept a step once. The condition makes this atomic
        // across instances (PostgreSQL re-checks it under the row lock; SQLite
        // serialises writers).
        let res = totp_credential::Entity::update_many()
            .col_expr(totp_credential::Column::LastUsedStep, Expr::val(step))
            .filter(totp_credential::Column::UserId.eq(user_id))
            .filter(
                Condition::any()
                    .add(totp_credential::Column::LastUsedStep.is_null())
                    .add(totp_credential::Column::LastUsedStep.lt(step)),
            )
            .exec(&state.db)
            .await?;
        return Ok(if res.rows_affected == 1 { CodeCheck::Totp } else { CodeCheck::Invalid });
    }
    if let Some(rc) = recovery_form(code) {
        let res = recovery_code::Entity::update_many()
            .col_expr(recovery_code::Column::UsedMs, Expr::val(now.timestamp_millis()))
            .filter(recovery_code::Column::CodeHash.eq(recovery_hash(state, &rc)))
            .filter(recovery_code::Column::UserId.eq(user_id))
            .filter(recovery_code::Column::UsedMs.is_null())
            .exec(&state.db)
            .await?;
        return Ok(if res.rows_affected == 1 { CodeCheck::Recovery } else { CodeCheck::Invalid });
    }
    Ok(CodeCheck::Invalid)
}

/// The strength of sign-in the server's policy asks of this user, by their
/// roles: a passkey for `passkey_required_roles`, and for `admin` once the
/// administrator has a passkey (phishing-resistant, or TOTP while none is
/// enrolled); a second factor for `mfa_required` or `mfa_required_roles`.
pub async fn required_for<C: ConnectionTrait>(
    state: &AppState,
    conn: &C,
    user_id: &str,
) -> Result<crate::policy::Assurance, DbErr> {
    use crate::policy::Assurance;
    let s = &state.settings;
    if !s.mfa_required && s.mfa_required_roles.is_empty() && s.passkey_required_roles.is_empty() {
        // Only the built-in admin rule can apply.
        let admin = user_role::Entity::find()
            .filter(user_role::Column::UserId.eq(user_id))
            .filter(user_role::Column::RoleName.eq(crate::policy::ADMIN_ROLE))
            .one(conn)
            .await?
            .is_some();
        return Ok(if admin && super::passkey::has_passkey(conn, user_id).await? {
            Assurance::PhishingResistant
        } else {
            Assurance::Password
        });
    }
    let roles = crate::storage::users::roles(conn, user_id).await?;
    if roles.iter().any(|r| s.passkey_required_roles.contains(r)) {
        return Ok(Assurance::PhishingResistant);
    }
    if roles.iter().any(|r| r == crate::policy::ADMIN_ROLE) && super::passkey::has_passkey(conn, user_id).await? {
        return Ok(Assurance::PhishingResistant);
    }
    if s.mfa_required || roles.iter().any(|r| s.mfa_required_roles.contains(r)) {
        return Ok(Assurance::MultiFactor);
    }
    Ok(Assurance::Password)
}

/// The one rule for administering, for the admin pages and the admin API
/// alike: at least a second factor, and whatever the user's own policy needs
/// (a passkey for an admin who has one, or for a passkey-required role) — a
/// recovery-code or TOTP login of such an admin does not administer.
/// Returns the assurance needed when `amr` falls short of it.
pub async fn administer_shortfall(
    state: &AppState,
    user_id: &str,
    amr: &[String],
) -> Result<Option<crate::policy::Assurance>, DbErr> {
    use crate::policy::Assurance;
    let need = required_for(state, &state.db, user_id).await?.max(Assurance::MultiFactor);
    Ok((Assurance::of(amr) < need).then_some(need))
}

/// What a login needs after its first factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Signed in.
    Finish,
    /// Prove the account's own second factor (`/login/mfa`).
    Prove,
    /// Set one up first (`/login/enrol`).
    Enrol,
}

/// The one decision after a first factor — a password (`Password`) or an
/// upstream provider (`Password`, or `MultiFactor` where its second factor
/// is trusted): done if it is as strong as both the account's strongest
/// factor and what this login requires; otherwise the account's own second
/// factor if it has one (the first factor alone never reaches a set-up over
/// an existing factor); otherwise set one up if one is required.
pub fn next_step(
    first: crate::policy::Assurance,
    strongest: crate::policy::Assurance,
    required: crate::policy::Assurance,
) -> NextStep {
    use crate::policy::Assurance;
    if first >= strongest.max(required) {
        NextStep::Finish
    } else if strongest > Assurance::Password {
        NextStep::Prove
    } else if required > first {
        NextStep::Enrol
    } else {
        NextStep::Finish
    }
}

/// The strongest factor the account has, which a session must match to
/// add or change a factor (a borrowed or weaker session cannot plant its
/// own way in): a passkey, else TOTP, else the password.
pub async fn strongest_factor<C: ConnectionTrait>(conn: &C, user_id: &str) -> Result<crate::policy::Assurance, DbErr> {
    use crate::policy::Assurance;
    Ok(if super::passkey::has_passkey(conn, user_id).await? {
        Assurance::PhishingResistant
    } else if has_totp(conn, user_id).await? {
        Assurance::MultiFactor
    } else {
        Assurance::Password
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_parsed_strictly() {
        assert_eq!(six_digits("123456"), Some("123456"));
        assert_eq!(six_digits(" 123456\n"), Some("123456"));
        assert_eq!(six_digits("123 456"), None);
        assert_eq!(six_digits("12345"), None);
        assert_eq!(six_digits("1234567"), None);
        assert_eq!(six_digits("12345a"), None);
        assert_eq!(six_digits("１２３４５６"), None, "full-width digits are not ASCII");
        assert_eq!(recovery_form("ABCDE-FGH23"), Some("abcdefgh23".into()));
        assert_eq!(recovery_form("abcdefgh23"), Some("abcdefgh23".into()));
        assert_eq!(recovery_form("abcde-fgh2"), None);
        assert_eq!(recovery_form("abcde-fgh21"), None, "1 is not base32");
        // Current codes: 25 characters (125 bits); the 10-character ones
        // issued before stay valid until used or replaced.
        assert_eq!(recovery_form("abcde-fghij-klmno-pqrst-uvwxy"), Some("abcdefghijklmnopqrstuvwxy".into()));
        assert_eq!(recovery_form("abcde-fghij-klmno-pqrst-uvwx"), None);
        assert_eq!(recovery_form("abcde-fghij-klmno"), None);
    }

    #[test]
    fn the_rfc_6238_test_vector_verifies() {
        // RFC 6238 Appendix B, SHA-1, T = 59 s → 94287082 (8 digits); the
        // 6-digit code is its last six digits.
        let t = totp(b"12345678901234567890".to_vec(), "x").unwrap();
        assert_eq!(t.generate(59).to_string(), "287082");
        assert_eq!(t.check("287082", 59), Some(1));
        assert_eq!(t.check("287082", 59 + 30), Some(1), "one step of skew");
        assert_eq!(t.check("287082", 59 + 60), None, "two steps is too late");
    }

    #[test]
    fn the_qr_code_is_inline_svg() {
        let svg = qr_svg("otpauth://totp/Portcullis:alice?secret=JBSWY3DPEHPK3PXP&issuer=Portcullis").unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(!svg.contains("<script"));
    }
}
