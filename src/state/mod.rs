//! The shared application state: built once from the settings and handed to the
//! HTTP handlers (as `web::Data`) and to the CLI. No globals.

pub mod cache;
pub mod data_keys;
pub mod in_flight;
pub mod keyring;
pub mod users;
pub mod verified;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use secrecy::ExposeSecret;

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::crypto::master_key::KeySource;
use crate::crypto::password::{PasswordHasher, PasswordPolicy};
use crate::storage;
use keyring::{KeyRing, KeyRingError, SharedKeyRing};

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
    pub clients: Arc<cache::ClientCache>,
    pub revoked: Arc<cache::RevocationList>,
    /// Users and their roles as UserInfo reads them (`user_cache_ms`).
    pub users: Arc<users::UserCache>,
    /// Access tokens whose signature was already checked here (bounded).
    pub verified: Arc<verified::VerifiedTokens>,
    /// Failed client authentications per source address (token endpoints).
    pub client_failures: Arc<cache::FailureThrottle>,
    /// Requests in progress per source address (`web::limits`).
    pub in_flight: Arc<in_flight::InFlight>,
    /// The Prometheus series (`/metrics`).
    pub metrics: Arc<crate::telemetry::metrics::Metrics>,
    /// The WebAuthn relying party; `None` when passkeys are off (the issuer's
    /// host is an IP address and no `webauthn_rp_id` is set).
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    /// Product name, logo, colours and footer of the pages (from configuration).
    pub branding: Arc<crate::domain::branding::Branding>,
    /// Outgoing mail; `None` when no mail is configured (links are then only
    /// printed by the CLI and shown on the admin pages).
    pub mailer: Option<Arc<crate::mail::Mailer>>,
    /// The discovery documents (and keys) of the upstream providers, with
    /// when they were fetched (`federation` refreshes them).
    pub upstream_meta: Arc<RwLock<std::collections::HashMap<String, UpstreamMeta>>>,
    /// The HTTP client for upstream providers (built once: no redirects,
    /// a 10 s timeout; `federation::http` bounds the bodies).
    pub upstream_http: reqwest::Client,
}

/// An upstream provider's discovery document and keys as last fetched.
#[derive(Clone, Debug)]
pub struct UpstreamMeta {
    pub fetched: std::time::Instant,
    pub metadata: openidconnect::core::CoreProviderMetadata,
}

/// How long a WebAuthn ceremony may take, in the browser and on the server.
pub const WEBAUTHN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

/// The WebAuthn relying party from the settings (`Settings::webauthn`).
fn relying_party(settings: &Settings) -> Result<Option<webauthn_rs::Webauthn>, StartError> {
    // Off (`None`) is said once by `serve` (startup), not by every CLI command.
    let Some((rp_id, origins)) = settings.webauthn().map_err(StartError::Config)? else {
        return Ok(None);
    };
    let bad = |e: webauthn_rs::prelude::WebauthnError| StartError::Config(format!("webauthn: {e}"));
    let mut b = webauthn_rs::WebauthnBuilder::new(&rp_id, &origins[0]).map_err(bad)?.rp_name("Portcullis");
    for o in &origins[1..] {
        b = b.append_allowed_origin(o);
    }
    let timeout = Duration::from_millis(WEBAUTHN_TIMEOUT_MS.unsigned_abs());
    Ok(Some(b.timeout(timeout).build().map_err(bad)?))
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    MasterKey(#[from] crate::crypto::MasterKeyError),
    #[error("cannot set up password hashing: {0}")]
    Passwords(#[from] crate::crypto::password::PasswordError),
    #[error("signing keys: {0}")]
    Keys(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("configuration: {0}")]
    Config(String),
}

impl AppState {
    /// Connects to the database, applies pending migrations, loads the master
    /// key. `AppState::build` (in `startup`) adds the checks that need the
    /// core: the master key against a sealed secret, and signing keys.
    pub async fn open(settings: Settings, clock: Clock) -> Result<(Self, KeySource), StartError> {
        let url = settings.database_url.expose_secret().to_owned();
        // Everything that can be checked without the database is checked
        // first: a missing master key on PostgreSQL is reported at once, not
        // after the connection attempt times out.
        let early = MasterKey::load_early(settings.master_key.as_ref(), settings.master_key_file.as_deref(), &url)?;
        let webauthn = relying_party(&settings)?.map(Arc::new);
        let branding = crate::domain::branding::Branding::from_settings(
            &settings.product_name,
            settings.logo_file.as_deref(),
            settings.accent_color.as_deref(),
            settings.accent_color_dark.as_deref(),
            settings.footer_text.as_deref(),
        )
        .map_err(StartError::Config)?;
        let mailer =
            crate::mail::Mailer::from_settings(&settings).map_err(|e| StartError::Config(format!("mail: {e}")))?;
        if settings.registration == crate::config::Registration::Open && mailer.is_none() {
            return Err(StartError::Config(
                "registration = \"open\" needs mail (smtp_host or mail_dir): sign-ups are verified by e-mail".into(),
            ));
        }
        let upstream_http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| StartError::Config(format!("HTTP client for upstream providers: {e}")))?;
        let db = storage::connect(&url, settings.database_max_connections).await?;
        storage::migrate(&db).await?;
        check_role_settings(&db, &settings).await?;
        let (mut master_key, source) = match early {
            Some(loaded) => loaded,
            None => {
                let has_data = holds_data(&db).await?;
                MasterKey::load(None, None, &url, !has_data)?
            }
        };
        if let Some(second) = secondary_key(&settings)? {
            master_key = master_key.with_second(second);
        }
        data_keys::install(&db, &mut master_key, clock.now().timestamp_millis()).await?;
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
        let user_cache_ms = settings.user_cache_ms;
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
            clients: Arc::new(cache::ClientCache::new(Duration::from_millis(client_cache_ms))),
            revoked: Arc::new(cache::RevocationList::new(Duration::from_millis(revocation_sync_ms))),
            users: Arc::new(users::UserCache::new(Duration::from_millis(user_cache_ms))),
            verified: Arc::default(),
            client_failures: Arc::default(),
            in_flight: Arc::default(),
            metrics: Arc::default(),
            webauthn,
            branding: Arc::new(branding),
            mailer: mailer.map(Arc::new),
            upstream_meta: Arc::default(),
            upstream_http,
        };
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
    if settings.mfa_required_roles.is_empty() && settings.passkey_required_roles.is_empty() {
        return Ok(());
    }
    let existing: Vec<String> = role::Entity::find().all(db).await?.into_iter().map(|r| r.name).collect();
    let named = settings.mfa_required_roles.iter().map(|r| ("mfa_required_roles", r));
    for (setting, wanted) in named.chain(settings.passkey_required_roles.iter().map(|r| ("passkey_required_roles", r)))
    {
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
                "{setting} names {wanted:?}, which is not a role; did you mean {r:?}?"
            )));
        }
        tracing::warn!(role = %wanted, setting, "a role setting names a role that does not exist (yet)");
    }
    Ok(())
}

/// Whether the database holds anything sealed or keyed with a master key.
/// The second master key of a rotation (`master_key_secondary[_file]`).
pub fn secondary_key(settings: &Settings) -> Result<Option<MasterKey>, crate::crypto::MasterKeyError> {
    use crate::crypto::MasterKeyError;
    if let Some(k) = &settings.master_key_secondary {
        return MasterKey::from_base64(k.expose_secret()).map(Some);
    }
    if let Some(path) = &settings.master_key_secondary_file {
        let text =
            std::fs::read_to_string(path).map_err(|source| MasterKeyError::Read { path: path.clone(), source })?;
        return MasterKey::from_base64(&text).map(Some);
    }
    Ok(None)
}

async fn holds_data(db: &DatabaseConnection) -> Result<bool, sea_orm::DbErr> {
    use crate::storage::entities::{client, signing_key, user};
    use sea_orm::EntityTrait;
    Ok(signing_key::Entity::find().one(db).await?.is_some()
        || user::Entity::find().one(db).await?.is_some()
        || client::Entity::find().one(db).await?.is_some())
}

impl AppState {
    /// The audience (RFC 8707 resource) of admin-API tokens.
    pub fn admin_audience(&self) -> String {
        format!("{}/admin", self.settings.issuer())
    }

    /// The resources a client nobody here vouches for — self-registered or
    /// named by its metadata document — may ask tokens for: the configured
    /// `registration_resources`, never the admin API.
    pub fn stranger_resources(&self) -> Vec<String> {
        let admin = self.admin_audience();
        self.settings.registration_resources.iter().filter(|r| **r != admin).cloned().collect()
    }

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
}
