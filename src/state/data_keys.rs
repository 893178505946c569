//! The data keys (keyed-hash key, audit-chain key) live in the database,
//! sealed under the master key; this loads them into the master key at
//! start. The first start after this existed makes them from the master
//! key's own derivation — the keys every stored hash was made with — so
//! nothing changes for existing data; from then on a master-key rotation
//! re-seals two rows instead of invalidating every hash.

use sea_orm::sea_query::OnConflict;
use sea_orm::{DatabaseConnection, EntityTrait, Set};

use crate::crypto::MasterKey;
use crate::crypto::master_key::DataKeys;
use crate::storage::entities::{data_key, signing_key, totp_credential};

pub const SECRET_HASH: &str = "secret-hash";
pub const AUDIT_CHAIN: &str = "audit-chain";

/// The sealing context of a data key.
pub fn context(name: &str) -> String {
    format!("data_key:{name}")
}

/// Which configured key made the database's sealed secrets: the hashes were
/// made with that key's derivation. `true` for the primary (also when the
/// database holds nothing sealed yet).
async fn made_with_primary(db: &DatabaseConnection, key: &MasterKey) -> Result<bool, StartErr> {
    let opened = if let Some(k) = signing_key::Entity::find().one(db).await? {
        key.opens_with_primary(&crate::state::keyring::seal_context(&k.kid), &k.private_key)
    } else if let Some(t) = totp_credential::Entity::find().one(db).await? {
        key.opens_with_primary(&format!("totp:{}", t.user_id), &t.secret)
    } else {
        Some(true)
    };
    // Neither key: nothing may be written with a key that is not this
    // database's (it would lock the right key out later).
    opened.ok_or_else(|| crate::crypto::MasterKeyError::Mismatch.into())
}

type StartErr = super::StartError;

/// Loads (or, the first time, makes) the data keys and installs them.
pub async fn install(db: &DatabaseConnection, key: &mut MasterKey, now_ms: i64) -> Result<(), StartErr> {
    let mut rows = data_key::Entity::find().all(db).await?;
    if rows.len() < 2 {
        let source = if made_with_primary(db, key).await? {
            key.derived_data_keys().clone()
        } else {
            // The hashes were made under the second key's derivation.
            second_derived(key).ok_or(crate::crypto::MasterKeyError::Mismatch)?
        };
        // Both in one transaction: never one key from one start and one
        // from another.
        let txn = crate::storage::begin_write(db).await?;
        if data_key::Entity::find().all(&txn).await?.is_empty() {
            for (name, bytes) in [(SECRET_HASH, &source.secret_hash), (AUDIT_CHAIN, &source.audit_chain)] {
                let sealed = key.seal(&context(name), bytes).map_err(crate::crypto::MasterKeyError::from)?;
                let row =
                    data_key::ActiveModel { name: Set(name.into()), sealed: Set(sealed), created_ms: Set(now_ms) };
                // Two instances starting at once (PostgreSQL): the first rows stay.
                match data_key::Entity::insert(row)
                    .on_conflict(OnConflict::column(data_key::Column::Name).do_nothing().to_owned())
                    .exec_without_returning(&txn)
                    .await
                {
                    Ok(_) | Err(sea_orm::DbErr::RecordNotInserted) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        txn.commit().await?;
        rows = data_key::Entity::find().all(db).await?;
    }
    let open = |name: &str| -> Result<Vec<u8>, StartErr> {
        let row = rows.iter().find(|r| r.name == name).ok_or(crate::crypto::MasterKeyError::Mismatch)?;
        key.open(&context(name), &row.sealed).map_err(|_| crate::crypto::MasterKeyError::Mismatch.into())
    };
    let keys = DataKeys { secret_hash: open(SECRET_HASH)?, audit_chain: open(AUDIT_CHAIN)? };
    key.use_data_keys(&keys);
    Ok(())
}

fn second_derived(key: &MasterKey) -> Option<DataKeys> {
    key.second_key().map(|s| s.derived_data_keys().clone())
}
