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

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub master_key: Arc<MasterKey>,
    pub passwords: PasswordHasher,
    pub password_policy: PasswordPolicy,
    pub clock: Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    MasterKey(#[from] crate::crypto::MasterKeyError),
    #[error("cannot set up password hashing: {0}")]
    Passwords(#[from] crate::authn::PasswordError),
}

impl AppState {
    /// Connects to the database, applies pending migrations, loads the master key.
    pub async fn build(settings: Settings, clock: Clock) -> Result<(Self, KeySource), StartError> {
        let url = settings.database_url.expose_secret().to_owned();
        let db = storage::connect(&url, settings.database_max_connections).await?;
        storage::migrate(&db).await?;
        let (master_key, source) =
            MasterKey::load(settings.master_key.as_ref(), settings.master_key_file.as_deref(), &url)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let max_concurrent = if settings.argon2_max_concurrent == 0 { cores } else { settings.argon2_max_concurrent };
        let passwords = PasswordHasher::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            max_concurrent,
            Duration::from_millis(settings.argon2_queue_timeout_ms),
        )?;
        let password_policy = PasswordPolicy {
            min_length: settings.password_min_length,
            min_length_admin: settings.password_min_length_admin,
        };
        Ok((
            Self {
                db,
                settings: Arc::new(settings),
                master_key: Arc::new(master_key),
                passwords,
                password_policy,
                clock,
            },
            source,
        ))
    }
}
