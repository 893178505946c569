//! TOTP multi-factor authentication: confirmed authenticators, pending
//! enrolments, recovery codes, and the login challenge between the password
//! and the second factor.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum TotpCredentials {
    Table,
    UserId,
    Secret,
    LastUsedStep,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TotpEnrolments {
    Table,
    UserId,
    EnrolmentId,
    Secret,
    CreatedMs,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    UsedMs,
}

#[derive(DeriveIden)]
enum LoginChallenges {
    Table,
    TokenHash,
    UserId,
    Purpose,
    TrustedDevice,
    Attempts,
    ReturnTo,
    CreatedMs,
    ExpiresMs,
}

fn user_fk(table: impl IntoIden + 'static, col: impl IntoIden + 'static) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(table, col).to(Users::Table, Users::Id).on_delete(ForeignKeyAction::Cascade).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TotpCredentials::Table)
                    .col(string(TotpCredentials::UserId).primary_key())
                    // AES-256-GCM envelope of the seed, context `totp:<user id>`.
                    .col(blob(TotpCredentials::Secret))
                    // RFC 6238 §5.2: a step is accepted once; shared by all instances.
                    .col(big_integer_null(TotpCredentials::LastUsedStep))
                    .col(timestamp_with_time_zone(TotpCredentials::CreatedAt))
                    .foreign_key(&mut user_fk(TotpCredentials::Table, TotpCredentials::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TotpEnrolments::Table)
                    .col(string(TotpEnrolments::UserId).primary_key())
                    .col(string(TotpEnrolments::EnrolmentId))
                    .col(blob(TotpEnrolments::Secret))
                    .col(big_integer(TotpEnrolments::CreatedMs))
                    .foreign_key(&mut user_fk(TotpEnrolments::Table, TotpEnrolments::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .col(string(RecoveryCodes::Id).primary_key())
                    .col(string(RecoveryCodes::UserId))
                    // Keyed hash of the normalised code.
                    .col(string_uniq(RecoveryCodes::CodeHash))
                    .col(big_integer_null(RecoveryCodes::UsedMs))
                    .foreign_key(&mut user_fk(RecoveryCodes::Table, RecoveryCodes::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_recovery_codes_user")
                    .table(RecoveryCodes::Table)
                    .col(RecoveryCodes::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoginChallenges::Table)
                    .col(string(LoginChallenges::TokenHash).primary_key())
                    .col(string(LoginChallenges::UserId))
                    // `mfa` (enter a code) or `enrol` (policy requires MFA, none set up).
                    .col(string(LoginChallenges::Purpose))
                    .col(boolean(LoginChallenges::TrustedDevice))
                    .col(integer(LoginChallenges::Attempts).default(0))
                    // Where to continue after the login (an authorization request).
                    .col(string_null(LoginChallenges::ReturnTo))
                    .col(big_integer(LoginChallenges::CreatedMs))
                    .col(big_integer(LoginChallenges::ExpiresMs))
                    .foreign_key(&mut user_fk(LoginChallenges::Table, LoginChallenges::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_login_challenges_expires")
                    .table(LoginChallenges::Table)
                    .col(LoginChallenges::ExpiresMs)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            LoginChallenges::Table.into_iden(),
            RecoveryCodes::Table.into_iden(),
            TotpEnrolments::Table.into_iden(),
            TotpCredentials::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
