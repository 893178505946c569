//! Passkeys (WebAuthn): a random user handle per user, the registered
//! credentials, and the server-side state of every ceremony in flight (any
//! instance can finish what another started; each state is used once).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum WebauthnHandles {
    Table,
    UserId,
    Handle,
}

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    CredentialId,
    UserId,
    Name,
    Credential,
    Hardware,
    CreatedMs,
    LastUsedMs,
}

#[derive(DeriveIden)]
enum WebauthnCeremonies {
    Table,
    IdHash,
    Kind,
    UserId,
    Binding,
    State,
    ExpiresMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebauthnHandles::Table)
                    .col(text(WebauthnHandles::UserId).primary_key())
                    .col(text_uniq(WebauthnHandles::Handle))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebauthnHandles::Table, WebauthnHandles::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Passkeys::Table)
                    .col(text(Passkeys::CredentialId).primary_key())
                    .col(text(Passkeys::UserId))
                    .col(text(Passkeys::Name))
                    .col(text(Passkeys::Credential))
                    .col(boolean(Passkeys::Hardware))
                    .col(big_integer(Passkeys::CreatedMs))
                    .col(big_integer_null(Passkeys::LastUsedMs))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Passkeys::Table, Passkeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_passkeys_user").table(Passkeys::Table).col(Passkeys::UserId).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebauthnCeremonies::Table)
                    .col(text(WebauthnCeremonies::IdHash).primary_key())
                    .col(text(WebauthnCeremonies::Kind))
                    .col(text_null(WebauthnCeremonies::UserId))
                    .col(text_null(WebauthnCeremonies::Binding))
                    .col(text(WebauthnCeremonies::State))
                    .col(big_integer(WebauthnCeremonies::ExpiresMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webauthn_ceremonies_expiry")
                    .table(WebauthnCeremonies::Table)
                    .col(WebauthnCeremonies::ExpiresMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in
            [WebauthnCeremonies::Table.into_iden(), Passkeys::Table.into_iden(), WebauthnHandles::Table.into_iden()]
        {
            manager.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
