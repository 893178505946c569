//! Dynamic client registration (RFC 7591/7592): which clients registered
//! themselves (and when they were last used, so unused ones expire), the
//! keyed hash of each one's registration access token, and the initial
//! access tokens operators hand out.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    RegisteredMs,
    RegistrationTokenHash,
    LastUsedMs,
}

#[derive(DeriveIden)]
enum RegistrationTokens {
    Table,
    TokenHash,
    CreatedBy,
    CreatedMs,
    ExpiresMs,
    UsedMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            big_integer_null(Clients::RegisteredMs),
            text_null(Clients::RegistrationTokenHash),
            big_integer_null(Clients::LastUsedMs),
        ] {
            let mut col = col;
            manager.alter_table(Table::alter().table(Clients::Table).add_column(&mut col).to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(RegistrationTokens::Table)
                    .col(text(RegistrationTokens::TokenHash).primary_key())
                    .col(text(RegistrationTokens::CreatedBy))
                    .col(big_integer(RegistrationTokens::CreatedMs))
                    .col(big_integer(RegistrationTokens::ExpiresMs))
                    .col(big_integer_null(RegistrationTokens::UsedMs))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RegistrationTokens::Table).to_owned()).await?;
        for c in [Clients::LastUsedMs, Clients::RegistrationTokenHash, Clients::RegisteredMs] {
            manager.alter_table(Table::alter().table(Clients::Table).drop_column(c).to_owned()).await?;
        }
        Ok(())
    }
}
