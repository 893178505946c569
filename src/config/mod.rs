//! Settings, layered: built-in defaults → TOML file (`--config`) → `PORTCULLIS_*`
//! environment variables. Unknown keys in the file are an error (a typo must not
//! silently fall back to a default); unknown `PORTCULLIS_*` variables are reported
//! as a warning, since the environment is shared with other tools (test harnesses,
//! the benchmark script).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

mod audit_sink;
mod defaults;
mod upstream;
pub use audit_sink::{AuditSink, SinkKind};
pub use upstream::{RoleRule, UpstreamProvider};

/// The environment prefix of every setting.
pub const ENV_PREFIX: &str = "PORTCULLIS_";

/// `PORTCULLIS_*` variables that are not settings but are read by other tools.
const ENV_NOT_SETTINGS: &[&str] = &["TEST_DATABASE_URL", "BIN", "BROWSER_TESTS", "RECIPE_PYTHON", "MAIL_TESTS"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting, with its default in [`Settings::default`]. Keys are flat so
/// each maps to one environment variable (`PORTCULLIS_` + the key in capitals).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `sqlite://FILE?mode=rwc` (embedded default) or `postgres://…`.
    #[serde(serialize_with = "serialize_secret")]
    pub database_url: SecretString,
    /// Listen address.
    pub bind: SocketAddr,
    /// Public base URL; the `iss` of every token.
    pub issuer: String,
    /// Base64 of 32 random bytes; encrypts secrets at rest.
    #[serde(skip_serializing)]
    pub master_key: Option<SecretString>,
    /// A file holding `master_key`.
    pub master_key_file: Option<PathBuf>,
    /// A second master key accepted for reading sealed secrets (never for
    /// writing): set during a master-key rotation (docs/KEY_ROTATION.md).
    #[serde(skip_serializing)]
    pub master_key_secondary: Option<SecretString>,
    /// A file holding `master_key_secondary`.
    pub master_key_secondary_file: Option<PathBuf>,
    /// tracing filter directive.
    pub log: String,
    pub log_format: LogFormat,
    /// Allow a plain-http issuer on a non-loopback host (behind a TLS proxy that
    /// you trust, or for a lab). Off by default. Takes `1`/`0`, `true`/`false`.
    #[serde(deserialize_with = "flag")]
    pub insecure_http: bool,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that
    /// sets it; otherwise clients could pick their own address).
    #[serde(deserialize_with = "flag")]
    pub trust_forwarded_for: bool,
    /// Largest number of pooled database connections.
    pub database_max_connections: u32,
    /// argon2id memory cost in KiB (OWASP baseline: 19456).
    pub argon2_memory_kib: u32,
    /// argon2id iterations (OWASP baseline: 2).
    pub argon2_iterations: u32,
    /// argon2id lanes (OWASP baseline: 1).
    pub argon2_parallelism: u32,
    /// Most argon2 computations at once; 0 = the number of cores.
    pub argon2_max_concurrent: usize,
    /// How long a login waits for a free argon2 slot before a 503.
    pub argon2_queue_timeout_ms: u64,
    /// Minimum password length for users (NIST SP 800-63B: at least 8).
    pub password_min_length: usize,
    /// Minimum password length for holders of the `admin` role.
    pub password_min_length_admin: usize,
    /// A browser session ends after this long without use.
    pub session_idle_secs: i64,
    /// A browser session ends this long after login, used or not.
    pub session_absolute_secs: i64,
    /// Consecutive failed logins before an account is locked.
    pub login_max_failures: i32,
    /// First lock duration; doubles with each further failure.
    pub login_lock_secs: i64,
    /// Longest lock duration.
    pub login_lock_max_secs: i64,
    /// Failures older than this (with no attempt since) are forgotten.
    pub login_failure_decay_secs: i64,
    /// Login attempts allowed per source address per window.
    pub login_ip_max_attempts: i32,
    pub login_ip_window_secs: i64,
    /// How long a browser that logged in successfully stays trusted (its logins
    /// pass a lock that others caused).
    pub trusted_device_days: i64,
    /// Every user must use MFA.
    #[serde(deserialize_with = "flag")]
    pub mfa_required: bool,
    /// Holders of these roles must use MFA (env: `[admin,ops]`).
    pub mfa_required_roles: Vec<String>,
    /// Holders of these roles must sign in with a passkey (phishing-resistant,
    /// acr `phr`); one without a passkey enrols one at login. The `admin`
    /// role needs this anyway once its holder has a passkey.
    pub passkey_required_roles: Vec<String>,
    /// The WebAuthn relying-party id; default: the issuer's host name.
    pub webauthn_rp_id: Option<String>,
    /// Origins allowed to use passkeys; default: the issuer's origin.
    pub webauthn_origins: Vec<String>,
    /// Lifetime of access tokens (JWT, RFC 9068).
    pub access_token_ttl_secs: i64,
    /// Lifetime of ID tokens.
    pub id_token_ttl_secs: i64,
    /// Lifetime of a refresh-token family from the login that started it.
    pub refresh_token_ttl_secs: i64,
    /// Lifetime of authorization codes.
    pub code_ttl_secs: i64,
    /// How often each instance reloads the signing keys from the database.
    pub key_refresh_secs: u64,
    /// Signing keys are rotated automatically after this many days.
    pub key_rotation_days: i64,
    /// Credential-changing actions on the admin pages need a login (password
    /// and second factor) at most this many seconds old.
    pub admin_reauth_secs: i64,
    /// Audit events older than this many days are purged; 0 keeps them forever.
    pub audit_retention_days: i64,
    /// How often each instance seals new audit records into the hash chain.
    pub audit_seal_interval_ms: u64,
    /// Failed client authentications (token, introspection, revocation) one
    /// source address may make per window before it gets 429 (per instance).
    pub token_ip_max_failures: u32,
    pub token_ip_window_secs: i64,
    /// A connection must send its request head within this time (slow clients).
    pub client_request_timeout_ms: u64,
    /// Idle keep-alive connections are closed after this long.
    pub keep_alive_secs: u64,
    /// A request's body must arrive completely within this time (slow
    /// clients dribbling a body get 408 and lose the connection).
    pub client_body_timeout_ms: u64,
    /// Requests one source address may have in progress at once (then 429).
    pub max_requests_per_ip: u32,
    /// A bearer token that opens `/metrics` to callers other than loopback.
    #[serde(skip_serializing)]
    pub metrics_token: Option<SecretString>,
    /// Authorization requests one address may leave pending (stored for the
    /// user to finish) per `login_ip_window_secs` window (then 429).
    pub authorize_ip_max_pending: i32,
    /// Every client must push its authorization requests (RFC 9126 PAR);
    /// per client: `client add --require-par`.
    #[serde(deserialize_with = "flag")]
    pub require_pushed_authorization_requests: bool,
    /// DPoP proofs at the token endpoint must carry a nonce this server
    /// handed out (`DPoP-Nonce`, RFC 9449 §8): a proof cannot be made ahead
    /// of time.
    #[serde(deserialize_with = "flag")]
    pub dpop_nonce_required: bool,
    /// Dynamic client registration at `POST /register` (RFC 7591): `off`
    /// (default), `token` (an initial access token from
    /// `portcullis registration-token create` is needed) or `open`.
    pub client_registration: ClientRegistration,
    /// The scopes a registered client may ask for (besides `openid`).
    pub registration_scopes: Vec<String>,
    /// Resource indicators (RFC 8707) every registered client may ask tokens
    /// for — the APIs (MCP servers…) protected by this provider that
    /// strangers' clients may use. The admin API's audience is never given.
    pub registration_resources: Vec<String>,
    /// Registrations one address may make per `login_ip_window_secs` window.
    pub registration_ip_max: i32,
    /// A registered client no user authorized for this many days is deleted.
    pub registered_client_ttl_days: i64,
    /// Clients whose `client_id` is the https URL of their metadata document
    /// (OAuth Client ID Metadata Documents) are fetched and accepted.
    #[serde(deserialize_with = "flag")]
    pub client_id_documents: bool,
    /// For tests only: documents may be fetched over http and from loopback
    /// and private addresses.
    #[serde(deserialize_with = "flag")]
    pub client_id_documents_allow_private: bool,
    /// Clients are cached this long; changes made elsewhere (another instance,
    /// the CLI) take at most this long to apply.
    pub client_cache_ms: u64,
    /// UserInfo's users (and roles) are cached this long: a user disabled,
    /// deleted or changed on another instance or by the CLI is seen by
    /// UserInfo here at most this much later (at once on the instance that
    /// made the change). 0 reads the database on every call.
    pub user_cache_ms: u64,
    /// How often the in-memory list of revoked access tokens is synced with
    /// the other instances.
    pub revocation_sync_ms: u64,
    /// Branding: the name on every page and in page titles.
    pub product_name: String,
    /// Branding: an SVG, PNG or WebP file shown beside the name (at most 256 KiB),
    /// served from `/branding/logo`.
    pub logo_file: Option<PathBuf>,
    /// Branding: the accent colour (`#rrggbb`) of buttons and links in light
    /// mode; refused unless it has 4.5:1 contrast (WCAG AA) with the page and
    /// with white button text.
    pub accent_color: Option<String>,
    /// Branding: the accent colour in dark mode (4.5:1 with the dark page).
    pub accent_color_dark: Option<String>,
    /// Branding: the footer line; empty for none. Unset: "Protected by" and the product name.
    pub footer_text: Option<String>,
    /// Mail: the SMTP server (unset with no `mail_dir`: no mail is sent; links
    /// are only printed by the CLI and shown on the admin pages).
    pub smtp_host: Option<String>,
    /// Default: 587 for `starttls`, 465 for `tls`, 25 for `none`.
    pub smtp_port: Option<u16>,
    /// `starttls` (required, never downgraded), `tls` (implicit TLS) or
    /// `none` (plain text; only to a loopback relay).
    pub smtp_tls: SmtpTls,
    pub smtp_username: Option<String>,
    #[serde(skip_serializing)]
    pub smtp_password: Option<SecretString>,
    /// A file holding `smtp_password`.
    pub smtp_password_file: Option<PathBuf>,
    /// PEM certificates trusted for the SMTP server besides the system's (a
    /// private CA); the server's name is checked against its certificate.
    pub smtp_ca_file: Option<PathBuf>,
    /// The sender: `Name <address>` or an address; required with mail on.
    pub mail_from: Option<String>,
    /// Development: write each mail as an `.eml` file into this directory
    /// instead of sending it.
    pub mail_dir: Option<PathBuf>,
    /// Mails one address may receive per `mail_window_secs` (then they are dropped, audited).
    pub mail_max_per_address: i32,
    /// Mails sent about one account per `mail_window_secs`.
    pub mail_max_per_account: i32,
    pub mail_window_secs: i64,
    /// Lifetime of an invitation link.
    pub invitation_ttl_secs: i64,
    /// Lifetime of a password-reset link.
    pub reset_link_ttl_secs: i64,
    /// Lifetime of an e-mail verification link (and of a pending sign-up).
    pub verify_email_ttl_secs: i64,
    /// Self-registration on `/signup`: `off` (default) or `open`; needs mail.
    pub registration: Registration,
    /// With registration open: only addresses at these domains may sign up
    /// (empty: any). Matched case-insensitively, exactly (no subdomains).
    pub registration_email_domains: Vec<String>,
    /// Upstream OpenID Connect providers people may sign in with ("Sign in
    /// with …"): `[[upstream]]` tables in the configuration file.
    pub upstream: Vec<UpstreamProvider>,
    /// Where audit records are streamed: `[[audit_sinks]]` tables.
    pub audit_sinks: Vec<AuditSink>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    Starttls,
    Tls,
    None,
}

/// Whether clients may register themselves (RFC 7591).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientRegistration {
    Off,
    /// With an initial access token (single use) from an operator.
    Token,
    Open,
}

/// Whether people may create their own accounts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Off,
    Open,
}

fn serialize_secret<S: serde::Serializer>(v: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.expose_secret())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The names every setting takes in the environment (after the prefix).
fn setting_names() -> Vec<String> {
    let mut names: Vec<String> = match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().map(|k| k.to_ascii_uppercase()).collect(),
        _ => Vec::new(),
    };
    names.push("MASTER_KEY".to_owned());
    names.push("MASTER_KEY_SECONDARY".to_owned());
    names.push("SMTP_PASSWORD".to_owned());
    names
}

impl Settings {
    /// Loads defaults, then the TOML file (if given), then the environment.
    /// Returns the settings and any warnings to log once logging is up.
    pub fn load(file: Option<&Path>) -> Result<(Self, Vec<String>), ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let names = setting_names();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_path_buf()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let mut warnings = Vec::new();
        for (name, _) in std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        {
            let rest = &name[ENV_PREFIX.len()..];
            if !names.iter().any(|n| n == rest) && !ENV_NOT_SETTINGS.contains(&rest) {
                warnings.push(format!("ignoring unknown environment variable {name}"));
            }
        }
        figment = figment
            .merge(Env::prefixed(ENV_PREFIX).filter(move |k| names.iter().any(|n| k.as_str().eq_ignore_ascii_case(n))));
        let settings: Settings = figment.extract().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        settings.check()?;
        Ok((settings, warnings))
    }

    fn check(&self) -> Result<(), ConfigError> {
        let issuer = url::Url::parse(&self.issuer)
            .map_err(|e| ConfigError::Invalid(format!("issuer {:?} is not a URL: {e}", self.issuer)))?;
        if !matches!(issuer.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid("issuer must be an http(s) URL".into()));
        }
        // OIDC Discovery §3: the issuer has no query or fragment.
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(ConfigError::Invalid("issuer must not have a query or fragment".into()));
        }
        if issuer.scheme() == "http" && !crate::domain::is_loopback(&issuer) && !self.insecure_http {
            return Err(ConfigError::Invalid(format!(
                "issuer {} is plain http on a non-loopback host; use https, or set PORTCULLIS_INSECURE_HTTP=1 if TLS ends in front of Portcullis",
                self.issuer
            )));
        }
        if self.password_min_length < 8 {
            return Err(ConfigError::Invalid("password_min_length must be at least 8 (NIST SP 800-63B)".into()));
        }
        if self.argon2_memory_kib < 19 * 1024 || self.argon2_iterations < 2 || self.argon2_parallelism < 1 {
            return Err(ConfigError::Invalid(
                "argon2 parameters below the OWASP baseline (m=19456 KiB, t=2, p=1)".into(),
            ));
        }
        let positive = [
            ("session_idle_secs", self.session_idle_secs),
            ("session_absolute_secs", self.session_absolute_secs),
            ("login_lock_secs", self.login_lock_secs),
            ("login_lock_max_secs", self.login_lock_max_secs),
            ("login_failure_decay_secs", self.login_failure_decay_secs),
            ("login_ip_window_secs", self.login_ip_window_secs),
            ("trusted_device_days", self.trusted_device_days),
            ("access_token_ttl_secs", self.access_token_ttl_secs),
            ("id_token_ttl_secs", self.id_token_ttl_secs),
            ("refresh_token_ttl_secs", self.refresh_token_ttl_secs),
            ("code_ttl_secs", self.code_ttl_secs),
            ("key_rotation_days", self.key_rotation_days),
            ("admin_reauth_secs", self.admin_reauth_secs),
            ("token_ip_window_secs", self.token_ip_window_secs),
            ("token_ip_max_failures", i64::from(self.token_ip_max_failures)),
            ("login_max_failures", i64::from(self.login_max_failures)),
            ("login_ip_max_attempts", i64::from(self.login_ip_max_attempts)),
            ("mail_max_per_address", i64::from(self.mail_max_per_address)),
            ("mail_max_per_account", i64::from(self.mail_max_per_account)),
            ("mail_window_secs", self.mail_window_secs),
            ("invitation_ttl_secs", self.invitation_ttl_secs),
            ("reset_link_ttl_secs", self.reset_link_ttl_secs),
            ("verify_email_ttl_secs", self.verify_email_ttl_secs),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v <= 0) {
            return Err(ConfigError::Invalid(format!("{name} must be positive")));
        }
        self.check_upstream()?;
        self.check_audit_sinks()?;
        if !(10..=60_000).contains(&self.audit_seal_interval_ms) {
            return Err(ConfigError::Invalid("audit_seal_interval_ms must be between 10 and 60000".into()));
        }
        if self.key_refresh_secs == 0 {
            return Err(ConfigError::Invalid("key_refresh_secs must be ≥ 1".into()));
        }
        if self.metrics_token.as_ref().is_some_and(|t| secrecy::ExposeSecret::expose_secret(t).len() < 16) {
            return Err(ConfigError::Invalid("metrics_token must be at least 16 characters".into()));
        }
        if self.client_body_timeout_ms == 0 || self.max_requests_per_ip == 0 || self.authorize_ip_max_pending <= 0 {
            return Err(ConfigError::Invalid(
                "client_body_timeout_ms, max_requests_per_ip and authorize_ip_max_pending must be positive".into(),
            ));
        }
        if self.client_request_timeout_ms == 0 || self.keep_alive_secs == 0 {
            return Err(ConfigError::Invalid("client_request_timeout_ms and keep_alive_secs must be positive".into()));
        }
        if self.audit_retention_days < 0 {
            return Err(ConfigError::Invalid("audit_retention_days must be ≥ 0 (0 keeps audit events forever)".into()));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::Invalid("database_max_connections must be at least 1".into()));
        }
        self.webauthn().map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The WebAuthn relying party: its id and allowed origins, from
    /// `webauthn_rp_id`/`webauthn_origins` or else from the issuer. `Ok(None)`
    /// when nothing is configured and the issuer's host is an IP address
    /// (WebAuthn needs a domain name: passkeys are then off). An id or origin
    /// that is set but cannot work is an error.
    pub fn webauthn(&self) -> Result<Option<(String, Vec<url::Url>)>, String> {
        let issuer = url::Url::parse(&self.issuer).map_err(|e| format!("issuer is not a URL: {e}"))?;
        let rp_id = match &self.webauthn_rp_id {
            Some(id) => id.trim().to_ascii_lowercase(),
            None => match issuer.host() {
                Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
                _ if self.webauthn_origins.is_empty() => return Ok(None),
                _ => return Err("webauthn_origins is set but the issuer's host is an IP address: set webauthn_rp_id to the domain name".into()),
            },
        };
        if rp_id.is_empty() || rp_id.parse::<std::net::IpAddr>().is_ok() || rp_id.contains(['/', ':']) {
            return Err(format!("webauthn_rp_id {rp_id:?} must be a domain name (not an IP address or URL)"));
        }
        let origins = if self.webauthn_origins.is_empty() {
            let host = issuer.host_str().unwrap_or_default();
            let local = host == "localhost" || host.ends_with(".localhost");
            if self.webauthn_rp_id.is_none() && issuer.scheme() == "http" && !local {
                // Behind `insecure_http`: browsers would refuse the origin.
                return Ok(None);
            }
            vec![issuer.clone()]
        } else {
            self.webauthn_origins
                .iter()
                .map(|o| url::Url::parse(o).map_err(|e| format!("webauthn_origins: {o:?} is not a URL: {e}")))
                .collect::<Result<Vec<_>, _>>()?
        };
        for o in &origins {
            let host = o.host_str().unwrap_or_default().to_ascii_lowercase();
            let inside = host == rp_id || host.ends_with(&format!(".{rp_id}"));
            if !inside {
                return Err(format!(
                    "webauthn origin {} is not {rp_id} or a subdomain of it (WebAuthn §5.1.4.1)",
                    o.origin().ascii_serialization()
                ));
            }
            let local = host == "localhost" || host.ends_with(".localhost");
            if o.scheme() != "https" && !(o.scheme() == "http" && local) {
                return Err(format!(
                    "webauthn origin {} must be https (browsers allow passkeys over plain http on localhost only)",
                    o.origin().ascii_serialization()
                ));
            }
        }
        Ok(Some((rp_id, origins)))
    }

    /// How long a retired signing key stays published: every token it signed
    /// must have expired first.
    pub fn publish_retired_ms(&self) -> i64 {
        self.access_token_ttl_secs.max(self.id_token_ttl_secs) * 1000 + 60_000
    }

    /// The issuer without a trailing slash: endpoints are joined onto it.
    pub fn issuer(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    /// Whether cookies must carry `Secure` and responses HSTS.
    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// Settings for tests: a given database, port 0, a given master key.
    pub fn for_test(database_url: &str, master_key_b64: &str) -> Self {
        Self {
            database_url: SecretString::from(database_url.to_owned()),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: "http://127.0.0.1".to_owned(),
            master_key: Some(SecretString::from(master_key_b64.to_owned())),
            log: "warn".to_owned(),
            database_max_connections: 8,
            ..Self::default()
        }
    }
}

/// A boolean that also accepts `1`/`0` and `yes`/`no`, as shell users write it.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(b),
        Flag::Int(0) => Ok(false),
        Flag::Int(1) => Ok(true),
        Flag::Text(t) => match t.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            _ => Err(serde::de::Error::custom(format!("expected a boolean, found {t:?}"))),
        },
        Flag::Int(n) => Err(serde::de::Error::custom(format!("expected 0 or 1, found {n}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_http_issuer_on_a_public_host_is_refused() {
        let mut s = Settings::for_test("sqlite::memory:", "");
        s.issuer = "http://id.example.com".into();
        assert!(s.check().is_err());
        s.insecure_http = true;
        assert!(s.check().is_ok());
        s.insecure_http = false;
        s.issuer = "https://id.example.com".into();
        assert!(s.check().is_ok());
        s.issuer = "http://localhost:8080".into();
        assert!(s.check().is_ok());
    }

    #[test]
    fn argon2_below_the_owasp_baseline_is_refused() {
        let mut s = Settings::for_test("sqlite::memory:", "");
        s.argon2_memory_kib = 4096;
        assert!(s.check().is_err());
    }
}
