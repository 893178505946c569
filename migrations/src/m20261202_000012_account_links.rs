//! Account lifecycle: whether a user's e-mail address was proved by following
//! a link sent to it, and the single-use links themselves (invitations, password
//! resets, address verifications, pending sign-ups), stored only as keyed hashes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    EmailVerified,
}

#[derive(DeriveIden)]
enum AccountLinks {
    Table,
    IdHash,
    Purpose,
    UserId,
    Email,
    Payload,
    CreatedMs,
    ExpiresMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Users::Table).add_column(boolean(Users::EmailVerified).default(false)).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AccountLinks::Table)
                    .col(text(AccountLinks::IdHash).primary_key())
                    .col(text(AccountLinks::Purpose))
                    .col(text_null(AccountLinks::UserId))
                    .col(text_null(AccountLinks::Email))
                    .col(text_null(AccountLinks::Payload))
                    .col(big_integer(AccountLinks::CreatedMs))
                    .col(big_integer(AccountLinks::ExpiresMs))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AccountLinks::Table, AccountLinks::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_account_links_user_purpose")
                    .table(AccountLinks::Table)
                    .col(AccountLinks::UserId)
                    .col(AccountLinks::Purpose)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_account_links_expires")
                    .table(AccountLinks::Table)
                    .col(AccountLinks::ExpiresMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AccountLinks::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::EmailVerified).to_owned()).await
    }
}
