//! Browser login: SSO sessions, login throttling (per account and per source
//! address), and trusted devices.
//!
//! Times that queries compare (expiry, lock windows) are integer Unix
//! milliseconds: the comparison is then numeric and identical on SQLite and
//! PostgreSQL.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    TokenHash,
    UserId,
    CreatedAt,
    AuthTime,
    LastSeenMs,
    ExpiresMs,
    Amr,
    Acr,
    Ip,
    UserAgent,
}

#[derive(DeriveIden)]
enum LoginThrottle {
    Table,
    UsernameKey,
    Failures,
    LockedUntilMs,
    LastAttemptMs,
}

#[derive(DeriveIden)]
enum IpThrottle {
    Table,
    Ip,
    WindowStartMs,
    Attempts,
}

#[derive(DeriveIden)]
enum TrustedDevices {
    Table,
    TokenHash,
    UserId,
    CreatedMs,
    LastUsedMs,
    Failures,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    // A public handle (shown on the account page), not the secret.
                    .col(string(Sessions::Id).primary_key())
                    // Keyed hash of the cookie value.
                    .col(string_uniq(Sessions::TokenHash))
                    .col(string(Sessions::UserId))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    // Unix seconds: the OIDC auth_time.
                    .col(big_integer(Sessions::AuthTime))
                    .col(big_integer(Sessions::LastSeenMs))
                    .col(big_integer(Sessions::ExpiresMs))
                    .col(text(Sessions::Amr))
                    .col(string_null(Sessions::Acr))
                    .col(string_null(Sessions::Ip))
                    .col(string_null(Sessions::UserAgent))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_sessions_user").table(Sessions::Table).col(Sessions::UserId).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_sessions_expires").table(Sessions::Table).col(Sessions::ExpiresMs).to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(LoginThrottle::Table)
                    // Keyed by the normalised username, known or not, so that an
                    // unknown name behaves (and costs) exactly like a known one.
                    .col(string(LoginThrottle::UsernameKey).primary_key())
                    .col(integer(LoginThrottle::Failures).default(0))
                    .col(big_integer_null(LoginThrottle::LockedUntilMs))
                    // Failures older than the decay period no longer count.
                    .col(big_integer_null(LoginThrottle::LastAttemptMs))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IpThrottle::Table)
                    .col(string(IpThrottle::Ip).primary_key())
                    .col(big_integer(IpThrottle::WindowStartMs))
                    .col(integer(IpThrottle::Attempts).default(0))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TrustedDevices::Table)
                    .col(string(TrustedDevices::TokenHash).primary_key())
                    .col(string(TrustedDevices::UserId))
                    .col(big_integer(TrustedDevices::CreatedMs))
                    .col(big_integer(TrustedDevices::LastUsedMs))
                    .col(integer(TrustedDevices::Failures).default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TrustedDevices::Table, TrustedDevices::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_trusted_devices_user")
                    .table(TrustedDevices::Table)
                    .col(TrustedDevices::UserId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            TrustedDevices::Table.into_iden(),
            IpThrottle::Table.into_iden(),
            LoginThrottle::Table.into_iden(),
            Sessions::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
