//! The device authorization grant (RFC 8628): one row per device request,
//! its device code as a keyed hash, its user code as typed (normalised), and
//! what the person who approved it signed in with.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeviceCodes {
    Table,
    DeviceHash,
    UserCode,
    ClientId,
    Scope,
    Resource,
    CreatedMs,
    ExpiresMs,
    IntervalSecs,
    LastPollMs,
    Status,
    UserId,
    AuthTime,
    Amr,
    Acr,
    OriginIp,
    OriginAgent,
    DecidedMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeviceCodes::Table)
                    .col(text(DeviceCodes::DeviceHash).primary_key())
                    .col(text(DeviceCodes::UserCode).unique_key())
                    .col(text(DeviceCodes::ClientId))
                    .col(text(DeviceCodes::Scope))
                    .col(text_null(DeviceCodes::Resource))
                    .col(big_integer(DeviceCodes::CreatedMs))
                    .col(big_integer(DeviceCodes::ExpiresMs))
                    .col(integer(DeviceCodes::IntervalSecs))
                    .col(big_integer_null(DeviceCodes::LastPollMs))
                    .col(text(DeviceCodes::Status))
                    .col(text_null(DeviceCodes::UserId))
                    .col(big_integer_null(DeviceCodes::AuthTime))
                    .col(text_null(DeviceCodes::Amr))
                    .col(text_null(DeviceCodes::Acr))
                    .col(text_null(DeviceCodes::OriginIp))
                    .col(text_null(DeviceCodes::OriginAgent))
                    .col(big_integer_null(DeviceCodes::DecidedMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_device_codes_expires")
                    .table(DeviceCodes::Table)
                    .col(DeviceCodes::ExpiresMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(DeviceCodes::Table).to_owned()).await
    }
}
