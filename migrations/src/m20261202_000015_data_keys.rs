//! The data keys: the key of keyed hashes (client secrets, session ids,
//! refresh tokens, recovery codes…) and of the audit chain, sealed under the
//! master key. Made from the master key's own derivation the first time, so
//! every hash made before stays valid; from then on rotating the master key
//! re-seals these rows instead of invalidating the hashes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DataKeys {
    Table,
    Name,
    Sealed,
    CreatedMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DataKeys::Table)
                    .col(text(DataKeys::Name).primary_key())
                    .col(blob(DataKeys::Sealed))
                    .col(big_integer(DataKeys::CreatedMs))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(DataKeys::Table).to_owned()).await
    }
}
