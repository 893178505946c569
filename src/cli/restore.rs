//! `portcullis restore FILE`: a backup made by `portcullis backup` becomes
//! the configured SQLite database — only where there is no data yet, only
//! when the configured master key opens the backup's sealed secrets, and
//! never half: the copy is checked in a file beside the target and renamed
//! into place at the end.

use std::path::{Path, PathBuf};

use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use secrecy::ExposeSecret;

use super::CliError;
use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::storage::entities::{audit_event, client, signing_key, user};

/// What a restore brought back.
#[derive(Debug, serde::Serialize)]
pub struct Restored {
    pub database: PathBuf,
    pub users: u64,
    pub clients: u64,
    pub signing_keys: u64,
    pub audit_records: u64,
    /// The restored audit chain as `audit verify` sees it.
    pub audit_chain: crate::storage::audit_chain::Verdict,
}

fn input(msg: impl Into<String>) -> CliError {
    CliError::Input(msg.into())
}

/// The file of an `sqlite:` URL.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let file = rest.split('?').next().unwrap_or_default();
    (!file.is_empty() && file != ":memory:").then(|| PathBuf::from(file))
}

async fn count_data(db: &DatabaseConnection) -> Result<(u64, u64, u64, u64), sea_orm::DbErr> {
    Ok((
        user::Entity::find().count(db).await?,
        client::Entity::find().count(db).await?,
        signing_key::Entity::find().count(db).await?,
        audit_event::Entity::find().count(db).await?,
    ))
}

fn remove_with_journal(path: &Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

pub async fn restore(settings: &Settings, file: &Path) -> Result<Restored, CliError> {
    let url = settings.database_url.expose_secret();
    let Some(target) = sqlite_file(url) else {
        return Err(input(
            "on PostgreSQL, restore a pg_dump with pg_restore into an empty database \
             (`pg_restore --dbname=DATABASE_URL FILE`), then start Portcullis with the master key of the original",
        ));
    };
    if !file.is_file() {
        return Err(input(format!("{}: no such backup file", file.display())));
    }
    // The key first: the backup's secrets are sealed with the original's.
    let key = match MasterKey::load(settings.master_key.as_ref(), settings.master_key_file.as_deref(), url, false) {
        Ok((key, _)) => key,
        Err(crate::crypto::MasterKeyError::MissingForData(path)) => {
            return Err(input(format!(
                "the backup's secrets are sealed with the master key of the database it was made from, and a backup \
                 never holds it: set PORTCULLIS_MASTER_KEY_FILE (or put that key file at {})",
                path.display()
            )));
        }
        Err(e) => return Err(input(format!("master key: {e}"))),
    };
    let key = match crate::state::secondary_key(settings) {
        Ok(Some(second)) => key.with_second(second),
        Ok(None) => key,
        Err(e) => return Err(input(format!("second master key: {e}"))),
    };
    // Only into a database without data.
    if target.exists() {
        let db = crate::storage::connect(url, 1).await.map_err(|e| input(e.to_string()))?;
        crate::storage::migrate(&db).await.map_err(|e| input(e.to_string()))?;
        let (users, clients, keys, _) = count_data(&db).await.map_err(|e| input(e.to_string()))?;
        let _ = db.close().await;
        if users + clients + keys > 0 {
            return Err(input(format!(
                "{} holds data ({users} users, {clients} clients, {keys} signing keys); restore only into an empty \
                 database: move it away first",
                target.display()
            )));
        }
    }
    // A checked copy beside the target, renamed into place at the end.
    let staging = PathBuf::from(format!("{}.restoring", target.display()));
    remove_with_journal(&staging)?;
    std::fs::copy(file, &staging)?;
    std::fs::File::open(&staging)?.sync_all()?;
    let checked = check_copy(&staging, key).await;
    let restored = match checked {
        Ok(r) => r,
        Err(e) => {
            let _ = remove_with_journal(&staging);
            return Err(e);
        }
    };
    // The empty target's journal goes; the target itself is replaced by the
    // rename in one step (never a moment without a database file).
    for suffix in ["-wal", "-shm"] {
        match std::fs::remove_file(format!("{}{suffix}", target.display())) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    std::fs::rename(&staging, &target)?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(Restored { database: target, ..restored })
}

/// Every sealed secret of the copy opens with the key (not only one: a
/// backup taken in the middle of a rotation may hold both kinds).
async fn every_secret_opens(db: &DatabaseConnection, key: &MasterKey) -> Result<(), CliError> {
    let db_err = |e: sea_orm::DbErr| input(e.to_string());
    let mut bad = 0;
    for k in signing_key::Entity::find().all(db).await.map_err(db_err)? {
        bad += usize::from(key.open(&crate::state::keyring::seal_context(&k.kid), &k.private_key).is_err());
    }
    for t in crate::storage::entities::totp_credential::Entity::find().all(db).await.map_err(db_err)? {
        bad += usize::from(!crate::authn::mfa::seed_opens(key, &t));
    }
    if bad > 0 {
        return Err(input(format!(
            "{bad} sealed secrets of the backup do not open with the configured key(s) (a backup made during a master-key rotation needs both keys: set PORTCULLIS_MASTER_KEY_SECONDARY_FILE too)"
        )));
    }
    Ok(())
}

/// Opens the copy: migrations of a backup from an older version applied,
/// the master key checked against its sealed secrets, the audit chain
/// verified; what it holds counted.
async fn check_copy(staging: &Path, key: MasterKey) -> Result<Restored, CliError> {
    let url = format!("sqlite://{}?mode=rw", staging.display());
    let db = crate::storage::connect(&url, 1)
        .await
        .map_err(|e| input(format!("{}: not an SQLite backup ({e})", staging.display())))?;
    let result = async {
        crate::storage::migrate(&db).await.map_err(|e| input(e.to_string()))?;
        let mut key = key;
        let wrong_key =
            || input("the configured master key does not open this backup's secrets: use the key of the original");
        crate::startup::check_master_key(&db, &key).await.map_err(|_| wrong_key())?;
        // The audit chain's key is the backup's own data key.
        crate::state::data_keys::install(&db, &mut key, chrono::Utc::now().timestamp_millis())
            .await
            .map_err(|_| wrong_key())?;
        let akey = key.audit_key();
        let db_err = |e: sea_orm::DbErr| input(e.to_string());
        every_secret_opens(&db, &key).await?;
        crate::storage::audit_chain::seal(&db, akey).await.map_err(db_err)?;
        let audit_chain = crate::storage::audit_chain::verify(&db, akey).await.map_err(db_err)?;
        if let crate::storage::audit_chain::Verdict::Broken { seq, reason, .. } = &audit_chain {
            return Err(input(format!(
                "the backup's audit chain is broken at record {seq} ({reason}): it was altered; not restoring it"
            )));
        }
        let (users, clients, signing_keys, audit_records) = count_data(&db).await.map_err(db_err)?;
        Ok::<_, CliError>(Restored {
            database: staging.to_path_buf(),
            users,
            clients,
            signing_keys,
            audit_records,
            audit_chain,
        })
    }
    .await;
    let _ = db.close().await;
    result
}
