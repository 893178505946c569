//! Objects a declarative file manages (`portcullis apply`): roles, clients
//! and users carry the file's name; the admin API, pages and CLI refuse to
//! change them (the file is where they change).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    ManagedBy,
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    ManagedBy,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    ManagedBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Clients::Table).add_column(text_null(Clients::ManagedBy)).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Roles::Table).add_column(text_null(Roles::ManagedBy)).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Users::Table).add_column(text_null(Users::ManagedBy)).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Users::Table).drop_column(Users::ManagedBy).to_owned()).await?;
        manager.alter_table(Table::alter().table(Roles::Table).drop_column(Roles::ManagedBy).to_owned()).await?;
        manager.alter_table(Table::alter().table(Clients::Table).drop_column(Clients::ManagedBy).to_owned()).await
    }
}
