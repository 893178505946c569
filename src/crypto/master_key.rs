//! The master key: 32 bytes that encrypt secrets at rest and key the secret
//! hashes. From `PORTCULLIS_MASTER_KEY` (base64), `PORTCULLIS_MASTER_KEY_FILE`, or —
//! in development on SQLite only — a key file generated beside the database.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hkdf;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

use super::{CryptoError, SecretHasher, random_bytes};

const KEY_LEN: usize = 32;
/// First byte of every envelope; a new scheme gets a new version.
const ENVELOPE_V1: u8 = 1;

/// The master key and the subkeys derived from it (HKDF-SHA-256, one label per
/// purpose, so the AEAD key and the hashing key are independent).
pub struct MasterKey {
    aead: RandomizedNonceKey,
    hasher: SecretHasher,
    audit: SecretHasher,
    /// The HKDF outputs the hashing keys start from, before the database's
    /// own data keys replace them (`state::data_keys`).
    derived: DataKeys,
    /// A second key accepted for opening envelopes (master-key rotation).
    second: Option<Box<MasterKey>>,
}

/// The keys of keyed hashes and of the audit chain, as bytes: kept in the
/// database sealed under the master key, so that rotating the master key
/// re-seals them instead of invalidating every hash made with them.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKeys {
    pub secret_hash: Vec<u8>,
    pub audit_chain: Vec<u8>,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKeys(..)")
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("the master key must be base64 of exactly 32 bytes")]
    Malformed,
    #[error("cannot read master key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot create master key file {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error(
        "no master key: set PORTCULLIS_MASTER_KEY or PORTCULLIS_MASTER_KEY_FILE (a key is generated automatically only for a SQLite database file)"
    )]
    Missing,
    #[error(
        "no master key: the database already holds data, and a development key is generated only for an empty one ({0} does not exist); set PORTCULLIS_MASTER_KEY or PORTCULLIS_MASTER_KEY_FILE to this database's key"
    )]
    MissingForData(PathBuf),
    #[error(
        "the master key does not match this database (its sealed secrets do not open with it); set the key this database was created with"
    )]
    Mismatch,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Where the master key came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    File(PathBuf),
    /// Generated now into this file (development mode).
    Generated(PathBuf),
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl MasterKey {
    /// Builds the key from raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MasterKeyError> {
        if bytes.len() != KEY_LEN {
            return Err(MasterKeyError::Malformed);
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"portcullis master key v1").extract(bytes);
        let derive = |label: &[u8]| -> Result<Vec<u8>, MasterKeyError> {
            let info = [label];
            let okm = prk.expand(&info, Len(KEY_LEN)).map_err(|_| CryptoError::Encrypt)?;
            let mut out = vec![0u8; KEY_LEN];
            okm.fill(&mut out).map_err(|_| CryptoError::Encrypt)?;
            Ok(out)
        };
        let aead = RandomizedNonceKey::new(&AES_256_GCM, &derive(b"aead")?).map_err(|_| CryptoError::Encrypt)?;
        let derived = DataKeys { secret_hash: derive(b"secret-hash")?, audit_chain: derive(b"audit-chain")? };
        let hasher = SecretHasher::new(&derived.secret_hash);
        let audit = SecretHasher::new(&derived.audit_chain);
        Ok(Self { aead, hasher, audit, derived, second: None })
    }

    /// Parses base64 (standard or url-safe, padding optional, surrounding
    /// whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let t = text.trim();
        let bytes = STANDARD
            .decode(t)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t.trim_end_matches('=')))
            .map_err(|_| MasterKeyError::Malformed)?;
        Self::from_bytes(&bytes)
    }

    /// The key when it can be had without the database — configured, or in
    /// a named file — checked before connecting, so a bad or missing key is
    /// reported at once, not after a connection timeout. `Ok(None)`: it is
    /// the key file kept next to a SQLite database, decided by [`Self::load`].
    pub fn load_early(
        configured: Option<&SecretString>,
        file: Option<&Path>,
        database_url: &str,
    ) -> Result<Option<(Self, KeySource)>, MasterKeyError> {
        if configured.is_some() || file.is_some() {
            return Self::load(configured, file, database_url, false).map(Some);
        }
        match dev_key_path(database_url) {
            Some(_) => Ok(None),
            None => Err(MasterKeyError::Missing),
        }
    }

    /// Resolves the key from the settings; in development (no key configured, a
    /// SQLite file database) creates a key file beside the database.
    /// `may_generate`: the database holds nothing sealed or keyed yet — a
    /// development key is never made up for a database that has data.
    pub fn load(
        configured: Option<&SecretString>,
        file: Option<&Path>,
        database_url: &str,
        may_generate: bool,
    ) -> Result<(Self, KeySource), MasterKeyError> {
        if let Some(k) = configured {
            return Ok((Self::from_base64(k.expose_secret())?, KeySource::Configured));
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| MasterKeyError::Read { path: path.to_path_buf(), source })?;
            return Ok((Self::from_base64(&text)?, KeySource::File(path.to_path_buf())));
        }
        let path = dev_key_path(database_url).ok_or(MasterKeyError::Missing)?;
        if path.exists() {
            let text =
                std::fs::read_to_string(&path).map_err(|source| MasterKeyError::Read { path: path.clone(), source })?;
            return Ok((Self::from_base64(&text)?, KeySource::File(path)));
        }
        if !may_generate {
            return Err(MasterKeyError::MissingForData(path));
        }
        let bytes = random_bytes(KEY_LEN)?;
        write_new_key_file(&path, &STANDARD.encode(&bytes))
            .map_err(|source| MasterKeyError::Create { path: path.clone(), source })?;
        Ok((Self::from_bytes(&bytes)?, KeySource::Generated(path)))
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. `"signing_key:<kid>"`).
    /// Output: version byte ‖ 96-bit random nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut buf = plaintext.to_vec();
        let nonce = self
            .aead
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| CryptoError::Encrypt)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(ENVELOPE_V1);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Also accepts `second` for opening (never for sealing): during a
    /// master-key rotation every instance reads envelopes of either key.
    pub fn with_second(mut self, second: MasterKey) -> Self {
        self.second = Some(Box::new(second));
        self
    }

    /// Is `other` the same key? (Compares what both derive; never the key.)
    pub fn same_key(&self, other: &MasterKey) -> bool {
        crate::crypto::constant_time_eq(&self.derived.secret_hash, &other.derived.secret_hash)
    }

    /// The second key, if configured.
    pub fn second_key(&self) -> Option<&MasterKey> {
        self.second.as_deref()
    }

    /// The hashing keys this master key derives (what the database's data
    /// keys are first made from, so hashes made before they existed match).
    pub fn derived_data_keys(&self) -> &DataKeys {
        &self.derived
    }

    /// Which key this envelope opens with: `Some(true)` the primary,
    /// `Some(false)` the second, `None` neither.
    pub fn opens_with_primary(&self, context: &str, envelope: &[u8]) -> Option<bool> {
        if self.open_own(context, envelope).is_ok() {
            Some(true)
        } else if self.second.as_ref().is_some_and(|s| s.open_own(context, envelope).is_ok()) {
            Some(false)
        } else {
            None
        }
    }

    /// The hashing keys from now on (the database's data keys).
    pub fn use_data_keys(&mut self, keys: &DataKeys) {
        self.hasher = SecretHasher::new(&keys.secret_hash);
        self.audit = SecretHasher::new(&keys.audit_chain);
    }

    /// Decrypts an envelope made by [`MasterKey::seal`] with the same
    /// context, with this key or else the second one.
    pub fn open(&self, context: &str, envelope: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self.open_own(context, envelope) {
            Ok(p) => Ok(p),
            Err(e) => match &self.second {
                Some(s) => s.open_own(context, envelope).map_err(|_| e),
                None => Err(e),
            },
        }
    }

    fn open_own(&self, context: &str, envelope: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (&version, rest) = envelope.split_first().ok_or(CryptoError::Envelope)?;
        if version != ENVELOPE_V1 || rest.len() < NONCE_LEN {
            return Err(CryptoError::Envelope);
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Envelope)?;
        let mut buf = ct.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| CryptoError::Decrypt)?;
        Ok(plain.to_vec())
    }

    /// The keyed hasher for high-entropy secrets.
    pub fn hasher(&self) -> &SecretHasher {
        &self.hasher
    }

    /// The key of the audit log's hash chain (its links are MACs: without
    /// the master key nobody can forge one).
    pub fn audit_key(&self) -> &SecretHasher {
        &self.audit
    }
}

/// `sqlite://dir/portcullis.db?mode=rwc` → `dir/portcullis.db.master.key`; `None`
/// for in-memory SQLite and for every other database.
fn dev_key_path(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:"))?;
    let file = rest.split('?').next().unwrap_or_default();
    if file.is_empty() || file == ":memory:" {
        return None;
    }
    Some(PathBuf::from(format!("{file}.master.key")))
}

/// Creates the key file with mode 0600, failing if it exists (no clobbering).
fn write_new_key_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_bytes(&[7u8; 32]).unwrap()
    }

    #[test]
    fn sealed_data_opens_only_with_the_same_context_and_key() {
        let k = key();
        let env = k.seal("totp:42", b"JBSWY3DPEHPK3PXP").unwrap();
        assert!(!env.windows(16).any(|w| w == b"JBSWY3DPEHPK3PXP"));
        assert_eq!(k.open("totp:42", &env).unwrap(), b"JBSWY3DPEHPK3PXP");
        assert!(k.open("totp:43", &env).is_err(), "moved to another row");
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.open("totp:42", &env).is_err(), "another master key");
        let mut tampered = env.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(k.open("totp:42", &tampered).is_err());
        assert!(k.open("totp:42", &[]).is_err());
        assert!(k.open("totp:42", &[1, 2, 3]).is_err());
    }

    #[test]
    fn two_seals_of_the_same_data_differ() {
        let k = key();
        assert_ne!(k.seal("c", b"x").unwrap(), k.seal("c", b"x").unwrap());
    }

    #[test]
    fn a_key_must_be_32_bytes_of_base64() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
        let good = STANDARD.encode([1u8; 32]);
        assert!(MasterKey::from_base64(&format!("{good}\n")).is_ok());
    }

    #[test]
    fn the_dev_key_lives_beside_a_sqlite_file_only() {
        assert_eq!(dev_key_path("sqlite://data/p.db?mode=rwc"), Some(PathBuf::from("data/p.db.master.key")));
        assert_eq!(dev_key_path("sqlite::memory:"), None);
        assert_eq!(dev_key_path("postgres://u@h/db"), None);
    }

    #[test]
    fn a_generated_key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/x.db?mode=rwc", dir.path().display());
        let (k1, src) = MasterKey::load(None, None, &url, true).unwrap();
        let KeySource::Generated(path) = src else { panic!("expected a generated key") };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (k2, src2) = MasterKey::load(None, None, &url, true).unwrap();
        assert_eq!(src2, KeySource::File(path));
        let env = k1.seal("c", b"data").unwrap();
        assert_eq!(k2.open("c", &env).unwrap(), b"data");
    }
}
