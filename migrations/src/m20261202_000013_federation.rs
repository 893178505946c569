//! Upstream identity providers: which upstream identity (provider, subject)
//! belongs to which account and which roles its groups gave it; the
//! sign-ins in flight to a provider (state, nonce, PKCE verifier: each used
//! once); and the first factor of a half-finished login (a federated one
//! shows as `fed` in `amr`, not as a password).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum UpstreamIdentities {
    Table,
    Provider,
    Subject,
    UserId,
    Email,
    MappedRoles,
    CreatedMs,
    LastUsedMs,
}

#[derive(DeriveIden)]
enum UpstreamLogins {
    Table,
    StateHash,
    Provider,
    Nonce,
    PkceVerifier,
    ReturnTo,
    LinkUserId,
    LinkSession,
    BrowserHash,
    ExpiresMs,
}

#[derive(DeriveIden)]
enum LoginChallenges {
    Table,
    FirstFactor,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UpstreamIdentities::Table)
                    .col(text(UpstreamIdentities::Provider))
                    .col(text(UpstreamIdentities::Subject))
                    .col(text(UpstreamIdentities::UserId))
                    .col(text_null(UpstreamIdentities::Email))
                    .col(text(UpstreamIdentities::MappedRoles))
                    .col(big_integer(UpstreamIdentities::CreatedMs))
                    .col(big_integer_null(UpstreamIdentities::LastUsedMs))
                    .primary_key(Index::create().col(UpstreamIdentities::Provider).col(UpstreamIdentities::Subject))
                    .foreign_key(
                        ForeignKey::create()
                            .from(UpstreamIdentities::Table, UpstreamIdentities::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_upstream_identities_user")
                    .table(UpstreamIdentities::Table)
                    .col(UpstreamIdentities::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UpstreamLogins::Table)
                    .col(text(UpstreamLogins::StateHash).primary_key())
                    .col(text(UpstreamLogins::Provider))
                    .col(text(UpstreamLogins::Nonce))
                    .col(text(UpstreamLogins::PkceVerifier))
                    .col(text_null(UpstreamLogins::ReturnTo))
                    .col(text_null(UpstreamLogins::LinkUserId))
                    .col(text_null(UpstreamLogins::LinkSession))
                    .col(text(UpstreamLogins::BrowserHash))
                    .col(big_integer(UpstreamLogins::ExpiresMs))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(LoginChallenges::Table)
                    .add_column(text_null(LoginChallenges::FirstFactor))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(LoginChallenges::Table).drop_column(LoginChallenges::FirstFactor).to_owned(),
            )
            .await?;
        manager.drop_table(Table::drop().table(UpstreamLogins::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(UpstreamIdentities::Table).to_owned()).await
    }
}
