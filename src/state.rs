//! The shared application state: built once from the settings and handed to the
//! HTTP handlers (as `web::Data`) and to the CLI. No globals.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;

use crate::authn::{PasswordHasher, PasswordPolicy};
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::crypto::master_key::KeySource;
use crate::storage;
use crate::tokens::keyring::{KeyRing, KeyRingError, SharedKeyRing};

use aws_lc_rs::rand::SystemRandom;
use std::sync::RwLock;

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub master_key: Arc<MasterKey>,
    pub passwords: PasswordHasher,
    pub password_policy: PasswordPolicy,
    pub clock: Clock,
    /// The signing keys; empty until [`AppState::reload_keys`].
    pub keys: SharedKeyRing,
    pub rng: SystemRandom,
    pub clients: Arc<crate::oauth::cache::ClientCache>,
    pub revoked: Arc<crate::oauth::cache::RevocationList>,
    /// Failed client authentications per source address (token endpoints).
    pub client_failures: Arc<crate::oauth::cache::FailureThrottle>,
    /// Requests in progress per source address (`web::limits`).
    pub in_flight: Arc<crate::web::limits::InFlight>,
    /// The Prometheus series (`/metrics`).
    pub metrics: Arc<crate::web::metrics::Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    MasterKey(#[from] crate::crypto::MasterKeyError),
    #[error("cannot set up password hashing: {0}")]
    Passwords(#[from] crate::authn::PasswordError),
    #[error("signing keys: {0}")]
    Keys(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("configuration: {0}")]
    Config(String),
}

impl AppState {
    /// Connects to the database, applies pending migrations, loads the master key.
    pub async fn build(settings: Settings, clock: Clock) -> Result<(Self, KeySource), StartError> {
        let url = settings.database_url.expose_secret().to_owned();
        let db = storage::connect(&url, settings.database_max_connections).await?;
        storage::migrate(&db).await?;
        check_role_settings(&db, &settings).await?;
        let has_data = holds_data(&db).await?;
        let (master_key, source) =
            MasterKey::load(settings.master_key.as_ref(), settings.master_key_file.as_deref(), &url, !has_data)?;
        // The same check for `serve` and every CLI command: a wrong key is
        // refused before anything is written with it.
        check_master_key(&db, &master_key).await?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let max_concurrent = if settings.argon2_max_concurrent == 0 { cores } else { settings.argon2_max_concurrent };
        let passwords = PasswordHasher::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            max_concurrent,
            Duration::from_millis(settings.argon2_queue_timeout_ms),
        )?;
        let (client_cache_ms, revocation_sync_ms) = (settings.client_cache_ms, settings.revocation_sync_ms);
        let password_policy = PasswordPolicy {
            min_length: settings.password_min_length,
            min_length_admin: settings.password_min_length_admin,
        };
        let state = Self {
            db,
            settings: Arc::new(settings),
            master_key: Arc::new(master_key),
            passwords,
            password_policy,
            clock,
            keys: Arc::new(RwLock::new(Arc::new(KeyRing::default()))),
            rng: SystemRandom::new(),
            clients: Arc::new(crate::oauth::cache::ClientCache::new(Duration::from_millis(client_cache_ms))),
            revoked: Arc::new(crate::oauth::cache::RevocationList::new(Duration::from_millis(revocation_sync_ms))),
            client_failures: Arc::default(),
            in_flight: Arc::default(),
            metrics: Arc::default(),
        };
        // Signing keys are made at the first use of a database, by the CLI as
        // by the server: from then on a sealed secret exists to check every
        // later master key against.
        crate::tokens::keys::ensure_active(&state).await.map_err(|e| StartError::Keys(e.to_string()))?;
        Ok((state, source))
    }
}

/// Settings that name roles must name roles that exist: a typo such as
/// `mfa_required_roles = ["admn"]` would silently exempt administrators from
/// the second factor. A name within two edits of an existing role is refused
/// with the closest one; other unknown names are warned about (a role may be
/// created later).
async fn check_role_settings(db: &DatabaseConnection, settings: &Settings) -> Result<(), StartError> {
    use crate::storage::entities::role;
    use sea_orm::EntityTrait;
    if settings.mfa_required_roles.is_empty() {
        return Ok(());
    }
    let existing: Vec<String> = role::Entity::find().all(db).await?.into_iter().map(|r| r.name).collect();
    for wanted in &settings.mfa_required_roles {
        if existing.iter().any(|r| r == wanted) {
            continue;
        }
        let closest = existing
            .iter()
            .map(|r| (strsim::levenshtein(r, wanted), r))
            .filter(|(d, _)| *d <= 2)
            .min_by_key(|(d, _)| *d);
        if let Some((_, r)) = closest {
            return Err(StartError::Config(format!(
                "mfa_required_roles names {wanted:?}, which is not a role; did you mean {r:?}?"
            )));
        }
        tracing::warn!(role = %wanted, "mfa_required_roles names a role that does not exist (yet)");
    }
    Ok(())
}

/// Whether the database holds anything sealed or keyed with a master key.
async fn holds_data(db: &DatabaseConnection) -> Result<bool, sea_orm::DbErr> {
    use crate::storage::entities::{client, signing_key, user};
    use sea_orm::EntityTrait;
    Ok(signing_key::Entity::find().one(db).await?.is_some()
        || user::Entity::find().one(db).await?.is_some()
        || client::Entity::find().one(db).await?.is_some())
}

/// Opens one sealed secret of the database (a signing key, else a TOTP
/// seed) with `key`: a key that cannot is not this database's.
async fn check_master_key(db: &DatabaseConnection, key: &MasterKey) -> Result<(), StartError> {
    use crate::storage::entities::{signing_key, totp_credential};
    use sea_orm::EntityTrait;
    let opened = if let Some(k) = signing_key::Entity::find().one(db).await? {
        key.open(&crate::tokens::keys::seal_context(&k.kid), &k.private_key).is_ok()
    } else if let Some(t) = totp_credential::Entity::find().one(db).await? {
        crate::authn::mfa::seed_opens(key, &t)
    } else {
        true
    };
    if opened { Ok(()) } else { Err(crate::crypto::MasterKeyError::Mismatch.into()) }
}

impl AppState {
    /// The current key ring.
    pub fn keyring(&self) -> Arc<KeyRing> {
        match self.keys.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reloads the key ring from the database.
    pub async fn reload_keys(&self) -> Result<(), KeyRingError> {
        let ring =
            KeyRing::load(&self.db, &self.master_key, self.clock.now(), self.settings.publish_retired_ms()).await?;
        match self.keys.write() {
            Ok(mut g) => *g = Arc::new(ring),
            Err(p) => *p.into_inner() = Arc::new(ring),
        }
        Ok(())
    }

    /// Makes sure signing keys exist, rotates them when due, loads them, and
    /// keeps reloading them in the background (every `key_refresh_secs`).
    pub async fn prepare_keys(&self) -> Result<(), StartError> {
        crate::tokens::keys::ensure_active(self).await.map_err(|e| StartError::Keys(e.to_string()))?;
        crate::tokens::keys::rotate_if_due(self).await.map_err(|e| StartError::Keys(e.to_string()))?;
        self.reload_keys().await.map_err(|e| StartError::Keys(e.to_string()))?;
        let state = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(state.settings.key_refresh_secs));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = crate::tokens::keys::rotate_if_due(&state).await {
                    tracing::warn!(error = %e, "automatic key rotation failed");
                }
                if let Err(e) = state.reload_keys().await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
            }
        });
        Ok(())
    }
}
