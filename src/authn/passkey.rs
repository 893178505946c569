//! Passkeys (WebAuthn, through webauthn-rs): registration, passwordless
//! sign-in with discoverable credentials, and the passkey as a second factor.
//!
//! Every ceremony's state lives in the database (`webauthn_ceremonies`), keyed
//! by a keyed hash of a random handle that only the browser holds (a cookie),
//! tied to one kind, and for the second factor and registration to one login
//! challenge or session. It is claimed once (a conditional delete), so a
//! replayed response finds nothing, and any instance can finish a ceremony
//! another one started. The stored credential is updated with a compare-and-
//! swap on its previous value: two assertions with the same signature counter
//! cannot both pass, even on two instances at once.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{Value, json};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid, WebauthnError,
};

use crate::crypto::random_token;
use crate::state::AppState;
use crate::storage::entities::{passkey, webauthn_ceremony, webauthn_handle};

/// How long a ceremony may take (the browser's own timeout is the same).
pub const CEREMONY_TTL_MS: i64 = crate::state::WEBAUTHN_TIMEOUT_MS;
/// Longest name a user may give a passkey, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Most passkeys one account may hold.
pub const MAX_PER_USER: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error("passkeys are not available: the issuer's host is not a domain name (set webauthn_rp_id)")]
    Unavailable,
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("webauthn: {0}")]
    Webauthn(#[from] WebauthnError),
    #[error("stored passkey state does not parse: {0}")]
    Stored(#[from] serde_json::Error),
}

/// What a ceremony is for; a state started for one cannot finish another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Adding a passkey (account page, or enrolment at login).
    Register,
    /// Signing in without a password (discoverable credential, autofill).
    Passwordless,
    /// The passkey after the password.
    SecondFactor,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Passwordless => "passwordless",
            Self::SecondFactor => "second_factor",
        }
    }
}

/// A started ceremony: the options for `navigator.credentials` and the
/// handle the browser keeps (in a cookie) to finish it.
#[derive(Debug)]
pub struct Started {
    pub handle: String,
    pub options: Value,
}

/// A verified assertion.
#[derive(Debug)]
pub struct Verified {
    pub user: crate::storage::users::User,
    pub credential_id: String,
    /// Not backup eligible: RFC 8176 `hwk`, else `swk`.
    pub hardware: bool,
}

/// Why an assertion or registration was refused (for the audit log only:
/// the person sees "Login failed").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No live ceremony for this handle and kind (expired, used, or never started).
    NoCeremony,
    /// The response does not parse.
    Malformed,
    /// The credential is not registered (or not to this user).
    UnknownCredential,
    /// The account is disabled.
    Disabled,
    /// The authenticator did not verify the user.
    NotVerified,
    /// The signature counter did not move forward: a cloned authenticator.
    CounterRegressed,
    /// Wrong origin, RP id, challenge or signature.
    Invalid,
    /// Registration: this credential is registered already.
    Duplicate,
    /// Registration: the account holds the most passkeys allowed.
    TooMany,
    /// The stored account does not parse (see `storage::users`).
    Damaged,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCeremony => "no_ceremony",
            Self::Malformed => "malformed",
            Self::UnknownCredential => "unknown_credential",
            Self::Disabled => "disabled",
            Self::NotVerified => "user_not_verified",
            Self::CounterRegressed => "counter_regressed",
            Self::Invalid => "invalid",
            Self::Duplicate => "duplicate",
            Self::TooMany => "too_many",
            Self::Damaged => "damaged",
        }
    }

    fn of(e: &WebauthnError) -> Self {
        match e {
            WebauthnError::CredentialPossibleCompromise => Self::CounterRegressed,
            WebauthnError::UserNotVerified => Self::NotVerified,
            _ => Self::Invalid,
        }
    }
}

fn webauthn(state: &AppState) -> Result<&webauthn_rs::Webauthn, PasskeyError> {
    state.webauthn.as_deref().ok_or(PasskeyError::Unavailable)
}

fn ceremony_hash(state: &AppState, handle: &str) -> String {
    state.master_key.hasher().hash(&format!("webauthn-ceremony:{handle}"))
}

/// A credential id as stored and shown: base64url without padding.
pub fn credential_id_text(id: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// The user's passkeys, oldest first.
pub async fn list<C: ConnectionTrait>(conn: &C, user_id: &str) -> Result<Vec<passkey::Model>, DbErr> {
    passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .order_by_asc(passkey::Column::CreatedMs)
        .all(conn)
        .await
}

/// Whether the user has at least one passkey.
pub async fn has_passkey<C: ConnectionTrait>(conn: &C, user_id: &str) -> Result<bool, DbErr> {
    Ok(passkey::Entity::find().filter(passkey::Column::UserId.eq(user_id)).one(conn).await?.is_some())
}

/// The user's WebAuthn user handle, made (random) on first use.
async fn user_handle(state: &AppState, user_id: &str) -> Result<Uuid, PasskeyError> {
    if let Some(h) = webauthn_handle::Entity::find_by_id(user_id).one(&state.db).await? {
        return Uuid::parse_str(&h.handle).map_err(|e| PasskeyError::Db(DbErr::Custom(e.to_string())));
    }
    let handle = Uuid::new_v4();
    let insert = webauthn_handle::ActiveModel { user_id: Set(user_id.to_owned()), handle: Set(handle.to_string()) }
        .insert(&state.db)
        .await;
    match insert {
        Ok(_) => Ok(handle),
        // A parallel first use made one: use that.
        Err(e) => match webauthn_handle::Entity::find_by_id(user_id).one(&state.db).await? {
            Some(h) => Uuid::parse_str(&h.handle).map_err(|e| PasskeyError::Db(DbErr::Custom(e.to_string()))),
            None => Err(e.into()),
        },
    }
}

async fn store(
    state: &AppState,
    kind: Kind,
    user_id: Option<&str>,
    binding: Option<&str>,
    st: Value,
    now: DateTime<Utc>,
) -> Result<String, PasskeyError> {
    // Anonymous starts spend the address's login budget (the edge), and
    // expired ceremonies are deleted by `storage::purge` with the other
    // expired rows, so this table holds a few minutes of starts at most.
    let handle = random_token(32)?;
    let now_ms = now.timestamp_millis();
    webauthn_ceremony::ActiveModel {
        id_hash: Set(ceremony_hash(state, &handle)),
        kind: Set(kind.as_str().to_owned()),
        user_id: Set(user_id.map(str::to_owned)),
        binding: Set(binding.map(str::to_owned)),
        state: Set(st.to_string()),
        expires_ms: Set(now_ms + CEREMONY_TTL_MS),
    }
    .insert(&state.db)
    .await?;
    Ok(handle)
}

/// Takes a ceremony out of the store: only one caller gets it, and only for
/// the kind, user and binding it was started for.
async fn claim(
    state: &AppState,
    handle: &str,
    kind: Kind,
    user_id: Option<&str>,
    binding: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<String>, PasskeyError> {
    if handle.is_empty() || handle.len() > 128 {
        return Ok(None);
    }
    let hash = ceremony_hash(state, handle);
    let Some(row) = webauthn_ceremony::Entity::find_by_id(hash.as_str()).one(&state.db).await? else {
        return Ok(None);
    };
    let gone = webauthn_ceremony::Entity::delete_by_id(hash.as_str()).exec(&state.db).await?.rows_affected == 1;
    let fits = row.kind == kind.as_str()
        && row.user_id.as_deref() == user_id
        && row.binding.as_deref() == binding
        && row.expires_ms > now.timestamp_millis();
    Ok((gone && fits).then_some(row.state))
}

// ---------------------------------------------------------------- registration

/// Starts adding a passkey for `u`; `binding` ties it to the session or login
/// challenge it was started from. User verification required, a resident
/// (discoverable) key preferred, no attestation; the user's other passkeys
/// are excluded so one authenticator is not registered twice.
pub async fn start_registration(
    state: &AppState,
    u: &crate::storage::users::User,
    binding: &str,
    now: DateTime<Utc>,
) -> Result<Started, PasskeyError> {
    let wa = webauthn(state)?;
    let handle_id = user_handle(state, &u.id).await?;
    let mut exclude = Vec::new();
    for p in list(&state.db, &u.id).await? {
        let pk: Passkey = serde_json::from_str(&p.credential)?;
        exclude.push(pk.cred_id().clone());
    }
    let display = u.display_name.clone().unwrap_or_else(|| u.username.clone());
    let (ccr, reg) = wa.start_passkey_registration(handle_id, &u.username, &display, Some(exclude))?;
    let mut options = serde_json::to_value(&ccr)?;
    // webauthn-rs asks for no resident key; a discoverable one is what lets
    // the person sign in without typing a name (browsers create one when
    // "preferred"; authenticators short of space still may not).
    if let Some(sel) = options.pointer_mut("/publicKey/authenticatorSelection").and_then(Value::as_object_mut) {
        sel.insert("residentKey".into(), json!("preferred"));
    }
    let handle = store(state, Kind::Register, Some(&u.id), Some(binding), serde_json::to_value(&reg)?, now).await?;
    Ok(Started { handle, options })
}

/// Finishes adding a passkey: verifies the browser's response against the
/// stored state and stores the credential under `name`.
pub async fn finish_registration(
    state: &AppState,
    handle: &str,
    u: &crate::storage::users::User,
    binding: &str,
    name: &str,
    response: &Value,
    now: DateTime<Utc>,
) -> Result<Result<passkey::Model, Refused>, PasskeyError> {
    let wa = webauthn(state)?;
    let Some(st) = claim(state, handle, Kind::Register, Some(&u.id), Some(binding), now).await? else {
        return Ok(Err(Refused::NoCeremony));
    };
    let reg: PasskeyRegistration = serde_json::from_str(&st)?;
    let Some(cred) = parse::<RegisterPublicKeyCredential>(response) else {
        return Ok(Err(Refused::Malformed));
    };
    let pk = match wa.finish_passkey_registration(&cred, &reg) {
        Ok(pk) => pk,
        Err(e) => return Ok(Err(Refused::of(&e))),
    };
    let id = credential_id_text(pk.cred_id().as_ref());
    let txn = crate::storage::begin_write(&state.db).await?;
    if passkey::Entity::find_by_id(id.as_str()).one(&txn).await?.is_some() {
        return Ok(Err(Refused::Duplicate));
    }
    if list(&txn, &u.id).await?.len() >= MAX_PER_USER {
        return Ok(Err(Refused::TooMany));
    }
    let hardware = !backup_eligible(&pk)?;
    let row = passkey::ActiveModel {
        credential_id: Set(id),
        user_id: Set(u.id.clone()),
        name: Set(clean_name(name)),
        credential: Set(serde_json::to_string(&pk)?),
        hardware: Set(hardware),
        created_ms: Set(now.timestamp_millis()),
        last_used_ms: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Ok(row))
}

/// A passkey's name as stored: trimmed, control characters dropped, at most
/// [`MAX_NAME_CHARS`]; empty becomes "Passkey".
pub fn clean_name(name: &str) -> String {
    let n: String = name.trim().chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect();
    if n.trim().is_empty() { "Passkey".to_owned() } else { n.trim().to_owned() }
}

/// Whether a passkey may be synchronised between devices (the BE flag).
fn backup_eligible(pk: &Passkey) -> Result<bool, PasskeyError> {
    let v = serde_json::to_value(pk)?;
    Ok(v.pointer("/cred/backup_eligible").and_then(Value::as_bool).unwrap_or(false))
}

fn parse<T: serde::de::DeserializeOwned>(response: &Value) -> Option<T> {
    T::deserialize(response).ok()
}

// -------------------------------------------------------------- authentication

/// Starts a passwordless sign-in: no `allowCredentials` (nothing is said
/// about which accounts exist), the authenticator offers its discoverable
/// credentials for this site.
pub async fn start_passwordless(state: &AppState, now: DateTime<Utc>) -> Result<Started, PasskeyError> {
    let wa = webauthn(state)?;
    let (rcr, auth) = wa.start_discoverable_authentication()?;
    let handle = store(state, Kind::Passwordless, None, None, serde_json::to_value(&auth)?, now).await?;
    Ok(Started { handle, options: serde_json::to_value(&rcr)? })
}

/// Starts the passkey step after a correct password (`binding`: the login
/// challenge). `Ok(None)` when the user has no passkey.
pub async fn start_second_factor(
    state: &AppState,
    user_id: &str,
    binding: &str,
    now: DateTime<Utc>,
) -> Result<Option<Started>, PasskeyError> {
    let wa = webauthn(state)?;
    let keys = list(&state.db, user_id).await?;
    if keys.is_empty() {
        return Ok(None);
    }
    let keys: Vec<Passkey> = keys.iter().map(|p| serde_json::from_str(&p.credential)).collect::<Result<_, _>>()?;
    let (rcr, auth) = wa.start_passkey_authentication(&keys)?;
    let handle =
        store(state, Kind::SecondFactor, Some(user_id), Some(binding), serde_json::to_value(&auth)?, now).await?;
    Ok(Some(Started { handle, options: serde_json::to_value(&rcr)? }))
}

/// Finishes a passwordless sign-in: finds the account by the user handle
/// and credential the authenticator returned, verifies the assertion.
pub async fn finish_passwordless(
    state: &AppState,
    handle: &str,
    response: &Value,
    now: DateTime<Utc>,
) -> Result<Result<Verified, (Refused, Option<String>)>, PasskeyError> {
    let wa = webauthn(state)?;
    let Some(st) = claim(state, handle, Kind::Passwordless, None, None, now).await? else {
        return Ok(Err((Refused::NoCeremony, None)));
    };
    let auth: DiscoverableAuthentication = serde_json::from_str(&st)?;
    let Some(cred) = parse::<PublicKeyCredential>(response) else {
        return Ok(Err((Refused::Malformed, None)));
    };
    let Ok((user_handle, cred_id)) = wa.identify_discoverable_authentication(&cred) else {
        return Ok(Err((Refused::Malformed, None)));
    };
    let owner = webauthn_handle::Entity::find()
        .filter(webauthn_handle::Column::Handle.eq(user_handle.to_string()))
        .one(&state.db)
        .await?;
    let row = passkey::Entity::find_by_id(credential_id_text(cred_id)).one(&state.db).await?;
    let (Some(owner), Some(row)) = (owner, row) else {
        return Ok(Err((Refused::UnknownCredential, None)));
    };
    if row.user_id != owner.user_id {
        return Ok(Err((Refused::UnknownCredential, None)));
    }
    verify(state, row, now, |pk| wa.finish_discoverable_authentication_v2(&cred, auth, pk)).await
}

/// Finishes the passkey step after the password, for `user_id` only.
pub async fn finish_second_factor(
    state: &AppState,
    handle: &str,
    user_id: &str,
    binding: &str,
    response: &Value,
    now: DateTime<Utc>,
) -> Result<Result<Verified, (Refused, Option<String>)>, PasskeyError> {
    let wa = webauthn(state)?;
    let Some(st) = claim(state, handle, Kind::SecondFactor, Some(user_id), Some(binding), now).await? else {
        return Ok(Err((Refused::NoCeremony, Some(user_id.to_owned()))));
    };
    let auth: PasskeyAuthentication = serde_json::from_str(&st)?;
    let Some(cred) = parse::<PublicKeyCredential>(response) else {
        return Ok(Err((Refused::Malformed, Some(user_id.to_owned()))));
    };
    let row = passkey::Entity::find_by_id(credential_id_text(cred.get_credential_id()))
        .one(&state.db)
        .await?
        .filter(|r| r.user_id == user_id);
    let Some(row) = row else {
        return Ok(Err((Refused::UnknownCredential, Some(user_id.to_owned()))));
    };
    verify(state, row, now, |_| wa.finish_passkey_authentication(&cred, &auth)).await
}

/// The part both sign-ins share: the library's verification (origin, RP id,
/// challenge, signature, user verification, counter), the account's state,
/// and the credential's update as a compare-and-swap.
async fn verify(
    state: &AppState,
    row: passkey::Model,
    now: DateTime<Utc>,
    check: impl FnOnce(&Passkey) -> Result<webauthn_rs::prelude::AuthenticationResult, WebauthnError>,
) -> Result<Result<Verified, (Refused, Option<String>)>, PasskeyError> {
    let who = Some(row.user_id.clone());
    let mut pk: Passkey = serde_json::from_str(&row.credential)?;
    let result = match check(&pk) {
        Ok(r) => r,
        Err(e) => return Ok(Err((Refused::of(&e), who))),
    };
    if !result.user_verified() {
        return Ok(Err((Refused::NotVerified, who)));
    }
    // The library compared the counter with the credential as it was when
    // the ceremony started (second factor); compare with the row as it is.
    let stored = serde_json::to_value(&pk)?.pointer("/cred/counter").and_then(Value::as_u64).unwrap_or(0);
    if (result.counter() != 0 || stored != 0) && u64::from(result.counter()) <= stored {
        return Ok(Err((Refused::CounterRegressed, who)));
    }
    let u = match crate::storage::users::by_id(&state.db, &row.user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return Ok(Err((Refused::UnknownCredential, None))),
        Err(crate::storage::users::LoadError::Damaged(d)) => {
            tracing::error!(error = %d, "a damaged account cannot sign in");
            return Ok(Err((Refused::Damaged, who)));
        }
        Err(crate::storage::users::LoadError::Db(e)) => return Err(e.into()),
    };
    if u.disabled {
        return Ok(Err((Refused::Disabled, who)));
    }
    pk.update_credential(&result);
    let updated = passkey::Entity::update_many()
        .col_expr(passkey::Column::Credential, Expr::val(serde_json::to_string(&pk)?))
        .col_expr(passkey::Column::LastUsedMs, Expr::val(now.timestamp_millis()))
        .filter(passkey::Column::CredentialId.eq(row.credential_id.as_str()))
        .filter(passkey::Column::Credential.eq(row.credential.as_str()))
        .exec(&state.db)
        .await?;
    if updated.rows_affected != 1 {
        // Another assertion with this credential was accepted in between (or
        // it was removed): the counter this one carries is no longer new.
        return Ok(Err((Refused::CounterRegressed, who)));
    }
    Ok(Ok(Verified { user: u, credential_id: row.credential_id, hardware: row.hardware }))
}

// ------------------------------------------------------------------ management

/// Renames one of the user's passkeys; `false` when it is not theirs.
pub async fn rename<C: ConnectionTrait>(conn: &C, user_id: &str, id: &str, name: &str) -> Result<bool, DbErr> {
    let res = passkey::Entity::update_many()
        .col_expr(passkey::Column::Name, Expr::val(clean_name(name)))
        .filter(passkey::Column::CredentialId.eq(id))
        .filter(passkey::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Removes one of the user's passkeys; the removed row, or `None` when it
/// is not theirs.
pub async fn remove<C: ConnectionTrait>(conn: &C, user_id: &str, id: &str) -> Result<Option<passkey::Model>, DbErr> {
    let Some(row) = passkey::Entity::find_by_id(id).one(conn).await?.filter(|r| r.user_id == user_id) else {
        return Ok(None);
    };
    let gone = passkey::Entity::delete_many()
        .filter(passkey::Column::CredentialId.eq(id))
        .filter(passkey::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    Ok((gone.rows_affected == 1).then_some(row))
}
